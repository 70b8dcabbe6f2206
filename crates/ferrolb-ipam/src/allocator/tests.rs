use std::net::IpAddr;

use super::Allocator;
use crate::fixtures::{pool, svc};
use crate::{AllocError, Family, FamilyPolicy, LabelSelector, PoolName, Request, ServiceAllocation};

fn ips(allocator: &mut Allocator, request: &Request) -> Result<Vec<String>, AllocError> {
    allocator.assign(request).map(|a| a.ips().map(|ip| ip.to_string()).collect())
}

/// Runs requests in order against pools and checks each outcome: addresses or the error label.
fn check(pools: Vec<crate::Pool>, steps: &[(Request, &str)]) {
    let mut allocator = Allocator::new(pools);
    for (i, (request, expected)) in steps.iter().enumerate() {
        let got = match ips(&mut allocator, request) {
            Ok(v) => v.join(","),
            Err(e) => format!("error:{}", e.label()),
        };
        assert_eq!(got, *expected, "step {i}: {}", request.service);
    }
}

#[test]
fn lowest_free_address_in_order() {
    check(
        vec![pool("a", &["198.51.100.0/30"]).build()],
        &[
            (svc("ns", "a").build(), "198.51.100.0"),
            (svc("ns", "b").build(), "198.51.100.1"),
            (svc("ns", "a").build(), "198.51.100.0"),
            (svc("ns", "c").build(), "198.51.100.2"),
            (svc("ns", "d").build(), "198.51.100.3"),
            (svc("ns", "e").build(), "error:pool_exhausted"),
        ],
    );
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    check(
        vec![pool("a", &["198.51.100.255-198.51.101.1"]).avoid_buggy().build()],
        &[(svc("ns", "a").build(), "198.51.101.1"), (svc("ns", "b").build(), "error:pool_exhausted")],
    );
    let p = pool("a", &["198.51.100.0/23"]).avoid_buggy().build();
    assert_eq!(p.capacity(Family::V4), 512 - 4);
}

#[test]
fn released_address_is_reused() {
    let mut allocator = Allocator::new([pool("a", &["198.51.100.7/32"]).build()]);
    assert_eq!(ips(&mut allocator, &svc("ns", "a").build()).unwrap(), ["198.51.100.7"]);
    assert!(ips(&mut allocator, &svc("ns", "b").build()).is_err());
    allocator.release(&svc("ns", "a").build().service);
    assert_eq!(ips(&mut allocator, &svc("ns", "b").build()).unwrap(), ["198.51.100.7"]);
}

#[test]
fn specific_requests() {
    let pools = || vec![pool("a", &["198.51.100.0/29"]).build(), pool("m", &["203.0.113.0/29"]).manual().build()];
    check(
        pools(),
        &[
            (svc("ns", "a").ip("198.51.100.5").build(), "198.51.100.5"),
            (svc("ns", "b").ip("198.51.100.5").build(), "error:ip_in_use"),
            (svc("ns", "c").ip("192.0.2.1").build(), "error:ip_not_in_pool"),
            (svc("ns", "d").ip("203.0.113.3").build(), "203.0.113.3"),
            (svc("ns", "e").pool("m").build(), "203.0.113.0"),
            (svc("ns", "f").pool("nope").build(), "error:unknown_pool"),
            (svc("ns", "g").ip("198.51.100.1").pool("m").build(), "error:ip_not_allowed"),
            (svc("ns", "h").ip("2001:db8::1").build(), "error:invalid_request"),
            (svc("ns", "i").ip("198.51.100.1").ip("198.51.100.2").build(), "error:invalid_request"),
            (svc("ns", "j").build(), "198.51.100.0"),
        ],
    );
}

#[test]
fn auto_assign_false_is_not_picked_automatically() {
    check(vec![pool("m", &["203.0.113.0/29"]).manual().build()], &[(svc("ns", "a").build(), "error:no_pool")]);
}

/// A single-stack Service switched to PreferDualStack keeps its address and gains the other family from the
/// same pool (as `kubectl patch` of ipFamilyPolicy does); back to single-stack, it keeps the first.
#[test]
fn a_service_becoming_dual_stack_keeps_its_address_and_gains_the_other_family() {
    let dual = pool("d", &["198.51.100.0/31", "2001:db8::/127"]).build();
    check(
        vec![dual],
        &[
            (svc("ns", "a").build(), "198.51.100.0"),
            (
                svc("ns", "a").families(FamilyPolicy::PreferDual([Family::V4, Family::V6])).build(),
                "198.51.100.0,2001:db8::",
            ),
            (svc("ns", "b").families(FamilyPolicy::Single(Family::V6)).build(), "2001:db8::1"),
            (svc("ns", "c").families(FamilyPolicy::Single(Family::V6)).build(), "error:pool_exhausted"),
            (
                svc("ns", "b").families(FamilyPolicy::PreferDual([Family::V6, Family::V4])).build(),
                "2001:db8::1,198.51.100.1",
            ),
        ],
    );
}

#[test]
fn dual_stack() {
    let dual = pool("d", &["198.51.100.0/31", "2001:db8::/127"]).build();
    let v6 = pool("v6", &["2001:db8:1::/127"]).build();
    check(
        vec![dual.clone(), v6.clone()],
        &[
            (
                svc("ns", "a").families(FamilyPolicy::RequireDual([Family::V6, Family::V4])).build(),
                "2001:db8::,198.51.100.0",
            ),
            (
                svc("ns", "b").families(FamilyPolicy::PreferDual([Family::V4, Family::V6])).build(),
                "198.51.100.1,2001:db8::1",
            ),
            // The dual pool is out of addresses: PreferDualStack takes what exists.
            (svc("ns", "c").families(FamilyPolicy::PreferDual([Family::V4, Family::V6])).build(), "2001:db8:1::"),
            (
                svc("ns", "d").families(FamilyPolicy::RequireDual([Family::V4, Family::V6])).build(),
                "error:pool_exhausted",
            ),
            (svc("ns", "e").families(FamilyPolicy::Single(Family::V6)).build(), "2001:db8:1::1"),
        ],
    );
    check(
        vec![v6],
        &[
            (svc("ns", "a").build(), "error:family_unavailable"),
            (
                svc("ns", "b").families(FamilyPolicy::RequireDual([Family::V4, Family::V6])).build(),
                "error:family_unavailable",
            ),
        ],
    );
    check(
        vec![pool("v4", &["198.51.100.0/31"]).build(), pool("v6", &["2001:db8::/127"]).build()],
        &[(
            svc("ns", "b").families(FamilyPolicy::RequireDual([Family::V4, Family::V6])).build(),
            "error:no_dual_stack_pool",
        )],
    );
}

#[test]
fn sharing_rules() {
    check(
        vec![pool("a", &["198.51.100.0/30"]).build()],
        &[
            (svc("ns", "a").share("k").ports(&[80]).build(), "198.51.100.0"),
            (svc("ns", "b").share("k").ports(&[443]).build(), "198.51.100.0"),
            // Same key, overlapping port: a fresh address.
            (svc("ns", "c").share("k").ports(&[443]).build(), "198.51.100.1"),
            // Different key: never shares.
            (svc("ns", "d").share("other").ports(&[22]).build(), "198.51.100.2"),
            (svc("ns", "e").ip("198.51.100.0").ports(&[22]).build(), "error:ip_in_use"),
            (svc("ns", "f").ip("198.51.100.0").share("k").ports(&[80]).build(), "error:ip_in_use"),
            (svc("ns", "g").ip("198.51.100.0").share("k").ports(&[22]).build(), "198.51.100.0"),
        ],
    );
    // externalTrafficPolicy Local: sharing needs the same pods.
    check(
        vec![pool("a", &["198.51.100.0/30"]).build()],
        &[
            (svc("ns", "a").share("k").ports(&[80]).local("web").build(), "198.51.100.0"),
            (svc("ns", "b").share("k").ports(&[81]).local("db").build(), "198.51.100.1"),
            (svc("ns", "c").share("k").ports(&[82]).local("web").build(), "198.51.100.0"),
            (svc("ns", "d").share("k").ports(&[83]).build(), "198.51.100.2"),
        ],
    );
}

#[test]
fn shared_address_released_only_when_last_holder_leaves() {
    let mut allocator = Allocator::new([pool("a", &["198.51.100.0/31"]).build()]);
    let a = svc("ns", "a").share("k").ports(&[80]).build();
    let b = svc("ns", "b").share("k").ports(&[81]).build();
    allocator.assign(&a).unwrap();
    allocator.assign(&b).unwrap();
    let p = allocator.pools().next().unwrap().clone();
    assert_eq!(allocator.usage(&p).0[0].assigned, 1);
    allocator.release(&a.service);
    assert_eq!(allocator.usage(&p).0[0].assigned, 1);
    assert_eq!(ips(&mut allocator, &svc("ns", "c").build()).unwrap(), ["198.51.100.1"]);
    allocator.release(&b.service);
    assert_eq!(ips(&mut allocator, &svc("ns", "d").build()).unwrap(), ["198.51.100.0"]);
}

#[test]
fn service_allocation_priority_and_selectors() {
    let team = |priority| ServiceAllocation { priority, namespaces: ["team".to_owned()].into(), ..Default::default() };
    let labelled = ServiceAllocation {
        priority: 5,
        namespace_selectors: vec![LabelSelector {
            match_labels: [("tier".into(), "gold".into())].into(),
            ..Default::default()
        }],
        service_selectors: vec![LabelSelector {
            match_labels: [("expose".into(), "yes".into())].into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    check(
        vec![
            pool("general", &["198.51.100.0/30"]).build(),
            pool("team-low", &["203.0.113.0/30"]).allocation(team(20)).build(),
            pool("team-high", &["203.0.113.8/30"]).allocation(team(10)).build(),
            pool("gold", &["203.0.113.16/30"]).allocation(labelled).build(),
        ],
        &[
            (svc("team", "a").build(), "203.0.113.8"),
            (svc("other", "a").build(), "198.51.100.0"),
            (svc("x", "a").ns_label("tier", "gold").label("expose", "yes").build(), "203.0.113.16"),
            (svc("x", "b").ns_label("tier", "gold").build(), "198.51.100.1"),
            // A pool with serviceAllocation serves only matching Services, even when named.
            (svc("other", "b").pool("team-high").build(), "error:pool_not_allowed"),
            (svc("other", "c").ip("203.0.113.9").build(), "error:ip_not_allowed"),
        ],
    );
}

#[test]
fn changed_request_moves_and_unchanged_request_keeps() {
    let mut allocator =
        Allocator::new([pool("a", &["198.51.100.0/30"]).build(), pool("b", &["203.0.113.0/30"]).manual().build()]);
    assert_eq!(ips(&mut allocator, &svc("ns", "a").build()).unwrap(), ["198.51.100.0"]);
    assert_eq!(ips(&mut allocator, &svc("ns", "b").build()).unwrap(), ["198.51.100.1"]);
    // Changing ports keeps the address.
    assert_eq!(ips(&mut allocator, &svc("ns", "a").ports(&[81]).build()).unwrap(), ["198.51.100.0"]);
    // Asking for another pool moves it and frees the old one.
    assert_eq!(ips(&mut allocator, &svc("ns", "a").pool("b").build()).unwrap(), ["203.0.113.0"]);
    assert_eq!(ips(&mut allocator, &svc("ns", "c").build()).unwrap(), ["198.51.100.0"]);
}

#[test]
fn pool_shrink_releases_what_left_the_pool() {
    let mut allocator = Allocator::new([pool("a", &["198.51.100.0/30"]).build()]);
    for name in ["a", "b", "c"] {
        allocator.assign(&svc("ns", name).build()).unwrap();
    }
    let released = allocator.set_pools([pool("a", &["198.51.100.0/31"]).build()]);
    assert_eq!(released, vec![svc("ns", "c").build().service]);
    assert!(allocator.assignment(&svc("ns", "a").build().service).is_some());
}

#[test]
fn deleting_pool_keeps_holders_but_gives_nothing_new() {
    let mut allocator = Allocator::new([pool("a", &["198.51.100.0/30"]).build()]);
    allocator.assign(&svc("ns", "a").build()).unwrap();
    let released = allocator.set_pools([pool("a", &["198.51.100.0/30"]).deleting().build()]);
    assert!(released.is_empty());
    assert_eq!(allocator.services_in_pool(&PoolName::new("a")), vec![svc("ns", "a").build().service]);
    assert_eq!(ips(&mut allocator, &svc("ns", "b").build()).unwrap_err(), AllocError::NoPoolAvailable);
    // Restoring after a restart still works for the holder.
    let mut restarted = Allocator::new([pool("a", &["198.51.100.0/30"]).deleting().build()]);
    let ip: IpAddr = "198.51.100.0".parse().unwrap();
    assert!(restarted.restore(&svc("ns", "a").build(), &[(ip, None)]).is_ok());
}

#[test]
fn restore_refuses_conflicts_and_outsiders() {
    let mut allocator = Allocator::new([pool("a", &["198.51.100.0/30"]).build()]);
    let ip: IpAddr = "198.51.100.1".parse().unwrap();
    allocator.restore(&svc("ns", "a").build(), &[(ip, None)]).unwrap();
    assert!(matches!(allocator.restore(&svc("ns", "b").build(), &[(ip, None)]), Err(AllocError::IpInUse { .. })));
    let outside: IpAddr = "192.0.2.1".parse().unwrap();
    assert!(allocator.restore(&svc("ns", "c").build(), &[(outside, None)]).is_err());
    assert!(allocator.assignment(&svc("ns", "c").build().service).is_none());
    // A pending Service never takes the restored address.
    assert_eq!(ips(&mut allocator, &svc("ns", "d").build()).unwrap(), ["198.51.100.0"]);
    assert_eq!(ips(&mut allocator, &svc("ns", "e").build()).unwrap(), ["198.51.100.2"]);
}

#[test]
fn slash_64_counts_are_exact() {
    let mut allocator = Allocator::new([pool("v6", &["2001:db8::/64"]).build()]);
    let request = svc("ns", "a").families(FamilyPolicy::Single(Family::V6)).build();
    allocator.assign(&request).unwrap();
    let p = allocator.pools().next().unwrap().clone();
    let usage = allocator.usage(&p).0[Family::V6.index()];
    assert_eq!(usage.capacity, 1u128 << 64);
    assert_eq!(usage.available(), (1u128 << 64) - 1);
}

#[test]
fn error_messages_read_well() {
    let mut allocator = Allocator::new([pool("a", &["198.51.100.0/32"]).build()]);
    allocator.assign(&svc("ns", "a").build()).unwrap();
    let err = allocator.assign(&svc("ns", "b").build()).unwrap_err();
    assert_eq!(err.to_string(), "no free IPv4 address left in pool a");
    let err = allocator.assign(&svc("ns", "c").ip("198.51.100.0").build()).unwrap_err();
    assert_eq!(err.to_string(), "requested IP 198.51.100.0 is in use by ns/a");
}

#[test]
fn sharing_never_crosses_into_a_pool_that_does_not_serve_the_service() {
    let team_only = ServiceAllocation { priority: 1, namespaces: ["team".to_owned()].into(), ..Default::default() };
    let mut allocator = Allocator::new([
        pool("general", &["198.51.100.0/28"]).build(),
        pool("team", &["198.51.100.12/30"]).allocation(team_only).build(),
    ]);
    let inside = svc("team", "a").ip("198.51.100.15").pool("team").share("k").ports(&[80]).build();
    allocator.assign(&inside).unwrap();
    // Same key, other port, but the address belongs to the team pool, which does not serve namespace "ns".
    let outsider = svc("ns", "b").ip("198.51.100.15").share("k").ports(&[81]).build();
    assert!(matches!(allocator.assign(&outsider), Err(AllocError::IpNotAllowed { .. })));
}

#[test]
fn reserved_addresses_are_never_handed_out_and_counts_stay_exact() {
    // 0.0.0.0/0 starts past "this network"; a pool with loopback in it never hands that out.
    check(
        vec![pool("all", &["0.0.0.0/0"]).build()],
        &[(svc("ns", "a").build(), "1.0.0.0"), (svc("ns", "b").ip("127.0.0.1").build(), "error:reserved_address")],
    );
    let mut allocator = Allocator::new([pool("all", &["0.0.0.0/0"]).build()]);
    let err = allocator.assign(&svc("ns", "b").ip("224.0.0.1").build()).unwrap_err();
    assert_eq!(err.to_string(), "requested IP 224.0.0.1 is multicast and can never be a LoadBalancer IP");
    let all4 = pool("all", &["0.0.0.0/0"]).build();
    let reserved4 = (1u128 << 24) * 2 + (1 << 16) + (1 << 28) + 1;
    assert_eq!(all4.capacity(Family::V4), (1u128 << 32) - reserved4);
    assert_eq!(all4.excluded(Family::V4), reserved4);
    // ::/0 holds 2^128 addresses, which no u128 can count; without the reserved ones it is exact.
    let all6 = pool("all6", &["::/0"]).build();
    let reserved6 = 2 + (1u128 << 118) + (1u128 << 120);
    assert_eq!(all6.capacity(Family::V6), u128::MAX - reserved6 + 1);
    assert_eq!(all6.excluded(Family::V6), reserved6);
    let kinds: Vec<&str> = all6.excluded_kinds().map(|k| k.as_str()).collect();
    assert_eq!(kinds, ["unspecified", "loopback", "link-local", "multicast"]);
    // An ordinary pool excludes nothing.
    let plain = pool("p", &["198.51.100.0/24", "2001:db8::/64"]).build();
    assert_eq!((plain.excluded(Family::V4), plain.excluded(Family::V6)), (0, 0));
    assert_eq!(plain.capacity(Family::V4), 256);
}

#[test]
fn every_reserved_kind_is_recognised() {
    use crate::reserved_kind;
    let kind = |ip: &str| reserved_kind(ip.parse().unwrap()).map(|k| k.as_str());
    assert_eq!(kind("0.0.0.0"), Some("unspecified"));
    assert_eq!(kind("0.1.2.3"), Some("unspecified"));
    assert_eq!(kind("127.0.0.1"), Some("loopback"));
    assert_eq!(kind("169.254.1.1"), Some("link-local"));
    assert_eq!(kind("239.255.255.250"), Some("multicast"));
    assert_eq!(kind("255.255.255.255"), Some("broadcast"));
    assert_eq!(kind("::"), Some("unspecified"));
    assert_eq!(kind("::1"), Some("loopback"));
    assert_eq!(kind("fe80::1"), Some("link-local"));
    assert_eq!(kind("febf:ffff::1"), Some("link-local"));
    assert_eq!(kind("ff02::1"), Some("multicast"));
    for usable in ["1.0.0.0", "198.51.100.1", "223.255.255.255", "240.0.0.1", "fec0::1", "2001:db8::1", "::2"] {
        assert_eq!(kind(usable), None, "{usable}");
    }
}

#[test]
fn addresses_in_conflict_are_handed_out_to_nobody() {
    let mut allocator = Allocator::new(vec![pool("a", &["198.51.100.0/30"]).build()]);
    let web = svc("ns", "web").build();
    assert_eq!(ips(&mut allocator, &web).unwrap(), ["198.51.100.0"]);
    // A host on the LAN answers for .0: web is released, and gets .2 because .1 conflicts too.
    let conflicts: std::collections::BTreeSet<IpAddr> =
        ["198.51.100.0", "198.51.100.1"].iter().map(|s| s.parse().unwrap()).collect();
    let released = allocator.set_conflicts(conflicts);
    assert_eq!(released, std::slice::from_ref(&web.service));
    assert_eq!(ips(&mut allocator, &web).unwrap(), ["198.51.100.2"]);
    // Asking for it by name says why.
    let pinned = svc("ns", "pinned").ip("198.51.100.1").build();
    assert_eq!(ips(&mut allocator, &pinned).unwrap_err().label(), "address_conflict");
    // A restore of a conflicting address fails, so the Service is allocated afresh.
    let ip0: IpAddr = "198.51.100.0".parse().unwrap();
    assert!(allocator.restore(&svc("ns", "old").build(), &[(ip0, None)]).is_err());
    // Once the conflict is gone, the address is free again.
    allocator.set_conflicts(Default::default());
    assert_eq!(ips(&mut allocator, &pinned).unwrap(), ["198.51.100.1"]);
}
