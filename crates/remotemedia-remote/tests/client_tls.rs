//! The executor client over TLS against the service in-process on loopback, serving
//! a certificate signed by a CA the test makes: what it trusts, and how each failed
//! handshake reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use remotemedia_core::capabilities::CapabilitySet;
use remotemedia_core::Registry;
use remotemedia_remote::client::{Endpoint, ExecutorClient};
use remotemedia_remote::server::{start, RunningServer, ServeConfig};
use remotemedia_remote::tls::{self, CaFile, ClientTls};
use remotemedia_remote::RemoteError;
use tokio::runtime::Runtime;

const TIMEOUT: Duration = Duration::from_secs(5);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A CA certificate and its key, named `name`.
fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Files in `dir`: `ca.pem` (the executor's CA), `other-ca.pem` (a CA that signed
/// nothing here), and `cert.pem` / `key.pem` for `127.0.0.1`, signed by `ca.pem`.
fn pki(dir: &Path) -> PathBuf {
    let ca = make_ca("executors CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), make_ca("another CA").pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    dir.to_path_buf()
}

fn serve(rt: &Runtime, tls_dir: Option<&Path>, token: Option<&str>) -> RunningServer {
    let caps = CapabilitySet {
        cpu_cores: 2,
        arch: "x86_64".into(),
        memory_total_gb: 4.0,
        memory_available_gb: None,
        gpus: Vec::new(),
    };
    let mut config = ServeConfig::new(caps, Registry::builtin(), 0);
    config.tls =
        tls_dir.map(|d| tls::server_config(&d.join("cert.pem"), &d.join("key.pem")).unwrap());
    config.token = token.map(String::from);
    rt.block_on(start(config)).unwrap()
}

fn endpoint(server: &RunningServer, server_name: &str, ca: Option<&Path>) -> Endpoint {
    Endpoint {
        tls: Some(ClientTls {
            server_name: server_name.into(),
            ca: ca.map(|f| CaFile::load(f, "test CA").unwrap()),
        }),
        ..Endpoint::plain("exec", server.local_addr.to_string(), None)
    }
}

/// Why connecting (or its first call) failed.
fn failure(rt: &Runtime, e: &Endpoint) -> String {
    let r = rt.block_on(async {
        let mut c = ExecutorClient::connect(e, TIMEOUT).await?;
        c.capabilities().await
    });
    match r {
        Err(RemoteError::Connect {
            executor,
            address,
            message,
        }) => {
            assert_eq!(executor, "exec");
            assert_eq!(address, e.url());
            message
        }
        other => panic!("expected a connection failure, got {other:?}"),
    }
}

#[test]
fn connects_over_tls_to_an_executor_whose_certificate_chains_to_the_ca() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = serve(&rt, Some(&pki), Some("s3cret"));
    let e = Endpoint {
        token: Some("s3cret".into()),
        ..endpoint(&server, "127.0.0.1", Some(&pki.join("ca.pem")))
    };
    assert_eq!(e.url(), format!("https://{}", server.local_addr));
    let caps = rt.block_on(async {
        let mut c = ExecutorClient::connect(&e, TIMEOUT).await.unwrap();
        c.capabilities().await.unwrap()
    });
    assert!(caps.node_types.iter().any(|t| t == "Calculator"));
    // The token travels inside TLS and is checked as ever.
    let wrong = Endpoint {
        token: Some("guess".into()),
        ..e.clone()
    };
    let refused = rt.block_on(async {
        let mut c = ExecutorClient::connect(&wrong, TIMEOUT).await.unwrap();
        c.capabilities().await.unwrap_err()
    });
    assert!(
        refused
            .to_string()
            .contains("missing or wrong bearer token"),
        "{refused}"
    );
}

#[test]
fn failed_handshakes_say_what_failed() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = serve(&rt, Some(&pki), None);

    let other = pki.join("other-ca.pem");
    assert_eq!(
        failure(&rt, &endpoint(&server, "127.0.0.1", Some(&other))),
        format!(
            "TLS handshake failed: its certificate is not signed by a CA in the CA file {}",
            other.display()
        )
    );
    assert_eq!(
        failure(
            &rt,
            &endpoint(&server, "localhost", Some(&pki.join("ca.pem")))
        ),
        "TLS handshake failed: its certificate is not valid for `localhost` (it is for 127.0.0.1)"
    );

    // A plaintext executor behind an https:// address.
    let plain = serve(&rt, None, None);
    let message = failure(
        &rt,
        &endpoint(&plain, "127.0.0.1", Some(&pki.join("ca.pem"))),
    );
    assert!(
        message.starts_with("TLS handshake failed: ")
            && message
                .contains("is it serving plaintext? (then write its address without https://)"),
        "{message}"
    );
}

#[test]
fn a_ca_file_holds_one_or_more_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let both = pki.join("both.pem");
    let text = std::fs::read_to_string(pki.join("ca.pem")).unwrap()
        + &std::fs::read_to_string(pki.join("other-ca.pem")).unwrap();
    std::fs::write(&both, text).unwrap();
    let ca = CaFile::load(&both, "--executor-ca").unwrap();
    assert_eq!((ca.len(), ca.path.as_path()), (2, both.as_path()));
    // A private key is no certificate.
    let e = CaFile::load(&pki.join("key.pem"), "--executor-ca")
        .unwrap_err()
        .to_string();
    assert!(e.contains("key.pem: no PEM certificate in it"), "{e}");
}
