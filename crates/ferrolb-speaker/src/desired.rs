//! Which IPs this node announces, as a pure function of the cluster state.
//!
//! An IP is announced by the owner among the eligible nodes ([`crate::election::owner`]). A node is eligible
//! for an IP when it is Ready, its NetworkUnavailable condition is not True, it is not labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers`, and some L2Advertisement that covers the IP's
//! pool selects it. Liveness comes from the Node's Ready condition for now (a membership protocol is the next
//! step of the speaker issue).

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
    /// Ready condition is True.
    pub ready: bool,
    /// NetworkUnavailable condition is True.
    pub network_unavailable: bool,
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
    fn covers(&self, pool: &str, pool_labels: Option<&BTreeMap<String, String>>) -> bool {
        let everything = self.pools.is_empty() && self.pool_selectors.is_empty();
        everything
            || self.pools.contains(pool)
            || pool_labels.is_some_and(|labels| self.pool_selectors.iter().any(|s| s.matches(labels)))
    }

    fn selects(&self, node: &NodeInfo) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|s| s.matches(&node.labels))
    }
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
    /// No eligible node: nobody announces it.
    NoEligibleNode,
    /// No L2Advertisement covers its pool.
    NotAdvertised,
}

/// Places every IP.
pub fn place(
    me: &str,
    ips: &[ExternalIp],
    nodes: &[NodeInfo],
    advertisements: &[Advertisement],
    pool_labels: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<IpAddr, Placement> {
    let healthy: Vec<&NodeInfo> =
        nodes.iter().filter(|n| n.ready && !n.network_unavailable && !n.labels.contains_key(EXCLUDE_LABEL)).collect();
    ips.iter()
        .map(|ext| {
            let covering: Vec<&Advertisement> =
                advertisements.iter().filter(|a| a.covers(&ext.pool, pool_labels.get(&ext.pool))).collect();
            if covering.is_empty() {
                return (ext.ip, Placement::NotAdvertised);
            }
            let eligible = healthy.iter().filter(|n| covering.iter().any(|a| a.selects(n))).map(|n| n.name.as_str());
            let placement = match owner(ext.ip, eligible) {
                None => Placement::NoEligibleNode,
                Some(owner) if owner == me => {
                    let me_node = nodes.iter().find(|n| n.name == me);
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

    fn node(name: &str, ready: bool, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ready,
            network_unavailable: false,
        }
    }

    fn all_pools() -> Advertisement {
        Advertisement { pools: BTreeSet::new(), pool_selectors: vec![], node_selectors: vec![], interfaces: vec![] }
    }

    fn ext(ip: &str, pool: &str) -> ExternalIp {
        ExternalIp { ip: ip.parse().unwrap(), pool: pool.into(), services: BTreeSet::new() }
    }

    #[test]
    fn every_node_agrees_on_one_owner() {
        let nodes = vec![node("node-1", true, &[]), node("node-2", true, &[]), node("node-3", true, &[])];
        let ips: Vec<ExternalIp> = (0..50).map(|i| ext(&format!("198.51.100.{i}"), "p")).collect();
        let ads = [all_pools()];
        let views: Vec<_> = nodes.iter().map(|n| place(&n.name, &ips, &nodes, &ads, &BTreeMap::new())).collect();
        for ip in &ips {
            let announcing = views.iter().filter(|v| matches!(v[&ip.ip], Placement::Announce { .. })).count();
            assert_eq!(announcing, 1, "{} announced by {announcing} nodes", ip.ip);
        }
    }

    #[test]
    fn unready_and_excluded_nodes_are_skipped() {
        let nodes =
            vec![node("node-1", false, &[]), node("node-2", true, &[(EXCLUDE_LABEL, "")]), node("node-3", true, &[])];
        let ips = [ext("198.51.100.1", "p"), ext("198.51.100.2", "p")];
        let placed = place("node-3", &ips, &nodes, &[all_pools()], &BTreeMap::new());
        assert!(placed.values().all(|p| matches!(p, Placement::Announce { .. })));
    }

    #[test]
    fn pools_without_advertisement_are_not_announced() {
        let nodes = vec![node("node-1", true, &[])];
        let only_a = Advertisement { pools: ["a".to_owned()].into(), ..all_pools() };
        let placed = place("node-1", &[ext("198.51.100.1", "b")], &nodes, &[only_a], &BTreeMap::new());
        assert_eq!(placed.values().next(), Some(&Placement::NotAdvertised));
        let placed = place("node-1", &[ext("198.51.100.1", "b")], &nodes, &[], &BTreeMap::new());
        assert_eq!(placed.values().next(), Some(&Placement::NotAdvertised));
    }

    #[test]
    fn node_selectors_limit_the_candidates() {
        let nodes = vec![node("node-1", true, &[("edge", "yes")]), node("node-2", true, &[])];
        let edge_only = Advertisement {
            node_selectors: vec![Selector {
                match_labels: [("edge".to_owned(), "yes".to_owned())].into(),
                ..Default::default()
            }],
            interfaces: vec!["eth1".into()],
            ..all_pools()
        };
        let ips: Vec<ExternalIp> = (0..20).map(|i| ext(&format!("198.51.100.{i}"), "p")).collect();
        let placed = place("node-1", &ips, &nodes, &[edge_only], &BTreeMap::new());
        assert!(placed.values().all(|p| *p == Placement::Announce { interfaces: vec!["eth1".into()] }));
    }
}
