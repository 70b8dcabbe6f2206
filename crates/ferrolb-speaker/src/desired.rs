//! Which node announces each IP, as a pure function of the cluster state and the membership view.
//!
//! An IP is announced by the owner among the eligible live nodes ([`crate::election::owner`]). A node is
//! live when its speaker is in the membership. It is eligible for an IP when its NetworkUnavailable condition
//! is not True, it is not cordoned (`spec.unschedulable`, as `kubectl drain` leaves it, so a drain hands its
//! IPs over gracefully while its speaker still runs), it is not labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers`, some
//! L2Advertisement that covers the IP's pool selects it, and some Service using the IP has a ready endpoint
//! (with `externalTrafficPolicy: Local`, a ready endpoint on that node). The Node's Ready condition is not
//! used: it follows the kubelet, not the speaker, and lags a dead node by 40 s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::election::owner;

/// The label that keeps a node out of load-balancer duty.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// A node as the election sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// NetworkUnavailable condition is True.
    pub network_unavailable: bool,
    /// Cordoned (`spec.unschedulable`), e.g. by `kubectl drain`.
    pub unschedulable: bool,
    /// Its Ready condition is there and not True (Kubernetes believes its kubelet is gone).
    pub not_ready: bool,
}

pub use ferrolb_ipam::LabelSelector as Selector;

/// An L2Advertisement as the election sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// Pools covered by name.
    pub pools: BTreeSet<String>,
    /// Pools covered by label (any may match).
    pub pool_selectors: Vec<Selector>,
    /// Nodes that may announce (any may match; empty: all).
    pub node_selectors: Vec<Selector>,
    /// Interfaces to announce on (empty: automatic).
    pub interfaces: Vec<String>,
}

impl Advertisement {
    /// Whether this advertisement covers addresses of `pool` (labelled `pool_labels`).
    pub fn covers(&self, pool: &str, pool_labels: Option<&BTreeMap<String, String>>) -> bool {
        let everything = self.pools.is_empty() && self.pool_selectors.is_empty();
        everything
            || self.pools.contains(pool)
            || pool_labels.is_some_and(|labels| self.pool_selectors.iter().any(|s| s.matches(labels)))
    }

    /// Whether this advertisement lets `node` announce (no node selectors: every node).
    pub fn selects(&self, node: &NodeInfo) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|s| s.matches(&node.labels))
    }
}

/// The endpoints of one Service, as eligibility needs them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceEndpoints {
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// Whether any endpoint is ready.
    pub any_ready: bool,
    /// Nodes with a ready endpoint (only used with `local`; see [`crate::endpoints`] for the damping).
    pub nodes: BTreeSet<String>,
}

impl ServiceEndpoints {
    /// Whether `node` may take the Service's traffic: some endpoint is ready, and under Local one on `node`.
    pub fn accepts(&self, node: &str) -> bool {
        self.any_ready && (!self.local || self.nodes.contains(node))
    }
}

/// Everything placement reads besides the IPs.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// Nodes from the API.
    pub nodes: &'a [NodeInfo],
    /// L2Advertisements.
    pub advertisements: &'a [Advertisement],
    /// Pool labels by pool name.
    pub pool_labels: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// Live speakers by node name.
    pub live: &'a BTreeSet<String>,
    /// Endpoints by Service (`namespace/name`).
    pub endpoints: &'a BTreeMap<String, ServiceEndpoints>,
}

/// One external IP with what is needed to place it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIp {
    /// The address.
    pub ip: IpAddr,
    /// The pool it came from.
    pub pool: String,
    /// Services using it (`namespace/name`).
    pub services: BTreeSet<String>,
}

/// The outcome for one IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This node announces it, on these interfaces (empty: automatic choice).
    Announce {
        /// Interfaces named by the matching L2Advertisements.
        interfaces: Vec<String>,
    },
    /// Another node announces it.
    OtherOwner(String),
    /// No Service using it has a ready endpoint: nobody announces it.
    NoReadyEndpoint,
    /// No eligible live node: nobody announces it.
    NoEligibleNode,
    /// No L2Advertisement covers its pool.
    NotAdvertised,
}

impl Placement {
    /// The announcing node, if any.
    pub fn owner<'a>(&'a self, me: &'a str) -> Option<&'a str> {
        match self {
            Placement::Announce { .. } => Some(me),
            Placement::OtherOwner(owner) => Some(owner),
            _ => None,
        }
    }
}

impl NodeInfo {
    /// Whether the node may carry load-balancer traffic at all: not NetworkUnavailable, not excluded by label.
    pub fn serviceable(&self) -> bool {
        !self.network_unavailable && !self.labels.contains_key(EXCLUDE_LABEL)
    }
}

impl Cluster<'_> {
    /// Whether some Service using `ext` accepts traffic on `node` (see [`ServiceEndpoints::accepts`]).
    pub fn endpoints_accept(&self, ext: &ExternalIp, node: &str) -> bool {
        ext.services.iter().filter_map(|s| self.endpoints.get(s)).any(|e| e.accepts(node))
    }

    /// Whether any Service using `ext` has a ready endpoint anywhere.
    pub fn any_ready(&self, ext: &ExternalIp) -> bool {
        ext.services.iter().filter_map(|s| self.endpoints.get(s)).any(|e| e.any_ready)
    }
}

/// Places every IP as seen from node `me`.
pub fn place(me: &str, ips: &[ExternalIp], cluster: &Cluster<'_>) -> BTreeMap<IpAddr, Placement> {
    // A cordoned node hands its IPs over (L2 only: BGP keeps advertising from it, see bgp::placement).
    let healthy: Vec<&NodeInfo> = cluster
        .nodes
        .iter()
        .filter(|n| cluster.live.contains(&n.name) && n.serviceable() && !n.unschedulable)
        .collect();
    ips.iter()
        .map(|ext| {
            let covering: Vec<&Advertisement> = cluster
                .advertisements
                .iter()
                .filter(|a| a.covers(&ext.pool, cluster.pool_labels.get(&ext.pool)))
                .collect();
            if covering.is_empty() {
                return (ext.ip, Placement::NotAdvertised);
            }
            if !cluster.any_ready(ext) {
                return (ext.ip, Placement::NoReadyEndpoint);
            }
            let eligible = healthy
                .iter()
                .filter(|n| covering.iter().any(|a| a.selects(n)))
                .filter(|n| cluster.endpoints_accept(ext, &n.name))
                .map(|n| n.name.as_str());
            let placement = match owner(ext.ip, eligible) {
                None => Placement::NoEligibleNode,
                Some(owner) if owner == me => {
                    let me_node = cluster.nodes.iter().find(|n| n.name == me);
                    let mut interfaces: Vec<String> = covering
                        .iter()
                        .filter(|a| me_node.is_some_and(|n| a.selects(n)))
                        .flat_map(|a| a.interfaces.iter().cloned())
                        .collect();
                    interfaces.sort();
                    interfaces.dedup();
                    Placement::Announce { interfaces }
                }
                Some(other) => Placement::OtherOwner(other.to_owned()),
            };
            (ext.ip, placement)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            network_unavailable: false,
            unschedulable: false,
            not_ready: false,
        }
    }

    fn all_pools() -> Advertisement {
        Advertisement { pools: BTreeSet::new(), pool_selectors: vec![], node_selectors: vec![], interfaces: vec![] }
    }

    fn ext(ip: &str, pool: &str) -> ExternalIp {
        ExternalIp { ip: ip.parse().unwrap(), pool: pool.into(), services: ["default/web".to_owned()].into() }
    }

    /// Owns the inputs a [`Cluster`] borrows; every node live and `default/web` ready everywhere by default.
    struct World {
        nodes: Vec<NodeInfo>,
        ads: Vec<Advertisement>,
        pool_labels: BTreeMap<String, BTreeMap<String, String>>,
        live: BTreeSet<String>,
        endpoints: BTreeMap<String, ServiceEndpoints>,
    }

    impl World {
        fn new(nodes: Vec<NodeInfo>, ads: Vec<Advertisement>) -> World {
            let live = nodes.iter().map(|n| n.name.clone()).collect();
            let ready = ServiceEndpoints { local: false, any_ready: true, nodes: BTreeSet::new() };
            World {
                nodes,
                ads,
                pool_labels: BTreeMap::new(),
                live,
                endpoints: [("default/web".to_owned(), ready)].into(),
            }
        }

        fn cluster(&self) -> Cluster<'_> {
            Cluster {
                nodes: &self.nodes,
                advertisements: &self.ads,
                pool_labels: &self.pool_labels,
                live: &self.live,
                endpoints: &self.endpoints,
            }
        }
    }

    #[test]
    fn every_node_agrees_on_one_owner() {
        let world = World::new(vec![node("node-1", &[]), node("node-2", &[]), node("node-3", &[])], vec![all_pools()]);
        let ips: Vec<ExternalIp> = (0..50).map(|i| ext(&format!("198.51.100.{i}"), "p")).collect();
        let views: Vec<_> = world.nodes.iter().map(|n| place(&n.name, &ips, &world.cluster())).collect();
        for ip in &ips {
            let announcing = views.iter().filter(|v| matches!(v[&ip.ip], Placement::Announce { .. })).count();
            assert_eq!(announcing, 1, "{} announced by {announcing} nodes", ip.ip);
        }
    }

    #[test]
    fn dead_and_excluded_nodes_are_skipped() {
        let mut world = World::new(
            vec![node("node-1", &[]), node("node-2", &[(EXCLUDE_LABEL, "")]), node("node-3", &[])],
            vec![all_pools()],
        );
        world.live.remove("node-1");
        let ips = [ext("198.51.100.1", "p"), ext("198.51.100.2", "p")];
        let placed = place("node-3", &ips, &world.cluster());
        assert!(placed.values().all(|p| matches!(p, Placement::Announce { .. })));
    }

    #[test]
    fn a_cordoned_node_hands_its_ips_over() {
        let ips: Vec<ExternalIp> = (1..=20).map(|i| ext(&format!("198.51.100.{i}"), "p")).collect();
        let mut world = World::new(vec![node("node-1", &[]), node("node-2", &[])], vec![all_pools()]);
        let before = place("node-1", &ips, &world.cluster());
        assert!(before.values().any(|p| matches!(p, Placement::Announce { .. })), "node-1 owns none of 20 IPs");
        world.nodes[0].unschedulable = true;
        let after = place("node-1", &ips, &world.cluster());
        assert!(after.values().all(|p| !matches!(p, Placement::Announce { .. })), "a cordoned node announces");
        let on_node_2 = place("node-2", &ips, &world.cluster());
        assert!(on_node_2.values().all(|p| matches!(p, Placement::Announce { .. })));
    }

    #[test]
    fn pools_without_advertisement_are_not_announced() {
        let only_a = Advertisement { pools: ["a".to_owned()].into(), ..all_pools() };
        let world = World::new(vec![node("node-1", &[])], vec![only_a]);
        let placed = place("node-1", &[ext("198.51.100.1", "b")], &world.cluster());
        assert_eq!(placed.values().next(), Some(&Placement::NotAdvertised));
        let world = World::new(vec![node("node-1", &[])], vec![]);
        let placed = place("node-1", &[ext("198.51.100.1", "b")], &world.cluster());
        assert_eq!(placed.values().next(), Some(&Placement::NotAdvertised));
    }

    #[test]
    fn node_selectors_limit_the_candidates() {
        let edge_only = Advertisement {
            node_selectors: vec![Selector {
                match_labels: [("edge".to_owned(), "yes".to_owned())].into(),
                ..Default::default()
            }],
            interfaces: vec!["eth1".into()],
            ..all_pools()
        };
        let world = World::new(vec![node("node-1", &[("edge", "yes")]), node("node-2", &[])], vec![edge_only]);
        let ips: Vec<ExternalIp> = (0..20).map(|i| ext(&format!("198.51.100.{i}"), "p")).collect();
        let placed = place("node-1", &ips, &world.cluster());
        assert!(placed.values().all(|p| *p == Placement::Announce { interfaces: vec!["eth1".into()] }));
    }

    #[test]
    fn services_without_ready_endpoints_are_not_announced() {
        let mut world = World::new(vec![node("node-1", &[])], vec![all_pools()]);
        world.endpoints.clear();
        let placed = place("node-1", &[ext("198.51.100.1", "p")], &world.cluster());
        assert_eq!(placed.values().next(), Some(&Placement::NoReadyEndpoint));
    }

    #[test]
    fn local_traffic_policy_picks_a_node_with_an_endpoint() {
        let mut world =
            World::new(vec![node("node-1", &[]), node("node-2", &[]), node("node-3", &[])], vec![all_pools()]);
        let local = ServiceEndpoints { local: true, any_ready: true, nodes: ["node-2".to_owned()].into() };
        world.endpoints.insert("default/web".into(), local);
        let ips: Vec<ExternalIp> = (0..20).map(|i| ext(&format!("198.51.100.{i}"), "p")).collect();
        for ip in &ips {
            for n in ["node-1", "node-2", "node-3"] {
                let placed = place(n, std::slice::from_ref(ip), &world.cluster());
                assert_eq!(placed[&ip.ip].owner(n), Some("node-2"), "{} seen from {n}", ip.ip);
            }
        }
    }
}
