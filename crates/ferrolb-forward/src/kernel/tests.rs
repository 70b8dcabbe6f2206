use super::*;
use crate::{Frontend, Protocol};

fn forward(ip: &str, protocol: Protocol, port: u16, local: bool, endpoints: &[&str]) -> Forward {
    Forward {
        frontend: Frontend { ip: ip.parse().unwrap(), protocol, port },
        service: "default/web".into(),
        local,
        endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
        proxy_protocol: false,
        source_ranges: Vec::new(),
        restricted: false,
    }
}

fn owned(ips: &[&str]) -> BTreeSet<IpAddr> {
    ips.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn an_empty_plan_still_writes_the_whole_table_in_one_transaction() {
    let script = render(&owned(&[]), &[]);
    assert!(script.starts_with("table inet ferrolb\ndelete table inet ferrolb\ntable inet ferrolb {\n"));
    assert!(!script.contains("elements"), "empty sets carry no elements clause: {script}");
    for chain in ["chain prerouting", "chain output", "chain refuse", "chain postrouting"] {
        assert!(script.contains(chain), "{chain} missing");
    }
}

#[test]
fn one_endpoint_is_a_direct_dnat_and_several_are_spread_at_random() {
    let script = render(
        &owned(&["203.0.113.10", "2001:db8:300::10"]),
        &[
            forward("203.0.113.10", Protocol::Tcp, 80, false, &["192.0.2.5:8080", "192.0.2.70:8080"]),
            forward("2001:db8:300::10", Protocol::Udp, 53, true, &["[2001:db8:200:1::5]:8053"]),
        ],
    );
    assert!(script.contains("elements = { 203.0.113.10 . tcp . 80 : goto svc0 }"), "{script}");
    assert!(script.contains("elements = { 2001:db8:300::10 . udp . 53 : goto svc1 }"), "{script}");
    assert!(script.contains("numgen random mod 2 vmap { 0 : goto svc0ep0, 1 : goto svc0ep1 }"));
    assert!(script.contains("meta l4proto tcp dnat ip to 192.0.2.70:8080"));
    assert!(script.contains("meta l4proto udp dnat ip6 to [2001:db8:200:1::5]:8053"));
    // Cluster masquerades, Local keeps the client's address.
    assert!(script.contains("set masquerade4 {\n\t\ttype ipv4_addr\n\t\telements = { 203.0.113.10 }"), "{script}");
    assert!(script.contains("set masquerade6 {\n\t\ttype ipv6_addr\n\t}"), "{script}");
}

#[test]
fn a_port_without_endpoints_is_not_dispatched_so_it_is_refused() {
    let script = render(&owned(&["203.0.113.10"]), &[forward("203.0.113.10", Protocol::Tcp, 80, false, &[])]);
    assert!(!script.contains("goto svc0"), "{script}");
    assert!(script.contains("set owned4 {\n\t\ttype ipv4_addr\n\t\telements = { 203.0.113.10 }"), "{script}");
}

#[test]
fn source_ranges_drop_other_clients_before_the_dnat() {
    let mut only_lan = forward("203.0.113.10", Protocol::Tcp, 80, false, &["192.0.2.5:8080"]);
    only_lan.restricted = true;
    only_lan.source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
    let mut nobody = forward("2001:db8:300::10", Protocol::Tcp, 80, false, &["[2001:db8:200:1::5]:8080"]);
    nobody.restricted = true;
    let script = render(&owned(&["203.0.113.10", "2001:db8:300::10"]), &[only_lan, nobody]);
    let svc0 = script.split("chain svc0 {").nth(1).unwrap();
    let drop_at = svc0.find("ip saddr != { 198.51.100.0/24 } drop").expect("the range check");
    assert!(drop_at < svc0.find("dnat").unwrap(), "the check comes before the DNAT: {script}");
    let svc1 = script.split("chain svc1 {").nth(1).unwrap();
    assert!(svc1.trim_start().lines().nth(1).is_some_and(|l| l.trim() == "drop"), "{script}");
}
