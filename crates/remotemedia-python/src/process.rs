//! The `process` host: CPython worker processes.
//!
//! Each node gets up to `workers` processes (default 1), each holding its own instance
//! of the class. One starts when the node is loaded; more start only when a batch is
//! large enough to be spread over them. The parent and a worker exchange frames of the
//! [`crate::wire`] format over the worker's stdin/stdout; a whole batch travels in one
//! frame each way. Node code in the worker sees stdin as /dev/null and its stdout goes
//! to stderr; `print` and `logging` behave as in the other hosts (log records travel as
//! frames).
//!
//! Before each item the worker writes the item's index into 8 bytes of memory shared
//! with the parent (a file with no name, passed as an open descriptor, so nothing is
//! left on disk however the run ends). When a worker crashes, is killed, or overruns
//! `timeout_ms` (and is then killed and reaped), the parent knows which item it was
//! on: that item fails (kind `crashed` with the exit status or signal, or `timeout`),
//! a fresh worker replaces the dead one (loading and initializing the class again —
//! state kept in `self` is lost with the process), the items of the batch before it
//! are run again there (their results died with the worker), and later items continue.
//!
//! With several workers a batch is split into contiguous chunks processed in parallel;
//! outputs keep the input order, and every item of a batch is processed even when an
//! earlier one fails (the executor is handed the outcomes in order).
//!
//! Workers never outlive the process that started them: they ignore SIGINT (a
//! terminal's Ctrl-C reaches the whole process group; the parent decides when they
//! end), on Linux they get SIGKILL when their parent dies, and each watches its stdin
//! pipe and exits when the parent's end closes, even in the middle of a call.
//! [`shutdown`] kills and reaps every worker at once, for a program that is exiting.

use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

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

/// The interpreter of the Python program this runtime is embedded in, when it is
/// (set once by the SDK's extension module).
static EMBEDDING_PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Says which interpreter the Python program embedding this runtime runs
/// (`sys.executable`): the default for worker processes after `REMOTEMEDIA_PYTHON`. The
/// first call wins.
pub fn set_embedding_python(executable: &str) {
    if !executable.is_empty() {
        let _ = EMBEDDING_PYTHON.set(executable.to_string());
    }
}

/// The interpreter the workers run: `python` from params, else `REMOTEMEDIA_PYTHON`,
/// else the interpreter of the Python program embedding the runtime (the SDK's), else
/// the active virtualenv's `python`, else the interpreter this crate was built
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
    if let Some(p) = EMBEDDING_PYTHON.get() {
        return p.clone();
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

/// The worker processes alive in this process, so that [`shutdown`] can end them all
/// whichever node owns them.
struct Live {
    inner: Mutex<LiveInner>,
}

struct LiveInner {
    children: Vec<Weak<Mutex<Child>>>,
    closed: bool,
}

impl Live {
    const fn new() -> Live {
        Live {
            inner: Mutex::new(LiveInner {
                children: Vec::new(),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LiveInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `cmd` unless [`Live::shutdown`] was called.
    fn spawn(&self, cmd: &mut Command) -> Result<Arc<Mutex<Child>>, String> {
        // Spawning under the lock: no worker can start after `shutdown` has swept.
        let mut live = self.lock();
        if live.closed {
            return Err("worker processes are shutting down".into());
        }
        let child = Arc::new(Mutex::new(cmd.spawn().map_err(|e| e.to_string())?));
        live.children.retain(|c| c.strong_count() > 0);
        live.children.push(Arc::downgrade(&child));
        Ok(child)
    }

    /// Kills and reaps every live child and refuses new ones; returns how many were
    /// still running.
    fn shutdown(&self) -> usize {
        let children = {
            let mut live = self.lock();
            live.closed = true;
            std::mem::take(&mut live.children)
        };
        let mut killed = 0;
        for child in children.iter().filter_map(Weak::upgrade) {
            let mut c = lock_child(&child);
            if let Ok(None) = c.try_wait() {
                killed += 1;
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        killed
    }
}

static LIVE: Live = Live::new();

/// Kills every worker process of this process and waits for them; workers asked for
/// afterwards fail to start (their items fail with kind `crashed`). For a program that
/// is exiting, e.g. on a signal: `cleanup()` does not run in killed workers, and calls
/// waiting on them fail. Returns how many workers were still running.
pub fn shutdown() -> usize {
    LIVE.shutdown()
}

fn lock_child(child: &Mutex<Child>) -> MutexGuard<'_, Child> {
    child.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits up to `grace` for `child` to exit, then kills it; always reaps it. Returns its
/// exit status, described.
fn end_child(child: &Mutex<Child>, grace: Duration) -> String {
    let deadline = Instant::now() + grace;
    loop {
        {
            // Locked per check only: `shutdown` may need the child meanwhile.
            let mut c = lock_child(child);
            match c.try_wait() {
                Ok(Some(s)) => return describe_status(s),
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => {
                    let _ = c.kill();
                    return match c.wait() {
                        Ok(s) => describe_status(s),
                        Err(e) => format!("was lost ({e})"),
                    };
                }
                Err(e) => return format!("was lost ({e})"),
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The 8 bytes in which a worker records the item it is on. On Unix the file has no
/// name (or loses it at once) and reaches the worker as an inherited descriptor, so it
/// cannot outlive the run.
struct Progress {
    #[cfg(unix)]
    file: std::fs::File,
    #[cfg(not(unix))]
    file: tempfile::NamedTempFile,
}

impl Progress {
    fn new() -> Result<Progress, String> {
        let fail = |e: std::io::Error| format!("cannot create the worker's progress file: {e}");
        #[cfg(unix)]
        let file = {
            use std::os::fd::{AsRawFd, FromRawFd};
            let f = tempfile::tempfile().map_err(fail)?;
            if f.as_raw_fd() < 3 {
                // With stdio closed, a new file may get descriptor 0-2, which the
                // worker's stdio replaces; move it above them.
                // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that only we own.
                let fd = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
                if fd < 0 {
                    return Err(fail(std::io::Error::last_os_error()));
                }
                // SAFETY: `fd` is a fresh descriptor owned by nothing else.
                unsafe { std::fs::File::from_raw_fd(fd) }
            } else {
                f
            }
        };
        #[cfg(not(unix))]
        let file = tempfile::Builder::new()
            .prefix("remotemedia-worker-")
            .tempfile()
            .map_err(fail)?;
        let p = Progress { file };
        p.as_file().set_len(8).map_err(fail)?;
        Ok(p)
    }

    fn as_file(&self) -> &std::fs::File {
        #[cfg(unix)]
        return &self.file;
        #[cfg(not(unix))]
        return self.file.as_file();
    }

    /// How the worker finds the file: `fd:N`, or a path where descriptors cannot be
    /// passed.
    fn arg(&self) -> String {
        #[cfg(unix)]
        return format!("fd:{}", std::os::fd::AsRawFd::as_raw_fd(&self.file));
        #[cfg(not(unix))]
        return self.file.path().to_string_lossy().into_owned();
    }

    /// The 1-based index of the item the worker is on (0: none).
    fn read(&self) -> usize {
        let mut buf = [0u8; 8];
        let mut f = self.as_file();
        if f.seek(SeekFrom::Start(0)).is_err() || f.read_exact(&mut buf).is_err() {
            return 0;
        }
        i64::from_le_bytes(buf).max(0) as usize
    }
}

/// The command starting one worker.
fn worker_command(python: &str, progress: &Progress) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(WORKER_SOURCE)
        .arg(crate::DRIVER_SOURCE)
        .arg(progress.arg())
        .arg(python_log_level().to_string())
        .arg(crate::AUDIO_BUFFER_SOURCE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    #[cfg(unix)]
    prepare_child(
        &mut cmd,
        std::os::fd::AsRawFd::as_raw_fd(progress.as_file()),
    );
    cmd
}

/// Sets up the forked worker before it runs Python: it inherits the progress file,
/// ignores SIGINT and, on Linux, dies with its parent.
#[cfg(unix)]
fn prepare_child(cmd: &mut Command, progress_fd: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    #[cfg(target_os = "linux")]
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe calls (fcntl, sigemptyset, sigaction, prctl, getppid); it
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r == -1 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            // Descriptors are close-on-exec by default; this one the worker keeps.
            check(libc::fcntl(progress_fd, libc::F_SETFD, 0))?;
            // A terminal's Ctrl-C reaches the whole process group: the parent ends its
            // workers itself, and Python would print a KeyboardInterrupt traceback. Set
            // before exec so that Python starts with SIGINT ignored and keeps it so.
            let mut ignore: libc::sigaction = std::mem::zeroed();
            ignore.sa_sigaction = libc::SIG_IGN;
            check(libc::sigemptyset(&mut ignore.sa_mask))?;
            check(libc::sigaction(libc::SIGINT, &ignore, std::ptr::null_mut()))?;
            #[cfg(target_os = "linux")]
            {
                // Killed when the parent dies, even by SIGKILL. (Strictly: when the
                // thread that started it ends. Workers start on the thread that builds
                // the plan or runs the node, which outlives the node in `run`, `serve`
                // and the SDK.)
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
                if libc::getppid() != parent {
                    // The parent died before the line above.
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
            Ok(())
        });
    }
}

/// One worker process.
struct Worker {
    child: Arc<Mutex<Child>>,
    pid: u32,
    stdin: BufWriter<ChildStdin>,
    frames: flume::Receiver<Frame>,
    progress: Progress,
    exited: Option<String>,
}

impl Worker {
    fn spawn(python: &str) -> Result<Worker, String> {
        let progress = Progress::new()?;
        let child = LIVE
            .spawn(&mut worker_command(python, &progress))
            .map_err(|e| format!("cannot start `{python}`: {e}"))?;
        let (pid, stdin, mut stdout) = {
            let mut c = lock_child(&child);
            (
                c.id(),
                c.stdin.take().expect("piped stdin"),
                c.stdout.take().expect("piped stdout"),
            )
        };
        let stdin = BufWriter::with_capacity(1 << 16, stdin);
        let (tx, frames) = flume::unbounded();
        let reader = std::thread::Builder::new()
            .name(format!("rm-worker-{pid}"))
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
            });
        let worker = Worker {
            child,
            pid,
            stdin,
            frames,
            progress,
            exited: None,
        };
        // Without its reader the worker is useless; dropping it ends the process.
        reader.map_err(|e| format!("cannot start the worker's reader thread: {e}"))?;
        Ok(worker)
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    fn died(&mut self) -> Failure {
        let in_progress = self.progress.read();
        // Its pipes are closed, so it is exiting; one that lingers is killed.
        let status = end_child(&self.child, EXIT_GRACE);
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
                let in_progress = self.progress.read();
                // Killed and reaped now: a timed-out worker never lingers.
                self.exited = Some(end_child(&self.child, Duration::ZERO));
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
        self.exited = Some(end_child(&self.child, EXIT_GRACE));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.exited.is_none() {
            end_child(&self.child, Duration::ZERO);
        }
    }
}

pub(crate) fn forward_log(payload: &[u8]) {
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
pub(crate) fn error_frame(payload: &[u8]) -> (NodeError, bool) {
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
pub(crate) struct Chunk {
    outcome: BatchOutcome,
    counts: Vec<usize>,
}

impl Chunk {
    pub(crate) fn into_items(self) -> Vec<ItemOutcome> {
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

pub(crate) fn parse_batch(payload: &[u8]) -> Result<Chunk, NodeError> {
    let mut r = Reader::new(payload);
    let n = r.u32().map_err(protocol_error)? as usize;
    // Counts come from the worker: reserve no more than the payload could hold (an
    // item takes at least one byte), so a corrupt count fails on decoding instead of
    // asking for gigabytes.
    let mut outcome = BatchOutcome {
        outputs: Vec::with_capacity(n.min(r.remaining())),
        ..Default::default()
    };
    let mut counts = Vec::with_capacity(n.min(r.remaining()));
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
                    let mut outs = Vec::with_capacity(k.min(r.remaining()));
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
    /// The most workers to run (param `workers`); beyond the first they start when a
    /// batch can be spread over them.
    max_workers: usize,
}

/// Starts the node's first worker and loads the class in it.
pub fn load(spec: &NodeSpec) -> Result<Box<dyn Instance>, LoadError> {
    start(spec).map(|i| Box::new(i) as Box<dyn Instance>)
}

fn start(spec: &NodeSpec) -> Result<ProcessInstance, LoadError> {
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
        max_workers: spec.workers.unwrap_or(1).max(1),
    };
    let first = inst.start_workers(1).map_err(|(e, compat)| match e.kind {
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
    inst.workers = first;
    Ok(inst)
}

impl ProcessInstance {
    /// Starts `n` workers, loads the class and, once the node is initialized,
    /// initializes the new instances too. The error's flag tells a compatibility
    /// failure.
    fn start_workers(&self, n: usize) -> Result<Vec<Worker>, (NodeError, bool)> {
        let mut fresh = Vec::with_capacity(n);
        for _ in 0..n {
            fresh.push(
                Worker::spawn(&self.python)
                    .map_err(|m| (NodeError::new(ErrorKind::Resource, m), true))?,
            );
        }
        self.handshake(&mut fresh, b'L', &self.load_payload, None, "loading")?;
        if let Some(id) = &self.node_id {
            let mut payload = Vec::new();
            let _ = wire::encode(&Data::text(id), &mut payload);
            self.handshake(&mut fresh, b'I', &payload, self.timeout, "initializing")?;
        }
        Ok(fresh)
    }

    /// Sends one request to each of `workers` before awaiting any reply (so their
    /// start-ups overlap) and checks that every one answers `R`.
    fn handshake(
        &self,
        workers: &mut [Worker],
        kind: u8,
        payload: &[u8],
        timeout: Option<Duration>,
        doing: &str,
    ) -> Result<(), (NodeError, bool)> {
        let sent: Vec<Result<(), Failure>> =
            workers.iter_mut().map(|w| w.send(kind, payload)).collect();
        let mut first = None;
        for (w, sent) in workers.iter_mut().zip(sent) {
            let pid = w.pid();
            let r = match sent.and_then(|()| w.receive(timeout)) {
                Ok((b'R', _)) => Ok(()),
                Ok((b'E', p)) => Err(error_frame(&p)),
                Ok((k, _)) => Err((protocol_error(format!("unexpected frame {k}")), false)),
                Err(f) => {
                    let status = match f {
                        Failure::Crashed { status, .. } => status,
                        Failure::TimedOut { .. } => "did not answer".into(),
                    };
                    Err((
                        NodeError::new(
                            ErrorKind::Crashed,
                            format!(
                                "worker process {pid} ({}) {status} while {doing}",
                                self.python
                            ),
                        ),
                        false,
                    ))
                }
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Replaces worker `w`, which failed with `why`, with a fresh one.
    fn replace(&mut self, w: usize, why: &NodeError) -> Result<(), NodeError> {
        let old_pid = self.workers[w].pid();
        let fresh = match self.start_workers(1) {
            Ok(mut f) => f.pop().expect("one worker"),
            Err((e, _)) => {
                tracing::info!(
                    target: "remotemedia::python",
                    node = self.node_id.as_deref().unwrap_or(""),
                    pid = old_pid,
                    reason = %why.message,
                    error = %e.message,
                    "worker process failed and could not be replaced"
                );
                return Err(e);
            }
        };
        tracing::info!(
            target: "remotemedia::python",
            node = self.node_id.as_deref().unwrap_or(""),
            pid = old_pid,
            new_pid = fresh.pid(),
            kind = %why.kind,
            reason = %why.message,
            "worker process replaced"
        );
        let old = std::mem::replace(&mut self.workers[w], fresh);
        drop(old);
        Ok(())
    }

    /// Starts workers up to `want` (at most `workers`). When that fails the node goes
    /// on with those it has: the failure is logged and no more are tried.
    fn grow(&mut self, want: usize) {
        let want = want.min(self.max_workers);
        if want <= self.workers.len() {
            return;
        }
        match self.start_workers(want - self.workers.len()) {
            Ok(mut fresh) => {
                tracing::debug!(
                    target: "remotemedia::python",
                    node = self.node_id.as_deref().unwrap_or(""),
                    started = fresh.len(),
                    workers = self.workers.len() + fresh.len(),
                    "more worker processes for a large batch"
                );
                self.workers.append(&mut fresh);
            }
            Err((e, _)) => {
                tracing::warn!(
                    target: "remotemedia::python",
                    node = self.node_id.as_deref().unwrap_or(""),
                    "cannot start more worker processes, going on with {}: {}",
                    self.workers.len(),
                    e.message
                );
                self.max_workers = self.workers.len();
            }
        }
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
                    if let Err(e) = self.replace(w, &error) {
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
        match self.replace(0, &error) {
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
        if items.len() < 2 * MIN_CHUNK {
            return self.run_single(items);
        }
        self.grow(items.len() / MIN_CHUNK);
        let n = self.workers.len();
        if n == 1 {
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
                    match self.replace(w, &error) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: &str) -> NodeSpec {
        let mut spec = NodeSpec::source(source, "Node");
        spec.runtime = Some(Runtime::Process);
        spec
    }

    fn ints(range: std::ops::Range<i64>) -> Vec<Data> {
        range.map(Data::Int).collect()
    }

    /// Checks `done` every few milliseconds until it holds or `limit` has passed.
    fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        done()
    }

    fn process_frame(items: &[Data]) -> Vec<u8> {
        let mut payload = (items.len() as u32).to_le_bytes().to_vec();
        for d in items {
            wire::encode(d, &mut payload).unwrap();
        }
        payload
    }

    #[test]
    fn workers_start_when_a_batch_can_be_spread_over_them() {
        let src = "import os\nclass Node:\n    def initialize(self):\n        self.ready = True\n    def process(self, x):\n        return [os.getpid(), self.ready]\n";
        let mut spec = spec(src);
        spec.workers = Some(3);
        let mut inst = start(&spec).unwrap();
        inst.initialize("py").unwrap();
        assert_eq!(inst.workers.len(), 1, "one worker until there is work");
        for n in [1, 2 * MIN_CHUNK as i64 - 1] {
            let out = inst.run(&ints(0..n));
            assert_eq!(out.ok, n as usize);
            assert_eq!(
                inst.workers.len(),
                1,
                "{n} items are not worth a second worker"
            );
        }
        let out = inst.run(&ints(0..10 * MIN_CHUNK as i64));
        assert_eq!(out.ok, 10 * MIN_CHUNK);
        assert_eq!(inst.workers.len(), 3);
        // Every worker ran a share, each in its own initialized instance.
        let mut pids: Vec<i64> = out
            .outputs
            .iter()
            .map(|d| match d.as_list() {
                Some(v) if v.get(1) == Some(&Data::Bool(true)) => v[0].as_i64().unwrap(),
                _ => panic!("{d:?}"),
            })
            .collect();
        pids.dedup();
        assert_eq!(pids.len(), 3, "{pids:?}");
        inst.cleanup().unwrap();
    }

    #[test]
    fn a_busy_worker_exits_when_its_parent_end_of_stdin_closes() {
        let src = "import time\nclass Node:\n    def process(self, x):\n        time.sleep(600)\n";
        let mut inst = start(&spec(src)).unwrap();
        let w = &mut inst.workers[0];
        assert!(w.send(b'P', &process_frame(&ints(1..2))).is_ok());
        assert!(eventually(Duration::from_secs(10), || w.progress.read() == 1));
        // What the parent's death does to the pipe (the parent here stays alive, so
        // no parent-death signal is involved): its end closes.
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(w.stdin.get_ref());
        // SAFETY: replaces the descriptor `w.stdin` owns with /dev/null, closing
        // the pipe; `w.stdin` stays the owner of a valid descriptor.
        assert_eq!(
            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) },
            fd
        );
        let child = Arc::clone(&w.child);
        assert!(
            eventually(Duration::from_secs(10), || matches!(
                lock_child(&child).try_wait(),
                Ok(Some(_))
            )),
            "the worker is still running"
        );
    }

    #[test]
    fn workers_ignore_sigint() {
        let src = "import time\nclass Node:\n    def process(self, x):\n        time.sleep(0.5)\n        return x\n";
        let mut inst = start(&spec(src)).unwrap();
        let w = &mut inst.workers[0];
        assert!(w.send(b'P', &process_frame(&ints(7..8))).is_ok());
        assert!(eventually(Duration::from_secs(10), || w.progress.read() == 1));
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(w.pid() as i32, libc::SIGINT) }, 0);
        let reply = w.receive(Some(Duration::from_secs(30))).ok().unwrap();
        assert_eq!(reply.0, b'B');
        let chunk = parse_batch(&reply.1).unwrap();
        assert!(chunk.outcome.tail.is_empty(), "{:?}", chunk.outcome.tail);
        assert_eq!(chunk.outcome.outputs, ints(7..8));
        inst.cleanup().unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_progress_file_has_no_name() {
        let p = Progress::new().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(p.as_file());
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(link.to_string_lossy().ends_with("(deleted)"), "{link:?}");
    }

    #[test]
    fn shutdown_kills_and_reaps_every_child_and_refuses_new_ones() {
        let live = Live::new();
        let sleeper = || {
            let mut c = Command::new(python_executable(None));
            c.args(["-c", "import time; time.sleep(600)"]);
            c
        };
        let children = [
            live.spawn(&mut sleeper()).unwrap(),
            live.spawn(&mut sleeper()).unwrap(),
        ];
        let pids: Vec<u32> = children.iter().map(|c| lock_child(c).id()).collect();
        assert_eq!(live.shutdown(), 2);
        for (c, pid) in children.iter().zip(pids) {
            assert!(matches!(lock_child(c).try_wait(), Ok(Some(_))));
            // Reaped: not even a zombie is left under that pid.
            // SAFETY: kill(2) with signal 0 only checks that the process exists.
            assert_eq!(unsafe { libc::kill(pid as i32, 0) }, -1, "pid {pid}");
        }
        let refused = live.spawn(&mut sleeper()).err().unwrap();
        assert!(refused.contains("shutting down"), "{refused}");
        assert_eq!(live.shutdown(), 0);
    }
}
