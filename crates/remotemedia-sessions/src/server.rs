//! The session server: the routes it adds beside the executor (`/v1/pipelines`,
//! `/v1/sessions/{pipeline}`, the gRPC `remotemedia.v1.Sessions` service, the web
//! page), who may use them, and how many sessions run at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use remotemedia_core::Registry;
use remotemedia_remote::frontend::Frontend;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::TcpConnectInfo;

use crate::catalog::{Catalog, NamedPipeline};
use crate::metrics::Metrics;

/// What a session server allows.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Sessions open at once; more are refused with `too_many_sessions`.
    pub max_sessions: usize,
    /// Largest frame (text or binary) a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Audio may arrive at most this many times faster than real time (after a
    /// second of burst); faster input is held back. 0: no limit.
    pub max_realtime_factor: f64,
    /// A session that sends nothing for this long (before `end`) is closed.
    pub idle_timeout: Duration,
    /// How long the outputs after `end` may take.
    pub end_timeout: Duration,
    /// Web origins (`https://app.example.com`) whose pages may open sessions, besides
    /// the server's own page. Requests without an `Origin` (non-browser clients) are
    /// not affected.
    pub allowed_origins: Vec<String>,
}

impl Default for SessionLimits {
    /// 256 sessions, 1 MiB frames, 8× real time, 30 s idle, 30 s after `end`.
    fn default() -> Self {
        SessionLimits {
            max_sessions: 256,
            max_frame_bytes: 1 << 20,
            max_realtime_factor: 8.0,
            idle_timeout: Duration::from_secs(30),
            end_timeout: Duration::from_secs(30),
            allowed_origins: Vec::new(),
        }
    }
}

/// State shared by the routes and every session.
pub struct Shared {
    /// The pipelines.
    pub catalog: Catalog,
    /// The node types sessions build from.
    pub registry: Registry,
    /// Limits.
    pub limits: SessionLimits,
    /// Bearer token; `None`: loopback clients only.
    pub token: Option<String>,
    /// Counters.
    pub metrics: Metrics,
    /// Session slots.
    slots: Arc<Semaphore>,
    /// Set when the drain deadline passed: every session closes.
    pub shutdown: watch::Sender<bool>,
    /// Set at SIGTERM: no new sessions.
    draining: std::sync::atomic::AtomicBool,
    next_id: AtomicU64,
}

/// The session server, served beside an executor through [`Frontend`].
#[derive(Clone)]
pub struct SessionServer {
    shared: Arc<Shared>,
}

impl SessionServer {
    /// A server of `catalog`'s pipelines built from `registry`.
    pub fn new(
        catalog: Catalog,
        registry: Registry,
        limits: SessionLimits,
        token: Option<String>,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(limits.max_sessions.max(1)));
        let metrics = Metrics::default();
        for p in catalog.iter() {
            metrics.pipeline(&p.name);
        }
        SessionServer {
            shared: Arc::new(Shared {
                catalog,
                registry,
                limits,
                token,
                metrics,
                slots,
                shutdown: watch::channel(false).0,
                draining: Default::default(),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The shared state (for the transports).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Frontend for SessionServer {
    fn routes(&self) -> axum::Router {
        axum::Router::new()
            .route("/", get(crate::page::index))
            .route("/app.js", get(crate::page::app_js))
            .route("/worklet.js", get(crate::page::worklet_js))
            .route("/v1/pipelines", get(list_pipelines))
            .route("/v1/sessions/{pipeline}", get(crate::ws::upgrade))
            .route_service(
                "/remotemedia.v1.Sessions/{*method}",
                crate::grpc::service(Arc::clone(&self.shared)),
            )
            .with_state(Arc::clone(&self.shared))
    }

    fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }

    fn drain(&self) {
        self.shared.draining.store(true, Ordering::Relaxed);
    }

    fn active(&self) -> u64 {
        self.shared.metrics.active()
    }

    fn abort(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// Why a client may not open a session.
#[derive(Debug)]
pub enum Refusal {
    /// Missing or wrong token (401), or no token configured and not loopback (403).
    Auth(StatusCode, &'static str),
    /// A browser page of another origin (403).
    Origin(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Auth(code, message) => (code, format!("{message}\n")).into_response(),
            Refusal::Origin(origin) => (
                StatusCode::FORBIDDEN,
                format!("origin `{origin}` may not open sessions on this server\n"),
            )
                .into_response(),
        }
    }
}

/// A held session slot; dropping it frees the slot and the `active` count.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    pipeline: Arc<crate::metrics::PipelineMetrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pipeline.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// Checks the bearer token (an `Authorization: Bearer` header, or for browsers a
    /// `bearer.TOKEN` WebSocket subprotocol; for gRPC, `authorization` metadata) and
    /// the origin of browser requests; a refusal is counted in the metrics.
    pub fn authorize(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), Refusal> {
        let result = self.check(headers, peer);
        if result.is_err() {
            self.metrics.rejected.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn check(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), Refusal> {
        match &self.token {
            Some(token) => {
                let bearer = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                let from_protocol = headers
                    .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .find_map(|p| p.strip_prefix("bearer."));
                let given = bearer.or(from_protocol);
                let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes())));
                if !ok {
                    return Err(Refusal::Auth(
                        StatusCode::UNAUTHORIZED,
                        "missing or wrong bearer token",
                    ));
                }
            }
            None => {
                if !peer.is_some_and(|a| a.ip().to_canonical().is_loopback()) {
                    return Err(Refusal::Auth(
                        StatusCode::FORBIDDEN,
                        "this server has no token and accepts loopback clients only",
                    ));
                }
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let same_origin = origin
                .split_once("://")
                .is_some_and(|(_, rest)| !host.is_empty() && rest == host);
            let listed = self
                .limits
                .allowed_origins
                .iter()
                .any(|a| a.trim_end_matches('/') == origin);
            if !same_origin && !listed {
                return Err(Refusal::Origin(origin.to_string()));
            }
        }
        Ok(())
    }

    /// Takes a session slot for `pipeline`, or says why not.
    pub fn admit(
        &self,
        pipeline: &str,
    ) -> Result<(Arc<NamedPipeline>, Slot, String), (crate::protocol::ErrorKind, String)> {
        use crate::protocol::ErrorKind;
        let Some(p) = self.catalog.get(pipeline) else {
            return Err((
                ErrorKind::UnknownPipeline,
                format!(
                    "no pipeline `{pipeline}`; this server has {}",
                    self.catalog
                        .names()
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if self.draining.load(Ordering::Relaxed) {
            self.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return Err((
                ErrorKind::ShuttingDown,
                "the server is shutting down and takes no new sessions".to_string(),
            ));
        }
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return Err((
                ErrorKind::TooManySessions,
                format!(
                    "the server runs {} sessions, as many as it may (--max-sessions); try again later",
                    self.limits.max_sessions
                ),
            ));
        };
        let metrics = self.metrics.pipeline(&p.name);
        metrics.active.fetch_add(1, Ordering::Relaxed);
        metrics.sessions.fetch_add(1, Ordering::Relaxed);
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", p.name);
        Ok((
            Arc::clone(p),
            Slot {
                _permit: permit,
                pipeline: metrics,
            },
            id,
        ))
    }
}

/// `GET /v1/pipelines`: names, inputs, outputs and overridable params.
async fn list_pipelines(
    State(shared): State<Arc<Shared>>,
    Extension(info): Extension<TcpConnectInfo>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = shared.authorize(&headers, info.remote_addr) {
        return r.into_response();
    }
    let pipelines: Vec<_> = shared
        .catalog
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "description": p.pipeline.description,
                "inputs": p.inputs,
                "outputs": p.outputs,
                "overridable": p.overridable(),
                "audio_input": {
                    "formats": remotemedia_audio::pcm::FORMAT_NAMES,
                    "chunk_ms": crate::session::CHUNK_MS,
                },
            })
        })
        .collect();
    Json(json!({ "pipelines": pipelines })).into_response()
}
