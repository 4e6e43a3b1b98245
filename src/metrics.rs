//! The metrics encoder: renders the aggregated state in the Prometheus text
//! format 0.0.4 and in OpenMetrics 1.0, once per change of the state, into a
//! [`Snapshot`] that HTTP handlers serve without further work. The families
//! are the indexes' ([`aggregate::FAMILIES`], each declared beside the state
//! it reads) and the encoder's own; [`crate::exposition`] writes them.
//!
//! The exposition is written directly rather than through
//! `prometheus-client`, whose encoder only speaks OpenMetrics: both formats
//! are produced in one pass, and the series come straight from the
//! aggregate's table without building per-scrape metric objects.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::aggregate::{self, Aggregate};
use crate::exposition::{Exposition, Family, Type, always};
use crate::gzip;

/// `Content-Type` of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What readers see: both renderings and the readiness at one generation.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The aggregate generation this was rendered from.
    pub generation: u64,
    /// Prometheus text 0.0.4.
    pub prometheus: Bytes,
    /// OpenMetrics text, without the closing `# EOF` so that per-scrape
    /// families can follow.
    pub openmetrics: Bytes,
    /// Sync targets still waiting for their initial list.
    pub pending: Vec<String>,
    /// gzip of `prometheus` and of `openmetrics`, each made by the first
    /// scrape of this rendering that accepts gzip, then shared: renderings
    /// no client asks to compress (most of them, under churn) cost nothing.
    gzip: [OnceLock<gzip::Prefix>; 2],
}

impl Snapshot {
    /// The gzip of one rendering (`openmetrics` or Prometheus text),
    /// compressing it now if no scrape has yet. Compressing takes some
    /// milliseconds for a large rendering: async callers should first try
    /// [`gzip_cached`](Self::gzip_cached).
    pub fn gzip(&self, openmetrics: bool) -> &gzip::Prefix {
        let text = if openmetrics {
            &self.openmetrics
        } else {
            &self.prometheus
        };
        self.gzip[usize::from(openmetrics)].get_or_init(|| gzip::Prefix::new(text))
    }

    /// The gzip of one rendering if a scrape has already made it.
    pub fn gzip_cached(&self, openmetrics: bool) -> Option<&gzip::Prefix> {
        self.gzip[usize::from(openmetrics)].get()
    }

    /// Render the aggregate.
    pub fn render(aggregate: &Aggregate) -> Self {
        Self::render_reusing(aggregate, None)
    }

    /// Render the aggregate into the buffers of a snapshot no longer in use,
    /// when no reader still holds them: publishing then allocates nothing.
    pub fn render_reusing(aggregate: &Aggregate, old: Option<Snapshot>) -> Self {
        let mut out = Exposition::default();
        if let Some(old) = old {
            out.prometheus = reclaim(old.prometheus);
            out.openmetrics = reclaim(old.openmetrics);
        }
        for family in aggregate::FAMILIES.iter().copied().flatten().chain(OWN) {
            out.family(family, aggregate);
        }
        let (prometheus, openmetrics) = out.finish();
        Snapshot {
            generation: aggregate.generation(),
            prometheus,
            openmetrics,
            pending: aggregate
                .pending_targets()
                .into_iter()
                .map(String::from)
                .collect(),
            gzip: Default::default(),
        }
    }
}

/// The families rendered from the aggregate, in the order they are served:
/// each index's, declared beside it ([`aggregate::FAMILIES`]), then these,
/// the encoder's own. Names, `_total` and both formats' headers follow from
/// [`Family`].
static OWN: &[Family<Aggregate>] = &[
    Family {
        name: "policyreport_exporter_series",
        help: "Number of policyreport_results series.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| s.write([], a.series_count() as u64),
    },
    Family {
        name: "policyreport_exporter_build_info",
        help: "Build information; always 1.",
        kind: Type::Gauge,
        when: always,
        samples: |_, s| s.write([("version", env!("CARGO_PKG_VERSION"))], 1),
    },
];

/// An empty string with the capacity of `bytes`, if nothing else holds them.
fn reclaim(bytes: Bytes) -> String {
    match bytes.try_into_mut() {
        Ok(buf) => {
            let mut buf = Vec::from(buf);
            buf.clear();
            String::from_utf8(buf).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests;
