//! `IPAddressPool`: the addresses ferrolb may hand out and which Services may get them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::k8s::{Condition, LabelSelector};
use crate::schema;

/// A pool of external addresses for LoadBalancer Services.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "IPAddressPool",
    doc = "A pool of external IP addresses that ferrolb hands out to LoadBalancer Services.",
    plural = "ipaddresspools",
    shortname = "ippool",
    category = "ferrolb",
    status = "IPAddressPoolStatus",
    printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses","description":"CIDRs and ranges in the pool"}"#,
    printcolumn = r#"{"name":"Auto","type":"boolean","jsonPath":".spec.autoAssign","description":"Whether Services get addresses without asking for the pool"}"#,
    printcolumn = r#"{"name":"Assigned","type":"string","jsonPath":".status.assigned","description":"Addresses held by Services"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.available","description":"Addresses still free"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// Addresses of the pool: IPv4 or IPv6 CIDRs (`198.51.100.0/24`, `2001:db8:1::/64`, a /32 for one
    /// address) or inclusive ranges of one family (`198.51.100.10-198.51.100.20`). One pool may hold both
    /// families.
    #[schemars(schema_with = "schema::address_list")]
    pub addresses: Vec<String>,
    /// Whether Services that neither name this pool nor ask for one of its addresses may get its addresses.
    #[serde(default = "default_true")]
    #[schemars(schema_with = "schema::auto_assign")]
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in .0 or .255, which some old clients and routers mistreat.
    #[serde(default, rename = "avoidBuggyIPs")]
    #[schemars(schema_with = "schema::avoid_buggy_ips")]
    pub avoid_buggy_ips: bool,
    /// Restricts the pool to some Services and sets its priority. A pool with serviceAllocation serves only
    /// the Services it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

fn default_true() -> bool {
    true
}

/// Which Services a pool serves.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// When several pools match a Service, the lowest priority wins (ties go to the pool name).
    #[serde(default)]
    pub priority: i32,
    /// Namespaces whose Services this pool serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces, by label, whose Services this pool serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services, by label, this pool serves (within the namespaces above, if any are given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// What the controller observed about a pool.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// Addresses held by Services, both families (decimal; exact for any pool size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned: Option<String>,
    /// Addresses still free, both families (decimal; exact for any pool size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
    /// IPv4 addresses held by Services.
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    /// IPv4 addresses still free.
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: i64,
    /// IPv6 addresses held by Services (decimal string: a /64 holds more than an int64 can count).
    #[serde(default, rename = "assignedIPv6", skip_serializing_if = "Option::is_none")]
    pub assigned_ipv6: Option<String>,
    /// IPv6 addresses still free (decimal string).
    #[serde(default, rename = "availableIPv6", skip_serializing_if = "Option::is_none")]
    pub available_ipv6: Option<String>,
    /// Addresses of the pool that another host on the LAN answers for (`IP answered by MAC`): handed out to
    /// no Service while the conflict lasts (see `kubectl get addressconflicts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// `Ready`, `Overlapping` (an entry overlaps another pool) and `DeletionBlocked` (Services still hold
    /// addresses of a pool being deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}
