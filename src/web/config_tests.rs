use std::path::Path;

use super::*;

/// A folder with a self-signed server certificate and key, and a CA.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).expect("write");
    std::fs::write(dir.path().join("ca.crt"), cert.pem()).expect("write");
    dir
}

fn load_text(dir: &Path, text: &str) -> Result<Loaded, WebConfigError> {
    let path = dir.join("web.yml");
    std::fs::write(&path, text).expect("write");
    load(&path)
}

fn error(dir: &Path, text: &str) -> String {
    match load_text(dir, text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const TLS: &str = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";

#[test]
fn an_empty_file_serves_plain_http_without_auth() {
    let dir = folder();
    for text in ["", "\n", "tls_server_config: {}\n"] {
        let loaded = load_text(dir.path(), text).expect("loads");
        assert!(loaded.config.tls.is_none());
        assert!(loaded.config.users.is_empty());
        assert_eq!(loaded.inputs.len(), 1, "the file itself");
    }
}

#[test]
fn tls_paths_resolve_against_the_files_folder_and_are_watched() {
    let dir = folder();
    let loaded = load_text(dir.path(), TLS).expect("loads");
    assert!(loaded.config.tls.is_some());
    let files: Vec<_> = loaded
        .inputs
        .iter()
        .map(|(p, _)| p.file_name().expect("name").to_owned())
        .collect();
    assert_eq!(files, ["web.yml", "tls.crt", "tls.key"]);
    assert!(loaded.config.notes.is_empty(), "{:?}", loaded.config.notes);
}

/// Files exporter-toolkit refuses, with what the error must say; `{TLS}`
/// stands for a valid `tls_server_config` to add to.
const REFUSALS: &[(&str, &str)] = &[
    ("{TLS}  unknown: 1\n", "unknown field `unknown`"),
    (
        "basic_auth_user:\n  a: b\n",
        "unknown field `basic_auth_user`",
    ),
    (
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n",
        "missing.crt",
    ),
    (
        "tls_server_config:\n  key_file: tls.key\n",
        "missing one of cert or cert_file",
    ),
    (
        "tls_server_config:\n  cert_file: tls.crt\n",
        "missing one of key or key_file",
    ),
    (
        "tls_server_config:\n  cert_file: tls.key\n  key_file: tls.key\n",
        "no PEM CERTIFICATE",
    ),
    (
        "basic_auth_users:\n  prometheus: not-a-hash\n",
        "basic_auth_users: prometheus: not a bcrypt hash",
    ),
    (
        "http_server_config:\n  headers:\n    Server: x\n",
        "\"Server\" can not be configured",
    ),
    (
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        "X-Frame-Options must be one of",
    ),
    (
        "{TLS}  client_ca_file: ca.crt\n",
        "without a Client Auth Policy",
    ),
    (
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n",
        "needs client_ca_file",
    ),
    (
        "{TLS}  client_auth_type: Sometimes\n",
        "invalid client_auth_type: Sometimes",
    ),
    (
        "{TLS}  cipher_suites: [TLS_INVENTED]\n",
        "unknown cipher: TLS_INVENTED",
    ),
    (
        "{TLS}  curve_preferences: [CurveP999]\n",
        "unknown curve: CurveP999",
    ),
    ("{TLS}  min_version: TLS14\n", "unknown TLS version: TLS14"),
    ("{TLS}  max_version: TLS11\n", "TLS 1.2 and 1.3 only"),
    (
        "{TLS}  min_version: TLS13\n  max_version: TLS12\n",
        "min_version is above max_version",
    ),
    (
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [\"spiffe://x/y\"]\n",
        "only DNS names and IP addresses",
    ),
    (
        "rate_limit:\n  burst: 1\n  interval: soon\n",
        "rate_limit.interval",
    ),
];

#[test]
fn refuses_what_exporter_toolkit_refuses() {
    let dir = folder();
    let d = dir.path();
    for (text, want) in REFUSALS {
        let text = text.replace("{TLS}", TLS);
        let got = error(d, &text);
        assert!(got.contains(want), "{text}\ngave: {got}\nwanted: {want}");
        assert!(got.contains("web.yml"), "names the file: {got}");
    }
}

#[test]
fn notes_what_rustls_cannot_honour_and_keeps_the_rest() {
    let dir = folder();
    let text = format!(
        "{TLS}  min_version: TLS10\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [CurveP521, X25519]\n  prefer_server_cipher_suites: false\nhttp_server_config:\n  http2: true\n"
    );
    let loaded = load_text(dir.path(), &text).expect("loads");
    let notes = loaded.config.notes.join("\n");
    for want in [
        "TLS 1.0 and 1.1",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA is not implemented",
        "CurveP521 is not implemented",
        "HTTP/1.1",
    ] {
        assert!(notes.contains(want), "{notes}");
    }
    let tls = loaded.config.tls.expect("tls");
    assert!(!tls.ignore_client_order);
    let suites: Vec<String> = tls
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    assert_eq!(
        suites,
        [
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        ]
    );
    let groups: Vec<String> = tls
        .crypto_provider()
        .kx_groups
        .iter()
        .map(|g| format!("{:?}", g.name()))
        .collect();
    assert_eq!(groups, ["X25519"]);
}

#[test]
fn reads_users_headers_and_the_rate_limit() {
    let dir = folder();
    let hash = bcrypt::hash("pw", 4).expect("hash");
    let text = format!(
        "basic_auth_users:\n  prometheus: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nrate_limit:\n  burst: 5\n  interval: 500ms\n"
    );
    let c = load_text(dir.path(), &text).expect("loads").config;
    assert!(c.tls.is_none(), "basic auth without TLS is allowed");
    assert_eq!(c.users.get("prometheus"), Some(&hash));
    let headers: Vec<_> = c
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", v.to_str().expect("ascii")))
        .collect();
    assert_eq!(
        headers,
        [
            "strict-transport-security: max-age=31536000",
            "x-frame-options: deny"
        ]
    );
    assert_eq!(
        c.rate_limit,
        Some(RateLimit {
            burst: 5,
            interval: Duration::from_millis(500)
        })
    );
}

#[test]
fn accepts_every_client_auth_type_exporter_toolkit_knows() {
    let dir = folder();
    for auth in [
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "RequireClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] {
        let ca = if auth == "NoClientCert" {
            ""
        } else {
            "  client_ca_file: ca.crt\n"
        };
        let text = format!(
            "{TLS}  client_auth_type: {auth}\n{ca}  client_allowed_sans: [localhost, 127.0.0.1]\n"
        );
        load_text(dir.path(), &text).unwrap_or_else(|e| panic!("{auth}: {e}"));
    }
    let inline = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent(&std::fs::read_to_string(dir.path().join("tls.crt")).expect("read")),
        indent(&std::fs::read_to_string(dir.path().join("tls.key")).expect("read"))
    );
    let loaded = load_text(dir.path(), &inline).expect("inline cert and key");
    assert!(loaded.config.tls.is_some());
    assert_eq!(loaded.inputs.len(), 1, "nothing else to watch");
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}
