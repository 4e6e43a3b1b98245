//! The aggregator: the one owner of the exporter's state.
//!
//! It consumes [`SourceEvent`]s in order and keeps, per object, only its
//! compact contribution: for a report, series ids and counts plus per-control
//! resource tallies; for an admission Event, its uid and the count added (see
//! [`events`]); for a policy, its
//! mode and how it varies by namespace; for a Namespace, its labels. An update applies the new contribution and retires the old one,
//! a delete retires, and a relist replaces an origin's whole set atomically
//! when it completes. Readers see the state only through the read methods,
//! and [`run`] hands it to a publisher after each batch of changes.

mod controls;
mod events;
mod freshness;
pub mod series;
mod uid;
mod worklist;

pub use controls::ControlStatus;
pub use freshness::{Clock, FreshnessRow};
pub use worklist::{FailingEntry, MESSAGE_CHARS};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;
use indexmap::IndexMap;

/// Hash maps of the aggregate: foldhash is fast, and seeded per process so
/// crafted names cannot force collisions.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// An insertion-ordered [`Map`].
type OrderedMap<K, V> = IndexMap<K, V, foldhash::fast::RandomState>;

use string_interner::DefaultSymbol as Sym;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::controls::Controls;
use crate::decode::DecodeError;
use crate::kind::Kind;
use crate::memory::Trimmer;
use crate::namespace::{self, NamespaceInfo};
use crate::namespace_filter::NamespaceFilter;
use crate::policy::{self, Labels, Mode, Policy, PolicyInfo, Routing};
use crate::report::Report;
use crate::source::{Body, Origin, RelistReason, SourceEvent, SourceObject};
use crate::{event, report::Outcome};
use controls::{ControlDelta, ControlState, Matcher};
use events::{Admissions, Counted, EventId, EventTables};
use freshness::{FreshId, FreshnessTable, Stamp};
use series::{SLOTS, SeriesId, SeriesTable};
use uid::Key;

/// Names of the label slots of `policyreport_results`, in slot order.
pub const LABEL_NAMES: [&str; SLOTS] = [
    "namespace",
    "policy",
    "category",
    "severity",
    "source",
    "result",
    "rule",
    "kind",
];
const NAMESPACE: usize = 0;
const POLICY: usize = 1;
const CATEGORY: usize = 2;
const SEVERITY: usize = 3;
const SOURCE: usize = 4;
const RESULT: usize = 5;
const RULE: usize = 6;
const KIND: usize = 7;

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

/// Which optional labels `policyreport_results` carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabelOptions {
    /// Add the `rule` label.
    pub rule: bool,
    /// Add the `kind` label (the subject's kind).
    pub kind: bool,
}

impl LabelOptions {
    /// The label names in use, in slot order.
    pub fn names(&self) -> Vec<&'static str> {
        LABEL_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.enabled(*i))
            .map(|(_, n)| *n)
            .collect()
    }

    fn enabled(&self, slot: usize) -> bool {
        match slot {
            RULE => self.rule,
            KIND => self.kind,
            _ => true,
        }
    }
}

/// Identity of an object within its origin: 32 bytes, and no heap for the
/// name of a report named after its resource's uid, as Kyverno names them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ObjectId {
    kind: Kind,
    namespace: Sym,
    name: Key,
}

/// Identity of an admission counter: blocked, or let through by Audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct AdmissionKey {
    namespace: Sym,
    policy: Sym,
    rule: Sym,
    kind: Sym,
    blocked: bool,
}

/// What one object contributes.
#[derive(Debug)]
enum Contribution {
    /// A report: its series counts and its per-control resource tallies;
    /// its failing entries only when kept (`summary --failing`), else empty.
    /// With `--compat policy-reporter`, `series` goes on with its counts in
    /// the Policy Reporter table from index `policy_reporter`; its last
    /// `fresh` entries are one (freshness entry, refresh time) pair per
    /// source the report has results from. (One list, not three, and a
    /// 16-bit count keep a contribution at 56 bytes: see
    /// [`Contribution::parts`].)
    Report {
        series: Box<[(SeriesId, u32)]>,
        controls: Box<[ControlDelta]>,
        failing: Box<[FailingEntry]>,
        policy_reporter: u32,
        fresh: u16,
    },
    /// A policy.
    Policy(Box<Policy>),
    /// A Namespace's labels.
    Namespace(Box<NamespaceInfo>),
    /// The object could not be decoded; kept so it is logged once and its
    /// old contribution stays removed.
    Invalid,
}

/// A report's `series` list split into its own series, Policy Reporter's,
/// and its freshness pairs.
type Parts<'a> = (
    &'a [(SeriesId, u32)],
    &'a [(SeriesId, u32)],
    &'a [(FreshId, Stamp)],
);

impl Contribution {
    /// The parts of a report's list; all empty for other contributions.
    fn parts(&self) -> Parts<'_> {
        match self {
            Contribution::Report {
                series,
                policy_reporter,
                fresh,
                ..
            } => {
                let (rest, fresh) = series.split_at(series.len() - usize::from(*fresh));
                let (own, compat) = rest.split_at(*policy_reporter as usize);
                (own, compat, fresh)
            }
            _ => (&[], &[], &[]),
        }
    }
}

/// Self-observation counters kept next to the state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Objects currently held, per resource.
    pub objects: BTreeMap<&'static str, u64>,
    /// Invalid objects or inputs seen, per resource.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Failed watch or list requests, per resource.
    pub watch_errors: BTreeMap<&'static str, u64>,
    /// Full relists, per resource and reason.
    pub relists: BTreeMap<(&'static str, &'static str), u64>,
}

/// The resource label under which unreadable files are counted.
pub const FILE_RESOURCE: &str = "files";

/// An input refused as invalid: what, where and why. Kept only when asked
/// ([`Aggregate::keep_problems`]), for `summary`; `serve` logs and counts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The resource it is counted under (`files` for a file).
    pub resource: &'static str,
    /// Where it was: a path, or an object and its origin.
    pub location: String,
    /// Why it was refused.
    pub reason: String,
}

/// `--stale-after`'s default: two of Kyverno's background scan intervals
/// (`--backgroundScanInterval`, 1h by default) plus an hour of margin.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3 * 3600);

/// How the aggregate is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Optional labels of `policyreport_results`.
    pub labels: LabelOptions,
    /// The compliance controls.
    pub controls: Arc<Controls>,
    /// Also count Policy Reporter's simple-mode families
    /// (`--compat policy-reporter`).
    pub policy_reporter: bool,
    /// Which namespaces count (`--namespace-include`, `--namespace-exclude`).
    pub namespace_filter: NamespaceFilter,
    /// Namespace label keys served in `policyreport_namespace_info`
    /// (`--namespace-labels`); none serves no such family.
    pub namespace_labels: Vec<String>,
    /// A report is stale when its newest result timestamp is older than
    /// this (`--stale-after`); zero turns staleness off.
    pub stale_after: Duration,
    /// The clock staleness is measured by.
    pub clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            labels: LabelOptions::default(),
            controls: Arc::default(),
            policy_reporter: false,
            namespace_filter: NamespaceFilter::default(),
            namespace_labels: Vec::new(),
            stale_after: DEFAULT_STALE_AFTER,
            clock: Clock::system(),
        }
    }
}

/// The aggregated state.
#[derive(Debug)]
pub struct Aggregate {
    labels: LabelOptions,
    controls: Arc<Controls>,
    namespace_filter: NamespaceFilter,
    /// `--namespace-labels`: (label key, metric label name).
    namespace_labels: Vec<(String, String)>,
    series: SeriesTable,
    /// Policy Reporter's `policy_report_result` and
    /// `cluster_policy_report_result`, with `--compat policy-reporter`: slots
    /// as in [`LABEL_NAMES`], with Policy Reporter's values.
    policy_reporter: Option<SeriesTable>,
    control_state: Vec<ControlState>,
    matcher: Matcher,
    admissions: Admissions,
    /// Live Events, apart from the other objects: they are many, and each
    /// needs only its uid and what it added.
    events: EventTables,
    policies: BTreeMap<PolicyInfo, u32>,
    /// How each policy's mode varies by namespace: every live copy (a policy
    /// may be in several files); the first is used.
    routing: BTreeMap<String, Vec<Routing>>,
    /// Namespace labels: every live copy; the first is used.
    namespaces: BTreeMap<String, Vec<Labels>>,
    // Objects of each origin. Insertion-ordered, so a relist activates its
    // objects in the order the source listed them: results are then the
    // same for the same input, whatever the hash seeds.
    origins: Map<Origin, OrderedMap<ObjectId, Contribution>>,
    pending: Map<Origin, OrderedMap<ObjectId, Contribution>>,
    stats: Stats,
    sync: BTreeMap<String, SyncState>,
    /// Set once every target has listed; readiness never goes back.
    ready_once: bool,
    generation: u64,
    /// Refused inputs, when kept (`summary` only).
    problems: Option<Vec<Problem>>,
    /// Whether reports keep their failing entries (`summary --failing`).
    keep_failing: bool,
    /// Reports per (namespace, source) and their refresh times.
    freshness: FreshnessTable,
    clock: Clock,
    /// `--stale-after` in seconds; `None` when off.
    stale_after: Option<i64>,
    /// The clock's reading at the last [`Aggregate::tick`]: stale counts
    /// are as of then, so a rendering depends on the state alone.
    now: i64,
}

/// Where a sync target stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The initial list has completed.
    pub listed: bool,
    /// The latest list or watch request of the target did not fail.
    pub healthy: bool,
}

impl SyncState {
    /// Listed and currently healthy: the value of the `synced` metric.
    pub fn synced(&self) -> bool {
        self.listed && self.healthy
    }
}

impl Aggregate {
    /// An empty aggregate.
    pub fn new(config: Config) -> Self {
        let mut stats = Stats::default();
        for k in Kind::ALL {
            stats.objects.insert(k.resource(), 0);
            stats.invalid.insert(k.resource(), 0);
            stats.watch_errors.insert(k.resource(), 0);
            for reason in RelistReason::ALL {
                stats.relists.insert((k.resource(), reason.as_str()), 0);
            }
        }
        stats.invalid.insert(FILE_RESOURCE, 0);
        Self {
            labels: config.labels,
            control_state: config
                .controls
                .iter()
                .map(|_| ControlState::default())
                .collect(),
            controls: config.controls,
            namespace_filter: config.namespace_filter,
            namespace_labels: namespace_label_names(&config.namespace_labels),
            matcher: Matcher::default(),
            series: SeriesTable::default(),
            policy_reporter: config.policy_reporter.then(SeriesTable::default),
            admissions: Admissions::default(),
            events: EventTables::default(),
            policies: BTreeMap::new(),
            routing: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            origins: Map::default(),
            pending: Map::default(),
            stats,
            sync: BTreeMap::new(),
            ready_once: false,
            generation: 0,
            problems: None,
            keep_failing: false,
            freshness: FreshnessTable::default(),
            now: config.clock.now(),
            clock: config.clock,
            stale_after: freshness::stale_seconds(config.stale_after),
        }
    }

    /// Keep each report's failing entries from now on (see
    /// [`Aggregate::failing`]). For one-shot runs: it keeps names and
    /// messages, which the serving exporter never holds.
    pub fn keep_failing(&mut self) {
        self.keep_failing = true;
    }

    /// The failing entries of the reports held, when kept, sorted.
    pub fn failing(&self) -> Vec<&FailingEntry> {
        let mut out: Vec<&FailingEntry> = self
            .origins
            .values()
            .flat_map(|m| m.values())
            .flat_map(|c| match c {
                Contribution::Report { failing, .. } => &failing[..],
                _ => &[],
            })
            .collect();
        out.sort();
        out
    }

    /// Keep every refused input from now on (see [`Aggregate::problems`]).
    /// For one-shot runs: the list grows with the bad input.
    pub fn keep_problems(&mut self) {
        self.problems.get_or_insert_with(Vec::new);
    }

    /// The refused inputs kept since [`Aggregate::keep_problems`], in order.
    pub fn problems(&self) -> &[Problem] {
        self.problems.as_deref().unwrap_or(&[])
    }

    fn problem(&mut self, resource: &'static str, location: String, reason: String) {
        if let Some(p) = &mut self.problems {
            p.push(Problem {
                resource,
                location,
                reason,
            });
        }
    }

    /// Declare a sync target that must report [`SourceEvent::Synced`] before
    /// the aggregate is ready.
    pub fn expect_sync(&mut self, target: impl Into<String>) {
        self.sync.entry(target.into()).or_default();
        self.generation += 1;
    }

    /// Apply one event.
    pub fn handle(&mut self, event: SourceEvent) {
        self.generation += 1;
        self.apply_event(event);
        if !self.ready_once && !self.sync.is_empty() && self.sync.values().all(|s| s.listed) {
            self.ready_once = true;
        }
    }

    fn apply_event(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Apply { origin, object } if object.kind == Kind::Event => {
                let (id, new) = self.prepare_event(&origin, &object);
                if self.events.apply(origin, id, new, &mut self.admissions) {
                    self.count_object(Kind::Event, 1);
                }
            }
            SourceEvent::Delete { origin, object } if object.kind == Kind::Event => {
                if self.events.delete(&origin, &EventId::of(object.meta())) {
                    self.count_object(Kind::Event, -1);
                }
            }
            SourceEvent::ResyncApply { origin, object } if object.kind == Kind::Event => {
                let (id, new) = self.prepare_event(&origin, &object);
                self.events.resync_apply(origin, id, new);
            }
            SourceEvent::Apply { origin, object } => {
                let (id, new) = self.prepare(&origin, &object);
                let old = self
                    .origins
                    .get_mut(&origin)
                    .and_then(|m| m.swap_remove(&id));
                match new {
                    Some(new) => {
                        self.activate(&new);
                        match old {
                            Some(old) => self.deactivate(old),
                            None => self.count_object(object.kind, 1),
                        }
                        self.origins.entry(origin).or_default().insert(id, new);
                    }
                    None => {
                        if let Some(old) = old {
                            self.deactivate(old);
                            self.count_object(object.kind, -1);
                        }
                    }
                }
            }
            SourceEvent::Delete { origin, object } => {
                let id = self.object_id(&object);
                let removed = self
                    .origins
                    .get_mut(&origin)
                    .and_then(|m| m.swap_remove(&id));
                if let Some(old) = removed {
                    self.deactivate(old);
                    self.count_object(object.kind, -1);
                }
            }
            SourceEvent::ResyncStart { origin } => {
                self.events.resync_start(&origin);
                if let Some(stale) = self.pending.insert(origin, OrderedMap::default()) {
                    stale.into_values().for_each(|c| self.release(c));
                }
            }
            SourceEvent::ResyncApply { origin, object } => {
                let (id, new) = self.prepare(&origin, &object);
                let pending = self.pending.entry(origin).or_default();
                let dup = match new {
                    Some(new) => pending.insert(id, new),
                    None => pending.shift_remove(&id),
                };
                if let Some(dup) = dup {
                    self.release(dup);
                }
            }
            SourceEvent::ResyncEnd { origin } => self.finish_resync(origin),
            SourceEvent::ExpectSync { target } => {
                self.sync.entry(target).or_default();
            }
            SourceEvent::Forget { target } => {
                self.sync.remove(&target);
            }
            SourceEvent::Synced { target } => {
                self.sync.insert(
                    target,
                    SyncState {
                        listed: true,
                        healthy: true,
                    },
                );
            }
            SourceEvent::Recovered { target } => {
                if let Some(s) = self.sync.get_mut(&target) {
                    s.healthy = true;
                }
            }
            SourceEvent::Invalid {
                resource,
                location,
                reason,
            } => {
                warn!(resource, location, reason, "skipping invalid input");
                *self.stats.invalid.entry(resource).or_default() += 1;
                self.problem(resource, location, reason);
            }
            SourceEvent::Relist { resource, reason } => {
                *self
                    .stats
                    .relists
                    .entry((resource, reason.as_str()))
                    .or_default() += 1;
            }
            SourceEvent::WatchError { resource } => {
                *self.stats.watch_errors.entry(resource).or_default() += 1;
                if let Some(s) = self.sync.get_mut(resource) {
                    s.healthy = false;
                }
            }
        }
    }

    /// Decode an object other than an Event into a contribution whose
    /// series references are taken. `None` for objects that contribute
    /// nothing and need no record (out of scope). Logs and counts an object
    /// when it newly becomes invalid.
    fn prepare(
        &mut self,
        origin: &Origin,
        object: &SourceObject,
    ) -> (ObjectId, Option<Contribution>) {
        let id = self.object_id(object);
        let (namespace, name) = object.id();
        // Namespace scoping of everything that belongs to a
        // namespace: reports (results, controls, namespace modes) and
        // namespaced policies by their own namespace, Namespaces by their
        // name; admissions by the admitted resource's, once decoded (in
        // `prepare_event`). What is out of scope contributes nothing
        // and is not held. Cluster-scoped policies belong to no namespace.
        let in_scope = match object.kind {
            Kind::Namespace => self.namespace_filter.admits(name),
            k if k.is_report() || k.namespaced() => self.namespace_filter.admits(namespace),
            _ => true,
        };
        if !in_scope {
            return (id, None);
        }
        let decoded = match &object.body {
            Body::Report(report) => match report.error() {
                Some(err) => Err(err.clone()),
                None => Ok(Some(self.report_contribution(report, namespace))),
            },
            Body::Object(raw) if object.kind == Kind::Namespace => {
                namespace::decode(raw.raw.get()).map(|n| Some(Contribution::Namespace(Box::new(n))))
            }
            Body::Object(raw) => policy::decode(object.kind, raw.raw.get())
                .map(|p| Some(Contribution::Policy(Box::new(p)))),
        };
        let contribution = match decoded {
            Ok(c) => c,
            Err(err) => {
                self.invalid(origin, object, &id, &err);
                Some(Contribution::Invalid)
            }
        };
        (id, contribution)
    }

    fn object_id(&mut self, object: &SourceObject) -> ObjectId {
        let (namespace, name) = object.id();
        ObjectId {
            kind: object.kind,
            namespace: self.series.intern(namespace),
            name: Key::new(name),
        }
    }

    /// An Event's identity and what it adds (admissions are scoped by the
    /// admitted resource's namespace, once decoded). Logs and counts an
    /// Event when it newly becomes invalid.
    fn prepare_event(&mut self, origin: &Origin, object: &SourceObject) -> (EventId, Counted) {
        let id = EventId::of(object.meta());
        let namespace = object.meta().namespace.as_deref().unwrap_or("");
        let decoded = match &object.body {
            Body::Object(raw) => event::decode(raw.raw.get(), namespace),
            Body::Report(_) => Err(DecodeError {
                field: "event".into(),
                reason: "a report, not an Event".into(),
            }),
        };
        let counted = match decoded {
            Ok(Some(b)) if self.namespace_filter.admits(&b.namespace) => {
                let key = AdmissionKey {
                    namespace: self.series.intern(&b.namespace),
                    policy: self.series.intern(&b.policy),
                    rule: self.series.intern(&b.rule),
                    kind: self.series.intern(&b.kind),
                    blocked: b.blocked,
                };
                Counted {
                    counted: b.count,
                    counter: self.admissions.id(key),
                    invalid: false,
                }
            }
            Ok(_) => Counted::NOTHING,
            Err(err) => {
                if self.events.is_invalid(origin, &id) {
                    debug!(kind = %object.kind, name = %object.id().1, "object still invalid");
                } else {
                    self.count_invalid(origin, object, &err);
                }
                Counted::INVALID
            }
        };
        (id, counted)
    }

    fn invalid(
        &mut self,
        origin: &Origin,
        object: &SourceObject,
        id: &ObjectId,
        err: &DecodeError,
    ) {
        let was_invalid = self
            .origins
            .get(origin)
            .and_then(|m| m.get(id))
            .is_some_and(|c| matches!(c, Contribution::Invalid));
        if was_invalid {
            debug!(kind = %object.kind, name = %object.id().1, "object still invalid");
            return;
        }
        self.count_invalid(origin, object, err);
    }

    /// Log and count an object that newly became invalid.
    fn count_invalid(&mut self, origin: &Origin, object: &SourceObject, err: &DecodeError) {
        let (namespace, name) = object.id();
        warn!(
            kind = %object.kind,
            namespace = %namespace,
            name = %name,
            origin = %origin,
            reason = %err,
            "skipping invalid object"
        );
        *self
            .stats
            .invalid
            .entry(object.kind.resource())
            .or_default() += 1;
        if self.problems.is_some() {
            let location = format!("{origin}: {} {namespace}/{name}", object.kind);
            self.problem(object.kind.resource(), location, err.to_string());
        }
    }

    fn report_contribution(&mut self, report: &Report, namespace: &str) -> Contribution {
        let rows = count_rows(&self.series, report, namespace, self.labels);
        let mut series: Vec<(SeriesId, u32)> = rows
            .into_iter()
            .map(|(hash, labels, n)| (self.series.acquire_hashed(hash, &labels), n))
            .collect();
        let policy_reporter = series.len() as u32;
        if let Some(table) = &mut self.policy_reporter {
            let rows = policy_reporter_rows(table, report, namespace);
            series.extend(
                rows.into_iter()
                    .map(|(hash, labels, n)| (table.acquire_hashed(hash, &labels), n)),
            );
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
        let ns = self.series.intern(namespace);
        for (source, newest) in sources {
            let source = self.series.intern(source);
            let id = self.freshness.acquire(ns, source);
            series.push((id, freshness::stamp(newest)));
        }
        let controls = controls::deltas(
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
    fn count_report(&mut self, c: &Contribution, visible: bool) {
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

    /// Make a contribution visible (the one it replaces is deactivated
    /// after).
    fn activate(&mut self, new: &Contribution) {
        self.count_report(new, true);
        match new {
            Contribution::Policy(p) => {
                *self.policies.entry(p.info.clone()).or_default() += 1;
                self.routing
                    .entry(p.info.policy.clone())
                    .or_default()
                    .push(p.routing.clone());
            }
            Contribution::Namespace(n) => self
                .namespaces
                .entry(n.name.clone())
                .or_default()
                .push(n.labels.clone()),
            Contribution::Report { .. } | Contribution::Invalid => {}
        }
    }

    /// Remove a visible contribution and release what it holds.
    fn deactivate(&mut self, old: Contribution) {
        self.count_report(&old, false);
        match &old {
            Contribution::Policy(p) => {
                if let Some(n) = self.policies.get_mut(&p.info) {
                    *n -= 1;
                    if *n == 0 {
                        self.policies.remove(&p.info);
                    }
                }
                remove_copy(&mut self.routing, &p.info.policy, &p.routing);
            }
            Contribution::Namespace(n) => remove_copy(&mut self.namespaces, &n.name, &n.labels),
            Contribution::Report { .. } | Contribution::Invalid => {}
        }
        self.release(old);
    }

    /// Drop the series references of a contribution that is not visible.
    fn release(&mut self, c: Contribution) {
        let (series, compat, fresh) = c.parts();
        for (s, _) in series {
            self.series.release(*s);
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

    fn count_object(&mut self, kind: Kind, delta: i64) {
        let n = self.stats.objects.entry(kind.resource()).or_default();
        *n = n.saturating_add_signed(delta);
    }

    fn finish_resync(&mut self, origin: Origin) {
        let (added, gone) = self.events.resync_end(&origin, &mut self.admissions);
        self.count_object(Kind::Event, added as i64 - gone as i64);
        let mut fresh = self.pending.remove(&origin).unwrap_or_default();
        let mut old = self.origins.remove(&origin).unwrap_or_default();
        for (id, new) in fresh.iter() {
            let prev = old.swap_remove(id);
            self.activate(new);
            match prev {
                Some(prev) => self.deactivate(prev),
                None => self.count_object(id.kind, 1),
            }
        }
        for (id, gone) in old {
            self.deactivate(gone);
            self.count_object(id.kind, -1);
        }
        if !fresh.is_empty() {
            // Its entries grew by doubling: up to half of them spare room,
            // 96 bytes each: at 150k reports, about 50 bytes per report.
            fresh.shrink_to_fit();
            self.origins.insert(origin, fresh);
        }
    }

    /// Whether every expected source has finished its initial list. Once
    /// true it stays true: a kind discovered later does not make a running
    /// exporter unready (its `synced` gauge shows its progress).
    pub fn ready(&self) -> bool {
        self.ready_once || self.sync.values().all(|s| s.listed)
    }

    /// Sync targets still waiting for their initial list, while not ready.
    pub fn pending_targets(&self) -> Vec<&str> {
        if self.ready() {
            return Vec::new();
        }
        self.sync
            .iter()
            .filter(|(_, s)| !s.listed)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// Every sync target and where it stands.
    pub fn sync_state(&self) -> &BTreeMap<String, SyncState> {
        &self.sync
    }

    /// Self-observation counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The optional labels in use.
    pub fn labels(&self) -> LabelOptions {
        self.labels
    }

    /// The configured controls.
    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// Increases with every change; equal values mean equal state.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Read the clock. Stale counts are as of the latest tick; when the
    /// new reading makes any of them change, this is a change of the state
    /// (the generation moves), so the next publish renders it. Costs a range
    /// lookup per (namespace, source), never a scan of the reports.
    pub fn tick(&mut self) {
        let now = self.clock.now();
        if let Some(after) = self.stale_after {
            let (a, b) = (self.now.min(now), self.now.max(now));
            let between = |t: i64| t.saturating_sub(after);
            if self.freshness.any_between(between(a), between(b)) {
                self.generation += 1;
            }
        }
        self.now = now;
    }

    /// The clock's reading at the latest [`Aggregate::tick`] (or at
    /// creation), in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// `--stale-after` in seconds; `None` when staleness is off.
    pub fn stale_after(&self) -> Option<i64> {
        self.stale_after
    }

    /// How often [`run`] ticks: 1% of `--stale-after`, between 1 s and 15 s
    /// (a common scrape interval), so a stale count lags the clock by at
    /// most that; `None` when staleness is off. A tick costs one range
    /// lookup per (namespace, source).
    pub fn tick_interval(&self) -> Option<Duration> {
        let after = u64::try_from(self.stale_after?).unwrap_or(u64::MAX);
        Some(Duration::from_secs((after / 100).clamp(1, 15)))
    }

    /// Visit the report freshness families, sorted by namespace and source:
    /// per (namespace, source) with reports, how many, how many were stale
    /// at the latest tick (`None` when staleness is off) and the oldest
    /// refresh time (`None` when no report has a timestamp). A report counts
    /// once per source it has results from.
    pub fn for_each_freshness(&self, mut f: impl FnMut(FreshnessRow<'_>)) {
        let cutoff = self.stale_after.map(|a| self.now.saturating_sub(a));
        let mut rows = Vec::new();
        self.freshness
            .for_each(cutoff, |s| self.series.resolve(s), |r| rows.push(r));
        rows.sort_unstable_by(|a, b| (a.namespace, a.source).cmp(&(b.namespace, b.source)));
        rows.into_iter().for_each(&mut f);
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

    /// The label names of `policyreport_namespace_info` after `namespace`
    /// (`label_<key>`, as kube-state-metrics names them); empty unless
    /// `--namespace-labels` is given.
    pub fn namespace_label_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.namespace_labels.iter().map(|(_, name)| name.as_str())
    }

    /// Visit `policyreport_namespace_info`, sorted by namespace: each
    /// Namespace in scope and the values of the `--namespace-labels` keys,
    /// in the order given (empty when a Namespace lacks the label).
    pub fn for_each_namespace_info(&self, mut f: impl FnMut(&str, &[&str])) {
        if self.namespace_labels.is_empty() {
            return;
        }
        let mut values: Vec<&str> = Vec::with_capacity(self.namespace_labels.len());
        for (namespace, copies) in &self.namespaces {
            let labels = copies.first();
            values.clear();
            values.extend(
                self.namespace_labels
                    .iter()
                    .map(|(key, _)| labels.and_then(|l| l.get(key)).map_or("", String::as_str)),
            );
            f(namespace, &values);
        }
    }

    /// Whether Policy Reporter's families are kept
    /// (`--compat policy-reporter`).
    pub fn policy_reporter_enabled(&self) -> bool {
        self.policy_reporter.is_some()
    }

    /// Visit Policy Reporter's simple-mode series (none unless enabled):
    /// the report's namespace (empty for cluster-scoped reports), policy,
    /// status, severity, category and source, and the number of results.
    pub fn for_each_policy_reporter_result(
        &self,
        mut f: impl FnMut(PolicyReporterLabels<'_>, u64),
    ) {
        let Some(table) = &self.policy_reporter else {
            return;
        };
        table.for_each(|v, n| {
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

    /// Visit `policyreport_control_resources`: control, namespace, kind,
    /// status, and the number of resources.
    pub fn for_each_control(&self, mut f: impl FnMut(&str, &str, &str, ControlStatus, u64)) {
        for (control, state) in self.controls.iter().zip(&self.control_state) {
            state.for_each(|ns, kind, status, n| {
                f(
                    &control.name,
                    self.series.resolve(ns),
                    self.series.resolve(kind),
                    status,
                    n,
                )
            });
        }
    }

    /// Visit `policyreport_admission_blocked_total`: namespace, policy,
    /// rule, kind, control (or ""), and the count. The control is resolved
    /// from the policy name or its category, as learned from policy objects
    /// or from report results.
    pub fn for_each_blocked(&self, f: impl FnMut(&str, &str, &str, &str, &str, u64)) {
        self.for_each_admission(true, f);
    }

    /// Visit `policyreport_admission_audit_failures_total`, the admissions
    /// Audit let through that Enforce would have refused, with the same
    /// arguments as [`Aggregate::for_each_blocked`].
    pub fn for_each_audit_failure(&self, f: impl FnMut(&str, &str, &str, &str, &str, u64)) {
        self.for_each_admission(false, f);
    }

    fn for_each_admission(
        &self,
        blocked: bool,
        mut f: impl FnMut(&str, &str, &str, &str, &str, u64),
    ) {
        let mut keys: Vec<(&AdmissionKey, u64)> = self
            .admissions
            .iter()
            .filter(|(k, _)| k.blocked == blocked)
            .collect();
        if keys.is_empty() {
            return;
        }
        let categories = self.policy_categories();
        let resolve = |s| self.series.resolve(s);
        keys.sort_by_key(|(k, _)| {
            (
                resolve(k.namespace),
                resolve(k.policy),
                resolve(k.rule),
                resolve(k.kind),
            )
        });
        for (k, n) in keys {
            let policy = self.series.resolve(k.policy);
            let rule = self.series.resolve(k.rule);
            let category = categories.get(policy).copied().unwrap_or("");
            let control = self
                .controls
                .first_for(policy, category, rule)
                .map_or("", |c| c.name.as_str());
            f(
                self.series.resolve(k.namespace),
                policy,
                rule,
                self.series.resolve(k.kind),
                control,
                n,
            );
        }
    }

    /// Each policy's category: from policy objects first, else from results.
    fn policy_categories(&self) -> Map<&str, &str> {
        let mut out: Map<&str, &str> = Map::default();
        self.series.for_each(|values, _| {
            if !values[CATEGORY].is_empty() {
                out.entry(values[POLICY]).or_insert(values[CATEGORY]);
            }
        });
        for p in self.policies.keys().filter(|p| !p.category.is_empty()) {
            out.insert(&p.policy, &p.category);
        }
        out
    }

    /// Every policy currently known (a policy seen in several origins once).
    pub fn policies(&self) -> impl Iterator<Item = &PolicyInfo> {
        self.policies.keys()
    }

    /// Visit `policyreport_policy_namespace_mode`, sorted: policy,
    /// namespace, and the mode in force there, for every policy whose mode
    /// is not `none`. A namespaced policy has only its own namespace; any
    /// other has every namespace where it has results (`""` for
    /// cluster-scoped ones) and every namespace its overrides name
    /// literally. Computed when the state is rendered, not per scrape.
    pub fn for_each_namespace_mode(&self, mut f: impl FnMut(&str, &str, Mode)) {
        if self.routing.is_empty() {
            return;
        }
        // Several policy objects may share a label (a ClusterPolicy and a
        // ValidatingPolicy of one name, or copies in several files): their
        // modes combine, so the result never depends on arrival order.
        let mut targets: BTreeMap<&str, (&[Routing], BTreeSet<&str>, bool)> = BTreeMap::new();
        for (policy, copies) in &self.routing {
            let mut namespaces = BTreeSet::new();
            let mut cluster_wide = false;
            for routing in copies {
                match &routing.own_namespace {
                    Some(ns) => {
                        namespaces.insert(ns.as_str());
                    }
                    None => {
                        cluster_wide = true;
                        namespaces.extend(routing.literal_namespaces());
                    }
                }
            }
            targets.insert(policy, (copies, namespaces, cluster_wide));
        }
        self.series.for_each(|values, _| {
            if let Some((_, namespaces, true)) = targets.get_mut(values[POLICY]) {
                namespaces.insert(values[NAMESPACE]);
            }
        });
        let labels = |ns: &str| self.namespaces.get(ns).and_then(|copies| copies.first());
        for (policy, (copies, namespaces, _)) in targets {
            for ns in namespaces {
                // Namespaces with results are in scope already; those an
                // override names may not be.
                if !self.namespace_filter.admits(ns) {
                    continue;
                }
                let mode = policy::combine(copies.iter().map(|r| r.mode_in(ns, labels)));
                if mode != Mode::None {
                    f(policy, ns, mode);
                }
            }
        }
    }
}

/// Remove one copy equal to `value` from `map[key]`, and the key when no
/// copy is left.
fn remove_copy<T: PartialEq>(map: &mut BTreeMap<String, Vec<T>>, key: &str, value: &T) {
    if let Some(copies) = map.get_mut(key) {
        if let Some(i) = copies.iter().position(|c| c == value) {
            copies.remove(i);
        }
        if copies.is_empty() {
            map.remove(key);
        }
    }
}

/// Rows of label values with their counts and label hashes (for
/// [`SeriesTable::acquire_hashed`]), each distinct label set once.
struct Rows<'a, 't> {
    table: &'t SeriesTable,
    rows: Vec<(u64, [&'a str; SLOTS], u32)>,
    index: HashTable<usize>,
}

impl<'a, 't> Rows<'a, 't> {
    fn new(table: &'t SeriesTable) -> Self {
        Self {
            table,
            rows: Vec::new(),
            index: HashTable::new(),
        }
    }

    /// Add `n` to the row of `labels`.
    fn add(&mut self, labels: [&'a str; SLOTS], n: u32) {
        // Most reports hold few distinct rows: a list beats a map, until it
        // grows long.
        let hash = self.table.hash(&labels);
        let rows = &mut self.rows;
        let same = |row: &(u64, [&str; SLOTS], u32)| {
            row.0 == hash && row.1.iter().zip(&labels).all(|(a, b)| series::same(a, b))
        };
        let found = if self.index.is_empty() {
            rows.iter().position(same)
        } else {
            self.index.find(hash, |&i| same(&rows[i])).copied()
        };
        match found {
            Some(i) => rows[i].2 += n,
            None => {
                rows.push((hash, labels, n));
                index_long_list(&mut self.index, rows.len(), |i| rows[i].0);
            }
        }
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
) -> Vec<(u64, [&'a str; SLOTS], u32)> {
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

/// The metric label for a Namespace label key, as kube-state-metrics names
/// them: `label_` and the key with every character that a Prometheus label
/// name cannot hold replaced by `_` (`app.kubernetes.io/team` gives
/// `label_app_kubernetes_io_team`).
pub fn namespace_label_name(key: &str) -> String {
    let sanitized: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("label_{sanitized}")
}

/// (key, metric label) for each `--namespace-labels` key, without empty
/// keys and without keys whose metric label an earlier key already has.
fn namespace_label_names(keys: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for key in keys.iter().filter(|k| !k.is_empty()) {
        let name = namespace_label_name(key);
        match out.iter().find(|(_, n)| *n == name) {
            Some((first, _)) => {
                warn!(
                    key,
                    first,
                    label = name,
                    "namespace label skipped: same metric label as another"
                )
            }
            None => out.push((key.clone(), name)),
        }
    }
    out
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
) -> Vec<(u64, [&'a str; SLOTS], u32)> {
    let nonempty = |s: Option<&'a str>| s.filter(|s| !s.is_empty());
    let report_source = nonempty(report.source())
        .or_else(|| report.results().next().and_then(|r| r.source))
        .unwrap_or("");
    let mut rows = Rows::new(table);
    for r in report.results() {
        let category = if r.category.is_empty() {
            POLICY_REPORTER_NO_CATEGORY
        } else {
            r.category
        };
        let labels = [
            namespace,
            r.policy,
            category,
            r.severity,
            nonempty(r.source).unwrap_or(report_source),
            r.outcome.as_str(),
            "",
            "",
        ];
        rows.add(labels, 1);
    }
    rows.rows
}

/// Free memory is handed back to the system at most this often, and this
/// long after it was freed. It bought the steady RSS at 50k reports
/// (58.9 → 53.7 MiB, docs/benchmarks.md).
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Apply an event; a completed relist or a delete has freed memory.
fn handle(aggregate: &mut Aggregate, trimmer: &Trimmer, event: SourceEvent) {
    if matches!(
        event,
        SourceEvent::ResyncEnd { .. } | SourceEvent::Delete { .. }
    ) {
        trimmer.freed();
    }
    aggregate.handle(event);
}

/// Entries a list is searched linearly before [`index_long_list`] indexes it.
/// Reports with few resources keep no index (docs/benchmarks.md); the value
/// was not tuned separately.
const LINEAR: usize = 16;

/// Keep `index` over a list of `len` entries, which just grew by one: empty
/// while the list is short, then holding every position by its hash.
fn index_long_list(index: &mut HashTable<usize>, len: usize, hash: impl Fn(usize) -> u64) {
    if len <= LINEAR {
        return;
    }
    if index.is_empty() {
        for i in 0..len {
            index.insert_unique(hash(i), i, |&j| hash(j));
        }
    } else {
        index.insert_unique(hash(len - 1), len - 1, |&j| hash(j));
    }
}

/// Consume events until every sender is gone. After each batch of changes,
/// and at most once per `min_interval` under load (but at once when the
/// aggregate becomes ready), call `publish` with the state so readers see
/// it. Every [`Aggregate::tick_interval`], read the clock, so stale counts
/// follow time without a change of any report. When idle after relists or
/// deletes, hand freed memory back to the system (at most once a second, on
/// a task of its own).
pub async fn run(
    mut aggregate: Aggregate,
    mut events: mpsc::Receiver<SourceEvent>,
    min_interval: Duration,
    mut publish: impl FnMut(&Aggregate),
) -> Aggregate {
    // Events handled before the publish check: bounds how long a flood of
    // events can delay a publish. Not measured separately.
    const BATCH: usize = 4096;
    publish(&aggregate);
    let mut published = aggregate.generation();
    let mut published_ready = aggregate.ready();
    let trimmer = Trimmer::spawn(TRIM_EVERY);
    let mut last_publish = tokio::time::Instant::now();
    let tick_every = aggregate.tick_interval();
    let mut next_tick = tick_every.map(|every| last_publish + every);
    loop {
        // Wake for the next publish, if one is pending, and the next tick.
        let publish_at = (published != aggregate.generation()).then(|| last_publish + min_interval);
        let event = match publish_at.into_iter().chain(next_tick).min() {
            Some(at) => match tokio::time::timeout_at(at, events.recv()).await {
                Ok(Some(ev)) => Some(ev),
                Ok(None) => break,
                Err(_elapsed) => None,
            },
            None => match events.recv().await {
                Some(ev) => Some(ev),
                None => break,
            },
        };
        if let Some(ev) = event {
            handle(&mut aggregate, &trimmer, ev);
            for _ in 0..BATCH {
                match events.try_recv() {
                    Ok(ev) => handle(&mut aggregate, &trimmer, ev),
                    Err(_) => break,
                }
            }
        }
        let now = tokio::time::Instant::now();
        if let (Some(at), Some(every)) = (next_tick, tick_every)
            && now >= at
        {
            aggregate.tick();
            next_tick = Some(now + every);
        }
        // Becoming ready is published at once: /readyz need not wait.
        let became_ready = aggregate.ready() && !published_ready;
        if published != aggregate.generation()
            && (now >= last_publish + min_interval || became_ready)
        {
            published_ready = aggregate.ready();
            publish(&aggregate);
            published = aggregate.generation();
            last_publish = now;
        }
    }
    if published != aggregate.generation() {
        publish(&aggregate);
    }
    aggregate
}

#[cfg(test)]
mod tests;
