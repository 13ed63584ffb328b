//! Runs through executors over TLS: `remotemedia serve --tls-cert/--tls-key` started by
//! the tests on loopback with a certificate for 127.0.0.1 signed by a CA the tests
//! make, reached as `https://HOST:PORT` with the CA from `--executor-ca`,
//! `REMOTEMEDIA_EXECUTOR_CA` or `ca` in remotemedia.toml; what happens with the wrong
//! CA, a plaintext executor behind an https:// address, and bad CA files. Unix only,
//! like the other tests that start executors.
#![cfg(unix)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::Value;

#[path = "support/dns.rs"]
mod dns;
mod support;

use dns::{DnsServer, SRV_NAME};
use support::{repo, write, Executor, BIN};

fn gpu_caps() -> PathBuf {
    repo("examples/remote/gpu-capabilities.json")
}

fn gpu_pipeline() -> PathBuf {
    repo("examples/remote/gpu-pipeline.yaml")
}

/// A CA certificate and its key, named `name`.
fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// The files of a test's TLS set-up, in its directory.
struct Pki {
    /// The CA that signed the executors' certificate.
    ca: PathBuf,
    /// A CA that signed nothing here.
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// A CA and, signed by it, a certificate for 127.0.0.1 and for the names the DNS
    /// tests publish (the `dns://` name and every SRV target).
    fn new(dir: &Path) -> Pki {
        let ca = make_ca("remotemedia test executors CA");
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "remotemedia-executor".to_string(),
            "*.remotemedia-executor.test.svc.cluster.local".to_string(),
        ])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
        Pki {
            ca: write(dir, "ca.pem", &ca.pem()),
            other_ca: write(dir, "other-ca.pem", &make_ca("another CA").pem()),
            cert: write(dir, "cert.pem", &cert.pem()),
            key: write(dir, "key.pem", &key.serialize_pem()),
        }
    }

    /// `serve --tls-cert … --tls-key …` with the GPU capabilities and `extra` flags.
    fn executor(&self, dir: &Path, name: &str, extra: &[&str]) -> Executor {
        let mut args = vec![
            "--tls-cert",
            self.cert.to_str().unwrap(),
            "--tls-key",
            self.key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Executor::start(dir, name, &gpu_caps(), &args)
    }
}

/// `--executor NAME=https://ADDR`.
fn https(e: &Executor) -> String {
    format!("{}=https://{}", e.name, e.addr)
}

/// A `remotemedia` command in `dir`: this machine a CPU box, no executors or CA from
/// the environment.
fn rm(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env(
            "REMOTEMEDIA_CAPABILITIES",
            repo("examples/remote/cpu-capabilities.json"),
        )
        .env_remove("REMOTEMEDIA_EXECUTORS")
        .env_remove("REMOTEMEDIA_EXECUTOR_CA")
        .env_remove("REMOTEMEDIA_DNS_SERVER")
        .env_remove("REMOTEMEDIA_LOG");
    c
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn output(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    Output {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

/// `remotemedia run` of the GPU pipeline over `input`, with `args`.
fn run(dir: &Path, input: &Path, args: &[&str]) -> Output {
    output(
        rm(dir)
            .arg("run")
            .arg(gpu_pipeline())
            .arg("--input")
            .arg(input)
            .args(args),
    )
}

/// `1..=n` as JSON Lines.
fn numbers(dir: &Path, n: u64) -> PathBuf {
    let text: String = (1..=n).map(|i| format!("{i}\n")).collect();
    write(dir, &format!("numbers-{n}.jsonl"), &text)
}

/// The GPU pipeline run entirely on this machine, which for this run has the GPU.
fn local_run(dir: &Path, input: &Path) -> String {
    let o = output(
        rm(dir)
            .env("REMOTEMEDIA_CAPABILITIES", gpu_caps())
            .arg("run")
            .arg(gpu_pipeline())
            .arg("--input")
            .arg(input),
    );
    assert_eq!(o.code, 0, "local run failed: {}", o.stderr);
    o.stdout
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_run_through_an_https_executor_with_its_ca_equals_the_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let token = write(dir.path(), "g.token", "s3cret-token\n");
    let g = pki.executor(dir.path(), "g", &["--token-file", token.to_str().unwrap()]);
    let input = numbers(dir.path(), 500);
    let expected = local_run(dir.path(), &input);
    let ca = pki.ca.to_str().unwrap();

    let metrics = dir.path().join("metrics.json");
    let o = run(
        dir.path(),
        &input,
        &[
            "--executor",
            &https(&g),
            "--executor-ca",
            ca,
            "--token-file",
            token.to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout == expected, "outputs differ from the local run");
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(m["remote"]["remote_metrics"][0]["executor"], "g");

    // The executor still wants its token, over TLS as in clear.
    let o = run(
        dir.path(),
        &input,
        &["--executor", &https(&g), "--executor-ca", ca],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("g: unreachable: Unauthenticated: missing or wrong bearer token"),
        "{}",
        o.stderr
    );

    // `plan` shows the executor with its scheme.
    let o = output(
        rm(dir.path())
            .arg("plan")
            .arg(gpu_pipeline())
            .args(["--executor", &https(&g), "--executor-ca", ca])
            .args(["--token-file", token.to_str().unwrap()]),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(&format!("  g (https://{}): ", g.addr)),
        "{}",
        o.stdout
    );

    // `capabilities --executor` speaks TLS too.
    let o = output(
        rm(dir.path())
            .arg("capabilities")
            .args(["--executor", &format!("https://{}", g.addr)])
            .args(["--executor-ca", ca, "--token-file", token.to_str().unwrap()])
            .arg("--json"),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let caps: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(caps["capabilities"]["gpus"][0]["kind"], "cuda");
}

#[test]
fn the_ca_also_comes_from_the_environment_and_remotemedia_toml() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let g = pki.executor(dir.path(), "g", &[]);
    let input = numbers(dir.path(), 50);
    let expected = local_run(dir.path(), &input);

    let o = output(
        rm(dir.path())
            .env("REMOTEMEDIA_EXECUTOR_CA", &pki.ca)
            .arg("run")
            .arg(gpu_pipeline())
            .arg("--input")
            .arg(&input)
            .args(["--executor", &https(&g)]),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, expected);

    // `ca` in remotemedia.toml, relative to the file's folder (not the working one).
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::copy(&pki.ca, conf.join("executors-ca.pem")).unwrap();
    let toml = write(
        &conf,
        "remotemedia.toml",
        &format!(
            "[[executors]]\nname = \"g\"\naddress = \"https://{}\"\nca = \"executors-ca.pem\"\n",
            g.addr
        ),
    );
    let o = run(dir.path(), &input, &["--config", toml.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, expected);

    // Its own `ca` wins over --executor-ca.
    let o = run(
        dir.path(),
        &input,
        &[
            "--config",
            toml.to_str().unwrap(),
            "--executor-ca",
            pki.other_ca.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, expected);
}

#[test]
fn a_certificate_of_another_ca_fails_like_an_unreachable_executor() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let g = pki.executor(dir.path(), "g", &[]);
    let input = numbers(dir.path(), 5);

    let unreachable = run(
        dir.path(),
        &input,
        &["--executor", &format!("g=127.0.0.1:{}", dead_port())],
    );
    let o = run(
        dir.path(),
        &input,
        &[
            "--executor",
            &https(&g),
            "--executor-ca",
            pki.other_ca.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, unreachable.code, "{}", o.stderr);
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout, "");
    let expected = format!(
        "g: unreachable: TLS handshake failed: its certificate is not signed by a CA in the \
         CA file {}",
        pki.other_ca.display()
    );
    assert!(o.stderr.contains(&expected), "{}", o.stderr);

    // Without any CA, the system's trust store does not know the test's CA either (or
    // the machine has no trust store at all).
    let o = run(dir.path(), &input, &["--executor", &https(&g)]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("g: unreachable: TLS") && o.stderr.contains("the system's trust store"),
        "{}",
        o.stderr
    );
}

#[test]
fn an_https_address_of_a_plaintext_executor_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let plain = Executor::start(dir.path(), "plain", &gpu_caps(), &[]);
    let input = numbers(dir.path(), 5);
    let o = run(
        dir.path(),
        &input,
        &[
            "--executor",
            &https(&plain),
            "--executor-ca",
            pki.ca.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(o.stdout, "");
    assert!(
        o.stderr
            .contains("plain: unreachable: TLS handshake failed: ")
            && o.stderr
                .contains("is it serving plaintext? (then write its address without https://)"),
        "{}",
        o.stderr
    );
}

#[test]
fn bad_ca_files_are_refused_naming_where_they_were_given() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), 5);
    let garbage = write(dir.path(), "garbage.pem", "this is no certificate\n");
    let missing = dir.path().join("missing.pem");
    let flag = |file: &Path| {
        run(
            dir.path(),
            &input,
            &[
                "--executor",
                "g=https://127.0.0.1:1",
                "--executor-ca",
                file.to_str().unwrap(),
            ],
        )
    };

    let o = flag(&garbage);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!(
            "error: --executor-ca: {}: no PEM certificate in it",
            garbage.display()
        )),
        "{}",
        o.stderr
    );
    let o = flag(&missing);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!(
            "error: --executor-ca: {}: cannot read it",
            missing.display()
        )),
        "{}",
        o.stderr
    );

    let o = output(
        rm(dir.path())
            .env("REMOTEMEDIA_EXECUTOR_CA", &garbage)
            .arg("plan")
            .arg(gpu_pipeline())
            .args(["--executor", "g=https://127.0.0.1:1"]),
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("error: REMOTEMEDIA_EXECUTOR_CA: ") && o.stderr.contains("garbage.pem"),
        "{}",
        o.stderr
    );

    // In remotemedia.toml: the key and the file.
    write(
        dir.path(),
        "remotemedia.toml",
        "[[executors]]\nname = \"g\"\naddress = \"https://127.0.0.1:1\"\nca = \"garbage.pem\"\n",
    );
    let o = run(dir.path(), &input, &[]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("error: executor `g`: ca: garbage.pem: no PEM certificate in it"),
        "{}",
        o.stderr
    );
    // A CA for a plaintext address is a mistake, not something to ignore.
    write(
        dir.path(),
        "remotemedia.toml",
        "[[executors]]\nname = \"g\"\naddress = \"127.0.0.1:1\"\nca = \"garbage.pem\"\n",
    );
    let o = run(dir.path(), &input, &[]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("executor `g`: `ca` is for TLS: write the address as https://HOST:PORT"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_pool_found_through_dns_says_tls_in_remotemedia_toml() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let g = pki.executor(dir.path(), "pod", &[]);
    let port: u16 = g.addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let dns = DnsServer::start();
    dns.publish(&[port]);
    let input = numbers(dir.path(), 50);
    let expected = local_run(dir.path(), &input);

    // Each address is checked against the name it was found under: the `dns://` name,
    // or the SRV target.
    for discover in [
        format!("dns://remotemedia-executor:{port}"),
        format!("dns+srv://{SRV_NAME}"),
    ] {
        write(
            dir.path(),
            "remotemedia.toml",
            &format!(
                "[[executors]]\nname = \"pods\"\ndiscover = \"{discover}\"\ntls = true\nca = \"ca.pem\"\n"
            ),
        );
        let o = output(rm(dir.path()).arg("plan").arg(gpu_pipeline()).args([
            "--json",
            "--dns-server",
            &dns.addr,
        ]));
        assert_eq!(o.code, 0, "{discover}: {}", o.stderr);
        let plan: Value = serde_json::from_str(&o.stdout).unwrap();
        let e = &plan["executors"][0];
        assert_eq!(e["name"], format!("pods@127.0.0.1:{port}"), "{plan:#}");
        assert_eq!(
            (&e["tls"], &e["reachable"]),
            (&Value::Bool(true), &Value::Bool(true))
        );

        let o = run(dir.path(), &input, &["--dns-server", &dns.addr]);
        assert_eq!(o.code, 0, "{discover}: {}", o.stderr);
        assert_eq!(o.stdout, expected, "{discover}");
    }
}
