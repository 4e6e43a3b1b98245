//! Namespace scoping (`--namespace-include`, `--namespace-exclude`): which
//! namespaces count. The aggregator asks it before it counts anything that
//! belongs to a namespace.

use globset::GlobSet;

/// A pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("namespace pattern {pattern:?}: {source}")]
pub struct NamespaceFilterError {
    /// The pattern as given.
    pub pattern: String,
    /// Why it is not a glob.
    pub source: globset::Error,
}

/// Namespaces that count: those matching an include pattern (any when there
/// are none) and no exclude pattern. The cluster scope, namespace `""`, is
/// always counted unless an exclude pattern is the empty string: `*`
/// excludes every namespace but not cluster-scoped results.
#[derive(Clone, Debug, Default)]
pub struct NamespaceFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    exclude_cluster: bool,
}

impl NamespaceFilter {
    /// The scope of these glob patterns (`*`, `?`, `[a-z]`, `{a,b}`).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, NamespaceFilterError> {
        let set = |patterns: &[String]| -> Result<Option<GlobSet>, NamespaceFilterError> {
            let patterns: Vec<&String> = patterns.iter().filter(|p| !p.is_empty()).collect();
            if patterns.is_empty() {
                return Ok(None);
            }
            crate::glob::set(&patterns)
                .map(Some)
                .map_err(|e| NamespaceFilterError {
                    pattern: e.pattern,
                    source: e.source,
                })
        };
        Ok(Self {
            include: set(include)?,
            exclude: set(exclude)?,
            exclude_cluster: exclude.iter().any(String::is_empty),
        })
    }

    /// Whether everything counts (no patterns): the default.
    pub fn is_everything(&self) -> bool {
        self.include.is_none() && self.exclude.is_none() && !self.exclude_cluster
    }

    /// Whether what belongs to `namespace` (`""` for cluster-scoped) counts.
    pub fn admits(&self, namespace: &str) -> bool {
        if namespace.is_empty() {
            return !self.exclude_cluster;
        }
        self.include.as_ref().is_none_or(|s| s.is_match(namespace))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(include: &[&str], exclude: &[&str]) -> NamespaceFilter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        NamespaceFilter::new(&own(include), &own(exclude)).expect("valid patterns")
    }

    #[test]
    fn includes_and_excludes_by_glob() {
        let all = scope(&[], &[]);
        assert!(all.is_everything());
        assert!(all.admits("kube-system") && all.admits(""));

        let s = scope(&["team-*", "prod"], &["team-*-sandbox"]);
        assert!(!s.is_everything());
        for ns in ["team-a", "team-payments", "prod", ""] {
            assert!(s.admits(ns), "{ns} counts");
        }
        for ns in ["team-a-sandbox", "production", "kube-system", "default"] {
            assert!(!s.admits(ns), "{ns} does not count");
        }

        let s = scope(&[], &["kube-*", "cert-manager", "?"]);
        assert!(!s.admits("kube-system") && !s.admits("kube-public"));
        assert!(!s.admits("cert-manager") && !s.admits("x"));
        assert!(s.admits("kubeflow") && s.admits("xy") && s.admits(""));

        // `*` leaves the cluster scope; only an empty pattern removes it.
        let s = scope(&[], &["*"]);
        assert!(!s.admits("default") && s.admits(""));
        let s = scope(&[], &["", "kube-system"]);
        assert!(!s.admits("") && !s.admits("kube-system") && s.admits("default"));
        assert!(scope(&["{a,b}-[0-9]"], &[]).admits("b-7"));
    }

    #[test]
    fn refuses_bad_globs() {
        let err = NamespaceFilter::new(&["team-[".into()], &[]).expect_err("bad glob");
        assert!(err.to_string().contains("team-["), "{err}");
    }
}
