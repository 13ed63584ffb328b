//! Structured errors raised by nodes and by pipeline runs.

use std::fmt;

use serde::Serialize;

/// What kind of failure a node reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input item is not something this node accepts (wrong type or shape).
    InvalidInput,
    /// Arithmetic failure: division by zero, overflow, a non-finite result.
    Arithmetic,
    /// The node's configuration is wrong (caught at run time).
    Config,
    /// `initialize` failed.
    Initialize,
    /// A resource (memory, device, file) was not available.
    Resource,
    /// I/O failed.
    Io,
    /// The call took longer than the node's `timeout_ms`.
    Timeout,
    /// The node panicked.
    Panic,
    /// A Python exception escaped the node.
    Python,
    /// A worker process or remote executor went away.
    Crashed,
    /// The run was cancelled from outside (its client went away, a deadline, a signal).
    Cancelled,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidInput,
        ErrorKind::Arithmetic,
        ErrorKind::Config,
        ErrorKind::Initialize,
        ErrorKind::Resource,
        ErrorKind::Io,
        ErrorKind::Timeout,
        ErrorKind::Panic,
        ErrorKind::Python,
        ErrorKind::Crashed,
        ErrorKind::Cancelled,
        ErrorKind::Other,
    ];

    /// The kind whose [`ErrorKind::as_str`] name is `name`, if any (for kinds that
    /// crossed a process or language boundary as text).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The snake_case name used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Arithmetic => "arithmetic",
            ErrorKind::Config => "config",
            ErrorKind::Initialize => "initialize",
            ErrorKind::Resource => "resource",
            ErrorKind::Io => "io",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Panic => "panic",
            ErrorKind::Python => "python",
            ErrorKind::Crashed => "crashed",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reported by a node's own code; the executor adds where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{kind}: {message}")]
pub struct NodeError {
    /// Category of the failure.
    pub kind: ErrorKind,
    /// Human-readable explanation.
    pub message: String,
    /// Python traceback (or another language's stack) when the node has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

impl NodeError {
    /// Creates an error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            traceback: None,
        }
    }

    /// An [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// An [`ErrorKind::Arithmetic`] error.
    pub fn arithmetic(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Arithmetic, message)
    }

    /// Attaches a traceback.
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> Self {
        self.traceback = Some(traceback.into());
        self
    }
}

/// Which lifecycle step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `initialize`.
    Initialize,
    /// `process` for one item.
    Process,
    /// `finish` at end of stream.
    Finish,
    /// `cleanup`.
    Cleanup,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Initialize => "initialize",
            Phase::Process => "process",
            Phase::Finish => "finish",
            Phase::Cleanup => "cleanup",
        })
    }
}

/// A node failure with everything needed to find it: which node, doing what, on which item.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize)]
pub struct PipelineNodeError {
    /// Id of the node in the manifest.
    pub node_id: String,
    /// Registered type of the node.
    pub node_type: String,
    /// Lifecycle step that failed.
    pub phase: Phase,
    /// Category of the failure.
    pub kind: ErrorKind,
    /// What the node said.
    pub message: String,
    /// A short JSON preview of the input item, when the failure was on an item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_preview: Option<String>,
    /// Traceback when the node provided one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    /// How many times the item was tried (1 = no retry).
    pub attempts: u32,
}

impl fmt::Display for PipelineNodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node `{}` ({}) failed in {}: {}: {}",
            self.node_id, self.node_type, self.phase, self.kind, self.message
        )?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        if let Some(p) = &self.input_preview {
            write!(f, "; input: {p}")?;
        }
        if let Some(tb) = &self.traceback {
            write!(f, "\n{}", tb.trim_end())?;
        }
        Ok(())
    }
}

/// Why a run or session failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A node failed.
    #[error(transparent)]
    Node(Box<PipelineNodeError>),
    /// A node could not be built from its manifest entry.
    #[error("cannot build node `{node_id}` ({node_type}): {message}")]
    Build {
        /// Node id.
        node_id: String,
        /// Node type.
        node_type: String,
        /// Why.
        message: String,
    },
    /// Items were given to a pipeline whose every root is a source: nothing would take
    /// them.
    #[error("the pipeline takes no input: every node without an upstream node is a source, which makes its own items")]
    NoInputNode,
    /// The session was already closed or has failed.
    #[error("the session is closed")]
    SessionClosed,
    /// An executor thread could not be started.
    #[error("cannot start executor thread: {0}")]
    Spawn(String),
}

impl RunError {
    /// The node error, if this is one.
    pub fn node_error(&self) -> Option<&PipelineNodeError> {
        match self {
            RunError::Node(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PipelineNodeError> for RunError {
    fn from(e: PipelineNodeError) -> Self {
        RunError::Node(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("whatever"), None);
    }

    #[test]
    fn display_names_node_phase_and_input() {
        let e = PipelineNodeError {
            node_id: "calc".into(),
            node_type: "Calculator".into(),
            phase: Phase::Process,
            kind: ErrorKind::Arithmetic,
            message: "division by zero".into(),
            input_preview: Some("7".into()),
            traceback: None,
            attempts: 3,
        };
        assert_eq!(
            e.to_string(),
            "node `calc` (Calculator) failed in process: arithmetic: division by zero (after 3 attempts); input: 7"
        );
    }
}
