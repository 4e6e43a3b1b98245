//! The aggregator: the one owner of the exporter's state.
//!
//! It consumes [`SourceEvent`]s in order and keeps, per object, only its
//! compact contribution. Each index owns its part of the state, how a
//! contribution is applied to it and retired from it, and its readers:
//!
//! - `reports`: results, control tallies, report freshness and, for
//!   `summary --failing`, the work list;
//! - `events`: admission Events and their counters;
//! - `policies`: each policy's mode and how it varies by namespace;
//! - `namespaces`: Namespace labels;
//! - `policy_reporter`: Policy Reporter's families (`--compat`);
//! - `readiness` and `stats`: sync targets and self-observation.
//!
//! This module holds the shared types, the interned strings every index
//! shares (`series::Strings`, lent to each index beside its own state), and
//! dispatches each event. Objects other than Events are reduced to
//! contributions (`contribution`), Events to what they add (`events`), and
//! a generic store (`relist`) applies both: an update makes the new one
//! visible and retires the old one, a delete retires, and a relist replaces
//! an origin's whole set atomically when it completes. Readers see the state only
//! through the read methods, and [`run()`] hands it to a publisher after each
//! batch of changes.

mod admissions;
mod contribution;
mod labels;
mod namespaces;
mod policy_modes;
mod policy_reporter;
mod readiness;
mod relist;
mod reports;
mod run;
pub mod series;
mod short_list;
mod stats;
mod uid;

pub use labels::{ExtraLabel, LABEL_NAMES, LabelOptions};
pub use namespaces::namespace_label_name;
pub use policy_reporter::{POLICY_REPORTER_NO_CATEGORY, PolicyReporterLabels};
pub use readiness::SyncState;
pub use reports::freshness::{Clock, DEFAULT_STALE_AFTER, FreshnessRow};
pub use reports::tallies::ControlStatus;
pub use reports::worklist::{FailingEntry, MESSAGE_CHARS};
pub use run::{Publisher, run};
pub use stats::{Problem, Stats};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::controls::Controls;
use crate::exposition::Family;
use crate::kind::Kind;
use crate::namespace_filter::NamespaceFilter;
use crate::source::{Origin, SourceEvent, SourceObject};
use admissions::{Admissions, EventStore};
use contribution::{Contribution, ObjectId};
use namespaces::Namespaces;
use policy_modes::Policies;
use readiness::Readiness;
use relist::Store;
use reports::Reports;
use series::Strings;

/// Every family the indexes serve, in serving order; each index declares
/// its own beside its state.
pub static FAMILIES: &[&[Family<Aggregate>]] = &[
    reports::FAMILIES,
    reports::tallies::FAMILIES,
    admissions::FAMILIES,
    policy_modes::FAMILIES,
    namespaces::FAMILIES,
    reports::freshness::FAMILIES,
    policy_reporter::FAMILIES,
    stats::FAMILIES,
    readiness::FAMILIES,
];

/// Hash maps of the aggregate: foldhash is fast, and seeded per process so
/// crafted names cannot force collisions.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// An insertion-ordered [`Map`].
type OrderedMap<K, V> = IndexMap<K, V, foldhash::fast::RandomState>;

/// What the aggregate keeps beyond what every command needs: what
/// `serve`'s flags add (`ServeArgs::outputs` maps them).
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// Optional labels of `policyreport_results` (`--extra-labels`).
    pub labels: LabelOptions,
    /// Also count Policy Reporter's simple-mode families
    /// (`--compat policy-reporter`).
    pub policy_reporter: bool,
    /// Namespace label keys served in `policyreport_namespace_info`
    /// (`--namespace-labels`); none serves no such family.
    pub namespace_labels: Vec<String>,
}

/// How the aggregate is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// What it serves beyond what every command needs.
    pub outputs: Outputs,
    /// The compliance controls.
    pub controls: Arc<Controls>,
    /// Which namespaces count (`--namespace-include`, `--namespace-exclude`).
    pub namespace_filter: NamespaceFilter,
    /// A report is stale when its newest result timestamp is older than
    /// this (`--stale-after`); zero turns staleness off.
    pub stale_after: Duration,
    /// The clock staleness is measured by.
    pub clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            outputs: Outputs::default(),
            controls: Arc::default(),
            namespace_filter: NamespaceFilter::default(),
            stale_after: DEFAULT_STALE_AFTER,
            clock: Clock::system(),
        }
    }
}

/// The aggregated state.
#[derive(Debug)]
pub struct Aggregate {
    namespace_filter: NamespaceFilter,
    /// The strings every index interns and resolves (see `series`), lent
    /// to each through [`Aggregate::split`] or read beside it.
    strings: Strings,
    /// The report index (see `reports`).
    reports: Reports,
    /// The admission counters (see `events`).
    admissions: Admissions,
    /// Live Events, apart from the other objects: they are many, and each
    /// needs only its uid and what it added (see `events`).
    events: EventStore,
    /// The policy index (see `policies`).
    policies: Policies,
    /// The Namespace index (see `namespaces`).
    namespaces: Namespaces,
    /// The contributions of every object but Events (see `relist`).
    objects: Store<ObjectId, Contribution>,
    stats: Stats,
    /// The sync targets (see `readiness`).
    readiness: Readiness,
    generation: u64,
    /// Refused inputs, when kept (`summary` only).
    problems: Option<Vec<Problem>>,
}

impl Aggregate {
    /// An empty aggregate.
    pub fn new(config: Config) -> Self {
        Self {
            strings: Strings::default(),
            reports: Reports::new(&config),
            namespace_filter: config.namespace_filter,
            admissions: Admissions::default(),
            events: EventStore::default(),
            policies: Policies::default(),
            namespaces: Namespaces::new(&config.outputs.namespace_labels),
            objects: Store::default(),
            stats: Stats::new(),
            readiness: Readiness::default(),
            generation: 0,
            problems: None,
        }
    }

    /// Apply one event.
    pub fn handle(&mut self, event: SourceEvent) {
        self.generation += 1;
        self.apply_event(event);
        self.readiness.settle();
    }

    /// Hand an event to what it concerns: Events to the admissions, other
    /// objects to the relist buffering below, the rest to readiness and
    /// the self-observation counters.
    fn apply_event(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Apply { origin, object } if object.kind == Kind::Event => {
                self.apply_admission(origin, &object)
            }
            SourceEvent::Delete { origin, object } if object.kind == Kind::Event => {
                self.delete_admission(&origin, &object)
            }
            SourceEvent::RelistApply { origin, object } if object.kind == Kind::Event => {
                self.admission_relist_apply(origin, &object)
            }
            SourceEvent::Apply { origin, object } => self.apply_object(origin, &object),
            SourceEvent::Delete { origin, object } => self.delete_object(&origin, &object),
            SourceEvent::RelistStart { origin } => self.relist_start(origin),
            SourceEvent::RelistApply { origin, object } => self.relist_apply(origin, &object),
            SourceEvent::RelistEnd { origin } => self.relist_end(origin),
            SourceEvent::ExpectSync { target } => self.readiness.expect(target),
            SourceEvent::Forget { target } => self.readiness.forget(&target),
            SourceEvent::Synced { target } => self.readiness.synced(target),
            SourceEvent::Recovered { target } => self.readiness.recovered(&target),
            SourceEvent::Invalid {
                resource,
                location,
                reason,
            } => self.refused(resource, location, reason),
            SourceEvent::RelistCause { resource, reason } => self.count_relist(resource, reason),
            SourceEvent::WatchError { resource } => {
                self.count_watch_error(resource);
                self.readiness.failed(resource);
            }
        }
    }

    /// An object other than an Event was created or updated.
    fn apply_object(&mut self, origin: Origin, object: &SourceObject) {
        let (id, new) = self.prepare(&origin, object);
        let (store, mut index) = self.split();
        store.apply(&mut index, origin, id, new);
    }

    /// An object other than an Event was deleted.
    fn delete_object(&mut self, origin: &Origin, object: &SourceObject) {
        let id = self.object_id(object);
        let (store, mut index) = self.split();
        store.delete(&mut index, origin, &id);
    }

    /// A relist of `origin` begins; an unfinished one is abandoned.
    fn relist_start(&mut self, origin: Origin) {
        self.admission_relist_start(origin.clone());
        let (store, mut index) = self.split();
        store.relist_start(&mut index, origin);
    }

    /// An object other than an Event of the relist in progress.
    fn relist_apply(&mut self, origin: Origin, object: &SourceObject) {
        let (id, new) = self.prepare(&origin, object);
        let (store, mut index) = self.split();
        store.relist_apply(&mut index, origin, id, new);
    }

    /// The relist of `origin` is complete.
    fn relist_end(&mut self, origin: Origin) {
        self.admission_relist_end(origin.clone());
        let (store, mut index) = self.split();
        store.relist_end(&mut index, origin);
    }

    /// The optional labels in use.
    pub fn labels(&self) -> LabelOptions {
        self.reports.labels
    }

    /// The configured controls.
    pub fn controls(&self) -> &Controls {
        &self.reports.controls
    }

    /// Increases with every change; equal values mean equal state.
    pub fn generation(&self) -> u64 {
        self.generation
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

#[cfg(test)]
mod tests;
