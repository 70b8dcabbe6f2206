//! `BGPAdvertisement`: which pools are advertised over BGP, from which nodes, to which peers, with which
//! attributes. Field names are MetalLB's, so its objects convert as they are.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bgp_schema;
use crate::k8s::LabelSelector;

/// The well-known community names a BGPAdvertisement may use (lower case).
pub const WELL_KNOWN_COMMUNITY_NAMES: [&str; 10] = [
    "graceful-shutdown",
    "accept-own",
    "llgr-stale",
    "no-llgr",
    "blackhole",
    "no-export",
    "no-advertise",
    "no-export-subconfed",
    "local-as",
    "no-peer",
];

/// Advertises the addresses of some pools over BGP. Every eligible node advertises each address to the
/// peers it selects, so routers spread the traffic over them (ECMP).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPAdvertisement",
    doc = "Advertises the addresses of some pools over BGP from every eligible node.",
    plural = "bgpadvertisements",
    shortname = "bgpadv",
    category = "ferrolb",
    printcolumn = r#"{"name":"Pools","type":"string","jsonPath":".spec.ipAddressPools","description":"Pools advertised (empty with no selectors: all)"}"#,
    printcolumn = r#"{"name":"Peers","type":"string","jsonPath":".spec.peers","description":"Peers advertised to (empty: all)"}"#,
    printcolumn = r#"{"name":"Communities","type":"string","jsonPath":".spec.communities","description":"Communities attached"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Prefix length of the IPv4 route for each address (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::aggregation_length")]
    pub aggregation_length: Option<u8>,
    /// Prefix length of the IPv6 route for each address (default 128).
    #[serde(default, rename = "aggregationLengthV6", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::aggregation_length_v6")]
    pub aggregation_length_v6: Option<u8>,
    /// LOCAL_PREF for internal peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::local_pref")]
    pub local_pref: Option<u32>,
    /// Communities attached to the routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "bgp_schema::communities")]
    pub communities: Vec<String>,
    /// Pools advertised, by name. With neither names nor selectors, every pool is advertised.
    #[serde(default, rename = "ipAddressPools", skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools advertised, by label.
    #[serde(default, rename = "ipAddressPoolSelectors", skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that advertise, by label. Empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// BGPPeer names advertised to. Empty: every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}
