//! The Kubernetes source. It discovers which kinds the cluster serves
//! (reports, Kyverno policies, Events), retrying until the API answers, then
//! runs one list-then-watch loop per served kind (lists streamed, relisting
//! after a 410, a failed list and every `--relist-interval`) and forwards
//! its raw events, relist markers included, to the aggregator. Discovery
//! repeats periodically, so a kind installed later (openreports, say) is
//! picked up, and one removed has its objects dropped.
//!
//! This module holds discovery and the watchers' lifecycle; `list_watch`
//! holds the loop of one kind.

use std::collections::HashMap;
use std::time::Duration;

use kube::config::KubeConfigOptions;
use kube::{Client, Config};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{Origin, Source, SourceError, SourceEvent};
use crate::kind::{Kind, Role};

mod list_watch;

pub use list_watch::watch;

/// The sync target that is pending until the first discovery succeeds.
pub const DISCOVERY_TARGET: &str = "discovery";

/// Errors setting up the Kubernetes source.
#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// No usable client configuration was found (in-cluster, `KUBECONFIG`
    /// or `~/.kube/config`).
    #[error("loading Kubernetes client configuration")]
    Config(#[source] kube::config::InferConfigError),
    /// The kubeconfig context asked for could not be loaded.
    #[error("loading kubeconfig context {context:?}")]
    Context {
        /// The context's name.
        context: String,
        /// Why it could not be loaded.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built.
    #[error("building Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// How the source talks to the API server.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Page size of initial lists.
    pub page_size: u32,
    /// How often discovery runs again.
    pub discovery_interval: Duration,
    /// How often each watch restarts with a full list; `None` never
    /// (only after a 410 or a failed list).
    pub relist_interval: Option<Duration>,
    /// After a failed request, a watch that stays quiet (no new error) this
    /// long is taken as recovered: the watcher's backoff retries well
    /// within it (45 s by default).
    pub quiet_recovery: Duration,
    /// Whether reports keep each result's message.
    pub keep_messages: bool,
}

impl Options {
    /// The options `config` selects; intervals too short to be meant are
    /// raised (discovery to 1 s, quiet recovery to 100 ms).
    pub fn of(config: &super::Config, keep_messages: bool) -> Self {
        Self {
            page_size: config.page_size,
            discovery_interval: config.discovery_interval.max(Duration::from_secs(1)),
            relist_interval: Some(config.relist_interval).filter(|i| !i.is_zero()),
            quiet_recovery: config.quiet_recovery.max(Duration::from_millis(100)),
            keep_messages,
        }
    }
}

/// The cluster as a [`Source`]: discovery, then a watch per served kind.
pub struct KubeSource {
    client: Client,
    options: Options,
}

impl KubeSource {
    /// A client for the kubeconfig (and context) of `config`; reports keep
    /// each result's message with `keep_messages`.
    pub async fn connect(
        config: &super::Config,
        keep_messages: bool,
    ) -> Result<Self, KubeSourceError> {
        Ok(Self {
            client: client(config.context.as_deref(), config.request_timeout).await?,
            options: Options::of(config, keep_messages),
        })
    }
}

impl Source for KubeSource {
    fn sync_target(&self) -> &'static str {
        DISCOVERY_TARGET
    }

    fn start(self: Box<Self>, tx: mpsc::Sender<SourceEvent>) -> Result<(), SourceError> {
        info!("watching the cluster");
        tokio::spawn(run(self.client, self.options, tx));
        Ok(())
    }
}

/// Build a client the way kubectl finds its configuration: in-cluster,
/// `KUBECONFIG` or `~/.kube/config`, optionally with a named context. A
/// request that sends nothing for `read_timeout` fails and is retried.
pub async fn client(
    context: Option<&str>,
    read_timeout: Duration,
) -> Result<Client, KubeSourceError> {
    let mut config = match context {
        Some(ctx) => {
            let opts = KubeConfigOptions {
                context: Some(ctx.to_owned()),
                ..KubeConfigOptions::default()
            };
            Config::from_kubeconfig(&opts)
                .await
                .map_err(|source| KubeSourceError::Context {
                    context: ctx.to_owned(),
                    source,
                })?
        }
        None => Config::infer().await.map_err(KubeSourceError::Config)?,
    };
    config.read_timeout = Some(read_timeout);
    Ok(Client::try_from(config)?)
}

/// Which of `kinds` the cluster serves, and at which version, found
/// through API discovery.
pub async fn discover(client: &Client, kinds: &[Kind]) -> Result<Vec<(Kind, String)>, kube::Error> {
    let mut served = Vec::new();
    let mut groups: Vec<&str> = kinds.iter().map(|k| k.group()).collect();
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        let found = match kube::discovery::group(client, group).await {
            Ok(g) => Some(g),
            Err(kube::Error::Api(e)) if e.code == 404 => None,
            Err(kube::Error::Discovery(e)) => {
                debug!(group, error = %e, "discovery found no such group");
                None
            }
            Err(e) => return Err(e),
        };
        for &kind in kinds.iter().filter(|k| k.group() == group) {
            let Some(g) = found.as_ref() else { continue };
            let serves = |v: &str| {
                g.versioned_resources(v)
                    .iter()
                    .any(|(ar, _)| ar.plural == kind.plural())
            };
            // The CEL policy kinds: the version the API server prefers
            // (its versions come preferred first), whatever it is called.
            let version = if kind.role() == Role::CelPolicy {
                g.versions().find(|v| serves(v)).map(str::to_owned)
            } else {
                kind.versions()
                    .iter()
                    .find(|v| serves(v))
                    .map(|v| (*v).to_owned())
            };
            if let Some(v) = version {
                served.push((kind, v));
            }
        }
    }
    Ok(served)
}

/// Run the source until the aggregator goes away: discover (retrying with
/// backoff), announce and watch each served kind, report
/// [`DISCOVERY_TARGET`] synced, then re-discover every interval.
pub async fn run(client: Client, options: Options, tx: mpsc::Sender<SourceEvent>) {
    let mut watchers: HashMap<Kind, (String, JoinHandle<()>)> = HashMap::new();
    let mut delay = Duration::from_millis(500);
    let mut first = true;
    loop {
        match discover(&client, &Kind::ALL).await {
            Ok(served) => {
                if reconcile(&client, options, &tx, &mut watchers, served, first)
                    .await
                    .is_err()
                {
                    return;
                }
                if first {
                    first = false;
                    let done = SourceEvent::Synced {
                        target: DISCOVERY_TARGET.into(),
                    };
                    if tx.send(done).await.is_err() {
                        return;
                    }
                }
                delay = options.discovery_interval;
            }
            Err(e) => {
                if first {
                    warn!(error = %e, retry_in = ?delay, "API discovery failed; retrying");
                    delay = (delay * 2).min(Duration::from_secs(30));
                } else {
                    debug!(error = %e, "periodic API discovery failed; keeping the current watches");
                    delay = options.discovery_interval;
                }
            }
        }
        tokio::time::sleep(delay).await;
        if tx.is_closed() {
            return;
        }
    }
}

/// Start watchers for newly served kinds and retire those no longer served.
async fn reconcile(
    client: &Client,
    options: Options,
    tx: &mpsc::Sender<SourceEvent>,
    watchers: &mut HashMap<Kind, (String, JoinHandle<()>)>,
    served: Vec<(Kind, String)>,
    first: bool,
) -> Result<(), mpsc::error::SendError<SourceEvent>> {
    let gone: Vec<Kind> = watchers
        .iter()
        .filter(|(k, (v, _))| !served.iter().any(|(sk, sv)| sk == *k && sv == v))
        .map(|(k, _)| *k)
        .collect();
    for kind in gone {
        if let Some((_, handle)) = watchers.remove(&kind) {
            info!(
                resource = kind.resource(),
                "no longer served; dropping its objects"
            );
            handle.abort();
            let origin = Origin::Watch(kind);
            tx.send(SourceEvent::RelistStart {
                origin: origin.clone(),
            })
            .await?;
            tx.send(SourceEvent::RelistEnd { origin }).await?;
            let target = kind.resource().to_owned();
            tx.send(SourceEvent::Forget { target }).await?;
        }
    }
    for &kind in &Kind::ALL {
        let version = served
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.clone());
        match version {
            Some(version) if !watchers.contains_key(&kind) => {
                info!(resource = kind.resource(), %version, "watching");
                let target = kind.resource().to_owned();
                tx.send(SourceEvent::ExpectSync { target }).await?;
                let handle = tokio::spawn(watch(
                    client.clone(),
                    kind,
                    version.clone(),
                    options,
                    tx.clone(),
                ));
                watchers.insert(kind, (version, handle));
            }
            None if first => info!(
                resource = kind.resource(),
                versions = ?kind.versions(),
                "not served by the cluster; not watching it"
            ),
            _ => {}
        }
    }
    if first && !watchers.keys().any(|k| k.is_report()) {
        warn!("the cluster serves no report kinds; is Kyverno installed?");
    }
    Ok(())
}
