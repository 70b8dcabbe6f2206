//! The controller's error type.

/// Errors of the controller's I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// A watch stream ended or failed beyond retry.
    #[error("watch of {resource} ended: {reason}")]
    Watch {
        /// The resource watched.
        resource: &'static str,
        /// What happened.
        reason: String,
    },
    /// The leader-election loop failed.
    #[error("leader election: {0}")]
    Lease(String),
}

impl Error {
    /// A static label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Watch { .. } => "watch",
            Error::Lease(_) => "lease",
        }
    }
}

/// Result with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
