//! The speaker's error type: why it could not start or had to stop.

/// Errors of the speaker; each has a static [`Error::label`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The watches stopped before their stores were filled.
    #[error("the watches stopped before their caches synced: {0}")]
    Watch(#[source] kube::runtime::reflector::store::WriterDropped),
    /// The membership keys could not be read at start.
    #[error(transparent)]
    Keys(#[from] crate::membership::KeyFileError),
    /// The membership could not start.
    #[error(transparent)]
    Membership(#[from] crate::membership::MembershipError),
    /// Forward mode could not start its data path.
    #[error("forward mode: {0}")]
    Forward(#[from] ferrolb_forward::dataplane::Error),
    /// A background task (watches, membership, API writer, interface follower) ended or panicked.
    #[error(transparent)]
    Task(#[from] ferrolb_runtime::Ended),
    /// An announcer stopped working on its own (a responder thread died).
    #[error("announcing stopped: {0}")]
    Announcer(String),
}

impl Error {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Watch(_) => "watch",
            Error::Keys(e) => e.label(),
            Error::Membership(e) => e.label(),
            Error::Forward(e) => e.label(),
            Error::Task(_) => "task",
            Error::Announcer(_) => "announcer",
        }
    }
}

/// Result with the speaker's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
