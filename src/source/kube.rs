//! The Kubernetes source: discovers which kinds the cluster serves (reports,
//! Kyverno policies, Events), then runs one watcher per served kind and forwards its raw events
//! (including the relist markers) to the aggregator.

use std::time::{Duration, Instant};

use std::fmt::Debug;

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::config::KubeConfigOptions;
use kube::core::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Origin, SourceEvent, SourceObject};
use crate::kind::Kind;
use crate::object::{RawObject, RawReport};

/// Errors setting up the Kubernetes source.
#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// No usable client configuration was found.
    #[error("loading Kubernetes client configuration: {0}")]
    Config(String),
    /// The client could not be built.
    #[error("building Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// Build a client the way kubectl finds its configuration: in-cluster,
/// `KUBECONFIG` or `~/.kube/config`, optionally with a named context.
pub async fn client(context: Option<&str>) -> Result<Client, KubeSourceError> {
    let config = match context {
        Some(ctx) => {
            let opts = KubeConfigOptions {
                context: Some(ctx.to_owned()),
                ..KubeConfigOptions::default()
            };
            Config::from_kubeconfig(&opts)
                .await
                .map_err(|e| KubeSourceError::Config(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| KubeSourceError::Config(e.to_string()))?,
    };
    Ok(Client::try_from(config)?)
}

/// Which of `kinds` the cluster serves, and at which version, found
/// through API discovery. Kinds that are not served are logged and left out.
pub async fn discover(client: &Client, kinds: &[Kind]) -> Result<Vec<(Kind, String)>, kube::Error> {
    let mut served = Vec::new();
    let mut groups: Vec<&str> = kinds.iter().map(|k| k.group()).collect();
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
            let version = found.as_ref().and_then(|g| {
                kind.versions().iter().find(|v| {
                    g.versioned_resources(v)
                        .iter()
                        .any(|(ar, _)| ar.plural == kind.plural())
                })
            });
            match version {
                Some(v) => served.push((kind, (*v).to_owned())),
                None => info!(
                    resource = kind.resource(),
                    versions = ?kind.versions(),
                    "not served by the cluster; not watching it"
                ),
            }
        }
    }
    Ok(served)
}

/// Watch one kind until the aggregator goes away. Relists arrive as
/// `ResyncStart`, `ResyncApply`… and `ResyncEnd`; the first completed list
/// also reports the kind as synced. Events are filtered on the server to
/// reason `PolicyViolation`.
pub async fn watch(
    client: Client,
    kind: Kind,
    version: String,
    page_size: u32,
    tx: mpsc::Sender<SourceEvent>,
) {
    let ar = kind.api_resource(&version);
    let mut config = watcher::Config::default().page_size(page_size);
    if kind == Kind::Event {
        config = config.fields("reason=PolicyViolation");
    }
    if kind.is_report() {
        run::<RawReport>(client, kind, &ar, config, tx, SourceObject::report).await;
    } else {
        run::<RawObject>(client, kind, &ar, config, tx, SourceObject::object).await;
    }
}

async fn run<K>(
    client: Client,
    kind: Kind,
    ar: &ApiResource,
    config: watcher::Config,
    tx: mpsc::Sender<SourceEvent>,
    wrap: fn(Kind, K) -> SourceObject,
) where
    K: kube::Resource<DynamicType = ApiResource>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::all_with(client, ar);
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream.into_stream());
    let origin = Origin::Watch(kind);
    let resource = kind.resource();
    let mut synced = false;
    let mut errors = ErrorLog::default();
    while let Some(item) = stream.next().await {
        if item.is_ok() {
            errors.recovered(resource);
        }
        let event = match item {
            Ok(Event::Init) => SourceEvent::ResyncStart {
                origin: origin.clone(),
            },
            Ok(Event::InitApply(o)) => SourceEvent::ResyncApply {
                origin: origin.clone(),
                object: wrap(kind, o),
            },
            Ok(Event::InitDone) => {
                if tx
                    .send(SourceEvent::ResyncEnd {
                        origin: origin.clone(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                if synced {
                    continue;
                }
                synced = true;
                info!(resource, "initial list complete");
                SourceEvent::Synced {
                    target: resource.to_owned(),
                }
            }
            Ok(Event::Apply(o)) => SourceEvent::Apply {
                origin: origin.clone(),
                object: wrap(kind, o),
            },
            Ok(Event::Delete(o)) => SourceEvent::Delete {
                origin: origin.clone(),
                object: wrap(kind, o),
            },
            Err(err) => {
                errors.failed(resource, &err);
                SourceEvent::WatchError { resource }
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// Logs watch failures without flooding: the first failure of a streak at
/// warn, repeats at most once a minute with the count, and the recovery.
#[derive(Default)]
struct ErrorLog {
    streak: u64,
    last_warn: Option<Instant>,
}

impl ErrorLog {
    const EVERY: Duration = Duration::from_secs(60);

    fn failed(&mut self, resource: &str, err: &watcher::Error) {
        self.streak += 1;
        let due = self.last_warn.is_none_or(|t| t.elapsed() >= Self::EVERY);
        if due {
            warn!(resource, error = %err, failures = self.streak, "watch failed; retrying with backoff");
            self.last_warn = Some(Instant::now());
        } else {
            debug!(resource, error = %err, failures = self.streak, "watch failed again");
        }
    }

    fn recovered(&mut self, resource: &str) {
        if self.streak > 0 {
            info!(resource, failures = self.streak, "watch recovered");
        }
        self.streak = 0;
        self.last_warn = None;
    }
}
