//! What traffic is addressed to: an owned external IP, a transport protocol and a Service port.

use std::fmt;
use std::net::IpAddr;

/// A transport protocol that ferrolb forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The protocol of a Service or EndpointSlice port, spelled as Kubernetes spells it (`TCP` when unset);
    /// `None` for protocols ferrolb does not forward (SCTP).
    pub fn from_kubernetes(name: Option<&str>) -> Option<Protocol> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// The protocol's name as nftables and Kubernetes spell it, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Where traffic arrives: an owned external IP and one of its Services' ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    /// The external IP.
    pub ip: IpAddr,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The Service port.
    pub port: u16,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{}/{ip}:{}", self.protocol.as_str(), self.port),
            IpAddr::V6(ip) => write!(f, "{}/[{ip}]:{}", self.protocol.as_str(), self.port),
        }
    }
}
