//! Self-observation: objects held, invalid inputs, watch errors and relists
//! per resource, and for `summary` the refused inputs themselves.
//!
//! Serves `policyreport_exporter_objects`,
//! `policyreport_exporter_invalid_objects_total`,
//! `policyreport_exporter_watch_errors_total` and
//! `policyreport_exporter_relists_total`.

use std::collections::BTreeMap;

use tracing::{debug, warn};

use super::Aggregate;
use crate::decode::DecodeError;
use crate::exposition::{Family, Samples, Type, always};
use crate::kind::{FILE_RESOURCE, Kind};
use crate::source::{Origin, RelistReason, SourceObject};

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

impl Stats {
    /// Every counter at 0, for every resource and relist reason.
    pub(super) fn new() -> Self {
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
        stats
    }

    /// Objects held of `kind` changed by `delta`.
    pub(super) fn count_object(&mut self, kind: Kind, delta: i64) {
        let n = self.objects.entry(kind.resource()).or_default();
        *n = n.saturating_add_signed(delta);
    }
}

impl Aggregate {
    /// Self-observation counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
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

    /// Input that could not be read as objects at all.
    pub(super) fn refused(&mut self, resource: &'static str, location: String, reason: String) {
        warn!(resource, location, reason, "skipping invalid input");
        *self.stats.invalid.entry(resource).or_default() += 1;
        self.problem(resource, location, reason);
    }

    /// A full relist of `resource` began.
    pub(super) fn count_relist(&mut self, resource: &'static str, reason: RelistReason) {
        *self
            .stats
            .relists
            .entry((resource, reason.as_str()))
            .or_default() += 1;
    }

    /// A list or watch request for `resource` failed.
    pub(super) fn count_watch_error(&mut self, resource: &'static str) {
        *self.stats.watch_errors.entry(resource).or_default() += 1;
    }

    /// Log and count an object that could not be decoded, unless the
    /// version of it held could not either (`was_invalid`): an object
    /// rewritten while still invalid counts once, and later versions are
    /// logged at debug level only.
    pub(super) fn count_invalid(
        &mut self,
        was_invalid: bool,
        origin: &Origin,
        object: &SourceObject,
        err: &DecodeError,
    ) {
        let (namespace, name) = object.id();
        if was_invalid {
            debug!(kind = %object.kind, name = %name, "object still invalid");
            return;
        }
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
}

/// The families this index serves, in serving order.
pub(super) const FAMILIES: &[Family<Aggregate>] = &[
    Family {
        name: "policyreport_exporter_objects",
        help: "Objects currently held, per watched resource.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| per_resource(s, &a.stats().objects),
    },
    Family {
        name: "policyreport_exporter_invalid_objects",
        help: "Objects or files skipped because they could not be decoded.",
        kind: Type::Counter,
        when: always,
        samples: |a, s| per_resource(s, &a.stats().invalid),
    },
    Family {
        name: "policyreport_exporter_watch_errors",
        help: "Failed list or watch requests against the API server.",
        kind: Type::Counter,
        when: always,
        samples: |a, s| per_resource(s, &a.stats().watch_errors),
    },
    Family {
        name: "policyreport_exporter_relists",
        help: "Full relists of a watched resource, by reason: expired (the server answered 410), error (a failed list retried), interval (--relist-interval).",
        kind: Type::Counter,
        when: always,
        samples: |a, s| {
            for ((resource, reason), n) in &a.stats().relists {
                s.write([("resource", *resource), ("reason", *reason)], *n);
            }
        },
    },
];

/// One sample per watched resource.
fn per_resource(s: &mut Samples<'_>, map: &BTreeMap<&str, u64>) {
    for (resource, n) in map {
        s.write([("resource", *resource)], *n);
    }
}
