//! Live sessions: clients (browsers, phones, telephony gateways, other servers) stream
//! audio to named pipelines and get results back while they are still sending.
//!
//! - [`catalog`]: the pipelines of a directory, validated at start;
//! - [`protocol`]: the JSON messages (the same over WebSocket and gRPC);
//! - [`session`]: one session, whatever carries it;
//! - [`server`]: routes, tokens, origins, session slots, as a
//!   [`remotemedia_remote::frontend::Frontend`] served beside the executor;
//! - `ws` and `grpc`: the two transports; `page`: the web page at `/`;
//! - [`metrics`]: per-pipeline counters and latency histograms.

pub mod catalog;
mod grpc;
pub mod metrics;
mod page;
pub mod protocol;
pub mod server;
pub mod session;
mod ws;

/// Generated protobuf and gRPC code for `remotemedia.v1.Sessions`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("remotemedia.v1");
}

pub use catalog::{Catalog, CatalogError};
pub use grpc::PIPELINE_METADATA;
pub use server::{SessionLimits, SessionServer};
pub use ws::SUBPROTOCOL;
