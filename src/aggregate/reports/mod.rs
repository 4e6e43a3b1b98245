//! The report index: what each report contributes ([`ReportPart`]) and
//! the tables it adds to ([`Reports`]). A report's results are counted by
//! the rules of `policyreport_results` into the [`SeriesTable`] (and
//! Policy Reporter's, see [`super::policy_reporter`]); its matching
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
use std::hash::BuildHasher;
use std::sync::Arc;

use tracing::warn;

use super::contribution::Contribution;
use super::labels::{ExtraLabel, KIND, LabelOptions, NAMESPACE, RESULT, Row, Rows};
use super::policy_reporter::PolicyReporterTable;
use super::series::{SLOTS, SeriesId, SeriesTable, Strings};
use super::short_list::ShortList;
use super::{Aggregate, Config};
use crate::controls::Controls;
use crate::exposition::{Family, Type, always};
use crate::report::{Outcome, Report};
use freshness::{Clock, FreshId, FreshnessTable, Stamp};
use tallies::{ControlDelta, ControlState, Matcher};
use worklist::FailingEntry;

/// The report index's state: the tables reports add to.
#[derive(Debug)]
pub(super) struct Reports {
    pub(super) labels: LabelOptions,
    pub(super) controls: Arc<Controls>,
    /// `policyreport_results`, its labels in the aggregate's shared
    /// [`Strings`].
    series: SeriesTable,
    /// Policy Reporter's `policy_report_result` and
    /// `cluster_policy_report_result`, with `--compat policy-reporter`:
    /// slots as in [`LABEL_NAMES`](super::LABEL_NAMES), with Policy
    /// Reporter's values.
    pub(super) policy_reporter: Option<PolicyReporterTable>,
    /// Per control, its resource tallies (see [`tallies`]).
    pub(super) control_state: Vec<ControlState>,
    matcher: Matcher,
    /// Whether reports keep their failing entries (`summary --failing`).
    pub(super) keep_failing: bool,
    /// Reports per (namespace, source) and their refresh times.
    pub(super) freshness: FreshnessTable,
    pub(super) clock: Clock,
    /// `--stale-after` in seconds; `None` when off.
    pub(super) stale_after: Option<i64>,
    /// The clock's reading at the last [`Aggregate::tick`]: stale counts
    /// are as of then, so a rendering depends on the state alone.
    pub(super) now: i64,
}

/// What one report contributes: its series counts and its per-control
/// resource tallies; its failing entries only when kept (`summary
/// --failing`), else empty. With `--compat policy-reporter`, `series` goes
/// on with its counts in the Policy Reporter table from index
/// `policy_reporter`; its last `fresh` entries are one (freshness entry,
/// refresh time) pair per source the report has results from. (One list,
/// not three, and a 16-bit count keep a contribution at 56 bytes: see
/// [`ReportPart::parts`].)
#[derive(Debug)]
pub(super) struct ReportPart {
    series: Box<[(SeriesId, u32)]>,
    controls: Box<[ControlDelta]>,
    pub(super) failing: Box<[FailingEntry]>,
    policy_reporter: u32,
    fresh: u16,
}

/// A report's `series` list split into its own series, Policy Reporter's,
/// and its freshness pairs.
type Parts<'a> = (
    &'a [(SeriesId, u32)],
    &'a [(SeriesId, u32)],
    &'a [(FreshId, Stamp)],
);

impl ReportPart {
    fn parts(&self) -> Parts<'_> {
        let (rest, fresh) = self
            .series
            .split_at(self.series.len() - usize::from(self.fresh));
        let (own, compat) = rest.split_at(self.policy_reporter as usize);
        (own, compat, fresh)
    }
}

impl Reports {
    /// Empty tables for this configuration.
    pub(super) fn new(config: &Config) -> Self {
        Self {
            labels: config.outputs.labels,
            controls: Arc::clone(&config.controls),
            series: SeriesTable::default(),
            policy_reporter: config
                .outputs
                .policy_reporter
                .then(PolicyReporterTable::default),
            control_state: config
                .controls
                .iter()
                .map(|_| ControlState::default())
                .collect(),
            matcher: Matcher::default(),
            keep_failing: false,
            freshness: FreshnessTable::default(),
            clock: config.clock.clone(),
            stale_after: freshness::stale_seconds(config.stale_after),
            now: config.clock.now(),
        }
    }

    /// Decode a report into its contribution, series references taken and
    /// its strings interned in `strings`.
    pub(super) fn contribution(
        &mut self,
        report: &Report,
        namespace: &str,
        strings: &mut Strings,
    ) -> ReportPart {
        let rows = count_rows(&self.series, report, namespace, self.labels);
        let mut series: Vec<(SeriesId, u32)> = rows
            .into_iter()
            .map(|(hash, labels, n)| (self.series.acquire_hashed(strings, hash, &labels), n))
            .collect();
        let policy_reporter = series.len() as u32;
        if let Some(table) = &mut self.policy_reporter {
            table.acquire(report, namespace, &mut series);
        }
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
        let ns = strings.intern(namespace);
        for (source, newest) in sources {
            let source = strings.intern(source);
            let id = self.freshness.acquire(ns, source);
            series.push((id, freshness::stamp(newest)));
        }
        let controls = tallies::deltas(
            &self.controls,
            &mut self.matcher,
            report,
            namespace,
            strings,
        );
        let failing = if self.keep_failing {
            worklist::entries(&self.controls, &mut self.matcher, report, namespace)
        } else {
            Box::new([])
        };
        ReportPart {
            series: series.into_boxed_slice(),
            controls,
            failing,
            policy_reporter,
            fresh,
        }
    }

    /// Add a report's counts (`visible`), or take them away: its series,
    /// Policy Reporter's, its freshness pairs and its control tallies.
    pub(super) fn count(&mut self, c: &ReportPart, visible: bool) {
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
        let sign = if visible { 1 } else { -1 };
        for d in c.controls.iter() {
            self.control_state[d.control as usize].apply(d, sign);
        }
    }

    /// Drop the references of a contribution that is not visible.
    pub(super) fn release(&mut self, strings: &Strings, c: ReportPart) {
        let (series, compat, fresh) = c.parts();
        for (s, _) in series {
            self.series.release(strings, *s);
        }
        if let Some(table) = &mut self.policy_reporter {
            for (s, _) in compat {
                table.release(*s);
            }
        }
        for (id, _) in fresh {
            self.freshness.release(*id);
        }
    }

    /// Visit every `policyreport_results` series with a non-zero count: the
    /// values of all label slots, and the count.
    pub(super) fn for_each_series<'s>(
        &self,
        strings: &'s Strings,
        f: impl FnMut([&'s str; SLOTS], u64),
    ) {
        self.series.for_each(strings, f);
    }
}

impl Aggregate {
    /// Visit every `policyreport_results` series: the values of the labels
    /// in use (see [`LabelOptions::names`]) and the count.
    pub fn for_each_result(&self, mut f: impl FnMut(&[&str], u64)) {
        let labels = self.reports.labels;
        let mut buf: Vec<&str> = Vec::with_capacity(SLOTS);
        self.reports.for_each_series(&self.strings, |values, n| {
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
        self.reports.for_each_series(&self.strings, |values, n| {
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
        self.objects
            .values()
            .filter(|c| matches!(c, Contribution::Report(_)))
            .count()
    }

    /// Number of live series.
    pub fn series_count(&self) -> usize {
        self.reports.series.len()
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
    let scope_kind = report.scope().map_or("", |s| s.kind);
    let by_kind = opts.has(ExtraLabel::Kind);
    for r in report.results() {
        let mut labels = opts.values(namespace, &r);
        let subjects = r.subject_count();
        if subjects == 0 {
            if by_kind {
                labels[KIND] = scope_kind;
            }
            rows.add(labels, 1);
        } else if !by_kind {
            rows.add(labels, subjects as u32);
        } else {
            for s in r.subjects() {
                labels[KIND] = s.kind;
                rows.add(labels, 1);
            }
        }
    }
    rows.into_rows()
}

/// Each source a report has results from
/// ([`source_or_report`](crate::report::ResultView::source_or_report), as in `policyreport_results`), once,
/// with the newest timestamp among that source's results.
fn newest_per_source(report: &Report) -> Vec<(&str, Option<i64>)> {
    // Reports hold one source, rarely a few.
    let mut out: ShortList<(&str, Option<i64>)> = ShortList::with_capacity(1);
    let hasher = foldhash::fast::RandomState::default();
    for r in report.results() {
        let source = r.source_or_report();
        match out.find(|| hasher.hash_one(source), |(s, _)| *s == source) {
            Some(i) => {
                let newest = &mut out.get_mut(i).1;
                *newest = (*newest).max(r.timestamp);
            }
            None => {
                out.push((source, r.timestamp), |(s, _)| hasher.hash_one(*s));
            }
        }
    }
    out.into_vec()
}

/// The families this index serves, in serving order.
pub(super) const FAMILIES: &[Family<Aggregate>] = &[Family {
    name: "policyreport_results",
    help: "Number of policy report results currently present, per subject.",
    kind: Type::Gauge,
    when: always,
    samples: |a, s| {
        let names = a.labels().names();
        a.for_each_result(|values, n| s.write(names.iter().copied().zip(values.iter().copied()), n))
    },
}];
