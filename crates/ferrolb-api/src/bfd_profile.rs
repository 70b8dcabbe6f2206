//! `BFDProfile`: the timers of the BFD sessions that guard BGP sessions, named by a BGPPeer's `bfdProfile`.
//! Field names are MetalLB's, so its profiles convert as they are.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bgp_schema;

/// How fast a BFD session detects a dead path: a packet every `transmitInterval`, at most one every
/// `receiveInterval`, down after `detectMultiplier` missed ones.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BFDProfile",
    doc = "BFD timers for the BGP sessions of the BGPPeers that name this profile.",
    plural = "bfdprofiles",
    shortname = "bfdp",
    category = "ferrolb",
    printcolumn = r#"{"name":"Transmit","type":"integer","jsonPath":".spec.transmitInterval","description":"Milliseconds between packets"}"#,
    printcolumn = r#"{"name":"Receive","type":"integer","jsonPath":".spec.receiveInterval","description":"Fastest rate accepted, ms"}"#,
    printcolumn = r#"{"name":"Multiplier","type":"integer","jsonPath":".spec.detectMultiplier","description":"Missed packets that mean down"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = bgp_schema::bfd_rules()))]
pub struct BFDProfileSpec {
    /// The fastest this node accepts packets, in milliseconds (10-60000; default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::bfd_interval")]
    pub receive_interval: Option<u32>,
    /// How often this node wants to send, in milliseconds (10-60000; default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::bfd_interval")]
    pub transmit_interval: Option<u32>,
    /// How many intervals without a packet mean the path is down (2-255; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::bfd_multiplier")]
    pub detect_multiplier: Option<u8>,
    /// Echo mode; not implemented, so it must stay unset or false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Echo interval (only with echo mode, which is not implemented).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::bfd_echo_interval")]
    pub echo_interval: Option<u32>,
    /// Wait for the peer to send first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// The lowest TTL accepted on a multihop session (1-254; default 254); single hop always needs 255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bgp_schema::bfd_minimum_ttl")]
    pub minimum_ttl: Option<u8>,
}

/// The default transmit and receive interval of a profile that leaves them unset, in milliseconds. With
/// [`DEFAULT_BFD_MULTIPLIER`] a dead path is detected within 250 ms, and 5% random loss each way flapped no
/// session in 10 minutes on a busy node, where 300 ms x 3 (MetalLB's default) and 100 ms x 3 did; about 45
/// packets a second per session (`hack/bench/bfd-soak`; figures in the README).
pub const DEFAULT_BFD_INTERVAL_MS: u32 = 50;
/// The default detection multiplier: five packets in a row must be lost before a path is declared down.
pub const DEFAULT_BFD_MULTIPLIER: u8 = 5;
/// The default minimum TTL of multihop sessions.
pub const DEFAULT_BFD_MINIMUM_TTL: u8 = 254;
