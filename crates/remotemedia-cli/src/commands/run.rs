//! `remotemedia run MANIFEST [--input FILE|-] [--input-format F:RATE:CH] [--chunk-ms N]
//! [--output FILE|-] [--output-format F] [--realtime] [--metrics FILE]
//! [--executor NAME=HOST:PORT]… [--policy P]`.
//!
//! Input is JSON Lines, or audio (recognised by its first bytes, decoded as it is
//! read) or raw PCM, cut into `--chunk-ms` chunks; output is JSON Lines, or the single
//! sink's audio as WAV or raw PCM (see [`output`]).
//!
//! SIGINT / SIGTERM stop a run cleanly (see [`supervise`]) and make the exit code
//! 128 + the signal.

// Signals are handled on Unix only; elsewhere the stopping machinery goes unused.
#![cfg_attr(not(unix), allow(dead_code))]

use std::io::{BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use remotemedia_core::executor::{
    start_session, CancelToken, RunOptions, RunResult, SessionSender,
};
use remotemedia_core::metrics::peak_rss_bytes;
use remotemedia_core::plan::Plan;
use remotemedia_core::Data;
use remotemedia_remote::stage::ReportData;
use remotemedia_runtime::PrepareError;
use serde_json::json;

use crate::cli::RunArgs;
use crate::{EXIT_INVALID, EXIT_RUN_FAILED};

pub(crate) mod input;
mod output;
#[cfg(unix)]
mod signals;

use input::Pacer;
use output::{Output, OutputError, OutputKind};

/// Runs the pipeline, streaming input lines in and output lines out.
pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let registry = super::registry();
    let pipeline = match super::load_manifest(&args.manifest, &registry) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("error: {} is not a valid manifest", args.manifest.display());
            return Ok(EXIT_INVALID);
        }
    };
    if !(args.chunk_ms.is_finite() && args.chunk_ms > 0.0) {
        eprintln!("error: --chunk-ms must be above 0, got {}", args.chunk_ms);
        return Ok(EXIT_INVALID);
    }
    let pcm_spec = match args
        .input_format
        .as_deref()
        .map(str::parse::<remotemedia_audio::pcm::PcmSpec>)
    {
        None => None,
        Some(Ok(spec)) => Some(spec),
        Some(Err(e)) => {
            eprintln!("error: --input-format: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let output_kind = match output::choose(&args.output, args.output_format.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    if let Some(input) = args.input.as_deref().filter(|i| *i != "-") {
        if args.output != "-" && output::same_file(Path::new(input), Path::new(&args.output)) {
            eprintln!(
                "error: --input and --output are the same file ({}): writing the outputs would \
                 destroy the input",
                args.output
            );
            return Ok(EXIT_INVALID);
        }
    }
    // Placement: only when executors are configured or nodes ask for something.
    let sources = super::plan::sources(&args.remote);
    let runnable =
        match remotemedia_runtime::prepare(pipeline, registry, &sources, &mut |w| crate::warn(w)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                if let Some(hint) = e.hint() {
                    eprintln!("{hint}");
                }
                return Ok(match e {
                    PrepareError::Config(_) => EXIT_INVALID,
                    _ => EXIT_RUN_FAILED,
                });
            }
        };
    let (pipeline, registry, remote_report) =
        (runnable.pipeline, runnable.registry, runnable.remote);

    if output_kind != OutputKind::Jsonl {
        let sinks = sink_ids(&pipeline);
        if sinks.len() != 1 {
            eprintln!(
                "error: --output {} writes one sink's audio, but the pipeline has {} sinks: {}",
                args.output,
                sinks.len(),
                sinks.join(", ")
            );
            return Ok(EXIT_INVALID);
        }
    }
    let input = match args.input.as_deref() {
        None => {
            // Without --input the pipeline gets no items (its sources make their own).
            // Data piped in is then almost surely meant as input: say how to read it.
            let has_source = pipeline
                .nodes
                .iter()
                .any(|n| registry.get(&n.node_type).is_some_and(|f| f.is_source()));
            if !has_source && stdin_is_data() {
                crate::warn(
                    "stdin is a pipe or file, but without --input no items are read from it; \
                     give `--input -` to read them",
                );
            }
            None
        }
        Some(name) => match input::open(name, pcm_spec, args.chunk_ms) {
            Ok(i) => Some(i),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(EXIT_INVALID);
            }
        },
    };
    // Audio chunks are large: batches of one second of them keep every queue at a few
    // seconds of audio, so memory does not grow with the length of the file.
    let batch_size = match (&input, args.batch_size) {
        // Bounded when parsed (`cli::MAX_BATCH`), so it fits.
        (_, Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        (Some(input::Input::Audio(_)), None) => (1000.0 / args.chunk_ms).ceil().max(1.0) as usize,
        _ => DEFAULT_BATCH,
    };
    // A file is written under a temporary name and put in place once the run has
    // started: a run that cannot start leaves an existing file as it was.
    let (pending, file) = if args.output == "-" {
        (None, None)
    } else {
        let (p, f) = output::PendingFile::create(Path::new(&args.output))
            .with_context(|| format!("cannot create output {}", args.output))?;
        (Some(p), Some(f))
    };
    let written_path = pending
        .as_ref()
        .map_or_else(|| PathBuf::from(&args.output), |p| p.path().to_path_buf());
    let out = Output::new(output_kind, &args.output, &written_path, || {
        Ok(match file {
            None => Box::new(BufWriter::new(std::io::stdout())),
            Some(f) => Box::new(BufWriter::new(f)),
        })
    })
    .with_context(|| format!("cannot create output {}", args.output))?;
    let progress = progress_bar(args.no_progress);
    let stop = Arc::new(Stop::new(out, pending, progress.clone()));
    // However `run` returns, an output file not put in place is removed (other threads
    // may hold `stop` until the process exits).
    let _discard = DiscardOutput(&stop);
    // From here on a signal stops the run rather than the process.
    let waker = supervise(&stop);

    let options = RunOptions {
        batch_size,
        channel_capacity: usize::try_from(args.queue_capacity).unwrap_or(usize::MAX),
        force_threads: true,
        cancel: stop.cancel.clone(),
    };
    let plan = match Plan::build(&pipeline, &registry) {
        Ok(p) => p,
        Err(e) => {
            if let Some(code) = stop.finish_interrupted() {
                return Ok(code);
            }
            eprintln!("error: {e}");
            return Ok(EXIT_RUN_FAILED);
        }
    };
    if plan.roots.is_empty() && input.is_some() {
        let sources: Vec<&str> = plan
            .stages
            .iter()
            .filter(|s| s.is_source())
            .map(|s| &*s.nodes[0].ctx.node_id)
            .collect();
        eprintln!(
            "error: --input {} is not used: the pipeline's only starting nodes are sources ({}), \
             which make their own items",
            args.input.as_deref().unwrap_or_default(),
            sources
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(EXIT_INVALID);
    }
    let session = match start_session(plan, &options) {
        Ok(s) => s,
        Err(e) => {
            if let Some(code) = stop.finish_interrupted() {
                return Ok(code);
            }
            eprintln!("error: {e}");
            return Ok(EXIT_RUN_FAILED);
        }
    };
    // From here on the output file replaces an existing one, also after a failure: it
    // holds the outputs of the items before it.
    stop.started.store(true, Ordering::SeqCst);
    let (sender, mut receiver) = session.into_split();
    let sinks = receiver.sink_ids().to_vec();
    let several = sinks.len() > 1;
    stop.set_input(sender);

    // Stdin may be interactive: no item waits for more input. Files are read in batches.
    let interactive = args.input.as_deref() == Some("-");
    let (input_tx, input_rx) = mpsc::channel();
    stop.set_input_done(input_tx.clone());
    let feeder = Arc::clone(&stop);
    // Stream time 0 of a paced input, and of the latencies measured against it.
    let start = Instant::now();
    let realtime = args.realtime;
    let max_line = usize::try_from(args.max_line_bytes).unwrap_or(usize::MAX);
    thread::Builder::new()
        .name("rm-input".into())
        .spawn(move || {
            let pacer = realtime.then(|| Pacer::new(start));
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match input {
                None => Ok(0),
                Some(i) => input::feed(i, batch_size, interactive, max_line, pacer.as_ref(), |b| {
                    feeder.send(b)
                }),
            }));
            // Taking the sender ends the stream.
            feeder.close_input();
            let _ = input_tx.send(Some(
                read.unwrap_or_else(|_| Err("input thread panicked".into())),
            ));
        })
        .context("cannot start input thread")?;

    let mut latency = (realtime && args.metrics.is_some()).then(Latency::default);
    let mut write_error: Option<OutputError> = None;
    while let Some((sink, batch)) = receiver.recv_batch() {
        if let Some(l) = latency.as_mut() {
            l.record(start, &batch);
        }
        if write_error.is_some() {
            continue; // keep draining so the pipeline can finish
        }
        let mut out = lock(&stop.out);
        for item in &batch {
            let label = several.then(|| sinks[sink].as_str());
            if let Err(e) = out.write(&sinks[sink], label, item) {
                write_error = Some(e);
                break;
            }
            stop.written.fetch_add(1, Ordering::Relaxed);
        }
        // Items typed on stdin get their outputs at once, not when a buffer fills.
        if interactive && write_error.is_none() {
            if let Err(e) = out.flush() {
                write_error = Some(e);
            }
        }
        drop(out);
        if write_error.is_some() {
            // Nothing more can be written: stop reading and let the run drain.
            stop.abandon();
        }
        if let Some(p) = &progress {
            p.set_position(stop.written.load(Ordering::Relaxed));
        }
    }
    // The reader's result, or `None` when a signal stopped the input (the reader may
    // still be blocked on a read that never returns: it is left behind).
    let input_result = input_rx.recv().unwrap_or(None);
    let finished = receiver.finish();
    // Every node has been cleaned up; workers left running by calls abandoned after
    // a timeout are of no more use.
    remotemedia_python::process::shutdown();
    let (result, failure) = match finished {
        Ok(r) => (r, None),
        Err(f) => (*f.partial, Some(f.error)),
    };
    // Outputs produced but not yet received (after a failure) are still written.
    {
        let mut out = lock(&stop.out);
        for s in &result.outputs {
            if let Some(l) = latency.as_mut() {
                l.record(start, &s.items);
            }
            for item in &s.items {
                let label = several.then_some(s.sink.as_str());
                if write_error.is_none() {
                    match out.write(&s.sink, label, item) {
                        Ok(()) => {
                            stop.written.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => write_error = Some(e),
                    }
                }
            }
        }
        // A WAV file is finalized whatever happened before: it stays valid.
        if let Err(e) = out.finish() {
            if !matches!(write_error, Some(OutputError::Closed)) {
                write_error.get_or_insert(e);
            }
        }
    }
    if let Err(e) = stop.commit_output() {
        write_error.get_or_insert(OutputError::Io(format!("{}: {e}", args.output)));
    }
    if let Some(w) = &waker {
        w.wake();
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }

    let remote = remote_report.map(|r| r.snapshot());
    if let Some(path) = &args.metrics {
        write_metrics(
            path,
            &result,
            failure.as_ref(),
            remote.clone(),
            latency.as_ref(),
        )?;
    }
    if matches!(write_error, Some(OutputError::Closed)) && stop.signal.load(Ordering::SeqCst) == 0 {
        // Whoever read the output has stopped (`| head -1`): what they read is all
        // they wanted, so the run ends quietly; what it stopped is an echo of that.
        return Ok(0);
    }
    if let Some(code) = stop.finish_interrupted() {
        // One line: errors and warnings after a signal are mostly its echoes
        // (cancelled calls, killed workers); the metrics file has them all.
        return Ok(code);
    }
    if let Some(r) = &remote {
        for e in &r.events {
            crate::warn(e);
        }
        for skipped in &r.skipped {
            crate::warn(format_args!("skipped item: {skipped}"));
        }
        for e in &r.cleanup_errors {
            crate::warn(e);
        }
    }
    for skipped in &result.skipped {
        crate::warn(format_args!("skipped item: {skipped}"));
    }
    for e in &result.cleanup_errors {
        crate::warn(e);
    }
    if let Some(e) = write_error {
        eprintln!("error: {e}");
        return Ok(EXIT_RUN_FAILED);
    }
    let mut code = 0;
    if let Some(Err(message)) = input_result {
        eprintln!("error: {message}");
        code = EXIT_INVALID;
    }
    if let Some(e) = failure {
        eprintln!("error: {e}");
        code = EXIT_RUN_FAILED;
    }
    Ok(code)
}

/// Items per batch unless `--batch-size` says otherwise.
const DEFAULT_BATCH: usize = 256;

/// How long a run stopped by a signal gets to end by itself (calls in progress return,
/// every node is cleaned up) before its worker processes are killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long it then gets to end after its workers were killed (a call waiting on one
/// returns), before the process exits anyway.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// Where the reader's result goes: the number of items read or the bad line, or
/// `None` when a signal stopped the input.
type InputDone = mpsc::Sender<Option<Result<u64, String>>>;

/// A run as seen by the signal supervisor: what it needs to stop it, and to exit
/// without it when it does not stop in time.
struct Stop {
    cancel: CancelToken,
    /// The session's input while it is open; taking it ends the stream.
    input: Mutex<Option<SessionSender>>,
    /// Where the main thread waits for the reader; a signal sends `None` there.
    input_done: Mutex<Option<InputDone>>,
    /// The first signal received; 0 before.
    signal: AtomicI32,
    /// Output items written so far.
    written: AtomicU64,
    /// Whether the run was stopped because the output could not take more.
    closed: AtomicBool,
    /// Whether the summary line was printed (the main thread and the supervisor may
    /// both get there when the run ends just as the supervisor gives up on it).
    reported: AtomicBool,
    out: Mutex<Output>,
    /// The output file until it is put in place.
    pending: Mutex<Option<output::PendingFile>>,
    /// Whether the session started: the output file then replaces the one asked for
    /// whatever happens.
    started: AtomicBool,
    progress: Option<ProgressBar>,
}

/// Removes the output file of a run that ends without putting it in place.
struct DiscardOutput<'a>(&'a Stop);

impl Drop for DiscardOutput<'_> {
    fn drop(&mut self) {
        drop(lock(&self.0.pending).take());
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stop {
    fn new(
        out: Output,
        pending: Option<output::PendingFile>,
        progress: Option<ProgressBar>,
    ) -> Stop {
        Stop {
            cancel: CancelToken::new(),
            input: Mutex::new(None),
            input_done: Mutex::new(None),
            signal: AtomicI32::new(0),
            written: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            reported: AtomicBool::new(false),
            out: Mutex::new(out),
            pending: Mutex::new(pending),
            started: AtomicBool::new(false),
            progress,
        }
    }

    /// Puts the output file in place once the session started (else removes it).
    fn commit_output(&self) -> std::io::Result<()> {
        match lock(&self.pending).take() {
            Some(p) if self.started.load(Ordering::SeqCst) => p.commit(),
            _ => Ok(()),
        }
    }

    /// Opens the input, unless a signal came first.
    fn set_input(&self, sender: SessionSender) {
        let mut input = lock(&self.input);
        if self.signal.load(Ordering::SeqCst) == 0 {
            *input = Some(sender);
        }
    }

    /// Sends a batch; false once the input is closed or the run has failed.
    fn send(&self, batch: Vec<Data>) -> bool {
        // A clone per batch: the slot is never locked while a send blocks, so a signal
        // can always close the input.
        let sender = lock(&self.input).clone();
        sender.is_some_and(|s| s.send_batch(batch).is_ok())
    }

    /// Where to say that a signal stopped the input (at once if one came already).
    fn set_input_done(&self, tx: InputDone) {
        let mut slot = lock(&self.input_done);
        if self.signal.load(Ordering::SeqCst) == 0 {
            *slot = Some(tx);
        } else {
            let _ = tx.send(None);
        }
    }

    fn close_input(&self) {
        lock(&self.input).take();
    }

    /// The output cannot take more: cancel the run, stop reading input and stop
    /// waiting for the reader (which may be blocked on a read that never returns).
    fn abandon(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.cancel.cancel();
        self.close_input();
        if let Some(tx) = lock(&self.input_done).take() {
            let _ = tx.send(None);
        }
    }

    /// The first signal: cancel the run, stop reading input, stop waiting for the
    /// reader.
    fn interrupt(&self, sig: i32) {
        self.signal.store(sig, Ordering::SeqCst);
        self.cancel.cancel();
        self.close_input();
        if let Some(tx) = lock(&self.input_done).take() {
            let _ = tx.send(None);
        }
    }

    fn summary(&self) -> String {
        let sig = self.signal.load(Ordering::SeqCst);
        let n = self.written.load(Ordering::Relaxed);
        let items = if n == 1 { "item" } else { "items" };
        format!(
            "interrupted by {}: stopped after {n} {items}",
            signals_name(sig)
        )
    }

    /// After a signal: prints the summary and gives the exit code, 128 + the signal.
    fn finish_interrupted(&self) -> Option<u8> {
        let sig = self.signal.load(Ordering::SeqCst);
        if sig == 0 {
            return None;
        }
        remotemedia_python::process::shutdown();
        if !self.reported.swap(true, Ordering::SeqCst) {
            eprintln!("{}", self.summary());
        }
        Some(exit_code(sig))
    }

    /// Ends the process now: kills the worker processes, writes out what is buffered
    /// (unless the writer is stuck) and exits with 128 + the signal.
    fn exit_now(&self, why: &str) -> ! {
        remotemedia_python::process::shutdown();
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            match self.out.try_lock() {
                Ok(mut out) => {
                    let _ = out.flush();
                    break;
                }
                Err(TryLockError::Poisoned(p)) => {
                    let _ = p.into_inner().flush();
                    break;
                }
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => break,
            }
        }
        if let Some(p) = &self.progress {
            p.finish_and_clear();
        }
        // Destructors do not run after `exit`: the file goes in place (or away) now.
        if let Ok(mut slot) = self.pending.try_lock() {
            if let Some(p) = slot.take() {
                if self.started.load(Ordering::SeqCst) {
                    let _ = p.commit();
                }
            }
        }
        if !self.reported.swap(true, Ordering::SeqCst) {
            eprintln!("{}; {why}", self.summary());
        }
        std::process::exit(i32::from(exit_code(self.signal.load(Ordering::SeqCst))));
    }
}

fn exit_code(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(u8::MAX)
}

#[cfg(unix)]
fn signals_name(sig: i32) -> &'static str {
    signals::name(sig)
}

#[cfg(not(unix))]
fn signals_name(_sig: i32) -> &'static str {
    "a signal"
}

/// Starts the signal supervisor of a run: on the first SIGINT or SIGTERM it cancels
/// the run and closes its input; the run then ends as usual (outputs flushed, every
/// node cleaned up) with exit code 128 + the signal. A run still going after
/// [`STOP_GRACE`] has its worker processes killed, and after [`KILL_GRACE`] more (or
/// at once, at a second signal) the process exits without it. Returns the handle that
/// tells the supervisor the run has ended.
#[cfg(unix)]
fn supervise(stop: &Arc<Stop>) -> Option<signals::Waker> {
    let installed = signals::Signals::install().and_then(|s| {
        let waker = s.waker()?;
        Ok((s, waker))
    });
    let (mut signals, waker) = match installed {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot handle signals, Ctrl-C will not stop cleanly: {e}");
            return None;
        }
    };
    let stop = Arc::clone(stop);
    let started = thread::Builder::new()
        .name("rm-signals".into())
        .spawn(move || {
            use signals::Next;
            let sig = loop {
                match signals.next(None) {
                    Next::Signal(sig) => break sig,
                    // The run is over: a signal now ends the process at once.
                    Next::Woken => {
                        if let Next::Signal(sig) = signals.next(None) {
                            stop.signal.store(sig, Ordering::SeqCst);
                            stop.exit_now("the run had ended");
                        }
                    }
                    Next::Timeout => {}
                }
            };
            stop.interrupt(sig);
            let mut deadline = Instant::now() + STOP_GRACE;
            let mut killed = false;
            loop {
                match signals.next(Some(deadline)) {
                    Next::Woken => return,
                    Next::Signal(_) => stop.exit_now("a second signal"),
                    Next::Timeout if !killed => {
                        killed = true;
                        if remotemedia_python::process::shutdown() == 0 {
                            stop.exit_now("a node call did not return");
                        }
                        deadline = Instant::now() + KILL_GRACE;
                    }
                    Next::Timeout => stop.exit_now("a node call did not return"),
                }
            }
        });
    match started {
        Ok(_) => Some(waker),
        Err(e) => {
            tracing::warn!("cannot handle signals, Ctrl-C will not stop cleanly: {e}");
            None
        }
    }
}

/// Without Unix signals the default handling stays.
#[cfg(not(unix))]
fn supervise(_stop: &Arc<Stop>) -> Option<NoWaker> {
    None
}

#[cfg(not(unix))]
struct NoWaker;

#[cfg(not(unix))]
impl NoWaker {
    fn wake(&self) {}
}

fn progress_bar(disabled: bool) -> Option<ProgressBar> {
    if disabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let p = ProgressBar::new_spinner();
    p.set_style(
        ProgressStyle::with_template("{spinner} {pos} items out ({rate}) {elapsed}")
            .map(|s| {
                s.with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        // Whole items per second: indicatif's own `per_sec` shows four decimals.
                        let _ = write!(w, "{}/s", rate_text(state.per_sec()));
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    p.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(p)
}

/// A rate for people: whole numbers, one decimal below 10.
fn rate_text(per_sec: f64) -> String {
    if per_sec < 10.0 {
        format!("{per_sec:.1}")
    } else {
        format!("{per_sec:.0}")
    }
}

/// Nodes no edge leaves: the sinks.
fn sink_ids(pipeline: &remotemedia_core::manifest::Pipeline) -> Vec<String> {
    (0..pipeline.nodes.len())
        .filter(|&i| !pipeline.edges.iter().any(|&(from, _)| from == i))
        .map(|i| pipeline.nodes[i].id.to_string())
        .collect()
}

/// Latency of timestamped outputs under `--realtime`: when each was received, less the
/// wall time its stream time stands for (start + an audio output's end or an event's
/// `pts_us`), in microseconds.
#[derive(Debug, Default)]
struct Latency {
    samples_us: Vec<i64>,
}

impl Latency {
    fn record(&mut self, start: Instant, items: &[Data]) {
        let now = i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX);
        for item in items {
            if let Some(t) = input::stream_time_us(item) {
                self.samples_us.push(now - t);
            }
        }
    }

    fn report(&self) -> serde_json::Value {
        let mut v = self.samples_us.clone();
        v.sort_unstable();
        let pick = |q: f64| -> Option<i64> {
            if v.is_empty() {
                return None;
            }
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            Some(v[rank - 1])
        };
        json!({
            "items": v.len(),
            "p50": pick(0.50),
            "p99": pick(0.99),
            "max": v.last(),
        })
    }
}

fn write_metrics(
    path: &std::path::Path,
    result: &RunResult,
    failure: Option<&remotemedia_core::RunError>,
    mut remote: Option<ReportData>,
    latency: Option<&Latency>,
) -> anyhow::Result<()> {
    let mut metrics = result.metrics.clone();
    if metrics.peak_rss_bytes.is_none() {
        metrics.peak_rss_bytes = peak_rss_bytes();
    }
    // Remote nodes under their own ids; each stage's figures go to its sub-graph.
    if let Some(r) = remote.as_mut() {
        r.merge_node_metrics(&mut metrics);
    }
    let mut body = json!({
        "metrics": metrics,
        "skipped": result.skipped,
        "error": failure.map(|e| match e.node_error() {
            Some(n) => serde_json::to_value(n).unwrap_or_default(),
            None => json!({"message": e.to_string()}),
        }),
    });
    if let Some(r) = &remote {
        body["remote"] = serde_json::to_value(r)?;
    }
    if let Some(l) = latency {
        body["realtime_latency_us"] = l.report();
    }
    let text = serde_json::to_string_pretty(&body)?;
    std::fs::write(path, text + "\n")
        .with_context(|| format!("cannot write metrics {}", path.display()))?;
    Ok(())
}

/// Whether stdin is a pipe or a regular file (not a terminal, not `/dev/null`).
fn stdin_is_data() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        // A duplicate of the descriptor: dropping the file closes only the copy.
        let stdin = std::io::stdin();
        let fd = std::os::fd::AsFd::as_fd(&stdin);
        match fd.try_clone_to_owned().map(std::fs::File::from) {
            Ok(file) => file
                .metadata()
                .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_file()),
            Err(_) => false,
        }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::rate_text;

    #[test]
    fn rates_are_shown_without_noise_digits() {
        assert_eq!(rate_text(96.7326), "97");
        assert_eq!(rate_text(2.46), "2.5");
        assert_eq!(rate_text(0.0), "0.0");
    }
}
