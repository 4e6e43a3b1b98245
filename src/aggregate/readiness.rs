//! Readiness: the sync targets (one per watched kind, or the files) and
//! whether each has finished its initial list and is healthy. The
//! aggregate is ready once every target has listed, and stays ready.
//!
//! Serves `policyreport_exporter_synced` and `/readyz`.

use std::collections::BTreeMap;

use super::Aggregate;
use crate::exposition::{Family, Type, always};

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

/// The sync targets and whether the aggregate has been ready.
#[derive(Debug, Default)]
pub(super) struct Readiness {
    sync: BTreeMap<String, SyncState>,
    /// Set once every target has listed; readiness never goes back.
    ready_once: bool,
}

impl Readiness {
    /// A target that must list before the aggregate is ready.
    pub(super) fn expect(&mut self, target: String) {
        self.sync.entry(target).or_default();
    }

    /// A target that went away.
    pub(super) fn forget(&mut self, target: &str) {
        self.sync.remove(target);
    }

    /// A target finished its initial list.
    pub(super) fn synced(&mut self, target: String) {
        self.sync.insert(
            target,
            SyncState {
                listed: true,
                healthy: true,
            },
        );
    }

    /// A target whose requests failed works again.
    pub(super) fn recovered(&mut self, target: &str) {
        if let Some(s) = self.sync.get_mut(target) {
            s.healthy = true;
        }
    }

    /// A list or watch request of a target failed.
    pub(super) fn failed(&mut self, target: &str) {
        if let Some(s) = self.sync.get_mut(target) {
            s.healthy = false;
        }
    }

    /// After each event: remember when every target has listed.
    pub(super) fn settle(&mut self) {
        if !self.ready_once && !self.sync.is_empty() && self.sync.values().all(|s| s.listed) {
            self.ready_once = true;
        }
    }

    fn ready(&self) -> bool {
        self.ready_once || self.sync.values().all(|s| s.listed)
    }
}

impl Aggregate {
    /// Declare a sync target that must report
    /// [`SourceEvent::Synced`](crate::source::SourceEvent::Synced) before
    /// the aggregate is ready.
    pub fn expect_sync(&mut self, target: impl Into<String>) {
        self.readiness.expect(target.into());
        self.generation += 1;
    }

    /// Whether every expected source has finished its initial list. Once
    /// true it stays true: a kind discovered later does not make a running
    /// exporter unready (its `synced` gauge shows its progress).
    pub fn ready(&self) -> bool {
        self.readiness.ready()
    }

    /// Sync targets still waiting for their initial list, while not ready.
    pub fn pending_targets(&self) -> Vec<&str> {
        if self.ready() {
            return Vec::new();
        }
        self.readiness
            .sync
            .iter()
            .filter(|(_, s)| !s.listed)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// Every sync target and where it stands.
    pub fn sync_state(&self) -> &BTreeMap<String, SyncState> {
        &self.readiness.sync
    }
}

/// The families this index serves, in serving order.
pub(super) const FAMILIES: &[Family<Aggregate>] = &[Family {
    name: "policyreport_exporter_synced",
    help: "1 once the initial list of a source is complete, 0 before it and while its list or watch requests fail.",
    kind: Type::Gauge,
    when: always,
    samples: |a, s| {
        for (target, state) in a.sync_state() {
            s.write([("resource", target.as_str())], u64::from(state.synced()));
        }
    },
}];

#[cfg(test)]
mod tests {
    use crate::aggregate::{Aggregate, Config};
    use crate::source::SourceEvent;

    #[test]
    fn readiness_follows_sync_targets() {
        let mut agg = Aggregate::new(Config::default());
        assert!(agg.ready());
        agg.expect_sync("a");
        agg.expect_sync("b");
        assert_eq!(agg.pending_targets(), vec!["a", "b"]);
        agg.handle(SourceEvent::Synced { target: "a".into() });
        assert!(!agg.ready());
        agg.handle(SourceEvent::Synced { target: "b".into() });
        assert!(agg.ready());
    }
}
