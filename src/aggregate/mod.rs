//! The aggregator: the one owner of the exporter's state.
//!
//! It consumes [`SourceEvent`]s in order and keeps, per object, only its
//! compact contribution (series ids and counts). An update subtracts the old
//! contribution and adds the new one, a delete subtracts, and a relist
//! replaces an origin's whole set atomically when it completes. Readers see
//! the state only through the read methods below, and [`run`] hands it to a
//! publisher after each batch of changes.

pub mod series;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::report::{self, DecodedReport, ReportKind};
use crate::source::{Origin, SourceEvent, SourceObject};
use series::{SLOTS, SeriesId, SeriesTable};

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
const RULE: usize = 6;
const KIND: usize = 7;

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

/// Identity of an object within its origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ObjectId {
    kind: ReportKind,
    namespace: Box<str>,
    name: Box<str>,
}

/// What one object contributes. `None` marks an invalid object, kept so that
/// it is logged once and its old contribution stays removed.
type Entry = Option<Box<[(SeriesId, u32)]>>;

/// Self-observation counters kept next to the state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Objects currently held, per resource.
    pub objects: BTreeMap<&'static str, u64>,
    /// Invalid objects or inputs seen, per resource.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Failed watch or list requests, per resource.
    pub watch_errors: BTreeMap<&'static str, u64>,
}

/// The resource label under which unreadable files are counted.
pub const FILE_RESOURCE: &str = "files";

/// The aggregated state.
#[derive(Debug)]
pub struct Aggregate {
    labels: LabelOptions,
    series: SeriesTable,
    origins: HashMap<Origin, HashMap<ObjectId, Entry>>,
    pending: HashMap<Origin, HashMap<ObjectId, Entry>>,
    stats: Stats,
    sync: BTreeMap<String, bool>,
    generation: u64,
}

impl Aggregate {
    /// An empty aggregate with the given optional labels.
    pub fn new(labels: LabelOptions) -> Self {
        let mut stats = Stats::default();
        for k in ReportKind::ALL {
            stats.objects.insert(k.resource(), 0);
            stats.invalid.insert(k.resource(), 0);
            stats.watch_errors.insert(k.resource(), 0);
        }
        stats.invalid.insert(FILE_RESOURCE, 0);
        Self {
            labels,
            series: SeriesTable::default(),
            origins: HashMap::new(),
            pending: HashMap::new(),
            stats,
            sync: BTreeMap::new(),
            generation: 0,
        }
    }

    /// Declare a sync target that must report [`SourceEvent::Synced`] before
    /// the aggregate is ready.
    pub fn expect_sync(&mut self, target: impl Into<String>) {
        self.sync.entry(target.into()).or_insert(false);
        self.generation += 1;
    }

    /// Apply one event.
    pub fn handle(&mut self, event: SourceEvent) {
        self.generation += 1;
        match event {
            SourceEvent::Apply { origin, object } => {
                let (id, entry) = self.prepare(&origin, &object, false);
                for (s, n) in entry.iter().flat_map(|e| e.iter()) {
                    self.series.add(*s, *n);
                }
                match self.origins.entry(origin).or_default().insert(id, entry) {
                    Some(old) => self.drop_values(old),
                    None => {
                        *self
                            .stats
                            .objects
                            .entry(object.kind.resource())
                            .or_default() += 1
                    }
                }
            }
            SourceEvent::Delete { origin, object } => {
                let id = object_id(&object);
                let removed = self.origins.get_mut(&origin).and_then(|m| m.remove(&id));
                if let Some(old) = removed {
                    self.retire(old, object.kind);
                }
            }
            SourceEvent::ResyncStart { origin } => {
                if let Some(stale) = self.pending.insert(origin, HashMap::new()) {
                    self.discard_pending(stale);
                }
            }
            SourceEvent::ResyncApply { origin, object } => {
                let (id, entry) = self.prepare(&origin, &object, true);
                let pending = self.pending.entry(origin).or_default();
                if let Some(Some(dup)) = pending.insert(id, entry) {
                    for (s, _) in dup.iter() {
                        self.series.release(*s);
                    }
                }
            }
            SourceEvent::ResyncEnd { origin } => self.finish_resync(origin),
            SourceEvent::Synced { target } => {
                self.sync.insert(target, true);
            }
            SourceEvent::Invalid {
                resource,
                location,
                reason,
            } => {
                warn!(resource, location, reason, "skipping invalid input");
                *self.stats.invalid.entry(resource).or_default() += 1;
            }
            SourceEvent::WatchError { resource } => {
                *self.stats.watch_errors.entry(resource).or_default() += 1;
            }
        }
    }

    /// Decode an object into an entry whose series references are taken.
    /// Logs and counts it when it newly becomes invalid.
    fn prepare(
        &mut self,
        origin: &Origin,
        object: &SourceObject,
        relist: bool,
    ) -> (ObjectId, Entry) {
        let id = object_id(object);
        let entry = match report::decode(&object.report) {
            Ok(decoded) => Some(self.acquire_rows(&decoded, &id.namespace)),
            Err(err) => {
                let was_invalid = self
                    .origins
                    .get(origin)
                    .and_then(|m| m.get(&id))
                    .is_some_and(Option::is_none);
                if !was_invalid {
                    warn!(
                        kind = %object.kind,
                        namespace = %id.namespace,
                        name = %id.name,
                        origin = %origin,
                        reason = %err,
                        "skipping invalid report"
                    );
                    *self
                        .stats
                        .invalid
                        .entry(object.kind.resource())
                        .or_default() += 1;
                } else {
                    debug!(name = %id.name, relist, "report still invalid");
                }
                None
            }
        };
        (id, entry)
    }

    fn acquire_rows(
        &mut self,
        report: &DecodedReport<'_>,
        namespace: &str,
    ) -> Box<[(SeriesId, u32)]> {
        let rows = count_rows(report, namespace, self.labels);
        rows.into_iter()
            .map(|(labels, n)| (self.series.acquire(&labels), n))
            .collect()
    }

    /// Remove an object's contribution entirely.
    fn retire(&mut self, old: Entry, kind: ReportKind) {
        self.drop_values(old);
        if let Some(n) = self.stats.objects.get_mut(kind.resource()) {
            *n = n.saturating_sub(1);
        }
    }

    fn drop_values(&mut self, old: Entry) {
        for (s, n) in old.iter().flat_map(|e| e.iter()) {
            self.series.sub(*s, *n);
            self.series.release(*s);
        }
    }

    fn discard_pending(&mut self, pending: HashMap<ObjectId, Entry>) {
        for (s, _) in pending.values().flatten().flat_map(|e| e.iter()) {
            self.series.release(*s);
        }
    }

    fn finish_resync(&mut self, origin: Origin) {
        let fresh = self.pending.remove(&origin).unwrap_or_default();
        for (s, n) in fresh.values().flatten().flat_map(|e| e.iter()) {
            self.series.add(*s, *n);
        }
        for id in fresh.keys() {
            *self.stats.objects.entry(id.kind.resource()).or_default() += 1;
        }
        let old = if fresh.is_empty() {
            self.origins.remove(&origin).unwrap_or_default()
        } else {
            self.origins.insert(origin, fresh).unwrap_or_default()
        };
        for (id, entry) in old {
            self.retire(entry, id.kind);
        }
    }

    /// Whether every expected source has finished its initial list.
    pub fn ready(&self) -> bool {
        self.sync.values().all(|s| *s)
    }

    /// Sync targets still waiting for their initial list.
    pub fn pending_targets(&self) -> Vec<&str> {
        self.sync
            .iter()
            .filter(|(_, s)| !**s)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// Every sync target and whether it has synced.
    pub fn sync_state(&self) -> &BTreeMap<String, bool> {
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

    /// Increases with every change; equal values mean equal state.
    pub fn generation(&self) -> u64 {
        self.generation
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

    /// All `policyreport_results` series as owned label values, sorted.
    pub fn results_snapshot(&self) -> BTreeMap<Vec<String>, u64> {
        let mut out = BTreeMap::new();
        self.for_each_result(|labels, n| {
            out.insert(labels.iter().map(|s| s.to_string()).collect(), n);
        });
        out
    }

    /// Number of live series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

fn object_id(object: &SourceObject) -> ObjectId {
    let (namespace, name) = object.id();
    ObjectId {
        kind: object.kind,
        namespace: namespace.into(),
        name: name.into(),
    }
}

/// Apply the counting rules to one report: each result counts once per
/// listed subject, or once when it lists none.
fn count_rows<'a>(
    report: &'a DecodedReport<'a>,
    namespace: &'a str,
    opts: LabelOptions,
) -> Vec<([&'a str; SLOTS], u32)> {
    let mut rows: HashMap<[&'a str; SLOTS], u32> = HashMap::new();
    let top_source = report.source.as_ref().map(|s| s.as_str());
    let scope_kind = report
        .scope
        .as_ref()
        .and_then(|s| s.kind.as_ref())
        .map(|k| k.as_str());
    for r in &report.results {
        let mut labels = [
            namespace,
            r.policy.as_str(),
            r.category.as_ref().map_or("", |t| t.as_str()),
            r.severity.as_ref().map_or("", |t| t.as_str()),
            r.source
                .as_ref()
                .map(|t| t.as_str())
                .or(top_source)
                .unwrap_or(""),
            r.result.as_str(),
            if opts.rule {
                r.rule.as_ref().map_or("", |t| t.as_str())
            } else {
                ""
            },
            "",
        ];
        let subjects = r.subjects();
        if subjects.is_empty() {
            if opts.kind {
                labels[KIND] = scope_kind.unwrap_or("");
            }
            *rows.entry(labels).or_default() += 1;
        } else if !opts.kind {
            *rows.entry(labels).or_default() += subjects.len() as u32;
        } else {
            for s in subjects {
                labels[KIND] = s.kind.as_ref().map_or("", |t| t.as_str());
                *rows.entry(labels).or_default() += 1;
            }
        }
    }
    rows.into_iter().collect()
}

/// Consume events until every sender is gone. After each batch of changes,
/// and at most once per `min_interval` under load, call `publish` with the
/// state so readers see it.
pub async fn run(
    mut aggregate: Aggregate,
    mut events: mpsc::Receiver<SourceEvent>,
    min_interval: Duration,
    mut publish: impl FnMut(&Aggregate),
) -> Aggregate {
    const BATCH: usize = 4096;
    publish(&aggregate);
    let mut published = aggregate.generation();
    let mut last_publish = tokio::time::Instant::now();
    loop {
        let event = if published != aggregate.generation() {
            match tokio::time::timeout_at(last_publish + min_interval, events.recv()).await {
                Ok(Some(ev)) => Some(ev),
                Ok(None) => break,
                Err(_elapsed) => None,
            }
        } else {
            match events.recv().await {
                Some(ev) => Some(ev),
                None => break,
            }
        };
        if let Some(ev) = event {
            aggregate.handle(ev);
            for _ in 0..BATCH {
                match events.try_recv() {
                    Ok(ev) => aggregate.handle(ev),
                    Err(_) => break,
                }
            }
        }
        let now = tokio::time::Instant::now();
        if published != aggregate.generation() && now >= last_publish + min_interval {
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
