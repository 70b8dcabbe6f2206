//! ferrolb's Kubernetes API: the custom resources an operator writes, the annotation keys ferrolb reads,
//! and the condition types it reports.
//!
//! This crate is the only door to Kubernetes types for the rest of the workspace: it re-exports the kube and
//! k8s-openapi items other crates use, so versions are pinned in one place. It defines shapes and their
//! schemas (with the CEL rules the API server enforces) and nothing else.
//!
//! Architecture invariant: no I/O and no decisions. Parsing an address entry or choosing an address belongs to
//! `ferrolb-ipam`; talking to the API server belongs to the controller and the speaker.

mod annotations;
mod class;
mod conditions;
mod crds;
mod l2advertisement;
mod l2announcement;
mod pool;
mod schema;
mod selector;

pub use annotations::*;
pub use class::handles_service;
pub use conditions::*;
pub use crds::all_crds;
pub use l2advertisement::{L2Advertisement, L2AdvertisementSpec};
pub use l2announcement::{L2Announcement, L2AnnouncementSpec, l2announcement_name};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use selector::selector_from_k8s;

/// The API group of every ferrolb resource.
pub const GROUP: &str = "ferrolb.io";
/// The API version of every ferrolb resource.
pub const VERSION: &str = "v1alpha1";
/// The loadBalancerClass ferrolb handles by default.
pub const DEFAULT_LOAD_BALANCER_CLASS: &str = "ferrolb.io/lb";

/// Re-exports of the Kubernetes crates, so the workspace pins them here.
pub mod k8s {
    pub use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    pub use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, Namespace, Node, ObjectReference, Service, ServicePort, ServiceSpec,
        ServiceStatus,
    };
    pub use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Condition, LabelSelector, LabelSelectorRequirement, MicroTime, ObjectMeta, Time,
    };
    pub use k8s_openapi::jiff;
    pub use k8s_openapi::{self, ByteString};
    pub use kube::{self, CustomResourceExt, Resource, ResourceExt};
}
