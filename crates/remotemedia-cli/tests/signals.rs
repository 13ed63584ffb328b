//! `remotemedia run` and signals: SIGINT and SIGTERM stop a run cleanly and promptly
//! (exit 130 / 143, outputs flushed, nodes cleaned up, no worker process or temporary
//! file left), also when a node is stuck in a call; a SIGKILLed run takes its busy
//! workers with it.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_remotemedia");

/// A node that records its pid (and its parent's) when initialized, marks when it is
/// stuck, and records its cleanup, all as files in `dir`.
const NODE: &str = "import os, time\nclass Node:\n    def __init__(self, dir, stuck_at=None):\n        self.dir = dir\n        self.stuck_at = stuck_at\n    def _mark(self, name, text=''):\n        with open(os.path.join(self.dir, name), 'w') as f:\n            f.write(text)\n    def initialize(self):\n        self._mark('pid-%d' % os.getpid(), str(os.getppid()))\n    def process(self, x):\n        if x == self.stuck_at:\n            self._mark('busy')\n            time.sleep(600)\n        time.sleep(0.05)\n        return x\n    def cleanup(self):\n        self._mark('cleanup')\n";

/// Checks `done` every few milliseconds until it holds or `limit` has passed.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// A test's directory: the node's marks, and the run's TMPDIR (which must stay empty).
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("tmp")).unwrap();
        Dir(d)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn manifest(&self, runtime: &str, stuck_at: Option<i64>) -> PathBuf {
        let mut params = serde_json::json!({
            "class": "Node", "source": NODE,
            "init": {"dir": self.path().join("marks").to_string_lossy(), "stuck_at": stuck_at},
        });
        if runtime != "auto" {
            params["runtime"] = runtime.into();
        }
        let m = serde_json::json!({
            "version": "v1",
            "metadata": {"name": "signals"},
            "nodes": [{"id": "py", "node_type": "PythonNode", "params": params}],
            "connections": [],
        });
        let _ = std::fs::create_dir(self.path().join("marks"));
        let p = self.path().join(format!("{runtime}.json"));
        std::fs::write(&p, m.to_string()).unwrap();
        p
    }

    fn mark(&self, name: &str) -> PathBuf {
        self.path().join("marks").join(name)
    }

    /// The pids (and parent pids) of the node instances that were initialized.
    fn pids(&self) -> Vec<(i32, i32)> {
        let mut pids = Vec::new();
        for e in std::fs::read_dir(self.path().join("marks")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("pid-") {
                let ppid = std::fs::read_to_string(e.path()).unwrap();
                pids.push((pid.parse().unwrap(), ppid.trim().parse().unwrap_or(0)));
            }
        }
        pids
    }

    fn leftover_temp_files(&self) -> Vec<String> {
        std::fs::read_dir(self.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// Whether no process (not even a zombie) has this pid.
fn gone(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == -1 }
}

/// Whether the process with this pid has ended: gone, or a zombie nobody reaps yet.
fn ended(pid: i32) -> bool {
    gone(pid)
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
}

fn send(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process (or, negative, a process group) this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// `remotemedia run MANIFEST --input -` in a process group of its own (as a shell job
/// is), with its output lines and stderr collected.
struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    got: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Run {
    fn start(dir: &Dir, manifest: &Path) -> Run {
        let mut child = Command::new(BIN)
            .args(["run", "--no-progress", "--input", "-"])
            .arg(manifest)
            .env_remove("REMOTEMEDIA_PYTHON_RUNTIME")
            .env("TMPDIR", dir.path().join("tmp"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        Run {
            stdin: child.stdin.take(),
            child,
            lines,
            got: Vec::new(),
            stderr,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until `n` output lines have arrived.
    fn wait_lines(&mut self, n: usize) {
        let end = Instant::now() + Duration::from_secs(30);
        while self.got.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.got.push(l),
                Err(_) => panic!("only {:?} after 30 s", self.got),
            }
        }
    }

    /// Waits for the exit (at most `limit`), then returns its status, every output
    /// line and stderr.
    fn wait_exit(mut self, limit: Duration) -> (ExitStatus, Duration, Vec<String>, String) {
        let start = Instant::now();
        let mut status = None;
        eventually(limit, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let Some(status) = status else {
            let _ = self.child.kill();
            panic!("still running after {limit:?}");
        };
        let took = start.elapsed();
        drop(self.stdin.take());
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .expect("stderr stays open after the exit");
        self.got.extend(self.lines.try_iter());
        (status, took, self.got, stderr)
    }
}

fn check_no_leftovers(dir: &Dir, stderr: &str) {
    assert!(!stderr.contains("Traceback"), "{stderr}");
    assert!(!stderr.contains("KeyboardInterrupt"), "{stderr}");
    let pids = dir.pids();
    assert!(!pids.is_empty(), "no node was initialized");
    for (pid, _) in pids {
        assert!(
            eventually(Duration::from_secs(5), || gone(pid)),
            "pid {pid} is still there"
        );
    }
    assert_eq!(dir.leftover_temp_files(), Vec::<String>::new());
}

#[test]
fn a_signal_mid_stream_stops_the_run_cleanly() {
    for runtime in ["process", "auto"] {
        // SIGINT as a terminal's Ctrl-C sends it, to the whole process group; SIGTERM
        // as `kill` sends it, to the process.
        for (sig, group) in [(libc::SIGINT, true), (libc::SIGTERM, false)] {
            let dir = Dir::new();
            let mut run = Run::start(&dir, &dir.manifest(runtime, None));
            run.write("1\n2\n3\n");
            run.wait_lines(3);
            send(if group { -run.pid() } else { run.pid() }, sig);
            let (status, took, lines, stderr) = run.wait_exit(Duration::from_secs(10));
            let what = format!("{runtime}, signal {sig}: {stderr}");
            assert_eq!(status.code(), Some(128 + sig), "{what}");
            assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
            assert_eq!(lines, ["1", "2", "3"], "{what}");
            let name = if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            assert!(
                stderr.contains(&format!("interrupted by {name}: stopped after 3 items")),
                "{what}"
            );
            assert!(dir.mark("cleanup").exists(), "{what}: no cleanup");
            check_no_leftovers(&dir, &stderr);
        }
    }
}

#[test]
fn a_stuck_call_is_given_up_on_after_a_grace_period() {
    for runtime in ["process", "auto"] {
        let dir = Dir::new();
        let mut run = Run::start(&dir, &dir.manifest(runtime, Some(3)));
        // One at a time: a batch's outputs come out when the whole batch is done.
        for (n, item) in ["1\n", "2\n", "3\n"].into_iter().enumerate() {
            run.wait_lines(n);
            run.write(item);
        }
        assert!(eventually(Duration::from_secs(30), || dir
            .mark("busy")
            .exists()));
        send(-run.pid(), libc::SIGINT);
        let (status, took, lines, stderr) = run.wait_exit(Duration::from_secs(12));
        let what = format!("{runtime}: {stderr}");
        assert_eq!(status.code(), Some(130), "{what}");
        assert!(took < Duration::from_secs(8), "{what}: took {took:?}");
        assert_eq!(lines, ["1", "2"], "{what}");
        assert!(stderr.contains("interrupted by SIGINT"), "{what}");
        check_no_leftovers(&dir, &stderr);
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = Dir::new();
    let mut run = Run::start(&dir, &dir.manifest("process", Some(1)));
    run.write("1\n");
    assert!(eventually(Duration::from_secs(30), || dir
        .mark("busy")
        .exists()));
    send(run.pid(), libc::SIGTERM);
    // Signals sent back to back may arrive as one: the second comes as a person's would.
    std::thread::sleep(Duration::from_millis(300));
    send(run.pid(), libc::SIGTERM);
    let (status, took, _, stderr) = run.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(143), "{stderr}");
    // The grace period for a stuck call is 2 s from the first signal: this did not
    // wait for it.
    assert!(
        took < Duration::from_millis(1200),
        "took {took:?}: {stderr}"
    );
    check_no_leftovers(&dir, &stderr);
}

#[test]
fn a_sigkilled_run_takes_its_busy_workers_along() {
    let dir = Dir::new();
    let manifest = dir.manifest("process", Some(1));
    // A shell pipeline reading the run's stderr ends only when every process holding
    // that stderr has ended, workers included.
    let mut sh = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" run --input - \"$1\" 2>&1 | cat")
        .arg(BIN)
        .arg(&manifest)
        .env("TMPDIR", dir.path().join("tmp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = sh.stdin.take().unwrap();
    stdin.write_all(b"1\n").unwrap();
    stdin.flush().unwrap();
    let mut out = sh.stdout.take().unwrap();
    let (tx, eof) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    assert!(eventually(Duration::from_secs(30), || dir
        .mark("busy")
        .exists()));
    let pids = dir.pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let (worker, run) = pids[0];
    send(run, libc::SIGKILL);
    let text = eof.recv_timeout(Duration::from_secs(10));
    let status = eventually(Duration::from_secs(5), || sh.try_wait().unwrap().is_some());
    if text.is_err() || !status {
        let _ = sh.kill();
        panic!("the pipeline did not end: the worker still holds its stderr");
    }
    // Its parent is gone, so nobody may reap it: a zombie has ended too.
    assert!(eventually(Duration::from_secs(5), || ended(worker)));
    assert_eq!(dir.leftover_temp_files(), Vec::<String>::new());
    drop(stdin);
}
