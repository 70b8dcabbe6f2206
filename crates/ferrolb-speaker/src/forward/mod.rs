//! Forward mode: the node that owns an external IP delivers the traffic that arrives for the Services' ports
//! itself, so ferrolb works whatever kube-proxy does with LoadBalancer IPs (the controller publishes
//! `ipMode: Proxy`, and kube-proxy leaves those IPs alone).
//!
//! [`plan`] turns Services and EndpointSlices into what to forward (pure). Two data paths carry it out:
//! [`kernel`] writes one nftables table that DNATs straight to the endpoints the NodePort would reach (one
//! NAT per hook means a DNAT to the NodePort would not chain into kube-proxy's rules), and [`userspace`]
//! relays connections and datagrams to the node's own NodePort where nftables is unavailable.

pub mod conntrack;
pub mod dataplane;
pub mod kernel;
pub mod plan;
pub mod program;
pub mod userspace;

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
