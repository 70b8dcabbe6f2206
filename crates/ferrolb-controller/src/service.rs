//! Shrinking a Service into what the allocator needs ([`ferrolb_ipam::Request`]). Annotation mistakes become
//! `AllocError::InvalidRequest`, reported like any other failure. Reading back what its status holds uses
//! the rules every component shares (`ferrolb_api::ingress_ips` and its neighbours).

use std::net::IpAddr;

use ferrolb_api::k8s::{ResourceExt, Service};
use ferrolb_api::{ADDRESS_POOL_KEYS, ALLOW_SHARED_IP_KEYS, LOAD_BALANCER_IPS_KEYS, local_traffic_policy};
use ferrolb_ipam::{
    AllocError, Family, FamilyPolicy, Labels, PoolName, PortKey, Protocol, Request, ServiceKey, SharingKey,
};

use crate::config::Config;

/// Whether the controller handles this Service: type LoadBalancer, and our class (or no class, if allowed).
pub fn is_handled(service: &Service, config: &Config) -> bool {
    ferrolb_api::handles_service(service, &config.load_balancer_class, config.handle_unclassed)
}

/// The Service's key.
pub fn key_of(service: &Service) -> ServiceKey {
    ServiceKey::new(&service.namespace().unwrap_or_default(), &service.name_any())
}

/// The first of `keys` set to a non-empty value, with the key (for messages) and the trimmed value.
fn first_annotation<'a>(service: &'a Service, keys: &[&'static str]) -> Option<(&'static str, &'a str)> {
    let annotations = service.metadata.annotations.as_ref()?;
    keys.iter().find_map(|&key| {
        let value = annotations.get(key)?.trim();
        (!value.is_empty()).then_some((key, value))
    })
}

fn invalid(reason: String) -> AllocError {
    AllocError::InvalidRequest { reason }
}

/// Builds the allocation request of a Service. `namespace_labels` are the labels of its namespace.
pub fn request_from_service(service: &Service, namespace_labels: &Labels) -> Result<Request, AllocError> {
    let spec = service.spec.clone().unwrap_or_default();
    let families: Vec<Family> = spec
        .ip_families
        .unwrap_or_default()
        .iter()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    let first = families.first().copied().unwrap_or(Family::V4);
    let both = |a: Family| [a, if a == Family::V4 { Family::V6 } else { Family::V4 }];
    let policy = match spec.ip_family_policy.as_deref() {
        Some("RequireDualStack") => FamilyPolicy::RequireDual(both(first)),
        Some("PreferDualStack") if families.len() > 1 => FamilyPolicy::PreferDual(both(first)),
        _ => FamilyPolicy::Single(first),
    };

    let mut ips = Vec::new();
    if let Some((key, value)) = first_annotation(service, &LOAD_BALANCER_IPS_KEYS) {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let ip: IpAddr =
                part.parse().map_err(|_| invalid(format!("annotation {key}: {part:?} is not an IP address")))?;
            ips.push(ip);
        }
    } else if let Some(ip) = spec.load_balancer_ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        ips.push(ip.parse().map_err(|_| invalid(format!("spec.loadBalancerIP {ip:?} is not an IP address")))?);
    }

    let ports = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let protocol = match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            PortKey { protocol, port: u16::try_from(p.port).unwrap_or_default() }
        })
        .collect();
    let local_selector =
        local_traffic_policy(service).then(|| spec.selector.clone().unwrap_or_default().into_iter().collect());

    Ok(Request {
        service: key_of(service),
        namespace_labels: namespace_labels.clone(),
        service_labels: service.labels().clone().into_iter().collect(),
        families: policy,
        pool: first_annotation(service, &ADDRESS_POOL_KEYS).map(|(_, v)| PoolName::new(v)),
        ips,
        sharing: first_annotation(service, &ALLOW_SHARED_IP_KEYS).map(|(_, v)| SharingKey(v.to_owned())),
        ports,
        local_selector,
    })
}

#[cfg(test)]
mod tests;
