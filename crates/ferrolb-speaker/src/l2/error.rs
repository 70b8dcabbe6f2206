//! Why a part of layer 2 announcing could not start.

/// Failures to open the announcer's sockets; each has a static [`Error::label`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The raw packet socket could not be opened or bound.
    #[error("cannot open a packet socket: {0}")]
    PacketSocket(#[source] std::io::Error),
    /// The kernel refused the BPF filter.
    #[error("cannot attach the BPF filter: {0}")]
    Filter(#[source] std::io::Error),
    /// pnet gave something other than an Ethernet channel.
    #[error("interface {0} is not Ethernet")]
    NotEthernet(String),
    /// The responder thread could not be spawned.
    #[error("cannot start the responder thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The rtnetlink socket could not be opened or subscribed.
    #[error("cannot subscribe to rtnetlink: {0}")]
    Netlink(#[source] std::io::Error),
}

impl Error {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::PacketSocket(_) => "packet_socket",
            Error::Filter(_) => "filter",
            Error::NotEthernet(_) => "not_ethernet",
            Error::Thread(_) => "thread",
            Error::Netlink(_) => "netlink",
        }
    }
}
