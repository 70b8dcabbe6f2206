//! A pool as the allocator sees it: its addresses per family and the rules that say which Services it serves.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::address::{AddressRange, Family, buggy_v4_count};
use crate::interval_set::IntervalSet;
use crate::request::Request;
use crate::reserved::{Reserved, reserved_ranges};
use crate::selector::LabelSelector;

/// The name of an IPAddressPool (cluster-scoped, so unique). Cheap to clone: every held address names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolName(Arc<str>);

impl PoolName {
    /// Wraps a pool name.
    pub fn new(name: impl AsRef<str>) -> PoolName {
        PoolName(Arc::from(name.as_ref()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which Services a pool serves (its `spec.serviceAllocation`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower wins when several pools match a Service.
    pub priority: i32,
    /// Namespaces served by name.
    pub namespaces: BTreeSet<String>,
    /// Namespaces served by label (any selector may match).
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services served by label (any selector may match); empty means every Service in the namespaces.
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    /// Whether the Service of `request` is served.
    pub fn matches(&self, request: &Request) -> bool {
        let by_namespace = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.contains(request.service.namespace())
            || self.namespace_selectors.iter().any(|s| s.matches(&request.namespace_labels));
        let by_service = self.service_selectors.is_empty()
            || self.service_selectors.iter().any(|s| s.matches(&request.service_labels));
        by_namespace && by_service
    }
}

/// An address pool: addresses per family (merged, so overlapping entries count once, and without the
/// [reserved](crate::reserved) ones) and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    name: PoolName,
    addresses: [IntervalSet; 2],
    /// Reserved addresses the entries cover and the pool leaves out, per family, and their kinds.
    excluded: [u128; 2],
    excluded_kinds: BTreeSet<Reserved>,
    auto_assign: bool,
    avoid_buggy_ips: bool,
    allocation: Option<ServiceAllocation>,
    deleting: bool,
}

impl Pool {
    /// A pool from its parsed entries. `deleting` pools keep what they hold but hand out nothing new.
    pub fn new(config: PoolConfig) -> Pool {
        let mut addresses = [IntervalSet::new(), IntervalSet::new()];
        for range in &config.ranges {
            let (s, e) = range.bounds();
            addresses[range.family().index()].insert(s, e);
        }
        let mut excluded = [0u128; 2];
        let mut excluded_kinds = BTreeSet::new();
        for family in Family::ALL {
            let set = &mut addresses[family.index()];
            for &(start, end, kind) in reserved_ranges(family) {
                let covered = set.count_within(start, end);
                if covered > 0 {
                    excluded[family.index()] += covered;
                    excluded_kinds.insert(kind);
                    set.remove(start, end);
                }
            }
        }
        Pool {
            name: config.name,
            addresses,
            excluded,
            excluded_kinds,
            auto_assign: config.auto_assign,
            avoid_buggy_ips: config.avoid_buggy_ips,
            allocation: config.allocation,
            deleting: config.deleting,
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &PoolName {
        &self.name
    }

    /// How many reserved addresses of `family` the entries cover and the pool leaves out (saturating: only
    /// `::/0`'s 2^120 + 2^118 + 2 could come near).
    pub fn excluded(&self, family: Family) -> u128 {
        self.excluded[family.index()]
    }

    /// The kinds of reserved addresses left out.
    pub fn excluded_kinds(&self) -> impl Iterator<Item = Reserved> + '_ {
        self.excluded_kinds.iter().copied()
    }

    /// The pool's addresses of one family (reserved ones left out).
    pub fn addresses(&self, family: Family) -> &IntervalSet {
        &self.addresses[family.index()]
    }

    /// Whether Services that do not name the pool may get its addresses.
    pub fn auto_assign(&self) -> bool {
        self.auto_assign
    }

    /// Whether IPv4 addresses ending in .0 and .255 are skipped.
    pub fn avoid_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips
    }

    /// The serviceAllocation rules, if any.
    pub fn allocation(&self) -> Option<&ServiceAllocation> {
        self.allocation.as_ref()
    }

    /// Whether the pool is being deleted (no new allocations).
    pub fn deleting(&self) -> bool {
        self.deleting
    }

    /// Whether the pool may serve the Service of `request` at all (ignores autoAssign).
    pub fn may_serve(&self, request: &Request) -> bool {
        self.allocation.as_ref().is_none_or(|a| a.matches(request))
    }

    /// Whether `ip` is one of the pool's addresses (reserved ones left out).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let family = Family::of(ip);
        self.addresses[family.index()].contains(crate::address::value(ip))
    }

    /// Whether `value` of `family` is an address this pool hands out.
    pub(crate) fn holds(&self, family: Family, value: u128) -> bool {
        self.addresses[family.index()].contains(value)
            && !(family == Family::V4 && self.avoid_buggy_ips && crate::address::is_buggy_v4(value))
    }

    /// How many addresses of `family` the pool can hand out: exact for every entry, `::/0` included, since
    /// the reserved ones are left out.
    pub fn capacity(&self, family: Family) -> u128 {
        let set = &self.addresses[family.index()];
        if family == Family::V4 && self.avoid_buggy_ips {
            set.iter().map(|(s, e)| e - s + 1 - buggy_v4_count(s, e)).sum()
        } else {
            set.len()
        }
    }
}

/// Everything needed to build a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The pool's name.
    pub name: PoolName,
    /// Its address entries, possibly overlapping.
    pub ranges: Vec<AddressRange>,
    /// `spec.autoAssign`.
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`.
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`.
    pub allocation: Option<ServiceAllocation>,
    /// Whether the pool has a deletion timestamp.
    pub deleting: bool,
}
