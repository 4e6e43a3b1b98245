//! Wiring of the commands, and what it takes to start them
//! ([`StartConfig`], [`ServeConfig`]): sources → aggregator → snapshots →
//! HTTP for `serve`, and sources → aggregator → report for `summary`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::aggregate::{self, Aggregate, Config, Outputs};
use crate::controls::{Controls, ControlsError};
use crate::metrics::Snapshot;
use crate::namespace_filter::{NamespaceFilter, NamespaceFilterError};
use crate::server;
use crate::source::kube::KubeSourceError;
use crate::source::{self, SourceError, SourceEvent};
use crate::web::{self, Access, config::WebConfigError};

/// Capacity of the source → aggregator channel; a full channel makes
/// sources wait, so memory stays bounded when input outruns the aggregator.
/// A memory bound, not a speed-up: the value was never tuned or measured
/// against others (docs/benchmarks.md, "Tuning constants").
pub const CHANNEL: usize = 1024;
/// Under load, snapshots are re-rendered at most this often.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(25);

/// Errors that stop a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The source could not start.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The listen address could not be bound, or serving failed.
    #[error("serving HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The controls file is unusable.
    #[error(transparent)]
    Controls(#[from] ControlsError),
    /// A namespace pattern is not a glob.
    #[error(transparent)]
    NamespaceFilter(#[from] NamespaceFilterError),
    /// The web configuration file is unusable.
    #[error("--web-config-file: {0}")]
    WebConfig(#[from] WebConfigError),
    /// `--metrics-auth kubernetes` found no cluster to review tokens with.
    #[error("--metrics-auth kubernetes: {0}")]
    MetricsAuth(#[source] KubeSourceError),
}

/// What [`start`] needs, for both commands: where objects come from, and
/// which controls, namespaces and staleness they are counted with.
#[derive(Clone, Debug)]
pub struct StartConfig {
    /// Where objects come from.
    pub source: source::Config,
    /// A YAML file of controls replacing the built-in ones.
    pub controls: Option<PathBuf>,
    /// Count only namespaces matching one of these globs (none: all).
    pub namespace_include: Vec<String>,
    /// Leave out namespaces matching any of these globs.
    pub namespace_exclude: Vec<String>,
    /// A report whose newest result is older than this is stale (zero:
    /// never).
    pub stale_after: Duration,
}

/// What `serve` needs beyond [`StartConfig`].
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The sources and how they are counted.
    pub start: StartConfig,
    /// Address to serve /metrics, /healthz and /readyz on.
    pub listen: SocketAddr,
    /// What the aggregate keeps beyond what every command needs.
    pub outputs: Outputs,
    /// The web configuration file (TLS, basic auth, headers, rate limit).
    pub web_config_file: Option<PathBuf>,
    /// Who may read /metrics.
    pub metrics_auth: MetricsAuth,
}

/// Who may read /metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAuth {
    /// Anyone who can connect.
    None,
    /// A bearer token that Kubernetes authenticates (TokenReview) and
    /// authorizes (SubjectAccessReview).
    Kubernetes,
}

/// The access rules `serve`'s configuration asks for; a web configuration
/// or a cluster that cannot be used stops the exporter before it listens.
pub async fn access(config: &ServeConfig) -> Result<Arc<Access>, AppError> {
    let reviewer = match config.metrics_auth {
        MetricsAuth::None => None,
        MetricsAuth::Kubernetes => {
            let timeout = Duration::from_secs(10);
            let context = config.start.source.context.as_deref();
            let client = crate::source::kube::client(context, timeout)
                .await
                .map_err(AppError::MetricsAuth)?;
            info!("/metrics needs a token allowed to get it (TokenReview, SubjectAccessReview)");
            Some(web::kubernetes::Reviewer::new(client))
        }
    };
    let access = Access::new(config.web_config_file.as_deref(), reviewer)?;
    if let Some(watch) = access.watcher() {
        tokio::spawn(watch);
    }
    Ok(Arc::new(access))
}

/// The controls selected by `--controls`, or the built-in ones.
pub fn load_controls(path: Option<&std::path::Path>) -> Result<Arc<Controls>, ControlsError> {
    Ok(Arc::new(match path {
        Some(p) => Controls::load(p)?,
        None => Controls::defaults(),
    }))
}

/// Build the aggregate for this configuration and these outputs and start
/// the sources feeding `tx`, read as `reading` says.
pub async fn start(
    config: &StartConfig,
    outputs: Outputs,
    reading: source::Reading,
    tx: mpsc::Sender<SourceEvent>,
) -> Result<Aggregate, AppError> {
    crate::memory::tune();
    let labels = outputs.labels;
    let controls = load_controls(config.controls.as_deref())?;
    let names: Vec<&str> = controls.iter().map(|c| c.name.as_str()).collect();
    info!(controls = ?names, "compliance controls");
    let namespace_filter =
        NamespaceFilter::new(&config.namespace_include, &config.namespace_exclude)?;
    if !namespace_filter.is_everything() {
        info!(
            include = ?config.namespace_include,
            exclude = ?config.namespace_exclude,
            "namespace scope"
        );
    }
    let mut aggregate = Aggregate::new(Config {
        outputs,
        controls,
        namespace_filter,
        stale_after: config.stale_after,
        clock: aggregate::Clock::system(),
    });
    info!(labels = ?labels.names(), "policyreport_results labels");
    let input = source::select(&config.source, reading).await?;
    aggregate.expect_sync(input.sync_target());
    input.start(tx)?;
    Ok(aggregate)
}

/// Run the exporter until `shutdown` completes.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let access = access(&config).await?;
    let (tx, rx) = mpsc::channel(CHANNEL);
    let reading = source::Reading {
        follow: true,
        keep_messages: false,
    };
    let aggregate = start(&config.start, config.outputs, reading, tx).await?;

    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::render(&aggregate)));
    tokio::spawn(aggregate::run(aggregate, rx, PUBLISH_INTERVAL, {
        // The snapshot replaced last time, if no scrape held on to it.
        let mut spare: Option<Snapshot> = None;
        move |agg: &Aggregate| {
            let snapshot = Snapshot::render_reusing(agg, spare.take());
            let old = snapshot_tx.send_replace(Arc::new(snapshot));
            spare = Arc::try_unwrap(old).ok();
        }
    }));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| AppError::Http {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    info!(address = %addr, tls = access.tls().is_some(), "listening");
    let limits = server::Limits::default();
    server::serve(
        listener,
        server::router(snapshot_rx, limits, access.clone()),
        limits,
        access,
        shutdown,
    )
    .await
    .map_err(|source| AppError::Http { addr, source })?;
    info!("stopped");
    Ok(())
}
