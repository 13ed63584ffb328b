//! A dedicated interpreter thread: the only thread that runs an embedded interpreter.
//!
//! Pipeline stages hand it closures and wait for their results. Both sides spin
//! briefly before parking, so that a batch handed over right after the previous one
//! costs a cache-line transfer rather than two futex wake-ups.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// How long a waiting side spins before it parks.
const SPIN: Duration = Duration::from_micros(50);

/// Receives from `rx`, spinning up to [`SPIN`] before blocking; `None` when the sending
/// side is gone.
pub(crate) fn spin_recv<T>(rx: &flume::Receiver<T>) -> Option<T> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(flume::TryRecvError::Disconnected) => return None,
            Err(flume::TryRecvError::Empty) => {}
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            if start.elapsed() > SPIN {
                return rx.recv().ok();
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A thread running closures one after the other.
pub(crate) struct InterpThread {
    jobs: flume::Sender<Job>,
    id: ThreadId,
}

impl InterpThread {
    /// Starts a thread named `name` that runs `init` and, if it succeeds, serves calls.
    pub(crate) fn spawn(
        name: &str,
        init: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Result<InterpThread, String> {
        let (jobs, rx) = flume::unbounded::<Job>();
        let (ready_tx, ready_rx) = flume::bounded::<Result<ThreadId, String>>(1);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let started = catch_unwind(AssertUnwindSafe(init))
                    .unwrap_or_else(|_| Err("the interpreter panicked while starting".into()));
                let ok = started.is_ok();
                let _ = ready_tx.send(started.map(|()| std::thread::current().id()));
                if !ok {
                    return;
                }
                while let Some(job) = spin_recv(&rx) {
                    // A panicking job drops its reply sender: the caller sees it.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map_err(|e| format!("cannot start the interpreter thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(id)) => Ok(InterpThread { jobs, id }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the interpreter thread stopped while starting".into()),
        }
    }

    /// Runs `f` on the thread and waits for its result; `None` if it panicked.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        if std::thread::current().id() == self.id {
            return catch_unwind(AssertUnwindSafe(f)).ok();
        }
        let (tx, rx) = flume::bounded(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).ok()?;
        spin_recv(&rx)
    }
}
