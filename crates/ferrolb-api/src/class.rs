//! Which Services ferrolb handles, the rule the controller and the speaker must share exactly.

use crate::k8s::Service;

/// Whether ferrolb handles `service`: type LoadBalancer, and `load_balancer_class` (or no class, when
/// `handle_unclassed`).
pub fn handles_service(service: &Service, load_balancer_class: &str, handle_unclassed: bool) -> bool {
    let Some(spec) = &service.spec else { return false };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return false;
    }
    match &spec.load_balancer_class {
        None => handle_unclassed,
        Some(class) => class == load_balancer_class,
    }
}
