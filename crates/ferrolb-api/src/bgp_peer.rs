//! `BGPPeer`: a router the speakers open BGP sessions to, and from which nodes. Field names are MetalLB's
//! (`v1beta2`), so `ferrolb migrate-from-metallb` converts its objects as they are.
//!
//! A session's TCP MD5 key (RFC 2385) comes from a Secret named by `passwordSecret`, never from the BGPPeer
//! itself: MetalLB's plain `password` field is refused by the schema, because anyone who may read BGPPeers
//! could read a key written there.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bgp_schema;
use crate::k8s::LabelSelector;

/// The default hold time (RFC 4271 suggests 90 s; MetalLB's default too).
pub const DEFAULT_HOLD_TIME: &str = "90s";
/// The default wait before retrying a failed connection.
pub const DEFAULT_CONNECT_TIME: &str = "1s";
/// The default TCP port of BGP.
pub const DEFAULT_PEER_PORT: u16 = 179;
/// The type a `passwordSecret` Secret must have (MetalLB's rule).
pub const PASSWORD_SECRET_TYPE: &str = "kubernetes.io/basic-auth";
/// The key of a `passwordSecret` Secret that holds the TCP MD5 key.
pub const PASSWORD_SECRET_KEY: &str = "password";

/// A BGP peer (usually a top-of-rack router) and the nodes that peer with it.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPPeer",
    doc = "A BGP peer (a router) that ferrolb's speakers advertise external IPs to.",
    plural = "bgppeers",
    shortname = "bgpp",
    category = "ferrolb",
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.peerAddress","description":"The peer's address"}"#,
    printcolumn = r#"{"name":"ASN","type":"integer","jsonPath":".spec.peerASN","description":"The peer's AS"}"#,
    printcolumn = r#"{"name":"My ASN","type":"integer","jsonPath":".spec.myASN","description":"The nodes' AS"}"#,
    printcolumn = r#"{"name":"Hold","type":"string","jsonPath":".spec.holdTime","description":"Hold time proposed"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = bgp_schema::peer_rules()))]
#[schemars(transform = bgp_schema::refuse_plain_password)]
pub struct BGPPeerSpec {
    /// This node's AS number.
    #[serde(rename = "myASN")]
    #[schemars(schema_with = "bgp_schema::my_asn")]
    pub my_asn: u32,
    /// The peer's AS number; equal to `myASN` for internal BGP.
    #[serde(rename = "peerASN")]
    #[schemars(schema_with = "bgp_schema::peer_asn")]
    pub peer_asn: u32,
    /// The peer's address, IPv4 or IPv6.
    #[schemars(schema_with = "bgp_schema::peer_address")]
    pub peer_address: String,
    /// The peer's TCP port (default 179).
    #[serde(default = "default_port")]
    #[schemars(schema_with = "bgp_schema::peer_port")]
    pub peer_port: u16,
    /// The address this node connects from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::source_address")]
    pub source_address: Option<String>,
    /// The BGP identifier this node sends (default: the node's IPv4 address).
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::router_id")]
    pub router_id: Option<String>,
    /// Hold time proposed: 0s, or 3s to 65535s (default 90s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::hold_time")]
    pub hold_time: Option<String>,
    /// Keepalive interval, below the hold time (default: a third of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::keepalive_time")]
    pub keepalive_time: Option<String>,
    /// Wait before retrying a failed connection (default 1s, doubled after each failure up to 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::connect_time")]
    pub connect_time: Option<String>,
    /// Nodes that peer, by label. Empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// The peer is not directly connected: send with TTL 255 instead of 1 (external peers only); BFD then
    /// runs multihop (RFC 5883).
    #[serde(default, rename = "ebgpMultiHop")]
    pub ebgp_multi_hop: bool,
    /// A BFDProfile: guard the session with BFD, so a dead path takes it down in a fraction of a second
    /// instead of the hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    /// The Secret holding the session's TCP MD5 key (RFC 2385): type `kubernetes.io/basic-auth`, the key
    /// (1-80 bytes, no line breaks) under `password`, in the namespace ferrolb runs in. The speakers read only
    /// the Secrets the chart lets them (`speaker.bgpPasswordSecrets`); a new key restarts the session with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::password_secret")]
    pub password_secret: Option<SecretReference>,
}

/// Where a Secret is: the shape of Kubernetes' `SecretReference` (MetalLB's `passwordSecret`), with the name
/// required. The namespace defaults to the one ferrolb runs in, and may only be that one.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretReference {
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace; default (and the only one the speakers read): ferrolb's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

fn default_port() -> u16 {
    DEFAULT_PEER_PORT
}
