//! Errors of the remote layer.

use crate::convert::ConvertError;

/// What can go wrong talking to, configuring or running an executor.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Bad configuration (executor list, token file, capabilities file).
    #[error("{0}")]
    Config(String),
    /// An executor could not be reached.
    #[error("cannot connect to {executor} ({address}): {message}")]
    Connect {
        /// Executor name.
        executor: String,
        /// Its address.
        address: String,
        /// Why.
        message: String,
    },
    /// An executor answered a call with an error status (shown as its code name,
    /// `ResourceExhausted: …`).
    #[error("{executor}: {:?}: {}", .status.code(), .status.message())]
    Rpc {
        /// Executor name.
        executor: String,
        /// The gRPC status.
        status: Box<tonic::Status>,
    },
    /// An executor broke the protocol (an unexpected message, a wrong sequence).
    #[error("{executor}: protocol error: {message}")]
    Protocol {
        /// Executor name.
        executor: String,
        /// What was wrong.
        message: String,
    },
    /// An item could not be converted.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// Local I/O (binding a port, reading a file).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
