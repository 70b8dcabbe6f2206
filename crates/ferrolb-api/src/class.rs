//! Which Services ferrolb handles, the rule the controller and the speaker must share exactly.

use crate::k8s::Service;

/// Whether ferrolb handles `service`: type LoadBalancer, `load_balancer_class` (or no class, when
/// `handle_unclassed`), and not being deleted. A Service being deleted gets no address and nobody announces
/// it, as a cloud load balancer is torn down once its Service is deleted, even while other finalizers hold
/// the object.
pub fn handles_service(service: &Service, load_balancer_class: &str, handle_unclassed: bool) -> bool {
    service.metadata.deletion_timestamp.is_none()
        && handles_type_and_class(service, load_balancer_class, handle_unclassed)
}

/// Whether `service` has the type and class ferrolb handles, deleted or not: the Services whose cleanup
/// finalizer is ferrolb's to remove.
pub fn handles_type_and_class(service: &Service, load_balancer_class: &str, handle_unclassed: bool) -> bool {
    let Some(spec) = &service.spec else { return false };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return false;
    }
    match &spec.load_balancer_class {
        None => handle_unclassed,
        Some(class) => class == load_balancer_class,
    }
}
