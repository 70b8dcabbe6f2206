//! The refcounting of solicited-node groups, without sockets.

use super::*;

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("an IPv6 address")
}

fn join(interface: &str, ifindex: u32, group: &str) -> Change {
    Change::Join { interface: interface.to_owned(), ifindex, group: ip(group) }
}

fn leave(interface: &str, ifindex: u32, group: &str) -> Change {
    Change::Leave { interface: interface.to_owned(), ifindex, group: ip(group) }
}

fn close(interface: &str) -> Change {
    Change::Close { interface: interface.to_owned() }
}

#[test]
fn first_address_joins_and_last_leaves() {
    let mut groups = Groups::default();
    assert_eq!(groups.take("eth0", 2, ip("2001:db8::f001")), [join("eth0", 2, "ff02::1:ff00:f001")]);
    assert_eq!(groups.held("eth0"), [ip("ff02::1:ff00:f001")]);
    assert_eq!(groups.release("eth0", ip("2001:db8::f001")), [leave("eth0", 2, "ff02::1:ff00:f001"), close("eth0")]);
    assert!(groups.held("eth0").is_empty());
}

#[test]
fn addresses_sharing_the_low_24_bits_share_one_membership() {
    let mut groups = Groups::default();
    assert_eq!(groups.take("eth0", 2, ip("2001:db8:1::ab:cdef")), [join("eth0", 2, "ff02::1:ffab:cdef")]);
    assert!(groups.take("eth0", 2, ip("2001:db8:2::ab:cdef")).is_empty());
    assert!(groups.release("eth0", ip("2001:db8:1::ab:cdef")).is_empty(), "still used by the second address");
    assert_eq!(groups.held("eth0"), [ip("ff02::1:ffab:cdef")]);
    assert_eq!(
        groups.release("eth0", ip("2001:db8:2::ab:cdef")),
        [leave("eth0", 2, "ff02::1:ffab:cdef"), close("eth0")]
    );
}

#[test]
fn interfaces_are_counted_apart() {
    let mut groups = Groups::default();
    assert_eq!(groups.take("eth0", 2, ip("2001:db8::1")), [join("eth0", 2, "ff02::1:ff00:1")]);
    assert_eq!(groups.take("eth1", 3, ip("2001:db8::1")), [join("eth1", 3, "ff02::1:ff00:1")]);
    assert_eq!(groups.take("eth0", 2, ip("2001:db8::2")), [join("eth0", 2, "ff02::1:ff00:2")]);
    // Leaving one group keeps the interface's socket while it holds another.
    assert_eq!(groups.release("eth0", ip("2001:db8::1")), [leave("eth0", 2, "ff02::1:ff00:1")]);
    assert_eq!(groups.held("eth1"), [ip("ff02::1:ff00:1")]);
}

#[test]
fn releasing_what_was_never_taken_changes_nothing() {
    let mut groups = Groups::default();
    assert!(groups.release("eth0", ip("2001:db8::1")).is_empty());
    groups.take("eth0", 2, ip("2001:db8::1"));
    assert!(groups.release("eth0", ip("2001:db8::2")).is_empty());
    assert!(groups.release("eth1", ip("2001:db8::1")).is_empty());
    assert_eq!(groups.held("eth0"), [ip("ff02::1:ff00:1")]);
}

#[test]
fn a_recreated_interface_rejoins_every_group_on_its_new_index() {
    let mut groups = Groups::default();
    groups.take("eth1", 5, ip("2001:db8::1"));
    groups.take("eth1", 5, ip("2001:db8::2"));
    assert!(groups.relink("eth1", 5).is_empty(), "same index: nothing to do");
    assert_eq!(
        groups.relink("eth1", 9),
        [close("eth1"), join("eth1", 9, "ff02::1:ff00:1"), join("eth1", 9, "ff02::1:ff00:2")]
    );
    // Taking on a new index also rejoins first.
    assert_eq!(
        groups.take("eth1", 11, ip("2001:db8::3")),
        [
            close("eth1"),
            join("eth1", 11, "ff02::1:ff00:1"),
            join("eth1", 11, "ff02::1:ff00:2"),
            join("eth1", 11, "ff02::1:ff00:3")
        ]
    );
    assert_eq!(groups.release("eth1", ip("2001:db8::1")), [leave("eth1", 11, "ff02::1:ff00:1")]);
    assert!(groups.relink("eth9", 1).is_empty(), "unknown interface");
}

/// Real sockets, in a network namespace of the test's own thread (needs root): 5,000 groups are more than one
/// socket's option memory holds, so the interface must get more sockets, and the kernel must list every group
/// on the device; releasing them all leaves none.
#[test]
fn thousands_of_groups_spread_over_sockets_and_all_are_joined() {
    std::thread::spawn(|| {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (a network namespace)");
            return;
        }
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace");
        let ip_link = |args: &[&str]| {
            // A child process forked from this thread lives in its namespace.
            let status = std::process::Command::new("ip").arg("link").args(args).status().expect("ip");
            assert!(status.success(), "ip link {args:?}");
        };
        ip_link(&["add", "mc0", "type", "veth", "peer", "name", "mc1"]);
        // No link-local address: its solicited-node group would be joined whenever the kernel gets to it,
        // perhaps after `before` is read (seen as 5001 joins in 1 run of 3).
        ip_link(&["set", "mc0", "addrgenmode", "none"]);
        ip_link(&["set", "mc1", "up"]);
        ip_link(&["set", "mc0", "up"]);
        let ifindex = nix::net::if_::if_nametoindex("mc0").expect("mc0");
        let joined = || {
            let table = std::fs::read_to_string("/proc/thread-self/net/igmp6").expect("igmp6");
            table.lines().filter(|l| l.split_whitespace().nth(1) == Some("mc0")).filter(|l| l.contains("ff")).count()
        };
        let before = joined();
        let addresses: Vec<Ipv6Addr> = (0..5000u32)
            .map(|i| Ipv6Addr::from(0x2001_0db8_0100_0000_0000_0000_0001_0000u128 + u128::from(i)))
            .collect();
        let mut memberships = Memberships::default();
        for address in &addresses {
            memberships.take("mc0", ifindex, *address);
        }
        assert_eq!(joined() - before, 5000, "not every solicited-node group is joined on the device");
        assert!(memberships.sockets("mc0") > 1, "5,000 groups fitted one socket: the test proves nothing here");
        for address in &addresses {
            memberships.release("mc0", *address);
        }
        assert_eq!(joined(), before, "groups left behind");
        assert_eq!(memberships.sockets("mc0"), 0);
    })
    .join()
    .expect("the namespace thread");
}
