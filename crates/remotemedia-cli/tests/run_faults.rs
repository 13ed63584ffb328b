//! `remotemedia run` against faults and bad input: a closed output, broken lines, huge
//! values and limits. Each case names where and why, exits non-zero (or, for a reader
//! that went away, quietly) and keeps what was accepted before it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{repo, BIN};

/// Waits for `child` to exit, killing it (and failing) after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("remotemedia run did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(repo("examples/calculator.yaml"))
        .args(["--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // An endless input, as `yes 1` gives; the writer stops when the run has gone.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = "1\n".repeat(4096);
        while stdin.write_all(chunk.as_bytes()).is_ok() {}
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "2\n");
    drop(stdout); // as `| head -1` does
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    feeder.join().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&stderr).unwrap(), "");
}

/// `remotemedia run examples/calculator.yaml` (adds 1) over `input` as a file and on
/// stdin, each expected to print `stdout`, end with `stderr` and exit 1.
fn bad_input_keeps_earlier_items(input: &[u8], stdout: &str, stderr: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, input).unwrap();
    for from_stdin in [false, true] {
        let mut cmd = assert_cmd::Command::new(BIN);
        cmd.arg("run").arg(repo("examples/calculator.yaml"));
        if from_stdin {
            cmd.args(["--input", "-"]).write_stdin(input.to_vec());
        } else {
            cmd.arg("--input").arg(&file);
        }
        let out = cmd.timeout(Duration::from_secs(30)).output().unwrap();
        let what = if from_stdin { "stdin" } else { "a file" };
        assert_eq!(String::from_utf8_lossy(&out.stdout), stdout, "from {what}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "from {what}");
        assert_eq!(out.status.code(), Some(1), "from {what}");
    }
}

#[test]
fn a_line_that_is_not_utf8_is_named_after_the_outputs_before_it() {
    bad_input_keeps_earlier_items(
        b"1\n2\n3\n4\n5\n\xff\n",
        "2\n3\n4\n5\n6\n",
        "error: input line 6: not valid UTF-8 (byte 1 of the line is not part of a UTF-8 \
         character)\n",
    );
}

#[test]
fn batch_size_and_queue_capacity_are_bounded_when_parsed() {
    for (flag, value, shown) in [
        ("--batch-size", "1000000000", "1000000000"),
        (
            "--batch-size",
            "18446744073709551615",
            "18446744073709551615",
        ),
        ("--batch-size", "0", "0"),
        (
            "--queue-capacity",
            "18446744073709551615",
            "18446744073709551615",
        ),
        ("--queue-capacity", "0", "0"),
    ] {
        let out = assert_cmd::Command::new(BIN)
            .arg("run")
            .arg(repo("examples/calculator.yaml"))
            .arg("--input")
            .arg(repo("examples/numbers.jsonl"))
            .args([flag, value])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: invalid value '{shown}' for '{flag} <N>': {shown} is not in 1..=1000000\n"
            )),
            "{flag} {value}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    // The bounds themselves are accepted.
    assert_cmd::Command::new(BIN)
        .arg("run")
        .arg(repo("examples/calculator.yaml"))
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"))
        .args(["--batch-size", "1000000", "--queue-capacity", "1000000"])
        .timeout(Duration::from_secs(30))
        .assert()
        .success()
        .stdout("2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n");
}

#[test]
fn an_integer_too_large_for_64_bits_is_refused_however_large() {
    for literal in ["18446744073709551615", "123456789012345678901234567890"] {
        bad_input_keeps_earlier_items(
            format!("1\n[2, {literal}]\n3\n").as_bytes(),
            "2\n",
            &format!(
                "error: input line 2: $[1]: integer {literal} does not fit a signed 64-bit int\n"
            ),
        );
    }
    // A float of that size is a float.
    assert_cmd::Command::new(BIN)
        .arg("run")
        .arg(repo("examples/calculator.yaml"))
        .args(["--input", "-"])
        .write_stdin("1e30\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .success()
        .stdout("1e+30\n");
}

#[test]
fn a_byte_order_mark_starts_a_manifest_or_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.json");
    let mut text = b"\xef\xbb\xbf".to_vec();
    text.extend_from_slice(
        br#"{"version": "v1", "metadata": {"name": "bom"},
            "nodes": [{"id": "add", "node_type": "Calculator",
                       "params": {"operation": "add", "operand": 1}}]}"#,
    );
    std::fs::write(&manifest, text).unwrap();
    assert_cmd::Command::new(BIN)
        .arg("run")
        .arg(&manifest)
        .args(["--input", "-"])
        .write_stdin(b"\xef\xbb\xbf1\n2\n".to_vec())
        .timeout(Duration::from_secs(30))
        .assert()
        .success()
        .stdout("2\n3\n");
}

/// The names in `dir`, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_run_that_cannot_start_leaves_an_existing_output_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = support::write(
        dir.path(),
        "init.yaml",
        "version: v1\nmetadata: { name: init }\nnodes:\n  - id: py\n    node_type: PythonNode\n    \
         params: { module: no_such_module_for_this_test, class: Nope }\n",
    );
    let out = support::write(dir.path(), "out.jsonl", "kept\n");
    assert_cmd::Command::new(BIN)
        .arg("run")
        .arg(&manifest)
        .args(["--input", "-", "--output"])
        .arg(&out)
        .write_stdin("1\n")
        .timeout(Duration::from_secs(60))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "error: cannot build node `py` (PythonNode)",
        ));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept\n");
    assert_eq!(names_in(dir.path()), ["init.yaml", "out.jsonl"]);
}

#[test]
fn a_run_that_fails_midway_replaces_the_output_file_with_its_outputs_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::write(dir.path(), "out.jsonl", "old\n");
    assert_cmd::Command::new(BIN)
        .current_dir(dir.path())
        .arg("run")
        .arg(repo("examples/calculator.yaml"))
        .args(["--input", "-", "--output", "out.jsonl"])
        .write_stdin("1\n2\n\"x\"\n4\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2)
        .stdout("");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "2\n3\n");
    assert_eq!(names_in(dir.path()), ["out.jsonl"]);
}

#[test]
fn the_same_file_as_input_and_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let items = support::write(dir.path(), "items.jsonl", "1\n2\n");
    std::os::unix::fs::symlink(&items, dir.path().join("link.jsonl")).unwrap();
    for output in ["items.jsonl", "./link.jsonl"] {
        assert_cmd::Command::new(BIN)
            .current_dir(dir.path())
            .arg("run")
            .arg(repo("examples/calculator.yaml"))
            .args(["--input", "items.jsonl", "--output", output])
            .timeout(Duration::from_secs(30))
            .assert()
            .code(1)
            .stderr(format!(
                "error: --input and --output are the same file ({output}): writing the outputs \
                 would destroy the input\n"
            ));
        assert_eq!(std::fs::read_to_string(&items).unwrap(), "1\n2\n");
    }
}

#[test]
fn a_skipped_item_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = support::write(
        dir.path(),
        "skip.yaml",
        "version: v1\nmetadata: { name: skip }\nnodes:\n  - id: add\n    node_type: Calculator\n    \
         params: { operation: add, operand: 1 }\n    on_error: skip\n",
    );
    assert_cmd::Command::new(BIN)
        .arg("run")
        .arg(&manifest)
        .args(["--input", "-"])
        .env_remove("REMOTEMEDIA_LOG")
        .write_stdin("1\n\"x\"\n3\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .success()
        .stdout("2\n4\n")
        .stderr(
            "warning: skipped item: node `add` (Calculator) failed in process: invalid_input: \
             Calculator accepts a number or {\"operation\", \"args\"} map, got text; input: \"x\"\n",
        );
}

#[test]
fn a_line_written_to_a_pipe_is_answered_before_the_next_one_comes() {
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(repo("examples/calculator.yaml"))
        .args(["--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    for (n, want) in [("1", "2"), ("2", "3"), ("41", "42")] {
        stdin.write_all(format!("{n}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(got) => assert_eq!(got, want),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no output for input {n} while the input stays open");
            }
        }
    }
    drop(stdin);
    assert!(wait_bounded(&mut child, Duration::from_secs(20)).success());
}

#[test]
fn a_line_over_the_size_limit_is_named_after_the_outputs_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    // A 17 MiB string, over the default 16 MiB.
    let long = format!("\"{}\"", "a".repeat(17 << 20));
    std::fs::write(&file, format!("1\n2\n{long}\n4\n")).unwrap();
    let run = |extra: &[&str]| {
        assert_cmd::Command::new(BIN)
            .arg("run")
            .arg(repo("examples/calculator.yaml"))
            .arg("--input")
            .arg(&file)
            .args(extra)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n3\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: input line 3: longer than 16777216 bytes (the limit of --max-line-bytes, which \
         can raise it)\n"
    );
    assert_eq!(out.status.code(), Some(1));
    // Raised, the line is read (and is text, which the calculator refuses).
    let out = run(&["--max-line-bytes", "20000000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("got text"));
}

#[test]
fn a_zip_whose_other_input_drops_everything_fails_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = support::write(
        dir.path(),
        "zip.yaml",
        r#"
version: v1
metadata: { name: zip }
nodes:
  - { id: src, node_type: PassThrough }
  - { id: none, node_type: Filter, params: { gt: 1000 } }
  - { id: zip, node_type: Zip, params: { max_pending: 5 } }
connections: [ {from: src, to: none}, {from: src, to: zip}, {from: none, to: zip} ]
"#,
    );
    let input: String = (1..=20).map(|i| format!("{i}\n")).collect();
    assert_cmd::Command::new(BIN)
        .arg("run")
        .arg(&manifest)
        .args(["--input", "-"])
        .write_stdin(input)
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicates::str::contains(
            "error: node `zip` (Zip) failed in process: other: input `src` has 5 items waiting \
             for an item from `none` (max_pending); an input that drops items leaves the others \
             unpaired; input: 6",
        ));
}

/// A cpython node that never returns from its call on item 2, with a 300 ms limit and
/// `on_error` as given.
#[cfg(feature = "cpython")]
fn hung_cpython_node(on_error: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let manifest = support::write(
        dir.path(),
        "hang.yaml",
        &format!(
            r#"
version: v1
metadata: {{ name: hang }}
nodes:
  - id: slow
    node_type: PythonNode
    timeout_ms: 300
    {on_error}
    params:
      class: Slow
      runtime: cpython
      source: |
        import time
        class Slow:
            def process(self, value):
                if value == 2:
                    time.sleep(1000)
                return value * 10
"#
        ),
    );
    assert_cmd::Command::new(BIN)
        .arg("run")
        .arg(&manifest)
        .args(["--input", "-"])
        .write_stdin("1\n2\n3\n4\n")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

#[cfg(feature = "cpython")]
#[test]
fn a_cpython_call_that_never_returns_fails_later_items_instead_of_hanging() {
    let not_ready = "timeout: no result within 300 ms: the instance replacing one abandoned \
                     after a timeout is not ready (the abandoned call may still hold what it needs)";
    let out = hung_cpython_node("on_error: skip");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10\n");
    assert_eq!(
        stderr,
        format!(
            "warning: skipped item: node `slow` (PythonNode) failed in process: timeout: no \
             result within 300 ms; input: 2\n\
             warning: skipped item: node `slow` (PythonNode) failed in process: {not_ready}; \
             input: 3\n\
             warning: skipped item: node `slow` (PythonNode) failed in process: {not_ready}; \
             input: 4\n"
        )
    );
    let out = hung_cpython_node("retry: { max_retries: 2, initial_backoff_ms: 1 }");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: node `slow` (PythonNode) failed in process: {not_ready} (after 3 attempts); \
             input: 2\n"
        )
    );
}

/// Runs items 1..=4 through an embedded-CPython node doing `body` on item 3.
#[cfg(feature = "cpython")]
fn cpython_node_doing(body: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let manifest = support::write(
        dir.path(),
        "m.yaml",
        &format!(
            r#"
version: v1
metadata: {{ name: native }}
nodes:
  - id: native
    node_type: PythonNode
    params:
      class: Native
      runtime: cpython
      source: |
        import ctypes, os
        class Native:
            def process(self, value):
                if value == 3:
                    {body}
                return value
"#
        ),
    );
    assert_cmd::Command::new(BIN)
        .arg("run")
        .arg(&manifest)
        .args(["--input", "-"])
        .write_stdin("1\n2\n3\n4\n")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

#[cfg(feature = "cpython")]
#[test]
fn os_exit_in_an_embedded_cpython_node_fails_the_node_and_keeps_earlier_outputs() {
    let out = cpython_node_doing("os._exit(1)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n");
    assert!(
        stderr.starts_with(
            "error: node `native` (PythonNode) failed in process: python: RuntimeError: \
             os._exit(1) would end the whole remotemedia process"
        ),
        "{stderr}"
    );
}

#[cfg(all(feature = "cpython", unix))]
#[test]
fn a_segfault_in_an_embedded_cpython_node_is_reported_not_silent() {
    use std::os::unix::process::ExitStatusExt;
    let out = cpython_node_doing("ctypes.string_at(0)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{stderr}");
    assert!(
        stderr.contains("error: remotemedia crashed in native code (SIGSEGV/SIGBUS)")
            && stderr.contains("runtime: process"),
        "{stderr}"
    );
}
