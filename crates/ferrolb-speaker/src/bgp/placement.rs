//! Who advertises what over BGP, as a pure function of the same cluster view layer 2 placement reads.
//!
//! Unlike layer 2, there is no single owner: every eligible node advertises an IP to each peer that selects
//! it, and the router spreads flows over them (ECMP). A node is eligible for an IP when it may carry
//! load-balancer traffic (not NetworkUnavailable, not labelled `exclude-from-external-load-balancers`), a
//! BGPAdvertisement covering the IP's pool selects it, and some Service on the IP accepts traffic there
//! (any ready endpoint; with `externalTrafficPolicy: Local`, a ready endpoint on the node, damped as for
//! layer 2). Cordoning withdraws nothing: the exclusion label is the way to drain a node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::routes::RouteAttributes;
use ferrolb_bgp::{AnyCommunity, Family, session};
use ferrolb_md5sig::Md5Key;
use ipnet::IpNet;

use super::bfd::BfdPeer;
use crate::desired::{Advertisement, Cluster, ExternalIp, NodeInfo, Selector};

/// A BGPPeer as the speaker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The BGPPeer's name.
    pub name: String,
    /// This node's AS.
    pub my_asn: u32,
    /// The peer's AS.
    pub peer_asn: u32,
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's port.
    pub port: u16,
    /// The address to connect from.
    pub source: Option<IpAddr>,
    /// The BGP identifier to send (default: the node's IPv4 address).
    pub router_id: Option<Ipv4Addr>,
    /// Hold time proposed.
    pub hold_time: Duration,
    /// Keepalive interval wanted.
    pub keepalive: Option<Duration>,
    /// Wait before retrying a failed connection.
    pub connect_retry: Duration,
    /// Nodes that peer (empty: all).
    pub node_selectors: Vec<Selector>,
    /// Not directly connected: TTL 255 instead of 1 for an external peer.
    pub multihop: bool,
    /// The BFD guarding the session, if the peer names a profile.
    pub bfd: Option<Bfd>,
    /// The TCP MD5 key, if the peer names a `passwordSecret`.
    pub password: Option<Password>,
}

/// A BGPPeer's TCP MD5 key, as its `passwordSecret` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// The key (its `Debug` is redacted).
    Key(Md5Key),
    /// The Secret cannot give a key, with exactly why (the session is not started and its record says so).
    Unusable(String),
}

/// A BGPPeer's BFD, as its profile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bfd {
    /// The profile's timers and the lowest TTL accepted multihop.
    Profile(ferrolb_bgp::bfd::BfdConfig, u8),
    /// The peer names a BFDProfile that does not exist (the session runs without BFD and says so).
    Missing(String),
}

impl Peer {
    /// Whether `node` peers with this peer.
    pub fn selects(&self, node: &NodeInfo) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|s| s.matches(&node.labels))
    }

    /// An external (eBGP) peer.
    pub fn external(&self) -> bool {
        self.my_asn != self.peer_asn
    }
}

/// A BGPAdvertisement as the speaker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// The BGPAdvertisement's name.
    pub name: String,
    /// Which pools and nodes (the same selection an L2Advertisement makes; `interfaces` stays empty).
    pub scope: Advertisement,
    /// Peers advertised to, by name (empty: all).
    pub peers: BTreeSet<String>,
    /// Prefix length of IPv4 routes.
    pub aggregation_v4: u8,
    /// Prefix length of IPv6 routes.
    pub aggregation_v6: u8,
    /// LOCAL_PREF for internal peers.
    pub local_pref: Option<u32>,
    /// Communities attached.
    pub communities: BTreeSet<AnyCommunity>,
}

impl BgpAdvertisement {
    fn targets(&self, peer: &str) -> bool {
        self.peers.is_empty() || self.peers.contains(peer)
    }

    fn prefix(&self, ip: IpAddr) -> IpNet {
        let len = if ip.is_ipv4() { self.aggregation_v4.min(32) } else { self.aggregation_v6.min(128) };
        IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
    }

    fn attributes(&self) -> RouteAttributes {
        let mut attributes = RouteAttributes { local_pref: self.local_pref, ..RouteAttributes::default() };
        for c in &self.communities {
            match c {
                AnyCommunity::Standard(c) => attributes.communities.insert(*c),
                AnyCommunity::Large(c) => attributes.large_communities.insert(*c),
            };
        }
        attributes
    }
}

/// What BGP placement reads besides the cluster view.
#[derive(Debug, Clone, Copy)]
pub struct BgpConfig<'a> {
    /// Every valid BGPPeer.
    pub peers: &'a [Peer],
    /// Every valid BGPAdvertisement.
    pub advertisements: &'a [BgpAdvertisement],
}

/// How one session of this node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's port.
    pub port: u16,
    /// The address to connect from.
    pub source: Option<IpAddr>,
    /// TTL (hop limit) of the session's packets: 1 to a directly connected external peer, else 255.
    pub ttl: u32,
    /// The state machine's settings.
    pub session: session::Config,
    /// The BFD session guarding this one.
    pub bfd: Option<BfdPeer>,
    /// The TCP MD5 key the session's segments are signed with (a new key restarts the session).
    pub md5: Option<Md5Key>,
}

/// What one peer of this node gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOrder {
    /// The session's settings; a change restarts the session.
    pub settings: SessionSettings,
    /// This node's next hops.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// This node's IPv6 next hop.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// The routes to advertise.
    pub routes: Arc<BTreeMap<IpNet, RouteAttributes>>,
    /// Settings that do not apply to this session, for its status.
    pub warnings: Vec<String>,
}

/// What BGP is asked to do in one pass: this node's sessions, by BGPPeer name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpOrder {
    /// The sessions and their routes.
    pub peers: BTreeMap<String, PeerOrder>,
    /// Peers that select this node but cannot be started, with why (for their status).
    pub refused: BTreeMap<String, String>,
    /// The external IPs this node advertises to at least one peer (forward mode forwards them).
    pub ips: BTreeSet<IpAddr>,
}

/// This node's addresses, for the BGP identifier and next hops.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeAddresses {
    /// Its IPv4 address.
    pub v4: Option<Ipv4Addr>,
    /// Its IPv6 address.
    pub v6: Option<Ipv6Addr>,
}

impl NodeAddresses {
    /// The first address of each family among `addresses`.
    pub fn from_addresses(addresses: &[IpAddr]) -> NodeAddresses {
        NodeAddresses {
            v4: addresses.iter().find_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            }),
            v6: addresses.iter().find_map(|a| match a {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            }),
        }
    }
}

/// Whether `node` is eligible to advertise `ext` through `ad`.
fn eligible(node: &NodeInfo, ext: &ExternalIp, ad: &BgpAdvertisement, cluster: &Cluster<'_>) -> bool {
    node.serviceable()
        && ad.scope.covers(&ext.pool, cluster.pool_labels.get(&ext.pool))
        && ad.scope.selects(node)
        && cluster.endpoints_accept(ext, &node.name)
}

/// This node's BGP order; see the module doc.
pub fn order(me: &str, ips: &[ExternalIp], cluster: &Cluster<'_>, bgp: &BgpConfig<'_>, own: NodeAddresses) -> BgpOrder {
    let mut order = BgpOrder::default();
    let Some(node) = cluster.nodes.iter().find(|n| n.name == me) else { return order };
    for peer in bgp.peers.iter().filter(|p| p.selects(node)) {
        let Some(router_id) = peer.router_id.or(own.v4) else {
            let why = "this node has no IPv4 address for a BGP identifier: set routerID on the BGPPeer".to_owned();
            order.refused.insert(peer.name.clone(), why);
            continue;
        };
        let md5 = match &peer.password {
            None => None,
            Some(Password::Key(key)) => Some(key.clone()),
            // Without its key the router drops every segment: no point connecting; the record says why.
            Some(Password::Unusable(why)) => {
                order.refused.insert(peer.name.clone(), why.clone());
                continue;
            }
        };
        let mut routes: BTreeMap<IpNet, RouteAttributes> = BTreeMap::new();
        let mut warnings = BTreeSet::new();
        if let Some(Bfd::Missing(profile)) = &peer.bfd {
            warnings.insert(format!("BFDProfile {profile} does not exist: the session runs without BFD"));
        }
        for ext in ips {
            for ad in bgp.advertisements.iter().filter(|a| a.targets(&peer.name) && eligible(node, ext, a, cluster)) {
                if peer.external() && ad.local_pref.is_some() {
                    warnings.insert(format!(
                        "BGPAdvertisement {} sets localPref, which external (eBGP) peers never get",
                        ad.name
                    ));
                }
                let entry = routes.entry(ad.prefix(ext.ip)).or_default();
                let more = ad.attributes();
                entry.communities.extend(more.communities);
                entry.large_communities.extend(more.large_communities);
                entry.local_pref = entry.local_pref.max(more.local_pref);
                order.ips.insert(ext.ip);
            }
        }
        let source_v4 = peer.source.and_then(|s| match s {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        });
        let source_v6 = peer.source.and_then(|s| match s {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => None,
        });
        let families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        let settings = SessionSettings {
            address: peer.address,
            port: peer.port,
            source: peer.source,
            ttl: if peer.external() && !peer.multihop { 1 } else { 255 },
            session: session::Config {
                my_asn: peer.my_asn,
                peer_asn: peer.peer_asn,
                router_id,
                hold_time: peer.hold_time,
                keepalive: peer.keepalive,
                connect_retry: peer.connect_retry,
                families,
            },
            bfd: match &peer.bfd {
                Some(Bfd::Profile(config, minimum_ttl)) => Some(BfdPeer {
                    peer: peer.address,
                    local: peer.source,
                    multihop: peer.multihop,
                    minimum_ttl: *minimum_ttl,
                    config: *config,
                }),
                _ => None,
            },
            md5,
        };
        order.peers.insert(
            peer.name.clone(),
            PeerOrder {
                settings,
                next_hop_v4: source_v4.or(own.v4),
                next_hop_v6: source_v6.or(own.v6),
                routes: Arc::new(routes),
                warnings: warnings.into_iter().collect(),
            },
        );
    }
    order
}

/// The live nodes that advertise `ext` to some peer (for the Service's Event and `ferrolb status`).
pub fn advertisers(ext: &ExternalIp, cluster: &Cluster<'_>, bgp: &BgpConfig<'_>) -> BTreeSet<String> {
    cluster
        .nodes
        .iter()
        .filter(|n| cluster.live.contains(&n.name))
        .filter(|n| {
            bgp.advertisements.iter().any(|ad| {
                eligible(n, ext, ad, cluster) && bgp.peers.iter().any(|p| p.selects(n) && ad.targets(&p.name))
            })
        })
        .map(|n| n.name.clone())
        .collect()
}

/// Whether any BGPAdvertisement covers `ext`'s pool (else BGP says nothing about it).
pub fn covered(ext: &ExternalIp, cluster: &Cluster<'_>, bgp: &BgpConfig<'_>) -> bool {
    bgp.advertisements.iter().any(|a| a.scope.covers(&ext.pool, cluster.pool_labels.get(&ext.pool)))
}

#[cfg(test)]
mod tests;
