//! Remote executors for remotemedia: capability detection, the gRPC service
//! (`remotemedia.v1.Executor`, proto files under `proto/`), its client, and running
//! pipelines whose nodes are placed on several machines.
//!
//! - [`detect`]: what this machine offers (or a JSON file standing in for it).
//! - [`server`]: the executor (`remotemedia serve`).
//! - [`client`], [`probe`]: talking to executors and asking what they offer.
//! - [`config`]: which executors a client knows.
//! - [`distributed`], [`stage`]: a placed pipeline made runnable — remote groups become
//!   [`stage::RemoteStage`] nodes that stream their sub-graph with failover.
//!
//! On glibc, starting an executor or the client runtime raises malloc's mmap and trim
//! thresholds for the process (unless it was started with its own), so the large
//! buffers streams move reuse warm memory instead of faulting in fresh pages.
#![warn(missing_docs)]

mod budget;
pub mod client;
pub mod config;
pub mod convert;
pub mod detect;
pub mod discovery;
pub mod distributed;
pub mod error;
pub mod frontend;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod listener;
mod memory;
pub mod probe;
pub mod runtime;
pub mod server;
pub mod stage;
pub mod tls;
mod wire;

/// Generated protobuf and gRPC code for `remotemedia.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("remotemedia.v1");
}

pub use client::{Endpoint, ExecutorClient};
pub use distributed::{distribute, DistributedPipeline, REMOTE_STAGE_TYPE};
pub use error::RemoteError;
pub use stage::{RemoteEvent, RemoteStage, RunReport, StageOptions};
/// The gRPC library, for status codes and custom clients.
pub use tonic;
