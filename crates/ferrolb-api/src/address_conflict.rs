//! `AddressConflict`: an external IP that another host on the LAN answers for.
//!
//! A speaker probes an IP before it first announces it (an ARP probe from 0.0.0.0, a duplicate address
//! detection solicitation from `::`); when some other machine answers, it announces nothing, creates this
//! object and keeps checking. The controller hands the address out to no Service while the object exists
//! (a Service holding it gets another one), and lists it in the pool's status. The detecting speaker deletes
//! the object once a re-check gets no answer; an operator may delete it too, after removing the other host.
//! Cluster-scoped, one per IP, so `kubectl get addressconflicts` lists every conflict.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An external IP answered by another host on the LAN. Written by ferrolb's speakers.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "AddressConflict",
    doc = "An external IP that another host on the LAN answers for (written by the speakers).",
    plural = "addressconflicts",
    shortname = "addrconflict",
    category = "ferrolb",
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".spec.ip","description":"The address in conflict"}"#,
    printcolumn = r#"{"name":"MAC","type":"string","jsonPath":".spec.mac","description":"The hardware address that answered"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node","description":"The node whose probe was answered"}"#,
    printcolumn = r#"{"name":"Interface","type":"string","jsonPath":".spec.interface","description":"Where it was answered"}"#,
    printcolumn = r#"{"name":"Detected","type":"date","jsonPath":".spec.detected","description":"When it was first answered"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AddressConflictSpec {
    /// The address in conflict.
    pub ip: String,
    /// The hardware address of the host that answered for it.
    pub mac: String,
    /// The node whose probe was answered (it checks again, and deletes this object when nobody answers).
    pub node: String,
    /// The interface the answer came in on.
    pub interface: String,
    /// When the conflict was first seen (RFC 3339).
    pub detected: String,
    /// The Services that held the address then, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// The name of the AddressConflict object for `ip` (the same form as an L2Announcement's).
pub fn address_conflict_name(ip: std::net::IpAddr) -> String {
    crate::l2announcement_name(ip)
}
