//! `BGPSession`: the state of one node's session with one peer, written by that node's speaker in the
//! release namespace, so `kubectl get bgpsessions -A` shows every session as a table. The speakers never read
//! it to decide anything; it only reports.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One node's BGP session with one peer. Written by ferrolb's speakers; not meant to be edited.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPSession",
    doc = "One node's BGP session with one peer (written by the speakers).",
    plural = "bgpsessions",
    shortname = "bgps",
    category = "ferrolb",
    namespaced,
    status = "BGPSessionStatus",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node","description":"The node"}"#,
    printcolumn = r#"{"name":"Peer","type":"string","jsonPath":".spec.peer","description":"The BGPPeer"}"#,
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.peerAddress","description":"The peer's address"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state","description":"Idle, Connect, Active, OpenSent, OpenConfirm or Established"}"#,
    printcolumn = r#"{"name":"Prefixes","type":"integer","jsonPath":".status.prefixesAdvertised","description":"Routes advertised to the peer"}"#,
    printcolumn = r#"{"name":"Hold","type":"string","jsonPath":".status.holdTime","description":"Negotiated hold time"}"#,
    printcolumn = r#"{"name":"BFD","type":"string","jsonPath":".status.bfd","description":"The guarding BFD session: Down, Init or Up"}"#,
    printcolumn = r#"{"name":"Up Since","type":"date","jsonPath":".status.establishedSince","description":"When the session was last established"}"#,
    printcolumn = r#"{"name":"Last Error","type":"string","jsonPath":".status.lastError","description":"Why the session last went down or failed","priority":0}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionSpec {
    /// The node whose speaker holds the session.
    pub node: String,
    /// The BGPPeer.
    pub peer: String,
    /// The peer's address.
    pub peer_address: String,
}

/// What the session's speaker reports.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionStatus {
    /// Idle, Connect, Active, OpenSent, OpenConfirm or Established (RFC 4271's states).
    #[serde(default)]
    pub state: String,
    /// The hold time both sides agreed on, while established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// The keepalive interval in use, while established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// When the session was last established (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_since: Option<String>,
    /// Routes advertised to the peer now.
    #[serde(default)]
    pub prefixes_advertised: i64,
    /// Why the session last went down or failed to come up ("the peer does not answer", a NOTIFICATION).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The state of the BFD session guarding this one (Down, Init, Up), when the peer names a BFDProfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<String>,
    /// Settings that do not apply to this session, and why (a localPref for an external peer, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The name of the BGPSession of `node` with `peer`: `<node>.<peer>`, both already object names.
pub fn bgpsession_name(node: &str, peer: &str) -> String {
    format!("{node}.{peer}")
}
