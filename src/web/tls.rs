//! `tls_server_config` as a rustls server configuration: the certificate
//! and key, client certificates (the five `client_auth_type`s of Go's
//! `crypto/tls`, a client CA, `client_allowed_sans`), protocol versions,
//! cipher suites, curves and the suite order. rustls speaks TLS 1.2 and 1.3
//! only and implements no CBC, RSA key exchange or P-521 suite; names Go
//! knows that rustls cannot serve are dropped with a note, never silently.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::version::{TLS12, TLS13};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::config::{TlsFile, WebConfigError, read};

/// Go's names of TLS 1.2 suites that rustls does not implement (CBC modes
/// and RSA key exchange), and of the TLS 1.3 suites, which Go does not let a
/// configuration choose either.
const UNSUPPORTED_SUITES: &[&str] = &[
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];
const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Go's curve names and rustls' names of the same groups; P-521 has none.
const CURVES: &[(&str, Option<&str>)] = &[
    ("CurveP256", Some("secp256r1")),
    ("CurveP384", Some("secp384r1")),
    ("CurveP521", None),
    ("X25519", Some("X25519")),
];

/// Build the server configuration `tls` describes; files named in it are
/// read relative to `config`'s folder and recorded in `inputs`.
pub(super) fn server_config(
    tls: &TlsFile,
    config: &Path,
    notes: &mut Vec<String>,
    inputs: &mut Vec<(PathBuf, [u8; 32])>,
) -> Result<ServerConfig, WebConfigError> {
    let invalid = |reason: String| WebConfigError::Invalid {
        path: config.to_owned(),
        reason: format!("tls_server_config: {reason}"),
    };
    let dir = config.parent().unwrap_or(Path::new("."));
    let mut pem =
        |inline: &str, file: &str, what: &str| -> Result<Option<Vec<u8>>, WebConfigError> {
            match (inline.is_empty(), file.is_empty()) {
                (true, true) => Ok(None),
                (_, false) => read(&dir.join(file), inputs).map(Some),
                (false, true) => Ok(Some(inline.as_bytes().to_vec())),
            }
            .map_err(|e| match e {
                WebConfigError::Read { path, source } => WebConfigError::Invalid {
                    path: config.to_owned(),
                    reason: format!(
                        "tls_server_config: {what}: reading {}: {source}",
                        path.display()
                    ),
                },
                other => other,
            })
        };
    let cert = pem(&tls.cert, &tls.cert_file, "cert_file")?
        .ok_or_else(|| invalid("missing one of cert or cert_file".into()))?;
    let key = pem(&tls.key, &tls.key_file, "key_file")?
        .ok_or_else(|| invalid("missing one of key or key_file".into()))?;
    let client_ca = pem(&tls.client_ca, &tls.client_ca_file, "client_ca_file")?;

    let provider = Arc::new(provider(tls, notes).map_err(invalid)?);
    let versions = versions(tls, notes).map_err(invalid)?;
    let verifier = client_verifier(tls, client_ca.as_deref(), &provider).map_err(invalid)?;
    let chain = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid("the certificate holds no PEM CERTIFICATE".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| invalid(format!("key: {e}")))?;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| invalid(e.to_string()))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|e| invalid(format!("certificate and key: {e}")))?;
    server.ignore_client_order = tls.prefer_server_cipher_suites.unwrap_or(true);
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}

/// The ring provider with the suites and curves asked for, in their order.
fn provider(tls: &TlsFile, notes: &mut Vec<String>) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !tls.cipher_suites.is_empty() {
        let all = std::mem::take(&mut provider.cipher_suites);
        // TLS 1.3 suites stay: Go does not let them be chosen either.
        provider.cipher_suites = all
            .iter()
            .filter(|s| s.tls13().is_some())
            .copied()
            .collect();
        for name in &tls.cipher_suites {
            if let Some(s) = all.iter().find(|s| format!("{:?}", s.suite()) == *name) {
                if s.tls13().is_none() {
                    provider.cipher_suites.push(*s);
                }
            } else if UNSUPPORTED_SUITES.contains(&name.as_str()) {
                notes.push(format!(
                    "cipher_suites: {name} is not implemented by rustls; left out"
                ));
            } else if !TLS13_SUITES.contains(&name.as_str()) {
                return Err(format!("unknown cipher: {name}"));
            }
        }
        if provider.cipher_suites.iter().all(|s| s.tls13().is_some()) {
            notes.push("cipher_suites: no TLS 1.2 suite left; only TLS 1.3 clients connect".into());
        }
    }
    if !tls.curve_preferences.is_empty() {
        let all = std::mem::take(&mut provider.kx_groups);
        for name in &tls.curve_preferences {
            let Some((_, rustls_name)) = CURVES.iter().find(|(go, _)| go == name) else {
                return Err(format!("unknown curve: {name}"));
            };
            let group =
                rustls_name.and_then(|r| all.iter().find(|g| format!("{:?}", g.name()) == r));
            match group {
                Some(g) => provider.kx_groups.push(*g),
                None => notes.push(format!(
                    "curve_preferences: {name} is not implemented by rustls; left out"
                )),
            }
        }
        if provider.kx_groups.is_empty() {
            return Err("curve_preferences: none of them is implemented by rustls".into());
        }
    }
    Ok(provider)
}

/// The protocol versions from `min_version` to `max_version` (Go's
/// defaults: TLS12 to TLS13). TLS 1.0 and 1.1 are not implemented: a minimum
/// below 1.2 serves 1.2 and up, with a note.
fn versions(
    tls: &TlsFile,
    notes: &mut Vec<String>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let parse = |field: &str, v: &Option<String>, default: u8| match v.as_deref() {
        None => Ok(default),
        Some("TLS10") => Ok(10),
        Some("TLS11") => Ok(11),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(format!("{field}: unknown TLS version: {other}")),
    };
    let min = parse("min_version", &tls.min_version, 12)?;
    let max = parse("max_version", &tls.max_version, 13)?;
    if max < 12 {
        return Err("max_version: rustls implements TLS 1.2 and 1.3 only".into());
    }
    if min > max {
        return Err("min_version is above max_version".into());
    }
    if min < 12 {
        notes.push(
            "min_version: TLS 1.0 and 1.1 are not implemented by rustls; TLS 1.2 is the minimum"
                .into(),
        );
    }
    let mut out = Vec::new();
    if min <= 12 {
        out.push(&TLS12);
    }
    if max >= 13 {
        out.push(&TLS13);
    }
    Ok(out)
}

/// The client certificate verifier `client_auth_type` asks for, wrapped in
/// the SAN check when `client_allowed_sans` is set.
fn client_verifier(
    tls: &TlsFile,
    client_ca: Option<&[u8]>,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let roots = || -> Result<Arc<RootCertStore>, String> {
        let Some(pem) = client_ca else {
            return Err(format!(
                "client_auth_type {} needs client_ca_file or client_ca",
                tls.client_auth_type
            ));
        };
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("client CA: {e}"))?;
            store.add(cert).map_err(|e| format!("client CA: {e}"))?;
        }
        if store.is_empty() {
            return Err("the client CA holds no PEM CERTIFICATE".into());
        }
        Ok(Arc::new(store))
    };
    let webpki = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let builder = WebPkiClientVerifier::builder_with_provider(roots()?, provider.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder.build().map_err(|e| e.to_string())
    };
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ClientCertVerifier> = match tls.client_auth_type.as_str() {
        "" | "NoClientCert" => {
            if client_ca.is_some() {
                return Err("client CA's have been configured without a Client Auth Policy".into());
            }
            return Ok(None);
        }
        "RequestClientCert" => Arc::new(AnyCert {
            mandatory: false,
            algorithms,
        }),
        "RequireAnyClientCert" | "RequireClientCert" => Arc::new(AnyCert {
            mandatory: true,
            algorithms,
        }),
        "VerifyClientCertIfGiven" => webpki(true)?,
        "RequireAndVerifyClientCert" => webpki(false)?,
        other => return Err(format!("invalid client_auth_type: {other}")),
    };
    let Some(sans) = &tls.client_allowed_sans else {
        return Ok(Some(verifier));
    };
    let allowed = sans
        .iter()
        .map(|s| {
            ServerName::try_from(s.as_str())
                .map(|n| n.to_owned())
                .map_err(|_| {
                    format!(
                        "client_allowed_sans: {s:?}: only DNS names and IP addresses can be checked"
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Arc::new(SanCheck {
        inner: verifier,
        allowed,
    })))
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: a certificate is
/// asked for (and with `mandatory` required) but not checked against a CA;
/// the handshake still proves the client holds its key.
#[derive(Debug)]
struct AnyCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: the client certificate, once the inner verifier
/// accepts it, must name one of these DNS names or IP addresses.
#[derive(Debug)]
struct SanCheck {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for SanCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(format!("parsing the client certificate: {e}")))?;
        if self
            .allowed
            .iter()
            .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::General(
                "the client certificate names none of client_allowed_sans".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
