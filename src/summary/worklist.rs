//! The work list (`--failing`) and its [`FailingFilter`]: the failing
//! entries the filter selects, and their text table grouped by policy and
//! namespace.

use std::fmt::Write;

use super::SummaryError;
use super::table::shown;
use crate::aggregate::{Aggregate, FailingEntry};

/// Whether the work list is made, and which entries it lists: an entry
/// must match every filter that is not empty, and one of its values.
#[derive(Clone, Debug, Default)]
pub struct FailingFilter {
    /// Make the work list.
    pub failing: bool,
    /// Policy globs (`*` matches `/` too).
    pub policies: Vec<String>,
    /// Namespace globs.
    pub namespaces: Vec<String>,
    /// Controls the entry's result belongs to.
    pub control_names: Vec<String>,
    /// Kinds of the entry's subject (case-insensitive).
    pub kinds: Vec<String>,
    /// List at most this many entries (after sorting).
    pub limit: Option<usize>,
}

/// The work list: the failing entries the filters select, sorted, at most
/// `--limit` of them.
pub fn work_list(
    agg: &Aggregate,
    filter: &FailingFilter,
) -> Result<Vec<FailingEntry>, SummaryError> {
    for name in &filter.control_names {
        if !agg.controls().iter().any(|c| &c.name == name) {
            return Err(SummaryError::UnknownFilterControl(name.clone()));
        }
    }
    let globs = |list: &[String]| -> Result<Option<globset::GlobSet>, SummaryError> {
        if list.is_empty() {
            return Ok(None);
        }
        crate::glob::set(list)
            .map(Some)
            .map_err(|e| SummaryError::Glob {
                glob: e.pattern,
                reason: e.source.kind().to_string(),
            })
    };
    let (policies, namespaces) = (globs(&filter.policies)?, globs(&filter.namespaces)?);
    let selected = |e: &FailingEntry| {
        policies.as_ref().is_none_or(|g| g.is_match(&e.policy))
            && namespaces.as_ref().is_none_or(|g| g.is_match(&e.namespace))
            && (filter.control_names.is_empty()
                || filter.control_names.iter().any(|c| e.controls.contains(c)))
            && (filter.kinds.is_empty()
                || filter.kinds.iter().any(|k| k.eq_ignore_ascii_case(&e.kind)))
    };
    Ok(agg
        .failing()
        .into_iter()
        .filter(|e| selected(e))
        .take(filter.limit.unwrap_or(usize::MAX))
        .cloned()
        .collect())
}

/// A work-list entry's subject as printed: `Kind/name`.
pub(super) fn subject(e: &FailingEntry) -> String {
    match (e.kind.as_str(), e.name.as_str()) {
        ("", "") => "(no subject)".to_owned(),
        (k, n) => format!("{k}/{n}"),
    }
}

/// The work list as a table, grouped by policy, then namespace, with a
/// count per group.
pub(super) fn failing_table(out: &mut String, failing: &[FailingEntry]) {
    let _ = writeln!(out, "\nFAILING ({} entries)", failing.len());
    let mut i = 0;
    while i < failing.len() {
        let policy = &failing[i].policy;
        let in_policy = failing[i..]
            .iter()
            .take_while(|e| &e.policy == policy)
            .count();
        let _ = writeln!(out, "{policy} ({in_policy})");
        let group = &failing[i..i + in_policy];
        let mut j = 0;
        while j < group.len() {
            let ns = &group[j].namespace;
            let in_ns = group[j..].iter().take_while(|e| &e.namespace == ns).count();
            let name = shown(ns, "(cluster)");
            let _ = writeln!(out, "  {name} ({in_ns})");
            for e in &group[j..j + in_ns] {
                let subject = subject(e);
                let rule = shown(&e.rule, "-");
                let controls = if e.controls.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", e.controls.join(", "))
                };
                let _ = writeln!(
                    out,
                    "    {subject}  {rule}  {}{controls}: {}",
                    e.result, e.message
                );
            }
            j += in_ns;
        }
        i += in_policy;
    }
}
