//! Interface choice: explicit names, the IP's subnet, and what automatic choice skips.

use pnet_datalink::MacAddr;

use super::*;

const UP_BROADCAST_MULTICAST: u32 = 0x1 | 0x2 | 0x1000;

fn interface(name: &str, index: u32) -> NetworkInterface {
    NetworkInterface {
        name: name.to_owned(),
        description: String::new(),
        index,
        mac: Some(MacAddr(2, 0, 0, 0, 0, u8::try_from(index).expect("small"))),
        ips: Vec::new(),
        flags: UP_BROADCAST_MULTICAST,
    }
}

fn link(name: &str, index: u32, nets: &[&str]) -> Link {
    Link {
        name: name.to_owned(),
        index,
        mac: Mac([2, 0, 0, 0, 0, u8::try_from(index).expect("small")]),
        networks: nets.iter().map(|n| n.parse().expect("a network")).collect(),
        member: false,
        arp: true,
    }
}

fn names(chosen: &[&Link]) -> Vec<String> {
    chosen.iter().map(|l| l.name.clone()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

#[test]
fn prefers_the_interfaces_on_the_ips_subnet() {
    let links = [link("eth0", 2, &["198.51.100.11/24", "2001:db8:100::11/64"]), link("eth1", 3, &["203.0.113.11/24"])];
    assert_eq!(names(&choose(ip("203.0.113.200"), &[], &links)), ["eth1"]);
    assert_eq!(names(&choose(ip("2001:db8:100::f000"), &[], &links)), ["eth0"]);
    // Off every subnet: every interface open to automatic choice.
    assert_eq!(names(&choose(ip("192.0.2.200"), &[], &links)), ["eth0", "eth1"]);
}

#[test]
fn automatic_choice_skips_bond_and_bridge_members() {
    let member = Link { member: true, ..link("eth1", 3, &["203.0.113.11/24"]) };
    let links = [link("eth0", 2, &["198.51.100.11/24"]), member];
    assert_eq!(names(&choose(ip("203.0.113.200"), &[], &links)), ["eth0"]);
    assert_eq!(names(&choose(ip("192.0.2.200"), &[], &links)), ["eth0"]);
}

#[test]
fn automatic_choice_skips_noarp_interfaces() {
    let tunnel = Link { arp: false, ..link("tun0", 4, &["203.0.113.11/24"]) };
    let links = [link("eth0", 2, &["198.51.100.11/24"]), tunnel];
    assert_eq!(names(&choose(ip("203.0.113.200"), &[], &links)), ["eth0"]);
}

#[test]
fn explicit_interfaces_are_taken_as_named() {
    let member = Link { member: true, ..link("eth1", 3, &[]) };
    let links = [link("eth0", 2, &["198.51.100.11/24"]), member];
    let named = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // An operator may name a member on purpose.
    assert_eq!(names(&choose(ip("198.51.100.200"), &named(&["eth1"]), &links)), ["eth1"]);
    // A named interface that does not exist (yet) gives nothing, not a fallback.
    assert!(choose(ip("198.51.100.200"), &named(&["flbx"]), &links).is_empty());
}

#[test]
fn the_policy_excludes_down_loopback_macless_and_prefixed_interfaces() {
    let policy = InterfacePolicy { excluded_prefixes: vec!["veth*".to_owned()] };
    let up = interface("eth0", 2);
    assert!(policy.eligible(&up));
    let down = NetworkInterface { flags: up.flags & !0x1, ..up.clone() };
    assert!(!policy.eligible(&down));
    let loopback = NetworkInterface { flags: up.flags | 0x8, ..up.clone() };
    assert!(!policy.eligible(&loopback));
    let macless = NetworkInterface { mac: None, ..up.clone() };
    assert!(!policy.eligible(&macless));
    assert!(!policy.eligible(&interface("veth12", 5)));
}

#[test]
fn a_noarp_interface_is_read_as_not_resolving() {
    let tunnel = NetworkInterface { flags: UP_BROADCAST_MULTICAST | IFF_NOARP, ..interface("tun0", 4) };
    assert!(!Link::from_interface(&tunnel).arp);
    assert!(Link::from_interface(&interface("eth0", 2)).arp);
}
