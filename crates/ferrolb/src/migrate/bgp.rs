//! MetalLB's BGP objects into ferrolb's: `BGPPeer` (v1beta1 and v1beta2) and `BGPAdvertisement` keep their
//! field names, so what ferrolb supports converts field for field; `Community` objects are aliases, which
//! ferrolb has no kind for, so each alias an advertisement uses is written out as its value (and noted). A
//! peer with a field ferrolb cannot honour (a password, a VRF, graceful restart, ...) is not converted
//! at all, and the fields are listed. `BFDProfile`s convert as they are, unless they ask for echo mode.
//!
//! A peer's `passwordSecret` converts, without its namespace: ferrolb's speakers read the Secret in ferrolb's
//! own namespace, so the output says to copy it there and to let the speakers read it. A plain `password`
//! never converts (ferrolb refuses it: a key in a BGPPeer is readable by whoever may read BGPPeers).

use std::collections::BTreeMap;

use ferrolb_api::{
    BFDProfile, BFDProfileSpec, BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, BGPPeerSpec, SecretReference,
    parse_duration,
};
use ferrolb_bgp::AnyCommunity;
use serde_yaml::Value;

use super::{Converted, Object, Reason, check_fields, check_selectors, metadata, spec_of};

const PEER_FIELDS: [&str; 12] = [
    "myASN",
    "peerASN",
    "peerAddress",
    "peerPort",
    "sourceAddress",
    "routerID",
    "holdTime",
    "keepaliveTime",
    "connectTime",
    "nodeSelectors",
    "ebgpMultiHop",
    "bfdProfile",
];

/// MetalLB's BFD timers when a profile leaves them unset.
const METALLB_BFD_INTERVAL_MS: u32 = 300;
const METALLB_BFD_MULTIPLIER: u8 = 3;

const BFD_FIELDS: [&str; 7] = [
    "receiveInterval",
    "transmitInterval",
    "detectMultiplier",
    "echoInterval",
    "echoMode",
    "passiveMode",
    "minimumTtl",
];

const ADVERTISEMENT_FIELDS: [&str; 8] = [
    "aggregationLength",
    "aggregationLengthV6",
    "localPref",
    "communities",
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "nodeSelectors",
    "peers",
];

/// Community aliases by name, from every MetalLB `Community` object of the input.
pub(super) fn community_aliases(documents: &[Value]) -> BTreeMap<String, String> {
    let mut aliases = BTreeMap::new();
    for document in documents {
        let kind = document.get("kind").and_then(Value::as_str);
        let group = document.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("metallb.io/"));
        if !(group && kind == Some("Community")) {
            continue;
        }
        let entries = document.get("spec").and_then(|s| s.get("communities")).and_then(Value::as_sequence);
        for entry in entries.into_iter().flatten() {
            if let (Some(name), Some(value)) =
                (entry.get("name").and_then(Value::as_str), entry.get("value").and_then(Value::as_str))
            {
                aliases.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    aliases
}

/// MetalLB durations, checked as ferrolb reads them.
fn check_duration(spec: &BGPPeerSpec) -> Result<(), Reason> {
    for (field, value) in
        [("holdTime", &spec.hold_time), ("keepaliveTime", &spec.keepalive_time), ("connectTime", &spec.connect_time)]
    {
        if let Some(value) = value {
            parse_duration(value).map_err(|e| Reason::InvalidSpec(format!("{field}: {e}")))?;
        }
    }
    Ok(())
}

pub(super) fn convert_peer(document: &Value) -> Result<Converted, Reason> {
    let metadata = metadata(document)?;
    let mut spec = spec_of(document)?;
    let mut unknown = Vec::new();
    // MetalLB's Go types write an empty password and an empty reference for a peer without either.
    if spec.get("password").is_some_and(|p| p.as_str() == Some("")) {
        spec.remove("password");
    }
    let secret = match spec.remove("passwordSecret") {
        Some(Value::Mapping(reference)) => {
            check_fields(&reference, &["name", "namespace"], "spec.passwordSecret", &mut unknown);
            let text = |key: &str| reference.get(key).and_then(Value::as_str).filter(|v| !v.is_empty());
            text("name").map(|name| (name.to_owned(), text("namespace").map(str::to_owned)))
        }
        None | Some(Value::Null) => None,
        Some(_) => return Err(Reason::InvalidSpec("passwordSecret is not a mapping".to_owned())),
    };
    check_fields(&spec, &PEER_FIELDS, "spec", &mut unknown);
    if let Some(at) = unknown.iter().position(|field| field == "spec.password") {
        unknown.remove(at);
        return Err(Reason::PlainPassword(unknown));
    }
    if !unknown.is_empty() {
        return Err(Reason::UnknownFields(unknown));
    }
    let mut spec: BGPPeerSpec =
        serde_yaml::from_value(Value::Mapping(spec)).map_err(|e| Reason::InvalidSpec(e.to_string()))?;
    check_duration(&spec)?;
    check_selectors(spec.node_selectors.iter())?;
    let mut notes = Vec::new();
    if let Some((name, namespace)) = secret {
        let from = namespace.map_or_else(|| "MetalLB's namespace".to_owned(), |ns| format!("namespace {ns}"));
        notes.push(format!(
            "passwordSecret: ferrolb's speakers read Secret {name} in ferrolb's own namespace, not in {from}: copy \
             it there (type kubernetes.io/basic-auth, key password) and list {name} in the chart value \
             speaker.bgpPasswordSecrets"
        ));
        spec.password_secret = Some(SecretReference { name, namespace: None });
    }
    Ok(Converted { object: Object::BgpPeer(BGPPeer { metadata, spec }), notes })
}

pub(super) fn convert_bfd_profile(document: &Value) -> Result<Converted, Reason> {
    let metadata = metadata(document)?;
    // A profile without a spec has every timer at its default.
    let spec = spec_of(document)?;
    let mut unknown = Vec::new();
    check_fields(&spec, &BFD_FIELDS, "spec", &mut unknown);
    if !unknown.is_empty() {
        return Err(Reason::UnknownFields(unknown));
    }
    let mut spec: BFDProfileSpec =
        serde_yaml::from_value(Value::Mapping(spec)).map_err(|e| Reason::InvalidSpec(e.to_string()))?;
    if spec.echo_mode == Some(true) {
        return Err(Reason::BfdEcho);
    }
    // ferrolb's defaults are faster than MetalLB's; a timer MetalLB left at its default keeps that value.
    let mut notes = Vec::new();
    for (field, value, default) in [
        ("receiveInterval", &mut spec.receive_interval, METALLB_BFD_INTERVAL_MS),
        ("transmitInterval", &mut spec.transmit_interval, METALLB_BFD_INTERVAL_MS),
    ] {
        if value.is_none() {
            *value = Some(default);
            notes.push(format!("{field} written as MetalLB's default, {default} ms"));
        }
    }
    if spec.detect_multiplier.is_none() {
        spec.detect_multiplier = Some(METALLB_BFD_MULTIPLIER);
        notes.push(format!("detectMultiplier written as MetalLB's default, {METALLB_BFD_MULTIPLIER}"));
    }
    Ok(Converted { object: Object::BfdProfile(BFDProfile { metadata, spec }), notes })
}

pub(super) fn convert_advertisement(document: &Value, aliases: &BTreeMap<String, String>) -> Result<Converted, Reason> {
    let metadata = metadata(document)?;
    let spec = spec_of(document)?;
    let mut unknown = Vec::new();
    check_fields(&spec, &ADVERTISEMENT_FIELDS, "spec", &mut unknown);
    if !unknown.is_empty() {
        return Err(Reason::UnknownFields(unknown));
    }
    let mut spec: BGPAdvertisementSpec =
        serde_yaml::from_value(Value::Mapping(spec)).map_err(|e| Reason::InvalidSpec(e.to_string()))?;
    check_selectors(spec.ip_address_pool_selectors.iter().chain(&spec.node_selectors))?;
    let mut notes = Vec::new();
    let mut communities = Vec::new();
    for community in &spec.communities {
        let value = match aliases.get(community) {
            Some(value) => {
                notes.push(format!("community alias {community:?} written as its value {value:?}"));
                value.clone()
            }
            None => community.clone(),
        };
        value.parse::<AnyCommunity>().map_err(|_| {
            Reason::InvalidSpec(format!(
                "community {community:?} is neither a value (AS:value, large:a:b:c) nor an alias defined by a Community in the input"
            ))
        })?;
        communities.push(value);
    }
    spec.communities = communities;
    Ok(Converted { object: Object::BgpAdvertisement(BGPAdvertisement { metadata, spec }), notes })
}
