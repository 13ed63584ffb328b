//! From a validated pipeline to one ready to run: placed on this machine and the
//! configured executors, remote groups turned into streaming stages.

use remotemedia_core::manifest::Pipeline;
use remotemedia_core::Registry;
use remotemedia_remote::{distribute, RunReport, StageOptions};

use crate::executors::{needs_placement, place, ExecutorSources, NO_EXECUTORS_HINT};

/// A pipeline ready for the executor.
pub struct Runnable {
    /// The pipeline to run: remote groups collapsed into `RemoteStage` nodes.
    pub pipeline: Pipeline,
    /// The node types to build it with.
    pub registry: Registry,
    /// What the remote stages report while and after they run; `None` for a run
    /// without placement.
    pub remote: Option<RunReport>,
}

/// Why a pipeline cannot be made runnable.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The executor configuration is wrong (policy, files, addresses, DNS server).
    #[error("{0}")]
    Config(String),
    /// Some node fits nowhere: every executor considered is named in the message.
    #[error("{message}")]
    Unplaceable {
        /// What fits nowhere and why.
        message: String,
        /// Whether no executor was configured at all.
        no_executors: bool,
    },
    /// The remote stages could not be set up.
    #[error("{0}")]
    Distribute(String),
}

impl PrepareError {
    /// A line that helps, printed under the message when there is one.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            PrepareError::Unplaceable {
                no_executors: true, ..
            } => Some(NO_EXECUTORS_HINT),
            _ => None,
        }
    }
}

/// Makes `pipeline` runnable: when executors are configured or nodes ask for a host or
/// capabilities, places every node (see [`place`]) and turns the groups placed on an
/// executor into remote stages that fail over like any stage; otherwise runs it as it
/// is. `registry` builds the local nodes, also when a remote stage falls back to this
/// machine. `warn` hears what the caller should be told, one line each (a token sent
/// in clear, an optional requirement not met), also when placement then fails.
pub fn prepare(
    pipeline: Pipeline,
    registry: Registry,
    sources: &ExecutorSources,
    warn: &mut dyn FnMut(String),
) -> Result<Runnable, PrepareError> {
    if !needs_placement(&pipeline, sources) {
        return Ok(Runnable {
            pipeline,
            registry,
            remote: None,
        });
    }
    let placed = place(&pipeline, sources).map_err(PrepareError::Config)?;
    for w in placed.warnings {
        warn(w);
    }
    let placement = placed.placement.map_err(|e| PrepareError::Unplaceable {
        message: e.to_string(),
        no_executors: placed.executors.is_empty(),
    })?;
    for w in placement.warnings() {
        warn(w);
    }
    let options = StageOptions {
        local_registry: registry.clone(),
        ..StageOptions::default()
    };
    let distributed = distribute(&pipeline, &registry, &placement, &placed.endpoints, options)
        .map_err(|e| PrepareError::Distribute(e.to_string()))?;
    tracing::debug!(
        remote_groups = placement.groups.len(),
        "placed on executors"
    );
    Ok(Runnable {
        pipeline: distributed.pipeline,
        registry: distributed.registry,
        remote: Some(distributed.report),
    })
}
