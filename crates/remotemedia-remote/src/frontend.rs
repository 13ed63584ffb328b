//! What a server can serve beside the executor on the same address: HTTP routes (a
//! WebSocket API, a web page, more gRPC services) that share its listener, its
//! connection limits, its `/metrics` and its drain.
//!
//! The executor knows nothing of what a front end does; it merges the routes, asks for
//! metrics text when scraped, and tells it when to stop taking work.

use std::fmt;
use std::sync::Arc;

/// Routes and lifecycle of something served beside the executor.
pub trait Frontend: Send + Sync + 'static {
    /// Routes merged beside the executor's gRPC service (and `/healthz`, `/readyz`,
    /// `/metrics`, which the server answers itself).
    fn routes(&self) -> axum::Router;
    /// Prometheus text appended to the server's own metrics.
    fn metrics_text(&self) -> String {
        String::new()
    }
    /// Shutdown began: take no new work; work already open may finish.
    fn drain(&self) {}
    /// Work still open (the drain waits for it to reach 0).
    fn active(&self) -> u64 {
        0
    }
    /// The drain deadline passed: end all open work now.
    fn abort(&self) {}
}

/// A shared [`Frontend`], as kept in the server's configuration.
#[derive(Clone)]
pub struct SharedFrontend(pub Arc<dyn Frontend>);

impl fmt::Debug for SharedFrontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Frontend")
    }
}
