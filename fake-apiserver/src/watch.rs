//! Watch streams: newline-delimited JSON events (`{"type":..,"object":..}`)
//! over a chunked response. A watch replays history after the requested
//! resourceVersion (or synthesizes ADDED events for the current state when
//! it is "" / "0" or `sendInitialEvents=true`), then follows a bounded
//! broadcast queue of live events, with optional bookmarks, timeout, and
//! the test hooks `drop_watches` / `end_watches` / `set_watch_drop_after`.
//! Kinds in reports-server mode watch the way Kyverno's reports-server does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::handlers::{Filter, Params, Render, status_body, status_response};
use crate::store::{EventKind, HistEvent, Stored};
use crate::{ResourceDef, Shared};

/// Something queued for a watcher before live events.
enum Pending {
    /// A recorded event being replayed.
    Hist(Arc<HistEvent>),
    /// A synthetic ADDED for an existing object (initial state).
    Synthetic(Arc<Stored>),
    /// The bookmark that ends `sendInitialEvents`, at the given resourceVersion.
    InitialEnd(u64),
    /// A complete, pre-rendered line (used for the 410 ERROR event).
    Line(Bytes),
}

/// Per-watcher state driving the response body.
struct WatchStream {
    shared: Arc<Shared>,
    def: ResourceDef,
    filter: Filter,
    render: Render,
    pending: VecDeque<Pending>,
    /// None for a stream that only delivers `pending` and then ends.
    rx: Option<broadcast::Receiver<Arc<HistEvent>>>,
    /// Highest resourceVersion taken off the live queue (or the start point).
    last_rv: u64,
    deadline: Option<Instant>,
    bookmarks: Option<Interval>,
    drop_rx: tokio::sync::watch::Receiver<u64>,
    end_rx: tokio::sync::watch::Receiver<u64>,
    /// Object events still allowed before a clean end (`set_watch_drop_after`).
    remaining: Option<usize>,
    finished: bool,
}

/// Builds one watch line with "type" before "object", as kube-rs expects.
fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(object.len() + kind.len() + 24);
    b.extend_from_slice(b"{\"type\":\"");
    b.extend_from_slice(kind.as_bytes());
    b.extend_from_slice(b"\",\"object\":");
    b.extend_from_slice(object);
    b.extend_from_slice(b"}\n");
    Bytes::from(b)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn tick_opt(interval: Option<&mut Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What woke a waiting watcher.
enum Wake {
    Dropped,
    TimedOut,
    Event(Result<Arc<HistEvent>, RecvError>),
    Bookmark,
}

impl WatchStream {
    /// Produces the next body chunk; `None` ends the response cleanly and
    /// `Some(Err(_))` aborts the connection mid-stream.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if self.finished {
                return None;
            }
            if self.drop_rx.has_changed().unwrap_or(false) {
                return self.abort();
            }
            if self.end_rx.has_changed().unwrap_or(false) {
                self.finished = true;
                return None;
            }
            if let Some(p) = self.pending.pop_front() {
                if let Some(chunk) = self.render_pending(p) {
                    return Some(Ok(chunk));
                }
                continue;
            }
            let Some(rx) = self.rx.as_mut() else {
                self.finished = true;
                return None;
            };
            let wake = tokio::select! {
                biased;
                _ = self.drop_rx.changed() => Wake::Dropped,
                _ = self.end_rx.changed() => Wake::TimedOut,
                _ = sleep_until_opt(self.deadline) => Wake::TimedOut,
                r = rx.recv() => Wake::Event(r),
                _ = tick_opt(self.bookmarks.as_mut()) => Wake::Bookmark,
            };
            match wake {
                Wake::Dropped => return self.abort(),
                Wake::TimedOut => {
                    tracing::debug!("fake apiserver: watch timeoutSeconds reached");
                    self.finished = true;
                    return None;
                }
                Wake::Event(Ok(ev)) => {
                    if ev.rv <= self.last_rv {
                        continue;
                    }
                    self.last_rv = ev.rv;
                    if let Some(chunk) = self.render_event(&ev) {
                        return Some(Ok(self.drain_queued(chunk)));
                    }
                }
                Wake::Event(Err(RecvError::Lagged(n))) => {
                    tracing::debug!(
                        missed = n,
                        "fake apiserver: watcher fell behind, closing its stream"
                    );
                    self.finished = true;
                    return None;
                }
                Wake::Event(Err(RecvError::Closed)) => {
                    self.finished = true;
                    return None;
                }
                Wake::Bookmark => return Some(Ok(self.bookmark())),
            }
        }
    }

    /// Appends the live events already queued to `first` (up to about
    /// 256 KiB), so a busy watch goes out in few large writes.
    fn drain_queued(&mut self, first: Bytes) -> Bytes {
        const MAX: usize = 256 * 1024;
        let mut buf: Option<Vec<u8>> = None;
        while !self.finished && buf.as_ref().map_or(first.len(), Vec::len) < MAX {
            if self.drop_rx.has_changed().unwrap_or(false) {
                break;
            }
            let Some(rx) = self.rx.as_mut() else { break };
            let (ev, queued) = match rx.try_recv() {
                Ok(ev) => (ev, rx.len()),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(n)) => {
                    tracing::debug!(
                        missed = n,
                        "fake apiserver: watcher fell behind, closing its stream"
                    );
                    self.finished = true;
                    break;
                }
                Err(TryRecvError::Closed) => {
                    self.finished = true;
                    break;
                }
            };
            if ev.rv <= self.last_rv {
                continue;
            }
            self.last_rv = ev.rv;
            if let Some(chunk) = self.render_event(&ev) {
                buf.get_or_insert_with(|| {
                    let want = first.len() + chunk.len() * (queued + 1);
                    let mut b = Vec::with_capacity(want.min(MAX + chunk.len()));
                    b.extend_from_slice(&first);
                    b
                })
                .extend_from_slice(&chunk);
            }
        }
        buf.map_or(first, Bytes::from)
    }

    fn abort(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        tracing::debug!("fake apiserver: dropping watch stream");
        self.finished = true;
        Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "watch dropped by fake apiserver",
        )))
    }

    /// Counts an object event against `set_watch_drop_after`.
    fn counted(&mut self, chunk: Bytes) -> Bytes {
        if let Some(left) = self.remaining.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.finished = true;
            }
        }
        chunk
    }

    fn render_pending(&mut self, p: Pending) -> Option<Bytes> {
        match p {
            Pending::Hist(ev) => self.render_event(&ev),
            Pending::Synthetic(obj) => {
                let chunk = line("ADDED", &self.render.object_bytes(&obj));
                Some(self.counted(chunk))
            }
            Pending::InitialEnd(rv) => Some(self.bookmark_line(rv, true)),
            Pending::Line(chunk) => Some(chunk),
        }
    }

    /// Renders a recorded event as this watcher sees it: selector transitions
    /// turn MODIFIED into ADDED (now matches) or DELETED (no longer matches,
    /// carrying the previous content with the new resourceVersion).
    fn render_event(&mut self, ev: &HistEvent) -> Option<Bytes> {
        let now = self.filter.matches(&ev.key, &ev.object);
        let before = ev
            .prev
            .as_ref()
            .is_some_and(|p| self.filter.matches(&ev.key, p));
        let bytes = |obj: &Stored| self.render.object_bytes(obj);
        let chunk = match (ev.kind, now, before) {
            (EventKind::Added, true, _) => line("ADDED", &bytes(&ev.object)),
            (EventKind::Deleted, true, _) => line("DELETED", &bytes(&ev.object)),
            (EventKind::Modified, true, true) => line("MODIFIED", &bytes(&ev.object)),
            (EventKind::Modified, true, false) => line("ADDED", &bytes(&ev.object)),
            (EventKind::Modified, false, true) => match &ev.prev {
                Some(prev) => line("DELETED", &bytes(&prev.with_rv(ev.rv))),
                None => return None,
            },
            _ => return None,
        };
        Some(self.counted(chunk))
    }

    /// A periodic bookmark. When the watcher has consumed every queued event
    /// it is current up to the server's resourceVersion; otherwise only up to
    /// the last event it took.
    fn bookmark(&mut self) -> Bytes {
        let rv = {
            let state = self.shared.state();
            let caught_up = self.rx.as_ref().is_some_and(|rx| rx.is_empty());
            if caught_up {
                state.rv.max(self.last_rv)
            } else {
                self.last_rv
            }
        };
        self.last_rv = rv;
        self.bookmark_line(rv, false)
    }

    fn bookmark_line(&self, rv: u64, initial_end: bool) -> Bytes {
        let (api_version, kind) = match self.render {
            Render::Full => (self.def.api_version(), self.def.kind.clone()),
            Render::Metadata => (
                "meta.k8s.io/v1".to_string(),
                "PartialObjectMetadata".to_string(),
            ),
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
        line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
    }
}

/// Starts a watch on `def` for a request with the given parameters.
pub(crate) fn watch(
    shared: Arc<Shared>,
    def: ResourceDef,
    filter: Filter,
    params: &Params,
    render: Render,
) -> Response<Body> {
    let rv_param = params.get("resourceVersion").unwrap_or("");
    let reports_server = shared.state().reports_server.contains_key(&def.key());
    let send_initial = !reports_server && params.flag("sendInitialEvents");
    let from_now = send_initial || rv_param.is_empty() || rv_param == "0";
    let start_rv = if from_now {
        0
    } else {
        match rv_param.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return status_response(
                    400,
                    "BadRequest",
                    &format!("invalid resource version: {rv_param}"),
                    None,
                );
            }
        }
    };
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t));
    let bookmarks = (!reports_server && params.flag("allowWatchBookmarks")).then(|| {
        let period =
            Duration::from_millis(shared.bookmark_interval_ms.load(Ordering::SeqCst).max(1));
        let mut i = tokio::time::interval_at(Instant::now() + period, period);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    let remaining = match shared.watch_drop_after.load(Ordering::SeqCst) {
        usize::MAX => None,
        n => Some(n),
    };

    let mut pending = VecDeque::new();
    let (rx, last_rv) = {
        let mut state = shared.state();
        let current = state.rv;
        let store = state.store(&def.key());
        if reports_server {
            // Kyverno's reports-server: "" / "0" watch live events only; any
            // other resourceVersion replays every current object as ADDED
            // (never 410, never the deletions it missed), then live events.
            if !from_now {
                for (k, obj) in &store.objects {
                    if filter.matches(k, obj) {
                        pending.push_back(Pending::Synthetic(obj.clone()));
                    }
                }
            }
            (Some(store.tx.subscribe()), current)
        } else if from_now {
            for (k, obj) in &store.objects {
                if filter.matches(k, obj) {
                    pending.push_back(Pending::Synthetic(obj.clone()));
                }
            }
            if send_initial {
                pending.push_back(Pending::InitialEnd(current));
            }
            (Some(store.tx.subscribe()), current)
        } else {
            match store.events_after(start_rv) {
                Ok(events) => {
                    pending.extend(events.into_iter().map(Pending::Hist));
                    // A resourceVersion from the future waits for events after it.
                    (Some(store.tx.subscribe()), current.max(start_rv))
                }
                Err(expired) => {
                    let status = status_body(
                        410,
                        "Expired",
                        &format!("too old resource version: {start_rv} ({})", expired.oldest),
                        None,
                    );
                    let obj = serde_json::to_vec(&status).unwrap_or_default();
                    pending.push_back(Pending::Line(line("ERROR", &obj)));
                    (None, current)
                }
            }
        }
    };
    let stream = WatchStream {
        drop_rx: shared.watch_drop.subscribe(),
        end_rx: shared.watch_end.subscribe(),
        shared,
        def,
        filter,
        render,
        pending,
        rx,
        last_rv,
        deadline: timeout,
        bookmarks,
        remaining,
        finished: false,
    };
    let body = futures::stream::unfold(stream, |mut s| async move {
        let item = s.next_chunk().await?;
        Some((item, s))
    });
    let mut res = Response::new(Body::from_stream(body));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
