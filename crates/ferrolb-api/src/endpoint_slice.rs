//! How every component reads an EndpointSlice: which Service it belongs to and which endpoints count as
//! ready or still serving, as the EndpointSlice API defines them.

use crate::k8s::ResourceExt;
use crate::k8s::k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use crate::service::namespaced_key;

/// The label that ties a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The `namespace/name` key of the Service `slice` belongs to, if it names one.
pub fn slice_service_key(slice: &EndpointSlice) -> Option<String> {
    let name = slice.labels().get(SERVICE_NAME_LABEL)?;
    Some(namespaced_key(&slice.namespace().unwrap_or_default(), name))
}

/// Whether `endpoint` is ready; unknown readiness counts as ready, as the EndpointSlice API specifies.
pub fn endpoint_ready(endpoint: &Endpoint) -> bool {
    endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
}

/// Whether `endpoint` is terminating but still serving (it may take traffic when nothing is ready).
pub fn endpoint_serving_while_terminating(endpoint: &Endpoint) -> bool {
    let c = endpoint.conditions.as_ref();
    c.and_then(|c| c.serving).unwrap_or(false) && c.and_then(|c| c.terminating).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::ObjectMeta;
    use crate::k8s::k8s_openapi::api::discovery::v1::EndpointConditions;

    fn endpoint(ready: Option<bool>, serving: Option<bool>, terminating: Option<bool>) -> Endpoint {
        Endpoint { conditions: Some(EndpointConditions { ready, serving, terminating }), ..Default::default() }
    }

    #[test]
    fn readiness_follows_the_endpoint_slice_api() {
        assert!(endpoint_ready(&Endpoint::default()), "unknown counts as ready");
        assert!(endpoint_ready(&endpoint(Some(true), None, None)));
        assert!(!endpoint_ready(&endpoint(Some(false), Some(true), Some(true))));
        assert!(endpoint_serving_while_terminating(&endpoint(Some(false), Some(true), Some(true))));
        assert!(!endpoint_serving_while_terminating(&endpoint(Some(false), Some(false), Some(true))));
        assert!(!endpoint_serving_while_terminating(&endpoint(None, None, None)));
    }

    #[test]
    fn a_slice_names_its_service_by_label() {
        let mut slice = EndpointSlice {
            metadata: ObjectMeta { namespace: Some("shop".into()), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(slice_service_key(&slice), None);
        slice.metadata.labels = Some([(SERVICE_NAME_LABEL.to_owned(), "web".to_owned())].into());
        assert_eq!(slice_service_key(&slice).as_deref(), Some("shop/web"));
    }
}
