//! Worker processes of the `process` host, seen from `remotemedia run`: they start
//! when there is work for them, and none outlives the run, not even one abandoned in
//! a call after a node-level timeout.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_remotemedia");

/// Records each instance's pid when initialized; item 2 hangs when `hang` is set.
const NODE: &str = "import os, time\nclass Node:\n    def __init__(self, dir, hang=False):\n        self.dir = dir\n        self.hang = hang\n    def initialize(self):\n        open(os.path.join(self.dir, 'pid-%d' % os.getpid()), 'w').close()\n    def process(self, x):\n        if self.hang and x == 2:\n            time.sleep(600)\n        return x\n";

fn manifest(dir: &Path, node: serde_json::Value) -> PathBuf {
    let m = serde_json::json!({
        "version": "v1",
        "metadata": {"name": "workers"},
        "nodes": [node],
        "connections": [],
    });
    let p = dir.join("m.json");
    std::fs::write(&p, m.to_string()).unwrap();
    p
}

fn params(dir: &Path, extra: serde_json::Value) -> serde_json::Value {
    let mut p = serde_json::json!({
        "class": "Node", "source": NODE, "runtime": "process",
        "init": {"dir": dir.to_string_lossy()},
    });
    for (k, v) in extra.as_object().unwrap() {
        if k == "hang" {
            p["init"]["hang"] = v.clone();
        } else {
            p[k] = v.clone();
        }
    }
    p
}

fn pids(dir: &Path) -> Vec<i32> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("pid-").map(|p| p.parse().unwrap())
        })
        .collect()
}

/// Runs the manifest over `input` lines; returns stdout and stderr. Output goes to
/// files, not pipes, so that a worker left running cannot hold the test up.
fn run(manifest: &Path, input: &str) -> (String, String) {
    let dir = manifest.parent().unwrap();
    let path = |name: &str| dir.join(name);
    std::fs::write(path("input.jsonl"), input).unwrap();
    let file = |name: &str| std::fs::File::create(path(name)).unwrap();
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(manifest)
        .arg("--input")
        .arg(path("input.jsonl"))
        .env_remove("REMOTEMEDIA_PYTHON_RUNTIME")
        .stdin(Stdio::null())
        .stdout(file("stdout"))
        .stderr(file("stderr"))
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the run did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |name: &str| std::fs::read_to_string(path(name)).unwrap();
    let stderr = read("stderr");
    assert!(status.success(), "{status:?}: {stderr}");
    (read("stdout"), stderr)
}

#[test]
fn a_single_item_starts_a_single_worker() {
    let dir = tempfile::tempdir().unwrap();
    let node = serde_json::json!({"id": "py", "node_type": "PythonNode",
        "params": params(dir.path(), serde_json::json!({"workers": 4}))});
    let (stdout, _) = run(&manifest(dir.path(), node), "7\n");
    assert_eq!(stdout, "7\n");
    assert_eq!(pids(dir.path()).len(), 1, "{:?}", pids(dir.path()));
    // A batch worth spreading starts the others, each with its own instance.
    let input: String = (0..256).map(|i| format!("{i}\n")).collect();
    let marks = tempfile::tempdir().unwrap();
    let node = serde_json::json!({"id": "py", "node_type": "PythonNode",
        "params": params(marks.path(), serde_json::json!({"workers": 4}))});
    let (stdout, _) = run(&manifest(dir.path(), node), &input);
    assert_eq!(stdout, input);
    assert_eq!(pids(marks.path()).len(), 4, "{:?}", pids(marks.path()));
}

#[test]
fn a_worker_abandoned_after_a_node_timeout_does_not_outlive_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let node = serde_json::json!({"id": "py", "node_type": "PythonNode",
        "timeout_ms": 500, "on_error": "skip",
        "params": params(dir.path(), serde_json::json!({"hang": true}))});
    let (stdout, stderr) = run(&manifest(dir.path(), node), "1\n2\n3\n");
    assert_eq!(stdout, "1\n3\n");
    assert!(stderr.contains("skipped item"), "{stderr}");
    // The instance hung on item 2 was replaced by a fresh one for item 3.
    let pids = pids(dir.path());
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        // Killed and reaped by the run: no process, not even a zombie, is left.
        let end = Instant::now() + Duration::from_secs(5);
        // SAFETY: kill(2) with signal 0 only checks that the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 {
            assert!(Instant::now() < end, "worker {pid} outlived the run");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
