//! MetalLB's legacy configuration (before v0.13): a ConfigMap whose `config` key holds YAML with
//! `address-pools`, `peers`, `bgp-communities` and `bfd-profiles`.
//!
//! Each `layer2` pool becomes an IPAddressPool plus an L2Advertisement of the same name (in the legacy format
//! a layer2 pool was always announced from every node); everything BGP is reported.

use ferrolb_api::k8s::ObjectMeta;
use ferrolb_api::{IPAddressPool, IPAddressPoolSpec, L2Advertisement, L2AdvertisementSpec};
use serde_yaml::{Mapping, Value};

use super::{Converted, Object, Problem, Reason, check_fields, normalise_addresses};

const TOP_FIELDS: [&str; 4] = ["address-pools", "peers", "bgp-communities", "bfd-profiles"];
const POOL_FIELDS: [&str; 6] =
    ["name", "protocol", "addresses", "auto-assign", "avoid-buggy-ips", "bgp-advertisements"];

/// Whether a ConfigMap is MetalLB's legacy configuration: it has a `config` key in `data`.
pub(super) fn is_legacy_config(document: &Value) -> bool {
    document.get("data").and_then(|d| d.get("config")).is_some_and(Value::is_string)
}

/// Converts the legacy ConfigMap's layer2 pools and reports the rest.
pub(super) fn convert(document: &Value) -> (Vec<Converted>, Vec<Problem>) {
    let configmap = super::name_of(document);
    let problem = |reason: Reason| Problem { kind: "ConfigMap".to_owned(), name: configmap.clone(), reason };
    let text = document.get("data").and_then(|d| d.get("config")).and_then(Value::as_str).unwrap_or_default();
    let config: Mapping = match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Mapping(config)) => config,
        Ok(Value::Null) => Mapping::new(),
        Ok(_) => return (Vec::new(), vec![problem(Reason::InvalidSpec("data.config is not a mapping".to_owned()))]),
        Err(e) => return (Vec::new(), vec![problem(Reason::InvalidSpec(format!("data.config: {e}")))]),
    };
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    check_fields(&config, &TOP_FIELDS, "data.config", &mut unknown);
    if !unknown.is_empty() {
        problems.push(problem(Reason::UnknownFields(unknown)));
    }
    for key in ["peers", "bgp-communities", "bfd-profiles"] {
        if config.get(key).is_some_and(|v| !v.is_null()) {
            problems.push(Problem {
                kind: "ConfigMap".to_owned(),
                name: format!("{configmap} {key}"),
                reason: Reason::LegacyBgp,
            });
        }
    }
    for pool in config.get("address-pools").and_then(Value::as_sequence).into_iter().flatten() {
        let name = pool.get("name").and_then(Value::as_str).unwrap_or("?").to_owned();
        let label = format!("{configmap} address-pools[{name}]");
        match convert_pool(pool, &name) {
            Ok(mut converted) => objects.append(&mut converted),
            Err(reason) => problems.push(Problem { kind: "ConfigMap".to_owned(), name: label, reason }),
        }
    }
    (objects, problems)
}

fn convert_pool(pool: &Value, name: &str) -> Result<Vec<Converted>, Reason> {
    let Value::Mapping(fields) = pool else { return Err(Reason::InvalidSpec("not a mapping".to_owned())) };
    if name == "?" {
        return Err(Reason::NoName);
    }
    let mut unknown = Vec::new();
    check_fields(fields, &POOL_FIELDS, "address-pools[]", &mut unknown);
    if !unknown.is_empty() {
        return Err(Reason::UnknownFields(unknown));
    }
    let protocol = fields.get("protocol").and_then(Value::as_str).unwrap_or_default();
    match protocol {
        "layer2" => {}
        "bgp" => return Err(Reason::LegacyBgp),
        other => return Err(Reason::InvalidSpec(format!("protocol {other:?} is neither layer2 nor bgp"))),
    }
    let flag = |key: &str, default: bool| match fields.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Reason::InvalidSpec(format!("{key} is not a boolean"))),
    };
    let addresses: Vec<String> = match fields.get("addresses") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_yaml::from_value(v.clone()).map_err(|e| Reason::InvalidSpec(format!("addresses: {e}")))?,
    };
    let mut notes = Vec::new();
    let spec = IPAddressPoolSpec {
        addresses: normalise_addresses(&addresses, &mut notes)?,
        auto_assign: flag("auto-assign", true)?,
        avoid_buggy_ips: flag("avoid-buggy-ips", false)?,
        service_allocation: None,
    };
    let metadata = ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() };
    let l2 = L2Advertisement {
        metadata: metadata.clone(),
        spec: L2AdvertisementSpec { ip_address_pools: vec![name.to_owned()], ..L2AdvertisementSpec::default() },
    };
    let note = "from the legacy ConfigMap: a layer2 pool was announced from every node".to_owned();
    Ok(vec![
        Converted { object: Object::Pool(IPAddressPool { metadata, spec, status: None }), notes },
        Converted { object: Object::L2Advertisement(l2), notes: vec![note] },
    ])
}
