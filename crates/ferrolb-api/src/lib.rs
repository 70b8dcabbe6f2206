//! ferrolb's Kubernetes API: the custom resources an operator writes, the annotation keys ferrolb reads,
//! and the condition types it reports.
//!
//! This crate is the only door to Kubernetes types for the rest of the workspace: it re-exports the kube and
//! k8s-openapi items other crates use, so versions are pinned in one place. It defines shapes and their
//! schemas (with the CEL rules the API server enforces), and the reading rules every component must apply
//! identically: which Services ferrolb handles ([`handles_service`]), a Service's key, ingress addresses,
//! traffic policy and recorded pools ([`service_key`] and its neighbours), and EndpointSlice readiness
//! ([`endpoint_ready`]).
//!
//! Architecture invariant: no I/O and no decisions. Parsing an address entry or choosing an address belongs to
//! `ferrolb-ipam`; talking to the API server belongs to the controller and the speaker.

mod address_conflict;
mod annotations;
mod bfd_profile;
mod bgp_advertisement;
mod bgp_peer;
mod bgp_schema;
mod bgp_session;
mod class;
mod conditions;
mod crds;
mod duration;
mod endpoint_slice;
mod l2advertisement;
mod l2announcement;
mod pool;
mod schema;
mod selector;
mod service;

pub use address_conflict::{AddressConflict, AddressConflictSpec, address_conflict_name};
pub use annotations::*;
pub use bfd_profile::{
    BFDProfile, BFDProfileSpec, DEFAULT_BFD_INTERVAL_MS, DEFAULT_BFD_MINIMUM_TTL, DEFAULT_BFD_MULTIPLIER,
};
pub use bgp_advertisement::{BGPAdvertisement, BGPAdvertisementSpec, WELL_KNOWN_COMMUNITY_NAMES};
pub use bgp_peer::{
    BGPPeer, BGPPeerSpec, DEFAULT_CONNECT_TIME, DEFAULT_HOLD_TIME, DEFAULT_PEER_PORT, PASSWORD_SECRET_KEY,
    PASSWORD_SECRET_TYPE, SecretReference,
};
pub use bgp_session::{BGPSession, BGPSessionSpec, BGPSessionStatus, bgpsession_name};
pub use class::{handles_service, handles_type_and_class};
pub use conditions::*;
pub use crds::all_crds;
pub use duration::{DurationError, format_duration, parse_duration};
pub use endpoint_slice::{SERVICE_NAME_LABEL, endpoint_ready, endpoint_serving_while_terminating, slice_service_key};
pub use l2advertisement::{L2Advertisement, L2AdvertisementSpec};
pub use l2announcement::{L2Announcement, L2AnnouncementSpec, l2announcement_name};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use selector::{SelectorError, selector_from_k8s};
pub use service::{
    ingress_ip_modes, ingress_ips, join_pools, local_traffic_policy, namespaced_key, recorded_pools, service_key,
    split_pools,
};

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
        LoadBalancerIngress, LoadBalancerStatus, Namespace, Node, ObjectReference, Secret, Service, ServicePort,
        ServiceSpec, ServiceStatus,
    };
    pub use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
    pub use k8s_openapi::api::events::v1::Event;
    pub use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Condition, LabelSelector, LabelSelectorRequirement, MicroTime, ObjectMeta, Time,
    };
    pub use k8s_openapi::jiff;
    pub use k8s_openapi::{self, ByteString};
    pub use kube::{self, CustomResourceExt, Resource, ResourceExt};
}
