//! What a Service asks of the allocator, shrunk to the fields behind the decision.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::address::Family;
use crate::pool::PoolName;
use crate::selector::Labels;

/// A Service's identity: `namespace/name`. Cheap to clone: the allocator keeps it in several indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    joined: Arc<str>,
    slash: usize,
}

impl ServiceKey {
    /// The key of Service `name` in `namespace`.
    pub fn new(namespace: &str, name: &str) -> ServiceKey {
        ServiceKey { joined: Arc::from(format!("{namespace}/{name}")), slash: namespace.len() }
    }

    /// The Service's namespace.
    pub fn namespace(&self) -> &str {
        &self.joined[..self.slash]
    }

    /// The Service's name.
    pub fn name(&self) -> &str {
        &self.joined[self.slash + 1..]
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined)
    }
}

/// The sharing key of `ferrolb.io/allow-shared-ip`: Services with equal keys may share an address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharingKey(pub String);

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// One (protocol, port) a Service exposes; two Services on one IP must not have one in common.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    /// The protocol.
    pub protocol: Protocol,
    /// The Service port number.
    pub port: u16,
}

/// Which address families a Service wants (from `spec.ipFamilies` and `spec.ipFamilyPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyPolicy {
    /// Exactly one address of this family.
    Single(Family),
    /// Both families if the pool has them, else whichever it has; order is the Service's preference.
    PreferDual([Family; 2]),
    /// Both families or nothing.
    RequireDual([Family; 2]),
}

impl FamilyPolicy {
    /// The families wanted, in preference order.
    pub fn families(&self) -> &[Family] {
        match self {
            FamilyPolicy::Single(f) => std::slice::from_ref(f),
            FamilyPolicy::PreferDual(fs) | FamilyPolicy::RequireDual(fs) => fs,
        }
    }

    /// Whether `family` is acceptable at all.
    pub fn allows(&self, family: Family) -> bool {
        self.families().contains(&family)
    }
}

/// An allocation request: everything about a Service that decides its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Which Service asks.
    pub service: ServiceKey,
    /// Labels of the Service's namespace (for `namespaceSelectors`).
    pub namespace_labels: Labels,
    /// Labels of the Service (for `serviceSelectors`).
    pub service_labels: Labels,
    /// Families wanted.
    pub families: FamilyPolicy,
    /// A pool the Service names, if any.
    pub pool: Option<PoolName>,
    /// Specific addresses asked for (at most one per family).
    pub ips: Vec<IpAddr>,
    /// The sharing key, if the Service allows sharing.
    pub sharing: Option<SharingKey>,
    /// The Service's ports.
    pub ports: Vec<PortKey>,
    /// For `externalTrafficPolicy: Local`, the Service's pod selector (sharing needs equal selectors).
    pub local_selector: Option<Labels>,
}
