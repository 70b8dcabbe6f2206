//! What this node forwards, as a pure function of the Services it owns IPs for and their endpoints.
//!
//! For every port of a Service on an IP this node owns, a [`Forward`] names the endpoints that the Service's
//! NodePort would reach, with the same rules as kube-proxy: ready endpoints of the IP's family whose slice
//! port matches the Service port by name and protocol; with `externalTrafficPolicy: Local` only this node's;
//! and when none is ready, the serving-but-terminating ones, so connections drain during a rollout. Both data
//! paths consume the same plan, so they cannot disagree on what is reachable.
//!
//! One rule kube-proxy cannot have: endpoints on nodes that left the membership are skipped. A node that dies
//! keeps its pods as ready endpoints until Kubernetes marks it NotReady (the node monitor's grace period, tens
//! of seconds), and new connections sent there fail; the membership knows within its detection time. When
//! every candidate is on such a node they are kept (ready before terminating): a speaker that is only
//! restarting must not take its node's pods out of service.
//!
//! The inputs ([`Service`], [`Slice`]) are plain projections of the Kubernetes objects, made by the speaker
//! at its watch edge; this crate never sees a Kubernetes type.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::{Frontend, Protocol};

/// One Service ferrolb handles, as forward mode reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `namespace/name`.
    pub key: String,
    /// The addresses in its `status.loadBalancer.ingress`.
    pub ingress: Vec<IpAddr>,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// It asks for a PROXY protocol v2 header (annotation `ferrolb.io/proxy-protocol: v2`).
    pub proxy_protocol: bool,
    /// `spec.loadBalancerSourceRanges` that parse, of both families.
    pub source_ranges: Vec<IpNet>,
    /// `spec.loadBalancerSourceRanges` is set at all (a range that does not parse still restricts).
    pub restricted: bool,
}

/// One port of a [`Service`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name (empty when unnamed).
    pub name: String,
    /// Its protocol; `None` for one ferrolb does not forward (SCTP).
    pub protocol: Option<Protocol>,
    /// The Service port.
    pub port: u16,
}

/// The address family of a [`Slice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 endpoints.
    V4,
    /// IPv6 endpoints.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

/// One EndpointSlice, as forward mode reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The `namespace/name` of the Service it belongs to.
    pub service: String,
    /// The family of its addresses.
    pub family: Family,
    /// Its ports.
    pub ports: Vec<SlicePort>,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// One port of a [`Slice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    /// The name of the Service port it serves (empty when unnamed).
    pub name: String,
    /// Its protocol; `None` for one ferrolb does not forward.
    pub protocol: Option<Protocol>,
    /// The port on the endpoints.
    pub port: u16,
}

/// One endpoint of a [`Slice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its (first) address.
    pub address: IpAddr,
    /// The node it runs on, if known.
    pub node: Option<String>,
    /// Ready (unknown readiness counts as ready).
    pub ready: bool,
    /// Terminating but still serving.
    pub serving_while_terminating: bool,
}

/// One Service port on an owned IP, and where its traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Where the traffic arrives.
    pub frontend: Frontend,
    /// The Service, as `namespace/name`.
    pub service: String,
    /// `externalTrafficPolicy: Local`: only this node's endpoints, and the client address is kept.
    pub local: bool,
    /// The endpoints, sorted; empty when there is none (the traffic is refused).
    pub endpoints: Vec<SocketAddr>,
    /// The Service asks for a PROXY protocol v2 header (annotation `ferrolb.io/proxy-protocol: v2`).
    pub proxy_protocol: bool,
    /// `spec.loadBalancerSourceRanges` of the IP's family: only these clients may connect (empty: anyone).
    /// kube-proxy enforces them only for `ipMode: VIP`, so in forward mode ferrolb must.
    pub source_ranges: Vec<IpNet>,
    /// The Service restricts its clients at all; with `source_ranges` empty, no client of this family may
    /// connect.
    pub restricted: bool,
}

/// The endpoints of `port` on `ip`'s family in `slices` (the Service's own), with the policy applied.
fn endpoints_for(
    nodes: &Nodes<'_>,
    ip: IpAddr,
    port: &ServicePort,
    protocol: Protocol,
    local: bool,
    slices: &[&Slice],
) -> Vec<SocketAddr> {
    // Ready and draining endpoints, each split by whether their node left the membership.
    let mut ready = (BTreeSet::new(), BTreeSet::new());
    let mut draining = (BTreeSet::new(), BTreeSet::new());
    for slice in slices.iter().filter(|s| s.family == Family::of(ip)) {
        let Some(target) = slice.ports.iter().find(|p| p.name == port.name && p.protocol == Some(protocol)) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            if local && endpoint.node.as_deref() != Some(nodes.me) {
                continue;
            }
            let at = SocketAddr::new(endpoint.address, target.port);
            let gone = endpoint.node.as_ref().is_some_and(|n| nodes.departed.contains(n));
            let set = match (endpoint.ready, endpoint.serving_while_terminating) {
                (true, _) => &mut ready,
                (false, true) => &mut draining,
                (false, false) => continue,
            };
            if gone {
                set.1.insert(at)
            } else {
                set.0.insert(at)
            };
        }
    }
    // A serving pod on a live node is a better bet than a "ready" one on a node that is likely dead.
    let chosen = [ready.0, draining.0, ready.1, draining.1].into_iter().find(|set| !set.is_empty());
    chosen.unwrap_or_default().into_iter().collect()
}

/// Which node this is, and which nodes' endpoints to avoid.
#[derive(Debug, Clone, Copy)]
pub struct Nodes<'a> {
    /// This node's name (`externalTrafficPolicy: Local` keeps only its endpoints).
    pub me: &'a str,
    /// Nodes whose speaker left the membership and has not come back: their endpoints are used only when
    /// there is no other.
    pub departed: &'a BTreeSet<String>,
}

/// The forwards for the `owned` IPs. `services` are the Services ferrolb handles; a frontend claimed by two
/// Services (the allocator prevents it) goes to the first by key.
pub fn plan(nodes: &Nodes<'_>, owned: &BTreeSet<IpAddr>, services: &[Service], slices: &[Slice]) -> Vec<Forward> {
    let mut by_service: BTreeMap<&str, Vec<&Slice>> = BTreeMap::new();
    for slice in slices {
        by_service.entry(slice.service.as_str()).or_default().push(slice);
    }
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut forwards: BTreeMap<Frontend, Forward> = BTreeMap::new();
    for svc in sorted {
        let own_slices = by_service.get(svc.key.as_str()).map(Vec::as_slice).unwrap_or_default();
        for ip in svc.ingress.iter().copied().filter(|ip| owned.contains(ip)) {
            for port in &svc.ports {
                let Some(protocol) = port.protocol else { continue };
                let frontend = Frontend { ip, protocol, port: port.port };
                forwards.entry(frontend).or_insert_with(|| Forward {
                    frontend,
                    service: svc.key.clone(),
                    local: svc.local,
                    endpoints: endpoints_for(nodes, ip, port, protocol, svc.local, own_slices),
                    proxy_protocol: svc.proxy_protocol,
                    source_ranges: svc
                        .source_ranges
                        .iter()
                        .filter(|r| r.addr().is_ipv4() == ip.is_ipv4())
                        .copied()
                        .collect(),
                    restricted: svc.restricted,
                });
            }
        }
    }
    forwards.into_values().collect()
}

#[cfg(test)]
mod tests;
