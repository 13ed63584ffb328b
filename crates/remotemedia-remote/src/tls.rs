//! TLS for `serve`: a certificate chain and key from PEM files, served with rustls
//! (ring) to every connection — gRPC, HTTP and WebSocket alike (ALPN `h2` and
//! `http/1.1`).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
