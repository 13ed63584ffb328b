//! The `remotemedia` command line: every subcommand, exit code and the bad-input cases.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn rm() -> Command {
    Command::cargo_bin("remotemedia").unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `examples/{manifest}` over `examples/numbers.jsonl` (1 to 10).
fn run_example_over_numbers(manifest: &str) -> assert_cmd::assert::Assert {
    rm().arg("run")
        .arg(repo(&format!("examples/{manifest}")))
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"))
        .assert()
        .success()
}

#[test]
fn run_calculator_example() {
    run_example_over_numbers("calculator.yaml").stdout("2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n");
}

#[test]
fn run_ten_node_chain_example() {
    run_example_over_numbers("chain10.json").stdout("6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n");
}

#[test]
fn run_fan_out_fan_in_example() {
    let out = rm()
        .arg("run")
        .arg(repo("examples/fan_out_fan_in.yaml"))
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(lines[2], r#"{"double":6,"square":9}"#);
}

#[test]
fn run_reads_stdin_and_writes_files_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let metrics = dir.path().join("metrics.json");
    rm().arg("run")
        .arg(repo("examples/calculator.yaml"))
        .args(["--input", "-", "--output"])
        .arg(&out)
        .arg("--metrics")
        .arg(&metrics)
        .write_stdin("1\n2.5\n\n3\n")
        .assert()
        .success()
        .stdout("");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "2\n3.5\n4\n");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(m["metrics"]["items_in"], 3);
    assert_eq!(m["metrics"]["items_out"], 3);
    let add = m["metrics"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "add_one")
        .unwrap();
    assert_eq!(add["items_in"], 3);
    assert!(add["latency_p99_us"].as_f64().unwrap() >= add["latency_p50_us"].as_f64().unwrap());
    assert!(m["metrics"]["peak_rss_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn run_without_input_gets_no_items() {
    rm().arg("run")
        .arg(repo("examples/calculator.yaml"))
        .assert()
        .success()
        .stdout("");
}

#[test]
fn several_sinks_label_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        &dir,
        "two.yaml",
        r#"
version: v1
metadata: { name: two }
nodes:
  - { id: src, node_type: PassThrough }
  - { id: big, node_type: Filter, params: { gt: 1 } }
  - { id: small, node_type: Filter, params: { lte: 1 } }
connections: [ {from: src, to: big}, {from: src, to: small} ]
"#,
    );
    let out = rm()
        .arg("run")
        .arg(&m)
        .args(["--input", "-"])
        .write_stdin("1\n2\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![r#"{"sink":"big","item":2}"#, r#"{"sink":"small","item":1}"#]
    );
}

#[test]
fn malformed_input_line_names_the_line_and_keeps_earlier_items() {
    rm().arg("run")
        .arg(repo("examples/calculator.yaml"))
        .args(["--input", "-"])
        .write_stdin("1\n2\n{oops\n4\n")
        .assert()
        .code(1)
        .stdout("2\n3\n")
        .stderr(predicate::str::contains(
            "error: input line 3: not valid JSON (key must be a string at column 2): {oops",
        ));
}

#[test]
fn missing_input_file_is_exit_1() {
    rm().arg("run")
        .arg(repo("examples/calculator.yaml"))
        .args(["--input", "/nonexistent/items.jsonl"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot open input /nonexistent/items.jsonl",
        ));
}

#[test]
fn runtime_failure_is_exit_2_with_structured_error_and_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        &dir,
        "div.yaml",
        r#"
version: v1
metadata: { name: div }
nodes:
  - { id: div, node_type: Calculator, params: { operation: divide, operand: 2 } }
  - { id: check, node_type: Calculator }
connections: [ {from: div, to: check} ]
"#,
    );
    rm().arg("run")
        .arg(&m)
        .args(["--input", "-"])
        .write_stdin("4\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "error: node `check` (Calculator) failed in process: config: received a number but this Calculator has no `operation`/`operand` params",
        ))
        .stderr(predicate::str::contains("; input: 2.0"));
}

#[test]
fn invalid_manifest_on_run_is_exit_1() {
    rm().arg("run")
        .arg(repo("examples/broken.yaml"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "unknown node type `Calculater`; did you mean `Calculator`?",
        ));
}

#[test]
fn validate_lists_every_problem() {
    rm().arg("validate")
        .arg(repo("examples/broken.yaml"))
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "version: unsupported version `v2`",
        ))
        .stderr(predicate::str::contains(
            "nodes[1].params.operation: node `b` (Calculator): invalid value \"sqrt\"",
        ))
        .stderr(predicate::str::contains(
            "nodes[1].host: node `b`: invalid host `no-port`",
        ))
        .stderr(predicate::str::contains(
            "nodes[2].id: duplicate node id `b`",
        ))
        .stderr(predicate::str::contains(
            "connections[2].to: connection `b -> ghost`",
        ))
        .stderr(predicate::str::contains("6 problems found"));
}

#[test]
fn validate_json_output() {
    let out = rm()
        .args(["validate", "--json"])
        .arg(repo("examples/broken.yaml"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"].as_array().unwrap().len(), 6);
    assert_eq!(v["errors"][0]["path"], "version");

    let out = rm()
        .args(["validate", "--json"])
        .arg(repo("examples/calculator.yaml"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, serde_json::json!({"valid": true, "errors": []}));
}

#[test]
fn validate_valid_examples() {
    for ex in ["calculator.yaml", "chain10.json", "fan_out_fan_in.yaml"] {
        rm().arg("validate")
            .arg(repo(&format!("examples/{ex}")))
            .assert()
            .success()
            .stdout(predicate::str::contains("valid"));
    }
}

#[test]
fn validate_unreadable_file() {
    rm().args(["validate", "/nonexistent.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("$: cannot read /nonexistent.yaml"));
}

/// `nodes info --json` is what the params struct declares: its schema, and each
/// field's name, type, requiredness, choices, default and doc comment.
#[test]
fn nodes_info_json_is_what_the_params_struct_declares() {
    use remotemedia_core::node_type::params_schema;
    use remotemedia_core::nodes::{CalculatorParams, FilterParams, ZipParams};
    for (node, schema) in [
        ("Calculator", params_schema::<CalculatorParams>()),
        ("Filter", params_schema::<FilterParams>()),
        ("Zip", params_schema::<ZipParams>()),
    ] {
        let out = rm()
            .args(["nodes", "info", node, "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params_schema"], schema, "{node}");
        let declared: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let shown: Vec<&str> = v["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(shown, declared, "{node}");
    }
    let out = rm()
        .args(["nodes", "info", "Calculator", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["params"][0],
        serde_json::json!({
            "name": "operation",
            "type": "string",
            "required": false,
            "choices": ["add", "subtract", "multiply", "divide", "power", "modulo"],
            "description": "Operation applied to numeric items (give with `operand`)."
        })
    );
    let zip = rm()
        .args(["nodes", "info", "Zip", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&zip.stdout).unwrap();
    assert_eq!(v["params"][0]["default"], "true");
    assert_eq!(v["params"][0]["type"], "boolean");
}

#[test]
fn validate_counts_in_words_and_accepts_empty_connections() {
    let dir = tempfile::tempdir().unwrap();
    for (name, connections) in [
        ("none.yaml", ""),
        ("null.yaml", "connections:\n"),
        ("empty.yaml", "connections: []\n"),
    ] {
        let m = write(
            &dir,
            name,
            &format!("version: v1\nmetadata: {{ name: x }}\nnodes:\n  - {{ id: a, node_type: PassThrough }}\n{connections}"),
        );
        rm().arg("validate")
            .arg(&m)
            .assert()
            .success()
            .stdout(format!("{}: valid (1 node, 0 connections)\n", m.display()));
    }
}

#[test]
fn nodes_info_takes_a_type_in_any_letter_case() {
    rm().args(["nodes", "info", "calculatornode"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("Calculator\n"));
    rm().args(["nodes", "info", "PYTHONNODE", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"node_type\": \"PythonNode\""));
}

#[test]
fn nodes_list_and_info() {
    rm().args(["nodes", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Calculator"))
        .stdout(predicate::str::contains("alias: PassThroughNode"));
    let out = rm()
        .args(["nodes", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let types: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["node_type"].as_str().unwrap())
        .collect();
    for t in ["Calculator", "Echo", "Filter", "PassThrough", "Zip"] {
        assert!(types.contains(&t), "{types:?}");
    }
    rm().args(["nodes", "info", "CalculatorNode"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "operation (a string; optional; one of add, subtract, multiply, divide, power, modulo)",
        ));
    let out = rm()
        .args(["nodes", "info", "Filter", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["node_type"], "Filter");
    rm().args(["nodes", "info", "Calculater"])
        .assert()
        .code(1)
        .stderr("error: unknown node type `Calculater`; did you mean `Calculator`?\n");
}

#[test]
fn usage_errors_are_exit_1() {
    rm().arg("frobnicate").assert().code(1);
    rm().arg("run").assert().code(1);
    rm().arg("--help").assert().success();
}
