//! Shrinking an `IPAddressPool` into an allocator [`Pool`], finding overlaps between pools, and computing
//! the status the controller reports on each pool.

use std::collections::BTreeMap;

use ferrolb_api::k8s::{Condition, ResourceExt, Time};
use ferrolb_api::{
    CONDITION_DELETION_BLOCKED, CONDITION_OVERLAPPING, CONDITION_READY, IPAddressPool, IPAddressPoolStatus,
};
use ferrolb_api::{SelectorError, selector_from_k8s};
use ferrolb_ipam::{AddressRange, ParseError, Pool, PoolConfig, PoolName, PoolUsage, ServiceAllocation, ServiceKey};

/// Why a pool cannot be used; the text goes into the pool's Ready condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// An address entry does not parse.
    #[error(transparent)]
    Entry(#[from] ParseError),
    /// A serviceAllocation selector cannot be evaluated.
    #[error(transparent)]
    Selector(#[from] SelectorError),
}

impl PoolError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PoolError::Entry(_) => "invalid_entry",
            PoolError::Selector(_) => "invalid_selector",
        }
    }
}

/// The parsed entries of a pool, or the first reason it is unusable.
pub fn pool_entries(resource: &IPAddressPool) -> Result<Vec<(String, AddressRange)>, ParseError> {
    resource.spec.addresses.iter().map(|entry| entry.parse::<AddressRange>().map(|r| (entry.clone(), r))).collect()
}

/// Converts a pool resource. Fails with the reason for the pool's Ready condition.
pub fn pool_from_resource(resource: &IPAddressPool) -> Result<Pool, PoolError> {
    let ranges = pool_entries(resource)?.into_iter().map(|(_, r)| r).collect();
    let allocation = match &resource.spec.service_allocation {
        None => None,
        Some(a) => Some(ServiceAllocation {
            priority: a.priority,
            namespaces: a.namespaces.iter().cloned().collect(),
            namespace_selectors: a.namespace_selectors.iter().map(selector_from_k8s).collect::<Result<_, _>>()?,
            service_selectors: a.service_selectors.iter().map(selector_from_k8s).collect::<Result<_, _>>()?,
        }),
    };
    Ok(Pool::new(PoolConfig {
        name: PoolName::new(resource.name_any()),
        ranges,
        auto_assign: resource.spec.auto_assign,
        avoid_buggy_ips: resource.spec.avoid_buggy_ips,
        allocation,
        deleting: resource.metadata.deletion_timestamp.is_some(),
    }))
}

/// For each pool, a message per entry that overlaps another pool ("198.51.100.0/24 overlaps pool b").
pub fn overlaps(resources: &[&IPAddressPool]) -> BTreeMap<String, Vec<String>> {
    let parsed: Vec<(String, Vec<(String, AddressRange)>)> =
        resources.iter().filter_map(|r| Some((r.name_any(), pool_entries(r).ok()?))).collect();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, entries) in &parsed {
        for (text, range) in entries {
            for (other, other_entries) in parsed.iter().filter(|(n, _)| n != name) {
                if other_entries.iter().any(|(_, r)| intersects(range, r)) {
                    found.entry(name.clone()).or_default().push(format!("{text} overlaps pool {other}"));
                }
            }
        }
    }
    found
}

fn intersects(a: &AddressRange, b: &AddressRange) -> bool {
    a.family() == b.family() && a.start() <= b.end() && b.start() <= a.end()
}

/// What the controller knows about one pool when computing its status.
#[derive(Debug)]
pub struct PoolFacts<'a> {
    /// Why the pool is unusable, if it is.
    pub invalid: Option<&'a PoolError>,
    /// Capacity and use.
    pub usage: PoolUsage,
    /// Overlap messages.
    pub overlaps: &'a [String],
    /// Services holding its addresses (reported while it is being deleted).
    pub holders: &'a [ServiceKey],
    /// Whether the pool is being deleted.
    pub deleting: bool,
    /// Reserved addresses (loopback, multicast, ...) its entries cover, which it never hands out: how many,
    /// and of which kinds.
    pub reserved: (u128, Vec<&'static str>),
    /// Its addresses in conflict, as `IP answered by MAC`.
    pub conflicts: Vec<String>,
}

/// The status a pool should have. Conditions keep their `lastTransitionTime` while their status is unchanged,
/// so equal facts give an equal status and nothing is written.
pub fn desired_status(
    current: Option<&IPAddressPoolStatus>,
    facts: &PoolFacts<'_>,
    generation: Option<i64>,
    now: &Time,
) -> IPAddressPoolStatus {
    let [v4, v6] = facts.usage.0;
    let mut conditions = Vec::new();
    let (ready, reason, message) = match facts.invalid {
        Some(why) => ("False", "InvalidAddresses", why.to_string()),
        None if facts.deleting => {
            ("False", "Deleting", "the pool is being deleted; no new addresses are handed out".to_owned())
        }
        None => {
            let mut message = format!("{} IPv4 and {} IPv6 addresses free", v4.available(), v6.available());
            let (count, kinds) = &facts.reserved;
            if *count > 0 {
                message.push_str(&format!(
                    "; {count} addresses of the entries are {} and are never handed out",
                    kinds.join(", ")
                ));
            }
            ("True", "Ready", message)
        }
    };
    conditions.push((CONDITION_READY, ready, reason, message));
    if facts.overlaps.is_empty() {
        conditions.push((CONDITION_OVERLAPPING, "False", "NoOverlap", "no entry overlaps another pool".to_owned()));
    } else {
        conditions.push((CONDITION_OVERLAPPING, "True", "EntriesOverlap", facts.overlaps.join("; ")));
    }
    if facts.deleting && !facts.holders.is_empty() {
        let names: Vec<String> = facts.holders.iter().take(20).map(|k| k.to_string()).collect();
        let more = facts.holders.len().saturating_sub(names.len());
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        conditions.push((
            CONDITION_DELETION_BLOCKED,
            "True",
            "AddressesInUse",
            format!("deletion waits until these Services release their addresses: {}{tail}", names.join(", ")),
        ));
    }
    let previous = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let conditions = conditions
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let last = previous.iter().find(|c| c.type_ == type_ && c.status == status);
            Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message,
                observed_generation: generation,
                last_transition_time: last.map_or_else(|| now.clone(), |c| c.last_transition_time.clone()),
            }
        })
        .collect();
    IPAddressPoolStatus {
        assigned: Some(v4.assigned.saturating_add(v6.assigned).to_string()),
        available: Some(v4.available().saturating_add(v6.available()).to_string()),
        assigned_ipv4: i64::try_from(v4.assigned).unwrap_or(i64::MAX),
        available_ipv4: i64::try_from(v4.available()).unwrap_or(i64::MAX),
        assigned_ipv6: Some(v6.assigned.to_string()),
        available_ipv6: Some(v6.available().to_string()),
        conflicts: facts.conflicts.clone(),
        conditions,
    }
}
