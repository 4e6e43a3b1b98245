//! The list-then-watch loop of one kind: each list streamed as a relist,
//! watches resumed from the last resourceVersion seen, a relist after a
//! 410, a failed list and every `--relist-interval`, and failures logged
//! without flooding.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::core::ApiResource;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::DefaultBackoff;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::Options;
use crate::kind::Kind;
use crate::object::RawObject;
use crate::report::{Report, WithMessages};
use crate::source::list::{self, ListError, Shape};
use crate::source::{Closed, Origin, RelistReason, SourceEvent, SourceObject};

/// Watch one kind until the aggregator goes away. Every list (the first,
/// after a 410, after a failed list, and every `relist_interval`) arrives as
/// `RelistStart`, `RelistApply`… and `RelistEnd`, replacing the kind's
/// objects atomically; the first completed list also reports the kind as
/// synced. Lists and watches carry the row's field selector (Events: reason
/// `PolicyViolation`) and ask for metadata only where the row says so.
pub async fn watch(
    client: Client,
    kind: Kind,
    version: String,
    options: Options,
    tx: mpsc::Sender<SourceEvent>,
) {
    let ar = kind.api_resource(&version);
    let mut requests = Requests {
        shape: Shape::Objects,
        list: ListParams::default().limit(options.page_size),
        watch: WatchParams::default(),
        relist_interval: options.relist_interval,
        quiet_recovery: options.quiet_recovery,
    };
    if let Some(fields) = kind.row().field_selector {
        requests.list = requests.list.fields(fields);
        requests.watch = requests.watch.fields(fields);
    }
    if kind.row().metadata_only {
        requests.shape = Shape::Metadata;
    }
    if kind.is_report() && options.keep_messages {
        let wrap = |kind, report: WithMessages| SourceObject::report(kind, report.0);
        forward::<WithMessages>(client, kind, &ar, requests, tx, wrap).await;
    } else if kind.is_report() {
        forward::<Report>(client, kind, &ar, requests, tx, SourceObject::report).await;
    } else {
        forward::<RawObject>(client, kind, &ar, requests, tx, SourceObject::object).await;
    }
}

/// The list and watch requests of one kind, and when to list again.
struct Requests {
    /// Whole objects, or metadata only.
    shape: Shape,
    list: ListParams,
    watch: WatchParams,
    relist_interval: Option<Duration>,
    /// See [`Options::quiet_recovery`].
    quiet_recovery: Duration,
}

/// What a watched kind decodes into: reports, or raw objects.
trait Watched:
    kube::Resource<DynamicType = ApiResource> + Clone + DeserializeOwned + Debug + Send + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ApiResource>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static
{
}

/// The list-then-watch loop of one kind. Lists are streamed
/// ([`crate::source::list`]) so an unpaged list never sits in memory whole; watches
/// use kube's watch request and resume from the last resourceVersion seen
/// when they end. A relist starts after a 410, after a failed list, and
/// every `relist_interval`: servers that replay instead of resuming and
/// never send the deletions they missed (Kyverno's reports-server) are
/// exact again within one interval.
async fn forward<K>(
    client: Client,
    kind: Kind,
    ar: &ApiResource,
    requests: Requests,
    tx: mpsc::Sender<SourceEvent>,
    wrap: fn(Kind, K) -> SourceObject,
) where
    K: Watched,
{
    let api: Api<K> = Api::all_with(client.clone(), ar);
    let mut watch = Watcher {
        client: &client,
        url: api.resource_url(),
        requests: &requests,
        tx: &tx,
        kind,
        wrap,
        errors: ErrorLog::default(),
        backoff: DefaultBackoff::default(),
    };
    let resource = kind.resource();
    let mut synced = false;
    let mut reason = None;
    loop {
        if let Some(reason) = reason {
            debug!(
                resource,
                reason = RelistReason::as_str(reason),
                "listing again"
            );
            if watch
                .send(SourceEvent::RelistCause { resource, reason })
                .await
                .is_err()
            {
                return;
            }
        }
        let version = match watch.list().await {
            Ok(Ok(version)) => version,
            Ok(Err(why)) => {
                reason = Some(why);
                continue;
            }
            Err(_closed) => return,
        };
        if !synced {
            synced = true;
            info!(resource, "initial list complete");
            let done = SourceEvent::Synced {
                target: resource.to_owned(),
            };
            if watch.send(done).await.is_err() {
                return;
            }
        }
        match watch.until_relist(version).await {
            Ok(why) => reason = Some(why),
            Err(_closed) => return,
        }
    }
}

/// The watch half of [`forward`], with its failure log and backoff.
struct Watcher<'a, K: Clone> {
    client: &'a Client,
    /// The kind's collection, as [`Api::resource_url`] gives it.
    url: &'a str,
    requests: &'a Requests,
    tx: &'a mpsc::Sender<SourceEvent>,
    kind: Kind,
    wrap: fn(Kind, K) -> SourceObject,
    errors: ErrorLog,
    backoff: DefaultBackoff,
}

impl<K> Watcher<'_, K>
where
    K: Watched,
{
    async fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        self.tx.send(event).await.map_err(|_| Closed)
    }

    /// Log and count a failed request; the kind is unhealthy until it recovers.
    async fn failed(&mut self, err: &(dyn std::fmt::Display + Sync)) -> Result<(), Closed> {
        let resource = self.kind.resource();
        self.errors.failed(resource, err);
        self.send(SourceEvent::WatchError { resource }).await
    }

    /// A completed list or a watch event: proof that a failure streak ended.
    async fn progressed(&mut self) -> Result<(), Closed> {
        let resource = self.kind.resource();
        if self.errors.recovered(resource) {
            let target = resource.to_owned();
            self.send(SourceEvent::Recovered { target }).await?;
        }
        Ok(())
    }

    fn next_delay(&mut self) -> Duration {
        self.backoff.next().unwrap_or(Duration::from_secs(30))
    }

    /// List the kind, streamed as `RelistStart`, `RelistApply`… and
    /// `RelistEnd`: the resourceVersion to watch from, or, when the list
    /// failed, why to list again (once the backoff has passed).
    async fn list(&mut self) -> Result<Result<String, RelistReason>, Closed> {
        let (kind, wrap) = (self.kind, self.wrap);
        let origin = Origin::Watch(kind);
        let start = SourceEvent::RelistStart {
            origin: origin.clone(),
        };
        self.send(start).await?;
        let list_origin = origin.clone();
        let wrap_item = |o: K| SourceEvent::RelistApply {
            origin: list_origin.clone(),
            object: wrap(kind, o),
        };
        let requests = self.requests;
        let listed = list::list(
            self.client,
            self.url,
            requests.shape,
            &requests.list,
            self.tx,
            wrap_item,
        )
        .await;
        let version = match listed {
            Ok(version) => version,
            Err(ListError::Closed) => return Err(Closed),
            Err(err) => {
                self.failed(&err).await?;
                let reason = if err.is_expired() {
                    RelistReason::Expired
                } else {
                    RelistReason::Error
                };
                let delay = self.next_delay();
                tokio::time::sleep(delay).await;
                return Ok(Err(reason));
            }
        };
        self.backoff.reset();
        let end = SourceEvent::RelistEnd { origin };
        self.send(end).await?;
        self.progressed().await?;
        Ok(Ok(version))
    }

    /// Open a watch from `version`, in the kind's [`Shape`].
    async fn open(
        &self,
        version: &str,
    ) -> kube::Result<impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + use<K>> {
        let request = kube::core::Request::new(self.url);
        let params = &self.requests.watch;
        let mut request = match self.requests.shape {
            Shape::Objects => request.watch(params, version),
            Shape::Metadata => request.watch_metadata(params, version),
        }
        .map_err(kube::Error::BuildRequest)?;
        request.extensions_mut().insert("watch");
        self.client.request_events::<K>(request).await
    }

    /// Watch from `version` (resuming from the last resourceVersion seen
    /// whenever a watch ends) until a relist is due, and say why.
    async fn until_relist(&mut self, mut version: String) -> Result<RelistReason, Closed> {
        let due = self.requests.relist_interval.map(|i| Instant::now() + i);
        let due = sleep_until(due);
        let mut due = std::pin::pin!(due);
        let resource = self.kind.resource();
        loop {
            let opened = tokio::select! {
                () = &mut due => return Ok(RelistReason::Interval),
                opened = self.open(&version) => opened,
            };
            let stream = match opened {
                Ok(stream) => stream,
                Err(kube::Error::Api(status)) if status.code == 410 => {
                    info!(resource, error = %status.message, "watch expired (410 Gone); listing again");
                    return Ok(RelistReason::Expired);
                }
                Err(err) => {
                    self.failed(&err).await?;
                    let delay = self.next_delay();
                    tokio::select! {
                        () = &mut due => return Ok(RelistReason::Interval),
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            let mut stream = std::pin::pin!(stream);
            loop {
                let quiet = (self.errors.streak > 0).then_some(self.requests.quiet_recovery);
                let item = tokio::select! {
                    () = &mut due => return Ok(RelistReason::Interval),
                    () = sleep_for(quiet) => {
                        self.progressed().await?;
                        continue;
                    }
                    item = stream.next() => item,
                };
                match self.on_item(item, &mut version, &mut due).await? {
                    Flow::Next => {}
                    Flow::Reopen => break,
                    Flow::Relist(why) => return Ok(why),
                }
            }
        }
    }

    /// Handle one item of a watch stream (`None`: the stream ended): forward
    /// it, remember its resourceVersion, or log a failure and wait out the
    /// backoff.
    async fn on_item(
        &mut self,
        item: Option<kube::Result<WatchEvent<K>>>,
        version: &mut String,
        due: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Flow, Closed> {
        let resource = self.kind.resource();
        let origin = Origin::Watch(self.kind);
        let event = match item {
            // The watch ended (its timeout, or the server closed it):
            // resume from the last resourceVersion seen.
            None => return Ok(Flow::Reopen),
            Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                remember(version, o.meta().resource_version.as_deref());
                SourceEvent::Apply {
                    origin: origin.clone(),
                    object: (self.wrap)(self.kind, o),
                }
            }
            Some(Ok(WatchEvent::Deleted(o))) => {
                remember(version, o.meta().resource_version.as_deref());
                SourceEvent::Delete {
                    origin: origin.clone(),
                    object: (self.wrap)(self.kind, o),
                }
            }
            Some(Ok(WatchEvent::Bookmark(b))) => {
                remember(version, Some(&b.metadata.resource_version));
                return Ok(Flow::Next);
            }
            Some(Ok(WatchEvent::Error(status))) if status.code == 410 => {
                info!(resource, error = %status.message, "watch expired (410 Gone); listing again");
                return Ok(Flow::Relist(RelistReason::Expired));
            }
            Some(Ok(WatchEvent::Error(status))) => {
                self.failed(&kube::Error::Api(status)).await?;
                if self.pause(due).await? {
                    return Ok(Flow::Relist(RelistReason::Interval));
                }
                return Ok(Flow::Reopen);
            }
            Some(Err(err)) => {
                self.failed(&err).await?;
                if self.pause(due).await? {
                    return Ok(Flow::Relist(RelistReason::Interval));
                }
                return Ok(Flow::Next);
            }
        };
        self.send(event).await?;
        self.progressed().await?;
        Ok(Flow::Next)
    }

    /// Wait out the backoff after a failure; true if a relist fell due.
    async fn pause(
        &mut self,
        due: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<bool, Closed> {
        let delay = self.next_delay();
        Ok(tokio::select! {
            () = due.as_mut() => true,
            () = tokio::time::sleep(delay) => false,
        })
    }
}

/// What the watch loop does after an item of its stream.
enum Flow {
    /// Take the next item.
    Next,
    /// Open a new watch from the last resourceVersion seen.
    Reopen,
    /// Stop watching: a relist is due, for this reason.
    Relist(RelistReason),
}

/// Keep a newer resourceVersion to resume a watch from.
fn remember(version: &mut String, seen: Option<&str>) {
    if let Some(seen) = seen.filter(|v| !v.is_empty()) {
        seen.clone_into(version);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn sleep_for(delay: Option<Duration>) {
    match delay {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
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

    fn failed(&mut self, resource: &str, err: &dyn std::fmt::Display) {
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
