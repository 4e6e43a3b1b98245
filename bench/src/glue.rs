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

/// An Event's JSON as the Kubernetes source hands it to the aggregator.
pub fn event_object(json: &[u8]) -> serde_json::Result<SourceObject> {
    Ok(SourceObject::object(
        Kind::Event,
        serde_json::from_slice(json)?,
    ))
}

/// Feeds an initial list to the aggregate, as a watch's first list does:
/// its objects replace the (empty) state of their kind when it ends.
pub fn initial_list(aggregate: &mut Aggregate, objects: impl IntoIterator<Item = SourceObject>) {
    let mut origins = Vec::new();
    for object in objects {
        let origin = Origin::Watch(object.kind);
        if !origins.contains(&origin) {
            aggregate.handle(SourceEvent::RelistStart {
                origin: origin.clone(),
            });
            origins.push(origin.clone());
        }
        aggregate.handle(SourceEvent::RelistApply { origin, object });
    }
    for origin in origins {
        aggregate.handle(SourceEvent::RelistEnd { origin });
    }
}

/// The admissions counted: (blocked, let through by Audit).
pub fn admissions(aggregate: &Aggregate) -> (u64, u64) {
    let mut blocked = 0;
    let mut audit = 0;
    aggregate.for_each_blocked(|_, _, _, _, _, n| blocked += n);
    aggregate.for_each_audit_failure(|_, _, _, _, _, n| audit += n);
    (blocked, audit)
}

/// The number of `policyreport_results` series.
pub fn series(aggregate: &Aggregate) -> usize {
    aggregate.series_count()
}
