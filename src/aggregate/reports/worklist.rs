//! The work list of `summary --failing`: one entry per (subject, result)
//! whose result is fail, warn or error, with the names and the message that
//! `/metrics` never carries. Only a one-shot run asks for it
//! ([`Aggregate::keep_failing`]); the serving exporter keeps none.
//!
//! Serves no metric family: `summary` reads it.

use serde::Serialize;

use super::tallies::Matcher;
use crate::aggregate::Aggregate;
use crate::aggregate::contribution::Contribution;
use crate::controls::Controls;
use crate::report::{Outcome, Report, SubjectView};

/// Messages are cut to this many characters.
pub const MESSAGE_CHARS: usize = 200;

/// One failing result about one subject. Fields are in sort order: by
/// policy, then namespace, then the rest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FailingEntry {
    /// The policy, as in the `policy` label.
    pub policy: String,
    /// The subject's namespace, else the report's.
    pub namespace: String,
    /// The subject's kind; empty when the report names no subject.
    pub kind: String,
    /// The subject's name; empty when the report names no subject.
    pub name: String,
    /// The rule; empty when absent.
    pub rule: String,
    /// `fail`, `warn` or `error`.
    pub result: &'static str,
    /// The result's message, cut at [`MESSAGE_CHARS`] characters.
    pub message: String,
    /// The controls the result belongs to (its policy, category and rule
    /// match), in configuration order.
    pub controls: Vec<String>,
}

/// The failing entries of one report.
pub(super) fn entries(
    controls: &Controls,
    matcher: &mut Matcher,
    report: &Report,
    namespace: &str,
) -> Box<[FailingEntry]> {
    let mut out = Vec::new();
    let scope = report.scope();
    for r in report.results() {
        if !matches!(r.outcome, Outcome::Fail | Outcome::Warn | Outcome::Error) {
            continue;
        }
        let control_names: Vec<String> = matcher
            .matching(controls, r.policy, r.category, r.rule)
            .iter()
            .filter_map(|&i| controls.get(i as usize))
            .map(|c| c.name.clone())
            .collect();
        let message: String = r.message.chars().take(MESSAGE_CHARS).collect();
        let mut push = |s: SubjectView<'_>| {
            out.push(FailingEntry {
                policy: r.policy.to_owned(),
                namespace: if s.namespace.is_empty() {
                    namespace
                } else {
                    s.namespace
                }
                .to_owned(),
                kind: s.kind.to_owned(),
                name: s.name.to_owned(),
                rule: r.rule.to_owned(),
                result: r.outcome.as_str(),
                message: message.clone(),
                controls: control_names.clone(),
            })
        };
        if r.subject_count() > 0 {
            r.subjects().for_each(&mut push);
        } else {
            push(scope.unwrap_or_default());
        }
    }
    out.into_boxed_slice()
}

impl Aggregate {
    /// Keep each report's failing entries from now on (see
    /// [`Aggregate::failing`]). For one-shot runs: it keeps names and
    /// messages, which the serving exporter never holds.
    pub fn keep_failing(&mut self) {
        self.reports.keep_failing = true;
    }

    /// The failing entries of the reports held, when kept, sorted.
    pub fn failing(&self) -> Vec<&FailingEntry> {
        let mut out: Vec<&FailingEntry> = self
            .objects
            .values()
            .flat_map(|c| match c {
                Contribution::Report(r) => r.failing(),
                _ => &[],
            })
            .collect();
        out.sort();
        out
    }
}
