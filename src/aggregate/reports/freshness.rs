//! Report freshness: per (namespace, source), the reports with results from
//! that source and, for each, the newest `timestamp` among those results
//! (its refresh time: Kyverno's background scan rewrites every result's
//! timestamp on each rescan).
//!
//! A report contributes one [`Refresh`] (entry and refresh time) per source
//! it has results from ([`Refreshes`]). The index keeps, per (namespace, source), the number of
//! reports and an ordered multiset of their refresh times, so that stale
//! counts follow the clock without rescanning any report.
//!
//! Serves `policyreport_reports`, `policyreport_reports_stale` and
//! `policyreport_report_oldest_refresh_timestamp_seconds`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use string_interner::DefaultSymbol as Sym;

use crate::aggregate::Aggregate;
use crate::aggregate::Map;
use crate::exposition::{Family, Type, always};

/// Index of a (namespace, source) entry.
pub type FreshId = u32;

/// A refresh time as the index stores it: whole seconds since the Unix
/// epoch, or [`NO_STAMP`] for a report whose results carry no timestamp.
/// 32 bits reach the year 2106 and keep a contribution's pair 8 bytes.
pub type Stamp = u32;

/// The stamp of a report without timestamps: it counts in
/// `policyreport_reports` only.
pub const NO_STAMP: Stamp = 0;

/// The stamp for a newest result timestamp: [`NO_STAMP`] when there is none
/// or it is not after the epoch (an unset timestamp reads 0); times after
/// 2106 are kept as the last representable second, which is never stale.
pub fn stamp(newest: Option<i64>) -> Stamp {
    match newest {
        Some(s) if s > 0 => Stamp::try_from(s).unwrap_or(Stamp::MAX),
        _ => NO_STAMP,
    }
}

/// A report's refresh time in one (namespace, source) entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refresh {
    /// The entry.
    pub entry: FreshId,
    /// The report's newest result timestamp from that source.
    pub stamp: Stamp,
}

/// A report's refreshes, one per source it has results from. Most reports
/// have one, kept inline; none or several take a box (none allocates
/// nothing). 16 bytes either way: a box's pointer is never null, which
/// tells the two apart.
#[derive(Debug)]
pub enum Refreshes {
    /// The one source of most reports.
    One(Refresh),
    /// No source, or several.
    Many(Box<[Refresh]>),
}

impl Refreshes {
    /// These refreshes, kept in the form that fits.
    pub fn new(refreshes: Vec<Refresh>) -> Self {
        match refreshes[..] {
            [one] => Self::One(one),
            _ => Self::Many(refreshes.into_boxed_slice()),
        }
    }

    /// The refreshes, in order.
    pub fn as_slice(&self) -> &[Refresh] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }
}

/// Seconds since the Unix epoch: the system clock, or a clock tests set.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that reads `start` until [`Clock::set`] moves it.
    pub fn manual(start: i64) -> Self {
        Self(Some(Arc::new(AtomicI64::new(start))))
    }

    /// Move a manual clock (and every clone of it); no effect on the system
    /// clock.
    pub fn set(&self, now: i64) {
        if let Some(t) = &self.0 {
            t.store(now, Ordering::Relaxed);
        }
    }

    /// Now, in whole seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(t) => write!(f, "Clock::manual({})", t.load(Ordering::Relaxed)),
            None => f.write_str("Clock::system()"),
        }
    }
}

/// One (namespace, source) entry.
#[derive(Debug)]
struct Entry {
    namespace: Sym,
    source: Sym,
    /// References from contributions, visible or pending.
    refs: u32,
    /// Visible reports.
    reports: u32,
    /// The visible reports' refresh times, as an ordered multiset (time →
    /// reports): the stale count is a range sum below the cutoff and the
    /// oldest refresh the first key, with no per-render scan of reports.
    times: BTreeMap<Stamp, u32>,
}

/// What one (namespace, source) entry shows at a cutoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreshnessRow<'a> {
    /// The reports' namespace; empty for cluster-scoped reports.
    pub namespace: &'a str,
    /// The results' source.
    pub source: &'a str,
    /// Reports with results from this source.
    pub reports: u64,
    /// Of those, the ones refreshed before the cutoff (`None` when staleness
    /// is off).
    pub stale: Option<u64>,
    /// The oldest refresh time among them (`None` when none has a
    /// timestamp).
    pub oldest: Option<i64>,
}

/// The freshness index.
#[derive(Debug, Default)]
pub struct FreshnessTable {
    index: Map<(Sym, Sym), FreshId>,
    entries: Vec<Entry>,
    free: Vec<FreshId>,
}

impl FreshnessTable {
    /// Find or create the entry of (namespace, source) and take a reference.
    pub fn acquire(&mut self, namespace: Sym, source: Sym) -> FreshId {
        if let Some(&id) = self.index.get(&(namespace, source)) {
            self.entries[id as usize].refs += 1;
            return id;
        }
        let entry = Entry {
            namespace,
            source,
            refs: 1,
            reports: 0,
            times: BTreeMap::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as FreshId
            }
        };
        self.index.insert((namespace, source), id);
        id
    }

    /// Drop a reference taken by [`acquire`](Self::acquire).
    pub fn release(&mut self, id: FreshId) {
        let e = &mut self.entries[id as usize];
        e.refs -= 1;
        if e.refs == 0 {
            debug_assert_eq!(e.reports, 0, "released freshness entry still counts");
            self.index.remove(&(e.namespace, e.source));
            e.times = BTreeMap::new();
            self.free.push(id);
        }
    }

    /// Count a visible report.
    pub fn add(&mut self, id: FreshId, stamp: Stamp) {
        let e = &mut self.entries[id as usize];
        e.reports += 1;
        if stamp != NO_STAMP {
            *e.times.entry(stamp).or_default() += 1;
        }
    }

    /// Stop counting a visible report.
    pub fn sub(&mut self, id: FreshId, stamp: Stamp) {
        let e = &mut self.entries[id as usize];
        debug_assert!(e.reports > 0, "freshness underflow");
        e.reports = e.reports.saturating_sub(1);
        if stamp == NO_STAMP {
            return;
        }
        if let Some(n) = e.times.get_mut(&stamp) {
            *n -= 1;
            if *n == 0 {
                e.times.remove(&stamp);
            }
        }
    }

    /// Whether some report's refresh time lies in `[from, to)`, that is,
    /// whether moving the cutoff between them changes a stale count.
    pub fn any_between(&self, from: i64, to: i64) -> bool {
        let (Some(lo), hi) = (clamp(from), clamp(to)) else {
            return false;
        };
        let hi = hi.unwrap_or(Stamp::MAX);
        lo < hi
            && self
                .entries
                .iter()
                .any(|e| e.reports > 0 && e.times.range(lo..hi).next().is_some())
    }

    /// Visit every (namespace, source) with reports, in no particular
    /// order, with its reports stale at `cutoff` (refreshed before it).
    pub fn for_each<'s>(
        &self,
        cutoff: Option<i64>,
        resolve: impl Fn(Sym) -> &'s str,
        mut f: impl FnMut(FreshnessRow<'s>),
    ) {
        for e in self.entries.iter().filter(|e| e.reports > 0) {
            f(FreshnessRow {
                namespace: resolve(e.namespace),
                source: resolve(e.source),
                reports: u64::from(e.reports),
                stale: cutoff.map(|c| stale_below(&e.times, c)),
                oldest: e.times.keys().next().map(|t| i64::from(*t)),
            });
        }
    }
}

/// A cutoff as a stamp bound: `None` when it lies past every stamp. A
/// cutoff at or before the epoch has no stamp below it.
fn clamp(cutoff: i64) -> Option<Stamp> {
    Stamp::try_from(cutoff.max(0)).ok()
}

/// Reports in `times` refreshed before `cutoff`.
fn stale_below(times: &BTreeMap<Stamp, u32>, cutoff: i64) -> u64 {
    let counts = match clamp(cutoff) {
        Some(c) => times.range(..c),
        None => times.range(..),
    };
    counts.map(|(_, n)| u64::from(*n)).sum()
}

/// `--stale-after`'s default: two of Kyverno's background scan intervals
/// (`--backgroundScanInterval`, 1h by default) plus an hour of margin. The
/// flag shows it as `cli` renders it.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3 * 3600);

/// `--stale-after` as a whole number of seconds, `None` when off (zero).
pub fn stale_seconds(stale_after: Duration) -> Option<i64> {
    (!stale_after.is_zero()).then(|| i64::try_from(stale_after.as_secs()).unwrap_or(i64::MAX))
}

impl Aggregate {
    /// Read the clock. Stale counts are as of the latest tick; when the
    /// new reading makes any of them change, this is a change of the state
    /// (the generation moves), so the next publish renders it. Costs a range
    /// lookup per (namespace, source), never a scan of the reports.
    pub fn tick(&mut self) {
        let now = self.reports.clock.now();
        if let Some(after) = self.reports.stale_after {
            let (a, b) = (self.reports.now.min(now), self.reports.now.max(now));
            let between = |t: i64| t.saturating_sub(after);
            if self.reports.freshness.any_between(between(a), between(b)) {
                self.generation += 1;
            }
        }
        self.reports.now = now;
    }

    /// The clock's reading at the latest [`Aggregate::tick`] (or at
    /// creation), in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.reports.now
    }

    /// `--stale-after` in seconds; `None` when staleness is off.
    pub fn stale_after(&self) -> Option<i64> {
        self.reports.stale_after
    }

    /// How often [`run()`](crate::aggregate::run()) ticks: 1% of
    /// `--stale-after`, between 1 s and 15 s (a common scrape interval), so
    /// a stale count lags the clock by at most that; `None` when staleness
    /// is off. A tick costs one range lookup per (namespace, source).
    pub fn tick_interval(&self) -> Option<Duration> {
        let after = u64::try_from(self.reports.stale_after?).unwrap_or(u64::MAX);
        Some(Duration::from_secs((after / 100).clamp(1, 15)))
    }

    /// Visit the report freshness families, sorted by namespace and source:
    /// per (namespace, source) with reports, how many, how many were stale
    /// at the latest tick (`None` when staleness is off) and the oldest
    /// refresh time (`None` when no report has a timestamp). A report counts
    /// once per source it has results from.
    pub fn for_each_freshness(&self, mut f: impl FnMut(FreshnessRow<'_>)) {
        let cutoff = self
            .reports
            .stale_after
            .map(|a| self.reports.now.saturating_sub(a));
        let mut rows = Vec::new();
        self.reports
            .freshness
            .for_each(cutoff, |s| self.strings.resolve(s), |r| rows.push(r));
        rows.sort_unstable_by(|a, b| (a.namespace, a.source).cmp(&(b.namespace, b.source)));
        rows.into_iter().for_each(&mut f);
    }
}

/// The families this index serves, in serving order.
pub(in crate::aggregate) const FAMILIES: &[Family<Aggregate>] = &[
    Family {
        name: "policyreport_reports",
        help: "Reports with results from this source, per namespace; a report with results from several sources counts once for each.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| a.for_each_freshness(|r| s.write(freshness_labels(&r), r.reports)),
    },
    Family {
        name: "policyreport_reports_stale",
        help: "Of policyreport_reports, those whose newest result timestamp from this source is older than --stale-after; reports without timestamps never count.",
        kind: Type::Gauge,
        when: |a| a.stale_after().is_some(),
        samples: |a, s| {
            a.for_each_freshness(|r| {
                if let Some(stale) = r.stale {
                    s.write(freshness_labels(&r), stale)
                }
            })
        },
    },
    Family {
        name: "policyreport_report_oldest_refresh_timestamp_seconds",
        help: "The oldest among these reports' newest result timestamps from this source (Unix seconds); absent when none has a timestamp.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            a.for_each_freshness(|r| {
                if let Some(t) = r.oldest.and_then(|t| u64::try_from(t).ok()) {
                    s.write(freshness_labels(&r), t)
                }
            })
        },
    },
];

/// The labels of the report freshness families.
fn freshness_labels<'a>(r: &FreshnessRow<'a>) -> [(&'static str, &'a str); 2] {
    [("namespace", r.namespace), ("source", r.source)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::series::Strings;

    #[test]
    fn stamps_keep_whole_seconds_after_the_epoch() {
        assert_eq!(stamp(None), NO_STAMP);
        assert_eq!(stamp(Some(0)), NO_STAMP);
        assert_eq!(stamp(Some(-5)), NO_STAMP);
        assert_eq!(stamp(Some(1_731_403_200)), 1_731_403_200);
        assert_eq!(stamp(Some(i64::MAX)), Stamp::MAX);
    }

    #[test]
    fn stale_counts_are_range_sums_below_the_cutoff() {
        let mut strings = Strings::default();
        let (ns, src) = (strings.intern("shop"), strings.intern("kyverno"));
        let mut t = FreshnessTable::default();
        let id = t.acquire(ns, src);
        for s in [100, 100, 200, 300, NO_STAMP] {
            t.add(id, s);
        }
        let rows = |t: &FreshnessTable, cutoff| {
            let mut out = Vec::new();
            let resolve = |s| strings.resolve(s);
            t.for_each(cutoff, resolve, |r| {
                out.push((r.namespace.to_owned(), r.reports, r.stale, r.oldest))
            });
            out
        };
        let row = |stale| vec![("shop".to_owned(), 5, stale, Some(100))];
        assert_eq!(rows(&t, Some(100)), row(Some(0)));
        assert_eq!(rows(&t, Some(101)), row(Some(2)));
        assert_eq!(rows(&t, Some(300)), row(Some(3)));
        assert_eq!(rows(&t, Some(i64::MAX)), row(Some(4)));
        assert_eq!(rows(&t, Some(-1)), row(Some(0)));
        assert_eq!(rows(&t, None), row(None));
        assert!(t.any_between(150, 201));
        assert!(!t.any_between(201, 300));
        assert!(!t.any_between(300, 300));
        assert!(t.any_between(-10, i64::MAX));
        t.sub(id, 100);
        t.sub(id, NO_STAMP);
        assert_eq!(
            rows(&t, Some(101)),
            vec![("shop".to_owned(), 3, Some(1), Some(100))]
        );
        for s in [100, 200, 300] {
            t.sub(id, s);
        }
        assert!(
            rows(&t, Some(0)).is_empty(),
            "an entry without reports is not shown"
        );
        t.release(id);
        assert!(t.index.is_empty());
        assert_eq!(t.acquire(ns, src), id, "the slot is reused");
    }

    #[test]
    fn manual_clocks_move_together() {
        let c = Clock::manual(10);
        let d = c.clone();
        d.set(42);
        assert_eq!(c.now(), 42);
        assert!(Clock::system().now() > 1_700_000_000);
    }
}
