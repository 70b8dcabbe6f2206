//! The controller's error type.

/// Errors of the controller's I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// The watches stopped before their stores were filled.
    #[error("the watches stopped before their caches synced: {0}")]
    Watch(#[source] kube::runtime::reflector::store::WriterDropped),
    /// The Lease cannot be created because its namespace does not exist (the loop reports it once, from
    /// its namespace cache, rather than on every election round).
    #[error("the Lease namespace {0:?} does not exist")]
    LeaseNamespaceMissing(String),
    /// A background task (the watches, the leader election) ended or panicked.
    #[error(transparent)]
    Task(#[from] ferrolb_runtime::Ended),
}

impl Error {
    /// A static label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Watch(_) => "watch",
            Error::LeaseNamespaceMissing(_) => "lease_namespace_missing",
            Error::Task(_) => "task",
        }
    }
}

/// Result with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
