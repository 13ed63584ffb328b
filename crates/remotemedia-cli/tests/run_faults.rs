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
