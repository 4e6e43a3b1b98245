//! Sources turn the outside world (a Kubernetes API server, files) into a
//! stream of [`SourceEvent`]s for the aggregator. Sources never hold state
//! the metrics depend on; they only describe changes.

pub mod files;
pub mod kube;

use std::path::Path;
use std::sync::Arc;

use crate::report::{RawReport, ReportKind};

/// Where an object came from. A resync replaces everything of one origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A Kubernetes watch on one report kind.
    Watch(ReportKind),
    /// One file given with `--files`.
    File(Arc<Path>),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Watch(k) => write!(f, "watch {}", k.resource()),
            Origin::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// An object as a source delivers it.
#[derive(Clone, Debug)]
pub struct SourceObject {
    /// The report kind.
    pub kind: ReportKind,
    /// The raw report.
    pub report: RawReport,
}

impl SourceObject {
    /// Namespace (empty for cluster-scoped kinds) and name.
    pub fn id(&self) -> (&str, &str) {
        let meta = &self.report.metadata;
        let ns = if self.kind.namespaced() {
            meta.namespace.as_deref().unwrap_or("")
        } else {
            ""
        };
        (ns, meta.name.as_deref().unwrap_or(""))
    }
}

/// A change reported by a source. Events of one origin arrive in order.
#[derive(Debug)]
pub enum SourceEvent {
    /// An object was created or updated.
    Apply {
        /// Where it came from.
        origin: Origin,
        /// The object.
        object: SourceObject,
    },
    /// An object was deleted.
    Delete {
        /// Where it came from.
        origin: Origin,
        /// The deleted object (only its identity is used).
        object: SourceObject,
    },
    /// A full relist of `origin` begins; objects follow as `ResyncApply`.
    ResyncStart {
        /// The origin being relisted.
        origin: Origin,
    },
    /// An object of the relist in progress.
    ResyncApply {
        /// The origin being relisted.
        origin: Origin,
        /// The object.
        object: SourceObject,
    },
    /// The relist is complete: its objects replace the origin's atomically.
    ResyncEnd {
        /// The origin being relisted.
        origin: Origin,
    },
    /// A source finished its initial list; `target` is no longer pending.
    Synced {
        /// The name /readyz and the `synced` metric use.
        target: String,
    },
    /// Input that could not be read as objects at all (such as a broken file).
    Invalid {
        /// The `resource` label to count it under.
        resource: &'static str,
        /// Where the input was.
        location: String,
        /// Why it was refused.
        reason: String,
    },
    /// A watch or list request failed; the source retries by itself.
    WatchError {
        /// The resource whose watch failed.
        resource: &'static str,
    },
}
