//! Converting MetalLB configuration into ferrolb's: the pure part of `ferrolb migrate-from-metallb`.
//!
//! [`parse_documents`] splits a YAML stream into documents; [`convert`] turns MetalLB `IPAddressPool`,
//! `L2Advertisement`, `BGPPeer` and `BGPAdvertisement` objects (with `Community` aliases written out), and the
//! pools of the legacy `config` ConfigMap, into ferrolb's cluster-scoped objects and lists everything it
//! could not convert as a [`Problem`], never dropping anything silently.
//! An object with any field ferrolb has no equivalent for is not converted at all: converting the rest could
//! widen what it allows. No I/O here; reading files and printing is `migrate_cmd`'s job.

use std::collections::BTreeMap;
use std::fmt;

use ferrolb_api::k8s::{LabelSelector, ObjectMeta};
use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, IPAddressPool, IPAddressPoolSpec, L2Advertisement, L2AdvertisementSpec,
    selector_from_k8s,
};
use ferrolb_ipam::AddressRange;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

mod bgp;
mod legacy;

/// The most address entries a ferrolb pool may list (the CRD's CEL budget).
pub const MAX_ADDRESSES: usize = 32;
/// The longest address entry a ferrolb pool accepts.
pub const MAX_ENTRY_LEN: usize = 90;

/// A document of the input stream that is not valid YAML.
#[derive(Debug, thiserror::Error)]
#[error("document {index}: invalid YAML")]
pub struct DocumentError {
    /// Position of the document in the stream, from 1.
    pub index: usize,
    /// What the YAML parser said.
    #[source]
    pub source: serde_yaml::Error,
}

/// What [`convert`] produced: the converted objects, in input order, and everything it could not convert.
#[derive(Debug, Default)]
pub struct Conversion {
    /// ferrolb objects, ready to print.
    pub objects: Vec<Converted>,
    /// Objects (or parts of the legacy ConfigMap) left out, with the reason.
    pub problems: Vec<Problem>,
}

/// One ferrolb object and what the conversion changed on the way (shown as comments in the output).
#[derive(Debug, Clone)]
pub struct Converted {
    /// The object.
    pub object: Object,
    /// Changes an operator may want to know about, e.g. an address entry written differently.
    pub notes: Vec<String>,
}

/// A ferrolb object.
#[derive(Debug, Clone)]
pub enum Object {
    /// A `ferrolb.io/v1alpha1` IPAddressPool.
    Pool(IPAddressPool),
    /// A `ferrolb.io/v1alpha1` L2Advertisement.
    L2Advertisement(L2Advertisement),
    /// A `ferrolb.io/v1alpha1` BGPPeer.
    BgpPeer(BGPPeer),
    /// A `ferrolb.io/v1alpha1` BGPAdvertisement.
    BgpAdvertisement(BGPAdvertisement),
    /// A `ferrolb.io/v1alpha1` BFDProfile.
    BfdProfile(BFDProfile),
}

/// An input object, or part of one, that was not converted.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The kind as written in the input (`BGPPeer`, `ConfigMap`, ...); `?` when missing.
    pub kind: String,
    /// The name as written in the input; `?` when missing.
    pub name: String,
    /// Why it was not converted.
    pub reason: Reason,
}

/// Why something was not converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reason {
    /// A BGP part of the legacy ConfigMap.
    #[error("BGP in the legacy ConfigMap is not converted: upgrade MetalLB to its CRDs (0.13+) and convert those")]
    LegacyBgp,
    /// A MetalLB BFDProfile asking for echo mode.
    #[error("echo mode is not implemented by ferrolb's BFD (asynchronous mode only); drop echoMode to convert")]
    BfdEcho,
    /// A status object MetalLB writes itself.
    #[error("status written by MetalLB; ferrolb records its own announcements (L2Announcement)")]
    MetallbStatus,
    /// A kind in the `metallb.io` group this tool does not know.
    #[error("unknown MetalLB kind {api_version} {kind}")]
    UnknownMetallbKind {
        /// `apiVersion` as written.
        api_version: String,
        /// `kind` as written.
        kind: String,
    },
    /// Not a MetalLB configuration object at all (e.g. the Deployment of MetalLB's manifest).
    #[error("not a MetalLB configuration object ({api_version})")]
    NotMetallb {
        /// `apiVersion` as written.
        api_version: String,
    },
    /// The document is not a mapping with `kind` and `apiVersion`.
    #[error("not a Kubernetes object (no apiVersion and kind)")]
    NotAnObject,
    /// The object has no `metadata.name`.
    #[error("no metadata.name")]
    NoName,
    /// Fields ferrolb has no equivalent for.
    #[error("{} ha{} no ferrolb equivalent", .0.join(", "), if .0.len() == 1 { "s" } else { "ve" })]
    UnknownFields(Vec<String>),
    /// A BGPPeer with its TCP MD5 key written in the object (MetalLB's `password`), and any other fields
    /// without an equivalent.
    #[error(
        "spec.password: a key in a BGPPeer can be read by anyone who may read BGPPeers; put it \
         in a kubernetes.io/basic-auth Secret (key password) in ferrolb's namespace, name it in \
         spec.passwordSecret and list it in the chart value speaker.bgpPasswordSecrets{}",
        if .0.is_empty() { String::new() } else { format!(" ({} without a ferrolb equivalent too)", .0.join(", ")) }
    )]
    PlainPassword(Vec<String>),
    /// The spec does not have the shape MetalLB defines.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// An address entry ferrolb (and MetalLB) cannot parse.
    #[error("address {entry:?}: {why}")]
    InvalidAddress {
        /// The entry as written.
        entry: String,
        /// The parser's message.
        why: String,
    },
    /// A pool without addresses, which ferrolb's CRD refuses.
    #[error("no addresses; a ferrolb pool needs at least one")]
    NoAddresses,
    /// More address entries than one ferrolb pool may list.
    #[error("{0} address entries; a ferrolb pool lists at most {MAX_ADDRESSES}: split it into several pools")]
    TooManyAddresses(usize),
    /// An object of the same kind and name was converted before; ferrolb's objects are cluster-scoped, so
    /// MetalLB objects of one name in several namespaces (or files) cannot all be kept.
    #[error("another {0} of this name was converted before (ferrolb's are cluster-scoped); rename one")]
    DuplicateName(&'static str),
    /// A label selector ferrolb cannot evaluate.
    #[error("selector: {0}")]
    InvalidSelector(#[source] ferrolb_api::SelectorError),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: not converted: {}", self.kind, self.name, self.reason)
    }
}

/// Splits a YAML stream into its documents. Empty documents (a stray `---`) are left out.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, DocumentError> {
    let mut documents = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|source| DocumentError { index: i + 1, source })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Converts MetalLB objects into ferrolb's. Never fails: whatever cannot be converted becomes a [`Problem`].
pub fn convert(documents: &[Value]) -> Conversion {
    let mut conversion = Conversion::default();
    let aliases = bgp::community_aliases(documents);
    for document in documents {
        convert_one(document, &aliases, &mut conversion);
    }
    conversion
}

/// Keeps the first object of each kind and name across `conversions` (one per input file, in order) and
/// turns every later one into a [`Problem`] of the conversion it came from.
pub fn remove_duplicates(conversions: &mut [Conversion]) {
    let mut seen = std::collections::BTreeSet::new();
    for conversion in conversions {
        let objects = std::mem::take(&mut conversion.objects);
        for converted in objects {
            let (kind, name) = converted.object.kind_and_name();
            if seen.insert((kind, name.clone())) {
                conversion.objects.push(converted);
            } else {
                conversion.problems.push(Problem { kind: kind.to_owned(), name, reason: Reason::DuplicateName(kind) });
            }
        }
    }
}

impl Object {
    /// The ferrolb kind and the name.
    pub fn kind_and_name(&self) -> (&'static str, String) {
        match self {
            Object::Pool(pool) => ("IPAddressPool", pool.metadata.name.clone().unwrap_or_default()),
            Object::L2Advertisement(l2) => ("L2Advertisement", l2.metadata.name.clone().unwrap_or_default()),
            Object::BgpPeer(p) => ("BGPPeer", p.metadata.name.clone().unwrap_or_default()),
            Object::BgpAdvertisement(a) => ("BGPAdvertisement", a.metadata.name.clone().unwrap_or_default()),
            Object::BfdProfile(b) => ("BFDProfile", b.metadata.name.clone().unwrap_or_default()),
        }
    }
}

fn convert_one(document: &Value, aliases: &BTreeMap<String, String>, out: &mut Conversion) {
    let text = |key: &str| document.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        let kind = text("kind").unwrap_or_else(|| "?".to_owned());
        out.problems.push(Problem { kind, name: name_of(document), reason: Reason::NotAnObject });
        return;
    };
    // `kubectl get ... -o yaml` prints a List; convert its items.
    if kind == "List" && api_version == "v1" {
        for item in document.get("items").and_then(Value::as_sequence).into_iter().flatten() {
            convert_one(item, aliases, out);
        }
        return;
    }
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    let result = match (group, kind.as_str()) {
        ("metallb.io", "IPAddressPool") => convert_pool(document).map(|c| vec![c]),
        ("metallb.io", "L2Advertisement") => convert_l2(document).map(|c| vec![c]),
        ("metallb.io", "BGPPeer") => bgp::convert_peer(document).map(|c| vec![c]),
        ("metallb.io", "BGPAdvertisement") => bgp::convert_advertisement(document, aliases).map(|c| vec![c]),
        // Aliases only: written out into the advertisements that use them.
        ("metallb.io", "Community") => Ok(Vec::new()),
        ("metallb.io", "BFDProfile") => bgp::convert_bfd_profile(document).map(|c| vec![c]),
        ("metallb.io", "ServiceL2Status" | "ServiceBGPStatus") => Err(Reason::MetallbStatus),
        ("metallb.io", _) => Err(Reason::UnknownMetallbKind { api_version: api_version.clone(), kind: kind.clone() }),
        ("", "ConfigMap") if legacy::is_legacy_config(document) => {
            let (objects, problems) = legacy::convert(document);
            out.objects.extend(objects);
            out.problems.extend(problems);
            return;
        }
        _ => Err(Reason::NotMetallb { api_version: api_version.clone() }),
    };
    match result {
        Ok(objects) => out.objects.extend(objects),
        Err(reason) => out.problems.push(Problem { kind, name: name_of(document), reason }),
    }
}

fn name_of(document: &Value) -> String {
    document.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("?").to_owned()
}

/// The cluster-scoped metadata of a converted object: name and labels only (no namespace, no annotations,
/// nothing the API server wrote).
fn metadata(document: &Value) -> Result<ObjectMeta, Reason> {
    let meta = document.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).ok_or(Reason::NoName)?;
    let labels = match meta.and_then(|m| m.get("labels")) {
        None | Some(Value::Null) => None,
        Some(labels) => Some(
            serde_yaml::from_value::<BTreeMap<String, String>>(labels.clone())
                .map_err(|e| Reason::InvalidSpec(format!("metadata.labels: {e}")))?,
        ),
    };
    Ok(ObjectMeta { name: Some(name.to_owned()), labels, ..ObjectMeta::default() })
}

/// The spec mapping; a missing or null spec is an empty one.
fn spec_of(document: &Value) -> Result<Mapping, Reason> {
    match document.get("spec") {
        None | Some(Value::Null) => Ok(Mapping::new()),
        Some(Value::Mapping(spec)) => Ok(spec.clone()),
        Some(_) => Err(Reason::InvalidSpec("spec is not a mapping".to_owned())),
    }
}

/// Adds every key of `map` not in `known` to `unknown`, each prefixed by `path`.
fn check_fields(map: &Mapping, known: &[&str], path: &str, unknown: &mut Vec<String>) {
    for key in map.keys() {
        let key = key.as_str().map_or_else(|| format!("{key:?}"), str::to_owned);
        if !known.contains(&key.as_str()) {
            unknown.push(format!("{path}.{key}"));
        }
    }
}

const POOL_FIELDS: [&str; 4] = ["addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"];
const ALLOCATION_FIELDS: [&str; 4] = ["priority", "namespaces", "namespaceSelectors", "serviceSelectors"];
const L2_FIELDS: [&str; 4] = ["ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "interfaces"];

fn convert_pool(document: &Value) -> Result<Converted, Reason> {
    let metadata = metadata(document)?;
    let spec = spec_of(document)?;
    let mut unknown = Vec::new();
    check_fields(&spec, &POOL_FIELDS, "spec", &mut unknown);
    if let Some(Value::Mapping(allocation)) = spec.get("serviceAllocation") {
        check_fields(allocation, &ALLOCATION_FIELDS, "spec.serviceAllocation", &mut unknown);
    }
    if !unknown.is_empty() {
        return Err(Reason::UnknownFields(unknown));
    }
    let mut spec: IPAddressPoolSpec =
        serde_yaml::from_value(Value::Mapping(spec)).map_err(|e| Reason::InvalidSpec(e.to_string()))?;
    let mut notes = Vec::new();
    spec.addresses = normalise_addresses(&spec.addresses, &mut notes)?;
    if let Some(allocation) = &spec.service_allocation {
        check_selectors(allocation.namespace_selectors.iter().chain(&allocation.service_selectors))?;
    }
    Ok(Converted { object: Object::Pool(IPAddressPool { metadata, spec, status: None }), notes })
}

fn convert_l2(document: &Value) -> Result<Converted, Reason> {
    let metadata = metadata(document)?;
    let spec = spec_of(document)?;
    let mut unknown = Vec::new();
    check_fields(&spec, &L2_FIELDS, "spec", &mut unknown);
    if !unknown.is_empty() {
        return Err(Reason::UnknownFields(unknown));
    }
    let spec: L2AdvertisementSpec =
        serde_yaml::from_value(Value::Mapping(spec)).map_err(|e| Reason::InvalidSpec(e.to_string()))?;
    check_selectors(spec.ip_address_pool_selectors.iter().chain(&spec.node_selectors))?;
    Ok(Converted { object: Object::L2Advertisement(L2Advertisement { metadata, spec }), notes: Vec::new() })
}

fn check_selectors<'a>(selectors: impl Iterator<Item = &'a LabelSelector>) -> Result<(), Reason> {
    for selector in selectors {
        selector_from_k8s(selector).map_err(Reason::InvalidSelector)?;
    }
    Ok(())
}

/// Writes each entry the way ferrolb parses it: ranges as `start-end` without spaces, CIDRs as their network
/// (MetalLB masks host bits away; ferrolb refuses them). Each rewrite that changes meaning-bearing text is noted.
fn normalise_addresses(entries: &[String], notes: &mut Vec<String>) -> Result<Vec<String>, Reason> {
    if entries.is_empty() {
        return Err(Reason::NoAddresses);
    }
    if entries.len() > MAX_ADDRESSES {
        return Err(Reason::TooManyAddresses(entries.len()));
    }
    entries
        .iter()
        .map(|entry| {
            let (normalised, masked) = normalise_entry(entry)?;
            if normalised.len() > MAX_ENTRY_LEN {
                let why = format!("longer than the {MAX_ENTRY_LEN} characters a ferrolb entry may have");
                return Err(Reason::InvalidAddress { entry: entry.clone(), why });
            }
            if masked {
                notes.push(format!(
                    "{entry:?} written as {normalised:?} (MetalLB ignores the host bits too; ferrolb refuses them)"
                ));
            }
            Ok(normalised)
        })
        .collect()
}

/// One entry in the form ferrolb accepts (`start-end` for a range, the network address for a CIDR), and
/// whether host bits were masked away.
fn normalise_entry(entry: &str) -> Result<(String, bool), Reason> {
    let invalid = |why: String| Reason::InvalidAddress { entry: entry.to_owned(), why };
    let trimmed = entry.trim();
    if trimmed.contains('-') {
        let range: AddressRange = trimmed.parse().map_err(|e: ferrolb_ipam::ParseError| invalid(e.to_string()))?;
        return Ok((format!("{}-{}", range.start(), range.end()), false));
    }
    let (ip, prefix) =
        trimmed.split_once('/').ok_or_else(|| invalid("neither a CIDR nor a range of two addresses".to_owned()))?;
    let ip: std::net::IpAddr = ip.trim().parse().map_err(|_| invalid("not an IP address".to_owned()))?;
    let prefix: u8 = prefix.trim().parse().map_err(|_| invalid("prefix length is not a number".to_owned()))?;
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > bits {
        return Err(invalid(format!("prefix length {prefix} is longer than {bits}")));
    }
    let network = mask(ip, prefix);
    let normalised = format!("{network}/{prefix}");
    // The same parser the controller uses must accept it.
    normalised.parse::<AddressRange>().map_err(|e| invalid(e.to_string()))?;
    Ok((normalised, network != ip))
}

fn mask(ip: std::net::IpAddr, prefix: u8) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests;
