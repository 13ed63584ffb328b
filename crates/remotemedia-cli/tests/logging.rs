//! What the runtime logs on stderr: `-v` shows the run, its plan and its stages,
//! `--log-format json` makes every line a JSON object with its spans' fields,
//! `REMOTEMEDIA_LOG=debug` shows each fusion decision, `-q` shows nothing for a good
//! run, and `serve -v` logs every connection, request, stream and session. Logs never
//! change stdout.
//!
//! Messages and key fields are pinned, not whole lines: the rest may grow.

use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

mod support;

use support::{repo, write, Executor};

/// The binary with no log settings from the environment.
fn rm() -> Command {
    let mut c = Command::cargo_bin("remotemedia").unwrap();
    c.env_remove("REMOTEMEDIA_LOG")
        .env_remove("REMOTEMEDIA_LOG_FORMAT")
        .env_remove("REMOTEMEDIA_EXECUTORS");
    c
}

/// `run examples/MANIFEST --input examples/numbers.jsonl` with `flags` first: exit
/// code, stdout, stderr.
fn run_example(manifest: &str, flags: &[&str], env: &[(&str, &str)]) -> (i32, Vec<u8>, String) {
    let mut c = rm();
    c.args(flags)
        .arg("run")
        .arg(repo(&format!("examples/{manifest}")))
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"));
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Every line of `stderr` as JSON; panics naming a line that is not.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The events whose message is `message`.
fn events<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["fields"]["message"] == message)
        .collect()
}

/// The field `field` of the span named `span` around `event`.
fn span_field<'a>(event: &'a Value, span: &str, field: &str) -> Option<&'a Value> {
    event["spans"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == span)
        .map(|s| &s[field])
        .filter(|v| !v.is_null())
}

#[test]
fn verbose_run_logs_the_run_its_plan_and_stages_and_leaves_stdout_alone() {
    let (code, plain, quiet_stderr) = run_example("calculator.yaml", &[], &[]);
    assert_eq!(code, 0, "{quiet_stderr}");
    let (code, verbose, stderr) = run_example("calculator.yaml", &["-v"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(verbose, plain, "-v changed stdout");
    assert_eq!(String::from_utf8_lossy(&plain).lines().count(), 10);
    // The plan: one stage of three fused nodes.
    let plan = stderr
        .lines()
        .find(|l| l.contains("plan built"))
        .unwrap_or_else(|| panic!("no plan in {stderr}"));
    assert!(plan.contains("pipeline=calculator"), "{plan}");
    assert!(plan.contains("[input+add_one+output]"), "{plan}");
    // The run's span is on every event of the run, with the pipeline and its number.
    for message in [
        "run started",
        "stage started",
        "stage finished",
        "run finished",
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no `{message}` in {stderr}"));
        assert!(line.contains("run{pipeline=calculator run_id="), "{line}");
    }
    let finished = stderr
        .lines()
        .find(|l| l.contains("stage finished"))
        .unwrap();
    assert!(
        finished.contains("stage{stage=0 nodes=input+add_one+output"),
        "{finished}"
    );
    assert!(finished.contains("items_in=10 items_out=10"), "{finished}");
    assert!(finished.contains("duration_ms="), "{finished}");
    // Nothing per item at info.
    assert!(
        !stderr.contains("DEBUG") && !stderr.contains("TRACE"),
        "{stderr}"
    );
    assert!(stderr.lines().count() < 10, "{stderr}");
}

#[test]
fn json_logs_are_one_object_per_line_with_level_target_fields_and_spans() {
    let (code, plain, _) = run_example("fan_out_fan_in.yaml", &[], &[]);
    assert_eq!(code, 0);
    let (code, stdout, stderr) =
        run_example("fan_out_fan_in.yaml", &["--log-format", "json", "-v"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, plain, "json logs changed stdout");
    let lines = json_lines(&stderr);
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l["level"].is_string(), "{l}");
        assert!(l["target"].as_str().is_some_and(|t| !t.is_empty()), "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
        assert!(l["timestamp"].is_string(), "{l}");
    }
    let plan = events(&lines, "plan built");
    assert_eq!(plan.len(), 1, "{stderr}");
    assert_eq!(plan[0]["fields"]["stages"], 4);
    assert_eq!(plan[0]["target"], "remotemedia_core::plan");
    // Four stages, each started and finished inside its span, inside the run's.
    let finished = events(&lines, "stage finished");
    assert_eq!(finished.len(), 4, "{stderr}");
    let mut stages: Vec<u64> = finished
        .iter()
        .map(|e| {
            span_field(e, "stage", "stage")
                .and_then(Value::as_u64)
                .unwrap()
        })
        .collect();
    stages.sort_unstable();
    assert_eq!(stages, [0, 1, 2, 3]);
    for e in &finished {
        assert_eq!(e["level"], "INFO");
        assert_eq!(
            span_field(e, "run", "pipeline"),
            Some(&Value::from("fan-out-fan-in")),
            "{e}"
        );
        assert_eq!(e["fields"]["outcome"], "ok", "{e}");
        assert!(e["fields"]["duration_ms"].is_number(), "{e}");
    }
    let pair = finished
        .iter()
        .find(|e| span_field(e, "stage", "nodes") == Some(&Value::from("pair")))
        .unwrap();
    assert_eq!(pair["fields"]["items_in"], 20);
    assert_eq!(pair["fields"]["items_out"], 10);
    let run = events(&lines, "run finished");
    assert_eq!(run.len(), 1, "{stderr}");
    assert_eq!(run[0]["fields"]["items_in"], 10);
    assert_eq!(run[0]["fields"]["outcome"], "ok");
    assert!(span_field(run[0], "run", "run_id").is_some_and(Value::is_u64));

    // The same from the environment.
    let (code, _, from_env) = run_example(
        "fan_out_fan_in.yaml",
        &["-v"],
        &[("REMOTEMEDIA_LOG_FORMAT", "json")],
    );
    assert_eq!(code, 0);
    assert_eq!(events(&json_lines(&from_env), "stage finished").len(), 4);
}

#[test]
fn a_bad_log_format_is_a_usage_error_naming_the_choices() {
    for (flags, env) in [(vec!["--log-format", "xml"], None), (vec![], Some("yaml"))] {
        let mut c = rm();
        c.args(&flags)
            .arg("run")
            .arg(repo("examples/calculator.yaml"));
        if let Some(v) = env {
            c.env("REMOTEMEDIA_LOG_FORMAT", v);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--log-format"), "{err}");
        assert!(err.contains("text") && err.contains("json"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn debug_shows_fusion_decisions() {
    let dir = tempfile::tempdir().unwrap();
    // a → b fuse; b fans out to c and d, which meet again in z.
    let manifest = write(
        dir.path(),
        "p.yaml",
        r#"
version: v1
metadata: { name: fusion }
nodes:
  - { id: a, node_type: PassThrough }
  - { id: b, node_type: Calculator, params: { operation: add, operand: 1 } }
  - { id: c, node_type: PassThrough }
  - { id: d, node_type: PassThrough }
  - { id: z, node_type: Zip }
connections:
  - { from: a, to: b }
  - { from: b, to: c }
  - { from: b, to: d }
  - { from: c, to: z }
  - { from: d, to: z }
"#,
    );
    let out = rm()
        .args(["--log-format", "json", "run"])
        .arg(&manifest)
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"))
        .env("REMOTEMEDIA_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines = json_lines(&stderr);
    let decision = |node: &str| -> &Value {
        lines
            .iter()
            .find(|l| {
                l["target"] == "remotemedia_core::plan"
                    && l["level"] == "DEBUG"
                    && l["fields"]["node"] == node
            })
            .unwrap_or_else(|| panic!("no fusion decision for `{node}` in {stderr}"))
    };
    let b = decision("b");
    assert!(
        b["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("fused"),
        "{b}"
    );
    assert_eq!(b["fields"]["upstream"], "a");
    for (node, reason) in [("a", "root"), ("c", "fans out"), ("z", "fan-in")] {
        let e = decision(node);
        assert_eq!(e["fields"]["message"], "new stage", "{e}");
        let why = e["fields"]["reason"].as_str().unwrap();
        assert!(why.contains(reason), "{node}: {why}");
    }
    let plan = events(&lines, "plan built");
    assert_eq!(plan[0]["fields"]["fused"], "[a+b] [c] [d] [z]");
    // -vv shows the same decisions.
    let out = rm()
        .args(["--log-format", "json", "-vv", "run"])
        .arg(&manifest)
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let vv = json_lines(&String::from_utf8(out.stderr).unwrap());
    assert_eq!(
        vv.iter()
            .filter(|l| l["target"] == "remotemedia_core::plan" && l["level"] == "DEBUG")
            .count(),
        5
    );
    // Per-node spans at debug: each node's lifecycle inside its node span.
    let cleaned = events(&lines, "node cleaned up");
    assert_eq!(cleaned.len(), 5, "{stderr}");
    let zip = cleaned
        .iter()
        .find(|e| span_field(e, "node", "node") == Some(&Value::from("z")))
        .unwrap();
    assert_eq!(
        span_field(zip, "node", "node_type"),
        Some(&Value::from("Zip"))
    );
    assert_eq!(zip["fields"]["items_out"], 10);
}

#[test]
fn a_span_field_filter_selects_one_pipelines_runs_on_every_thread() {
    let filter = "warn,[run{pipeline=calculator}]=debug";
    let (code, _, stderr) = run_example(
        "calculator.yaml",
        &["--log-format", "json"],
        &[("REMOTEMEDIA_LOG", filter)],
    );
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stderr);
    // The stage runs on a worker thread; its events and its nodes' are still selected.
    assert_eq!(events(&lines, "stage finished").len(), 1, "{stderr}");
    assert_eq!(events(&lines, "node cleaned up").len(), 3, "{stderr}");
    assert!(lines
        .iter()
        .all(|l| span_field(l, "run", "pipeline") == Some(&Value::from("calculator"))));
    // Another pipeline's runs stay at warn.
    let (code, _, other) = run_example(
        "fan_out_fan_in.yaml",
        &["--log-format", "json"],
        &[("REMOTEMEDIA_LOG", filter)],
    );
    assert_eq!(code, 0);
    assert_eq!(other, "");
}

#[test]
fn quiet_prints_nothing_on_stderr_for_a_good_run() {
    let (code, plain, _) = run_example("fan_out_fan_in.yaml", &[], &[]);
    assert_eq!(code, 0);
    for flags in [
        vec!["-q"],
        vec!["-q", "-v"],
        vec!["-q", "--log-format", "json"],
    ] {
        let (code, stdout, stderr) = run_example("fan_out_fan_in.yaml", &flags, &[]);
        assert_eq!(code, 0, "{flags:?}: {stderr}");
        assert_eq!(stderr, "", "{flags:?}");
        assert_eq!(stdout, plain, "{flags:?}");
    }
}

#[test]
fn skips_are_logged_at_debug_and_counted_at_info() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        dir.path(),
        "p.yaml",
        r#"
version: v1
metadata: { name: skipping }
nodes:
  - id: div
    node_type: Calculator
    params: { operation: divide, operand: 0 }
    on_error: skip
    retry: { max_retries: 1, initial_backoff_ms: 1 }
"#,
    );
    let run = |filter: &str| {
        let out = rm()
            .args(["--log-format", "json", "run"])
            .arg(&manifest)
            .arg("--input")
            .arg(repo("examples/numbers.jsonl"))
            .env("REMOTEMEDIA_LOG", filter)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        json_lines(&String::from_utf8(out.stderr).unwrap())
    };
    let info = run("info");
    let stage = events(&info, "stage finished");
    assert_eq!(stage[0]["fields"]["errors"], 10);
    assert_eq!(stage[0]["fields"]["retries"], 10);
    assert_eq!(events(&info, "run finished")[0]["fields"]["skipped"], 10);
    assert!(info.iter().all(|l| l["level"] != "DEBUG"));
    let debug = run("debug");
    let retries = events(&debug, "retrying a failed item");
    assert_eq!(retries.len(), 10);
    assert_eq!(retries[0]["fields"]["attempt"], 2);
    assert_eq!(
        span_field(retries[0], "node", "node"),
        Some(&Value::from("div"))
    );
    let skips: Vec<&Value> = debug
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("skipping failed item"))
        })
        .collect();
    assert_eq!(skips.len(), 10);
    assert_eq!(skips[0]["fields"]["attempts"], 2);
}

#[test]
fn a_failed_run_logs_the_stage_that_failed_and_the_run_s_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        dir.path(),
        "p.yaml",
        r#"
version: v1
metadata: { name: failing }
nodes:
  - { id: src, node_type: PassThrough }
  - { id: div, node_type: Calculator, params: { operation: divide, operand: 0 } }
  - { id: keep, node_type: PassThrough }
connections:
  - { from: src, to: div }
  - { from: src, to: keep }
"#,
    );
    let out = rm()
        .args(["--log-format", "json", "-v", "run"])
        .arg(&manifest)
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    // The command's own error message is the one line that is not JSON.
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed = events(&lines, "stage finished")
        .into_iter()
        .find(|e| span_field(e, "stage", "nodes") == Some(&Value::from("div")))
        .unwrap_or_else(|| panic!("no end of stage `div` in {stderr}"));
    assert_eq!(failed["fields"]["outcome"], "failed");
    assert_eq!(failed["fields"]["errors"], 1);
    let run = events(&lines, "run finished");
    assert_eq!(run.len(), 1, "{stderr}");
    assert_eq!(run[0]["fields"]["outcome"], "failed");
    let error = run[0]["fields"]["error"].as_str().unwrap();
    assert!(
        error.contains("`div`") && error.contains("division by zero"),
        "{error}"
    );
}

/// Reads `path` until `done` holds for its JSON lines, for at most a minute (the
/// server logs a connection's end once it has noticed it).
fn wait_for_logs(path: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // The last line may be half written.
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if done(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "the logs never showed what was expected: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_logs_connections_requests_and_streams_and_the_client_its_streams() {
    let dir = tempfile::tempdir().unwrap();
    let executor = Executor::start(
        dir.path(),
        "gpu",
        &repo("examples/remote/gpu-capabilities.json"),
        &["-v", "--log-format", "json"],
    );
    let out = rm()
        .current_dir(dir.path())
        .env(
            "REMOTEMEDIA_CAPABILITIES",
            repo("examples/remote/cpu-capabilities.json"),
        )
        .args(["-v", "--log-format", "json", "run"])
        .arg(repo("examples/remote/gpu-pipeline.yaml"))
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"))
        .args(["--executor", &executor.flag()])
        .output()
        .unwrap();
    let client = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{client}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "3\n5\n7\n9\n11\n13\n15\n17\n19\n21\n"
    );

    // The client: where the nodes went, and the stream to the executor.
    let lines = json_lines(&client);
    let placement = events(&lines, "placement decided");
    assert_eq!(placement.len(), 1, "{client}");
    assert_eq!(placement[0]["fields"]["remote"], 2);
    assert_eq!(placement[0]["fields"]["local"], 2);
    let opened = events(&lines, "remote stream opened");
    assert_eq!(opened.len(), 1, "{client}");
    assert_eq!(opened[0]["fields"]["executor"], "gpu");
    assert_eq!(opened[0]["fields"]["address"], executor.addr.as_str());
    assert_eq!(opened[0]["fields"]["nodes"], "scale → offset");
    let closed = events(&lines, "remote stream closed");
    assert_eq!(closed.len(), 1, "{client}");
    let f = &closed[0]["fields"];
    assert_eq!(f["executor"], "gpu");
    assert_eq!(f["address"], executor.addr.as_str());
    assert_eq!(f["outcome"], "ok");
    assert_eq!(f["items"], 10);
    assert_eq!(f["outputs"], 10);
    assert!(f["duration_ms"].is_number());

    // The executor: the stream, its connection and the requests on it.
    let has = |lines: &[Value], message: &str| !events(lines, message).is_empty();
    let logs = wait_for_logs(&executor.stderr, |l| {
        has(l, "stream closed")
            && events(l, "connection closed")
                .iter()
                .any(|e| e["fields"]["requests"].as_u64().is_some_and(|n| n > 0))
    });
    let stream = events(&logs, "stream opened");
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0]["fields"]["nodes"], "scale+offset");
    let peer = span_field(stream[0], "connection", "peer")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no peer on {}", stream[0]));
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    assert_eq!(
        span_field(stream[0], "request", "path"),
        Some(&Value::from("/remotemedia.v1.Executor/StreamPipeline"))
    );
    let closed = events(&logs, "stream closed");
    assert_eq!(closed.len(), 1);
    let f = &closed[0]["fields"];
    assert_eq!(f["outcome"], "ok", "{}", closed[0]);
    assert_eq!(f["pipeline"], "gpu-pipeline/scale+offset");
    assert_eq!(f["nodes"], "scale+offset");
    assert_eq!(f["items_in"], 10);
    assert_eq!(f["items_out"], 10);
    assert!(f["duration_ms"].is_number());
    assert_eq!(
        span_field(closed[0], "connection", "peer"),
        Some(&Value::from(peer))
    );
    // The sub-graph's run on the executor is inside the stream's request.
    let run = events(&logs, "run finished");
    assert!(
        run.iter()
            .any(|r| span_field(r, "request", "path").is_some() && r["fields"]["outcome"] == "ok"),
        "{run:?}"
    );
    // Every connection opened is closed, with its peer; the probes' and the stream's
    // requests are answered.
    let conns_opened = events(&logs, "connection opened");
    assert!(!conns_opened.is_empty());
    for c in &conns_opened {
        let p = span_field(c, "connection", "peer")
            .and_then(Value::as_str)
            .unwrap();
        assert!(p.starts_with("127.0.0.1:"), "{c}");
    }
    let answered = events(&logs, "request answered");
    let paths: Vec<&str> = answered
        .iter()
        .filter_map(|e| span_field(e, "request", "path").and_then(Value::as_str))
        .collect();
    for path in [
        "/remotemedia.v1.Executor/GetCapabilities",
        "/remotemedia.v1.Executor/StreamPipeline",
    ] {
        assert!(paths.contains(&path), "{path} not in {paths:?}");
    }
}

#[test]
fn serve_logs_each_session_with_its_peer_pipeline_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir_all(&pipelines).unwrap();
    write(
        &pipelines,
        "calc.yaml",
        "version: v1\nmetadata: { name: calc }\nnodes:\n  - { id: add, node_type: Calculator, params: { operation: add, operand: 1 } }\n",
    );
    let server = Executor::start(
        dir.path(),
        "sessions",
        &repo("examples/remote/cpu-capabilities.json"),
        &["--pipelines", "pipelines", "-v", "--log-format", "json"],
    );
    let items = write(dir.path(), "items.jsonl", "1\n2\n");
    let out = StdCommand::new(support::BIN)
        .args(["connect", &server.addr, "--pipeline", "calc", "--input"])
        .arg(&items)
        .env_remove("REMOTEMEDIA_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = wait_for_logs(&server.stderr, |l| !events(l, "session closed").is_empty());
    let opened = events(&logs, "session opened");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["fields"]["via"], "websocket");
    let closed = events(&logs, "session closed");
    let e = closed[0];
    let id = span_field(e, "session", "session")
        .and_then(Value::as_str)
        .unwrap();
    assert!(id.starts_with("calc-"), "{id}");
    assert_eq!(
        span_field(e, "session", "pipeline"),
        Some(&Value::from("calc"))
    );
    let peer = span_field(e, "session", "peer")
        .and_then(Value::as_str)
        .unwrap();
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    assert_eq!(e["fields"]["outcome"], "completed", "{e}");
    assert_eq!(e["fields"]["outputs"], 2);
    assert!(e["fields"]["duration_ms"].is_number());
    // Its connection: the upgrade request, then handed over to the WebSocket.
    let upgrade = events(&logs, "request answered")
        .into_iter()
        .find(|e| span_field(e, "request", "path") == Some(&Value::from("/v1/sessions/calc")))
        .unwrap_or_else(|| panic!("no upgrade request in {logs:?}"));
    assert_eq!(upgrade["fields"]["status"], 101);
    assert!(logs
        .iter()
        .any(|l| l["fields"]["outcome"] == "upgraded"
            && span_field(l, "connection", "peer").is_some()));
    // The session's run is inside the session's span.
    let run = events(&logs, "run finished");
    assert!(
        run.iter()
            .any(|r| span_field(r, "session", "session") == Some(&Value::from(id))),
        "{run:?}"
    );
}
