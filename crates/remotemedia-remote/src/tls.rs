//! TLS with rustls (ring).
//!
//! - For `serve`: a certificate chain and key from PEM files, served to every
//!   connection — gRPC, HTTP and WebSocket alike (ALPN `h2` and `http/1.1`).
//! - For the executor client ([`ClientTls`]): executors written `https://HOST:PORT`
//!   are reached over TLS, their certificate checked against a CA file
//!   ([`CaFile`]: `--executor-ca`, `ca` in `remotemedia.toml`,
//!   `REMOTEMEDIA_EXECUTOR_CA`) or, without one, the system's trust store, and against
//!   the host of the address (an IP address works when the certificate has it as an
//!   IP SAN).

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor};
use tonic::transport::ClientTlsConfig;

use crate::error::RemoteError;

/// The server side of TLS from `cert` (PEM, the chain leaf first) and `key` (PEM,
/// PKCS#8, PKCS#1 or SEC1). Errors name the file and what is wrong with it.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, RemoteError> {
    let bad = |file: &Path, what: String| {
        RemoteError::Config(format!(
            "--tls-{}: {}: {what}",
            if file == cert { "cert" } else { "key" },
            file.display()
        ))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(cert, "no PEM certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, format!("no usable PEM private key ({e})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RemoteError::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            RemoteError::Config(format!(
                "--tls-cert/--tls-key do not make a usable pair: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CA certificates of a PEM file, trusted for executors' certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaFile {
    /// The file they were read from.
    pub path: PathBuf,
    anchors: Arc<[TrustAnchor<'static>]>,
}

impl CaFile {
    /// Reads one or more PEM certificates from `path`. `origin` says where the file was
    /// given (`--executor-ca`, `executor `gpu-1`: ca`), for errors, which name it,
    /// the file and what is wrong with it.
    pub fn load(path: &Path, origin: &str) -> Result<Self, RemoteError> {
        let bad =
            |what: String| RemoteError::Config(format!("{origin}: {}: {what}", path.display()));
        // Opened first, so that a missing file reads as one rather than as bad PEM.
        std::fs::File::open(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read it: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(bad(
                "no PEM certificate in it (expected `-----BEGIN CERTIFICATE-----`)".into(),
            ));
        }
        let mut store = RootCertStore::empty();
        for (i, cert) in certs.into_iter().enumerate() {
            store.add(cert).map_err(|e| {
                bad(format!(
                    "certificate {} in it is not a usable CA certificate: {e}",
                    i + 1
                ))
            })?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            anchors: store.roots.into(),
        })
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether it holds none (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// How a client reaches an executor over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    /// The name the executor's certificate must be valid for: the host of its address
    /// (a DNS name or an IP address), or for an executor found through DNS the name it
    /// was found under.
    pub server_name: String,
    /// The CA certificates trusted; `None` trusts the system's trust store.
    pub ca: Option<CaFile>,
}

/// The system's trust store, read once per process.
fn system_anchors() -> Result<Arc<[TrustAnchor<'static>]>, String> {
    static ROOTS: OnceLock<Result<Arc<[TrustAnchor<'static>]>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why = found
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(format!(
                    "the system's trust store has no certificates{}; give the executor's CA \
                     with --executor-ca, `ca` in remotemedia.toml or REMOTEMEDIA_EXECUTOR_CA",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    }
                ));
            }
            Ok(store.roots.into())
        })
        .clone()
}

impl ClientTls {
    /// What is trusted, in words: `the CA file ca.pem` or `the system's trust store`.
    pub fn trust(&self) -> String {
        match &self.ca {
            Some(ca) => format!("the CA file {}", ca.path.display()),
            None => "the system's trust store".into(),
        }
    }

    /// tonic's client configuration: these roots, this server name, ALPN `h2`, the
    /// handshake bounded by `timeout`.
    pub(crate) fn config(&self, timeout: Duration) -> Result<ClientTlsConfig, String> {
        ServerName::try_from(self.server_name.as_str()).map_err(|_| {
            format!(
                "`{}` is neither a DNS name nor an IP address to check the certificate against",
                self.server_name
            )
        })?;
        let anchors = match &self.ca {
            Some(ca) => Arc::clone(&ca.anchors),
            None => system_anchors()?,
        };
        Ok(ClientTlsConfig::new()
            .trust_anchors(anchors.iter().cloned())
            .domain_name(self.server_name.clone())
            .timeout(timeout))
    }

    /// Why a connection failed, when the cause was the TLS handshake: what the
    /// executor's certificate lacked, or that it did not speak TLS at all.
    pub(crate) fn handshake_failure(&self, e: &(dyn StdError + 'static)) -> Option<String> {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(r) = err.downcast_ref::<rustls::Error>() {
                return Some(self.describe(r));
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                // An I/O error hides the error it wraps from `source`.
                if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return Some(self.describe(r));
                }
                if io.kind() == std::io::ErrorKind::UnexpectedEof
                    && io.to_string().contains("tls handshake")
                {
                    return Some(
                        "the executor closed the connection during the TLS handshake; is it \
                         serving plaintext? (then write its address without https://)"
                            .into(),
                    );
                }
            }
            match err.to_string().as_str() {
                "HTTP/2 was not negotiated." => {
                    return Some("the executor did not offer HTTP/2 (ALPN h2) over TLS".into())
                }
                "TLS handshake timeout." => {
                    return Some("the executor did not complete the TLS handshake in time".into())
                }
                _ => {}
            }
            cur = err.source();
        }
        None
    }

    fn describe(&self, e: &rustls::Error) -> String {
        let name = &self.server_name;
        let what = match e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => match &self.ca {
                    Some(_) => format!("its certificate is not signed by a CA in {}", self.trust()),
                    None => format!(
                        "its certificate is not signed by a CA in {} (give its CA with \
                         --executor-ca, `ca` in remotemedia.toml or REMOTEMEDIA_EXECUTOR_CA)",
                        self.trust()
                    ),
                },
                CertificateError::NotValidForName => {
                    format!("its certificate is not valid for `{name}`")
                }
                CertificateError::NotValidForNameContext { presented, .. } => format!(
                    "its certificate is not valid for `{name}` (it is for {})",
                    if presented.is_empty() {
                        "no name".to_string()
                    } else {
                        presented
                            .iter()
                            .map(|p| presented_name(p))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "its certificate has expired".into()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "its certificate is not valid yet".into()
                }
                other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                    "it presents a CA certificate as its own; serve a certificate signed by \
                     that CA instead"
                        .into()
                }
                other => format!("its certificate was refused ({other:?})"),
            },
            rustls::Error::InvalidMessage(_) => "it did not answer in TLS; is it serving \
                 plaintext? (then write its address without https://)"
                .into(),
            rustls::Error::AlertReceived(alert) => {
                format!("it ended the handshake with the TLS alert {alert:?}")
            }
            other => other.to_string(),
        };
        format!("TLS handshake failed: {what}")
    }
}

/// A name of a certificate as rustls reports it (`DnsName("a.example")`,
/// `IpAddress(10.0.0.5)`), as written.
fn presented_name(p: &str) -> &str {
    ["DnsName(\"", "IpAddress("]
        .iter()
        .find_map(|prefix| p.strip_prefix(prefix))
        .map(|rest| rest.trim_end_matches(')').trim_end_matches('"'))
        .unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_are_checked_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = CaFile::load(&missing, "--executor-ca")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--executor-ca: ") && e.contains("missing.pem: cannot read it"),
            "{e}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let e = CaFile::load(&garbage, "--executor-ca")
            .unwrap_err()
            .to_string();
        assert!(e.contains("garbage.pem: no PEM certificate in it"), "{e}");

        // PEM framing around bytes that are no certificate.
        let fake = dir.path().join("fake.pem");
        std::fs::write(
            &fake,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = CaFile::load(&fake, "executor `g`: ca")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("executor `g`: ca: ")
                && e.contains("certificate 1 in it is not a usable CA certificate"),
            "{e}"
        );
    }

    #[test]
    fn server_names_must_be_names_or_addresses() {
        let tls = ClientTls {
            server_name: "not a name".into(),
            ca: None,
        };
        let e = tls.config(Duration::from_secs(1)).unwrap_err();
        assert!(
            e.contains("`not a name` is neither a DNS name nor an IP address"),
            "{e}"
        );
        assert_eq!(tls.trust(), "the system's trust store");
    }
}
