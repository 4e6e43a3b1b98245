//! Who may reach the HTTP server, and how: the web configuration file
//! (`--web-config-file`, exporter-toolkit's format: TLS, basic auth, extra
//! headers, a rate limit; re-read when it changes) and Kubernetes
//! authentication of scrapers (`--metrics-auth kubernetes`). `server` asks
//! [`Access::tls`] for each new connection and runs [`guard`] before every
//! handler. `/healthz` and `/readyz` are never behind auth or the rate
//! limit, so kubelet's probes keep working; every other path is.
//!
//! Serves `policyreport_exporter_web_config_last_reload_successful`, read
//! at each scrape.

mod basic_auth;
pub mod config;
pub mod kubernetes;
mod reload;
mod tls;

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use self::basic_auth::BasicAuth;
use self::config::{RateLimit, WebConfig, WebConfigError};
use self::kubernetes::{Reviewer, Verdict};
use self::reload::Live;
use crate::exposition::{Exposition, Family, Type, always};

pub use self::reload::POLL;

/// Paths open to anyone who can connect: the probes.
const OPEN: &[&str] = &["/healthz", "/readyz"];

/// The server's access rules: the web configuration in force, if any, and
/// the Kubernetes reviewer, if `--metrics-auth kubernetes`.
#[derive(Debug, Default)]
pub struct Access {
    web: Option<Arc<Live>>,
    basic: Arc<BasicAuth>,
    kubernetes: Option<Reviewer>,
    bucket: Mutex<Option<Bucket>>,
}

impl Access {
    /// Load the web configuration file, if given, and check it against the
    /// reviewer: both basic auth and Kubernetes auth would need the
    /// `Authorization` header, so they cannot be combined.
    pub fn new(
        web_config_file: Option<&Path>,
        kubernetes: Option<Reviewer>,
    ) -> Result<Self, WebConfigError> {
        let rule: reload::Rule = if kubernetes.is_some() {
            no_users
        } else {
            |_| Ok(())
        };
        let web = web_config_file
            .map(|path| Live::load(path, rule).map(Arc::new))
            .transpose()?;
        Ok(Self {
            web,
            kubernetes,
            ..Self::default()
        })
    }

    /// The task that re-reads the web configuration when it changes.
    pub fn watcher(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.web.clone().map(Live::watch)
    }

    /// The TLS configuration for a new connection; `None` serves plain HTTP.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.web.as_ref().and_then(|w| w.current().tls.clone())
    }

    /// Whether the web configuration files on disk are the ones in force
    /// (true without `--web-config-file`).
    pub fn in_force(&self) -> bool {
        self.web.as_ref().is_none_or(|w| w.in_force())
    }

    /// Write this module's families.
    pub fn write(&self, out: &mut Exposition) {
        for family in FAMILIES {
            out.family(family, self);
        }
    }

    /// The configuration in force; without a file, an empty one (shared,
    /// so a request allocates nothing for it).
    fn web_config(&self) -> Arc<WebConfig> {
        static NONE: LazyLock<Arc<WebConfig>> = LazyLock::new(Arc::default);
        self.web
            .as_ref()
            .map_or_else(|| NONE.clone(), |w| w.current())
    }

    /// Whether one more request fits the rate limit.
    fn within_rate(&self, limit: Option<RateLimit>) -> bool {
        let Some(limit) = limit else { return true };
        let mut bucket = match self.bucket.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let b = match &mut *bucket {
            Some(b) if b.limit == limit => b,
            slot => slot.insert(Bucket {
                limit,
                tokens: f64::from(limit.burst),
                at: now,
            }),
        };
        let refill = now.duration_since(b.at).as_secs_f64() / limit.interval.as_secs_f64();
        b.tokens = (b.tokens + refill).min(f64::from(limit.burst));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// `Ok` when the request may go on, else the answer to give.
    async fn admit(
        &self,
        web: &WebConfig,
        headers: &HeaderMap,
        path: &str,
    ) -> Result<(), Response> {
        if !web.users.is_empty()
            && !self
                .basic
                .allows(&web.users, headers.get(header::AUTHORIZATION))
                .await
        {
            return Err(unauthorized("Basic"));
        }
        let Some(reviewer) = &self.kubernetes else {
            return Ok(());
        };
        let Some(token) = bearer(headers) else {
            return Err(unauthorized("Bearer"));
        };
        match reviewer.review(token, path).await {
            Ok(Verdict::Allowed) => Ok(()),
            Ok(Verdict::Unauthenticated) => Err(unauthorized("Bearer")),
            Ok(Verdict::Forbidden) => {
                Err((StatusCode::FORBIDDEN, format!("forbidden: get {path}\n")).into_response())
            }
            Err(e) => {
                warn!(error = %e, "reviewing a scraper's token failed");
                Err((StatusCode::SERVICE_UNAVAILABLE, "cannot review the token\n").into_response())
            }
        }
    }
}

/// The families of the access rules, rendered at each scrape.
static FAMILIES: &[Family<Access>] = &[Family {
    name: "policyreport_exporter_web_config_last_reload_successful",
    help: "1 unless the web configuration file or a certificate it names changed and could not be loaded (the last good configuration keeps serving); 1 without --web-config-file.",
    kind: Type::Gauge,
    when: always,
    samples: |a, s| s.float(if a.in_force() { 1.0 } else { 0.0 }),
}];

fn no_users(config: &WebConfig) -> Result<(), String> {
    if config.users.is_empty() {
        Ok(())
    } else {
        Err("basic_auth_users cannot be combined with --metrics-auth kubernetes: both use the Authorization header".into())
    }
}

/// A token bucket: `limit.burst` requests at once, refilled one per
/// `limit.interval` (what Go's `rate.NewLimiter(rate.Every(interval),
/// burst)` allows, as exporter-toolkit uses it).
#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

fn unauthorized(scheme: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, scheme)],
        "unauthorized\n",
    )
        .into_response()
}

/// The middleware: the rate limit and authentication on every path but the
/// probes, and the configured headers on every answer.
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let web = access.web_config();
    let mut response = if OPEN.contains(&request.uri().path()) {
        next.run(request).await
    } else if !access.within_rate(web.rate_limit) {
        (StatusCode::TOO_MANY_REQUESTS, "too many requests\n").into_response()
    } else {
        match access
            .admit(&web, request.headers(), request.uri().path())
            .await
        {
            Ok(()) => next.run(request).await,
            Err(refused) => refused,
        }
    };
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_rate_limit_allows_a_burst_then_one_per_interval() {
        let access = Access::default();
        assert!(access.within_rate(None), "no limit");
        let limit = RateLimit {
            burst: 2,
            interval: Duration::from_millis(200),
        };
        assert!(access.within_rate(Some(limit)));
        assert!(access.within_rate(Some(limit)));
        assert!(!access.within_rate(Some(limit)), "the burst is spent");
        std::thread::sleep(Duration::from_millis(220));
        assert!(access.within_rate(Some(limit)), "one more per interval");
        assert!(!access.within_rate(Some(limit)));
        // A changed limit (a reloaded file) starts a full bucket.
        let other = RateLimit { burst: 1, ..limit };
        assert!(access.within_rate(Some(other)));
        assert!(!access.within_rate(Some(other)));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            "Bearer abc.def".parse().expect("value"),
        );
        assert_eq!(bearer(&h), Some("abc.def"));
        h.insert(
            header::AUTHORIZATION,
            "bearer  xyz ".parse().expect("value"),
        );
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().expect("value"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().expect("value"));
        assert_eq!(bearer(&h), None);
    }
}
