//! What this node forwards, as a pure function of the Services it owns IPs for and their EndpointSlices.
//!
//! For every port of a Service on an IP this node owns, a [`Forward`] names the endpoints that the Service's
//! NodePort would reach, with the same rules as kube-proxy: ready endpoints of the IP's family whose slice
//! port matches the Service port by name and protocol; with `externalTrafficPolicy: Local` only this node's;
//! and when none is ready, the serving-but-terminating ones, so connections drain during a rollout. Both data
//! paths consume the same plan, so they cannot disagree on what is reachable.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use ferrolb_api::PROXY_PROTOCOL;
use ferrolb_api::k8s::k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use ferrolb_api::k8s::{ResourceExt, Service, ServicePort};

use super::{Frontend, Protocol};

/// One Service port on an owned IP, and where its traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Where the traffic arrives.
    pub frontend: Frontend,
    /// The Service, as `namespace/name`.
    pub service: String,
    /// The Service port's NodePort, if it has one (the userspace path needs it).
    pub node_port: Option<u16>,
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

fn protocol_of(name: Option<&str>) -> Option<Protocol> {
    match name.unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

fn key_of(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

fn ingress_ips(svc: &Service) -> impl Iterator<Item = IpAddr> + '_ {
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
    ingress.into_iter().flatten().filter_map(|i| i.ip.as_deref()?.parse().ok())
}

fn family_matches(slice: &EndpointSlice, ip: IpAddr) -> bool {
    matches!((slice.address_type.as_str(), ip), ("IPv4", IpAddr::V4(_)) | ("IPv6", IpAddr::V6(_)))
}

fn ready(e: &Endpoint) -> bool {
    // Unknown readiness counts as ready, as the EndpointSlice API specifies.
    e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
}

fn serving_while_terminating(e: &Endpoint) -> bool {
    let c = e.conditions.as_ref();
    c.and_then(|c| c.serving).unwrap_or(false) && c.and_then(|c| c.terminating).unwrap_or(false)
}

/// The endpoints of `port` on `ip`'s family in `slices` (the Service's own), with the policy applied.
fn endpoints_for(
    me: &str,
    ip: IpAddr,
    port: &ServicePort,
    protocol: Protocol,
    local: bool,
    slices: &[&EndpointSlice],
) -> Vec<SocketAddr> {
    let mut ready_set = BTreeSet::new();
    let mut draining = BTreeSet::new();
    for slice in slices.iter().filter(|s| family_matches(s, ip)) {
        let target = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port.name.as_deref().unwrap_or("")
                && protocol_of(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(number) = target.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()) else { continue };
        for endpoint in slice.endpoints.iter().flatten() {
            if local && endpoint.node_name.as_deref() != Some(me) {
                continue;
            }
            let Some(address) = endpoint.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
            let at = SocketAddr::new(address, number);
            if ready(endpoint) {
                ready_set.insert(at);
            } else if serving_while_terminating(endpoint) {
                draining.insert(at);
            }
        }
    }
    let chosen = if ready_set.is_empty() { draining } else { ready_set };
    chosen.into_iter().collect()
}

/// The forwards for the `owned` IPs. `services` are the Services ferrolb handles; a frontend claimed by two
/// Services (the allocator prevents it) goes to the first by namespace/name.
pub fn plan(
    me: &str,
    owned: &BTreeSet<IpAddr>,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Vec<Forward> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if let Some(name) = slice.labels().get("kubernetes.io/service-name") {
            by_service.entry((slice.namespace().unwrap_or_default(), name.clone())).or_default().push(slice);
        }
    }
    let mut sorted: Vec<&Arc<Service>> = services.iter().collect();
    sorted.sort_by_key(|s| key_of(s));
    let mut forwards: BTreeMap<Frontend, Forward> = BTreeMap::new();
    for svc in sorted {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let local = spec.external_traffic_policy.as_deref() == Some("Local");
        let proxy_protocol = svc.annotations().get(PROXY_PROTOCOL).is_some_and(|v| v.trim().eq_ignore_ascii_case("v2"));
        // The API server validates the ranges; one that does not parse is dropped rather than widening access.
        let ranges: Vec<IpNet> =
            spec.load_balancer_source_ranges.iter().flatten().filter_map(|r| r.trim().parse().ok()).collect();
        let restricted = spec.load_balancer_source_ranges.as_ref().is_some_and(|r| !r.is_empty());
        let own_slices = by_service
            .get(&(svc.namespace().unwrap_or_default(), svc.name_any()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for ip in ingress_ips(svc).filter(|ip| owned.contains(ip)) {
            for port in spec.ports.iter().flatten() {
                let Some(protocol) = protocol_of(port.protocol.as_deref()) else { continue };
                let Ok(number) = u16::try_from(port.port) else { continue };
                let frontend = Frontend { ip, protocol, port: number };
                forwards.entry(frontend).or_insert_with(|| Forward {
                    frontend,
                    service: key_of(svc),
                    node_port: port.node_port.and_then(|p| u16::try_from(p).ok()),
                    local,
                    endpoints: endpoints_for(me, ip, port, protocol, local, own_slices),
                    proxy_protocol,
                    source_ranges: ranges.iter().filter(|r| r.addr().is_ipv4() == ip.is_ipv4()).copied().collect(),
                    restricted,
                });
            }
        }
    }
    forwards.into_values().collect()
}

#[cfg(test)]
mod tests;
