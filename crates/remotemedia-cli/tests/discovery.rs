//! Executors discovered through DNS, as a Kubernetes headless Service publishes its
//! pods: a small authoritative DNS server on loopback, run by the test with records it
//! changes while running (TTL 1 s), plays the Service; real `remotemedia serve`
//! processes play the pods. Unix only: the tests send signals.
#![cfg(unix)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/dns.rs"]
mod dns;
mod support;

use dns::{DnsServer, SRV_NAME, TTL};
use support::{repo, write, Executor, BIN};

fn gpu_caps() -> PathBuf {
    repo("examples/remote/gpu-capabilities.json")
}

fn port_of(e: &Executor) -> u16 {
    e.addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// A `remotemedia` command in `dir`: this machine a CPU box, no executors or DNS
/// server from the environment.
fn rm(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env(
            "REMOTEMEDIA_CAPABILITIES",
            repo("examples/remote/cpu-capabilities.json"),
        )
        .env_remove("REMOTEMEDIA_EXECUTORS")
        .env_remove("REMOTEMEDIA_DNS_SERVER")
        .env_remove("REMOTEMEDIA_LOG");
    c
}

/// The stream of the long tests: the numbers 1..=N in `dir` (N from
/// `REMOTEMEDIA_DISCOVERY_ITEMS`, default 100,000).
fn numbers(dir: &Path) -> (PathBuf, u64) {
    let n: u64 = std::env::var("REMOTEMEDIA_DISCOVERY_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut text = String::with_capacity(n as usize * 7);
    for i in 1..=n {
        text.push_str(&format!("{i}\n"));
    }
    (write(dir, "numbers.jsonl", &text), n)
}

/// The output of the GPU pipeline over `input` run on this machine (declared a GPU
/// box), to compare the remote runs with.
fn local_run(dir: &Path, input: &Path) -> Vec<u8> {
    let out = rm(dir)
        .env("REMOTEMEDIA_CAPABILITIES", gpu_caps())
        .arg("run")
        .arg(repo("examples/remote/gpu-pipeline.yaml"))
        .arg("--input")
        .arg(input)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn run_plan(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let o = rm(dir)
        .arg("plan")
        .arg(repo("examples/remote/gpu-pipeline.yaml"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    let v = serde_json::from_str(&out).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), v, err)
}

#[test]
fn plan_shows_the_pool_its_addresses_and_when_they_were_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start();
    let pods: Vec<Executor> = (0..3)
        .map(|i| Executor::start(dir.path(), &format!("pod{i}"), &gpu_caps(), &[]))
        .collect();
    let ports: Vec<u16> = pods.iter().map(port_of).collect();
    dns.publish(&ports);
    let url = format!("dns+srv://{SRV_NAME}");
    let (code, plan, err) = run_plan(dir.path(), &["--executor", &url, "--dns-server", &dns.addr]);
    assert_eq!(code, 0, "{err}");
    let pool = &plan["discovery"][0];
    assert_eq!(pool["pool"], "remotemedia-executor", "{plan:#}");
    assert_eq!(pool["record_type"], "SRV");
    assert_eq!(pool["record_ttl_s"], TTL);
    assert_eq!(pool["ttl_s"], 1);
    assert!(pool["server"].as_str().unwrap().contains(&dns.addr));
    assert!(pool["resolved_at_unix"].as_f64().unwrap() > 1.0e9);
    let mut want: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    want.sort();
    let got: Vec<&str> = pool["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    let executors = plan["executors"].as_array().unwrap();
    assert_eq!(executors.len(), 3);
    for e in executors {
        assert_eq!(e["reachable"], true, "{e:#}");
        assert!(e["name"]
            .as_str()
            .unwrap()
            .starts_with("remotemedia-executor@127.0.0.1:"));
    }
    assert!(plan["groups"][0]["executor"]
        .as_str()
        .unwrap()
        .starts_with("remotemedia-executor@"));

    // The same through the environment and A records on one port, under a pool name.
    let one = format!("dns://remotemedia-executor:{}", ports[0]);
    let o = rm(dir.path())
        .env("REMOTEMEDIA_EXECUTORS", format!("gpus={one}"))
        .env("REMOTEMEDIA_DNS_SERVER", &dns.addr)
        .arg("plan")
        .arg(repo("examples/remote/gpu-pipeline.yaml"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        out.contains(&format!(
            "discovered gpus at {one} (A/AAAA via DNS server {}",
            dns.addr
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("gpus@127.0.0.1:{}", ports[0])),
        "{out}"
    );

    // And `[[executors]]` with `discover`, its token file applying to each address.
    write(
        dir.path(),
        "remotemedia.toml",
        &format!("[[executors]]\nname = \"pods\"\ndiscover = \"{url}\"\ntoken_file = \"t\"\n"),
    );
    write(dir.path(), "t", "unused\n");
    let (code, plan, err) = run_plan(dir.path(), &["--dns-server", &dns.addr]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(plan["discovery"][0]["pool"], "pods");
    assert_eq!(plan["executors"].as_array().unwrap().len(), 3, "{plan:#}");
}

/// A name that does not resolve, a DNS server that never answers and records that
/// point at nothing listening: each a message naming what was asked, a non-zero exit,
/// no hang.
#[test]
fn discovery_failures_are_clear_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start();
    dns.publish(&[]);

    let missing = "dns+srv://_grpc._tcp.nothing-here.test.svc.cluster.local";
    let (code, _, err) = run_plan(
        dir.path(),
        &["--executor", missing, "--dns-server", &dns.addr],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot discover executors of `nothing-here`"),
        "{err}"
    );
    assert!(
        err.contains(missing) && err.contains("SRV") && err.contains(&dns.addr),
        "{err}"
    );
    assert!(
        err.contains("`_grpc._tcp.nothing-here.test.svc.cluster.local` does not exist (NXDOMAIN)"),
        "{err}"
    );

    // A UDP socket that reads every query and never replies.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let start = Instant::now();
    let (code, _, err) = run_plan(
        dir.path(),
        &[
            "--executor",
            "dns://remotemedia-executor:50051",
            "--dns-server",
            &silent_addr,
        ],
    );
    let took = start.elapsed();
    assert_ne!(code, 0);
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        err.contains("dns://remotemedia-executor:50051")
            && err.contains("A/AAAA")
            && err.contains(&silent_addr),
        "{err}"
    );
    assert!(
        err.contains("no answer about the A/AAAA records of `remotemedia-executor`"),
        "{err}"
    );
    drop(silent);

    // A port where no DNS server runs at all: no answer either, not "no records".
    let refused = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let (code, _, err) = run_plan(
        dir.path(),
        &["--executor", missing, "--dns-server", &refused],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("no answer about the SRV records of") && err.contains(&refused),
        "{err}"
    );

    // Records pointing at a port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    dns.publish(&[closed]);
    let (code, plan, err) = run_plan(
        dir.path(),
        &[
            "--executor",
            &format!("dns+srv://{SRV_NAME}"),
            "--dns-server",
            &dns.addr,
        ],
    );
    assert_ne!(code, 0, "{plan:#}");
    let e = &plan["executors"][0];
    assert_eq!(
        e["name"],
        format!("remotemedia-executor@127.0.0.1:{closed}")
    );
    assert_eq!(e["reachable"], false);
    assert!(err.contains("scale") || err.contains("gpu"), "{err}");

    // A bad server address is refused before anything is asked.
    let (code, _, err) = run_plan(
        dir.path(),
        &["--executor", missing, "--dns-server", "localhost"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("DNS server `localhost`"), "{err}");
}

/// A name with AAAA records only (an IPv6-only Service): every address becomes an
/// executor, written `[IP]:PORT`.
#[test]
fn aaaa_only_names_are_discovered() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start();
    dns.publish(&[]);
    let name = "v6-only.test.svc.cluster.local";
    dns.publish_aaaa(name, &["fd00::1".parse().unwrap(), "::1".parse().unwrap()]);
    let url = format!("dns://{name}:50051");
    let (_, plan, err) = run_plan(dir.path(), &["--executor", &url, "--dns-server", &dns.addr]);
    let names: Vec<&str> = plan["executors"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan:#} {err}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["v6-only@[::1]:50051", "v6-only@[fd00::1]:50051"],
        "{err}"
    );
    assert_eq!(plan["discovery"][0]["record_type"], "A/AAAA", "{plan:#}");
}

/// Without `--dns-server` the system resolver is asked (its hosts file included):
/// `localhost` gives this machine's loopback address, where an executor listens.
#[test]
fn the_system_resolver_is_asked_without_a_dns_server() {
    let dir = tempfile::tempdir().unwrap();
    let pod = Executor::start(dir.path(), "pod", &gpu_caps(), &[]);
    let url = format!("dns://localhost:{}", port_of(&pod));
    let (code, plan, err) = run_plan(dir.path(), &["--executor", &url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        plan["discovery"][0]["server"], "the system resolver",
        "{plan:#}"
    );
    let found = plan["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == format!("localhost@127.0.0.1:{}", port_of(&pod)))
        .unwrap_or_else(|| panic!("no 127.0.0.1 executor in {plan:#}"));
    assert_eq!(found["reachable"], true, "{plan:#}");
}

/// An executor found through DNS that is killed mid-stream: the run fails over to the
/// other address of the pool, as with static executors, and its output equals a local
/// run's (nothing lost or repeated).
#[test]
fn discovered_executor_killed_mid_stream_fails_over() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start();
    let mut pods: Vec<Executor> = (0..2)
        .map(|i| Executor::start(dir.path(), &format!("pod{i}"), &gpu_caps(), &[]))
        .collect();
    dns.publish(&pods.iter().map(port_of).collect::<Vec<_>>());
    // Greedy takes the first address of the pool, and addresses are sorted.
    pods.sort_by_key(|p| p.addr.clone());
    let (input, n) = numbers(dir.path());
    let url = format!("dns+srv://{SRV_NAME}");
    let mut child = rm(dir.path())
        .arg("run")
        .arg(repo("examples/remote/gpu-pipeline.yaml"))
        .arg("--input")
        .arg(&input)
        .args(["--executor", &url, "--dns-server", &dns.addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            if d.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let mut out = String::new();
    for _ in 0..1000 {
        assert!(
            stdout.read_line(&mut out).unwrap() > 0,
            "output ended early"
        );
    }
    pods[0].kill();
    stdout.read_to_string(&mut out).unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    done.store(true, Ordering::Relaxed);
    let err = err_reader.join().unwrap();
    assert_eq!(code, 0, "{err}");
    let local = local_run(dir.path(), &input);
    assert_eq!(out.lines().count() as u64, n);
    assert!(
        out.as_bytes() == local.as_slice(),
        "outputs differ from the local run"
    );
    let from = format!("remotemedia-executor@{}", pods[0].addr);
    let to = format!("remotemedia-executor@{}", pods[1].addr);
    assert!(
        err.contains(&format!(
            "failover: scale → offset moved from {from} to {to} ("
        )),
        "{err}"
    );
}

/// A `remotemedia run` held open: its output is read up to `lines` and no further, so
/// its remote stream stays open (the bounded queues behind the pipe hold it back).
struct HeldRun {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    out: String,
    metrics: PathBuf,
}

impl HeldRun {
    fn start(dir: &Path, input: &Path, dns: &DnsServer, tag: &str) -> HeldRun {
        use std::io::BufRead;
        let metrics = dir.join(format!("metrics-{tag}.json"));
        let mut child = rm(dir)
            .arg("run")
            .arg(repo("examples/remote/gpu-pipeline.yaml"))
            .arg("--input")
            .arg(input)
            .arg("--metrics")
            .arg(&metrics)
            .args(["--policy", "balanced"])
            .args(["--executor", &format!("dns+srv://{SRV_NAME}")])
            .args(["--dns-server", &dns.addr])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.join(format!("{tag}.stderr"))).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut out = String::new();
        for _ in 0..1000 {
            assert!(
                stdout.read_line(&mut out).unwrap() > 0,
                "output ended early"
            );
        }
        HeldRun {
            child,
            stdout,
            out,
            metrics,
        }
    }

    /// Reads the rest; the output and the executor that ran the remote group.
    fn finish(mut self) -> (String, String) {
        use std::io::Read;
        self.stdout.read_to_string(&mut self.out).unwrap();
        assert_eq!(self.child.wait().unwrap().code(), Some(0));
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.metrics).unwrap()).unwrap();
        let executor = m["remote"]["remote_metrics"][0]["executor"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (self.out, executor)
    }
}

/// Three executors of which only the first is published at first, with a stream held
/// open on it; then all three are published and the records' TTL has passed (as a
/// client that cached them would wait). The executors, their ports, the input and the
/// held run.
fn grown_pool(
    dir: &Path,
    dns: &DnsServer,
    tag: &str,
) -> (Vec<Executor>, Vec<u16>, PathBuf, HeldRun) {
    let pods: Vec<Executor> = (0..3)
        .map(|i| Executor::start(dir, &format!("pod{i}"), &gpu_caps(), &[]))
        .collect();
    let ports: Vec<u16> = pods.iter().map(port_of).collect();
    let (input, _) = numbers(dir);
    dns.publish(&ports[..1]);
    let first = HeldRun::start(dir, &input, dns, tag);
    dns.publish(&ports);
    std::thread::sleep(Duration::from_millis(1100));
    (pods, ports, input, first)
}

/// The pool scales from one executor to three while a stream is open on the first:
/// the new streams, placed with `balanced`, go to the two new executors (one stream
/// on each of the three), and every output equals a local run.
#[test]
fn new_streams_spread_over_executors_that_appear() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start();
    let (_pods, ports, input, first) = grown_pool(dir.path(), &dns, "a");
    let second = HeldRun::start(dir.path(), &input, &dns, "b");
    let third = HeldRun::start(dir.path(), &input, &dns, "c");

    let local = local_run(dir.path(), &input);
    let mut used = Vec::new();
    for run in [first, second, third] {
        let (out, executor) = run.finish();
        assert!(
            out.as_bytes() == local.as_slice(),
            "outputs differ from the local run"
        );
        used.push(executor);
    }
    assert_eq!(
        used[0],
        format!("remotemedia-executor@127.0.0.1:{}", ports[0])
    );
    let mut all = used.clone();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3, "streams per executor: {used:?}");
}

/// The pool scales from three executors to one: the two that leave the records get
/// SIGTERM while each has a stream open. They drain: each finishes its stream (no
/// failover, output equal to a local run), and a new stream goes to the one left.
#[test]
fn executors_that_leave_finish_their_streams() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start();
    let pods: Vec<Executor> = (0..3)
        .map(|i| Executor::start(dir.path(), &format!("pod{i}"), &gpu_caps(), &[]))
        .collect();
    let ports: Vec<u16> = pods.iter().map(port_of).collect();
    let (input, _) = numbers(dir.path());
    dns.publish(&ports);
    let runs: Vec<HeldRun> = ["a", "b", "c"]
        .iter()
        .map(|t| HeldRun::start(dir.path(), &input, &dns, t))
        .collect();
    dns.publish(&ports[..1]);
    pods[1].signal("TERM");
    pods[2].signal("TERM");
    std::thread::sleep(Duration::from_millis(1100));
    let local = local_run(dir.path(), &input);
    let late = HeldRun::start(dir.path(), &input, &dns, "d");
    let mut used = Vec::new();
    for (run, tag) in runs.into_iter().zip(["a", "b", "c"]) {
        let (out, executor) = run.finish();
        assert!(
            out.as_bytes() == local.as_slice(),
            "outputs differ from the local run"
        );
        let err = std::fs::read_to_string(dir.path().join(format!("{tag}.stderr"))).unwrap();
        assert!(!err.contains("failover"), "{err}");
        used.push(executor);
    }
    let mut all = used.clone();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3, "streams per executor: {used:?}");
    let (out, executor) = late.finish();
    assert!(out.as_bytes() == local.as_slice());
    assert_eq!(
        executor,
        format!("remotemedia-executor@127.0.0.1:{}", ports[0])
    );
}

/// In one process (the SDK's runs, one after another), a resolution stands for the
/// records' TTL: placing nodes again within it asks the DNS server nothing, and the
/// first placement after it asks again and sees the addresses published meanwhile.
#[test]
fn a_process_reuses_a_resolution_until_its_ttl_and_then_asks_again() {
    use remotemedia_remote::config::ExecutorConfig;
    use remotemedia_remote::discovery;

    let dns = DnsServer::start();
    dns.publish(&[50101]);
    let server = Some(dns.addr.parse().unwrap());
    let pool = || {
        vec![ExecutorConfig {
            name: "ttl-pool".into(),
            address: String::new(),
            discover: Some(format!("dns+srv://{SRV_NAME}")),
            tls: false,
            ca: None,
            token_file: None,
            cost_per_hour: None,
            server_name: None,
        }]
    };
    let addresses = |configs: &[ExecutorConfig]| -> Vec<String> {
        configs.iter().map(|c| c.address.clone()).collect()
    };
    let (first, pools) = discovery::expand(pool(), server).unwrap();
    assert_eq!(addresses(&first), ["127.0.0.1:50101"]);
    let asked = dns.queries();
    assert!(asked >= 2, "SRV and the target's A record: {asked}");
    let resolved_at = pools[0].resolved_at;

    // Within the TTL: the same resolution, no question asked.
    dns.publish(&[50101, 50102]);
    let (again, pools) = discovery::expand(pool(), server).unwrap();
    assert_eq!(addresses(&again), ["127.0.0.1:50101"]);
    assert_eq!(dns.queries(), asked);
    assert_eq!(pools[0].resolved_at, resolved_at);

    // Past it: asked again, and the new address is there.
    std::thread::sleep(Duration::from_secs(u64::from(TTL)) + Duration::from_millis(100));
    let (later, pools) = discovery::expand(pool(), server).unwrap();
    assert_eq!(addresses(&later), ["127.0.0.1:50101", "127.0.0.1:50102"]);
    assert!(dns.queries() > asked);
    assert!(pools[0].resolved_at > resolved_at);
}

/// A value an executor reports on its `/metrics` (`name` without labels).
fn metric(e: &Executor, name: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&e.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        e.addr
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let prefix = format!("{name} ");
    body.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// The active streams an executor reports on its `/metrics`.
fn active_streams(e: &Executor) -> u64 {
    metric(e, "remotemedia_active_streams") as u64
}

/// Many streams over a pool that grew from one executor to three while a stream was
/// open on the first: `balanced` spreads them by the load each executor reports, so
/// every executor ends up with its share within ±15%.
#[test]
fn balanced_streams_spread_evenly_over_a_grown_pool() {
    const STREAMS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start();
    let (pods, _, input, first) = grown_pool(dir.path(), &dns, "s0");
    let mut runs = vec![first];
    for i in 1..STREAMS {
        // Each run holds its stream open (its output is not read past 1,000 lines), so
        // the next placement sees it in the executors' loads.
        runs.push(HeldRun::start(dir.path(), &input, &dns, &format!("s{i}")));
    }
    let per_executor: Vec<u64> = pods.iter().map(active_streams).collect();
    assert_eq!(
        per_executor.iter().sum::<u64>(),
        STREAMS as u64,
        "{per_executor:?}"
    );
    let share = STREAMS as f64 / pods.len() as f64;
    for n in &per_executor {
        assert!(
            (*n as f64 - share).abs() <= 0.15 * share,
            "streams per executor {per_executor:?}, each should be {share} ± 15%"
        );
    }
    // The load an autoscaler can scale on: what the executors report to `balanced`.
    for (pod, n) in pods.iter().zip(&per_executor) {
        let slots = metric(pod, "remotemedia_stream_slots");
        let load = metric(pod, "remotemedia_load");
        assert!(
            load >= *n as f64 / slots && load <= 1.0,
            "load {load}, {n} of {slots} slots"
        );
    }
    for mut run in runs {
        let _ = run.child.kill();
        let _ = run.child.wait();
    }
}

/// In one process, an executor found through DNS is asked for its capabilities once
/// per resolution: placements within the TTL reuse the answer (its load corrected by
/// this process's own streams), the first one after it asks again.
#[test]
fn a_process_asks_a_discovered_executor_once_per_ttl() {
    use remotemedia_core::manifest::{load_str, Format};
    use remotemedia_core::placement::{ExecutorState, Target};
    use remotemedia_runtime::{place, ExecutorSources};

    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start();
    let pod = Executor::start(dir.path(), "pod", &gpu_caps(), &[]);
    dns.publish(&[port_of(&pod)]);
    let registry = remotemedia_runtime::registry();
    let text = std::fs::read_to_string(repo("examples/remote/gpu-pipeline.yaml")).unwrap();
    let pipeline = load_str(&text, Format::Yaml, &registry).unwrap();
    let sources = ExecutorSources {
        executors: vec![format!("dns+srv://{SRV_NAME}")],
        dns_server: Some(dns.addr.clone()),
        policy: Some("balanced".into()),
        ..Default::default()
    };
    let asked = || metric(&pod, "remotemedia_capability_requests_total") as u64;
    let placed_remotely = |placed: &remotemedia_runtime::Placed| {
        let p = placed.placement.as_ref().expect("placed");
        assert!(matches!(
            placed.executors[0].state,
            ExecutorState::Available(_)
        ));
        p.nodes.iter().any(|n| n.target == Target::Executor(0))
    };
    let before = asked();
    assert!(placed_remotely(&place(&pipeline, &sources).unwrap()));
    assert_eq!(asked(), before + 1);
    assert!(placed_remotely(&place(&pipeline, &sources).unwrap()));
    assert_eq!(asked(), before + 1, "asked again within the TTL");
    std::thread::sleep(Duration::from_secs(u64::from(TTL)) + Duration::from_millis(100));
    assert!(placed_remotely(&place(&pipeline, &sources).unwrap()));
    assert_eq!(asked(), before + 2, "not asked again after the TTL");
}
