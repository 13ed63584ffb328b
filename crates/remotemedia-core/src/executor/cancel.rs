//! Cancelling a run from outside: a client that went away, a deadline that passed, a
//! signal. Cancellation is checked before every node call and wakes retry back-offs,
//! so a cancelled run stops within one node call; a call already running is not
//! interrupted (bound those with `timeout_ms`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A shared flag that stops the runs holding it. Clones share the flag.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<Inner>);

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CancelToken")
            .field(&self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every run holding this token (idempotent) and wakes their back-offs.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        let _guard = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.0.wake.notify_all();
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Relaxed)
    }

    /// Sleeps for `duration` unless cancelled first; returns `false` when cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now().checked_add(duration);
        let mut guard = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_cancelled() {
                return false;
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return true;
            }
            guard = self
                .0
                .wake
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Cancels its token when dropped: tie a run to the lifetime of whatever wants it
/// (a request future, a connection).
#[derive(Debug)]
pub struct CancelOnDrop(pub CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_ends_early_when_cancelled() {
        let token = CancelToken::new();
        assert!(token.sleep(Duration::from_millis(1)));
        let other = token.clone();
        let t = std::thread::spawn(move || other.sleep(Duration::from_secs(600)));
        std::thread::sleep(Duration::from_millis(20));
        token.cancel();
        assert!(!t.join().unwrap(), "the sleeper saw the cancellation");
        assert!(token.is_cancelled());
        assert!(!token.sleep(Duration::from_secs(600)));
    }

    #[test]
    fn dropping_the_guard_cancels() {
        let token = CancelToken::new();
        drop(CancelOnDrop(token.clone()));
        assert!(token.is_cancelled());
    }
}
