//! The allocator: which Service holds which address, and the rules for handing out new ones.
//!
//! State is small and derived: pools, the set of used addresses per family (one interval set, so the lowest
//! free address of a pool is found in O(log n)), who holds each address, and each Service's assignment with
//! the request it was made for. Everything can be rebuilt from the assignments alone ([`Allocator::restore`]),
//! which is how the controller recovers after a restart without moving any address.
//!
//! Addresses in conflict (answered by another host on the LAN, as the speakers found) are handed out to no
//! Service: [`Allocator::set_conflicts`] releases any Service holding one, so it is given another.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::address::{Family, is_buggy_v4, value};
use crate::error::AllocError;
use crate::interval_set::IntervalSet;
use crate::pool::{Pool, PoolName};
use crate::request::{FamilyPolicy, PortKey, Request, ServiceKey, SharingKey};
use crate::selector::Labels;

/// The addresses a Service holds, each with the pool it came from, in the Service's family order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    ips: Vec<(IpAddr, PoolName)>,
    request: Request,
}

impl Assignment {
    /// The addresses, in the Service's family preference order.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.iter().map(|(ip, _)| *ip)
    }

    /// Each address with its pool.
    pub fn ips_with_pools(&self) -> &[(IpAddr, PoolName)] {
        &self.ips
    }

    /// The distinct pools the addresses came from.
    pub fn pools(&self) -> BTreeSet<&PoolName> {
        self.ips.iter().map(|(_, p)| p).collect()
    }

    /// The request this assignment answers.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

/// Capacity and use of one family of one pool. Exact for any pool size (a /64 holds 2^64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FamilyUsage {
    /// Addresses the pool can hand out.
    pub capacity: u128,
    /// Distinct addresses held by Services (a shared address counts once).
    pub assigned: u128,
}

impl FamilyUsage {
    /// Addresses still free; never negative.
    pub fn available(&self) -> u128 {
        self.capacity.saturating_sub(self.assigned)
    }
}

/// Capacity and use of a pool, per family (index with [`Family::index`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage(pub [FamilyUsage; 2]);

/// One Service's claim on a (possibly shared) address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Share {
    ports: Vec<PortKey>,
    local_selector: Option<Labels>,
}

/// Everyone holding one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holders {
    pool: PoolName,
    sharing: Option<SharingKey>,
    services: BTreeMap<ServiceKey, Share>,
}

/// The allocator state. See the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocator {
    pools: BTreeMap<PoolName, Pool>,
    /// Pools with serviceAllocation and autoAssign, by (priority, name).
    allocation_order: Vec<PoolName>,
    /// Pools without serviceAllocation but with autoAssign, by name.
    auto_order: Vec<PoolName>,
    used: [IntervalSet; 2],
    holders: HashMap<IpAddr, Holders>,
    sharing_index: HashMap<SharingKey, BTreeSet<IpAddr>>,
    assigned_per_pool: HashMap<PoolName, [u128; 2]>,
    assignments: HashMap<ServiceKey, Assignment>,
    /// Addresses another host answers for: never handed out.
    conflicts: BTreeSet<IpAddr>,
}

impl Allocator {
    /// An allocator with these pools and no assignments.
    pub fn new(pools: impl IntoIterator<Item = Pool>) -> Allocator {
        let mut allocator = Allocator::default();
        allocator.set_pools(pools);
        allocator
    }

    /// Replaces the pools. Assignments no longer allowed by the new pools are released; their Services are
    /// returned (sorted) so the caller can allocate again or report them pending.
    pub fn set_pools(&mut self, pools: impl IntoIterator<Item = Pool>) -> Vec<ServiceKey> {
        self.pools = pools.into_iter().map(|p| (p.name().clone(), p)).collect();
        let mut with_allocation: Vec<(i32, PoolName)> = Vec::new();
        self.auto_order.clear();
        for pool in self.pools.values().filter(|p| p.auto_assign()) {
            match pool.allocation() {
                Some(a) => with_allocation.push((a.priority, pool.name().clone())),
                None => self.auto_order.push(pool.name().clone()),
            }
        }
        with_allocation.sort();
        self.allocation_order = with_allocation.into_iter().map(|(_, n)| n).collect();

        let mut invalid: Vec<ServiceKey> = self
            .assignments
            .values()
            .filter(|a| !self.still_valid(a, &a.request))
            .map(|a| a.request.service.clone())
            .collect();
        invalid.sort();
        for key in &invalid {
            self.release(key);
        }
        invalid
    }

    /// Replaces the addresses in conflict. Services holding one are released and returned (sorted) so the
    /// caller can allocate again (they get another address) or report them pending.
    pub fn set_conflicts(&mut self, conflicts: BTreeSet<IpAddr>) -> Vec<ServiceKey> {
        self.conflicts = conflicts;
        let mut hit: Vec<ServiceKey> = self
            .assignments
            .iter()
            .filter(|(_, a)| a.ips().any(|ip| self.conflicts.contains(&ip)))
            .map(|(k, _)| k.clone())
            .collect();
        hit.sort();
        for key in &hit {
            self.release(key);
        }
        hit
    }

    /// The addresses in conflict.
    pub fn conflicts(&self) -> &BTreeSet<IpAddr> {
        &self.conflicts
    }

    /// The pools, by name.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// The assignment of a Service, if it has one.
    pub fn assignment(&self, service: &ServiceKey) -> Option<&Assignment> {
        self.assignments.get(service)
    }

    /// Every assignment, in no particular order.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, &Assignment)> {
        self.assignments.iter()
    }

    /// Capacity and use of a pool.
    pub fn usage(&self, pool: &Pool) -> PoolUsage {
        let assigned = self.assigned_per_pool.get(pool.name()).copied().unwrap_or_default();
        PoolUsage(Family::ALL.map(|f| FamilyUsage { capacity: pool.capacity(f), assigned: assigned[f.index()] }))
    }

    /// The Services holding addresses of a pool, sorted.
    pub fn services_in_pool(&self, pool: &PoolName) -> Vec<ServiceKey> {
        let mut keys: Vec<ServiceKey> = self
            .assignments
            .iter()
            .filter(|(_, a)| a.ips.iter().any(|(_, p)| p == pool))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Gives the Service addresses for `request`. A Service that already holds addresses that still satisfy
    /// the request keeps them (allocation is stable), and one that became PreferDualStack gains the other
    /// family where its pool has one; otherwise its old addresses are released first.
    pub fn assign(&mut self, request: &Request) -> Result<&Assignment, AllocError> {
        if let Some(current) = self.assignments.get(&request.service) {
            if current.request == *request {
                return Ok(&self.assignments[&request.service]);
            }
            if self.still_valid(current, request) {
                let mut ips = current.ips.clone();
                self.release(&request.service);
                // Now PreferDualStack, holding one family (the Service was single-stack until now): add the
                // other from the same pool if it has one.
                if let (FamilyPolicy::PreferDual(order), [(_, pool_name)]) = (request.families, ips.as_slice())
                    && request.ips.is_empty()
                    && let Some(pool) = self.pools.get(pool_name)
                {
                    let held = Family::of(ips[0].0);
                    let missing = if held == Family::V4 { Family::V6 } else { Family::V4 };
                    if let Some(ip) = self.pick_in_pool(pool, missing, request) {
                        ips.push((ip, pool_name.clone()));
                        ips.sort_by_key(|(ip, _)| order.iter().position(|f| *f == Family::of(*ip)));
                    }
                }
                return Ok(self.commit(request, ips));
            }
            self.release(&request.service);
        }
        let picks = self.choose(request)?;
        Ok(self.commit(request, picks))
    }

    /// Re-registers addresses a Service already holds (from its status), as after a restart. Fails, holding
    /// nothing, when they are not valid for the request: outside the pools that may serve it, or held by a
    /// Service they may not be shared with. Pools being deleted still accept restores.
    ///
    /// Each address may carry the pool it came from (the controller records it on the Service); with
    /// overlapping pools that hint keeps the address in the same pool.
    pub fn restore(
        &mut self,
        request: &Request,
        ips: &[(IpAddr, Option<PoolName>)],
    ) -> Result<&Assignment, AllocError> {
        self.release(&request.service);
        let mut picks = Vec::new();
        for (ip, hint) in ips {
            picks.push((*ip, self.locate(request, *ip, hint.as_ref(), true)?));
        }
        let candidate = Assignment { ips: picks.clone(), request: request.clone() };
        if !self.still_valid(&candidate, request) {
            return Err(AllocError::InvalidRequest {
                reason: "the addresses in status no longer match what the Service asks for".to_owned(),
            });
        }
        Ok(self.commit(request, picks))
    }

    /// Releases everything a Service holds; a no-op for a Service without addresses.
    pub fn release(&mut self, service: &ServiceKey) {
        let Some(assignment) = self.assignments.remove(service) else {
            return;
        };
        for (ip, pool) in assignment.ips {
            let Some(holders) = self.holders.get_mut(&ip) else {
                continue;
            };
            holders.services.remove(service);
            if holders.services.is_empty() {
                let sharing = holders.sharing.clone();
                self.holders.remove(&ip);
                let family = Family::of(ip);
                self.used[family.index()].remove_one(value(ip));
                if let Some(counts) = self.assigned_per_pool.get_mut(&pool) {
                    counts[family.index()] -= 1;
                    if *counts == [0, 0] {
                        self.assigned_per_pool.remove(&pool);
                    }
                }
                if let Some(key) = sharing
                    && let Some(set) = self.sharing_index.get_mut(&key)
                {
                    set.remove(&ip);
                    if set.is_empty() {
                        self.sharing_index.remove(&key);
                    }
                }
            }
        }
    }

    fn commit(&mut self, request: &Request, picks: Vec<(IpAddr, PoolName)>) -> &Assignment {
        for (ip, pool) in &picks {
            let family = Family::of(*ip);
            let holders = self.holders.entry(*ip).or_insert_with(|| {
                self.used[family.index()].insert_one(value(*ip));
                match self.assigned_per_pool.get_mut(pool) {
                    Some(counts) => counts[family.index()] += 1,
                    None => {
                        let mut counts = [0; 2];
                        counts[family.index()] = 1;
                        self.assigned_per_pool.insert(pool.clone(), counts);
                    }
                }
                if let Some(key) = &request.sharing {
                    self.sharing_index.entry(key.clone()).or_default().insert(*ip);
                }
                Holders { pool: pool.clone(), sharing: request.sharing.clone(), services: BTreeMap::new() }
            });
            let share = Share { ports: request.ports.clone(), local_selector: request.local_selector.clone() };
            holders.services.insert(request.service.clone(), share);
        }
        self.assignments.insert(request.service.clone(), Assignment { ips: picks, request: request.clone() });
        &self.assignments[&request.service]
    }

    /// Whether an existing assignment still answers `request` under the current pools and holders.
    fn still_valid(&self, assignment: &Assignment, request: &Request) -> bool {
        let families: Vec<Family> = assignment.ips.iter().map(|(ip, _)| Family::of(*ip)).collect();
        let families_ok = match request.families {
            FamilyPolicy::Single(f) => families == [f],
            FamilyPolicy::RequireDual(_) => families.len() == 2 && families[0] != families[1],
            FamilyPolicy::PreferDual(_) => {
                !families.is_empty() && families.len() <= 2 && (families.len() == 1 || families[0] != families[1])
            }
        };
        if !families_ok {
            return false;
        }
        if !request.ips.is_empty() {
            let wanted: BTreeSet<IpAddr> = request.ips.iter().copied().collect();
            let held: BTreeSet<IpAddr> = assignment.ips().collect();
            if wanted != held {
                return false;
            }
        }
        assignment.ips.iter().all(|(ip, pool_name)| {
            let Some(pool) = self.pools.get(pool_name) else {
                return false;
            };
            let named_ok = request.pool.as_ref().is_none_or(|p| p == pool_name);
            let holders_ok = self.holders.get(ip).is_none_or(|h| {
                h.pool == *pool_name
                    && h.services.iter().all(|(k, s)| *k == request.service || can_share(h, k, s, request).is_ok())
            });
            named_ok && holders_ok && pool.holds(Family::of(*ip), value(*ip)) && pool.may_serve(request)
        })
    }

    /// The pool a requested address comes from, checking that the Service may have it.
    fn locate(
        &self,
        request: &Request,
        ip: IpAddr,
        hint: Option<&PoolName>,
        allow_deleting: bool,
    ) -> Result<PoolName, AllocError> {
        let family = Family::of(ip);
        if let Some(kind) = crate::reserved::reserved_kind(ip) {
            return Err(AllocError::ReservedAddress { ip, kind });
        }
        if self.conflicts.contains(&ip) {
            return Err(AllocError::AddressConflict { ip });
        }
        // Preference: the hinted pool, then the order automatic allocation uses, then the rest by name.
        let order = hint.into_iter().chain(&self.allocation_order).chain(&self.auto_order).chain(self.pools.keys());
        let mut containing: Vec<&Pool> = Vec::new();
        for pool in order.filter_map(|n| self.pools.get(n)) {
            if pool.holds(family, value(ip)) && !containing.iter().any(|p| p.name() == pool.name()) {
                containing.push(pool);
            }
        }
        let Some(first) = containing.first() else {
            return Err(AllocError::IpNotInAnyPool { ip });
        };
        if let Some(named) = &request.pool {
            if !self.pools.contains_key(named) {
                return Err(AllocError::UnknownPool { pool: named.clone() });
            }
            if !containing.iter().any(|p| p.name() == named) {
                return Err(AllocError::IpNotAllowed { ip, pool: first.name().clone() });
            }
        }
        let allowed = |p: &&&Pool| {
            request.pool.as_ref().is_none_or(|n| n == p.name())
                && p.may_serve(request)
                && (allow_deleting || !p.deleting())
        };
        let Some(pool) = containing.iter().find(allowed) else {
            return Err(AllocError::IpNotAllowed { ip, pool: first.name().clone() });
        };
        match self.holders.get(&ip) {
            None => Ok(pool.name().clone()),
            Some(holders) => {
                // Joining a shared address means joining its pool, which must serve this Service too.
                if !containing.iter().any(|p| *p.name() == holders.pool && allowed(&p)) {
                    return Err(AllocError::IpNotAllowed { ip, pool: holders.pool.clone() });
                }
                for (key, share) in &holders.services {
                    if *key != request.service {
                        can_share(holders, key, share, request).map_err(|reason| AllocError::IpInUse {
                            ip,
                            holder: key.clone(),
                            reason,
                        })?;
                    }
                }
                Ok(holders.pool.clone())
            }
        }
    }

    fn choose(&self, request: &Request) -> Result<Vec<(IpAddr, PoolName)>, AllocError> {
        if !request.ips.is_empty() {
            return self.choose_requested(request);
        }
        let candidates = self.candidate_pools(request)?;
        let wanted = request.families.families();
        // A pass per acceptable outcome: all families first; for PreferDualStack, then any one.
        let passes: &[bool] = match request.families {
            FamilyPolicy::PreferDual(_) => &[true, false],
            _ => &[true],
        };
        for &need in passes {
            for pool in &candidates {
                let picks: Vec<(IpAddr, PoolName)> = wanted
                    .iter()
                    .filter_map(|&f| self.pick_in_pool(pool, f, request).map(|ip| (ip, pool.name().clone())))
                    .collect();
                if (need && picks.len() == wanted.len()) || (!need && !picks.is_empty()) {
                    return Ok(picks);
                }
            }
        }
        Err(self.explain_failure(request, &candidates))
    }

    fn explain_failure(&self, request: &Request, candidates: &[&Pool]) -> AllocError {
        let names = candidates.iter().map(|p| p.name().as_str()).collect::<Vec<_>>().join(", ");
        let wanted = request.families.families();
        let has = |f: Family| candidates.iter().any(|p| p.capacity(f) > 0);
        if let Some(&missing) = wanted.iter().find(|&&f| !has(f))
            && !(matches!(request.families, FamilyPolicy::PreferDual(_)) && wanted.iter().any(|&f| has(f)))
        {
            return AllocError::FamilyUnavailable { family: missing, pools: names };
        }
        if matches!(request.families, FamilyPolicy::RequireDual(_))
            && !candidates.iter().any(|p| p.capacity(Family::V4) > 0 && p.capacity(Family::V6) > 0)
        {
            return AllocError::NoDualStackPool { pools: names };
        }
        let family = wanted.iter().copied().find(|&f| has(f)).unwrap_or(wanted[0]);
        AllocError::PoolExhausted { family, pools: names }
    }

    fn choose_requested(&self, request: &Request) -> Result<Vec<(IpAddr, PoolName)>, AllocError> {
        let mut seen = [false; 2];
        for ip in &request.ips {
            let family = Family::of(*ip);
            if !request.families.allows(family) {
                return Err(AllocError::InvalidRequest {
                    reason: format!(
                        "requested IP {ip} is {family} but the Service's ipFamilies do not include {family}"
                    ),
                });
            }
            if std::mem::replace(&mut seen[family.index()], true) {
                return Err(AllocError::InvalidRequest { reason: format!("more than one {family} address requested") });
            }
        }
        if matches!(request.families, FamilyPolicy::RequireDual(_)) && request.ips.len() != 2 {
            return Err(AllocError::InvalidRequest {
                reason: "RequireDualStack needs one IPv4 and one IPv6 address when specific IPs are requested"
                    .to_owned(),
            });
        }
        let mut picks = Vec::new();
        for &ip in &request.ips {
            picks.push((ip, self.locate(request, ip, None, false)?));
        }
        Ok(picks)
    }

    fn candidate_pools(&self, request: &Request) -> Result<Vec<&Pool>, AllocError> {
        if let Some(name) = &request.pool {
            let pool = self
                .pools
                .get(name)
                .filter(|p| !p.deleting())
                .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?;
            if !pool.may_serve(request) {
                return Err(AllocError::PoolNotAllowed { pool: name.clone() });
            }
            return Ok(vec![pool]);
        }
        let matching = self.allocation_order.iter().map(|n| &self.pools[n]).filter(|p| p.may_serve(request));
        let general = self.auto_order.iter().map(|n| &self.pools[n]);
        let candidates: Vec<&Pool> = matching.chain(general).filter(|p| !p.deleting()).collect();
        if candidates.is_empty() {
            return Err(AllocError::NoPoolAvailable);
        }
        Ok(candidates)
    }

    /// An address of `family` from `pool` for `request`: a compatible shared address first, else the lowest free.
    fn pick_in_pool(&self, pool: &Pool, family: Family, request: &Request) -> Option<IpAddr> {
        if let Some(key) = &request.sharing
            && let Some(shared) = self.sharing_index.get(key)
        {
            for ip in shared.iter().filter(|ip| Family::of(**ip) == family) {
                let holders = &self.holders[ip];
                if holders.pool == *pool.name()
                    && !self.conflicts.contains(ip)
                    && pool.holds(family, value(*ip))
                    && holders.services.iter().all(|(k, s)| can_share(holders, k, s, request).is_ok())
                {
                    return Some(*ip);
                }
            }
        }
        self.lowest_free(pool, family).map(|v| family.addr(v))
    }

    fn lowest_free(&self, pool: &Pool, family: Family) -> Option<u128> {
        let used = &self.used[family.index()];
        let skip_buggy = family == Family::V4 && pool.avoid_buggy_ips();
        for (start, end) in pool.addresses(family).iter() {
            let mut candidate = start;
            while let Some(free) = used.first_absent_from(candidate) {
                if free > end {
                    break;
                }
                if (skip_buggy && is_buggy_v4(free)) || self.conflicts.contains(&family.addr(free)) {
                    candidate = free + 1;
                    continue;
                }
                return Some(free);
            }
        }
        None
    }
}

/// Whether `request` may share an address with `holder` (one of `holders`); the error is the reason why not,
/// starting with "; ", for an operator.
fn can_share(holders: &Holders, holder: &ServiceKey, share: &Share, request: &Request) -> Result<(), String> {
    let (Some(theirs), Some(ours)) = (&holders.sharing, &request.sharing) else {
        return Err(String::new());
    };
    if theirs != ours {
        return Err(format!("; its sharing key {:?} differs from {:?}", theirs.0, ours.0));
    }
    if let Some(port) = share.ports.iter().find(|p| request.ports.contains(p)) {
        return Err(format!("; both use port {:?}/{}", port.protocol, port.port));
    }
    if (share.local_selector.is_some() || request.local_selector.is_some())
        && share.local_selector != request.local_selector
    {
        return Err(format!(
            "; with externalTrafficPolicy Local, Services sharing an IP must select the same pods ({holder} does not)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
