//! Cancelling a run from outside: a client that went away, a deadline that passed, a
//! signal. Cancellation is checked before every node call and wakes retry back-offs,
//! so a cancelled run stops within one node call; a call already running is not
//! interrupted (bound those with `timeout_ms`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A shared flag that stops the runs holding it. Clones share the flag.
///
/// [`CancelToken::never`] (what [`super::RunOptions`] holds by default) allocates
/// nothing and costs a run nothing: most runs are never cancelled.
#[derive(Clone)]
pub struct CancelToken(Option<Arc<Inner>>);

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

impl Default for CancelToken {
    /// A token that can be cancelled (as [`CancelToken::new`]).
    fn default() -> Self {
        Self::new()
    }
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self(Some(Arc::default()))
    }

    /// A token that is never cancelled ([`CancelToken::cancel`] does nothing).
    pub fn never() -> Self {
        Self(None)
    }

    /// Whether [`CancelToken::cancel`] can ever stop a run holding this token.
    pub fn can_cancel(&self) -> bool {
        self.0.is_some()
    }

    /// Cancels every run holding this token (idempotent) and wakes their back-offs.
    pub fn cancel(&self) {
        let Some(inner) = &self.0 else {
            return;
        };
        inner.cancelled.store(true, Ordering::SeqCst);
        let _guard = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        inner.wake.notify_all();
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|i| i.cancelled.load(Ordering::Relaxed))
    }

    /// Sleeps for `duration` unless cancelled first; returns `false` when cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let Some(inner) = &self.0 else {
            std::thread::sleep(duration);
            return true;
        };
        let deadline = Instant::now().checked_add(duration);
        let mut guard = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
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
            guard = inner
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
    fn a_never_token_costs_nothing_and_never_stops() {
        let never = CancelToken::never();
        never.cancel();
        assert!(!never.is_cancelled() && !never.can_cancel());
        assert!(never.sleep(Duration::from_millis(1)));
        assert!(CancelToken::default().can_cancel());
    }

    #[test]
    fn dropping_the_guard_cancels() {
        let token = CancelToken::new();
        drop(CancelOnDrop(token.clone()));
        assert!(token.is_cancelled());
    }
}
