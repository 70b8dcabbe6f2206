//! Hand-written schema parts: the structural schema the API server needs, with the CEL rules that reject
//! bad address entries with a message a person understands.
//!
//! The address rules mirror `ferrolb_ipam::AddressRange::from_str`; the e2e suite checks both against the
//! real API server. The IP library has no ordering, so a range's ends are compared as zero-padded strings
//! (IPv6 with `::` expanded). The rules avoid comprehensions (`map`, `all`): the API server's cost
//! estimate for them exceeds its budget.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

/// The longest accepted address entry (a full-length IPv6 range is 79 characters).
const MAX_ENTRY_LEN: u64 = 90;
/// The most entries one pool may list (bounded so the CEL cost estimate fits the API server's budget).
const MAX_ENTRIES: u64 = 32;

fn rule(rule: &str, message_expression: &str, reason: &str) -> Value {
    json!({ "rule": rule, "messageExpression": message_expression, "reason": reason })
}

/// `x` left-padded with zeros to `width` characters (`x` has at least one character).
fn pad(x: &str, width: usize) -> String {
    format!("('{zeros}' + {x}).substring(size({x}) - 1)", zeros = "0".repeat(width - 1))
}

/// The sortable key of an IPv4 address expression `x`: each octet zero-padded to three digits.
fn v4_key(x: &str) -> String {
    (0..4).map(|i| pad(&format!("{x}.split('.')[{i}]"), 3)).collect::<Vec<_>>().join(" + ")
}

/// The sortable key of an IPv6 address expression `x` (lowercase, as written): the eight groups, `::`
/// expanded, each zero-padded to four hex digits. Works on the written text rather than the canonical form
/// because the cost estimator can bound the former (by `maxLength`) but not the latter.
fn v6_key(x: &str) -> String {
    let halves = format!("{x}.split('::')");
    let n_left = format!("(size({halves}) == 2 && {halves}[0] != '' ? size({halves}[0].split(':')) : 0)");
    let n_right = format!("(size({halves}) == 2 && {halves}[1] != '' ? size({halves}[1].split(':')) : 0)");
    (0..8)
        .map(|i| {
            let group = format!(
                "(size({halves}) == 1 ? {x}.split(':')[{i}] : ({i} < {n_left} ? {halves}[0].split(':')[{i}] : \
                 ({i} >= 8 - {n_right} ? {halves}[1].split(':')[{i} - 8 + {n_right}] : '0')))"
            );
            pad(&group, 4)
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The CEL rules for one address entry (`self` is the string).
pub fn address_entry_rules() -> Vec<Value> {
    let a = "self.split('-')[0].trim()";
    let b = "self.split('-')[1].trim()";
    let is_range = format!("self.contains('-') && size(self.split('-')) == 2 && isIP({a}) && isIP({b})");
    let syntax = rule(
        &format!("self.contains('-') ? ({is_range}) : isCIDR(self)"),
        "'\"' + self + '\" is not a CIDR (like 198.51.100.0/24 or 2001:db8::/64) or a range of two addresses \
         (like 198.51.100.10-198.51.100.20)'",
        "FieldValueInvalid",
    );
    let host_bits = rule(
        "self.contains('-') || !isCIDR(self) || cidr(self).masked() == cidr(self)",
        "'\"' + self + '\" has bits set after the prefix length; write the network address \
         (198.51.100.0/24, not 198.51.100.5/24)'",
        "FieldValueInvalid",
    );
    let same_family = rule(
        &format!("!({is_range}) || ip({a}).family() == ip({b}).family()"),
        "'range \"' + self + '\" mixes IPv4 and IPv6; both ends must be of the same family'",
        "FieldValueInvalid",
    );
    let (la, lb) = (format!("{a}.lowerAscii()"), format!("{b}.lowerAscii()"));
    let ordered = format!(
        "ip({a}).family() == 4 ? {ka} <= {kb} : {k6a} <= {k6b}",
        ka = v4_key(a),
        kb = v4_key(b),
        k6a = v6_key(&la),
        k6b = v6_key(&lb),
    );
    let start_before_end = rule(
        &format!("!({is_range}) || ip({a}).family() != ip({b}).family() || ({ordered})"),
        "'range \"' + self + '\" starts after it ends; write the lower address first'",
        "FieldValueInvalid",
    );
    // Entries made only of addresses that can never be a LoadBalancer IP (ferrolb-ipam's `reserved`): a pool
    // that covers some of them as well as others is fine (they are left out and counted in its status).
    let cidr_inside = RESERVED_BLOCKS
        .iter()
        .map(|block| format!("cidr('{block}').containsCIDR(self)"))
        .collect::<Vec<_>>()
        .join(" || ");
    let range_inside = RESERVED_BLOCKS
        .iter()
        .map(|block| format!("(cidr('{block}').containsIP({a}) && cidr('{block}').containsIP({b}))"))
        .collect::<Vec<_>>()
        .join(" || ");
    let reserved = rule(
        &format!(
            "self.contains('-') ? (!({is_range}) || ip({a}).family() != ip({b}).family() || !({range_inside})) : (!isCIDR(self) || !({cidr_inside}))"
        ),
        "'\"' + self + '\" holds only unspecified, loopback, link-local, multicast or broadcast addresses, which can never be LoadBalancer IPs'",
        "FieldValueInvalid",
    );
    vec![syntax, host_bits, same_family, start_before_end, reserved]
}

/// The blocks of addresses that can never be a LoadBalancer IP (as in `ferrolb_ipam::reserved_ranges`).
const RESERVED_BLOCKS: [&str; 9] = [
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
];

/// `spec.addresses`: a non-empty list of entries, each checked by [`address_entry_rules`].
pub fn address_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Addresses of the pool: IPv4 or IPv6 CIDRs (198.51.100.0/24, 2001:db8:1::/64, a /32 for one \
                        address) or inclusive ranges of one family (198.51.100.10-198.51.100.20).",
        "type": "array",
        "maxItems": MAX_ENTRIES,
        "items": {
            "type": "string",
            "maxLength": MAX_ENTRY_LEN,
            "x-kubernetes-validations": address_entry_rules(),
        },
        "x-kubernetes-validations": [
            { "rule": "size(self) > 0", "message": "addresses must list at least one CIDR or range", "reason": "FieldValueRequired" }
        ],
    })
}

/// `spec.autoAssign`, defaulted by the API server so `kubectl get` shows the effective value.
pub fn auto_assign(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Whether Services that neither name this pool nor ask for one of its addresses may get its \
                        addresses. Default true.",
        "type": "boolean",
        "default": true,
    })
}

/// `spec.avoidBuggyIPs`, defaulted by the API server.
pub fn avoid_buggy_ips(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Skip IPv4 addresses ending in .0 or .255, which some old clients and routers mistreat. \
                        Default false.",
        "type": "boolean",
        "default": false,
    })
}

/// Standard conditions, as a map keyed by `type` so server-side apply merges them.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<crate::k8s::Condition>>();
    schema.insert("x-kubernetes-list-type".to_owned(), json!("map"));
    schema.insert("x-kubernetes-list-map-keys".to_owned(), json!(["type"]));
    schema.insert(
        "description".to_owned(),
        json!("Ready, Overlapping (an entry overlaps another pool) and DeletionBlocked (Services still hold addresses of a pool being deleted)."),
    );
    schema
}
