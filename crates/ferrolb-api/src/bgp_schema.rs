//! The hand-written schema parts of the BGP resources: CEL rules that refuse bad ASNs, addresses, timers
//! and communities with a message a person understands, as `schema.rs` does for pool addresses.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use crate::bgp_advertisement::WELL_KNOWN_COMMUNITY_NAMES;

fn rule(rule: &str, message_expression: &str) -> Value {
    json!({ "rule": rule, "messageExpression": message_expression, "reason": "FieldValueInvalid" })
}

/// Go's duration syntax, as a CEL regular expression (CEL's `duration()` errs on anything else).
const DURATION_PATTERN: &str = "^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$";

fn asn(description: &str) -> Schema {
    json_schema!({
        "description": description,
        "type": "integer",
        "format": "int64",
        "x-kubernetes-validations": [{
            "rule": "self >= 1 && self <= 4294967294 && self != 23456",
            "message": "is not a usable AS number: use 1-4294967294 (2-octet or 4-octet); 23456 is AS_TRANS (RFC 6793) and 0 and 4294967295 are reserved",
            "reason": "FieldValueInvalid",
        }],
    })
}

/// `myASN`.
pub fn my_asn(_: &mut SchemaGenerator) -> Schema {
    asn("This node's AS number, 1-4294967294.")
}

/// `peerASN`.
pub fn peer_asn(_: &mut SchemaGenerator) -> Schema {
    asn("The peer's AS number, 1-4294967294; equal to myASN for internal BGP.")
}

fn address(description: &str, field: &str, ipv4_only: bool) -> Schema {
    let (check, what) = if ipv4_only {
        ("isIP(self) && ip(self).family() == 4", "an IPv4 address (a BGP identifier is 32 bits)")
    } else {
        ("isIP(self)", "an IPv4 or IPv6 address")
    };
    json_schema!({
        "description": description,
        "type": "string",
        "maxLength": 45,
        "x-kubernetes-validations": [rule(check, &format!("'{field} \"' + self + '\" is not {what}'"))],
    })
}

/// `peerAddress`.
pub fn peer_address(_: &mut SchemaGenerator) -> Schema {
    address("The peer's address, IPv4 or IPv6.", "peerAddress", false)
}

/// `sourceAddress`.
pub fn source_address(_: &mut SchemaGenerator) -> Schema {
    address(
        "The address this node connects from (one of its own); default: whatever the kernel picks.",
        "sourceAddress",
        false,
    )
}

/// `routerID`.
pub fn router_id(_: &mut SchemaGenerator) -> Schema {
    address("The BGP identifier this node sends; default: the node's IPv4 address.", "routerID", true)
}

/// `peerPort`.
pub fn peer_port(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The peer's TCP port. Default 179.",
        "type": "integer",
        "default": 179,
        "minimum": 1,
        "maximum": 65535,
    })
}

fn timer(description: &str, field: &str, bounds: &str, bounds_message: &str) -> Schema {
    json_schema!({
        "description": description,
        "type": "string",
        "maxLength": 32,
        "x-kubernetes-validations": [
            rule(
                &format!("self.matches('{DURATION_PATTERN}')"),
                &format!("'{field} \"' + self + '\" is not a duration like 90s, 1m30s or 500ms'"),
            ),
            rule(
                &format!("!self.matches('{DURATION_PATTERN}') || ({bounds})"),
                &format!("'{field} \"' + self + '\" {bounds_message}'"),
            ),
        ],
    })
}

/// `holdTime`.
pub fn hold_time(_: &mut SchemaGenerator) -> Schema {
    timer(
        "How long the session survives without a message from the peer: 0s (no keepalives) or 3s-65535s. \
         Default 90s. The smaller of both sides' hold times is used.",
        "holdTime",
        "duration(self) == duration('0s') || (duration(self) >= duration('3s') && duration(self) <= duration('65535s'))",
        "must be 0s or between 3s and 65535s (RFC 4271 allows no hold time of 1 or 2 seconds)",
    )
}

/// `keepaliveTime`.
pub fn keepalive_time(_: &mut SchemaGenerator) -> Schema {
    timer(
        "How often this node sends a KEEPALIVE; below holdTime. Default: a third of the hold time.",
        "keepaliveTime",
        "duration(self) >= duration('1s')",
        "must be at least 1s",
    )
}

/// `connectTime`.
pub fn connect_time(_: &mut SchemaGenerator) -> Schema {
    timer(
        "How long to wait before retrying a failed connection (doubled after each failure, up to 30s). \
         Default 1s.",
        "connectTime",
        "duration(self) >= duration('100ms') && duration(self) <= duration('5m')",
        "must be between 100ms and 5m",
    )
}

/// A DNS-1123 label (a namespace name), as a CEL regular expression.
const LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain (a Secret name), as a CEL regular expression.
const SUBDOMAIN_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// `passwordSecret`: a Secret reference whose name and namespace are valid names (the field's doc comment is
/// its description).
pub fn password_secret(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {
                "description": "The Secret's name.",
                "type": "string",
                "maxLength": 253,
                "x-kubernetes-validations": [rule(
                    &format!("self.matches('{SUBDOMAIN_PATTERN}')"),
                    "'passwordSecret.name \"' + self + '\" is not a Secret name: lowercase letters, digits, - and ., starting and ending with a letter or digit'",
                )],
            },
            "namespace": {
                "description": "The Secret's namespace: omit it, or give the namespace ferrolb runs in (the only \
                                one its speakers read).",
                "type": "string",
                "maxLength": 63,
                "x-kubernetes-validations": [rule(
                    &format!("self.matches('{LABEL_PATTERN}')"),
                    "'passwordSecret.namespace \"' + self + '\" is not a namespace name: lowercase letters, digits and -, starting and ending with a letter or digit'",
                )],
            },
        },
    })
}

/// Gives the spec a `password` property only so that the rule in [`peer_rules`] can refuse it with a
/// message: an unknown field would be dropped without a word, and the session would run without its key.
pub fn refuse_plain_password(schema: &mut Schema) {
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(
            "password".to_owned(),
            json!({
                "description": "Not supported (always refused): a key here could be read by anyone who may read \
                                BGPPeers. Put it in a Secret and name it in passwordSecret.",
                "type": "string",
            }),
        );
    }
}

/// The spec's rules: keepaliveTime below holdTime, and no plain `password`.
pub fn peer_rules() -> Value {
    json!([{
        "rule": "!has(self.password)",
        "message": "password is not supported: a key in a BGPPeer can be read by anyone who may read BGPPeers; put it in a kubernetes.io/basic-auth Secret (key password) in ferrolb's namespace and set passwordSecret.name",
        "reason": "FieldValueForbidden",
    }, rule(
        &format!(
            "!has(self.keepaliveTime) || !self.keepaliveTime.matches('{p}') || (has(self.holdTime) && \
             (!self.holdTime.matches('{p}') || duration(self.holdTime) == duration('0s') || \
             duration(self.keepaliveTime) < duration(self.holdTime))) || \
             (!has(self.holdTime) && duration(self.keepaliveTime) < duration('90s'))",
            p = DURATION_PATTERN
        ),
        "'keepaliveTime ' + self.keepaliveTime + ' must be shorter than holdTime ' + (has(self.holdTime) ? self.holdTime : '90s (the default)')",
    )])
}

/// `communities`: each standard (`AS:value`), large (`large:global:local1:local2`) or a well-known name.
pub fn communities(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<String> = WELL_KNOWN_COMMUNITY_NAMES.iter().map(|n| format!("'{n}'")).collect();
    let standard = "(self.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535)";
    let large = "(self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && int(self.split(':')[1]) <= 4294967295 && int(self.split(':')[2]) <= 4294967295 && int(self.split(':')[3]) <= 4294967295)";
    json_schema!({
        "description": "Communities to attach: standard (65000:100), large (large:64512:1:2) or well-known \
                        names (no-export, no-advertise, blackhole, ...).",
        "type": "array",
        "maxItems": 32,
        "items": {
            "type": "string",
            "maxLength": 40,
            "x-kubernetes-validations": [rule(
                &format!("self in [{}] || {standard} || {large}", names.join(", ")),
                "'\"' + self + '\" is not a community: write AS:value (65000:100, each 0-65535), large:global:local1:local2 (each 0-4294967295), or a well-known name such as no-export'",
            )],
        },
    })
}

/// `aggregationLength`.
pub fn aggregation_length(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Prefix length of the IPv4 route advertised for each address: 32 (the address alone, the \
                        default) or shorter to advertise the covering network.",
        "type": "integer",
        "default": 32,
        "minimum": 0,
        "maximum": 32,
    })
}

/// `aggregationLengthV6`.
pub fn aggregation_length_v6(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Prefix length of the IPv6 route advertised for each address: 128 (the default) or shorter.",
        "type": "integer",
        "default": 128,
        "minimum": 0,
        "maximum": 128,
    })
}

/// `localPref`.
pub fn local_pref(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "LOCAL_PREF sent to internal (iBGP) peers; external peers never get it (RFC 4271).",
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": 4294967295u64,
    })
}

/// `receiveInterval` and `transmitInterval` of a BFDProfile, in milliseconds.
pub fn bfd_interval(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Milliseconds, 10-60000 (default 50).",
        "type": "integer",
        "minimum": 10,
        "maximum": 60000,
    })
}

/// `echoInterval` of a BFDProfile: accepted as MetalLB writes it, though echo mode is not implemented.
pub fn bfd_echo_interval(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Milliseconds, 10-60000; only with echo mode, which ferrolb does not implement.",
        "type": "integer",
        "minimum": 10,
        "maximum": 60000,
    })
}

/// `detectMultiplier` of a BFDProfile.
pub fn bfd_multiplier(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Missed packets that mean the path is down, 2-255 (default 5).",
        "type": "integer",
        "minimum": 2,
        "maximum": 255,
    })
}

/// `minimumTtl` of a BFDProfile.
pub fn bfd_minimum_ttl(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The lowest TTL accepted on a multihop session, 1-254 (default 254).",
        "type": "integer",
        "minimum": 1,
        "maximum": 254,
    })
}

/// A BFDProfile may not ask for echo mode, which ferrolb does not implement.
pub fn bfd_rules() -> Value {
    json!([{
        "rule": "!has(self.echoMode) || !self.echoMode",
        "message": "echoMode is not supported by ferrolb's BFD (asynchronous mode only); remove it or set it to false",
        "reason": "FieldValueForbidden",
    }])
}
