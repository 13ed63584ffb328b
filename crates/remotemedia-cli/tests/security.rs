//! A client chooses no code the executor runs: every way a manifest could make a real
//! `remotemedia serve` execute something it was not told to serve is tried through
//! `ExecutePipeline` and `StreamPipeline` (with and without a token), and each attempt
//! is refused *and has no side effect* — every payload would create a marker file, and
//! the same payload on an executor started with `--allow-python-source` does create
//! it, so the checks can fail. Served classes run, with the executor's own path and in
//! worker processes of their own, so one client's slow node does not stall another's.
#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use remotemedia_core::Data;
use remotemedia_remote::client::StreamError;
use remotemedia_remote::runtime::block_on;
use remotemedia_remote::tonic::Code;
use remotemedia_remote::{Endpoint, ExecutorClient, RemoteError};
use serde_json::{json, Value};

use support::{write, Executor, BIN};

const SERVED_MODULE: &str = r#"
import time

class Upper:
    def __init__(self, suffix=""):
        self.suffix = suffix

    def process(self, x):
        return str(x).upper() + self.suffix

class Sleepy:
    def __init__(self, seconds=0):
        self.seconds = seconds

    def process(self, x):
        time.sleep(self.seconds)
        return x
"#;

/// A directory with the served module, a module and an executable that would create
/// `marker` when imported or run, and the capabilities file executors advertise.
struct Setup {
    dir: tempfile::TempDir,
    served: PathBuf,
    evil: PathBuf,
    marker: PathBuf,
    caps: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let served = dir.path().join("served");
        let evil = dir.path().join("evil");
        std::fs::create_dir_all(&served).unwrap();
        std::fs::create_dir_all(&evil).unwrap();
        let marker = dir.path().join("pwned");
        write(&served, "my_nodes.py", SERVED_MODULE);
        let touch = format!(
            "import pathlib\npathlib.Path({:?}).write_text('ran')\n\
             class Upper:\n    def process(self, x):\n        return x\n",
            marker.display().to_string()
        );
        // Importing either module creates the marker: one under a name of its own, one
        // shadowing the served module's name.
        write(&evil, "evil.py", &touch);
        write(&evil, "my_nodes.py", &touch);
        let sh = write(
            &evil,
            "python",
            &format!(
                "#!/bin/sh\necho ran > {:?}\nexit 1\n",
                marker.display().to_string()
            ),
        );
        std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let caps = write(
            dir.path(),
            "caps.json",
            r#"{"cpu_cores": 4, "arch": "x86_64", "memory_total_gb": 16.0, "gpus": []}"#,
        );
        Setup {
            dir,
            served,
            evil,
            marker,
            caps,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An executor serving `upper=my_nodes:Upper` and `sleepy=my_nodes:Sleepy`.
    fn strict(&self, extra: &[&str]) -> Executor {
        let served = self.served.display().to_string();
        let mut args = vec![
            "--python-node",
            "upper=my_nodes:Upper",
            "--python-node",
            "sleepy=my_nodes:Sleepy",
            "--python-path",
            &served,
        ];
        args.extend_from_slice(extra);
        Executor::start(self.path(), "strict", &self.caps, &args)
    }

    fn evil_dir(&self) -> String {
        self.evil.display().to_string()
    }

    fn assert_not_run(&self, what: &str) {
        assert!(
            !self.marker.exists(),
            "{what}: the executor ran the client's code"
        );
    }
}

fn manifest(params: Value) -> String {
    json!({
        "version": "v1",
        "metadata": {"name": "attack"},
        "nodes": [{"id": "n", "node_type": "PythonNode", "params": params}],
        "connections": [],
    })
    .to_string()
}

fn endpoint(executor: &Executor, token: Option<&str>) -> Endpoint {
    Endpoint {
        name: executor.name.clone(),
        address: executor.addr.clone(),
        token: token.map(String::from),
        tls: None,
    }
}

/// The status an executor refused `manifest` with through `ExecutePipeline`.
fn execute_refusal(executor: &Executor, token: Option<&str>, manifest: &str) -> (Code, String) {
    let e = endpoint(executor, token);
    let r = block_on(async {
        let mut c = ExecutorClient::connect(&e, Duration::from_secs(5)).await?;
        c.execute(manifest.to_string(), &[Data::Int(1)]).await
    });
    match r {
        Err(RemoteError::Rpc { status, .. }) => (status.code(), status.message().to_string()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The status an executor refused `manifest` with through `StreamPipeline`.
fn stream_refusal(executor: &Executor, token: Option<&str>, manifest: &str) -> (Code, String) {
    let e = endpoint(executor, token);
    let r = block_on(async {
        let mut c = ExecutorClient::connect(&e, Duration::from_secs(5))
            .await
            .map_err(StreamError::Executor)?;
        c.open_stream(manifest.to_string(), vec![])
            .await
            .map(|_| ())
    });
    match r {
        Err(StreamError::Executor(RemoteError::Rpc { status, .. })) => {
            (status.code(), status.message().to_string())
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every attempt, with a part of the message it must be refused with.
fn attacks(s: &Setup) -> Vec<(&'static str, Value, &'static str)> {
    let evil = s.evil_dir();
    let marker = s.marker.display().to_string();
    vec![
        (
            "constructor of an arbitrary importable class",
            json!({"module": "subprocess", "class": "Popen",
                   "init": {"args": ["sh", "-c", format!("echo ran > {marker}")]}}),
            "`subprocess:Popen` is not a Python node this executor serves (it serves: \
             upper=my_nodes:Upper, sleepy=my_nodes:Sleepy)",
        ),
        (
            "a function callable with keyword arguments",
            json!({"module": "os", "class": "system", "init": {"command": format!("echo ran > {marker}")}}),
            "`os:system` is not a Python node this executor serves",
        ),
        (
            "an executable of the client's choice",
            json!({"module": "my_nodes", "class": "Upper", "runtime": "process",
                   "python": format!("{evil}/python")}),
            "`python` is chosen by the executor, not the client",
        ),
        (
            "a module from a directory of the client's choice",
            json!({"module": "evil", "class": "Upper", "python_path": [evil]}),
            "`python_path` is chosen by the executor, not the client",
        ),
        (
            "a served module's name shadowed from another directory",
            json!({"module": "my_nodes", "class": "Upper", "python_path": [evil]}),
            "`python_path` is chosen by the executor, not the client",
        ),
        (
            "inline source",
            json!({"class": "Upper",
                   "source": format!("import os\nos.system('echo ran > {marker}')\nclass Upper:\n    def process(self, x):\n        return x\n")}),
            "inline Python source is refused",
        ),
        (
            "another host than the executor's",
            json!({"module": "my_nodes", "class": "Upper", "runtime": "cpython"}),
            "this executor runs Python nodes in the process host",
        ),
    ]
}

#[test]
fn no_client_chosen_code_runs_through_either_call_with_or_without_a_token() {
    let s = Setup::new();
    let token_file = write(s.path(), "token", "s3cret\n");
    let open = s.strict(&[]);
    let tokened = s.strict(&["--token-file", token_file.to_str().unwrap()]);
    for (what, params, why) in attacks(&s) {
        let m = manifest(params);
        for (executor, token) in [(&open, None), (&tokened, Some("s3cret"))] {
            for (call, (code, message)) in [
                ("ExecutePipeline", execute_refusal(executor, token, &m)),
                ("StreamPipeline", stream_refusal(executor, token, &m)),
            ] {
                assert_eq!(code, Code::InvalidArgument, "{what} via {call}: {message}");
                assert!(
                    message.starts_with("invalid manifest:\nnodes[0].params.")
                        && message.contains(why),
                    "{what} via {call}: {message}"
                );
            }
        }
        s.assert_not_run(what);
    }
    // Still serving, and served classes run (the client's `init` reaches them).
    let e = endpoint(&open, None);
    let out = block_on(async {
        let mut c = ExecutorClient::connect(&e, Duration::from_secs(5)).await?;
        c.execute(
            manifest(json!({"module": "my_nodes", "class": "Upper", "init": {"suffix": "!"}})),
            &[Data::text("hi")],
        )
        .await
    })
    .unwrap();
    assert_eq!(out.error, None);
    assert_eq!(
        out.outputs,
        vec![("n".to_string(), vec![Data::text("HI!")])]
    );
}

/// The same payloads do run where client code is allowed: the marker checks above can
/// fail.
#[test]
fn with_allow_python_source_the_same_payloads_do_run() {
    let s = Setup::new();
    let open = Executor::start(s.path(), "open", &s.caps, &["--allow-python-source"]);
    let (_, params, _) = attacks(&s).swap_remove(3); // a module from the client's directory
    let e = endpoint(&open, None);
    let _ = block_on(async {
        let mut c = ExecutorClient::connect(&e, Duration::from_secs(5)).await?;
        c.execute(manifest(params), &[Data::Int(1)]).await
    });
    assert!(s.marker.exists(), "the allowed executor ran the module");
}

#[test]
fn an_executor_serving_no_python_has_no_python_node_type() {
    let s = Setup::new();
    let plain = Executor::start(s.path(), "plain", &s.caps, &[]);
    let m = manifest(json!({"module": "my_nodes", "class": "Upper"}));
    let (code, message) = execute_refusal(&plain, None, &m);
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("unknown node type `PythonNode`"),
        "{message}"
    );
    s.assert_not_run("no python at all");
}

#[test]
fn capabilities_list_what_an_executor_serves() {
    let s = Setup::new();
    let strict = s.strict(&[]);
    let o = std::process::Command::new(BIN)
        .args(["capabilities", "--executor", &strict.addr, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["python_nodes"],
        json!(["upper=my_nodes:Upper", "sleepy=my_nodes:Sleepy"])
    );
    assert_eq!(v["python_source_allowed"], json!(false));
    assert!(v["node_types"]
        .as_array()
        .unwrap()
        .contains(&json!("PythonNode")));
    let text = std::process::Command::new(BIN)
        .args(["capabilities", "--executor", &strict.addr])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("python:    upper=my_nodes:Upper, sleepy=my_nodes:Sleepy\n"),
        "{text}"
    );
}

#[test]
fn bad_served_python_flags_are_refused_at_start() {
    let s = Setup::new();
    for (args, message) in [
        (
            vec!["--python-node", "upper=my_nodes"],
            "error: --python-node `upper=my_nodes` is not NAME=module:Class (no `:` between \
             module and class)",
        ),
        (
            vec!["--python-node", "a=m:A", "--python-node", "a=m:B"],
            "error: --python-node: the name `a` is given twice",
        ),
        (
            vec!["--python-runtime", "auto"],
            "error: --python-runtime `auto` is not a Python host of this build",
        ),
        (
            vec!["--python-path", "does-not-exist"],
            "error: --python-path does-not-exist: not a directory",
        ),
    ] {
        let o = std::process::Command::new(BIN)
            .current_dir(s.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// Served nodes run in worker processes per request: a client whose node sleeps does
/// not hold up another client's node.
#[test]
fn one_clients_slow_node_does_not_stall_another() {
    let s = Setup::new();
    let strict = s.strict(&[]);
    let e = endpoint(&strict, None);
    let slow = {
        let e = e.clone();
        std::thread::spawn(move || {
            block_on(async {
                let mut c = ExecutorClient::connect(&e, Duration::from_secs(5)).await?;
                c.execute(
                    manifest(
                        json!({"module": "my_nodes", "class": "Sleepy", "init": {"seconds": 8}}),
                    ),
                    &[Data::Int(1)],
                )
                .await
            })
        })
    };
    // Let the slow call get into its sleep.
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let quick = block_on(async {
        let mut c = ExecutorClient::connect(&e, Duration::from_secs(5)).await?;
        c.execute(
            manifest(json!({"module": "my_nodes", "class": "Upper"})),
            &[Data::text("a")],
        )
        .await
    })
    .unwrap();
    let took = started.elapsed();
    assert_eq!(quick.outputs[0].1, vec![Data::text("A")]);
    assert!(
        !slow.is_finished(),
        "the slow call was still sleeping while the quick one ran"
    );
    assert!(
        took < Duration::from_secs(6),
        "the quick call waited {took:?}"
    );
    let slow = slow.join().unwrap().unwrap();
    assert_eq!(slow.outputs[0].1, vec![Data::Int(1)]);
}

/// One nesting limit everywhere: an item nested deeper than the executor would decode
/// fails as that item's error on the client, not as a broken executor (no retry, no
/// failover, no fallback), and the items before it are delivered.
#[test]
fn a_too_deep_item_is_that_items_error_not_a_transport_failure() {
    let s = Setup::new();
    let gpu = Executor::start(
        s.path(),
        "gpu",
        &support::repo("examples/remote/gpu-capabilities.json"),
        &[],
    );
    // Each single-input `Zip` wraps its item in a map: 40 of them nest it 40 deep,
    // deeper than the executor's protobuf decoder goes.
    let mut nodes: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("z{i}"), "node_type": "Zip"}))
        .collect();
    nodes.push(json!({"id": "far", "node_type": "PassThrough",
                      "capabilities": {"gpu": {"type": "cuda"}}}));
    let connections: Vec<Value> = (0..40)
        .map(|i| {
            let to = if i == 39 {
                "far".to_string()
            } else {
                format!("z{}", i + 1)
            };
            json!({"from": format!("z{i}"), "to": to})
        })
        .collect();
    let m = json!({
        "version": "v1",
        "metadata": {"name": "deep"},
        "nodes": nodes,
        "connections": connections,
    });
    let manifest = write(s.path(), "deep.json", &m.to_string());
    let input = write(s.path(), "in.jsonl", "1\n");
    let o = std::process::Command::new(BIN)
        .current_dir(s.path())
        .env(
            "REMOTEMEDIA_CAPABILITIES",
            support::repo("examples/remote/cpu-capabilities.json"),
        )
        .env_remove("REMOTEMEDIA_EXECUTORS")
        .arg("run")
        .arg(&manifest)
        .arg("--input")
        .arg(&input)
        .args(["--executor", &gpu.flag()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "", "{stderr}");
    assert!(
        stderr.contains("value is nested deeper than 32 levels"),
        "{stderr}"
    );
    for word in ["failover", "fell back", "attempt"] {
        assert!(!stderr.contains(word), "{word}: {stderr}");
    }
}

/// The same limit holds for JSON input: a line nested deeper is refused by name.
#[test]
fn json_input_nested_deeper_than_the_limit_is_refused() {
    let s = Setup::new();
    let manifest = write(
        s.path(),
        "pass.yaml",
        "version: v1\nmetadata: { name: p }\nnodes: [{ id: p, node_type: PassThrough }]\n",
    );
    let deep = format!("{}1{}", "[".repeat(33), "]".repeat(33));
    let input = write(s.path(), "in.jsonl", &format!("1\n{deep}\n"));
    let o = std::process::Command::new(BIN)
        .arg("run")
        .arg(&manifest)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1\n");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("nested deeper than 32 levels"), "{stderr}");
}

/// A one-node manifest of `node_type` with `params`.
fn single(node_type: &str, params: Value) -> String {
    json!({
        "version": "v1",
        "metadata": {"name": "attack"},
        "nodes": [{"id": "n", "node_type": node_type, "params": params}],
        "connections": [],
    })
    .to_string()
}

#[test]
fn clients_cannot_reach_the_executors_files_or_start_unbounded_sources() {
    let s = Setup::new();
    let plain = Executor::start(s.path(), "plain", &s.caps, &[]);
    let victim = s.path().join("caps.json");
    let before = std::fs::read(&victim).unwrap();
    let written = s.path().join("written.wav");
    let attacks = [
        // Overwrite a file of the executor's with a WAV.
        ("MediaWriter", json!({"path": victim.display().to_string()})),
        (
            "MediaWriterNode",
            json!({"path": written.display().to_string()}),
        ),
        // Read one of its files.
        ("MediaReader", json!({"path": victim.display().to_string()})),
        ("MediaReaderNode", json!({"path": "/etc/passwd"})),
        // A stream of audio no request bounds (hours of it answered in one reply).
        ("ToneGenerator", json!({"duration_ms": 1.0e12})),
    ];
    for (node_type, params) in attacks {
        let m = single(node_type, params);
        for (call, (code, message)) in [
            ("ExecutePipeline", execute_refusal(&plain, None, &m)),
            ("StreamPipeline", stream_refusal(&plain, None, &m)),
        ] {
            assert_eq!(
                code,
                Code::InvalidArgument,
                "{node_type} via {call}: {message}"
            );
            assert!(
                message.contains(&format!("unknown node type `{node_type}`")),
                "{node_type} via {call}: {message}"
            );
        }
    }
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        before,
        "the file was not touched"
    );
    assert!(!written.exists(), "no file was written");
    // The other audio nodes are served.
    let listed = std::process::Command::new(BIN)
        .args(["capabilities", "--json", "--executor", &plain.addr])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("AudioResample") && text.contains("VoiceActivity"),
        "{text}"
    );
    assert!(
        !text.contains("MediaWriter") && !text.contains("ToneGenerator"),
        "{text}"
    );
}

#[test]
fn a_client_chosen_sample_rate_cannot_make_a_huge_filter() {
    // 4 GHz audio into a resampler would build a filter of 1.6 GB (and 768 kHz to 1 Hz
    // one of 4.9 GB): the resampler refuses such rates, as this item's error.
    let s = Setup::new();
    let plain = Executor::start(s.path(), "plain", &s.caps, &[]);
    let e = endpoint(&plain, None);
    let m = single("AudioResample", json!({"target_rate": 16000}));
    let audio = Data::from(remotemedia_core::AudioBuffer::new(
        vec![0.0f32; 64],
        4_000_000_000,
        1,
    ));
    let start = Instant::now();
    let outcome = block_on(async {
        let mut c = ExecutorClient::connect(&e, Duration::from_secs(5)).await?;
        c.execute(m, &[audio]).await
    })
    .unwrap();
    let error = outcome.error.expect("the run fails");
    assert!(
        error
            .message
            .contains("cannot resample 4000000000 Hz to 16000 Hz"),
        "{}",
        error.message
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}
