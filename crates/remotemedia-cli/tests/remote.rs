//! Remote execution through the `remotemedia` binary: executors started by the tests
//! on loopback (`remotemedia serve --listen 127.0.0.1:0`), placement by every rule and
//! policy, runs through executors, failover when an executor is killed mid-stream,
//! tokens and graceful shutdown.
//!
//! The client side always reads its capabilities from a file (a 4-core CPU machine
//! without GPU), and every executor advertises a file too, so the results do not depend
//! on the machine the tests run on. Unix only: the tests send signals.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

mod support;

use support::{repo, write, Executor, BIN};

fn gpu_caps() -> PathBuf {
    repo("examples/remote/gpu-capabilities.json")
}

fn cpu_caps() -> PathBuf {
    repo("examples/remote/cpu-capabilities.json")
}

fn gpu_pipeline() -> PathBuf {
    repo("examples/remote/gpu-pipeline.yaml")
}

/// A `remotemedia` command run in `dir`, with this machine standing in as a CPU box
/// and no executors from the environment.
fn rm(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env("REMOTEMEDIA_CAPABILITIES", cpu_caps())
        .env_remove("REMOTEMEDIA_EXECUTORS")
        .env_remove("REMOTEMEDIA_LOG");
    c
}

/// Kills a process the test reads from if it is still at it after two minutes, so a
/// hang turns into a failed test instead of a stuck suite.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(child: &Child) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let pid = child.id().to_string();
        std::thread::spawn(move || {
            for _ in 0..1200 {
                std::thread::sleep(Duration::from_millis(100));
                if flag.load(Ordering::Relaxed) {
                    return;
                }
            }
            eprintln!("watchdog: killing process {pid}, which hung");
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A `run` of the GPU pipeline on `executor` that keeps its stream open: one item
/// `first` has gone through (its output was `expect`); the stream ends at `end`.
struct OpenStream {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    _watchdog: Watchdog,
}

impl OpenStream {
    fn start(dir: &Path, executor: &Executor, first: &str, expect: &str) -> OpenStream {
        let mut child = rm(dir)
            .arg("run")
            .arg(gpu_pipeline())
            .args(["--input", "-"])
            .args(executor_args(&[executor]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let watchdog = Watchdog::new(&child);
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdin.write_all(format!("{first}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(
            line,
            format!("{expect}\n"),
            "the item went through {}",
            executor.name
        );
        OpenStream {
            child,
            stdin: Some(stdin),
            _watchdog: watchdog,
        }
    }

    /// Closes the input; the run must then end successfully.
    fn end(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

fn executor_args(executors: &[&Executor]) -> Vec<String> {
    executors
        .iter()
        .flat_map(|e| ["--executor".to_string(), e.flag()])
        .collect()
}

/// `remotemedia run MANIFEST --input INPUT` with these executors; more flags may follow.
fn run_through(dir: &Path, manifest: &Path, input: &Path, executors: &[&Executor]) -> Command {
    let mut c = rm(dir);
    c.arg("run")
        .arg(manifest)
        .arg("--input")
        .arg(input)
        .args(executor_args(executors));
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

/// `remotemedia plan MANIFEST --json` with these executors and extra flags.
fn plan_json(dir: &Path, manifest: &Path, executors: &[&Executor], extra: &[&str]) -> Value {
    let o = output(
        rm(dir)
            .arg("plan")
            .arg(manifest)
            .arg("--json")
            .args(executor_args(executors))
            .args(extra),
    );
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "plan --json printed no JSON ({e}); exit {}, stderr:\n{}",
            o.code, o.stderr
        )
    })
}

/// Node id → (placement, reason) from `plan --json`.
fn placement_of<'a>(plan: &'a Value, node: &str) -> (&'a str, &'a str) {
    let n = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == node)
        .unwrap_or_else(|| panic!("no node {node} in {plan:#}"));
    (
        n["placement"].as_str().unwrap(),
        n["reason"].as_str().unwrap(),
    )
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP relay to `target` that holds every chunk for `delay` before passing it on:
/// an executor that is far away.
fn slow_relay(target: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                std::thread::sleep(delay);
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    addr
}

/// `1..=n` as JSON Lines.
fn numbers(dir: &Path, n: u64) -> PathBuf {
    let mut text = String::with_capacity(n as usize * 7);
    for i in 1..=n {
        text.push_str(&i.to_string());
        text.push('\n');
    }
    write(dir, &format!("numbers-{n}.jsonl"), &text)
}

/// The pipeline run entirely on this machine, which for this run has the GPU.
fn local_run(dir: &Path, manifest: &Path, input: &Path) -> String {
    let o = output(
        rm(dir)
            .env("REMOTEMEDIA_CAPABILITIES", gpu_caps())
            .arg("run")
            .arg(manifest)
            .arg("--input")
            .arg(input),
    );
    assert_eq!(o.code, 0, "local run failed: {}", o.stderr);
    o.stdout
}

// ---------------------------------------------------------------------------------
// Placement rules
// ---------------------------------------------------------------------------------

#[test]
fn plan_places_gpu_nodes_remotely_as_one_sub_graph_and_the_rest_locally() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = Executor::start(dir.path(), "cpu-1", &cpu_caps(), &[]);
    let gpu = Executor::start(dir.path(), "gpu-1", &gpu_caps(), &[]);
    let plan = plan_json(dir.path(), &gpu_pipeline(), &[&cpu, &gpu], &[]);
    assert_eq!(plan["error"], Value::Null, "{plan:#}");
    assert_eq!(
        placement_of(&plan, "input"),
        ("local", "no capability requirements; local first")
    );
    assert_eq!(placement_of(&plan, "output").0, "local");
    for node in ["scale", "offset"] {
        let (target, reason) = placement_of(&plan, node);
        assert_eq!(target, "gpu-1", "{node}");
        assert_eq!(
            reason,
            "first executor that fits (greedy); not local: needs cuda ≥ 16 GB, has none"
        );
    }
    assert_eq!(
        plan["groups"],
        serde_json::json!([{"executor": "gpu-1", "nodes": ["scale", "offset"]}])
    );
    assert_eq!(plan["executors"][1]["reachable"], true);
    assert_eq!(
        plan["executors"][1]["capabilities"]["gpus"][0]["model"],
        "L4"
    );
    // How the run is scheduled: the remote pair is a stage of its own between the
    // local nodes, which cannot fuse across it.
    assert_eq!(
        plan["stages"],
        serde_json::json!([
            {"nodes": ["input"], "runs": "inline", "executor": null, "source": false},
            {"nodes": ["scale", "offset"], "runs": "remote", "executor": "gpu-1", "source": false},
            {"nodes": ["output"], "runs": "inline", "executor": null, "source": false},
        ])
    );

    // The same as text: node, placement, reason.
    let o = output(
        rm(dir.path())
            .arg("plan")
            .arg(gpu_pipeline())
            .args(executor_args(&[&cpu, &gpu])),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("local: 4 cores x86_64, 16 GB (file "),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "gpu-1 ({}): 16 cores x86_64, 64 GB, cuda NVIDIA L4 24 GB, load 0.00",
            gpu.addr
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("placement (greedy policy):"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("  input   local  no capability requirements; local first\n"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(
            "  scale   gpu-1  first executor that fits (greedy); not local: needs cuda ≥ 16 GB, has none\n"
        ),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("sub-graph on gpu-1: scale → offset\n"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.ends_with(
            "stages:\n  1. input           on the compute threads\n  \
             2. scale → offset  on gpu-1, streamed as one sub-graph\n  \
             3. output          on the compute threads\n"
        ),
        "{}",
        o.stdout
    );
}

#[test]
fn plain_pipeline_stays_local_even_with_executors() {
    let dir = tempfile::tempdir().unwrap();
    let gpu = Executor::start(dir.path(), "gpu-1", &gpu_caps(), &[]);
    let plan = plan_json(dir.path(), &repo("examples/calculator.yaml"), &[&gpu], &[]);
    for node in ["input", "add_one", "output"] {
        assert_eq!(
            placement_of(&plan, node),
            ("local", "no capability requirements; local first")
        );
    }
    assert_eq!(plan["groups"], serde_json::json!([]));
    // Zero configuration: no executors at all is fine too.
    let plan = plan_json(dir.path(), &repo("examples/calculator.yaml"), &[], &[]);
    assert_eq!(plan["executors"], serde_json::json!([]));
    assert_eq!(placement_of(&plan, "add_one").0, "local");
}

#[test]
fn explicit_host_pins_a_node_to_that_executor() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = Executor::start(dir.path(), "cpu-1", &cpu_caps(), &[]);
    let gpu = Executor::start(dir.path(), "gpu-1", &gpu_caps(), &[]);
    // One node names an executor by its address (not configured anywhere else), one
    // by its configured name; neither has requirements, so both would run locally.
    let manifest = write(
        dir.path(),
        "pinned.yaml",
        &format!(
            "version: v1\nmetadata: {{name: pinned}}\nnodes:\n\
             - {{id: a, node_type: PassThrough, host: \"{}\"}}\n\
             - {{id: b, node_type: Calculator, params: {{operation: add, operand: 1}}, host: \"gpu-1:50051\"}}\n\
             - {{id: c, node_type: PassThrough}}\n\
             connections:\n- {{from: a, to: b}}\n- {{from: b, to: c}}\n",
            cpu.addr
        ),
    );
    let plan = plan_json(dir.path(), &manifest, &[&gpu], &[]);
    assert_eq!(plan["error"], Value::Null, "{plan:#}");
    assert_eq!(
        placement_of(&plan, "a"),
        (
            cpu.addr.as_str(),
            format!("pinned by `host: {}`", cpu.addr).as_str()
        )
    );
    assert_eq!(
        placement_of(&plan, "b"),
        ("gpu-1", "pinned by `host: gpu-1:50051`")
    );
    assert_eq!(placement_of(&plan, "c").0, "local");

    // And it runs there.
    let input = numbers(dir.path(), 5);
    let o = output(&mut run_through(dir.path(), &manifest, &input, &[&gpu]));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "2\n3\n4\n5\n6\n");

    // A host that is not running anything: the node cannot be placed, and says why.
    let dead = format!("127.0.0.1:{}", dead_port());
    let manifest = write(
        dir.path(),
        "dead.yaml",
        &format!(
            "version: v1\nmetadata: {{name: dead}}\nnodes:\n- {{id: a, node_type: PassThrough, host: \"{dead}\"}}\nconnections: []\n"
        ),
    );
    let o = output(rm(dir.path()).arg("plan").arg(&manifest));
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.stderr.contains(&format!(
            "node `a` cannot be placed; considered:\n  {dead}: named by `host`, but unreachable: "
        )),
        "{}",
        o.stderr
    );
}

#[test]
fn optional_gpu_with_no_gpu_anywhere_runs_locally_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = Executor::start(dir.path(), "cpu-1", &cpu_caps(), &[]);
    let manifest = repo("examples/remote/optional-gpu.yaml");
    let plan = plan_json(dir.path(), &manifest, &[&cpu], &[]);
    let node = &plan["nodes"][1];
    assert_eq!(node["id"], "enhance");
    assert_eq!(node["placement"], "local");
    assert_eq!(node["reason"], "optional GPU available nowhere; local CPU");
    assert_eq!(
        node["warning"],
        "the GPU is optional and no machine has one (needs cuda ≥ 8 GB, has none); running on the local CPU"
    );

    let input = numbers(dir.path(), 3);
    let o = output(&mut run_through(dir.path(), &manifest, &input, &[&cpu]));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "3\n6\n9\n");
    assert!(
        o.stderr.contains(
            "warning: node `enhance`: the GPU is optional and no machine has one (needs cuda ≥ 8 GB, has none); running on the local CPU"
        ),
        "{}",
        o.stderr
    );

    // With a GPU executor around, the optional GPU is used there.
    let gpu = Executor::start(dir.path(), "gpu-1", &gpu_caps(), &[]);
    let plan = plan_json(dir.path(), &manifest, &[&cpu, &gpu], &[]);
    assert_eq!(placement_of(&plan, "enhance").0, "gpu-1");
}

#[test]
fn nothing_fits_lists_every_executor_considered_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let small = write(
        dir.path(),
        "small-gpu.json",
        r#"{"cpu_cores": 8, "arch": "x86_64", "memory_total_gb": 32,
            "gpus": [{"kind": "cuda", "vendor": "NVIDIA", "model": "T4", "memory_gb": 8}]}"#,
    );
    let rocm = write(
        dir.path(),
        "rocm.json",
        r#"{"cpu_cores": 8, "arch": "x86_64", "memory_total_gb": 32,
            "gpus": [{"kind": "rocm", "vendor": "AMD", "model": "MI50", "memory_gb": 32}]}"#,
    );
    let gpu_small = Executor::start(dir.path(), "gpu-small", &small, &[]);
    let amd = Executor::start(dir.path(), "amd-1", &rocm, &[]);
    let cpu = Executor::start(dir.path(), "cpu-1", &cpu_caps(), &[]);
    let dead = format!("gone=127.0.0.1:{}", dead_port());
    let o = output(
        rm(dir.path())
            .arg("plan")
            .arg(gpu_pipeline())
            .args(executor_args(&[&gpu_small, &amd, &cpu]))
            .args(["--executor", &dead]),
    );
    assert_eq!(o.code, 2, "stdout:\n{}\nstderr:\n{}", o.stdout, o.stderr);
    for node in ["scale", "offset"] {
        let expected = format!(
            "node `{node}` cannot be placed; considered:\n\
             \x20 local: needs cuda ≥ 16 GB, has none\n\
             \x20 gpu-small: needs cuda ≥ 16 GB, has 8 GB\n\
             \x20 amd-1: needs cuda ≥ 16 GB, has rocm AMD MI50 32 GB\n\
             \x20 cpu-1: needs cuda ≥ 16 GB, has none\n\
             \x20 gone: unreachable: transport error: tcp connect error: "
        );
        assert!(o.stderr.contains(&expected), "{}", o.stderr);
    }
    assert!(
        o.stdout.contains("  gone (127.0.0.1:") && o.stdout.contains("unreachable"),
        "{}",
        o.stdout
    );

    // `run` refuses before running anything, with the same list.
    let input = numbers(dir.path(), 3);
    let o = output(&mut run_through(
        dir.path(),
        &gpu_pipeline(),
        &input,
        &[&gpu_small],
    ));
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(o.stdout, "");
    assert!(
        o.stderr
            .contains("node `scale` cannot be placed; considered:\n  local: needs cuda ≥ 16 GB, has none\n  gpu-small: needs cuda ≥ 16 GB, has 8 GB"),
        "{}",
        o.stderr
    );
}

// ---------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------

/// Three GPU executors: g1 (3.0/h), g2 (2.0/h), g3 (1.0/h).
fn three_gpu_executors(dir: &Path) -> [Executor; 3] {
    [("g1", "3.0"), ("g2", "2.0"), ("g3", "1.0")]
        .map(|(name, cost)| Executor::start(dir, name, &gpu_caps(), &["--cost-per-hour", cost]))
}

#[test]
fn greedy_takes_the_first_executor_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let [g1, g2, g3] = three_gpu_executors(dir.path());
    let plan = plan_json(dir.path(), &gpu_pipeline(), &[&g1, &g2, &g3], &[]);
    assert_eq!(plan["policy"], "greedy");
    assert_eq!(placement_of(&plan, "scale").0, "g1");
    // Order of configuration decides.
    let plan = plan_json(dir.path(), &gpu_pipeline(), &[&g3, &g1, &g2], &[]);
    assert_eq!(placement_of(&plan, "scale").0, "g3");
    // Executors from the environment work the same way.
    let o = output(
        rm(dir.path())
            .env(
                "REMOTEMEDIA_EXECUTORS",
                format!("{}, {}", g2.flag(), g1.flag()),
            )
            .args(["plan", "--json"])
            .arg(gpu_pipeline()),
    );
    let plan: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|_| panic!("{}", o.stderr));
    assert_eq!(placement_of(&plan, "scale").0, "g2");
}

#[test]
fn cost_takes_the_cheapest_executor() {
    let dir = tempfile::tempdir().unwrap();
    let [g1, g2, g3] = three_gpu_executors(dir.path());
    let plan = plan_json(
        dir.path(),
        &gpu_pipeline(),
        &[&g1, &g2, &g3],
        &["--policy", "cost"],
    );
    assert_eq!(plan["policy"], "cost");
    assert_eq!(
        placement_of(&plan, "scale"),
        (
            "g3",
            "cheapest at 1/h of 3 that fit (cost); not local: needs cuda ≥ 16 GB, has none"
        )
    );
    // A cost in the configuration file overrides the advertised one.
    let toml = write(
        dir.path(),
        "remotemedia.toml",
        &format!(
            "[[executors]]\nname = \"g1\"\naddress = \"{}\"\ncost_per_hour = 0.5\n\n\
             [[executors]]\nname = \"g3\"\naddress = \"{}\"\n",
            g1.addr, g3.addr
        ),
    );
    let plan = plan_json(
        dir.path(),
        &gpu_pipeline(),
        &[],
        &["--policy", "cost", "--config", toml.to_str().unwrap()],
    );
    assert_eq!(placement_of(&plan, "scale").0, "g1");
}

#[test]
fn latency_takes_the_executor_with_the_shortest_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let [g1, g2, g3] = three_gpu_executors(dir.path());
    // g1 and g3 are reached through a relay adding 25 ms each way.
    let far1 = slow_relay(g1.addr.clone(), Duration::from_millis(25));
    let far3 = slow_relay(g3.addr.clone(), Duration::from_millis(25));
    let o = output(rm(dir.path()).args([
        "plan",
        gpu_pipeline().to_str().unwrap(),
        "--json",
        "--policy",
        "latency",
        "--executor",
        &format!("g1={far1}"),
        "--executor",
        &g2.flag(),
        "--executor",
        &format!("g3={far3}"),
    ]));
    let plan: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|_| panic!("{}", o.stderr));
    assert_eq!(plan["policy"], "latency");
    let (target, reason) = placement_of(&plan, "scale");
    assert_eq!(target, "g2", "{plan:#}");
    assert!(
        reason.starts_with("lowest round-trip ") && reason.contains(" µs of 3 that fit (latency)"),
        "{reason}"
    );
    for i in [0, 2] {
        assert!(
            plan["executors"][i]["rtt_us"].as_f64().unwrap()
                > plan["executors"][1]["rtt_us"].as_f64().unwrap(),
            "{plan:#}"
        );
    }
}

#[test]
fn balanced_takes_the_least_loaded_executor() {
    let dir = tempfile::tempdir().unwrap();
    let [g1, g2, g3] = three_gpu_executors(dir.path());
    // Keep a stream open on g1: a run reading items from a pipe that stays open.
    let busy = OpenStream::start(dir.path(), &g1, "20", "41");

    let plan = plan_json(
        dir.path(),
        &gpu_pipeline(),
        &[&g1, &g2, &g3],
        &["--policy", "balanced"],
    );
    assert_eq!(plan["executors"][0]["load"], 1.0 / 64.0, "{plan:#}");
    assert_eq!(
        placement_of(&plan, "scale"),
        (
            "g2",
            "lowest load 0.00 of 3 that fit (balanced); not local: needs cuda ≥ 16 GB, has none"
        )
    );
    busy.end();
}

#[test]
fn without_any_executor_the_error_says_how_to_add_one() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["plan", "run"] {
        let o = output(rm(dir.path()).arg(cmd).arg(gpu_pipeline()));
        assert_eq!(o.code, 2, "{cmd}");
        assert!(
            o.stderr.contains(
                "error: node `scale` cannot be placed; considered:\n  local: needs cuda ≥ 16 GB, has none\n"
            ),
            "{cmd}: {}",
            o.stderr
        );
        assert!(
            o.stderr.ends_with(
                "hint: no remote executors are configured; add one with --executor \
                 NAME=HOST:PORT, REMOTEMEDIA_EXECUTORS or [[executors]] in remotemedia.toml\n"
            ),
            "{cmd}: {}",
            o.stderr
        );
    }
}

#[test]
fn unknown_policy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = output(
        rm(dir.path())
            .arg("plan")
            .arg(gpu_pipeline())
            .args(["--policy", "fastest"]),
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains(
            "unknown policy `fastest`; expected one of `greedy`, `balanced`, `latency`, `cost`"
        ),
        "{}",
        o.stderr
    );
}

// ---------------------------------------------------------------------------------
// Running across machines
// ---------------------------------------------------------------------------------

#[test]
fn run_through_an_executor_equals_the_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let gpu = Executor::start(dir.path(), "gpu-1", &gpu_caps(), &[]);
    let input = numbers(dir.path(), 2000);
    let metrics = dir.path().join("metrics.json");
    let o = output(
        run_through(dir.path(), &gpu_pipeline(), &input, &[&gpu])
            .arg("--metrics")
            .arg(&metrics),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, local_run(dir.path(), &gpu_pipeline(), &input));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(m["remote"]["events"], serde_json::json!([]));
    let remote = &m["remote"]["remote_metrics"][0];
    assert_eq!(remote["executor"], "gpu-1");
    assert_eq!(remote["nodes"], serde_json::json!(["scale", "offset"]));
    assert_eq!(remote["metrics"]["items_in"], 2000);
}

#[test]
fn metrics_list_a_remote_node_under_its_own_id_with_where_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let g1 = Executor::start(dir.path(), "g1", &cpu_caps(), &[]);
    // `host` alone sends `add_one` to g1.
    let text = std::fs::read_to_string(repo("examples/calculator.yaml"))
        .unwrap()
        .replace(
            "  - id: add_one\n    node_type: Calculator\n",
            "  - id: add_one\n    node_type: Calculator\n    host: \"g1:1\"\n",
        );
    assert!(text.contains("host: \"g1:1\""));
    let manifest = write(dir.path(), "pinned.yaml", &text);
    let input = numbers(dir.path(), 40);
    let metrics = dir.path().join("metrics.json");
    let o = output(
        run_through(dir.path(), &manifest, &input, &[&g1])
            .arg("--metrics")
            .arg(&metrics),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    let nodes = m["metrics"]["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["input", "add_one", "output"], "{m:#}");
    // The remote node is reported as a local one is, plus where it ran.
    let add = &nodes[1];
    assert_eq!(add["node_type"], "Calculator");
    assert_eq!(add["executor"], "g1");
    assert_eq!(
        (&add["items_in"], &add["items_out"]),
        (&40.into(), &40.into())
    );
    for key in [
        "busy_us",
        "latency_p50_us",
        "latency_p99_us",
        "errors",
        "retries",
    ] {
        assert!(add.get(key).is_some(), "no {key} in {add:#}");
    }
    assert!(nodes[0].get("executor").is_none() && nodes[2].get("executor").is_none());
    // The stage that carried it keeps its own figures with the sub-graph.
    let remote = &m["remote"]["remote_metrics"][0];
    assert_eq!(remote["nodes"], serde_json::json!(["add_one"]));
    assert_eq!(remote["transport"]["node_type"], "RemoteStage");
    assert_eq!(remote["transport"]["items_in"], 40);
    assert_eq!(remote["transport"]["items_out"], 40);
}

/// Starts a run of `manifest` over `input` through `executors`, reads `before` output
/// lines, SIGKILLs `victim`, then reads the rest. Returns (stdout, stderr, exit code).
fn run_and_kill(
    dir: &Path,
    manifest: &Path,
    input: &Path,
    executor_flags: &[String],
    victim: &mut Executor,
    before: usize,
    metrics: &Path,
) -> Output {
    let mut child = rm(dir)
        .arg("run")
        .arg(manifest)
        .arg("--input")
        .arg(input)
        .arg("--metrics")
        .arg(metrics)
        .args(executor_flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _watchdog = Watchdog::new(&child);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let mut text = String::new();
    for _ in 0..before {
        assert!(
            stdout.read_line(&mut text).unwrap() > 0,
            "output ended early"
        );
    }
    // The run cannot be done: its output is not read, so the bounded queues behind
    // the pipe hold it back far before the end of the input.
    victim.kill();
    stdout.read_to_string(&mut text).unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    Output {
        code,
        stdout: text,
        stderr: err_reader.join().unwrap(),
    }
}

#[test]
fn executor_killed_mid_stream_fails_over_without_losing_or_repeating_items() {
    let dir = tempfile::tempdir().unwrap();
    let mut g1 = Executor::start(dir.path(), "g1", &gpu_caps(), &[]);
    let g2 = Executor::start(dir.path(), "g2", &gpu_caps(), &[]);
    let input = numbers(dir.path(), 100_000);
    let metrics = dir.path().join("metrics.json");
    let flags = executor_args(&[&g1, &g2]);
    let o = run_and_kill(
        dir.path(),
        &gpu_pipeline(),
        &input,
        &flags,
        &mut g1,
        1000,
        &metrics,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let expected = local_run(dir.path(), &gpu_pipeline(), &input);
    assert_eq!(o.stdout.lines().count(), 100_000);
    assert!(o.stdout == expected, "outputs differ from the local run");
    assert!(
        o.stderr
            .contains("warning: failover: scale → offset moved from g1 to g2 ("),
        "{}",
        o.stderr
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    let events = m["remote"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event"], "failover");
    assert_eq!(events[0]["from"], "g1");
    assert_eq!(events[0]["to"], "g2");
    let remote = m["remote"]["remote_metrics"].as_array().unwrap();
    assert_eq!(remote.len(), 1);
    assert_eq!(remote[0]["executor"], "g2");
    drop(g2);
}

#[test]
fn stateful_nodes_restart_on_failover_and_the_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut g1 = Executor::start(dir.path(), "g1", &gpu_caps(), &[]);
    let g2 = Executor::start(dir.path(), "g2", &gpu_caps(), &[]);
    let text = std::fs::read_to_string(gpu_pipeline()).unwrap().replace(
        "params: { operation: multiply, operand: 2 }",
        "params: { operation: multiply, operand: 2 }\n    stateful: true",
    );
    let manifest = write(dir.path(), "stateful.yaml", &text);
    let input = numbers(dir.path(), 50_000);
    let metrics = dir.path().join("metrics.json");
    let flags = executor_args(&[&g1, &g2]);
    let o = run_and_kill(
        dir.path(),
        &manifest,
        &input,
        &flags,
        &mut g1,
        1000,
        &metrics,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.lines().count(), 50_000);
    assert!(
        o.stderr
            .contains("warning: stateful node(s) scale restarted with fresh state on g2 after "),
        "{}",
        o.stderr
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    let events = m["remote"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["event"], "failover");
    assert_eq!(events[1]["event"], "state_restarted");
    assert_eq!(events[1]["nodes"], serde_json::json!(["scale"]));
    assert_eq!(events[1]["executor"], "g2");
    assert!(events[1]["items_before"].as_u64().unwrap() >= 1000);
    drop(g2);
}

#[test]
fn every_executor_gone_fails_listing_each_one_tried() {
    let dir = tempfile::tempdir().unwrap();
    let mut g1 = Executor::start(dir.path(), "g1", &gpu_caps(), &[]);
    let input = numbers(dir.path(), 50_000);
    let metrics = dir.path().join("metrics.json");
    let flags = executor_args(&[&g1]);
    let o = run_and_kill(
        dir.path(),
        &gpu_pipeline(),
        &input,
        &flags,
        &mut g1,
        100,
        &metrics,
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stdout.lines().count() < 50_000);
    assert!(
        o.stderr
            .contains("no executor left for scale → offset; tried: g1: stream broke: "),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("g1: cannot connect to g1 (") && o.stderr.contains("(3 attempt(s))"),
        "{}",
        o.stderr
    );
}

/// Waits until `path` contains `text` (the executor logged it), or panics.
fn wait_for_log(path: &Path, text: &str) {
    for _ in 0..1000 {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(text)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{} never logged {text:?}: {}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

#[test]
fn sigterm_lets_open_streams_finish_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut g1 = Executor::start(dir.path(), "g1", &gpu_caps(), &["-v"]);
    let mut run = rm(dir.path())
        .arg("run")
        .arg(gpu_pipeline())
        .args(["--input", "-"])
        .args(executor_args(&[&g1]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _watchdog = Watchdog::new(&run);
    let mut stdin = run.stdin.take().unwrap();
    let mut stdout = BufReader::new(run.stdout.take().unwrap());
    let mut line = String::new();
    stdin.write_all(b"1\n").unwrap();
    stdin.flush().unwrap();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "3\n");

    g1.signal("TERM");
    wait_for_log(&g1.stderr, "shutting down: draining open streams");
    // The open stream keeps working while the executor drains.
    for i in 2..=5 {
        stdin.write_all(format!("{i}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{}\n", 2 * i + 1));
    }
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    let out = run.wait_with_output().unwrap();
    let run_err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{run_err}");
    assert!(!run_err.contains("failover"), "{run_err}");

    // Once the stream is closed the executor exits by itself, cleanly.
    let status = g1.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let log = std::fs::read_to_string(&g1.stderr).unwrap();
    assert!(
        log.contains("shut down after draining open streams"),
        "{log}"
    );
}

#[test]
fn executors_with_a_token_refuse_clients_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "g1.token", "s3cret-token\n");
    let wrong = write(dir.path(), "wrong.token", "guess\n");
    let g1 = Executor::start(
        dir.path(),
        "g1",
        &gpu_caps(),
        &["--token-file", token.to_str().unwrap()],
    );
    let input = numbers(dir.path(), 10);
    let refused = "g1: unreachable: Unauthenticated: missing or wrong bearer token";

    // No token.
    let o = output(
        rm(dir.path())
            .arg("plan")
            .arg(gpu_pipeline())
            .args(executor_args(&[&g1])),
    );
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains(refused), "{}", o.stderr);

    // A wrong token.
    let o = output(
        run_through(dir.path(), &gpu_pipeline(), &input, &[&g1])
            .arg("--token-file")
            .arg(&wrong),
    );
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout, "");
    assert!(o.stderr.contains(refused), "{}", o.stderr);

    // The right one, given on the command line or in remotemedia.toml.
    let o = output(
        run_through(dir.path(), &gpu_pipeline(), &input, &[&g1])
            .arg("--token-file")
            .arg(&token),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "3\n5\n7\n9\n11\n13\n15\n17\n19\n21\n");
    write(
        dir.path(),
        "remotemedia.toml",
        &format!(
            "[[executors]]\nname = \"g1\"\naddress = \"{}\"\ntoken_file = \"g1.token\"\n",
            g1.addr
        ),
    );
    let o = output(
        rm(dir.path())
            .arg("run")
            .arg(gpu_pipeline())
            .arg("--input")
            .arg(&input),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "3\n5\n7\n9\n11\n13\n15\n17\n19\n21\n");

    // A token file that does not exist is a clear configuration error.
    let o = output(
        rm(dir.path())
            .arg("plan")
            .arg(gpu_pipeline())
            .args(["--token-file", "missing.token"]),
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("missing.token"), "{}", o.stderr);
}

#[test]
fn bad_executor_flags_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, why) in [
        (
            "gpu-1=nohost",
            "executor `gpu-1=nohost`: `nohost` is not HOST:PORT",
        ),
        ("=127.0.0.1:5", "the name is empty"),
        ("g=127.0.0.1:0", "is not HOST:PORT"),
    ] {
        let o = output(
            rm(dir.path())
                .arg("plan")
                .arg(gpu_pipeline())
                .args(["--executor", flag]),
        );
        assert_eq!(o.code, 1, "{flag}");
        assert!(o.stderr.contains(why), "{flag}: {}", o.stderr);
    }
    let o = output(
        rm(dir.path())
            .env("REMOTEMEDIA_EXECUTORS", "a=127.0.0.1:1,broken")
            .arg("plan")
            .arg(gpu_pipeline()),
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("broken"), "{}", o.stderr);
}

// ---------------------------------------------------------------------------------
// `capabilities` and `serve` on their own
// ---------------------------------------------------------------------------------

#[test]
fn capabilities_prints_the_override_file_or_what_was_detected() {
    let dir = tempfile::tempdir().unwrap();
    let o = output(
        rm(dir.path())
            .env("REMOTEMEDIA_CAPABILITIES", gpu_caps())
            .arg("capabilities"),
    );
    assert_eq!(o.code, 0);
    assert_eq!(
        o.stdout,
        format!(
            "source:    file {}\ncpu:       16 cores, x86_64\nmemory:    64 GB total\n\
             gpu 0:     cuda NVIDIA L4 24 GB\ndetection: not run (capabilities from a file)\n",
            gpu_caps().display()
        )
    );
    let o = output(
        rm(dir.path())
            .env("REMOTEMEDIA_CAPABILITIES", gpu_caps())
            .args(["capabilities", "--json"]),
    );
    let printed: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(printed["gpus"][0]["memory_gb"], 24.0);
    assert_eq!(printed["cpu_cores"], 16);

    // Detected: this machine, whatever it is.
    let o = output(
        rm(dir.path())
            .env_remove("REMOTEMEDIA_CAPABILITIES")
            .args(["capabilities", "--json"]),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let detected: Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(detected["cpu_cores"].as_u64().unwrap() >= 1);
    assert_eq!(detected["arch"], std::env::consts::ARCH);
    assert!(detected["memory_total_gb"].as_f64().unwrap() > 0.0);
    // The JSON form is accepted back as an override.
    let again = write(dir.path(), "detected.json", &o.stdout);
    let o = output(
        rm(dir.path())
            .env("REMOTEMEDIA_CAPABILITIES", &again)
            .args(["capabilities", "--json"]),
    );
    assert_eq!(serde_json::from_str::<Value>(&o.stdout).unwrap(), detected);

    let bad = write(dir.path(), "bad.json", r#"{"cpu_cores": "many"}"#);
    let o = output(
        rm(dir.path())
            .env("REMOTEMEDIA_CAPABILITIES", &bad)
            .arg("capabilities"),
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains(&format!(
            "{} is not a capabilities description: invalid type: string \"many\", expected u32",
            bad.display()
        )),
        "{}",
        o.stderr
    );
}

#[test]
fn serve_refuses_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--listen", "nonsense"],
            "--listen `nonsense` is not IP:PORT",
        ),
        (
            &["--metrics-listen", "x:y"],
            "--metrics-listen `x:y` is not IP:PORT",
        ),
        (
            &["--capabilities", "missing.json"],
            "cannot read missing.json",
        ),
        (&["--token-file", "missing.token"], "missing.token"),
        (
            &["--max-streams", "0"],
            "--max-streams and --max-message-bytes must be at least 1",
        ),
    ];
    for (args, why) in cases {
        let o = output(rm(dir.path()).arg("serve").args(args));
        assert_eq!(o.code, 1, "{args:?}");
        assert!(o.stderr.contains(why), "{args:?}: {}", o.stderr);
    }
    // A port already taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = output(rm(dir.path()).args(["serve", "--listen", &addr]));
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains(&format!("cannot listen on {addr}: ")),
        "{}",
        o.stderr
    );
}

#[test]
fn serve_exposes_prometheus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("m.stderr");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--capabilities",
        ])
        .arg(gpu_caps())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let mut second = String::new();
    stdout.read_line(&mut first).unwrap();
    stdout.read_line(&mut second).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let metrics_addr = second
        .trim()
        .strip_prefix("metrics on ")
        .unwrap()
        .to_string();
    let input = numbers(dir.path(), 10);
    let o = output(
        rm(dir.path())
            .arg("run")
            .arg(gpu_pipeline())
            .arg("--input")
            .arg(&input)
            .args(["--executor", &format!("g={addr}")]),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut sock = TcpStream::connect(&metrics_addr).unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    sock.read_to_string(&mut body).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(
        body.contains("# TYPE remotemedia_streams_total counter\nremotemedia_streams_total 1\n"),
        "{body}"
    );
    assert!(body.contains("remotemedia_items_in_total 10\n"), "{body}");
    assert!(body.contains("remotemedia_items_out_total 10\n"), "{body}");
    assert!(
        body.contains("remotemedia_rejected_requests_total{reason=\"auth\"} 0\n"),
        "{body}"
    );
}

#[test]
fn executors_allowing_python_source_run_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let g1 = Executor::start(dir.path(), "g1", &gpu_caps(), &["--allow-python-source"]);
    // Needs a GPU, so it can only run on g1; its `print` lands on g1's stderr.
    let source = "import os\nclass Node:\n    def process(self, x):\n        print('seen', x)\n        return x * 10\n";
    let m = serde_json::json!({
        "version": "v1",
        "metadata": {"name": "remote-source"},
        "nodes": [{"id": "times10", "node_type": "PythonNode",
                   "capabilities": {"gpu": {"type": "cuda"}},
                   "params": {"class": "Node", "source": source, "runtime": "process"}}],
        "connections": [],
    });
    let manifest = write(dir.path(), "remote-source.json", &m.to_string());
    let o = output(&mut run_through(
        dir.path(),
        &manifest,
        &repo("examples/numbers.jsonl"),
        &[&g1],
    ));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let want: String = (1..=10).map(|v| format!("{}\n", v * 10)).collect();
    assert_eq!(o.stdout, want);
    assert!(!o.stderr.contains("[times10] seen"), "{}", o.stderr);
    let served = std::fs::read_to_string(&g1.stderr).unwrap();
    assert!(served.contains("[times10] seen 1\n"), "{served}");
}

#[test]
fn a_sub_graph_refused_at_start_moves_to_the_next_executor_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // g1 serves one stream at a time, and one is open.
    let g1 = Executor::start(dir.path(), "g1", &gpu_caps(), &["--max-streams", "1"]);
    let g2 = Executor::start(dir.path(), "g2", &gpu_caps(), &[]);
    let busy = OpenStream::start(dir.path(), &g1, "1", "3");

    let input = numbers(dir.path(), 100);
    let metrics = dir.path().join("metrics.json");
    let o = output(
        run_through(dir.path(), &gpu_pipeline(), &input, &[&g1, &g2])
            .arg("--metrics")
            .arg(&metrics),
    );
    busy.end();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, local_run(dir.path(), &gpu_pipeline(), &input));
    assert!(
        o.stderr.contains(
            "warning: failover: scale → offset moved from g1 to g2 (0 items resent): \
             ResourceExhausted: the executor is at its limit of 1 concurrent streams \
             (--max-streams) (3 attempt(s))"
        ),
        "{}",
        o.stderr
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(m["remote"]["events"][0]["event"], "failover");
    assert_eq!(m["remote"]["remote_metrics"][0]["executor"], "g2");
}

#[test]
fn executor_killed_mid_stream_fails_over_to_this_machine_when_it_can_run_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let mut g1 = Executor::start(dir.path(), "g1", &cpu_caps(), &[]);
    // Nothing here needs a GPU; `host` alone sends `add_one` to g1.
    let text = std::fs::read_to_string(repo("examples/calculator.yaml"))
        .unwrap()
        .replace(
            "  - id: add_one\n    node_type: Calculator\n",
            "  - id: add_one\n    node_type: Calculator\n    host: \"g1:1\"\n",
        );
    assert!(text.contains("host: \"g1:1\""));
    let manifest = write(dir.path(), "pinned.yaml", &text);
    let input = numbers(dir.path(), 100_000);
    let metrics = dir.path().join("metrics.json");
    let flags = executor_args(&[&g1]);
    let o = run_and_kill(
        dir.path(),
        &manifest,
        &input,
        &flags,
        &mut g1,
        1000,
        &metrics,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout == local_run(dir.path(), &repo("examples/calculator.yaml"), &input),
        "outputs differ from the local run"
    );
    assert!(
        o.stderr
            .contains("warning: failover: add_one moved from g1 to local ("),
        "{}",
        o.stderr
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(m["remote"]["remote_metrics"][0]["executor"], "local");
}
