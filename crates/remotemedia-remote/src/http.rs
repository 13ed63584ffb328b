//! Serving one listener for everything: the executor's gRPC (HTTP/2), the orchestrator
//! endpoints and any [`crate::frontend::Frontend`] routes (HTTP/1.1, WebSocket
//! upgrades), told apart per connection by hyper's protocol detection.
//!
//! tonic's own server serves connections without HTTP/1.1 upgrades, so a WebSocket
//! could not share its port; this loop is that server's accept-and-serve part with
//! upgrades on, the same HTTP/2 settings, and the same graceful shutdown (stop
//! accepting, GOAWAY, wait for open requests).

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::codegen::http;
use tonic::transport::server::Connected;
use tower::ServiceExt;
use tracing::Instrument;

use crate::listener::Incoming;

/// HTTP/2 settings of every connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct H2Settings {
    pub stream_window: u32,
    pub connection_window: u32,
    pub max_frame: u32,
    pub max_concurrent_streams: u32,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

/// A TLS client must finish its handshake this soon.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections accepted by this process: the next one's `conn_id`.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Requests that health checkers and scrapers make all the time: logged at `debug`,
/// so that `-v` shows the work, not the probes.
fn is_probe(method: &http::Method, path: &str) -> bool {
    method == http::Method::GET && matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Milliseconds with microsecond precision.
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// What a connection's log says at its end.
#[derive(Default)]
struct ConnLog {
    requests: AtomicU64,
    /// A request switched protocols (a WebSocket): the connection left hyper then.
    upgraded: std::sync::atomic::AtomicBool,
}

/// Logs the end of a request (inside its span): its HTTP status, its gRPC status when
/// it is answered with one at once (a streaming call's comes at its end), its time.
fn log_request(probe: bool, response: &axum::response::Response, start: Instant) {
    let status = response.status().as_u16();
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let duration_ms = millis(start.elapsed());
    if probe {
        tracing::debug!(status, duration_ms, "request answered");
    } else {
        tracing::info!(status, grpc_status, duration_ms, "request answered");
    }
}

/// Serves one connection (plain or TLS) until it ends or the shutdown closes it, and
/// logs its end (inside the connection's span).
async fn serve_one<I, S>(
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    service: S,
    log: Arc<ConnLog>,
    opened: Instant,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
        .into_owned();
    let result = watcher.watch(connection).await;
    let requests = log.requests.load(Ordering::Relaxed);
    let duration_ms = millis(opened.elapsed());
    match result {
        Ok(()) if log.upgraded.load(Ordering::Relaxed) => tracing::info!(
            requests,
            duration_ms,
            outcome = "upgraded",
            "connection handed over to the upgraded protocol (its session logs the rest)"
        ),
        Ok(()) => tracing::info!(requests, duration_ms, outcome = "ok", "connection closed"),
        Err(e) => tracing::info!(
            requests,
            duration_ms,
            outcome = "error",
            error = %e,
            "connection closed"
        ),
    }
}

/// An HTTP/1 request's headers must arrive this soon once a request began.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves every connection `incoming` yields with `router` until `stop` fires, then
/// shuts down gracefully: stops accepting (the listener closes), asks every connection
/// to finish and returns once they have. Upgraded connections (WebSockets) have left
/// hyper by then; whoever took them drains them.
pub(crate) async fn serve(
    incoming: Incoming,
    router: axum::Router,
    h2: H2Settings,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: oneshot::Receiver<()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(h2.stream_window)
        .initial_connection_window_size(h2.connection_window)
        .max_frame_size(h2.max_frame)
        .max_concurrent_streams(h2.max_concurrent_streams)
        .keep_alive_interval(h2.keepalive_interval)
        .keep_alive_timeout(h2.keepalive_timeout);
    let graceful = GracefulShutdown::new();
    {
        let mut incoming = pin!(incoming);
        let mut stop = pin!(stop);
        loop {
            let conn = tokio::select! {
                _ = &mut stop => break,
                conn = incoming.next() => conn,
            };
            let conn = match conn {
                Some(Ok(conn)) => conn,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
                None => break,
            };
            // tonic's handlers find the peer (loopback checks) in this extension.
            let info = conn.connect_info();
            let opened = Instant::now();
            let span = tracing::info_span!(
                "connection",
                peer = %info.remote_addr().map_or_else(|| "?".to_string(), |a| a.to_string()),
                conn_id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
            );
            span.in_scope(|| tracing::info!(tls = tls.is_some(), "connection opened"));
            let log = Arc::new(ConnLog::default());
            let service = {
                let router = router.clone();
                let span = span.clone();
                let log = Arc::clone(&log);
                tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    log.requests.fetch_add(1, Ordering::Relaxed);
                    let log = Arc::clone(&log);
                    let probe = is_probe(req.method(), req.uri().path());
                    // Its own span under the connection's: HTTP/2 serves each request
                    // on a task of its own.
                    let request = tracing::info_span!(
                        parent: &span,
                        "request",
                        method = %req.method(),
                        path = %req.uri().path()
                    );
                    let router = router.clone();
                    async move {
                        let start = Instant::now();
                        let response = router.oneshot(req).await;
                        if let Ok(r) = &response {
                            if r.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                                log.upgraded.store(true, Ordering::Relaxed);
                            }
                            log_request(probe, r, start);
                        }
                        response
                    }
                    .instrument(request)
                })
            };
            let watcher = graceful.watcher();
            let builder = builder.clone();
            match &tls {
                None => {
                    tokio::spawn(
                        serve_one(builder, watcher, conn, service, log, opened).instrument(span),
                    );
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(
                        async move {
                            // A client that never finishes its handshake holds a
                            // connection slot until this passes.
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(conn))
                                .await
                            {
                                Ok(Ok(stream)) => {
                                    serve_one(builder, watcher, stream, service, log, opened).await
                                }
                                Ok(Err(e)) => tracing::info!(
                                    outcome = "tls_failed",
                                    error = %e,
                                    "connection closed: TLS handshake failed"
                                ),
                                Err(_) => tracing::info!(
                                    outcome = "tls_timeout",
                                    "connection closed: TLS handshake timed out"
                                ),
                            }
                        }
                        .instrument(span),
                    );
                }
            }
        }
    }
    graceful.shutdown().await;
}
