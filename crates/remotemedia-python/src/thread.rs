//! A dedicated interpreter thread: the only thread that runs an embedded interpreter.
//!
//! Pipeline stages hand it closures and wait for their results. Both sides spin
//! briefly on an atomic flag before parking, so that a batch handed over right after
//! the previous one costs a cache-line transfer rather than two futex wake-ups; the
//! spinning never takes a lock, so it does not slow down the side doing the work.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{Thread, ThreadId};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// How long a waiting side spins before it parks. Waking a parked thread costs tens of
/// microseconds on virtual machines (40 µs per hand-off measured on a 2-core VM), more
/// than a batch of Python calls; spinning yields the core every few dozen rounds, so
/// it costs little when the other side is busy.
const SPIN: Duration = Duration::from_micros(200);

/// Spins until `ready` returns true or [`SPIN`] has passed; returns whether it did.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        if ready() {
            return true;
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            if start.elapsed() > SPIN {
                return false;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The result slot of one call.
struct Reply<R> {
    done: AtomicBool,
    /// `None` after the call when it panicked.
    value: Mutex<Option<R>>,
    caller: Thread,
}

/// A thread running closures one after the other.
pub(crate) struct InterpThread {
    jobs: flume::Sender<Job>,
    /// Jobs sent and not yet taken: the thread spins on this, not on the channel.
    pending: Arc<AtomicUsize>,
    id: ThreadId,
}

impl InterpThread {
    /// Starts a thread named `name` (with a stack of `stack_size` bytes, else the
    /// default) that runs `init` and, if it succeeds, serves calls.
    pub(crate) fn spawn(
        name: &str,
        stack_size: Option<usize>,
        init: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Result<InterpThread, String> {
        let (jobs, rx) = flume::unbounded::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::clone(&pending);
        let (ready_tx, ready_rx) = flume::bounded::<Result<ThreadId, String>>(1);
        let mut builder = std::thread::Builder::new().name(name.to_string());
        if let Some(size) = stack_size {
            builder = builder.stack_size(size);
        }
        builder
            .spawn(move || {
                let started = catch_unwind(AssertUnwindSafe(init))
                    .unwrap_or_else(|_| Err("the interpreter panicked while starting".into()));
                let ok = started.is_ok();
                let _ = ready_tx.send(started.map(|()| std::thread::current().id()));
                if !ok {
                    return;
                }
                loop {
                    spin_until(|| waiting.load(Ordering::Acquire) > 0);
                    let Ok(job) = rx.recv() else {
                        return;
                    };
                    waiting.fetch_sub(1, Ordering::AcqRel);
                    // A panicking job leaves its reply empty: the caller sees it.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map_err(|e| format!("cannot start the interpreter thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(id)) => Ok(InterpThread { jobs, pending, id }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the interpreter thread stopped while starting".into()),
        }
    }

    /// Runs `f` on the thread and waits for its result; `None` if it panicked or the
    /// thread is gone.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        if std::thread::current().id() == self.id {
            return catch_unwind(AssertUnwindSafe(f)).ok();
        }
        let reply = Arc::new(Reply {
            done: AtomicBool::new(false),
            value: Mutex::new(None),
            caller: std::thread::current(),
        });
        let slot = Arc::clone(&reply);
        let job: Job = Box::new(move || {
            let value = catch_unwind(AssertUnwindSafe(f)).ok();
            *slot.value.lock().unwrap_or_else(|p| p.into_inner()) = value;
            slot.done.store(true, Ordering::Release);
            slot.caller.unpark();
        });
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.jobs.send(job).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if !spin_until(|| reply.done.load(Ordering::Acquire)) {
            while !reply.done.load(Ordering::Acquire) {
                // The job holds a reference to `reply` until it has run; if the thread
                // died with the job queued, the channel is gone and nothing will set
                // `done`: check now and then. The job also drops its reference right
                // after setting `done`, so look at `done` again before giving up.
                if Arc::strong_count(&reply) == 1 {
                    if reply.done.load(Ordering::Acquire) {
                        break;
                    }
                    return None;
                }
                std::thread::park_timeout(Duration::from_millis(100));
            }
        }
        let value = reply.value.lock().unwrap_or_else(|p| p.into_inner()).take();
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_return_values_and_panics_are_none() {
        let t = InterpThread::spawn("rm-test", None, || Ok(())).unwrap();
        assert_eq!(t.call(|| 41 + 1), Some(42));
        assert_eq!(t.call(|| -> i32 { panic!("boom") }), None);
        // The thread survives a panicking job.
        assert_eq!(t.call(|| "still here"), Some("still here"));
        // Calls from several threads are served one after the other.
        let t = Arc::new(t);
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || (0..200).map(|i| t.call(move || i * k).unwrap()).sum())
            })
            .collect();
        let sums: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(sums, [0, 19900, 39800, 59700]);
    }

    #[test]
    fn calls_finishing_as_the_caller_stops_spinning_still_return() {
        // Jobs that take about as long as the caller spins end while it switches from
        // spinning to parking: the reply must still be seen, never taken for a dead
        // thread.
        let t = InterpThread::spawn("rm-test", None, || Ok(())).unwrap();
        for i in 0..10_000u64 {
            let wait = SPIN + Duration::from_micros(i % 20) - Duration::from_micros(10);
            let got = t.call(move || {
                let start = Instant::now();
                while start.elapsed() < wait {
                    std::hint::spin_loop();
                }
                i
            });
            assert_eq!(got, Some(i), "call {i}");
        }
    }

    #[test]
    fn failed_start_is_reported() {
        let e = InterpThread::spawn("rm-test", None, || Err("no interpreter".into()));
        assert_eq!(e.err(), Some("no interpreter".to_string()));
    }
}
