//! The routes sent to one peer (its Adj-RIB-Out): what this speaker wants the peer to have, what it has
//! sent, and the UPDATEs between the two, packed so each stays within 4096 bytes and routes with the same
//! attributes share one. Pure: the session driver calls [`Outbox::updates`] when the wanted set changes (it
//! batches changes that arrive close together) and [`Outbox::reset`] when the session goes down.
//!
//! A route is sent only in a family the session negotiated and with a next hop of its family: an
//! IPv4-only peer is never sent IPv6 routes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::community::{Community, LargeCommunity};
use crate::message::MAX_LEN;
use crate::open::Family;
use crate::update::{AS_SEQUENCE, AsSegment, Attribute, Context, Origin, Update};

/// The default LOCAL_PREF sent to internal peers (RFC 4271 requires one on iBGP routes).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What varies between the routes this speaker sends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RouteAttributes {
    /// Standard communities.
    pub communities: BTreeSet<Community>,
    /// Large communities.
    pub large_communities: BTreeSet<LargeCommunity>,
    /// LOCAL_PREF for internal peers; `None`: [`DEFAULT_LOCAL_PREF`]. Never sent to external peers.
    pub local_pref: Option<u32>,
}

/// How routes go to this peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peering {
    /// This speaker's AS.
    pub my_asn: u32,
    /// The peer is in another AS.
    pub external: bool,
    /// The families negotiated.
    pub families: Vec<Family>,
    /// Both sides support 4-octet AS numbers.
    pub four_octet_as: bool,
    /// This node's IPv4 next hop, if it has one.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// This node's IPv6 next hop, if it has one.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl Peering {
    fn family_of(prefix: &IpNet) -> Family {
        if prefix.addr().is_ipv4() { Family::IPV4_UNICAST } else { Family::IPV6_UNICAST }
    }

    /// Whether `prefix` may be sent on this session.
    pub fn carries(&self, prefix: &IpNet) -> bool {
        let family = Peering::family_of(prefix);
        let hop = match family {
            Family::IPV4_UNICAST => self.next_hop_v4.is_some(),
            _ => self.next_hop_v6.is_some(),
        };
        hop && self.families.contains(&family)
    }

    /// The decoding context of the session.
    pub fn context(&self) -> Context {
        Context { four_octet_as: self.four_octet_as }
    }

    fn common(&self, attributes: &RouteAttributes) -> Vec<Attribute> {
        let path =
            if self.external { vec![AsSegment { kind: AS_SEQUENCE, asns: vec![self.my_asn] }] } else { Vec::new() };
        let mut out = vec![Attribute::Origin(Origin::Igp), Attribute::AsPath(path)];
        if !self.external {
            out.push(Attribute::LocalPref(attributes.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)));
        }
        if !attributes.communities.is_empty() {
            out.push(Attribute::Communities(attributes.communities.iter().copied().collect()));
        }
        if !attributes.large_communities.is_empty() {
            out.push(Attribute::LargeCommunities(attributes.large_communities.iter().copied().collect()));
        }
        out
    }
}

/// What has been sent to one peer; see the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    sent: BTreeMap<IpNet, RouteAttributes>,
}

impl Outbox {
    /// How many routes the peer has from this speaker.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether the peer has none.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// The session went down: the peer dropped every route.
    pub fn reset(&mut self) {
        self.sent.clear();
    }

    /// Forgets what was sent in `family`, so the next [`Outbox::updates`] sends all of it again (a
    /// ROUTE-REFRESH).
    pub fn refresh(&mut self, family: Family) {
        self.sent.retain(|p, _| Peering::family_of(p) != family);
    }

    /// The UPDATEs that take the peer from what it has to `wanted` (routes it cannot carry are left out),
    /// and records them as sent.
    pub fn updates(&mut self, wanted: &BTreeMap<IpNet, RouteAttributes>, peering: &Peering) -> Vec<Update> {
        let wanted: BTreeMap<&IpNet, &RouteAttributes> = wanted.iter().filter(|(p, _)| peering.carries(p)).collect();
        let withdrawn: Vec<IpNet> = self.sent.keys().filter(|p| !wanted.contains_key(p)).copied().collect();
        let mut announce: BTreeMap<&RouteAttributes, Vec<IpNet>> = BTreeMap::new();
        for (prefix, attributes) in &wanted {
            if self.sent.get(prefix) != Some(attributes) {
                announce.entry(attributes).or_default().push(**prefix);
            }
        }
        let ctx = peering.context();
        let mut updates = Vec::new();
        let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = withdrawn.iter().partition(|p| p.addr().is_ipv4());
        pack(&mut updates, &ctx, &v4, |chunk| Update {
            withdrawn: chunk
                .iter()
                .filter_map(|p| match p {
                    IpNet::V4(p) => Some(*p),
                    IpNet::V6(_) => None,
                })
                .collect(),
            ..Update::default()
        });
        pack(&mut updates, &ctx, &v6, |chunk| Update {
            attributes: vec![Attribute::MpUnreach { family: Family::IPV6_UNICAST, withdrawn: chunk.to_vec() }],
            ..Update::default()
        });
        for (attributes, prefixes) in &announce {
            let common = peering.common(attributes);
            let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| p.addr().is_ipv4());
            if let Some(hop) = peering.next_hop_v4 {
                pack(&mut updates, &ctx, &v4, |chunk| {
                    let mut attributes = common.clone();
                    attributes.push(Attribute::NextHop(hop));
                    Update {
                        attributes,
                        nlri: chunk
                            .iter()
                            .filter_map(|p| match p {
                                IpNet::V4(p) => Some(*p),
                                IpNet::V6(_) => None,
                            })
                            .collect(),
                        ..Update::default()
                    }
                });
            }
            if let Some(hop) = peering.next_hop_v6 {
                pack(&mut updates, &ctx, &v6, |chunk| {
                    let mut attributes = common.clone();
                    attributes.push(Attribute::MpReach {
                        family: Family::IPV6_UNICAST,
                        next_hops: vec![IpAddr::V6(hop)],
                        nlri: chunk.to_vec(),
                    });
                    Update { attributes, ..Update::default() }
                });
            }
        }
        for prefix in withdrawn {
            self.sent.remove(&prefix);
        }
        for (prefix, attributes) in wanted {
            self.sent.insert(*prefix, attributes.clone());
        }
        updates
    }
}

/// Appends UPDATEs made by `build` from consecutive runs of `prefixes`, each run as long as fits in one
/// message.
fn pack(updates: &mut Vec<Update>, ctx: &Context, prefixes: &[IpNet], build: impl Fn(&[IpNet]) -> Update) {
    let mut start = 0;
    while start < prefixes.len() {
        // The fixed part, then one prefix at a time (at most 17 bytes each): grow while it fits.
        let base = build(&[]).encoded_len(ctx);
        let mut size = base;
        let mut end = start;
        while end < prefixes.len() {
            let cost = 1 + usize::from(prefixes[end].prefix_len()).div_ceil(8);
            if size + cost > MAX_LEN {
                break;
            }
            size += cost;
            end += 1;
        }
        // A prefix always fits after the fixed part, so every round makes progress.
        let end = end.max(start + 1);
        let mut update = build(&prefixes[start..end]);
        update.attributes.sort_by_key(Attribute::wire_rank);
        updates.push(update);
        start = end;
    }
}

#[cfg(test)]
mod tests;
