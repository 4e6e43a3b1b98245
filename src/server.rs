//! HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and an index page. The
//! handlers read the latest published [`Snapshot`]; only the small
//! `process_*` families are read per request.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::{Exposition, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, Snapshot};
use crate::process;

/// The receiving side of published snapshots.
pub type Snapshots = watch::Receiver<Arc<Snapshot>>;

/// The exporter's routes. Unknown paths get 404.
pub fn router(snapshots: Snapshots) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(snapshots)
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

/// The cached rendering, followed by the process families read now.
async fn metrics(State(snapshots): State<Snapshots>, headers: HeaderMap) -> Response {
    let snapshot = snapshots.borrow().clone();
    let mut process = Exposition::default();
    process::write(&mut process);
    let (content_type, cached, tail, eof) = if wants_openmetrics(&headers) {
        (
            OPENMETRICS_CONTENT_TYPE,
            &snapshot.openmetrics,
            process.openmetrics,
            "# EOF\n",
        )
    } else {
        (
            PROMETHEUS_CONTENT_TYPE,
            &snapshot.prometheus,
            process.prometheus,
            "",
        )
    };
    let mut body = Vec::with_capacity(cached.len() + tail.len() + eof.len());
    body.extend_from_slice(cached);
    body.extend_from_slice(tail.as_bytes());
    body.extend_from_slice(eof.as_bytes());
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
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
