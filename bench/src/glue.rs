//! Every use of the exporter's library API lives here, so that when its
//! types change (the source objects are gaining new kinds) only this file
//! needs fixing.

use policyreport_exporter::aggregate::{Aggregate, Config};
use policyreport_exporter::kind::Kind;
use policyreport_exporter::metrics::Snapshot;
use policyreport_exporter::report::Report;
use policyreport_exporter::source::{Origin, SourceEvent, SourceObject};

use crate::reportgen::GenKind;

/// The exporter's kind for a generated kind.
pub fn kind(k: GenKind) -> Kind {
    match k {
        GenKind::PolicyReport => Kind::PolicyReport,
        GenKind::ClusterPolicyReport => Kind::ClusterPolicyReport,
    }
}

/// A source object as the Kubernetes source hands it to the aggregator.
pub fn source_object(k: GenKind, raw: Report) -> SourceObject {
    SourceObject::report(kind(k), raw)
}

/// The apply event a watch delivers for a report.
pub fn apply_event(k: GenKind, raw: Report) -> SourceEvent {
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

/// Decodes one report's JSON as the exporter does.
pub fn parse_report(json: &[u8]) -> serde_json::Result<Report> {
    serde_json::from_slice(json)
}

/// The number of results of a decoded report (0 when invalid).
pub fn results_count(report: &Report) -> usize {
    report.results().len()
}
