//! HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and an index page. The
//! handlers read the latest published [`Snapshot`]; only the small
//! `process_*` families and the web configuration's gauge are read (and, for
//! gzip, compressed) per request.
//! The server bounds the work clients can cause: a header read timeout (the
//! TLS handshake included), a cap on open connections, a cap on requests in
//! flight (excess requests get 503 at once) and a per-request timeout. Who
//! may connect and over what ([`crate::web`]) is decided per connection
//! (TLS) and per request (authentication).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceBuilder;
use tracing::{debug, warn};

use crate::exposition::Exposition;
use crate::gzip;
use crate::metrics::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, Snapshot};
use crate::process;
use crate::web::{self, Access};

/// The receiving side of published snapshots.
pub type Snapshots = watch::Receiver<Arc<Snapshot>>;

/// Bounds on what clients can make the server do.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Open connections at most; further connections are closed at once.
    pub max_connections: usize,
    /// Requests being handled at most; further requests get 503.
    pub max_in_flight: usize,
    /// A request's headers must arrive within this.
    pub header_timeout: Duration,
    /// A request must be answered within this.
    pub request_timeout: Duration,
    /// On shutdown, open connections get this long to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_in_flight: 32,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// What the handlers read: the snapshots, and the access rules (for their
/// own family).
#[derive(Clone)]
struct Shared {
    snapshots: Snapshots,
    access: Arc<Access>,
}

impl FromRef<Shared> for Snapshots {
    fn from_ref(shared: &Shared) -> Self {
        shared.snapshots.clone()
    }
}

impl FromRef<Shared> for Arc<Access> {
    fn from_ref(shared: &Shared) -> Self {
        shared.access.clone()
    }
}

/// The exporter's routes behind `access`. Unknown paths get 404.
pub fn router(snapshots: Snapshots, limits: Limits, access: Arc<Access>) -> Router {
    let guard = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|err: tower::BoxError| async move {
            if err.is::<tower::timeout::error::Elapsed>() {
                (StatusCode::REQUEST_TIMEOUT, "request timed out\n")
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many requests in flight\n",
                )
            }
        }))
        .load_shed()
        .concurrency_limit(limits.max_in_flight)
        .timeout(limits.request_timeout);
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::from_fn_with_state(
            access.clone(),
            web::guard,
        ))
        .layer(guard)
        .with_state(Shared { snapshots, access })
}

/// Serve `router` on `listener` until `shutdown` completes, then give open
/// connections `limits.shutdown_grace` to finish. Each connection is TLS
/// when `access` has a TLS configuration at the time it is accepted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    access: Arc<Access>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically out of file descriptors: back off briefly.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // The body goes out in chunks; without this, Nagle's algorithm and
        // delayed ACKs stall the last chunk for ~40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            debug!(%peer, "connection limit reached; closing");
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let watcher = graceful.watcher();
        let tls = access.tls();
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(config) => {
                    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                    match tokio::time::timeout(limits.header_timeout, accept).await {
                        Ok(Ok(stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("open connections did not finish in time");
    }
    Ok(())
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<html><head><title>policyreport-exporter</title></head><body>",
        "<h1>policyreport-exporter</h1><ul>",
        "<li><a href=\"/metrics\">/metrics</a></li>",
        "<li><a href=\"/healthz\">/healthz</a></li>",
        "<li><a href=\"/readyz\">/readyz</a></li>",
        "</ul></body></html>\n"
    ))
}

/// Whether the client asked for OpenMetrics.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// Whether the client accepts a gzip answer.
fn wants_gzip(headers: &HeaderMap) -> bool {
    gzip::accepts_gzip(
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// The cached rendering (shared, not copied), followed by the process
/// families read now; gzip-compressed when the client accepts it, from the
/// rendering's cached compression plus the compressed tail.
async fn metrics(
    State(snapshots): State<Snapshots>,
    State(access): State<Arc<Access>>,
    headers: HeaderMap,
) -> Response {
    let snapshot = snapshots.borrow().clone();
    let openmetrics = wants_openmetrics(&headers);
    let mut process = Exposition::default();
    process::write(&mut process);
    access.write(&mut process);
    let (content_type, cached, tail) = if openmetrics {
        process.openmetrics.push_str("# EOF\n");
        (
            OPENMETRICS_CONTENT_TYPE,
            snapshot.openmetrics.clone(),
            process.openmetrics,
        )
    } else {
        (
            PROMETHEUS_CONTENT_TYPE,
            snapshot.prometheus.clone(),
            process.prometheus,
        )
    };
    if !wants_gzip(&headers) {
        let chunks = [cached, Bytes::from(tail)].map(Ok::<_, std::convert::Infallible>);
        let body = Body::from_stream(futures::stream::iter(chunks));
        let headers = [
            (header::CONTENT_TYPE, content_type),
            (header::VARY, "Accept-Encoding"),
        ];
        return (headers, body).into_response();
    }
    let prefix = match snapshot.gzip_cached(openmetrics) {
        Some(prefix) => prefix.clone(),
        // The first gzip scrape of a rendering compresses it, off the
        // async workers; concurrent ones wait for the same result.
        None => {
            let snapshot = snapshot.clone();
            match tokio::task::spawn_blocking(move || snapshot.gzip(openmetrics).clone()).await {
                Ok(prefix) => prefix,
                Err(e) => {
                    warn!(error = %e, "compressing the metrics failed");
                    return (StatusCode::INTERNAL_SERVER_ERROR, "compression failed\n")
                        .into_response();
                }
            }
        }
    };
    let chunks =
        [prefix.bytes(), prefix.finish(tail.as_bytes())].map(Ok::<_, std::convert::Infallible>);
    let body = Body::from_stream(futures::stream::iter(chunks));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_ENCODING, "gzip"),
            (header::VARY, "Accept-Encoding"),
        ],
        body,
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(snapshots): State<Snapshots>) -> Response {
    let pending = snapshots.borrow().pending.clone();
    if pending.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let text = format!(
            "not ready: waiting for the initial list of {}\n",
            pending.join(", ")
        );
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_openmetrics_from_prometheus_accept_header() {
        let mut h = HeaderMap::new();
        assert!(!wants_openmetrics(&h));
        h.insert(
            header::ACCEPT,
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
                .parse()
                .expect("header"),
        );
        assert!(wants_openmetrics(&h));
        h.insert(header::ACCEPT, "text/plain".parse().expect("header"));
        assert!(!wants_openmetrics(&h));
    }
}
