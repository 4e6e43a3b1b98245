//! `--web-config-file` over real HTTPS: certificates made here with rcgen,
//! the exporter's real binary, curl as the client (apt-get install curl;
//! scripts/test installs it) and a real Prometheus scraping with TLS and
//! basic auth. Bad files at start stop the exporter with a clear error;
//! written over a good file at run time, they leave it serving.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use policyreport_test_support::metrics::Metrics;

use common::prometheus::{Prometheus, SETTLE};
use common::{Exporter, repo};

/// A certificate authority that signs server and client certificates.
struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            cert,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for these names, signed by this CA: (cert PEM, key PEM).
    fn sign(&self, names: &[&str]) -> (String, String) {
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).expect("write CA");
    }
}

/// Writes a server certificate for 127.0.0.1 and localhost signed by `ca`
/// as tls.crt and tls.key in `dir`, through a rename as kubelet and
/// cert-manager replace files.
fn write_server_cert(dir: &Path, ca: &Ca) {
    let (cert, key) = ca.sign(&["127.0.0.1", "localhost"]);
    for (name, text) in [("tls.crt", cert), ("tls.key", key)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("web-config.yml");
    let tmp = dir.join(".web-config.yml.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    path
}

/// curl's exit code, the HTTP status (0 when no answer) and the body.
fn curl(exporter: &Exporter, path: &str, args: &[&str]) -> (i32, u16, String) {
    let url = format!("https://127.0.0.1:{}{path}", exporter.addr.port());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(&url)
        .output()
        .unwrap_or_else(|e| {
            panic!("run curl ({e}): apt-get install curl (scripts/test installs it)")
        });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        out.status.code().unwrap_or(-1),
        status.trim().parse().unwrap_or(0),
        body.to_owned(),
    )
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

const TLS: &str = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";

fn start(config: &Path) -> Exporter {
    let examples = repo().join("examples");
    Exporter::serve(
        &["--files", arg(&examples), "--web-config-file", arg(config)],
        &[],
    )
}

#[test]
#[ignore = "a real Prometheus, about 10 s: scripts/test runs it"]
fn a_real_prometheus_scrapes_over_tls_with_basic_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = Ca::new("test CA");
    ca.write(&d.join("ca.crt"));
    write_server_cert(d, &ca);
    let hash = bcrypt::hash("scrape-s3cret", 10).expect("bcrypt");
    let config = write_config(
        d,
        &format!(
            "{TLS}http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    );
    let secured = start(&config);
    let plain = Exporter::serve(&["--files", arg(&repo().join("examples"))], &[]);
    plain.wait_ready(Duration::from_secs(20));

    let ca_path = d.join("ca.crt");
    let with_ca = ["--cacert", arg(&ca_path)];
    // The probes answer without credentials, over TLS.
    assert_eq!(curl(&secured, "/readyz", &with_ca).1, 200);
    assert_eq!(curl(&secured, "/healthz", &with_ca).1, 200);
    // No credentials, a wrong password, an unknown user: 401.
    for creds in [None, Some("prometheus:wrong"), Some("admin:scrape-s3cret")] {
        let mut args = with_ca.to_vec();
        if let Some(c) = creds {
            args.extend(["-u", c]);
        }
        let (code, status, _) = curl(&secured, "/metrics", &args);
        assert_eq!((code, status), (0, 401), "{creds:?}");
    }
    // A client without the CA fails the handshake (curl's 60: the
    // certificate cannot be verified).
    let (code, status, _) = curl(&secured, "/metrics", &["-u", "prometheus:scrape-s3cret"]);
    assert_eq!((code, status), (60, 0));
    // Plain HTTP to the TLS port gets no answer.
    assert!(
        !matches!(secured.get_with("/metrics", &[]), Ok((200, _, _))),
        "plain HTTP to the TLS port is not served"
    );
    let (code, status, body) = curl(
        &secured,
        "/metrics",
        &[
            "--cacert",
            arg(&ca_path),
            "-u",
            "prometheus:scrape-s3cret",
            "-i",
        ],
    );
    assert_eq!((code, status), (0, 200));
    let (head, body) = body.split_once("\r\n\r\n").expect("headers, then the body");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "the configured header: {head}"
    );
    assert_eq!(
        Metrics::parse(body).family("policyreport_results"),
        plain.metrics().family("policyreport_results"),
        "the same numbers over TLS as over plain HTTP"
    );

    let prometheus_config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: secured\n    scheme: https\n    honor_labels: true\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password: scrape-s3cret\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n  - job_name: wrong-password\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password: nope\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n  - job_name: plain\n    honor_labels: true\n    static_configs:\n      - targets: ['{plain}']\n",
        ca = ca_path.display(),
        port = secured.addr.port(),
        plain = plain.addr,
    );
    let prometheus =
        Prometheus::start("web-config", &d.join("prometheus"), &prometheus_config, &[]);
    let start = Instant::now();
    let want = loop {
        let up = |job: &str| {
            prometheus
                .query(&format!("up{{job=\"{job}\"}}"))
                .ok()
                .and_then(|s| s.first().map(common::prometheus::value))
        };
        let results = |job: &str| {
            prometheus
                .query(&format!(
                    "sum by (namespace, policy, result) (policyreport_results{{job=\"{job}\"}})"
                ))
                .unwrap_or_default()
        };
        let (secured_up, plain_up, wrong_up) = (up("secured"), up("plain"), up("wrong-password"));
        let (got, want) = (results("secured"), results("plain"));
        let strip = |v: &[serde_json::Value]| {
            let mut v: Vec<_> = v
                .iter()
                .map(|s| (s["metric"].to_string(), common::prometheus::value(s)))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        if secured_up == Some(1.0)
            && plain_up == Some(1.0)
            && wrong_up == Some(0.0)
            && !want.is_empty()
        {
            assert_eq!(
                strip(&got),
                strip(&want),
                "Prometheus reads the same numbers through TLS"
            );
            break want.len();
        }
        assert!(
            start.elapsed() < SETTLE,
            "targets not up: secured {secured_up:?}, plain {plain_up:?}, wrong password {wrong_up:?}\n{}",
            prometheus.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(want > 0);
    let wrong = prometheus
        .get_json("/api/v1/targets?state=active")
        .expect("targets");
    let error = wrong["activeTargets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["labels"]["job"] == "wrong-password")
        .map(|t| t["lastError"].to_string())
        .unwrap_or_default();
    assert!(
        error.contains("401"),
        "the wrong password is refused: {error}"
    );
}

#[test]
fn client_certificates_are_required_and_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let server_ca = Ca::new("server CA");
    server_ca.write(&d.join("ca.crt"));
    write_server_cert(d, &server_ca);
    let client_ca = Ca::new("client CA");
    client_ca.write(&d.join("client-ca.crt"));
    let (cert, key) = client_ca.sign(&["prometheus.monitoring.svc"]);
    std::fs::write(d.join("client.crt"), cert).expect("write");
    std::fs::write(d.join("client.key"), key).expect("write");
    let stranger = Ca::new("another CA");
    let (cert, key) = stranger.sign(&["prometheus.monitoring.svc"]);
    std::fs::write(d.join("stranger.crt"), cert).expect("write");
    std::fs::write(d.join("stranger.key"), key).expect("write");
    let (cert, key) = client_ca.sign(&["somebody.else"]);
    std::fs::write(d.join("other-san.crt"), cert).expect("write");
    std::fs::write(d.join("other-san.key"), key).expect("write");

    let config = write_config(
        d,
        &format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n  client_allowed_sans: [prometheus.monitoring.svc]\n"
        ),
    );
    let exporter = start(&config);
    let ca = d.join("ca.crt");
    let with = |name: &str| {
        let (c, k) = (d.join(format!("{name}.crt")), d.join(format!("{name}.key")));
        curl(
            &exporter,
            "/metrics",
            &["--cacert", arg(&ca), "--cert", arg(&c), "--key", arg(&k)],
        )
    };
    let (code, status, body) = with("client");
    assert_eq!((code, status), (0, 200), "a certificate from the client CA");
    assert!(body.contains("policyreport_results"));
    for refused in ["stranger", "other-san"] {
        let (code, status, _) = with(refused);
        assert_ne!(code, 0, "{refused}: refused in the handshake");
        assert_eq!(status, 0, "{refused}");
    }
    let (code, status, _) = curl(&exporter, "/metrics", &["--cacert", arg(&ca)]);
    assert_ne!(code, 0, "no client certificate: refused");
    assert_eq!(status, 0);
}

#[test]
fn certificates_and_the_file_are_reloaded_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    old_ca.write(&d.join("old-ca.crt"));
    new_ca.write(&d.join("new-ca.crt"));
    write_server_cert(d, &old_ca);
    let config = write_config(d, TLS);
    let exporter = start(&config);
    let old = [
        "--cacert",
        &*d.join("old-ca.crt").to_string_lossy().into_owned(),
    ]
    .map(str::to_owned);
    let new = [
        "--cacert",
        &*d.join("new-ca.crt").to_string_lossy().into_owned(),
    ]
    .map(str::to_owned);
    let get = |args: &[String], extra: &[&str]| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(extra);
        curl(&exporter, "/metrics", &all)
    };
    assert_eq!(get(&old, &[]).1, 200);
    assert_eq!(get(&new, &[]).0, 60, "not yet the new certificate");
    let in_force = |args: &[String], extra: &[&str]| {
        let (_, status, body) = get(args, extra);
        assert_eq!(status, 200);
        Metrics::parse(&body).value(
            "policyreport_exporter_web_config_last_reload_successful",
            &[],
        )
    };
    assert_eq!(in_force(&old, &[]), Some(1.0));

    // The certificate is replaced on disk: within a poll or two, new
    // connections get the new one, from the same process.
    write_server_cert(d, &new_ca);
    let waited = wait_until(Duration::from_secs(10), || get(&new, &[]).1 == 200);
    eprintln!("the new certificate served after {waited:?}");
    assert_eq!(get(&old, &[]).0, 60, "the old certificate is gone");

    // Broken files written over the good one: the good one keeps serving.
    let broken = [
        ("an unknown field", format!("{TLS}  unknown_field: 1\n")),
        (
            "a missing certificate",
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n".to_owned(),
        ),
        (
            "a malformed bcrypt hash",
            format!("{TLS}basic_auth_users:\n  prometheus: $2y$10$short\n"),
        ),
    ];
    for (i, (what, text)) in broken.iter().enumerate() {
        let before = exporter.count_logs("ERROR", "cannot be loaded");
        write_config(d, text);
        wait_until(Duration::from_secs(10), || {
            exporter.count_logs("ERROR", "cannot be loaded") > before
        });
        if i + 1 == broken.len() {
            // Two more polls of the same broken file: still one line.
            std::thread::sleep(2 * policyreport_exporter::web::POLL);
        }
        assert_eq!(
            get(&new, &[]).1,
            200,
            "{what}: the last good configuration serves"
        );
        assert_eq!(in_force(&new, &[]), Some(0.0), "{what}: not in force");
        assert_eq!(
            exporter.count_logs("ERROR", "cannot be loaded"),
            before + 1,
            "{what}: said once, not every poll"
        );
    }
    let last = exporter
        .log_json()
        .into_iter()
        .rev()
        .find(|l| l["level"] == "ERROR")
        .expect("an error line");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("basic_auth_users: prometheus")),
        "{last}"
    );

    // A good file again, now with basic auth: it takes effect.
    let hash = bcrypt::hash("pw", 4).expect("bcrypt");
    write_config(
        d,
        &format!("{TLS}basic_auth_users:\n  prometheus: {hash}\n"),
    );
    wait_until(Duration::from_secs(10), || get(&new, &[]).1 == 401);
    assert_eq!(in_force(&new, &["-u", "prometheus:pw"]), Some(1.0));
}

#[test]
fn an_unusable_file_at_start_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = Ca::new("CA");
    write_server_cert(d, &ca);
    let cases = [
        (
            format!("{TLS}  unknown_field: 1\n"),
            "unknown field `unknown_field`",
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n".to_owned(),
            "missing.crt",
        ),
        (
            "basic_auth_users:\n  prometheus: $2y$10$short\n".to_owned(),
            "basic_auth_users: prometheus: not a bcrypt hash",
        ),
        (
            format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n"),
            "needs client_ca_file",
        ),
    ];
    for (text, want) in cases {
        let config = write_config(d, &text);
        let out = Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"))
            .args(["serve", "--listen", "127.0.0.1:0", "--files"])
            .arg(repo().join("examples"))
            .arg("--web-config-file")
            .arg(&config)
            .output()
            .expect("run the exporter");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}\n{stderr}");
        assert!(
            stderr.contains("--web-config-file") && stderr.contains(want),
            "{text}\n{stderr}"
        );
    }
    // Basic auth and --metrics-auth kubernetes would both need the
    // Authorization header. A kubeconfig that is never dialled: the client
    // is built, then the file is refused.
    let kubeconfig = d.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n\
         current-context: x\n",
    )
    .expect("write");
    let hash = bcrypt::hash("pw", 4).expect("bcrypt");
    let config = write_config(d, &format!("basic_auth_users:\n  prometheus: {hash}\n"));
    let out = Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-auth",
            "kubernetes",
            "--files",
        ])
        .arg(repo().join("examples"))
        .arg("--web-config-file")
        .arg(&config)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("run the exporter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot be combined with --metrics-auth kubernetes"),
        "{stderr}"
    );
    // The variable sets the flag too.
    let config = write_config(d, "basic_auth_users:\n  prometheus: nope\n");
    let out = Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"))
        .args(["serve", "--listen", "127.0.0.1:0", "--files"])
        .arg(repo().join("examples"))
        .env("POLICYREPORT_EXPORTER_WEB_CONFIG_FILE", &config)
        .output()
        .expect("run the exporter");
    assert_eq!(out.status.code(), Some(1));
}

/// Polls `cond` every 100 ms until it holds; returns how long it took.
fn wait_until(timeout: Duration, cond: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}
