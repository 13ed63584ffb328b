//! SIGINT and SIGTERM as messages: once installed they no longer end the process but
//! are read, one byte each, from a pipe that the signal handler writes to, so that a
//! run can stop cleanly.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The signals handled.
pub const HANDLED: [i32; 2] = [libc::SIGINT, libc::SIGTERM];

/// The byte a [`Waker`] writes: no signal has number 0.
const WAKE: u8 = 0;

/// What [`Signals::next`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A signal arrived.
    Signal(i32),
    /// A [`Waker`] was used.
    Woken,
    /// The deadline passed.
    Timeout,
}

/// The receiving end of the handled signals.
pub struct Signals {
    rx: UnixStream,
    tx: UnixStream,
}

/// Wakes [`Signals::next`] from another thread.
pub struct Waker(UnixStream);

impl Waker {
    /// Makes the pending or next [`Signals::next`] return [`Next::Woken`].
    pub fn wake(&self) {
        let _ = (&self.0).write(&[WAKE]);
    }
}

impl Signals {
    /// Turns [`HANDLED`] into messages for the rest of the process's life.
    pub fn install() -> std::io::Result<Signals> {
        let (rx, tx) = UnixStream::pair()?;
        // The handler must never block: a full pipe already says "a signal came".
        tx.set_nonblocking(true)?;
        // The handler's own descriptor, never closed: a signal may come at any time.
        let fd = tx.try_clone()?.into_raw_fd();
        for sig in HANDLED {
            let byte = sig as u8;
            // SAFETY: the action only calls write(2), which is async-signal-safe, on a
            // descriptor that is never closed.
            unsafe {
                signal_hook_registry::register(sig, move || {
                    libc::write(fd, (&byte as *const u8).cast(), 1);
                })?;
            }
        }
        Ok(Signals { rx, tx })
    }

    /// A handle that wakes [`Signals::next`].
    pub fn waker(&self) -> std::io::Result<Waker> {
        self.tx.try_clone().map(Waker)
    }

    /// Waits for the next signal or wake-up, until `deadline` if there is one.
    pub fn next(&mut self, deadline: Option<Instant>) -> Next {
        loop {
            // Even past the deadline, what is already in the pipe is read first.
            let timeout = deadline.map(|d| {
                d.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            });
            if self.rx.set_read_timeout(timeout).is_err() {
                return Next::Timeout;
            }
            let mut byte = [0u8; 1];
            match self.rx.read(&mut byte) {
                Ok(1) if byte[0] == WAKE => return Next::Woken,
                Ok(1) => return Next::Signal(i32::from(byte[0])),
                Ok(_) => return Next::Woken, // both ends are ours: cannot close
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Next::Timeout;
                    }
                }
                Err(_) => return Next::Timeout,
            }
        }
    }
}

/// The name of a handled signal, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_wake_ups_arrive_as_messages() {
        let mut signals = Signals::install().unwrap();
        let soon = || Some(Instant::now() + Duration::from_millis(50));
        assert_eq!(signals.next(soon()), Next::Timeout);
        // SAFETY: raise(3) on a signal that now has a handler.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        let long = Some(Instant::now() + Duration::from_secs(30));
        assert_eq!(signals.next(long), Next::Signal(libc::SIGTERM));
        signals.waker().unwrap().wake();
        assert_eq!(signals.next(long), Next::Woken);
        assert_eq!(name(libc::SIGINT), "SIGINT");
    }
}
