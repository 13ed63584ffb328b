//! `PythonNode` from the command line: the examples, every host compiled in, and the
//! failures (a Python exception is exit 2 with a structured error on stderr).

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

mod support;
use support::python_node_manifest;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn rm() -> Command {
    let mut c = Command::cargo_bin("remotemedia").unwrap();
    c.env_remove("REMOTEMEDIA_PYTHON_RUNTIME");
    c
}

/// The hosts of this build that run without anything beyond the machine's Python.
fn runtimes() -> Vec<&'static str> {
    let mut r = vec!["process"];
    if cfg!(feature = "cpython") {
        r.push("cpython");
    }
    if cfg!(feature = "rustpython") {
        r.push("rustpython");
    }
    r
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn inline_source_example_runs_in_every_host() {
    let expected: String = (2..=11)
        .scan(0, |total, v| {
            *total += v;
            Some(format!("{{\"value\":{v},\"total\":{total}}}\n"))
        })
        .collect();
    for rt in runtimes() {
        rm().env("REMOTEMEDIA_PYTHON_RUNTIME", rt)
            .arg("run")
            .arg(repo("examples/python_node.yaml"))
            .arg("--input")
            .arg(repo("examples/numbers.jsonl"))
            .assert()
            .success()
            .stdout(expected.clone());
    }
}

#[test]
fn module_example_runs_with_generators_and_flush() {
    for rt in runtimes() {
        rm().current_dir(repo("."))
            .env("REMOTEMEDIA_PYTHON_RUNTIME", rt)
            .args(["-v", "run", "examples/python_module.yaml"])
            .args(["--input", "examples/sentences.jsonl"])
            .assert()
            .success()
            .stdout(
                "[\"the\",1]\n[\"quick\",1]\n[\"brown\",1]\n[\"fox\",1]\n[\"fox\",2]\n\
                 [\"the\",2]\n[\"dog\",1]\n\
                 {\"brown\":1,\"dog\":1,\"fox\":2,\"quick\":1,\"the\":2}\n",
            )
            // `logging` goes to the runtime's tracing output at the matching level.
            .stderr(predicate::str::contains("counting words"));
    }
}

#[test]
fn examples_validate() {
    for ex in ["python_node.yaml", "python_module.yaml"] {
        rm().arg("validate")
            .arg(repo(&format!("examples/{ex}")))
            .assert()
            .success();
    }
}

#[test]
fn python_exception_is_exit_2_with_type_message_and_traceback() {
    let dir = tempfile::tempdir().unwrap();
    let source = "class Node:\n    def process(self, x):\n        print('got', x)\n        if x == 3:\n            raise ValueError('three is not allowed')\n        return x * 10\n";
    for rt in runtimes() {
        let m = python_node_manifest(dir.path(), rt, source);
        rm().arg("run")
            .arg(&m)
            .args(["--input", "-"])
            .write_stdin("1\n2\n3\n4\n")
            .assert()
            .code(2)
            .stdout("10\n20\n")
            .stderr(predicate::str::contains(
                "error: node `py` (PythonNode) failed in process: python: ValueError: three is not allowed; input: 3",
            ))
            .stderr(predicate::str::contains("Traceback (most recent call last)"))
            .stderr(predicate::str::contains("line 5, in process"))
            // `print` is captured to stderr with the node id.
            .stderr(predicate::str::contains("[py] got 3"));
    }
}

#[test]
fn bad_source_and_missing_class_are_exit_2_naming_the_node() {
    let dir = tempfile::tempdir().unwrap();
    for rt in runtimes() {
        let m = python_node_manifest(
            dir.path(),
            rt,
            "class Node:\n    def process(self, x)\n        return x\n",
        );
        rm().arg("run")
            .arg(&m)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("node `py`"))
            .stderr(predicate::str::contains("syntax error in `source`"));
        let m = python_node_manifest(
            dir.path(),
            rt,
            "class Other:\n    def process(self, x):\n        return x\n",
        );
        rm().arg("run")
            .arg(&m)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("node `py`"))
            .stderr(predicate::str::contains(
                "no class `Node` in `source`; it defines `Other`",
            ));
    }
}

#[test]
fn invalid_params_are_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        &dir,
        "bad.yaml",
        "version: v1\nmetadata: { name: bad }\nnodes:\n  - { id: py, node_type: PythonNode, params: { class: A, module: m, source: 'x', runtime: jython } }\nconnections: []\n",
    );
    rm().arg("validate")
        .arg(&m)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "give either `module` or `source`, not both",
        ))
        .stderr(predicate::str::contains("jython"));
}

#[test]
fn nodes_info_documents_python_node() {
    rm().args(["nodes", "info", "PythonNode"])
        .assert()
        .success()
        .stdout(predicate::str::contains("runtime"))
        .stdout(predicate::str::contains("rustpython"));
}

#[test]
fn auto_runs_in_the_first_host_compiled_in() {
    // A build without the cpython feature (no libpython linked) runs `auto` nodes in
    // RustPython; the default build in CPython.
    let want = if cfg!(feature = "cpython") {
        "cpython"
    } else if cfg!(feature = "rustpython") {
        "rustpython"
    } else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = "import sys\nclass Node:\n    def process(self, x):\n        return sys.implementation.name\n";
    rm().arg("run")
        .arg(python_node_manifest(dir.path(), "auto", src))
        .args(["--input", "-"])
        .write_stdin("1\n")
        .assert()
        .success()
        .stdout(format!("\"{want}\"\n"));
}

#[test]
fn print_in_a_chain_of_python_nodes_names_each_node() {
    // Consecutive nodes of one host may run as one group; output stays attributed.
    let dir = tempfile::tempdir().unwrap();
    for rt in runtimes() {
        let node = |id: &str, class: &str, source: &str| {
            serde_json::json!({"id": id, "node_type": "PythonNode",
                "params": {"class": class, "runtime": rt, "source": source}})
        };
        let m = serde_json::json!({
            "version": "v1",
            "metadata": {"name": "prints"},
            "nodes": [
                node("first", "A", "class A:\n    def process(self, x):\n        print('a got', x, end='')\n        print('!')\n        return x + 1\n"),
                node("second", "B", "class B:\n    def process(self, x):\n        print('b got', x)\n        return x * 2\n"),
            ],
            "connections": [{"from": "first", "to": "second"}],
        });
        let path = write(&dir, &format!("prints-{rt}.json"), &m.to_string());
        let out = rm()
            .arg("run")
            .arg(&path)
            .args(["--input", "-"])
            .write_stdin("1\n2\n")
            .assert()
            .success()
            .stdout("4\n6\n");
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        for line in [
            "[first] a got 1!\n",
            "[first] a got 2!\n",
            "[second] b got 2\n",
            "[second] b got 3\n",
        ] {
            assert!(
                stderr.contains(line),
                "[{rt}] {line:?} missing from {stderr:?}"
            );
        }
    }
}

/// `remotemedia run` of a one-`PythonNode` manifest (`source`, host `rt`) over the one
/// JSON Lines item `input`.
fn run_one(dir: &std::path::Path, rt: &str, source: &str, input: &str) -> std::process::Output {
    let m = python_node_manifest(dir, rt, source);
    rm().arg("run")
        .arg(&m)
        .arg("--input")
        .arg("-")
        .write_stdin(format!("{input}\n"))
        .output()
        .unwrap()
}

#[test]
fn tuples_stay_tuples_through_the_core_in_every_host() {
    // A native node between the two keeps them from sharing Python objects: the tuple
    // crosses into the core and back out, and is still a tuple (nested ones too).
    let dir = tempfile::tempdir().unwrap();
    for rt in runtimes() {
        let node = |id: &str, source: &str| {
            serde_json::json!({"id": id, "node_type": "PythonNode",
                "params": {"class": "N", "runtime": rt, "source": source}})
        };
        let m = serde_json::json!({
            "version": "v1",
            "metadata": {"name": "tuples"},
            "nodes": [
                node("make", "class N:\n    def process(self, x):\n        return (x, [x, (x,)])\n"),
                {"id": "core", "node_type": "PassThrough"},
                node("look", "class N:\n    def process(self, t):\n        return [type(t).__name__, type(t[1]).__name__, type(t[1][1]).__name__]\n"),
            ],
            "connections": [{"from": "make", "to": "core"}, {"from": "core", "to": "look"}],
        });
        let path = write(&dir, &format!("tuples-{rt}.json"), &m.to_string());
        rm().arg("run")
            .arg(&path)
            .args(["--input", "-"])
            .write_stdin("1\n")
            .assert()
            .success()
            .stdout("[\"tuple\",\"list\",\"tuple\"]\n");
    }
}

#[test]
fn audio_is_an_audio_buffer_in_every_host() {
    // One shape everywhere: the node sees an `AudioBuffer` (numpy samples in the CPython
    // hosts when numpy is there, a float32 memoryview otherwise), halves it and returns a
    // new buffer with the same time; the time and the samples survive the round trip.
    let source = r#"
class Node:
    def process(self, data):
        cls = type(data)
        assert cls.__name__ == "AudioBuffer" and cls.__module__ == "remotemedia", cls
        s = data.samples
        assert s.readonly if isinstance(s, memoryview) else not s.flags.writeable
        halved = [v / 2 for v in (s.tolist() if isinstance(s, memoryview) else s.reshape(-1).tolist())]
        out = data.with_samples(halved)
        return [data.pts_us, data.sample_rate, data.channels, data.frames, out]
"#;
    // Two stereo frames, f32 little-endian in base64: 0.5, -1.0 | 1.0, 0.25, and halved.
    let input = r#"{"$audio": {"sample_rate": 8000, "channels": 2, "pts_us": 40000, "samples": "AAAAPwAAgL8AAIA/AACAPg=="}}"#;
    let halved = "AACAPgAAAL8AAAA/AAAAPg==";
    let dir = tempfile::tempdir().unwrap();
    for rt in runtimes() {
        let out = run_one(dir.path(), rt, source, input);
        assert!(
            out.status.success(),
            "{rt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line[0], 40000, "{rt}: {line}");
        assert_eq!(
            (&line[1], &line[2], &line[3]),
            (&8000.into(), &2.into(), &2.into()),
            "{rt}: {line}"
        );
        let audio = &line[4]["$audio"];
        assert_eq!(audio["pts_us"], 40000, "{rt}: {line}");
        assert_eq!(audio["channels"], 2, "{rt}: {line}");
        assert_eq!(audio["samples"], halved, "{rt}: {line}");
    }
}

#[test]
fn a_bad_audio_buffer_returned_by_a_node_is_a_node_error_in_every_host() {
    let source = r#"
class Node:
    def process(self, data):
        data.channels = 3
        return data
"#;
    let input = r#"{"$audio": {"sample_rate": 8000, "channels": 1, "samples": "AAAAPwAAAD8="}}"#;
    let dir = tempfile::tempdir().unwrap();
    for rt in runtimes() {
        let out = run_one(dir.path(), rt, source, input);
        assert_eq!(out.status.code(), Some(2), "{rt}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("2 interleaved samples cannot be split into 3 channels"),
            "{rt}: {stderr}"
        );
    }
}
