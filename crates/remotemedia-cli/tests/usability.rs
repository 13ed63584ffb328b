//! Mistakes a new user makes, each answered instead of passed over in silence: piped
//! input without `--input`, inline Python that does not compile, a bad
//! `REMOTEMEDIA_PYTHON_RUNTIME`, relative paths in a manifest run from elsewhere,
//! `-q`, and the exit codes the README documents.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn rm() -> Command {
    Command::cargo_bin("remotemedia").unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

const PASS: &str =
    "version: v1\nmetadata: {name: t}\nnodes:\n  - {id: a, node_type: PassThrough}\n";

/// A manifest of one inline `PythonNode` `py` whose class `Node` has `def_line`.
fn python_manifest(def_line: &str) -> String {
    format!(
        "version: v1\nmetadata: {{name: t}}\nnodes:\n  - {{id: py, node_type: PythonNode, params: \
         {{class: Node, source: \"class Node:\\n  {def_line}\\n    return x\\n\"}}}}\n"
    )
}

const STDIN_HINT: &str = "without --input no items are read from it; give `--input -`";

#[test]
fn piped_stdin_without_input_is_pointed_out_and_q_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(&dir, "m.yaml", PASS);
    rm().arg("run")
        .arg(&m)
        .write_stdin("1\n2\n3\n")
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains(STDIN_HINT));
    rm().args(["-q", "run"])
        .arg(&m)
        .write_stdin("1\n2\n3\n")
        .assert()
        .success()
        .stderr("");
    // With --input - the same input is read.
    rm().arg("run")
        .arg(&m)
        .args(["--input", "-"])
        .write_stdin("1\n2\n3\n")
        .assert()
        .success()
        .stdout("1\n2\n3\n")
        .stderr(predicate::str::contains(STDIN_HINT).not());
    // Nothing on stdin (a terminal, /dev/null): nothing to say.
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("remotemedia"))
        .arg("run")
        .arg(&m)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn q_silences_skipped_item_warnings_but_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        &dir,
        "m.yaml",
        "version: v1\nmetadata: {name: t}\nnodes:\n  - {id: c, node_type: Calculator, params: \
         {operation: divide, operand: 0}, on_error: skip}\n",
    );
    rm().args(["run"])
        .arg(&m)
        .args(["--input", "-"])
        .write_stdin("1\n")
        .assert()
        .success()
        .stderr(predicate::str::contains("warning: skipped item"));
    rm().args(["-q", "run"])
        .arg(&m)
        .args(["--input", "-"])
        .write_stdin("1\n")
        .assert()
        .success()
        .stderr("");
    rm().args(["-q", "validate"])
        .arg(write(&dir, "bad.yaml", "version: v1\n"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing"));
}

#[cfg(feature = "cpython")]
#[test]
fn validate_compiles_inline_python_source() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(&dir, "py.yaml", &python_manifest("def process(self, x)"));
    rm().arg("validate")
        .arg(&m)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "nodes[0].params.source: node `py` (PythonNode): SyntaxError: expected ':' (line 2",
        ));
    let good = write(&dir, "good.yaml", &python_manifest("def process(self, x):"));
    rm().arg("validate").arg(&good).assert().success();
}

#[test]
fn a_bad_python_runtime_variable_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(&dir, "py.yaml", &python_manifest("def process(self, x):"));
    for command in ["validate", "run", "plan"] {
        rm().arg(command)
            .arg(&m)
            .env("REMOTEMEDIA_PYTHON_RUNTIME", "jython")
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "REMOTEMEDIA_PYTHON_RUNTIME=\"jython\" (the host of nodes that do not set \
                 `runtime`) is not a Python runtime; expected one of auto, cpython, process, \
                 rustpython",
            ));
    }
}

#[test]
fn python_path_is_relative_to_the_manifest_not_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "pipelines/lib/doubler.py",
        "class Doubler:\n    def process(self, x):\n        return x * 2\n",
    );
    let m = write(
        &dir,
        "pipelines/m.yaml",
        "version: v1\nmetadata: {name: t}\nnodes:\n  - {id: d, node_type: PythonNode, params: \
         {module: doubler, class: Doubler, python_path: [lib], runtime: process}}\n",
    );
    let elsewhere = tempfile::tempdir().unwrap();
    rm().current_dir(elsewhere.path())
        .arg("run")
        .arg(&m)
        .args(["--input", "-"])
        .write_stdin("21\n")
        .assert()
        .success()
        .stdout("42\n");
}

#[test]
fn exit_codes_are_the_documented_ones() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    assert!(
        readme.contains("**2** the pipeline cannot run: no place for a node (`run`, `plan`)"),
        "the README's exit codes changed; update this test with them"
    );
    let dir = tempfile::tempdir().unwrap();
    // 1: invalid manifest, usage.
    rm().arg("validate")
        .arg(write(&dir, "bad.yaml", "nodes: 3\n"))
        .assert()
        .code(1);
    rm().args(["run", "--no-such-flag"]).assert().code(1);
    // 2: no place for a node, in `plan` as in `run`.
    let gpu = write(
        &dir,
        "gpu.yaml",
        "version: v1\nmetadata: {name: t}\nnodes:\n  - {id: a, node_type: PassThrough, \
         capabilities: {gpu: {type: cuda, min_memory_gb: 4096}}}\n",
    );
    rm().arg("plan").arg(&gpu).assert().code(2);
    rm().arg("run").arg(&gpu).assert().code(2);
    // 2: failed at run time.
    let fail = write(
        &dir,
        "div.yaml",
        "version: v1\nmetadata: {name: t}\nnodes:\n  - {id: c, node_type: Calculator, params: \
         {operation: divide, operand: 0}}\n",
    );
    rm().arg("run")
        .arg(&fail)
        .args(["--input", "-"])
        .write_stdin("1\n")
        .assert()
        .code(2);
    // 0: success.
    rm().arg("validate")
        .arg(write(&dir, "ok.yaml", PASS))
        .assert()
        .success();
}

#[test]
fn plan_shows_the_stages_without_building_any_node() {
    let dir = tempfile::tempdir().unwrap();
    // The Python class would fail if it were built: `plan` must not build it.
    let m = write(
        &dir,
        "m.yaml",
        "version: v1\nmetadata: {name: t}\nnodes:\n\
         \x20 - {id: tone, node_type: ToneGenerator, params: {duration_ms: 100}}\n\
         \x20 - {id: gain, node_type: AudioGain, params: {db: -6}}\n\
         \x20 - {id: py, node_type: PythonNode, params: {class: P, runtime: process, \
         source: \"class P:\\n  def __init__(self):\\n    raise RuntimeError('built')\\n\"}}\n\
         \x20 - {id: level, node_type: AudioLevel, timeout_ms: 100}\n\
         \x20 - {id: out, node_type: PassThrough}\n\
         connections: [{from: tone, to: gain}, {from: gain, to: py}, {from: py, to: level}, \
         {from: level, to: out}]\n",
    );
    rm().arg("plan")
        .arg(&m)
        .assert()
        .success()
        .stdout(predicate::str::ends_with(
            "stages:\n\
         \x20 1. tone → gain  source, fused into one loop, on the compute threads\n\
         \x20 2. py           on a thread of its own\n\
         \x20 3. level        on a thread of its own\n\
         \x20 4. out          on the compute threads\n",
        ));
    let out = rm().args(["plan", "--json"]).arg(&m).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs: Vec<(&str, usize)> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["runs"].as_str().unwrap(),
                s["nodes"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("inline", 2),
            ("dedicated", 1),
            ("dedicated", 1),
            ("inline", 1)
        ]
    );
}
