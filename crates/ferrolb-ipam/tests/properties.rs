//! Property tests of the allocator: random pools and random sequences of allocate, release, specific
//! requests and pool edits never break the allocation invariants.

use std::collections::HashMap;
use std::net::IpAddr;

use ferrolb_ipam::fixtures::{pool, svc};
use ferrolb_ipam::{Allocator, Family, FamilyPolicy, Pool, PoolName, Request};
use proptest::prelude::*;

const N_SERVICES: usize = 12;

/// A pool entry inside small universes so that collisions and exhaustion happen often.
fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u8..16, 28u8..=32).prop_map(|(host, len)| {
            let mask = if len == 32 { 0xff } else { !((1u8 << (32 - len)) - 1) };
            format!("198.51.100.{}/{len}", host & mask)
        }),
        (0u8..16, 0u8..4).prop_map(|(a, n)| format!("198.51.100.{a}-198.51.100.{}", (a + n).min(15))),
        (0u16..16, 124u8..=128).prop_map(|(host, len)| {
            let mask = if len == 128 { 0xffff } else { !((1u16 << (128 - len)) - 1) };
            format!("2001:db8::{:x}/{len}", host & mask)
        }),
        (0u16..16, 0u16..4).prop_map(|(a, n)| format!("2001:db8::{a:x}-2001:db8::{:x}", (a + n).min(15))),
    ]
}

fn pools() -> impl Strategy<Value = Vec<Pool>> {
    prop::collection::vec((prop::collection::vec(entry(), 1..3), any::<bool>(), any::<bool>(), any::<bool>()), 1..4)
        .prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (entries, manual, buggy, team_only))| {
                    let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
                    let mut b = pool(&format!("p{i}"), &refs);
                    if manual {
                        b = b.manual();
                    }
                    if buggy {
                        b = b.avoid_buggy();
                    }
                    if team_only {
                        b = b.allocation(ferrolb_ipam::ServiceAllocation {
                            priority: i as i32,
                            namespaces: ["team".to_owned()].into(),
                            ..Default::default()
                        });
                    }
                    b.build()
                })
                .collect()
        })
}

#[derive(Debug, Clone)]
enum Op {
    Assign { service: usize, shape: u8, ip: u8, port: u16 },
    Release { service: usize },
    SetPools(Vec<Pool>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..N_SERVICES, any::<u8>(), 0u8..16, 80u16..83).prop_map(|(service, shape, ip, port)| Op::Assign { service, shape, ip, port }),
        2 => (0..N_SERVICES).prop_map(|service| Op::Release { service }),
        1 => pools().prop_map(Op::SetPools),
    ]
}

/// Builds a request of one of several shapes for service `i`.
fn request(i: usize, shape: u8, ip: u8, port: u16) -> Request {
    let namespace = if i.is_multiple_of(3) { "team" } else { "ns" };
    let mut b = svc(namespace, &format!("s{i}")).ports(&[port]);
    b = match shape % 4 {
        0 => b,
        1 => b.families(FamilyPolicy::Single(Family::V6)),
        2 => b.families(FamilyPolicy::PreferDual([Family::V4, Family::V6])),
        _ => b.families(FamilyPolicy::RequireDual([Family::V6, Family::V4])),
    };
    if shape & 0x10 != 0 {
        b = b.share(if shape & 0x20 != 0 { "k1" } else { "k2" });
    }
    if shape & 0x40 != 0 {
        b = b.local(if shape & 0x20 != 0 { "web" } else { "db" });
    }
    if shape & 0x80 != 0 {
        b = if shape % 4 == 1 { b.ip(&format!("2001:db8::{ip:x}")) } else { b.ip(&format!("198.51.100.{ip}")) };
    }
    if shape & 0x08 != 0 {
        b = b.pool(&format!("p{}", shape % 3));
    }
    b.build()
}

fn check_invariants(allocator: &Allocator) -> Result<(), TestCaseError> {
    let pools: HashMap<_, _> = allocator.pools().map(|p| (p.name().clone(), p)).collect();
    let mut holders: HashMap<IpAddr, Vec<&Request>> = HashMap::new();
    for (_, assignment) in allocator.assignments() {
        let request = assignment.request();
        for (ip, pool_name) in assignment.ips_with_pools() {
            let pool = pools
                .get(pool_name)
                .ok_or_else(|| TestCaseError::fail(format!("{ip} from missing pool {pool_name}")))?;
            let family = Family::of(*ip);
            let in_pool = pool.addresses(family).contains(match ip {
                IpAddr::V4(v) => u128::from(u32::from(*v)),
                IpAddr::V6(v) => u128::from(*v),
            });
            prop_assert!(in_pool, "{} not in pool {}", ip, pool_name);
            if pool.avoid_buggy_ips()
                && let IpAddr::V4(v4) = ip
            {
                prop_assert!(!matches!(v4.octets()[3], 0 | 255), "buggy {} handed out", ip);
            }
            prop_assert!(pool.may_serve(request), "{} may not serve {}", pool_name, request.service);
            if let Some(named) = &request.pool {
                prop_assert_eq!(named, pool_name);
            }
            holders.entry(*ip).or_default().push(request);
        }
    }
    for (ip, requests) in holders {
        for (i, a) in requests.iter().enumerate() {
            for b in &requests[i + 1..] {
                prop_assert!(a.sharing.is_some() && a.sharing == b.sharing, "{} shared without a common key", ip);
                prop_assert!(a.ports.iter().all(|p| !b.ports.contains(p)), "{} shared with a port conflict", ip);
                if a.local_selector.is_some() || b.local_selector.is_some() {
                    prop_assert_eq!(&a.local_selector, &b.local_selector);
                }
            }
        }
    }
    // The pool counters agree with the assignments.
    for pool in allocator.pools() {
        let usage = allocator.usage(pool);
        for family in Family::ALL {
            let distinct: std::collections::BTreeSet<IpAddr> = allocator
                .assignments()
                .flat_map(|(_, a)| {
                    a.ips_with_pools()
                        .iter()
                        .filter(|(ip, p)| p == pool.name() && Family::of(*ip) == family)
                        .map(|(ip, _)| *ip)
                        .collect::<Vec<_>>()
                })
                .collect();
            prop_assert_eq!(usage.0[family.index()].assigned, distinct.len() as u128);
            prop_assert!(usage.0[family.index()].assigned <= usage.0[family.index()].capacity);
        }
    }
    Ok(())
}

/// Rebuilding from the current assignments, as a restarted controller does, gives the same state.
fn check_rebuild(allocator: &Allocator) -> Result<(), TestCaseError> {
    let mut rebuilt = Allocator::new(allocator.pools().cloned());
    type Existing = Vec<(Request, Vec<(IpAddr, Option<PoolName>)>)>;
    let mut existing: Existing = allocator
        .assignments()
        .map(|(_, a)| (a.request().clone(), a.ips_with_pools().iter().map(|(ip, p)| (*ip, Some(p.clone()))).collect()))
        .collect();
    existing.sort_by(|a, b| b.0.service.cmp(&a.0.service));
    for (request, ips) in &existing {
        let restored = rebuilt.restore(request, ips);
        prop_assert!(restored.is_ok(), "restore of {} failed: {:?}", request.service, restored.err());
    }
    prop_assert_eq!(&rebuilt, allocator);
    Ok(())
}

proptest! {
    // 512 cases in the normal run; PROPTEST_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn allocation_invariants_hold(initial in pools(), ops in prop::collection::vec(op(), 1..40)) {
        let mut allocator = Allocator::new(initial);
        for op in ops {
            match op {
                Op::Assign { service, shape, ip, port } => {
                    let request = request(service, shape, ip, port);
                    let before = allocator.assignment(&request.service).map(|a| a.ips().collect::<Vec<_>>());
                    let result = allocator.assign(&request).map(|a| a.ips().collect::<Vec<_>>());
                    match result {
                        Ok(ips) => {
                            prop_assert!(!ips.is_empty());
                            if !request.ips.is_empty() {
                                let mut want = request.ips.clone();
                                want.sort();
                                let mut got = ips.clone();
                                got.sort();
                                prop_assert_eq!(got, want);
                            }
                            // Assigning the same request again never moves the address.
                            let again: Vec<IpAddr> = allocator.assign(&request).unwrap().ips().collect();
                            prop_assert_eq!(again, ips);
                        }
                        Err(_) => prop_assert!(allocator.assignment(&request.service).is_none(), "failed request kept {:?}", before),
                    }
                }
                Op::Release { service } => {
                    let key = request(service, 0, 0, 80).service;
                    allocator.release(&key);
                    prop_assert!(allocator.assignment(&key).is_none());
                }
                Op::SetPools(pools) => {
                    let released = allocator.set_pools(pools);
                    for key in released {
                        prop_assert!(allocator.assignment(&key).is_none());
                    }
                }
            }
            check_invariants(&allocator)?;
        }
        check_rebuild(&allocator)?;
    }
}
