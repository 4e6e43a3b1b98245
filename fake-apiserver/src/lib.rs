//! An in-process fake Kubernetes API server over plain HTTP on 127.0.0.1,
//! for integration tests, fault tests and benchmarks of kube-rs clients.
//!
//! It serves arbitrary resources as JSON (no schema validation) with the
//! discovery, list (paging, selectors), get and watch (history replay,
//! bookmarks, 410 Expired) conventions that `kube::discovery` and
//! `kube::runtime::watcher` rely on, and lets tests inject faults: failing or
//! hanging requests, dropped watches, compaction, restarts. See the README
//! for what is and is not covered.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fake_apiserver::{FakeApiServer, ResourceDef};
//! let server = FakeApiServer::start().await?;
//! let reports = ResourceDef::new("wgpolicyk8s.io", "v1alpha2", "PolicyReport", "policyreports", true);
//! server.serve(reports.clone());
//! server.apply(&reports, serde_json::json!({"metadata": {"name": "r1", "namespace": "ns"}}));
//! // point a kube::Client at server.url() ...
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod handlers;
mod selector;
mod server;
mod store;
mod util;
mod watch;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::store::{ResKey, State};

/// Describes one resource type (a group/version/kind and its plural) to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; "" for the core group.
    pub group: String,
    /// API version, e.g. "v1alpha2".
    pub version: String,
    /// Kind, e.g. "PolicyReport".
    pub kind: String,
    /// Plural resource name used in URLs, e.g. "policyreports".
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl ResourceDef {
    /// Creates a resource definition.
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        kind: impl Into<String>,
        plural: impl Into<String>,
        namespaced: bool,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
        }
    }

    /// The `apiVersion` of objects: "v1" for core, "group/version" otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub(crate) fn key(&self) -> ResKey {
        (
            self.group.clone(),
            self.version.clone(),
            self.plural.clone(),
        )
    }
}

/// Serve a kind the way Kyverno's reports-server (kyverno/reports-server,
/// `pkg/api`) serves reports from its database, instead of like a
/// conforming API server; see [`FakeApiServer::set_reports_server`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportsServerMode {
    /// Writes made from now on reach no open watch, as when another
    /// replica (with its own broadcaster) handled them. Lists still see them.
    pub drop_live_events: bool,
}

/// Tuning knobs fixed at start; see [`FakeApiServer::start_with`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Interval between BOOKMARK events on watches that allow them (default 1 s).
    pub bookmark_interval: Duration,
    /// Events kept per resource for watch replay and continue pages; older
    /// ones are compacted away automatically (default 100 000).
    pub history_limit: usize,
    /// Live events a watcher may fall behind before its stream is ended
    /// (default 8192).
    pub watch_queue_capacity: usize,
    /// Whether `/api` and `/apis` answer aggregated discovery
    /// (`apidiscovery.k8s.io/v2`) when the Accept header asks for it
    /// (default true; false behaves like a server without it).
    pub aggregated_discovery: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(1),
            history_limit: 100_000,
            watch_queue_capacity: 8192,
            aggregated_discovery: true,
        }
    }
}

/// One request as seen by the server, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// URL path, e.g. `/apis/wgpolicyk8s.io/v1alpha2/policyreports`.
    pub path: String,
    /// Raw (still percent-encoded) query string, "" when absent.
    pub query: String,
    /// The Accept header, if any.
    pub accept: Option<String>,
}

impl RecordedRequest {
    /// The decoded value of a query parameter, if present.
    pub fn param(&self, name: &str) -> Option<String> {
        handlers::parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Whether this is a watch request (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch").as_deref(), Some("true" | "1"))
    }
}

/// A queued fault for upcoming requests.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    Fail {
        status: u16,
        retry_after: Option<u64>,
    },
    Hang,
}

/// Fault queues: one for resource requests, one for discovery requests.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) resource: VecDeque<Fault>,
    pub(crate) discovery: VecDeque<Fault>,
}

const REQUEST_LOG_LIMIT: usize = 10_000;

/// State shared by the handle and every connection task.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) options: ServerOptions,
    pub(crate) requests: AtomicU64,
    pub(crate) log: Mutex<VecDeque<RecordedRequest>>,
    /// Bumped by `drop_watches`; open watch streams abort on change.
    pub(crate) watch_drop: tokio::sync::watch::Sender<u64>,
    /// Bumped by `end_watches`; open watch streams end cleanly on change.
    pub(crate) watch_end: tokio::sync::watch::Sender<u64>,
    /// Bumped to release requests held by `hang_next`.
    pub(crate) hang_release: tokio::sync::watch::Sender<u64>,
    pub(crate) bookmark_interval_ms: AtomicU64,
    /// `usize::MAX` means unlimited.
    pub(crate) watch_drop_after: AtomicUsize,
    pub(crate) reset_continue: AtomicBool,
    pub(crate) addr: SocketAddr,
}

/// Locks a mutex, ignoring poisoning (a panicking test must not wedge the server).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Owns the running listener; aborting it on drop closes every connection.
struct Handle {
    shared: Arc<Shared>,
    running: Mutex<Option<server::Running>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(running) = lock(&self.running).take() {
            running.abort();
        }
    }
}

/// A running fake API server. Cheap to clone; all clones control the same server.
#[derive(Clone)]
pub struct FakeApiServer {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl FakeApiServer {
    /// Starts a server on 127.0.0.1 with an OS-assigned port and default options.
    pub async fn start() -> std::io::Result<FakeApiServer> {
        Self::start_with(ServerOptions::default()).await
    }

    /// Starts a server on 127.0.0.1 with an OS-assigned port and the given options.
    pub async fn start_with(options: ServerOptions) -> std::io::Result<FakeApiServer> {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(
                options.history_limit,
                options.watch_queue_capacity,
            )),
            faults: Mutex::new(Faults::default()),
            requests: AtomicU64::new(0),
            log: Mutex::new(VecDeque::new()),
            watch_drop: tokio::sync::watch::channel(0).0,
            watch_end: tokio::sync::watch::channel(0).0,
            hang_release: tokio::sync::watch::channel(0).0,
            bookmark_interval_ms: AtomicU64::new(options.bookmark_interval.as_millis() as u64),
            watch_drop_after: AtomicUsize::new(usize::MAX),
            reset_continue: AtomicBool::new(false),
            addr,
            options,
        });
        let running = server::Running::spawn(listener, shared.clone());
        tracing::debug!(%addr, "fake apiserver listening");
        Ok(FakeApiServer {
            inner: Arc::new(Handle {
                shared,
                running: Mutex::new(Some(running)),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The base URL, `http://127.0.0.1:PORT`; stable across [`restart`](Self::restart).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared().addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared().addr
    }

    /// Serves a resource: it appears in discovery and its routes answer immediately.
    /// Serving the same group/version/plural again replaces the definition.
    pub fn serve(&self, def: ResourceDef) {
        self.shared().state().served.insert(def.key(), def);
    }

    /// Serves a kind like Kyverno's reports-server (`Some`), or like a
    /// conforming API server again (`None`). In that mode:
    /// - a list ignores `limit` and `continue`: one response holds every
    ///   object (sent in chunks as it is written), and its
    ///   `metadata.resourceVersion` is always "1";
    /// - a watch with resourceVersion "" or "0" sends live events only; with
    ///   any other resourceVersion it first sends every current object as
    ///   ADDED, then live events; it never answers 410 and sends no
    ///   BOOKMARKs (`allowWatchBookmarks` is ignored); `timeoutSeconds` still
    ///   ends it cleanly;
    /// - an object deleted while no watch was open is never sent as DELETED
    ///   (a later watch's replay simply lacks it);
    /// - with `drop_live_events`, writes reach no open watch.
    ///
    /// Objects keep their own resourceVersions, which creates and updates advance.
    pub fn set_reports_server(&self, def: &ResourceDef, mode: Option<ReportsServerMode>) {
        let mut state = self.shared().state();
        match mode {
            Some(mode) => state.reports_server.insert(def.key(), mode),
            None => state.reports_server.remove(&def.key()),
        };
    }

    /// Stops serving a resource: it leaves discovery, its requests get 404 and
    /// its open watches end. Stored objects are kept (serve it again to see them).
    pub fn unserve(&self, group: &str, version: &str, plural: &str) {
        let key = (group.to_string(), version.to_string(), plural.to_string());
        let mut state = self.shared().state();
        state.served.remove(&key);
        state.close_watches(&key);
    }

    /// Creates or replaces an object by (namespace, name) and returns the stored copy.
    ///
    /// The server keeps the object serialized and hands `object` itself back
    /// (with the fields below set), so a caller that changes and re-applies the
    /// returned value pays no copy.
    ///
    /// Sets `apiVersion`, `kind`, `metadata.uid` (if absent; stable across
    /// updates), `metadata.creationTimestamp` (if absent), the namespace
    /// ("default" when missing on a namespaced resource; removed on a
    /// cluster-scoped one) and a new `metadata.resourceVersion`, and records
    /// ADDED or MODIFIED. Like a real server, a write that changes nothing is a
    /// no-op (no new resourceVersion, no event). Works whether or not the
    /// resource is served.
    ///
    /// # Panics
    /// If `object` is not a JSON object or has no `metadata.name`.
    pub fn apply(&self, def: &ResourceDef, object: Value) -> Value {
        self.shared().state().apply(def, object)
    }

    /// Like calling [`apply`](Self::apply) on each object in order, under one
    /// lock; watchers get the events together at the end (one wake-up per
    /// batch), which lets a load generator offer many updates per second cheaply.
    ///
    /// # Panics
    /// Like [`apply`](Self::apply); the objects before the offending one stay applied.
    pub fn apply_all(&self, def: &ResourceDef, objects: Vec<Value>) -> Vec<Value> {
        self.shared().state().apply_all(def, objects)
    }

    /// Deletes an object, recording DELETED (the last state with a new
    /// resourceVersion). `namespace` is ignored for cluster-scoped resources
    /// and defaults to "default" otherwise. Returns whether it existed.
    pub fn delete(&self, def: &ResourceDef, namespace: Option<&str>, name: &str) -> bool {
        self.shared().state().delete(def, namespace, name)
    }

    /// The current objects of a resource, sorted by namespace then name.
    pub fn objects(&self, def: &ResourceDef) -> Vec<Value> {
        let stored: Vec<_> = {
            let mut state = self.shared().state();
            state.store(&def.key()).objects.values().cloned().collect()
        };
        stored.iter().map(|s| s.to_value()).collect()
    }

    /// Like [`objects`](Self::objects), as the JSON bytes the server sends
    /// (cheap: no parsing or copying).
    pub fn objects_json(&self, def: &ResourceDef) -> Vec<Bytes> {
        let mut state = self.shared().state();
        state
            .store(&def.key())
            .objects
            .values()
            .map(|s| s.json.clone())
            .collect()
    }

    /// One current object, if it exists.
    pub fn get(&self, def: &ResourceDef, namespace: Option<&str>, name: &str) -> Option<Value> {
        let ns = if def.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        let stored = self
            .shared()
            .state()
            .store(&def.key())
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .cloned();
        stored.map(|s| s.to_value())
    }

    /// The last resourceVersion handed out (what a list would report now).
    pub fn resource_version(&self) -> u64 {
        self.shared().state().rv
    }

    /// Forgets all event history up to now: watches and continue tokens from an
    /// older resourceVersion get 410 Expired (a watch from exactly the current
    /// resourceVersion still works, as it would on a real server).
    pub fn compact(&self) {
        self.shared().state().compact();
    }

    /// Abruptly ends every open watch stream: the connection is closed
    /// mid-response without a final event (the client sees an unexpected EOF).
    pub fn drop_watches(&self) {
        self.shared().watch_drop.send_modify(|n| *n += 1);
    }

    /// Ends every open watch stream cleanly, as its `timeoutSeconds` would
    /// (the response completes; the client resumes with a new watch).
    pub fn end_watches(&self) {
        self.shared().watch_end.send_modify(|n| *n += 1);
    }

    /// Ends each watch stream cleanly after it has sent `n` object events
    /// (bookmarks not counted); `None` disables. Applies to watches started
    /// after the call.
    pub fn set_watch_drop_after(&self, n: Option<usize>) {
        self.shared()
            .watch_drop_after
            .store(n.unwrap_or(usize::MAX), Ordering::SeqCst);
    }

    /// Changes the BOOKMARK interval for watches started after the call.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.shared()
            .bookmark_interval_ms
            .store(interval.as_millis().max(1) as u64, Ordering::SeqCst);
    }

    /// The next `n` resource requests (list, watch or get) fail with HTTP
    /// `status` and a Status body, plus a `Retry-After` header when given.
    /// Faults queue up in call order with those from [`hang_next`](Self::hang_next).
    ///
    /// Note: kube's default client transparently retries 429, 503 and 504
    /// (honouring Retry-After), so those are only visible to callers that
    /// set `Config::default_retry = false` or exhaust the retries.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut faults = lock(&self.shared().faults);
        for _ in 0..n {
            faults.resource.push_back(Fault::Fail {
                status,
                retry_after,
            });
        }
    }

    /// Like [`fail_next`](Self::fail_next) but for discovery requests
    /// (`/api`, `/apis` and below, `/version`).
    pub fn fail_next_discovery(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut faults = lock(&self.shared().faults);
        for _ in 0..n {
            faults.discovery.push_back(Fault::Fail {
                status,
                retry_after,
            });
        }
    }

    /// The next `n` resource requests never answer: the connection stays
    /// open until the client gives up, or until [`release_hangs`](Self::release_hangs),
    /// [`restart`](Self::restart) or [`shutdown`](Self::shutdown).
    pub fn hang_next(&self, n: usize) {
        let mut faults = lock(&self.shared().faults);
        for _ in 0..n {
            faults.resource.push_back(Fault::Hang);
        }
    }

    /// Drops every request currently held by `hang_next` (their connections are closed).
    pub fn release_hangs(&self) {
        self.shared().hang_release.send_modify(|n| *n += 1);
    }

    /// Clears all queued faults.
    pub fn clear_faults(&self) {
        let mut faults = lock(&self.shared().faults);
        faults.resource.clear();
        faults.discovery.clear();
    }

    /// When on, a list request carrying a `continue` token has its connection
    /// closed without a response (a reset in the middle of a paged list).
    pub fn reset_list_after_first_page(&self, on: bool) {
        self.shared().reset_continue.store(on, Ordering::SeqCst);
    }

    /// Stops the listener and closes every connection, then listens again on
    /// the same port, keeping stored objects. Like an etcd-compacted restart,
    /// the resourceVersion counter advances by one and all history is
    /// forgotten, so every resourceVersion handed out before (from lists,
    /// events or bookmarks) gets 410 Expired and watchers re-list.
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop().await;
        {
            let mut state = self.shared().state();
            state.rv += 1;
            state.compact();
        }
        self.resume().await
    }

    /// Like [`restart`](Self::restart) but keeps the event history, so
    /// watchers resume from their last resourceVersion without re-listing.
    pub async fn restart_keeping_history(&self) -> std::io::Result<()> {
        self.stop().await;
        self.resume().await
    }

    /// Stops listening and closes every connection (clients get connection
    /// refused) until [`resume`](Self::resume). Idempotent.
    pub async fn stop(&self) {
        let running = lock(&self.inner.running).take();
        self.release_hangs();
        if let Some(running) = running {
            running.stop().await;
        }
    }

    /// Listens again on the same port after [`stop`](Self::stop); a no-op if running.
    pub async fn resume(&self) -> std::io::Result<()> {
        if lock(&self.inner.running).is_some() {
            return Ok(());
        }
        let listener = server::bind_retrying(self.shared().addr).await?;
        let running = server::Running::spawn(listener, self.inner.shared.clone());
        let mut slot = lock(&self.inner.running);
        if slot.is_none() {
            *slot = Some(running);
        } else {
            running.abort();
        }
        Ok(())
    }

    /// Jumps the resourceVersion counter forward by `by` without recording events.
    pub fn bump_resource_versions(&self, by: u64) {
        self.shared().state().rv += by;
    }

    /// Total HTTP requests received (discovery included).
    pub fn request_count(&self) -> u64 {
        self.shared().requests.load(Ordering::SeqCst)
    }

    /// The most recent requests (up to 10 000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared().log).iter().cloned().collect()
    }

    /// Forgets the recorded requests (the count is kept).
    pub fn clear_requests(&self) {
        lock(&self.shared().log).clear();
    }

    /// Writes a kubeconfig with one cluster (`server` = [`url`](Self::url), no
    /// TLS), one user without credentials and a context named "fake" set as
    /// current-context (default namespace "default").
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        let yaml = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: fake\n  user: {{}}\n\
             contexts:\n\
             - name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\n\
             preferences: {{}}\n",
            url = self.url()
        );
        std::fs::write(path, yaml)
    }

    /// Stops the server and closes every connection.
    pub async fn shutdown(self) {
        self.stop().await;
    }
}

impl Shared {
    /// Counts and records a request.
    pub(crate) fn record(&self, req: RecordedRequest) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut log = lock(&self.log);
        if log.len() >= REQUEST_LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(req);
    }
}
