//! The Kubernetes source: discovers which report kinds the cluster serves,
//! then runs one watcher per served kind and forwards its raw events
//! (including the relist markers) to the aggregator.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::config::KubeConfigOptions;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Origin, SourceEvent, SourceObject};
use crate::report::{RawReport, ReportKind};

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

/// Report kinds the cluster serves, found through API discovery. Kinds that
/// are not served are logged and left out.
pub async fn discover(client: &Client) -> Result<Vec<ReportKind>, kube::Error> {
    let mut served = Vec::new();
    for group in ["wgpolicyk8s.io", "openreports.io"] {
        let kinds: Vec<ReportKind> = ReportKind::ALL
            .into_iter()
            .filter(|k| k.group() == group)
            .collect();
        let found = match kube::discovery::group(client, group).await {
            Ok(g) => g.versioned_resources(kinds[0].version()),
            Err(kube::Error::Api(e)) if e.code == 404 => Vec::new(),
            Err(kube::Error::Discovery(e)) => {
                debug!(group, error = %e, "discovery found no such group");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        for kind in kinds {
            if found.iter().any(|(ar, _)| ar.plural == kind.plural()) {
                served.push(kind);
            } else {
                info!(
                    resource = kind.resource(),
                    version = kind.version(),
                    "not served by the cluster; not watching it"
                );
            }
        }
    }
    Ok(served)
}

/// Watch one report kind until the aggregator goes away. Relists arrive as
/// `ResyncStart`, `ResyncApply`… and `ResyncEnd`; the first completed list
/// also reports the kind as synced.
pub async fn watch(
    client: Client,
    kind: ReportKind,
    page_size: u32,
    tx: mpsc::Sender<SourceEvent>,
) {
    let api: Api<RawReport> = Api::all_with(client, &kind.api_resource());
    let config = watcher::Config::default().page_size(page_size);
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
            Ok(Event::InitApply(report)) => SourceEvent::ResyncApply {
                origin: origin.clone(),
                object: SourceObject { kind, report },
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
            Ok(Event::Apply(report)) => SourceEvent::Apply {
                origin: origin.clone(),
                object: SourceObject { kind, report },
            },
            Ok(Event::Delete(report)) => SourceEvent::Delete {
                origin: origin.clone(),
                object: SourceObject { kind, report },
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
