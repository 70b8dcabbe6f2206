//! The kernel routing state the relay needs, as plain data: which policy rules exist, how they look on the
//! wire, and how to recognise ours (also those left by a run that crashed).
//!
//! The VIP is not an address of the node, so the kernel would not deliver its packets to a local socket.
//! Per frontend, a rule `to VIP ipproto P dport N lookup RELAY_TABLE` (at [`RELAY_PRIORITY`]) sends exactly
//! that port to a table holding `local default dev lo`, so the transparent listener receives it. Per VIP a
//! rule `to VIP prohibit` (at [`REFUSE_PRIORITY`]) catches every other port: it is neither delivered to a
//! host process listening on a wildcard address nor forwarded back out. ARP processing looks the target up
//! without protocol or ports, so it matches only the prohibit rule and the kernel does not answer ARP for the
//! VIP (a port-less `to VIP lookup RELAY_TABLE` rule would make it answer: checked in namespaces). IPv6
//! neighbour discovery only answers for configured addresses, so routes never make the kernel answer NDP.
//!
//! Pure: no sockets. [`super::routing`] does the netlink I/O.

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;

use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::IpProtocol;
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage, RulePortRange};

use crate::{Frontend, Protocol};

/// The routing table that holds `local default dev lo` (IPv4 and IPv6): only our rules point at it.
pub const RELAY_TABLE: u32 = 4210;
/// Priority of the per-frontend rules that send a VIP's port to [`RELAY_TABLE`]. After the `local` table
/// (priority 0), before `main` (32766), and clear of the ranges Cilium, Calico, kube-router and Tailscale use.
pub const RELAY_PRIORITY: u32 = 4210;
/// Priority of the per-VIP `prohibit` rules, just after [`RELAY_PRIORITY`].
pub const REFUSE_PRIORITY: u32 = 4211;
/// The `protocol` (originator) field on our rules and routes (`ip rule` shows `proto 245`); not assigned
/// to any routing daemon in iproute2's `rt_protos`.
pub const ROUTE_PROTOCOL: u8 = 245;

/// One policy rule ferrolb keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// `to VIP prohibit`: every port of the VIP that no frontend relays.
    Refuse(IpAddr),
    /// `to VIP ipproto P dport N lookup RELAY_TABLE`: one frontend delivered locally.
    Relay(Frontend),
}

/// What a rule read from the kernel is to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Somebody else's rule: never touched.
    Foreign,
    /// One of ours, understood.
    Ours(Rule),
    /// Carries our marks but not a shape we write (an older version's): to be deleted.
    Stale,
}

/// The rules for a set of relayed frontends and refused VIPs.
pub fn desired(
    relayed: impl IntoIterator<Item = Frontend>,
    refused: impl IntoIterator<Item = IpAddr>,
) -> BTreeSet<Rule> {
    let mut rules: BTreeSet<Rule> = relayed.into_iter().map(Rule::Relay).collect();
    rules.extend(refused.into_iter().map(Rule::Refuse));
    rules
}

/// The changes that turn `current` into `desired`, in a safe order: relay rules are removed before refuse
/// rules (a port stops being relayed before its VIP stops being refused), and refuse rules are added before
/// relay rules (a new VIP is never reachable on other ports, even for a moment).
pub fn diff(current: &BTreeSet<Rule>, desired: &BTreeSet<Rule>) -> (Vec<Rule>, Vec<Rule>) {
    let mut to_add: Vec<Rule> = desired.difference(current).copied().collect();
    let mut to_remove: Vec<Rule> = current.difference(desired).copied().collect();
    to_add.sort_by_key(|rule| matches!(rule, Rule::Relay(_)));
    to_remove.sort_by_key(|rule| matches!(rule, Rule::Refuse(_)));
    (to_add, to_remove)
}

/// The netlink message that adds (or, sent as a delete, removes) `rule`.
pub fn message(rule: Rule) -> RuleMessage {
    let mut message = RuleMessage::default();
    let ip = match rule {
        Rule::Refuse(ip) => ip,
        Rule::Relay(frontend) => frontend.ip,
    };
    message.header.family = family(ip);
    message.header.dst_len = prefix_len(ip);
    message.attributes.push(RuleAttribute::Destination(ip));
    message.attributes.push(RuleAttribute::Protocol(RouteProtocol::Other(ROUTE_PROTOCOL)));
    match rule {
        Rule::Refuse(_) => {
            message.header.action = RuleAction::Prohibit;
            message.attributes.push(RuleAttribute::Priority(REFUSE_PRIORITY));
        }
        Rule::Relay(frontend) => {
            message.header.action = RuleAction::ToTable;
            message.attributes.push(RuleAttribute::Priority(RELAY_PRIORITY));
            message.attributes.push(RuleAttribute::Table(RELAY_TABLE));
            message.attributes.push(RuleAttribute::IpProtocol(ip_protocol(frontend.protocol)));
            let port = RulePortRange { start: frontend.port, end: frontend.port };
            message.attributes.push(RuleAttribute::DestinationPortRange(port));
        }
    }
    message
}

/// Recognises our rules among all of the kernel's: by priority and, where the kernel reports it, the
/// protocol field (kernels before 4.17 have none, and then the shape decides).
pub fn classify(message: &RuleMessage) -> Classified {
    let mut priority = None;
    let mut protocol = None;
    let mut destination = None;
    let mut table = u32::from(message.header.table);
    let mut ip_proto = None;
    let mut dport = None;
    let mut other_selectors = false;
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Priority(p) => priority = Some(*p),
            RuleAttribute::Protocol(p) => protocol = Some(u8::from(*p)),
            RuleAttribute::Destination(ip) => destination = Some(*ip),
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::IpProtocol(p) => ip_proto = Some(*p),
            RuleAttribute::DestinationPortRange(range) => dport = Some(*range),
            RuleAttribute::Source(_)
            | RuleAttribute::Iifname(_)
            | RuleAttribute::Oifname(_)
            | RuleAttribute::FwMark(_)
            | RuleAttribute::SourcePortRange(_) => other_selectors = true,
            _ => {}
        }
    }
    let Some(priority) = priority else { return Classified::Foreign };
    if priority != RELAY_PRIORITY && priority != REFUSE_PRIORITY {
        return Classified::Foreign;
    }
    let marked = match protocol {
        Some(p) if p == ROUTE_PROTOCOL => true,
        Some(_) => return Classified::Foreign,
        None => false,
    };
    let understood = match (destination, other_selectors) {
        (Some(ip), false) if message.header.dst_len == prefix_len(ip) => {
            understand(priority, message.header.action, table, ip, ip_proto, dport)
        }
        _ => None,
    };
    match understood {
        Some(rule) => Classified::Ours(rule),
        None if marked => Classified::Stale,
        None => Classified::Foreign,
    }
}

fn understand(
    priority: u32,
    action: RuleAction,
    table: u32,
    ip: IpAddr,
    ip_proto: Option<IpProtocol>,
    dport: Option<RulePortRange>,
) -> Option<Rule> {
    match (priority, action, ip_proto, dport) {
        (REFUSE_PRIORITY, RuleAction::Prohibit, None, None) => Some(Rule::Refuse(ip)),
        (RELAY_PRIORITY, RuleAction::ToTable, Some(proto), Some(range)) if table == RELAY_TABLE => {
            let protocol = match proto {
                IpProtocol::Tcp => Protocol::Tcp,
                IpProtocol::Udp => Protocol::Udp,
                _ => return None,
            };
            (range.start == range.end).then_some(Rule::Relay(Frontend { ip, protocol, port: range.start }))
        }
        _ => None,
    }
}

/// The address family of `ip` as rtnetlink spells it.
pub fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn prefix_len(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn ip_protocol(protocol: Protocol) -> IpProtocol {
    match protocol {
        Protocol::Tcp => IpProtocol::Tcp,
        Protocol::Udp => IpProtocol::Udp,
    }
}
