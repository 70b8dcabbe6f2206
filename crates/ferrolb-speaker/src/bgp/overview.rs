//! Which nodes advertise each external IP over BGP, computed from the cluster's objects with the speakers'
//! own rules, for `ferrolb status` (which reads everything once and has no speaker state). A node counts as
//! live when one of its `BGPSession` records says Established; endpoints are taken as the API reports them
//! (without the speakers' settling time for new local endpoints).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::k8s::{EndpointSlice, Node, ResourceExt, Service};
use ferrolb_api::{BGPAdvertisement, BGPPeer, BGPSession, IPAddressPool, handles_service};

use super::placement::{BgpConfig, advertisers, covered};
use crate::desired::{Cluster, ServiceEndpoints};
use crate::observe;

/// The objects `ferrolb status` read.
#[derive(Debug, Clone, Copy)]
pub struct Objects<'a> {
    /// Every Service.
    pub services: &'a [Service],
    /// Every Node.
    pub nodes: &'a [Node],
    /// Every EndpointSlice.
    pub slices: &'a [EndpointSlice],
    /// Every IPAddressPool.
    pub pools: &'a [IPAddressPool],
    /// Every BGPPeer.
    pub peers: &'a [BGPPeer],
    /// Every BGPAdvertisement.
    pub advertisements: &'a [BGPAdvertisement],
    /// Every BGPSession.
    pub sessions: &'a [BGPSession],
    /// The loadBalancerClass handled.
    pub class: &'a str,
    /// Whether Services without a class are handled.
    pub unclassed: bool,
}

/// For every external IP a BGPAdvertisement covers, the live nodes advertising it (empty: none does).
pub fn bgp_advertisers(objects: &Objects<'_>) -> BTreeMap<IpAddr, BTreeSet<String>> {
    let services: Vec<Arc<Service>> = objects
        .services
        .iter()
        .filter(|s| handles_service(s, objects.class, objects.unclassed))
        .cloned()
        .map(Arc::new)
        .collect();
    let handled: Vec<&Arc<Service>> = services.iter().collect();
    let slices: Vec<Arc<EndpointSlice>> = objects.slices.iter().cloned().map(Arc::new).collect();
    let endpoints: BTreeMap<String, ServiceEndpoints> = observe::observed_endpoints(&handled, &slices)
        .into_iter()
        .map(|(k, o)| (k, ServiceEndpoints { local: o.local, any_ready: o.any_ready, nodes: o.ready_nodes }))
        .collect();
    let nodes: Vec<_> = objects.nodes.iter().map(observe::node_info).collect();
    let live: BTreeSet<String> = objects
        .sessions
        .iter()
        .filter(|s| s.status.as_ref().is_some_and(|st| st.state == "Established"))
        .map(|s| s.spec.node.clone())
        .collect();
    let pool_labels = objects.pools.iter().map(|p| (p.name_any(), p.labels().clone().into_iter().collect())).collect();
    // BFD profiles and TCP MD5 keys do not change who advertises, so neither is read.
    let secrets = observe::PasswordSecrets::default();
    let peers: Vec<_> = objects.peers.iter().filter_map(|p| observe::bgp_peer(p, &BTreeMap::new(), &secrets)).collect();
    let ads: Vec<_> = objects.advertisements.iter().filter_map(observe::bgp_advertisement).collect();
    let cluster =
        Cluster { nodes: &nodes, advertisements: &[], pool_labels: &pool_labels, live: &live, endpoints: &endpoints };
    let bgp = BgpConfig { peers: &peers, advertisements: &ads };
    observe::external_ips(&handled)
        .iter()
        .filter(|ext| covered(ext, &cluster, &bgp))
        .map(|ext| (ext.ip, advertisers(ext, &cluster, &bgp)))
        .collect()
}
