//! HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and an index page. The
//! handlers only read the latest published [`Snapshot`]; nothing is computed
//! per request.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, Snapshot};

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

async fn metrics(State(snapshots): State<Snapshots>, headers: HeaderMap) -> Response {
    let snapshot = snapshots.borrow().clone();
    let (content_type, body) = if wants_openmetrics(&headers) {
        (OPENMETRICS_CONTENT_TYPE, snapshot.openmetrics.clone())
    } else {
        (PROMETHEUS_CONTENT_TYPE, snapshot.prometheus.clone())
    };
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
