//! The conflict probe with real packets: a node namespace probes, over a veth pair, for addresses a host
//! namespace holds and for free ones. The host is an ordinary Linux stack: it answers the ARP probe and the
//! duplicate address detection solicitation as RFC 5227 and RFC 4862 expect.
//!
//! Needs root (network namespaces, raw packet sockets): without it the test fails and says so.

use std::time::{Duration, Instant};

use ferrolb_packet::Mac;
use ferrolb_speaker::l2::probe::probe;
use ferrolb_speaker::l2::{InterfacePolicy, read_links};
use ferrolb_testns::{Netns, require_root};

const WINDOW: Duration = Duration::from_millis(200);

fn mac_of(ns: &Netns, dev: &str) -> Mac {
    Mac(ns.mac(dev))
}

#[test]
fn a_probe_finds_the_host_that_holds_an_address_and_nobody_for_a_free_one() {
    require_root("the conflict probe test (network namespaces, raw packet sockets)");
    let node = Netns::new("probe-node");
    let host = Netns::new("probe-host");
    node.link("eth0", &["198.51.100.11/24", "2001:db8:100::11/64"], &host, "eth0", &["198.51.100.2/24"]);
    // The host also holds an address of the pool: a static host, or a DHCP lease, in the pool's range.
    host.ip(&["addr", "add", "198.51.100.192/24", "dev", "eth0"]);
    host.ip(&["addr", "add", "2001:db8:100::f000/64", "dev", "eth0", "nodad"]);
    let host_mac = mac_of(&host, "eth0");
    let found = node.within(|| {
        let links = read_links(&InterfacePolicy { excluded_prefixes: vec![] });
        let eth0 = links.into_iter().find(|l| l.name == "eth0").expect("the node's eth0");
        ["198.51.100.192", "198.51.100.193", "2001:db8:100::f000", "2001:db8:100::f001"]
            .map(|ip| {
                let started = Instant::now();
                let answer = probe(&eth0, ip.parse().expect("address"), WINDOW).expect("the probe runs");
                (ip, answer, started.elapsed())
            })
            .to_vec()
    });
    for (ip, answer, took) in &found {
        let held = ip.ends_with("192") || ip.ends_with("f000");
        assert_eq!(*answer, held.then_some(host_mac), "{ip}: the answer");
        // A free address costs the whole window, no more; a held one is found on the first answer.
        assert!(*took < WINDOW + Duration::from_millis(150), "{ip} took {took:?}");
        if held {
            assert!(*took < WINDOW, "{ip} was answered only after the window ({took:?})");
        }
    }
    // The probe left nothing in the host's neighbour cache (sender 0.0.0.0 / ::): it claimed nothing.
    let neighbours = host.ip(&["neigh", "show"]);
    assert!(!neighbours.contains("198.51.100.192") && !neighbours.contains("f000"), "{neighbours}");
}
