//! Sources turn the outside world (a Kubernetes API server, files) into a
//! stream of [`SourceEvent`]s for the aggregator. Sources never hold state
//! the metrics depend on; they only describe changes. Each is a [`Source`];
//! [`select`] picks the one its [`Config`] asks for.

pub mod files;
pub mod kube;
pub mod list;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::mpsc;

use crate::kind::Kind;
use crate::object::RawObject;
use crate::report::Report;

/// A source of [`SourceEvent`]s, whatever the input: `serve` and `summary`
/// start it the same way. A new input is one implementation and one arm of
/// [`select`].
pub trait Source: Send {
    /// The sync target the aggregate waits for (`/readyz`, `summary`) until
    /// the source has sent its first full listing and
    /// [`SourceEvent::Synced`] for it.
    fn sync_target(&self) -> &'static str;

    /// Start sending to `tx`, on a task or thread of its own, until the
    /// receiver goes away.
    fn start(self: Box<Self>, tx: mpsc::Sender<SourceEvent>) -> Result<(), SourceError>;
}

/// Why a source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The Kubernetes source could not start.
    #[error(transparent)]
    Kube(#[from] kube::KubeSourceError),
    /// The files source thread could not start.
    #[error("starting the files source: {0}")]
    Thread(std::io::Error),
}

/// Where objects come from and how they are fetched: the files to read, or
/// the cluster and how to talk to it.
#[derive(Clone, Debug)]
pub struct Config {
    /// Files and folders to read instead of a cluster (`--files`); empty for
    /// the cluster.
    pub files: Vec<PathBuf>,
    /// Kubeconfig context (`None`: the current one, or in-cluster).
    pub context: Option<String>,
    /// Page size of the initial list requests.
    pub page_size: u32,
    /// A request that receives nothing this long fails and is retried.
    pub request_timeout: Duration,
    /// How often API discovery runs again.
    pub discovery_interval: Duration,
    /// How often each watch restarts with a full list (zero: never).
    pub relist_interval: Duration,
    /// After a failed request, how long a watch must stay quiet to count as
    /// recovered.
    pub quiet_recovery: Duration,
    /// Files larger than this are skipped with an error (bytes).
    pub max_file_size: u64,
}

/// How a command reads its source.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// Keep following changes after the first listing (`serve`), or stop
    /// there (`summary`). Only files look at it: a watch always follows.
    pub follow: bool,
    /// Keep each result's message (`summary --failing`), which `serve` never
    /// serves.
    pub keep_messages: bool,
}

/// The source `config` selects: its files when it names any, else the
/// cluster of the kubeconfig, read as `reading` says.
pub async fn select(config: &Config, reading: Reading) -> Result<Box<dyn Source>, SourceError> {
    let Reading {
        follow,
        keep_messages,
    } = reading;
    if config.files.is_empty() {
        Ok(Box::new(
            kube::KubeSource::connect(config, keep_messages).await?,
        ))
    } else {
        Ok(Box::new(files::Files::of(config, follow, keep_messages)))
    }
}

/// The aggregator, the receiver of a source's events, has gone away: the
/// source stops.
struct Closed;

/// Where an object came from. A relist replaces everything of one origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A Kubernetes watch on one kind.
    Watch(Kind),
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
    /// Its kind.
    pub kind: Kind,
    /// Its content.
    pub body: Body,
}

/// The content of a [`SourceObject`].
#[derive(Clone, Debug)]
pub enum Body {
    /// A report, decoded.
    Report(Report),
    /// Any other object.
    Object(RawObject),
}

impl SourceObject {
    /// A report of a report kind.
    pub fn report(kind: Kind, report: Report) -> Self {
        Self {
            kind,
            body: Body::Report(report),
        }
    }

    /// An Event or policy.
    pub fn object(kind: Kind, object: RawObject) -> Self {
        Self {
            kind,
            body: Body::Object(object),
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match &self.body {
            Body::Report(r) => &r.metadata,
            Body::Object(o) => &o.metadata,
        }
    }

    /// Namespace (empty for cluster-scoped kinds) and name.
    pub fn id(&self) -> (&str, &str) {
        let meta = self.meta();
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
    /// A full relist of `origin` begins; objects follow as `RelistApply`.
    RelistStart {
        /// The origin being relisted.
        origin: Origin,
    },
    /// An object of the relist in progress.
    RelistApply {
        /// The origin being relisted.
        origin: Origin,
        /// The object.
        object: SourceObject,
    },
    /// The relist is complete: its objects replace the origin's atomically.
    RelistEnd {
        /// The origin being relisted.
        origin: Origin,
    },
    /// A new sync target appeared after start-up (a kind discovered later).
    ExpectSync {
        /// The name /readyz and the `synced` metric use.
        target: String,
    },
    /// A sync target went away (a kind no longer served).
    Forget {
        /// The name /readyz and the `synced` metric use.
        target: String,
    },
    /// A target whose requests failed works again.
    Recovered {
        /// The name /readyz and the `synced` metric use.
        target: String,
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
    /// A watched resource is listed again from scratch (a `RelistStart`
    /// follows); counted in `policyreport_exporter_relists_total`.
    RelistCause {
        /// The resource listed again.
        resource: &'static str,
        /// Why.
        reason: RelistReason,
    },
}

/// Why a watched resource is listed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelistReason {
    /// The server no longer had the watch's resourceVersion (410 Gone).
    Expired,
    /// The previous list failed and is retried.
    Error,
    /// `--relist-interval` elapsed since the last list.
    Interval,
}

impl RelistReason {
    /// Every reason, in label order.
    pub const ALL: [RelistReason; 3] = [Self::Error, Self::Expired, Self::Interval];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Error => "error",
            Self::Interval => "interval",
        }
    }
}
