use std::collections::BTreeSet;
use std::net::IpAddr;

use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn tcp(vip: &str, port: u16) -> Frontend {
    Frontend { ip: ip(vip), protocol: Protocol::Tcp, port }
}

fn udp(vip: &str, port: u16) -> Frontend {
    Frontend { ip: ip(vip), protocol: Protocol::Udp, port }
}

#[test]
fn every_rule_we_write_is_recognised_as_ours() {
    let rules = [
        Rule::Relay(tcp("203.0.113.10", 80)),
        Rule::Relay(udp("203.0.113.10", 53)),
        Rule::Relay(tcp("2001:db8:300::10", 443)),
        Rule::Refuse(ip("203.0.113.10")),
        Rule::Refuse(ip("2001:db8:300::10")),
    ];
    for rule in rules {
        assert_eq!(classify(&message(rule)), Classified::Ours(rule), "{rule:?}");
    }
}

#[test]
fn rules_without_our_priority_or_with_another_protocol_are_foreign() {
    let mut other_priority = message(Rule::Refuse(ip("203.0.113.10")));
    other_priority.attributes.retain(|a| !matches!(a, RuleAttribute::Priority(_)));
    other_priority.attributes.push(RuleAttribute::Priority(100));
    assert_eq!(classify(&other_priority), Classified::Foreign);

    let mut other_protocol = message(Rule::Refuse(ip("203.0.113.10")));
    other_protocol.attributes.retain(|a| !matches!(a, RuleAttribute::Protocol(_)));
    other_protocol.attributes.push(RuleAttribute::Protocol(RouteProtocol::Static));
    assert_eq!(classify(&other_protocol), Classified::Foreign);

    let mut no_priority = message(Rule::Refuse(ip("203.0.113.10")));
    no_priority.attributes.retain(|a| !matches!(a, RuleAttribute::Priority(_)));
    assert_eq!(classify(&no_priority), Classified::Foreign);
}

#[test]
fn a_kernel_without_the_protocol_field_still_shows_our_rules() {
    let mut unmarked = message(Rule::Relay(tcp("203.0.113.10", 80)));
    unmarked.attributes.retain(|a| !matches!(a, RuleAttribute::Protocol(_)));
    assert_eq!(classify(&unmarked), Classified::Ours(Rule::Relay(tcp("203.0.113.10", 80))));
}

#[test]
fn marked_rules_of_an_unknown_shape_are_stale_and_unmarked_ones_foreign() {
    let mut range = message(Rule::Relay(tcp("203.0.113.10", 80)));
    range.attributes.retain(|a| !matches!(a, RuleAttribute::DestinationPortRange(_)));
    range.attributes.push(RuleAttribute::DestinationPortRange(RulePortRange { start: 80, end: 90 }));
    assert_eq!(classify(&range), Classified::Stale);

    let mut blackhole = message(Rule::Refuse(ip("203.0.113.10")));
    blackhole.header.action = RuleAction::Blackhole;
    assert_eq!(classify(&blackhole), Classified::Stale);
    blackhole.attributes.retain(|a| !matches!(a, RuleAttribute::Protocol(_)));
    assert_eq!(classify(&blackhole), Classified::Foreign);

    let mut with_source = message(Rule::Refuse(ip("203.0.113.10")));
    with_source.attributes.push(RuleAttribute::Source(ip("192.0.2.1")));
    assert_eq!(classify(&with_source), Classified::Stale);
}

#[test]
fn desired_has_one_relay_rule_per_frontend_and_one_refuse_rule_per_vip() {
    let frontends = [tcp("203.0.113.10", 80), udp("203.0.113.10", 80), tcp("2001:db8:300::10", 80)];
    let vips = [ip("203.0.113.10"), ip("2001:db8:300::10"), ip("203.0.113.10")];
    let rules = desired(frontends, vips);
    assert_eq!(rules.len(), 5);
    assert!(rules.contains(&Rule::Refuse(ip("203.0.113.10"))));
    assert!(rules.contains(&Rule::Relay(udp("203.0.113.10", 80))));
}

#[test]
fn diff_adds_refusals_first_and_removes_relays_first() {
    let current: BTreeSet<Rule> = desired([tcp("203.0.113.10", 80)], [ip("203.0.113.10")]);
    let wanted: BTreeSet<Rule> = desired([tcp("203.0.113.11", 80)], [ip("203.0.113.11")]);
    let (add, remove) = diff(&current, &wanted);
    assert_eq!(add, vec![Rule::Refuse(ip("203.0.113.11")), Rule::Relay(tcp("203.0.113.11", 80))]);
    assert_eq!(remove, vec![Rule::Relay(tcp("203.0.113.10", 80)), Rule::Refuse(ip("203.0.113.10"))]);

    let (add, remove) = diff(&wanted, &wanted);
    assert!(add.is_empty() && remove.is_empty());
}
