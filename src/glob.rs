//! Glob sets from user-given patterns (`*`, `?`, `[a-z]`, `{a,b}`): the one
//! builder behind the namespace filter, controls and `summary`'s filters.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// A pattern that is not a glob, or a set too large to build.
#[derive(Debug, thiserror::Error)]
#[error("glob {pattern:?}: {source}")]
pub struct GlobError {
    /// The pattern as given (all of them, comma-separated, when the set as a
    /// whole could not be built).
    pub pattern: String,
    /// Why.
    pub source: globset::Error,
}

/// One set matching any of `patterns`.
pub fn set<S: AsRef<str>>(patterns: &[S]) -> Result<GlobSet, GlobError> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p.as_ref()).map_err(|source| GlobError {
            pattern: p.as_ref().to_owned(),
            source,
        })?;
        builder.add(glob);
    }
    builder.build().map_err(|source| GlobError {
        pattern: patterns
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(","),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_any_and_names_the_bad_pattern() {
        let (a, b) = ("kyverno-*".to_owned(), "team-{a,b}".to_owned());
        let s = set(&[a.as_str(), &b]).expect("valid");
        assert!(s.is_match("kyverno-system") && s.is_match("team-b"));
        assert!(!s.is_match("team-c"));
        let bad = "[z-a".to_owned();
        let err = set(&[a, bad]).expect_err("invalid");
        assert_eq!(err.pattern, "[z-a");
    }
}
