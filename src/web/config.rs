//! The web configuration file, in the format of the Prometheus
//! exporter-toolkit (`--web-config-file`): read strictly (an unknown field is
//! an error, as `yaml.UnmarshalStrict` makes it there) and checked whole,
//! certificates and bcrypt hashes included, into a [`WebConfig`] ready to
//! serve. Relative paths resolve against the file's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::tls;

/// Why a web configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's reason, with line and column.
        source: serde_yaml_ng::Error,
    },
    /// A value is out of range or inconsistent with another.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The file as written. Field names and defaults are exporter-toolkit's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct File {
    tls_server_config: TlsFile,
    http_server_config: HttpFile,
    rate_limit: RateLimitFile,
    basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct TlsFile {
    pub cert: String,
    pub key: String,
    pub client_ca: String,
    pub cert_file: String,
    pub key_file: String,
    pub client_auth_type: String,
    pub client_ca_file: String,
    pub cipher_suites: Vec<String>,
    pub curve_preferences: Vec<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub client_allowed_sans: Option<Vec<String>>,
}

impl TlsFile {
    /// Whether any TLS field is set; an empty section serves plain HTTP,
    /// as exporter-toolkit's `IsEnabled` decides.
    fn is_enabled(&self) -> bool {
        [
            &self.cert_file,
            &self.cert,
            &self.key_file,
            &self.key,
            &self.client_ca_file,
            &self.client_ca,
            &self.client_auth_type,
        ]
        .iter()
        .any(|s| !s.is_empty())
    }
}

/// `http_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct HttpFile {
    /// Accepted for compatibility; the server speaks HTTP/1.1 only.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: BTreeMap<String, String>,
}

/// `rate_limit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RateLimitFile {
    burst: u32,
    interval: Option<String>,
}

/// The response headers a web configuration may set, with the values each
/// allows (none listed: any). The same list as exporter-toolkit's, kept
/// small so that the file cannot change what a response means.
const HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A request rate limit: `burst` requests at once, then one per `interval`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// One more request is allowed per interval.
    pub interval: Duration,
}

/// A loaded, valid web configuration.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// The TLS server configuration; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Basic auth users and their bcrypt hashes; empty: no basic auth.
    pub users: BTreeMap<String, String>,
    /// Headers added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The request rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Settings asked for that this server cannot honour, for the log.
    pub notes: Vec<String>,
}

/// What loading read: the configuration, and each file it read with a
/// digest of its bytes, so a change to any of them is seen.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: WebConfig,
    /// The files read (the configuration first) and their SHA-256.
    pub inputs: Vec<(PathBuf, [u8; 32])>,
}

/// Reads a file, recording its digest.
pub(super) fn read(
    path: &Path,
    inputs: &mut Vec<(PathBuf, [u8; 32])>,
) -> Result<Vec<u8>, WebConfigError> {
    let bytes = std::fs::read(path).map_err(|source| WebConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    inputs.push((path.to_owned(), digest(&bytes)));
    Ok(bytes)
}

/// SHA-256 of some bytes.
pub(super) fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Load and check the web configuration at `path` and every file it names.
pub fn load(path: &Path) -> Result<Loaded, WebConfigError> {
    let mut inputs = Vec::new();
    let bytes = read(path, &mut inputs)?;
    let invalid = |reason: String| WebConfigError::Invalid {
        path: path.to_owned(),
        reason,
    };
    // An empty file is an empty configuration: plain HTTP, no auth.
    let file: File = if bytes.iter().all(u8::is_ascii_whitespace) {
        File::default()
    } else {
        serde_yaml_ng::from_slice(&bytes).map_err(|source| WebConfigError::Parse {
            path: path.to_owned(),
            source,
        })?
    };
    let mut notes = Vec::new();
    let tls = if file.tls_server_config.is_enabled() {
        let config = tls::server_config(&file.tls_server_config, path, &mut notes, &mut inputs)?;
        Some(Arc::new(config))
    } else {
        None
    };
    for (user, hash) in &file.basic_auth_users {
        hash.parse::<bcrypt::HashParts>()
            .map_err(|e| invalid(format!("basic_auth_users: {user}: not a bcrypt hash ({e})")))?;
    }
    let headers = headers(&file.http_server_config.headers).map_err(invalid)?;
    let rate_limit = rate_limit(&file.rate_limit).map_err(invalid)?;
    if file.http_server_config.http2 == Some(true) {
        notes.push("http_server_config.http2: served as HTTP/1.1 only".to_owned());
    }
    Ok(Loaded {
        config: WebConfig {
            tls,
            users: file.basic_auth_users,
            headers,
            rate_limit,
            notes,
        },
        inputs,
    })
}

fn headers(given: &BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    given
        .iter()
        .map(|(name, value)| {
            let Some((_, allowed)) = HEADERS.iter().find(|(n, _)| n == name) else {
                return Err(format!(
                    "http_server_config.headers: {name:?} can not be configured"
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(format!(
                    "http_server_config.headers: {name} must be one of {allowed:?}, not {value:?}"
                ));
            }
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| format!("http_server_config.headers: {name}: {e}"))?;
            Ok((header, value))
        })
        .collect()
}

fn rate_limit(given: &RateLimitFile) -> Result<Option<RateLimit>, String> {
    let Some(interval) = &given.interval else {
        return Ok(None);
    };
    let d: jiff::SignedDuration = interval
        .parse()
        .map_err(|e| format!("rate_limit.interval: {interval:?} is not a duration ({e})"))?;
    let interval = Duration::try_from(d)
        .map_err(|_| format!("rate_limit.interval: {interval:?} is negative"))?;
    Ok((!interval.is_zero()).then_some(RateLimit {
        burst: given.burst,
        interval,
    }))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
