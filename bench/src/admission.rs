//! Admission Events as Kyverno ≥ 1.12 writes them: one `PolicyViolation`
//! Event per occurrence (no count folding), about the ClusterPolicy, in
//! namespace `default` (where client-go's recorder puts Events about
//! cluster-scoped objects), named `<policy>.<hex nanoseconds>`, with
//! `related` naming the Pod and `action` saying whether it was blocked.
//!
//! A busy admission path keeps tens of thousands of them alive for the API
//! server's `--event-ttl` (1 h by default); the memory benchmark measures
//! what each one costs the exporter. The same [`EventSpec`] always yields
//! the same Events, byte for byte.

use policyreport_test_support::rng::Rng;
use serde_json::{Value, json};

use crate::reportgen::{Check, LIBRARY};

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    /// Number of Events.
    pub events: usize,
    /// Namespaces the admitted Pods live in.
    pub namespaces: usize,
    /// Set `metadata.uid` (an API server sets it; a fake one assigns its
    /// own when absent).
    pub uids: bool,
    /// The seed.
    pub seed: u64,
}

impl EventSpec {
    /// `events` Events about Pods in 200 namespaces, without uids.
    pub fn new(events: usize, seed: u64) -> EventSpec {
        EventSpec {
            events,
            namespaces: 200,
            uids: false,
            seed,
        }
    }
}

/// The Events of a spec, one at a time (200k Events as JSON values would
/// take about a GiB).
pub struct Events {
    spec: EventSpec,
    rng: Rng,
    next: usize,
    /// Nanoseconds of the next Event's time; advances with each one.
    nanos: u64,
}

/// An Event's fields as Kyverno fills them; every Event counts 1.
pub fn events(spec: &EventSpec) -> Events {
    Events {
        spec: spec.clone(),
        rng: Rng::new(spec.seed ^ 0xE7E4_7000),
        next: 0,
        // 2026-11-27T05:00:00Z
        nanos: 1_795_755_600_000_000_000,
    }
}

impl Iterator for Events {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        if self.next >= self.spec.events {
            return None;
        }
        self.next += 1;
        let rng = &mut self.rng;
        self.nanos += rng.range(1_000, 50_000_000);
        // Admission failures concentrate on a few policies, as in reports.
        let (index, policy) = loop {
            let i = rng.below(8) as usize;
            if LIBRARY[i].check == Check::Validate {
                break (i, &LIBRARY[i]);
            }
        };
        let rule = *rng.pick(policy.rules);
        let namespace = format!("ns-{:03}", rng.below(self.spec.namespaces.max(1) as u64));
        let pod = format!("web-{}-{}", rng.suffix(10), rng.suffix(5));
        let blocked = rng.chance(0.5);
        let (action, status) = if blocked {
            ("Resource Blocked", "fail (blocked)")
        } else {
            ("Resource Passed", "fail")
        };
        let seconds = self.nanos / 1_000_000_000;
        let micros = self.nanos / 1_000 % 1_000_000;
        let time = format!(
            "{}.{micros:06}Z",
            crate::reportgen::rfc3339(seconds).trim_end_matches('Z')
        );
        let mut metadata = json!({
            "name": format!("{}.{:x}", policy.name, self.nanos),
            "namespace": "default",
            "creationTimestamp": crate::reportgen::rfc3339(seconds),
        });
        if self.spec.uids {
            metadata["uid"] = rng.uid().into();
        }
        Some(json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": metadata,
            "involvedObject": {
                "apiVersion": "kyverno.io/v1",
                "kind": "ClusterPolicy",
                "name": policy.name,
                "uid": format!("00000000-0000-4000-8000-{index:012x}"),
                "resourceVersion": "1042",
            },
            "reason": "PolicyViolation",
            "message": format!(
                "Pod {namespace}/{pod}: [{rule}] {status}; validation error: {} rule {rule} failed at path {}",
                policy.message, policy.path
            ),
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "eventTime": time,
            "type": "Warning",
            "action": action,
            "related": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": pod},
            "reportingComponent": "kyverno-admission",
            "reportingInstance": "kyverno-admission-kyverno-admission-controller-6c8d9f7b5-x2x4k",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_spec_gives_the_same_events() {
        let spec = EventSpec {
            uids: true,
            ..EventSpec::new(50, 7)
        };
        let a: Vec<Value> = events(&spec).collect();
        let b: Vec<Value> = events(&spec).collect();
        assert_eq!(a.len(), 50);
        assert_eq!(a, b);
        let names: std::collections::BTreeSet<&str> = a
            .iter()
            .map(|e| e["metadata"]["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names.len(), 50, "every Event has a name of its own");
        let blocked = a
            .iter()
            .filter(|e| e["action"] == "Resource Blocked")
            .count();
        assert!((10..=40).contains(&blocked), "{blocked} of 50 blocked");
        assert_eq!(
            a[0]["message"].as_str().map(|m| m.contains("] fail")),
            Some(true)
        );
    }
}
