//! The executor's accept loop: a bounded number of connections, idle ones closed.
//!
//! tonic's own `TcpIncoming` accepts every connection and keeps it for as long as the
//! peer likes, so idle sockets pile up until the process runs out of file descriptors
//! (and then it ends its accept loop, or spins on the error). Here:
//!
//! - at most `max_connections` are served at once; one over the limit is accepted and
//!   closed at once, so the kernel's backlog never fills with connections nobody
//!   serves;
//! - a connection that sends nothing for `idle_timeout`, or has not sent the HTTP/2
//!   preface within `preface_timeout`, is closed (its next read fails, and hyper drops
//!   it). A live HTTP/2 client answers the server's keepalive pings, so it never looks
//!   idle while the keepalive interval is shorter than the idle timeout;
//! - running out of descriptors (`EMFILE`/`ENFILE`) or kernel memory pauses accepting
//!   briefly instead of spinning on the failing `accept`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Length of the HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE_LEN: u64 = 24;

/// How long accepting pauses after the process or system ran out of descriptors:
/// long enough for connections to close, short enough not to be noticed.
const FD_BACKOFF: Duration = Duration::from_millis(100);

/// What the accept loop allows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A connection that has not sent the HTTP/2 preface by then is closed.
    pub preface_timeout: Duration,
}

/// Connection counters, shared with the metrics.
#[derive(Debug, Default)]
pub(crate) struct ConnStats {
    /// Connections open now.
    pub active: AtomicU64,
    /// Connections accepted and served.
    pub total: AtomicU64,
    /// Connections closed at once because the limit was reached.
    pub refused: AtomicU64,
    /// Connections closed for sending nothing (or no preface) in time.
    pub timed_out: AtomicU64,
    /// Times accepting paused because descriptors or kernel memory ran out.
    pub accept_pauses: AtomicU64,
}

/// The stream of accepted connections handed to tonic.
pub(crate) struct Incoming {
    listener: TcpListener,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    backoff: Option<Pin<Box<Sleep>>>,
}

impl Incoming {
    pub(crate) fn new(listener: TcpListener, limits: ConnLimits, stats: Arc<ConnStats>) -> Self {
        Self {
            listener,
            limits,
            stats,
            backoff: None,
        }
    }
}

/// Whether an `accept` error means resources ran out (so retrying at once would spin).
fn out_of_resources(e: &io::Error) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let codes = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];
    // EMFILE, ENFILE and ENOMEM have these values on Linux, the BSDs and macOS.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let codes = [24, 23, 12];
    e.raw_os_error().is_some_and(|c| codes.contains(&c)) || e.kind() == io::ErrorKind::OutOfMemory
}

impl Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = &mut this.backoff {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.backoff = None;
            }
            let (stream, remote) = match this.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(accepted)) => accepted,
                Poll::Ready(Err(e)) if out_of_resources(&e) => {
                    this.stats.accept_pauses.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot accept connections: pausing");
                    this.backoff = Some(Box::pin(tokio::time::sleep(FD_BACKOFF)));
                    continue;
                }
                // Anything else concerns the one connection (reset before accept,
                // aborted): the next one may be fine.
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            };
            let active = this.stats.active.load(Ordering::Relaxed);
            if active >= this.limits.max_connections as u64 {
                this.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    peer = %remote,
                    max_connections = this.limits.max_connections,
                    "connection refused: as many are open as --max-connections allows"
                );
                drop(stream);
                continue;
            }
            // Without it, Nagle holds back small writes (answers, stream opens) until
            // the client's delayed ACK, about 40 ms later.
            let _ = stream.set_nodelay(true);
            this.stats.active.fetch_add(1, Ordering::Relaxed);
            this.stats.total.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Some(Ok(Conn::new(
                stream,
                remote,
                this.limits,
                Arc::clone(&this.stats),
            ))));
        }
    }
}

/// One accepted connection: the socket, closed for idleness, counted while open.
pub(crate) struct Conn {
    stream: TcpStream,
    info: TcpConnectInfo,
    idle_timeout: Duration,
    /// When the preface must be in by.
    preface_deadline: Instant,
    /// Bytes read so far, counted up to the preface length.
    read: u64,
    last_read: Instant,
    timer: Pin<Box<Sleep>>,
    stats: Arc<ConnStats>,
}

impl Conn {
    fn new(
        stream: TcpStream,
        remote: SocketAddr,
        limits: ConnLimits,
        stats: Arc<ConnStats>,
    ) -> Self {
        let now = Instant::now();
        let preface_deadline = now + limits.preface_timeout.min(limits.idle_timeout);
        Self {
            info: TcpConnectInfo {
                local_addr: stream.local_addr().ok(),
                remote_addr: Some(remote),
            },
            stream,
            idle_timeout: limits.idle_timeout,
            preface_deadline,
            read: 0,
            last_read: now,
            timer: Box::pin(tokio::time::sleep_until(preface_deadline)),
            stats,
        }
    }

    /// When the connection is to be closed, given what it has sent so far.
    fn deadline(&self) -> Instant {
        let idle = self.last_read + self.idle_timeout;
        if self.read < PREFACE_LEN {
            idle.min(self.preface_deadline)
        } else {
            idle
        }
    }

    /// Whether the connection has overstayed; re-arms the timer otherwise. The timer
    /// is moved only when it fires, not on every read, so busy connections cost no
    /// timer updates.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.deadline();
            if deadline <= Instant::now() {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n > 0 {
                    this.read = this.read.saturating_add(n).min(PREFACE_LEN);
                    this.last_read = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.expired(cx) {
                    this.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    let what = if this.read < PREFACE_LEN {
                        "no HTTP/2 preface in time"
                    } else {
                        "idle for too long"
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn incoming(limits: ConnLimits) -> (Incoming, SocketAddr, Arc<ConnStats>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ConnStats::default());
        (
            Incoming::new(listener, limits, Arc::clone(&stats)),
            addr,
            stats,
        )
    }

    fn limits(max: usize, idle_ms: u64, preface_ms: u64) -> ConnLimits {
        ConnLimits {
            max_connections: max,
            idle_timeout: Duration::from_millis(idle_ms),
            preface_timeout: Duration::from_millis(preface_ms),
        }
    }

    /// Reads until the peer closes; `true` when it did within `within`.
    async fn closed_within(sock: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 64];
        let read = async {
            loop {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(within, read).await.is_ok()
    }

    #[test]
    fn connections_over_the_limit_are_closed_at_once_and_the_slot_comes_back() {
        rt().block_on(async {
            let (mut inc, addr, stats) = incoming(limits(2, 60_000, 60_000)).await;
            let _a = TcpStream::connect(addr).await.unwrap();
            let _b = TcpStream::connect(addr).await.unwrap();
            let first = inc.next().await.unwrap().unwrap();
            let second = inc.next().await.unwrap().unwrap();
            assert_eq!(stats.active.load(Ordering::Relaxed), 2);
            assert_eq!(
                first.connect_info().remote_addr,
                Some(_a.local_addr().unwrap()),
                "the auth check sees the peer's address"
            );
            let mut over = TcpStream::connect(addr).await.unwrap();
            // Polling accepts and drops the third connection, then waits for a fourth.
            let pending = tokio::time::timeout(Duration::from_millis(200), inc.next()).await;
            assert!(pending.is_err(), "nothing is handed out over the limit");
            assert!(closed_within(&mut over, Duration::from_secs(2)).await);
            assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
            drop(first);
            assert_eq!(stats.active.load(Ordering::Relaxed), 1);
            let _c = TcpStream::connect(addr).await.unwrap();
            let third = tokio::time::timeout(Duration::from_secs(2), inc.next())
                .await
                .expect("a freed slot is used again")
                .unwrap()
                .unwrap();
            assert_eq!(stats.active.load(Ordering::Relaxed), 2);
            assert_eq!(stats.total.load(Ordering::Relaxed), 3);
            drop((second, third));
            assert_eq!(stats.active.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn a_connection_without_the_preface_is_closed_after_the_preface_bound() {
        rt().block_on(async {
            let (mut inc, addr, stats) = incoming(limits(8, 60_000, 150)).await;
            let _client = TcpStream::connect(addr).await.unwrap();
            let mut conn = inc.next().await.unwrap().unwrap();
            let start = std::time::Instant::now();
            let mut buf = [0u8; 16];
            let err = conn.read(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            assert_eq!(err.to_string(), "no HTTP/2 preface in time");
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(140), "{waited:?}");
            assert!(waited < Duration::from_secs(5), "{waited:?}");
            assert_eq!(stats.timed_out.load(Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn reads_keep_a_connection_alive_and_silence_closes_it() {
        rt().block_on(async {
            let (mut inc, addr, _stats) = incoming(limits(8, 300, 300)).await;
            let mut client = TcpStream::connect(addr).await.unwrap();
            let mut conn = inc.next().await.unwrap().unwrap();
            client
                .write_all(&[b'P'; PREFACE_LEN as usize])
                .await
                .unwrap();
            let mut buf = [0u8; 64];
            let mut got = 0;
            while got < PREFACE_LEN as usize {
                got += conn.read(&mut buf).await.unwrap();
            }
            // A byte every 100 ms for a second: never 300 ms of silence.
            let start = std::time::Instant::now();
            let writer = tokio::spawn(async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    client.write_all(b"x").await.unwrap();
                }
                client
            });
            let mut n = 0;
            while n < 10 {
                n += conn.read(&mut buf).await.expect("still open while talking");
            }
            let _client = writer.await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(900));
            let err = conn.read(&mut buf).await.unwrap_err();
            assert_eq!(err.to_string(), "idle for too long");
        });
    }

    #[test]
    fn running_out_of_descriptors_is_told_apart() {
        assert!(out_of_resources(&io::Error::from_raw_os_error(24)));
        assert!(out_of_resources(&io::Error::from_raw_os_error(23)));
        assert!(!out_of_resources(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }
}
