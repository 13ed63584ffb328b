//! The `process` host: CPython worker processes.
//!
//! Each node gets `workers` processes (default 1), each holding its own instance of the
//! class. The parent and a worker exchange frames of the [`crate::wire`] format over
//! the worker's stdin/stdout; a whole batch travels in one frame each way. Node code in
//! the worker sees stdin as /dev/null and its stdout goes to stderr; `print` and
//! `logging` behave as in the other hosts (log records travel as frames).
//!
//! Before each item the worker writes the item's index into a small shared file, so
//! when a worker crashes, is killed, or overruns `timeout_ms` (and is then killed), the
//! parent knows which item it was on: that item fails (kind `crashed` with the exit
//! status or signal, or `timeout`), a fresh worker replaces the dead one (loading and
//! initializing the class again — state kept in `self` is lost with the process), the
//! items of the batch before it are run again there (their results died with the
//! worker), and later items continue.
//!
//! With several workers a batch is split into contiguous chunks processed in parallel;
//! outputs keep the input order, and every item of a batch is processed even when an
//! earlier one fails (the executor is handed the outcomes in order).

use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::Duration;

use remotemedia_core::{Data, DataMap, ErrorKind, Execution, NodeError};

use crate::host::{
    emit_log, python_error, python_log_level, BatchOutcome, Instance, ItemOutcome, LoadError,
};
use crate::spec::{NodeSpec, Origin, Runtime};
use crate::wire::{self, Reader};

/// The worker program (Python source).
pub const WORKER_SOURCE: &str = include_str!("worker.py");

/// Environment variable naming the workers' interpreter.
pub const PYTHON_ENV: &str = "REMOTEMEDIA_PYTHON";

/// Smallest chunk worth sending to a second worker.
const MIN_CHUNK: usize = 32;

/// How long a worker gets to exit after `cleanup` before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// The interpreter the workers run: `python` from params, else `REMOTEMEDIA_PYTHON`,
/// else the active virtualenv's `python`, else the interpreter this crate was built
/// against, else `python3` from `PATH`.
pub fn python_executable(spec_python: Option<&str>) -> String {
    if let Some(p) = spec_python {
        return p.to_string();
    }
    if let Ok(p) = std::env::var(PYTHON_ENV) {
        if !p.is_empty() {
            return p;
        }
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        let exe = std::path::Path::new(&venv).join("bin/python");
        if exe.exists() {
            return exe.to_string_lossy().into_owned();
        }
    }
    if let Some(built) = option_env!("REMOTEMEDIA_BUILD_PYTHON") {
        if std::path::Path::new(built).exists() {
            return built.to_string();
        }
    }
    "python3".to_string()
}

/// Whether worker processes can be started (the interpreter runs).
pub fn available() -> Result<(), String> {
    let exe = python_executable(None);
    match Command::new(&exe)
        .args(["-c", "pass"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{exe}` {}", describe_status(s))),
        Err(e) => Err(format!("cannot run `{exe}`: {e}")),
    }
}

fn describe_status(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("was killed by signal {sig}{}", signal_name(sig));
        }
    }
    match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "exited".to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

enum Frame {
    Msg(u8, Vec<u8>),
    End,
}

/// Why a request got no reply.
enum Failure {
    /// The worker died; `in_progress` is the 1-based index of the item it was on (0:
    /// none).
    Crashed { status: String, in_progress: usize },
    /// The call overran the time limit and the worker was killed.
    TimedOut { in_progress: usize },
}

impl Failure {
    fn in_progress(&self) -> usize {
        match self {
            Failure::Crashed { in_progress, .. } | Failure::TimedOut { in_progress } => {
                *in_progress
            }
        }
    }

    fn error(&self, pid: u32, timeout: Option<Duration>) -> NodeError {
        match self {
            Failure::Crashed { status, .. } => NodeError::new(
                ErrorKind::Crashed,
                format!("worker process {pid} {status} while processing this item"),
            ),
            Failure::TimedOut { .. } => NodeError::new(
                ErrorKind::Timeout,
                format!(
                    "no result within {} ms; worker process {pid} was killed",
                    timeout.map(|t| t.as_millis()).unwrap_or_default()
                ),
            ),
        }
    }
}

/// One worker process.
struct Worker {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    frames: flume::Receiver<Frame>,
    progress: tempfile::NamedTempFile,
    exited: Option<String>,
}

impl Worker {
    fn spawn(python: &str) -> Result<Worker, String> {
        let progress = tempfile::Builder::new()
            .prefix("remotemedia-worker-")
            .tempfile()
            .map_err(|e| format!("cannot create the worker's progress file: {e}"))?;
        progress
            .as_file()
            .set_len(8)
            .map_err(|e| format!("cannot size the worker's progress file: {e}"))?;
        let mut child = Command::new(python)
            .arg("-c")
            .arg(WORKER_SOURCE)
            .arg(crate::DRIVER_SOURCE)
            .arg(progress.path())
            .arg(python_log_level().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start `{python}`: {e}"))?;
        let stdin = BufWriter::with_capacity(1 << 16, child.stdin.take().expect("piped stdin"));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, frames) = flume::unbounded();
        std::thread::Builder::new()
            .name(format!("rm-worker-{}", child.id()))
            .spawn(move || {
                let mut r = std::io::BufReader::with_capacity(1 << 16, &mut stdout);
                loop {
                    match wire::read_frame(&mut r) {
                        Ok(Some((b'G', payload))) => forward_log(&payload),
                        Ok(Some((kind, payload))) => {
                            if tx.send(Frame::Msg(kind, payload)).is_err() {
                                return;
                            }
                        }
                        Ok(None) | Err(_) => {
                            let _ = tx.send(Frame::End);
                            return;
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the worker's reader thread: {e}"))?;
        Ok(Worker {
            child,
            stdin,
            frames,
            progress,
            exited: None,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn in_progress(&mut self) -> usize {
        let mut buf = [0u8; 8];
        let f = self.progress.as_file_mut();
        if f.seek(SeekFrom::Start(0)).is_err() || f.read_exact(&mut buf).is_err() {
            return 0;
        }
        i64::from_le_bytes(buf).max(0) as usize
    }

    fn died(&mut self) -> Failure {
        let in_progress = self.in_progress();
        let status = match self.child.wait() {
            Ok(s) => describe_status(s),
            Err(e) => format!("was lost ({e})"),
        };
        self.exited = Some(status.clone());
        Failure::Crashed {
            status,
            in_progress,
        }
    }

    fn send(&mut self, kind: u8, payload: &[u8]) -> Result<(), Failure> {
        if self.exited.is_some() {
            return Err(Failure::Crashed {
                status: self.exited.clone().unwrap_or_default(),
                in_progress: 0,
            });
        }
        wire::write_frame(&mut self.stdin, kind, payload).map_err(|_| self.died())
    }

    fn receive(&mut self, timeout: Option<Duration>) -> Result<(u8, Vec<u8>), Failure> {
        let got = match timeout {
            Some(t) => self.frames.recv_timeout(t).map_err(|e| match e {
                flume::RecvTimeoutError::Timeout => true,
                flume::RecvTimeoutError::Disconnected => false,
            }),
            None => self.frames.recv().map_err(|_| false),
        };
        match got {
            Ok(Frame::Msg(kind, payload)) => Ok((kind, payload)),
            Ok(Frame::End) | Err(false) => Err(self.died()),
            Err(true) => {
                let in_progress = self.in_progress();
                let _ = self.child.kill();
                let status = self
                    .child
                    .wait()
                    .map(describe_status)
                    .unwrap_or_else(|e| e.to_string());
                self.exited = Some(status);
                Err(Failure::TimedOut { in_progress })
            }
        }
    }

    fn request(
        &mut self,
        kind: u8,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<(u8, Vec<u8>), Failure> {
        self.send(kind, payload)?;
        self.receive(timeout)
    }

    /// Asks the worker to quit and waits a little; kills it if it does not.
    fn stop(&mut self) {
        if self.exited.is_some() {
            return;
        }
        let _ = wire::write_frame(&mut self.stdin, b'Q', &[]);
        let deadline = std::time::Instant::now() + EXIT_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        self.exited = Some("exited".into());
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn forward_log(payload: &[u8]) {
    if let Ok(Data::List(fields)) = Reader::new(payload).value() {
        if let [Data::Int(level), logger, node, message] = fields.as_slice() {
            emit_log(
                *level,
                logger.as_str().unwrap_or(""),
                node.as_str().unwrap_or(""),
                message.as_str().unwrap_or(""),
            );
        }
    }
}

/// Decodes an `E` frame: `(kind, message, traceback, compat)`.
fn error_frame(payload: &[u8]) -> (NodeError, bool) {
    match Reader::new(payload).value() {
        Ok(Data::Map(m)) => {
            let s = |k: &str| m.get(k).and_then(Data::as_str).unwrap_or("").to_string();
            let compat = matches!(m.get("compat"), Some(Data::Bool(true)));
            (
                python_error(&s("kind"), s("message"), s("traceback")),
                compat,
            )
        }
        _ => (
            NodeError::new(ErrorKind::Other, "malformed error frame from worker"),
            false,
        ),
    }
}

fn protocol_error(what: impl std::fmt::Display) -> NodeError {
    NodeError::new(ErrorKind::Other, format!("worker protocol error: {what}"))
}

/// The outcome of a batch reply, with the output count of each leading item so that
/// the outcome can be split per item.
struct Chunk {
    outcome: BatchOutcome,
    counts: Vec<usize>,
}

impl Chunk {
    fn into_items(self) -> Vec<ItemOutcome> {
        let mut outputs = self.outcome.outputs.into_iter();
        let mut items: Vec<ItemOutcome> = self
            .counts
            .iter()
            .map(|&n| ItemOutcome::Ok(outputs.by_ref().take(n).collect()))
            .collect();
        items.extend(self.outcome.tail);
        items
    }
}

fn parse_batch(payload: &[u8]) -> Result<Chunk, NodeError> {
    let mut r = Reader::new(payload);
    let n = r.u32().map_err(protocol_error)? as usize;
    let mut outcome = BatchOutcome {
        outputs: Vec::with_capacity(n),
        ..Default::default()
    };
    let mut counts = Vec::with_capacity(n);
    for _ in 0..n {
        match r.u8().map_err(protocol_error)? {
            0 => {
                let k = r.u32().map_err(protocol_error)? as usize;
                if outcome.tail.is_empty() {
                    for _ in 0..k {
                        outcome.outputs.push(r.value().map_err(protocol_error)?);
                    }
                    outcome.ok += 1;
                    counts.push(k);
                } else {
                    let mut outs = Vec::with_capacity(k);
                    for _ in 0..k {
                        outs.push(r.value().map_err(protocol_error)?);
                    }
                    outcome.tail.push(ItemOutcome::Ok(outs));
                }
            }
            1 => {
                let e = match r.value().map_err(protocol_error)? {
                    Data::List(f) => match f.as_slice() {
                        [kind, message, tb] => python_error(
                            kind.as_str().unwrap_or("python"),
                            message.as_str().unwrap_or("").to_string(),
                            tb.as_str().unwrap_or("").to_string(),
                        ),
                        _ => protocol_error("bad item error"),
                    },
                    _ => protocol_error("bad item error"),
                };
                outcome.tail.push(ItemOutcome::Err(e));
            }
            s => return Err(protocol_error(format!("bad item status {s}"))),
        }
    }
    Ok(Chunk { outcome, counts })
}

/// A node instance spread over worker processes.
pub struct ProcessInstance {
    python: String,
    load_payload: Vec<u8>,
    node_id: Option<String>,
    timeout: Option<Duration>,
    workers: Vec<Worker>,
}

/// Starts the workers of a node and loads the class in each.
pub fn load(spec: &NodeSpec) -> Result<Box<dyn Instance>, LoadError> {
    let python = python_executable(spec.python.as_deref());
    let mut map = DataMap::new();
    map.insert("node_id".into(), Data::text(&spec.class));
    let (module, source) = match &spec.origin {
        Origin::Module(m) => (Data::text(m), Data::Null),
        Origin::Source(s) => (Data::Null, Data::text(s)),
    };
    map.insert("module".into(), module);
    map.insert("source".into(), source);
    map.insert("class".into(), Data::text(&spec.class));
    map.insert("init".into(), spec.init.clone());
    map.insert(
        "python_path".into(),
        Data::list(spec.python_path.iter().map(Data::text).collect()),
    );
    let mut load_payload = Vec::new();
    wire::encode(&Data::map(map), &mut load_payload).map_err(|e| LoadError::Node {
        runtime: Runtime::Process,
        message: format!("init: {e}"),
        traceback: None,
        compat: false,
    })?;
    let mut inst = ProcessInstance {
        python,
        load_payload,
        node_id: None,
        timeout: spec.timeout,
        workers: Vec::new(),
    };
    for _ in 0..spec.workers.unwrap_or(1).max(1) {
        let w = inst.start_worker().map_err(|(e, compat)| match e.kind {
            ErrorKind::Resource => LoadError::Unavailable {
                runtime: Runtime::Process,
                reason: e.message,
            },
            _ => LoadError::Node {
                runtime: Runtime::Process,
                message: e.message,
                traceback: e.traceback,
                compat,
            },
        })?;
        inst.workers.push(w);
    }
    Ok(Box::new(inst))
}

impl ProcessInstance {
    /// Starts a worker, loads the class and, once the node is initialized, initializes
    /// the new instance too. The error's flag tells a compatibility failure.
    fn start_worker(&self) -> Result<Worker, (NodeError, bool)> {
        let mut w = Worker::spawn(&self.python)
            .map_err(|m| (NodeError::new(ErrorKind::Resource, m), true))?;
        let pid = w.pid();
        let gone = |f: Failure| {
            let status = match f {
                Failure::Crashed { status, .. } => status,
                Failure::TimedOut { .. } => "did not answer".into(),
            };
            (
                NodeError::new(
                    ErrorKind::Crashed,
                    format!(
                        "worker process {pid} ({}) {status} while loading",
                        self.python
                    ),
                ),
                false,
            )
        };
        match w.request(b'L', &self.load_payload, None).map_err(gone)? {
            (b'R', _) => {}
            (b'E', p) => return Err(error_frame(&p)),
            (k, _) => return Err((protocol_error(format!("unexpected frame {k}")), false)),
        }
        if let Some(id) = &self.node_id {
            let mut payload = Vec::new();
            let _ = wire::encode(&Data::text(id), &mut payload);
            match w.request(b'I', &payload, self.timeout).map_err(gone)? {
                (b'R', _) => {}
                (b'E', p) => return Err(error_frame(&p)),
                (k, _) => return Err((protocol_error(format!("unexpected frame {k}")), false)),
            }
        }
        Ok(w)
    }

    /// Replaces worker `w` with a fresh one.
    fn replace(&mut self, w: usize) -> Result<(), NodeError> {
        let fresh = self.start_worker().map_err(|(e, _)| e)?;
        let old = std::mem::replace(&mut self.workers[w], fresh);
        drop(old);
        Ok(())
    }

    fn send_batch(&mut self, w: usize, items: &[Data]) -> Result<(), Result<Failure, NodeError>> {
        let mut payload = Vec::with_capacity(5 + items.len() * 9);
        payload.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for d in items {
            wire::encode(d, &mut payload)
                .map_err(|e| Err(NodeError::invalid_input(e.to_string())))?;
        }
        self.workers[w].send(b'P', &payload).map_err(Ok)
    }

    fn receive_batch(&mut self, w: usize) -> Result<Chunk, Result<Failure, NodeError>> {
        match self.workers[w].receive(self.timeout).map_err(Ok)? {
            (b'B', payload) => parse_batch(&payload).map_err(Err),
            (k, _) => Err(Err(protocol_error(format!("unexpected frame {k}")))),
        }
    }

    /// Processes `items` on worker `w`. With `all`, continues past failures so that
    /// every item has an outcome; else stops at the first failure.
    fn run_on(&mut self, w: usize, items: &[Data], all: bool) -> Vec<ItemOutcome> {
        let mut done: Vec<ItemOutcome> = Vec::with_capacity(items.len());
        while done.len() < items.len() {
            let rest = &items[done.len()..];
            let reply = match self.send_batch(w, rest) {
                Ok(()) => self.receive_batch(w),
                Err(e) => Err(e),
            };
            match reply {
                Ok(chunk) => {
                    let failed = !chunk.outcome.tail.is_empty();
                    done.extend(chunk.into_items());
                    if failed && !all {
                        break;
                    }
                }
                Err(Err(e)) => {
                    done.push(ItemOutcome::Err(e));
                    if !all {
                        break;
                    }
                }
                Err(Ok(failure)) => {
                    let pid = self.workers[w].pid();
                    let k = failure.in_progress().saturating_sub(1).min(rest.len() - 1);
                    let error = failure.error(pid, self.timeout);
                    if let Err(e) = self.replace(w) {
                        // No worker to go on with: this item fails with both reasons.
                        let mut err = error;
                        err.message = format!("{}; replacing the worker failed: {e}", err.message);
                        done.push(ItemOutcome::Err(err));
                        break;
                    }
                    // The items before the one in progress lost their results with the
                    // worker: run them again on the fresh one.
                    if k > 0 {
                        let again = self.run_on(w, &rest[..k], true);
                        done.extend(again);
                    }
                    done.push(ItemOutcome::Err(error));
                    if !all {
                        break;
                    }
                }
            }
        }
        done
    }

    fn run_single(&mut self, items: &[Data]) -> BatchOutcome {
        // The fast path: one request, one reply.
        let reply = match self.send_batch(0, items) {
            Ok(()) => self.receive_batch(0),
            Err(e) => Err(e),
        };
        match reply {
            Ok(chunk) => chunk.outcome,
            Err(Err(e)) => BatchOutcome::from_items([ItemOutcome::Err(e)]),
            Err(Ok(failure)) => self.after_failure(items, failure),
        }
    }

    fn after_failure(&mut self, items: &[Data], failure: Failure) -> BatchOutcome {
        let pid = self.workers[0].pid();
        let k = failure
            .in_progress()
            .saturating_sub(1)
            .min(items.len().saturating_sub(1));
        let error = failure.error(pid, self.timeout);
        let mut results = Vec::with_capacity(k + 1);
        match self.replace(0) {
            Ok(()) => {
                if k > 0 {
                    results.extend(self.run_on(0, &items[..k], true));
                }
                results.push(ItemOutcome::Err(error));
            }
            Err(e) => {
                let mut err = error;
                err.message = format!("{}; replacing the worker failed: {e}", err.message);
                results.push(ItemOutcome::Err(err));
            }
        }
        BatchOutcome::from_items(results)
    }

    fn call_all(&mut self, kind: u8, payload: &[u8]) -> Result<(), NodeError> {
        let timeout = self.timeout;
        let mut first = None;
        for w in &mut self.workers {
            let pid = w.pid();
            let r = match w.request(kind, payload, timeout) {
                Ok((b'R', _)) => Ok(()),
                Ok((b'E', p)) => Err(error_frame(&p).0),
                Ok((k, _)) => Err(protocol_error(format!("unexpected frame {k}"))),
                Err(f) => Err(f.error(pid, timeout)),
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Instance for ProcessInstance {
    fn runtime(&self) -> Runtime {
        Runtime::Process
    }

    fn initialize(&mut self, node_id: &str) -> Result<(), NodeError> {
        self.node_id = Some(node_id.to_string());
        let mut payload = Vec::new();
        let _ = wire::encode(&Data::text(node_id), &mut payload);
        self.call_all(b'I', &payload)
    }

    fn run(&mut self, items: &[Data]) -> BatchOutcome {
        let n = self.workers.len();
        if n == 1 || items.len() < 2 * MIN_CHUNK {
            return self.run_single(items);
        }
        // Contiguous chunks, one per worker, sent before any reply is awaited.
        let chunks = n.min(items.len() / MIN_CHUNK).max(1);
        let size = items.len().div_ceil(chunks);
        let ranges: Vec<(usize, usize)> = (0..chunks)
            .map(|c| (c * size, ((c + 1) * size).min(items.len())))
            .filter(|(a, b)| a < b)
            .collect();
        let mut sent = Vec::with_capacity(ranges.len());
        for (w, &(a, b)) in ranges.iter().enumerate() {
            sent.push(self.send_batch(w, &items[a..b]));
        }
        let mut results: Vec<ItemOutcome> = Vec::with_capacity(items.len());
        for (w, (&(a, b), s)) in ranges.iter().zip(sent).enumerate() {
            let reply = match s {
                Ok(()) => self.receive_batch(w),
                Err(e) => Err(e),
            };
            let chunk = &items[a..b];
            match reply {
                Ok(c) => {
                    let mut got = c.into_items();
                    if got.len() < chunk.len() {
                        got.extend(self.run_on(w, &chunk[got.len()..], true));
                    }
                    results.extend(got);
                }
                Err(Err(e)) => {
                    results.push(ItemOutcome::Err(e));
                    results.extend(self.run_on(w, &chunk[1..], true));
                }
                Err(Ok(failure)) => {
                    let pid = self.workers[w].pid();
                    let k = failure.in_progress().saturating_sub(1).min(chunk.len() - 1);
                    let error = failure.error(pid, self.timeout);
                    match self.replace(w) {
                        Ok(()) => {
                            results.extend(self.run_on(w, &chunk[..k], true));
                            results.push(ItemOutcome::Err(error));
                            results.extend(self.run_on(w, &chunk[k + 1..], true));
                        }
                        Err(e) => {
                            let mut err = error;
                            err.message =
                                format!("{}; replacing the worker failed: {e}", err.message);
                            results.push(ItemOutcome::Err(err));
                            // Without a worker the rest of this batch cannot run; the
                            // outcomes stop here and the executor hands the rest back.
                            return BatchOutcome::from_items(results);
                        }
                    }
                }
            }
        }
        BatchOutcome::from_items(results)
    }

    fn finish(&mut self) -> Result<Vec<Data>, NodeError> {
        let mut all = Vec::new();
        for w in 0..self.workers.len() {
            let pid = self.workers[w].pid();
            let reply = self.workers[w]
                .request(b'F', &[], self.timeout)
                .map_err(|f| f.error(pid, self.timeout))?;
            let chunk = match reply {
                (b'B', p) => parse_batch(&p)?,
                (k, _) => return Err(protocol_error(format!("unexpected frame {k}"))),
            };
            for item in chunk.into_items() {
                match item {
                    ItemOutcome::Ok(mut v) => all.append(&mut v),
                    ItemOutcome::Err(e) => return Err(e),
                }
            }
        }
        Ok(all)
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        let r = self.call_all(b'C', &[]);
        for w in &mut self.workers {
            w.stop();
        }
        r
    }

    fn execution(&self) -> Execution {
        Execution::Dedicated
    }
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.stop();
        }
    }
}
