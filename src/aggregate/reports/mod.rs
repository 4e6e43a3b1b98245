//! The report index: what each report contributes and the tables it adds
//! to. A report's results are counted by the rules of
//! `policyreport_results` into the [`SeriesTable`](super::series::SeriesTable)
//! (and Policy Reporter's, see [`super::policy_reporter`]); its matching
//! results into per-control resource tallies ([`tallies`]); its newest
//! result timestamp per source into the freshness index ([`freshness`]);
//! and, for `summary --failing` only, its failing entries ([`worklist`]).
//!
//! Serves `policyreport_results` here, `policyreport_control_resources` in
//! [`tallies`], and `policyreport_reports`, `policyreport_reports_stale`
//! and `policyreport_report_oldest_refresh_timestamp_seconds` in
//! [`freshness`].

pub(super) mod freshness;
pub(super) mod tallies;
pub(super) mod worklist;

use std::collections::BTreeMap;

use tracing::warn;

use super::contribution::Contribution;
use super::labels::{KIND, LINEAR, LabelOptions, NAMESPACE, RESULT, Row, Rows};
use super::policy_reporter;
use super::series::{SLOTS, SeriesId, SeriesTable};
use super::{Aggregate, Map};
use crate::report::{Outcome, Report};

impl Aggregate {
    /// Decode a report into its contribution, series references taken.
    pub(super) fn report_contribution(&mut self, report: &Report, namespace: &str) -> Contribution {
        let rows = count_rows(&self.series, report, namespace, self.labels);
        let mut series: Vec<(SeriesId, u32)> = rows
            .into_iter()
            .map(|(hash, labels, n)| (self.series.acquire_hashed(hash, &labels), n))
            .collect();
        let policy_reporter = series.len() as u32;
        policy_reporter::acquire(
            self.policy_reporter.as_mut(),
            report,
            namespace,
            &mut series,
        );
        let mut sources = newest_per_source(report);
        if sources.len() > usize::from(u16::MAX) {
            warn!(
                namespace,
                name = report.metadata.name.as_deref().unwrap_or(""),
                sources = sources.len(),
                "report freshness counts only the first 65535 sources of this report"
            );
            sources.truncate(usize::from(u16::MAX));
        }
        let fresh = sources.len() as u16;
        let ns = self.series.intern(namespace);
        for (source, newest) in sources {
            let source = self.series.intern(source);
            let id = self.freshness.acquire(ns, source);
            series.push((id, freshness::stamp(newest)));
        }
        let controls = tallies::deltas(
            &self.controls,
            &mut self.matcher,
            report,
            namespace,
            &mut self.series,
        );
        let failing = if self.keep_failing {
            worklist::entries(&self.controls, &mut self.matcher, report, namespace)
        } else {
            Box::new([])
        };
        Contribution::Report {
            series: series.into_boxed_slice(),
            controls,
            failing,
            policy_reporter,
            fresh,
        }
    }

    /// Add a report's counts (`visible`), or take them away: its series,
    /// Policy Reporter's, its freshness pairs and its control tallies.
    pub(super) fn count_report(&mut self, c: &Contribution, visible: bool) {
        let (series, compat, fresh) = c.parts();
        for (s, n) in series {
            if visible {
                self.series.add(*s, *n);
            } else {
                self.series.sub(*s, *n);
            }
        }
        if let Some(table) = &mut self.policy_reporter {
            for (s, n) in compat {
                if visible {
                    table.add(*s, *n);
                } else {
                    table.sub(*s, *n);
                }
            }
        }
        for (id, stamp) in fresh {
            if visible {
                self.freshness.add(*id, *stamp);
            } else {
                self.freshness.sub(*id, *stamp);
            }
        }
        if let Contribution::Report { controls, .. } = c {
            let sign = if visible { 1 } else { -1 };
            for d in controls.iter() {
                self.control_state[d.control as usize].apply(d, sign);
            }
        }
    }

    /// Visit every `policyreport_results` series: the values of the labels
    /// in use (see [`LabelOptions::names`]) and the count.
    pub fn for_each_result(&self, mut f: impl FnMut(&[&str], u64)) {
        let labels = self.labels;
        let mut buf: Vec<&str> = Vec::with_capacity(SLOTS);
        self.series.for_each(|values, n| {
            buf.clear();
            buf.extend(
                values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| labels.enabled(*i))
                    .map(|(_, v)| *v),
            );
            f(&buf, n);
        });
    }

    /// Result counts per namespace, indexed in [`Outcome::ALL`] order:
    /// pass, fail, warn, error, skip.
    pub fn results_by_namespace(&self) -> BTreeMap<String, [u64; 5]> {
        let mut out: BTreeMap<String, [u64; 5]> = BTreeMap::new();
        self.series.for_each(|values, n| {
            let i = Outcome::ALL
                .iter()
                .position(|o| o.as_str() == values[RESULT])
                .unwrap_or(0);
            out.entry(values[NAMESPACE].to_owned()).or_default()[i] += n;
        });
        out
    }

    /// All `policyreport_results` series as owned label values, sorted.
    #[cfg(test)]
    pub fn results_snapshot(&self) -> BTreeMap<Vec<String>, u64> {
        let mut out = BTreeMap::new();
        self.for_each_result(|labels, n| {
            out.insert(labels.iter().map(|s| s.to_string()).collect(), n);
        });
        out
    }

    /// The reports currently held that decoded (invalid ones excluded).
    pub fn valid_reports(&self) -> usize {
        self.origins
            .values()
            .flat_map(|m| m.values())
            .filter(|c| matches!(c, Contribution::Report { .. }))
            .count()
    }

    /// Number of live series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

/// Apply the counting rules to one report: each result counts once per
/// listed subject, or once when it lists none. Rows come with their label
/// hash, for [`SeriesTable::acquire_hashed`].
fn count_rows<'a>(
    series: &SeriesTable,
    report: &'a Report,
    namespace: &'a str,
    opts: LabelOptions,
) -> Vec<Row<'a>> {
    let mut rows = Rows::new(series);
    let top_source = report.source();
    let scope_kind = report.scope().map_or("", |s| s.kind);
    for r in report.results() {
        let mut labels = [
            namespace,
            r.policy,
            r.category,
            r.severity,
            r.source.or(top_source).unwrap_or(""),
            r.outcome.as_str(),
            if opts.rule { r.rule } else { "" },
            "",
        ];
        let subjects = r.subject_count();
        if subjects == 0 {
            if opts.kind {
                labels[KIND] = scope_kind;
            }
            rows.add(labels, 1);
        } else if !opts.kind {
            rows.add(labels, subjects as u32);
        } else {
            for s in r.subjects() {
                labels[KIND] = s.kind;
                rows.add(labels, 1);
            }
        }
    }
    rows.rows
}

/// Each source a report has results from (the result's `source`, else the
/// report's, else empty, as in `policyreport_results`), once, with the
/// newest timestamp among that source's results.
fn newest_per_source(report: &Report) -> Vec<(&str, Option<i64>)> {
    let top_source = report.source();
    // Reports hold one source, rarely a few: a list, searched linearly
    // until a crafted report makes it long.
    let mut out: Vec<(&str, Option<i64>)> = Vec::with_capacity(1);
    let mut index: Map<&str, usize> = Map::default();
    for r in report.results() {
        let source = r.source.or(top_source).unwrap_or("");
        let found = if index.is_empty() {
            out.iter().position(|(s, _)| *s == source)
        } else {
            index.get(source).copied()
        };
        match found {
            Some(i) => out[i].1 = out[i].1.max(r.timestamp),
            None => {
                out.push((source, r.timestamp));
                if out.len() > LINEAR {
                    if index.is_empty() {
                        index.extend(out.iter().enumerate().map(|(i, (s, _))| (*s, i)));
                    } else {
                        index.insert(source, out.len() - 1);
                    }
                }
            }
        }
    }
    out
}
