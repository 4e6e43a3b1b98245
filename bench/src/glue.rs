//! Every use of the exporter's library API lives here, so that when its
//! types change (the source objects are gaining new kinds) only this file
//! needs fixing.

use policyreport_exporter::aggregate::{Aggregate, Config};
use policyreport_exporter::kind::Kind;
use policyreport_exporter::metrics::Snapshot;
use policyreport_exporter::report::{self, RawReport};
use policyreport_exporter::source::{Origin, SourceEvent, SourceObject};
use serde::Deserialize;

use crate::reportgen::GenKind;

/// The exporter's kind for a generated kind.
pub fn kind(k: GenKind) -> Kind {
    match k {
        GenKind::PolicyReport => Kind::PolicyReport,
        GenKind::ClusterPolicyReport => Kind::ClusterPolicyReport,
    }
}

/// A source object as the Kubernetes source hands it to the aggregator.
pub fn source_object(k: GenKind, raw: RawReport) -> SourceObject {
    SourceObject::report(kind(k), raw)
}

/// The apply event a watch delivers for a report.
pub fn apply_event(k: GenKind, raw: RawReport) -> SourceEvent {
    SourceEvent::Apply {
        origin: Origin::Watch(kind(k)),
        object: source_object(k, raw),
    }
}

/// An empty aggregate with the default configuration.
pub fn new_aggregate() -> Aggregate {
    Aggregate::new(Config::default())
}

/// Renders `/metrics` for an aggregate; returns the Prometheus text size.
pub fn render(aggregate: &Aggregate) -> usize {
    Snapshot::render(aggregate).prometheus.len()
}

/// Parses one report's JSON into the exporter's raw report.
pub fn parse_raw(json: &[u8]) -> serde_json::Result<RawReport> {
    serde_json::from_slice(json)
}

/// Decodes a raw report; returns its number of results (0 when invalid).
pub fn decode_count(raw: &RawReport) -> usize {
    report::decode(raw).map_or(0, |d| d.results.len())
}

/// The floor: plain serde_json decoding of a `kind: List` of reports into
/// the exporter's report structs, then its strict decoder, on this thread.
/// Returns the number of results seen.
pub fn floor_decode(list_json: &[u8]) -> serde_json::Result<usize> {
    #[derive(Deserialize)]
    struct List {
        items: Vec<RawReport>,
    }
    let list: List = serde_json::from_slice(list_json)?;
    Ok(list.items.iter().map(decode_count).sum())
}
