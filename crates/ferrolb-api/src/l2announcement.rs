//! `L2Announcement`: the record of which node announces an external IP, on which interfaces, since when.
//!
//! Written by the owning speaker (one object per IP, in the namespace of its Service), moved by the next
//! owner on handover and removed when the IP is no longer announced, so `kubectl get l2announcements -A`
//! answers "which node holds this IP?". The speakers never read it to decide anything: ownership is computed,
//! the object only reports it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which node announces one external IP. Written by ferrolb's speakers; not meant to be edited.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "L2Announcement",
    doc = "Which node announces an external IP on layer 2 (written by the speakers).",
    plural = "l2announcements",
    shortname = "l2ann",
    category = "ferrolb",
    namespaced,
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".spec.ip","description":"The announced external IP"}"#,
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service","description":"The Service (first of those sharing the IP)"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node","description":"The node answering ARP/NDP for the IP"}"#,
    printcolumn = r#"{"name":"Interfaces","type":"string","jsonPath":".spec.interfaces","description":"Interfaces the IP is announced on"}"#,
    printcolumn = r#"{"name":"Since","type":"date","jsonPath":".spec.since","description":"When this node took the IP"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct L2AnnouncementSpec {
    /// The announced external IP.
    pub ip: String,
    /// The Service using the IP (the first by name when several share it).
    pub service: String,
    /// Every Service using the IP, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// The node answering ARP/NDP for the IP.
    pub node: String,
    /// Interfaces the IP is announced on.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// When this node took the IP (RFC 3339).
    pub since: String,
}

/// The name of the L2Announcement object for `ip`: `ip-` then the address with `.` and `:` as `-`
/// (`203.0.113.10` is `ip-203-0-113-10`, `2001:db8::a` is `ip-2001-db8--a`); a trailing `::` gets a `0` so
/// the name ends with an alphanumeric as object names must.
pub fn l2announcement_name(ip: std::net::IpAddr) -> String {
    let mut name = format!("ip-{}", ip.to_string().replace(['.', ':'], "-"));
    if name.ends_with('-') {
        name.push('0');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_object_names() {
        assert_eq!(l2announcement_name("203.0.113.10".parse().unwrap()), "ip-203-0-113-10");
        assert_eq!(l2announcement_name("2001:db8::a".parse().unwrap()), "ip-2001-db8--a");
        assert_eq!(l2announcement_name("2001:db8:5::".parse().unwrap()), "ip-2001-db8-5--0");
    }
}
