//! The Kubernetes source. It discovers which kinds the cluster serves
//! (reports, Kyverno policies, Events), retrying until the API answers, then
//! runs one watcher per served kind and forwards its raw events, relist
//! markers included, to the aggregator. Discovery repeats periodically, so a
//! kind installed later (openreports, say) is picked up, and one removed has
//! its objects dropped.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::config::KubeConfigOptions;
use kube::core::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{Origin, SourceEvent, SourceObject};
use crate::kind::Kind;
use crate::object::RawObject;
use crate::report::Report;

/// The sync target that is pending until the first discovery succeeds.
pub const DISCOVERY_TARGET: &str = "discovery";

/// After a failed request, a watch that stays quiet (no new error) this long
/// is taken as recovered: the watcher's backoff retries well within it.
const QUIET_RECOVERY: Duration = Duration::from_secs(45);

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

/// How the source talks to the API server.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Page size of initial lists.
    pub page_size: u32,
    /// How often discovery runs again.
    pub discovery_interval: Duration,
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
                .map_err(|e| KubeSourceError::Config(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| KubeSourceError::Config(e.to_string()))?,
    };
    config.read_timeout = Some(read_timeout);
    Ok(Client::try_from(config)?)
}

/// Which of `kinds` the cluster serves, and at which version, found
/// through API discovery.
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
            let Some(g) = found.as_ref() else { continue };
            let serves = |v: &str| {
                g.versioned_resources(v)
                    .iter()
                    .any(|(ar, _)| ar.plural == kind.plural())
            };
            // The CEL policy kinds: the version the API server prefers
            // (its versions come preferred first), whatever it is called.
            let version = if kind.follows_preferred_version() {
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
            tx.send(SourceEvent::ResyncStart {
                origin: origin.clone(),
            })
            .await?;
            tx.send(SourceEvent::ResyncEnd { origin }).await?;
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
                    options.page_size,
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
    if kind == Kind::Namespace {
        watch_namespaces(client, config, tx).await;
    } else if kind.is_report() {
        forward::<Report>(client, kind, &ar, config, tx, SourceObject::report).await;
    } else {
        forward::<RawObject>(client, kind, &ar, config, tx, SourceObject::object).await;
    }
}

async fn forward<K>(
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
    loop {
        let item = if errors.streak > 0 {
            match tokio::time::timeout(QUIET_RECOVERY, stream.next()).await {
                Ok(item) => item,
                Err(_quiet) => {
                    errors.recovered(resource);
                    let target = resource.to_owned();
                    if tx.send(SourceEvent::Recovered { target }).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        } else {
            stream.next().await
        };
        let Some(item) = item else { return };
        // A relist's first pages are no proof of recovery (it may fail on a
        // later page); its end, or a watch event, is.
        let progressed = matches!(
            item,
            Ok(Event::InitDone | Event::Apply(_) | Event::Delete(_))
        );
        if progressed && errors.recovered(resource) {
            let target = resource.to_owned();
            if tx.send(SourceEvent::Recovered { target }).await.is_err() {
                return;
            }
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

/// Watch Namespaces' metadata only (`PartialObjectMetadata`, through
/// kube's metadata requests), handing each over as a small raw object with
/// its name and labels, which is all policy overrides need. Relists,
/// errors and recovery are reported as [`forward`] reports them.
async fn watch_namespaces(client: Client, config: watcher::Config, tx: mpsc::Sender<SourceEvent>) {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::core::PartialObjectMeta;

    let kind = Kind::Namespace;
    let to_object = |m: PartialObjectMeta<Namespace>| -> Option<SourceObject> {
        let raw = serde_json::value::to_raw_value(&serde_json::json!({
            "metadata": {"name": m.metadata.name, "labels": m.metadata.labels},
        }))
        .ok()?;
        let metadata = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: m.metadata.name,
            uid: m.metadata.uid,
            resource_version: m.metadata.resource_version,
            ..Default::default()
        };
        Some(SourceObject::object(kind, RawObject { metadata, raw }))
    };
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let origin = Origin::Watch(kind);
    let resource = kind.resource();
    let mut synced = false;
    let mut errors = ErrorLog::default();
    loop {
        let item = if errors.streak > 0 {
            match tokio::time::timeout(QUIET_RECOVERY, stream.next()).await {
                Ok(item) => item,
                Err(_quiet) => {
                    errors.recovered(resource);
                    let target = resource.to_owned();
                    if tx.send(SourceEvent::Recovered { target }).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        } else {
            stream.next().await
        };
        let Some(item) = item else { return };
        let progressed = matches!(
            item,
            Ok(Event::InitDone | Event::Apply(_) | Event::Delete(_))
        );
        if progressed && errors.recovered(resource) {
            let target = resource.to_owned();
            if tx.send(SourceEvent::Recovered { target }).await.is_err() {
                return;
            }
        }
        let mut events = Vec::with_capacity(2);
        match item {
            Ok(Event::Init) => events.push(SourceEvent::ResyncStart {
                origin: origin.clone(),
            }),
            Ok(Event::InitApply(m)) => {
                events.extend(to_object(m).map(|object| SourceEvent::ResyncApply {
                    origin: origin.clone(),
                    object,
                }))
            }
            Ok(Event::InitDone) => {
                events.push(SourceEvent::ResyncEnd {
                    origin: origin.clone(),
                });
                if !synced {
                    synced = true;
                    info!(resource, "initial list complete");
                    events.push(SourceEvent::Synced {
                        target: resource.to_owned(),
                    });
                }
            }
            Ok(Event::Apply(m)) => events.extend(to_object(m).map(|object| SourceEvent::Apply {
                origin: origin.clone(),
                object,
            })),
            Ok(Event::Delete(m)) => events.extend(to_object(m).map(|object| SourceEvent::Delete {
                origin: origin.clone(),
                object,
            })),
            Err(err) => {
                errors.failed(resource, &err);
                events.push(SourceEvent::WatchError { resource });
            }
        }
        for event in events {
            if tx.send(event).await.is_err() {
                return;
            }
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

    /// Returns whether a failure streak just ended.
    fn recovered(&mut self, resource: &str) -> bool {
        let ended = self.streak > 0;
        if ended {
            info!(resource, failures = self.streak, "watch recovered");
        }
        self.streak = 0;
        self.last_warn = None;
        ended
    }
}
