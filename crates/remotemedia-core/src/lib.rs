//! remotemedia core: data model, manifest, graph, planner, executor and built-in nodes.
//!
//! The data path: manifest text → [`manifest::load_str`] (raw serde types → validated
//! [`manifest::Pipeline`]) → [`plan::Plan::build`] (node instances, fused stages) →
//! [`executor::run`] for a finite input or [`executor::Session`] for a stream.
#![warn(missing_docs)]

pub mod capabilities;
pub mod data;
pub mod error;
pub mod executor;
pub mod graph;
pub mod manifest;
pub mod metrics;
pub mod node;
pub mod node_type;
pub mod nodes;
pub mod params;
pub mod placement;
pub mod plan;
pub mod registry;

pub use data::{frames_to_us, AudioBuffer, DType, Data, DataMap, Samples, Tensor, MAX_DEPTH};
pub use error::{ErrorKind, NodeError, Phase, PipelineNodeError, RunError};
pub use node::{
    Execution, GroupFailure, GroupMember, GroupOutcome, ItemError, MemberRun, Node, NodeContext,
    Pull,
};
pub use node_type::{NoParams, NodeType};
pub use registry::{NodeDoc, NodeFactory, ParamDoc, ParamIssue, ParamType, Params, Registry};
