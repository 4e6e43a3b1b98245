//! Policy Reporter compatibility (`--compat policy-reporter`): its
//! simple-mode counting and the table it fills ([`PolicyReporterTable`],
//! kept by the report index), which reports' contributions add to like
//! `policyreport_results`.
//!
//! Serves `policy_report_result` and `cluster_policy_report_result`.

use super::Aggregate;
use super::labels::{
    CATEGORY, NAMESPACE, POLICY, RESULT, SEVERITY, SLOTS, SOURCE, SampleRow, SampleRows,
};
use super::series::{SeriesCount, SeriesId, SeriesTable, Strings};
use crate::exposition::{Family, Samples, Type};
use crate::report::Report;

/// The labels of one Policy Reporter simple-mode series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyReporterLabels<'a> {
    /// The report's namespace; empty for cluster-scoped reports.
    pub namespace: &'a str,
    /// The result's policy.
    pub policy: &'a str,
    /// The result: pass, fail, warn, error or skip.
    pub status: &'a str,
    /// The result's severity, empty when absent.
    pub severity: &'a str,
    /// The result's category, `Other` when absent or empty.
    pub category: &'a str,
    /// The result's source, else the report's.
    pub source: &'a str,
}

/// Policy Reporter's category for results that have none
/// (kyverno/policy-reporter `pkg/report/result/reconditioner.go`).
pub const POLICY_REPORTER_NO_CATEGORY: &str = "Other";

/// Policy Reporter's simple-mode counting (kyverno/policy-reporter
/// `pkg/listener/metrics/result_custom.go`, with its reconditioner): each
/// result counts once, whatever its subjects; the category is `Other` when
/// empty; the source is the result's, else the report's, which is the
/// top-level `source`, else the first result's (`GetSource()` of its report
/// types). Empty strings count as absent, as in Go.
fn policy_reporter_rows<'a>(
    table: &SeriesTable,
    report: &'a Report,
    namespace: &'a str,
) -> Vec<SampleRow<'a>> {
    let nonempty = |s: Option<&'a str>| s.filter(|s| !s.is_empty());
    let report_source = nonempty(report.source())
        .or_else(|| report.results().next().and_then(|r| r.source))
        .unwrap_or("");
    let mut rows = SampleRows::new(table);
    for r in report.results() {
        let category = if r.category.is_empty() {
            POLICY_REPORTER_NO_CATEGORY
        } else {
            r.category
        };
        let mut labels = [""; SLOTS];
        labels[NAMESPACE] = namespace;
        labels[POLICY] = r.policy;
        labels[CATEGORY] = category;
        labels[SEVERITY] = r.severity;
        labels[SOURCE] = nonempty(r.source).unwrap_or(report_source);
        labels[RESULT] = r.outcome.as_str();
        rows.add(labels, 1);
    }
    rows.into_rows()
}

/// Policy Reporter's series. Their label values are interned apart from
/// the aggregate's shared [`Strings`]: its values (`Other`, the first
/// result's source) would otherwise take symbols among the shared ones, and
/// `policyreport_control_resources` orders its samples by those symbols, so
/// turning `--compat policy-reporter` on would reorder it.
#[derive(Debug, Default)]
pub(super) struct PolicyReporterTable {
    strings: Strings,
    series: SeriesTable,
}

impl PolicyReporterTable {
    /// A report's Policy Reporter series and counts, their references
    /// taken.
    pub(super) fn acquire(&mut self, report: &Report, namespace: &str) -> Box<[SeriesCount]> {
        let rows = policy_reporter_rows(&self.series, report, namespace);
        rows.into_iter()
            .map(|(hash, labels, count)| SeriesCount {
                series: self.series.acquire_hashed(&mut self.strings, hash, &labels),
                count,
            })
            .collect()
    }

    /// Add to a series' value.
    pub(super) fn add(&mut self, id: SeriesId, n: u32) {
        self.series.add(id, n);
    }

    /// Subtract from a series' value.
    pub(super) fn sub(&mut self, id: SeriesId, n: u32) {
        self.series.sub(id, n);
    }

    /// Drop a reference taken by [`acquire`](Self::acquire).
    pub(super) fn release(&mut self, id: SeriesId) {
        self.series.release(&self.strings, id);
    }

    /// Number of live series.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.series.len()
    }
}

impl Aggregate {
    /// Whether Policy Reporter's families are kept
    /// (`--compat policy-reporter`).
    pub fn policy_reporter_enabled(&self) -> bool {
        self.reports.policy_reporter.is_some()
    }

    /// Visit Policy Reporter's simple-mode series (none unless enabled):
    /// the report's namespace (empty for cluster-scoped reports), policy,
    /// status, severity, category and source, and the number of results.
    pub fn for_each_policy_reporter_result(
        &self,
        mut f: impl FnMut(PolicyReporterLabels<'_>, u64),
    ) {
        let Some(table) = &self.reports.policy_reporter else {
            return;
        };
        table.series.for_each(&table.strings, |v, n| {
            let labels = PolicyReporterLabels {
                namespace: v[NAMESPACE],
                policy: v[POLICY],
                status: v[RESULT],
                severity: v[SEVERITY],
                category: v[CATEGORY],
                source: v[SOURCE],
            };
            f(labels, n)
        });
    }
}

/// The families this index serves, in serving order.
pub(super) const FAMILIES: &[Family<Aggregate>] = &[
    // Policy Reporter's names, help and label order (`--compat
    // policy-reporter`), for the rules and dashboards written for it.
    Family {
        name: "policy_report_result",
        help: "Gauge of Results by Policy",
        kind: Type::Gauge,
        when: Aggregate::policy_reporter_enabled,
        samples: |a, s| samples(a, s, true),
    },
    Family {
        name: "cluster_policy_report_result",
        help: "Gauge of Results by Policy",
        kind: Type::Gauge,
        when: Aggregate::policy_reporter_enabled,
        samples: |a, s| samples(a, s, false),
    },
];

/// The samples of namespaced reports' results, or of cluster-scoped ones'
/// (which have no `namespace` label).
fn samples(a: &Aggregate, s: &mut Samples<'_>, namespaced: bool) {
    a.for_each_policy_reporter_result(|l, n| {
        if l.namespace.is_empty() == namespaced {
            return;
        }
        let namespace = namespaced.then_some(("namespace", l.namespace));
        let labels = namespace.into_iter().chain([
            ("policy", l.policy),
            ("status", l.status),
            ("severity", l.severity),
            ("category", l.category),
            ("source", l.source),
        ]);
        s.write(labels, n)
    })
}
