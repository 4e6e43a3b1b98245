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
use super::labels::{ExtraLabel, KIND, LabelOptions, NAMESPACE, RESULT, SampleRow, SampleRows};
use super::policy_reporter::PolicyReporterTable;
use super::series::{SLOTS, SeriesCount, SeriesTable, Strings};
use super::short_list::ShortList;
use super::{Aggregate, Config};
use crate::controls::Controls;
use crate::exposition::{Family, Type, always};
use crate::report::{Outcome, Report};
use freshness::{Clock, FreshnessTable, Refresh, Refreshes};
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

/// What one report contributes, each part a list of its own type: its
/// `policyreport_results` counts, its per-control resource tallies, its
/// refresh time per source, and what only some runs keep ([`Optional`]).
///
/// 56 bytes, as a contribution (`a_contribution_stays_56_bytes`): three
/// 16-byte lists and a pointer. A part of every report goes inline and
/// costs its list's 16 bytes (72 with one more: the size test fails first);
/// a part only some runs keep goes in [`Optional`], allocated only when one
/// of its lists is not empty. Measured by `bench/tests/heap.rs` at 10k
/// reports: 523.3 bytes of heap a report with the default flags and 746.6
/// with `--compat policy-reporter`, against 532.2 and 693.2 for one heap
/// list of 8-byte pairs holding the counts, Policy Reporter's and the
/// refreshes, split by offsets. The single refresh of most reports is
/// inline rather than 8 bytes of that chunk; in that mode each report
/// allocates an [`Optional`] (a 48-byte glibc chunk) and its Policy
/// Reporter counts in a chunk of their own.
#[derive(Debug)]
pub(super) struct ReportPart {
    /// Its `policyreport_results` series and counts.
    results: Box<[SeriesCount]>,
    /// Its tallies, per control and resource.
    controls: Box<[ControlDelta]>,
    /// Its refresh time per source it has results from.
    refreshes: Refreshes,
    /// `None` when every list of it would be empty.
    optional: Option<Box<Optional>>,
}

/// What a report contributes only in some runs.
#[derive(Debug)]
struct Optional {
    /// Policy Reporter's series and counts (`--compat policy-reporter`).
    policy_reporter: Box<[SeriesCount]>,
    /// Its failing entries (`summary --failing`).
    failing: Box<[FailingEntry]>,
}

impl ReportPart {
    /// Its Policy Reporter counts; empty unless `--compat policy-reporter`.
    fn policy_reporter(&self) -> &[SeriesCount] {
        self.optional.as_ref().map_or(&[], |o| &o.policy_reporter)
    }

    /// Its failing entries; empty unless kept (`summary --failing`).
    pub(super) fn failing(&self) -> &[FailingEntry] {
        self.optional.as_ref().map_or(&[], |o| &o.failing)
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
        let results = rows
            .into_iter()
            .map(|(hash, labels, count)| SeriesCount {
                series: self.series.acquire_hashed(strings, hash, &labels),
                count,
            })
            .collect();
        let policy_reporter = match &mut self.policy_reporter {
            Some(table) => table.acquire(report, namespace),
            None => Box::new([]),
        };
        let mut sources = newest_per_source(report);
        // One freshness entry per source: a crafted report with sources by
        // the million would otherwise add as many.
        if sources.len() > usize::from(u16::MAX) {
            warn!(
                namespace,
                name = report.metadata.name.as_deref().unwrap_or(""),
                sources = sources.len(),
                "report freshness counts only the first 65535 sources of this report"
            );
            sources.truncate(usize::from(u16::MAX));
        }
        let ns = strings.intern(namespace);
        let refreshes = sources
            .into_iter()
            .map(|(source, newest)| Refresh {
                entry: self.freshness.acquire(ns, strings.intern(source)),
                stamp: freshness::stamp(newest),
            })
            .collect();
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
        let optional = (!policy_reporter.is_empty() || !failing.is_empty()).then(|| {
            Box::new(Optional {
                policy_reporter,
                failing,
            })
        });
        ReportPart {
            results,
            controls,
            refreshes: Refreshes::new(refreshes),
            optional,
        }
    }

    /// Add a report's counts: its series, Policy Reporter's, its refreshes
    /// and its control tallies.
    pub(super) fn add(&mut self, c: &ReportPart) {
        self.count(c, true);
    }

    /// Take a report's counts away, as [`add`](Self::add) added them.
    pub(super) fn remove(&mut self, c: &ReportPart) {
        self.count(c, false);
    }

    /// Add a report's counts (`visible`), or take them away.
    fn count(&mut self, c: &ReportPart, visible: bool) {
        for s in &c.results {
            if visible {
                self.series.add(s.series, s.count);
            } else {
                self.series.sub(s.series, s.count);
            }
        }
        if let Some(table) = &mut self.policy_reporter {
            for s in c.policy_reporter() {
                if visible {
                    table.add(s.series, s.count);
                } else {
                    table.sub(s.series, s.count);
                }
            }
        }
        for r in c.refreshes.as_slice() {
            if visible {
                self.freshness.add(r.entry, r.stamp);
            } else {
                self.freshness.sub(r.entry, r.stamp);
            }
        }
        let sign = if visible { 1 } else { -1 };
        for d in c.controls.iter() {
            self.control_state[d.control as usize].apply(d, sign);
        }
    }

    /// Drop the references of a contribution that is not visible.
    pub(super) fn release(&mut self, strings: &Strings, c: ReportPart) {
        for s in &c.results {
            self.series.release(strings, s.series);
        }
        if let Some(table) = &mut self.policy_reporter {
            for s in c.policy_reporter() {
                table.release(s.series);
            }
        }
        for r in c.refreshes.as_slice() {
            self.freshness.release(r.entry);
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
/// listed subject, or once when it lists none. SampleRows come with their label
/// hash, for [`SeriesTable::acquire_hashed`].
fn count_rows<'a>(
    series: &SeriesTable,
    report: &'a Report,
    namespace: &'a str,
    opts: LabelOptions,
) -> Vec<SampleRow<'a>> {
    let mut rows = SampleRows::new(series);
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
