//! The interface every host implements, and what they share.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use remotemedia_core::{Data, ErrorKind, Execution, MemberRun, NodeError};

use crate::spec::Runtime;

/// What happened to the items of one batch handed to a host.
///
/// Items are processed in order. The first `ok` items succeeded and their outputs are
/// `outputs`, in order. If `tail` is not empty, its first entry is the failure of item
/// `ok`; the entries after it are the outcomes of the items after that one which the
/// host had already processed (hosts that work ahead, e.g. several worker processes or
/// output conversion after the Python call), so that they are not processed twice.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Outputs of the leading successful items.
    pub outputs: Vec<Data>,
    /// How many leading items succeeded.
    pub ok: usize,
    /// The failed item's error first, then outcomes of items processed after it.
    pub tail: Vec<ItemOutcome>,
}

/// The outcome of one item.
#[derive(Debug)]
pub enum ItemOutcome {
    /// The item's outputs.
    Ok(Vec<Data>),
    /// Why the item failed.
    Err(NodeError),
}

impl BatchOutcome {
    /// Builds an outcome from per-item results, folding the successful prefix.
    pub fn from_items(results: impl IntoIterator<Item = ItemOutcome>) -> Self {
        let mut outcome = BatchOutcome::default();
        for r in results {
            match r {
                ItemOutcome::Ok(mut outs) if outcome.tail.is_empty() => {
                    outcome.outputs.append(&mut outs);
                    outcome.ok += 1;
                }
                other => outcome.tail.push(other),
            }
        }
        outcome
    }

    /// Records the next item's outcome.
    pub fn push(&mut self, r: ItemOutcome) {
        match r {
            ItemOutcome::Ok(mut outs) if self.tail.is_empty() => {
                self.outputs.append(&mut outs);
                self.ok += 1;
            }
            other => self.tail.push(other),
        }
    }

    /// Records a successful item with one output (the fast path).
    pub fn push_one(&mut self, d: Data) {
        if self.tail.is_empty() {
            self.outputs.push(d);
            self.ok += 1;
        } else {
            self.tail.push(ItemOutcome::Ok(vec![d]));
        }
    }

    /// Records a successful item with no output.
    pub fn push_none(&mut self) {
        if self.tail.is_empty() {
            self.ok += 1;
        } else {
            self.tail.push(ItemOutcome::Ok(Vec::new()));
        }
    }

    /// Number of items with an outcome.
    pub fn len(&self) -> usize {
        self.ok + self.tail.len()
    }

    /// True when no item has an outcome.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a host needs of another member of a node group to run it (see
/// [`Instance::run_group`]): a host-specific handle, e.g. the member's driver object.
pub type GroupHandle = Arc<dyn Any + Send + Sync>;

/// What a group run did: one entry in `stats` per member that ran (the caller's
/// instance first); every member but the last of them processed its whole input, and
/// `last` is the outcome of the last one over its input.
#[derive(Debug, Default)]
pub struct GroupRun {
    /// Metrics of each member that ran.
    pub stats: Vec<MemberRun>,
    /// The last member's outcome (see [`BatchOutcome`]).
    pub last: BatchOutcome,
    /// The last member's inputs, when it was not the first member and `last` has a
    /// failure (the executor retries or skips the failed one and resumes after it).
    pub last_inputs: Vec<Data>,
}

impl GroupRun {
    /// A run of the first member alone.
    pub fn single(items_in: usize, last: BatchOutcome, started: Instant) -> GroupRun {
        GroupRun {
            stats: vec![MemberRun {
                items_in: items_in as u64,
                items_out: last.outputs.len() as u64,
                elapsed: started.elapsed(),
            }],
            last,
            last_inputs: Vec::new(),
        }
    }
}

/// One loaded node instance inside a host.
///
/// Lifecycle: [`Instance::initialize`] once, [`Instance::run`] per batch, then
/// [`Instance::finish`] at end of stream and [`Instance::cleanup`] always.
pub trait Instance: Send {
    /// The host running this instance.
    fn runtime(&self) -> Runtime;

    /// Runs the node's `initialize()` hook; `node_id` attributes its output.
    fn initialize(&mut self, node_id: &str) -> Result<(), NodeError>;

    /// Processes `items` in order (see [`BatchOutcome`]).
    fn run(&mut self, items: &[Data]) -> BatchOutcome;

    /// The node's end-of-stream outputs (`flush()` / `finish()`).
    fn finish(&mut self) -> Result<Vec<Data>, NodeError>;

    /// Runs the node's `cleanup()` hook and releases the instance.
    fn cleanup(&mut self) -> Result<(), NodeError>;

    /// How the executor may schedule the node.
    fn execution(&self) -> Execution {
        Execution::Inline
    }

    /// Key shared by instances that can run a batch as one group, passing values to
    /// each other in the host's own form (see `remotemedia_core::Node::group_key`).
    fn group_key(&self) -> Option<usize> {
        None
    }

    /// This instance's handle for a group run led by another instance.
    fn group_handle(&self) -> Option<GroupHandle> {
        None
    }

    /// Runs `items` through this instance and then the members behind `others`, in
    /// order (see [`GroupRun`]). The default runs this instance alone.
    fn run_group(&mut self, others: &[GroupHandle], items: &[Data]) -> GroupRun {
        let _ = others;
        let started = Instant::now();
        let last = self.run(items);
        GroupRun::single(items.len(), last, started)
    }
}

/// Why a host could not load a node.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The host itself is not usable here (not compiled in, libpython missing, …).
    #[error("the {runtime} host is unavailable: {reason}")]
    Unavailable {
        /// The host.
        runtime: Runtime,
        /// Why.
        reason: String,
    },
    /// The node's code failed to load (import, class lookup, constructor).
    #[error("{message}")]
    Node {
        /// The host that tried.
        runtime: Runtime,
        /// What failed, naming the class or module and the Python exception.
        message: String,
        /// Python traceback, when there is one.
        traceback: Option<String>,
        /// Whether the failure may be this host's limitation (a missing module, an
        /// unsupported feature): `auto` then tries the next host.
        compat: bool,
    },
}

impl LoadError {
    /// Whether `auto` should try the next host after this error.
    pub fn is_compat(&self) -> bool {
        match self {
            LoadError::Unavailable { .. } => true,
            LoadError::Node { compat, .. } => *compat,
        }
    }

    /// The error as a node error (kind `config` for an unavailable host, `python` else).
    pub fn to_node_error(&self) -> NodeError {
        match self {
            LoadError::Unavailable { .. } => NodeError::new(ErrorKind::Config, self.to_string()),
            LoadError::Node {
                message, traceback, ..
            } => {
                let e = NodeError::new(ErrorKind::Python, message.clone());
                match traceback {
                    Some(tb) if !tb.is_empty() => e.with_traceback(tb.clone()),
                    _ => e,
                }
            }
        }
    }
}

/// Maps a Python `logging` level number onto a tracing event, with the node id and the
/// logger name as fields.
pub fn emit_log(levelno: i64, logger: &str, node: &str, message: &str) {
    const T: &str = "remotemedia::python";
    if levelno >= 40 {
        tracing::error!(target: T, node = %node, logger = %logger, "{message}");
    } else if levelno >= 30 {
        tracing::warn!(target: T, node = %node, logger = %logger, "{message}");
    } else if levelno >= 20 {
        tracing::info!(target: T, node = %node, logger = %logger, "{message}");
    } else if levelno >= 10 {
        tracing::debug!(target: T, node = %node, logger = %logger, "{message}");
    } else {
        tracing::trace!(target: T, node = %node, logger = %logger, "{message}");
    }
}

/// The Python `logging` level matching the most verbose tracing level enabled now, so
/// that records nobody would see are not even created.
pub fn python_log_level() -> i64 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE => 1,
        LevelFilter::DEBUG => 10,
        LevelFilter::INFO => 20,
        LevelFilter::WARN => 30,
        LevelFilter::ERROR => 40,
        _ => 60,
    }
}

/// A Python exception described by the driver: `(kind, message, traceback)`.
pub fn python_error(kind: &str, message: String, traceback: String) -> NodeError {
    // A Python exception cannot be a Rust panic: that name, like unknown ones, is Python.
    let kind = ErrorKind::from_name(kind)
        .filter(|k| *k != ErrorKind::Panic)
        .unwrap_or(ErrorKind::Python);
    let e = NodeError::new(kind, message);
    if traceback.is_empty() {
        e
    } else {
        e.with_traceback(traceback)
    }
}

/// The error for an output that has no pipeline equivalent.
pub fn output_error(detail: impl std::fmt::Display) -> NodeError {
    NodeError::new(
        ErrorKind::Python,
        format!("TypeError: an output of `process` cannot enter the pipeline: {detail}"),
    )
}
