//! The aggregator's tests by topic, with the builders and readers they
//! share.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::source::Body;

fn object(kind: Kind, ns: &str, name: &str, body: serde_json::Value) -> SourceObject {
    let mut v = body;
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    v["metadata"]["name"] = json!(name);
    v["metadata"]["namespace"] = json!(ns);
    let text = v.to_string();
    if kind.is_report() {
        SourceObject::report(kind, serde_json::from_str(&text).expect("test report"))
    } else {
        SourceObject::object(kind, serde_json::from_str(&text).expect("test object"))
    }
}

fn new_agg(labels: LabelOptions) -> Aggregate {
    Aggregate::new(Config {
        outputs: Outputs {
            labels,
            ..Outputs::default()
        },
        ..Config::default()
    })
}

fn apply(agg: &mut Aggregate, origin: &Origin, object: SourceObject) {
    agg.handle(SourceEvent::Apply {
        origin: origin.clone(),
        object,
    });
}

fn snapshot(agg: &Aggregate) -> Vec<(String, u64)> {
    agg.results_snapshot()
        .into_iter()
        .map(|(k, v)| (k.join("|"), v))
        .collect()
}

const W: Origin = Origin::Watch(Kind::PolicyReport);

type ControlSnapshot = BTreeMap<(String, String, String, &'static str), u64>;

fn controls_of(agg: &Aggregate) -> ControlSnapshot {
    let mut out = BTreeMap::new();
    agg.for_each_control(|c, ns, kind, status, n| {
        out.insert(
            (
                c.to_string(),
                ns.to_string(),
                kind.to_string(),
                status.as_str(),
            ),
            n,
        );
    });
    out
}

// The `status` label values of `policyreport_control_resources`.
const OK: &str = "compliant";
const BAD: &str = "noncompliant";
const EXC: &str = "excepted";

/// 2024-11-12T09:20:00Z, the "now" of the freshness tests.
const T: i64 = 1_731_403_200;
const H: i64 = 3600;

fn fresh_agg(stale_after: Duration, clock: &Clock) -> Aggregate {
    Aggregate::new(Config {
        stale_after,
        clock: clock.clone(),
        ..Config::default()
    })
}

/// (namespace, source, reports, stale, oldest) per row.
type FreshRow = (String, String, u64, Option<u64>, Option<i64>);

fn freshness_of(agg: &Aggregate) -> Vec<FreshRow> {
    let mut out = Vec::new();
    agg.for_each_freshness(|r| {
        out.push((
            r.namespace.to_owned(),
            r.source.to_owned(),
            r.reports,
            r.stale,
            r.oldest,
        ))
    });
    out
}

mod admissions;
mod controls;
mod files;
mod freshness;
mod model;
mod policies;
mod policy_reporter;
mod results;
