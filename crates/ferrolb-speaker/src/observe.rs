//! The speaker's watch edge: the reflector stores it keeps ([`Stores`]), and the conversion of what they hold
//! into the plain inputs of a pass ([`Snapshot`]): which external IPs exist, which nodes, advertisements and
//! endpoints there are, and in forward mode what [`ferrolb_forward::plan`] reads. Below this module nothing
//! reads a Kubernetes object's fields. The BGPPeers' TCP MD5 keys come from the Secrets [`secrets`] reads,
//! each watched by name (the only Secrets the speaker may read).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use kube::Api;
use kube::runtime::reflector::{self, Store, store::WriterDropped};
use kube::runtime::watcher;
use tokio::sync::Notify;
use tracing::warn;

use ferrolb_api::k8s::{EndpointSlice, LabelSelector, Node, ResourceExt, Secret, Service};
use ferrolb_api::{
    AddressConflict, BFDProfile, BFDProfileSpec, BGPAdvertisement, BGPPeer, BGPSession, DEFAULT_BFD_INTERVAL_MS,
    DEFAULT_BFD_MINIMUM_TTL, DEFAULT_BFD_MULTIPLIER, DEFAULT_CONNECT_TIME, DEFAULT_HOLD_TIME, IPAddressPool,
    L2Advertisement, L2Announcement, PROXY_PROTOCOL, endpoint_ready, endpoint_serving_while_terminating,
    handles_service, ingress_ips, local_traffic_policy, parse_duration, recorded_pools, selector_from_k8s, service_key,
    slice_service_key,
};
use ferrolb_bgp::AnyCommunity;
use ferrolb_bgp::bfd::BfdConfig;
use ferrolb_forward::{Protocol, plan};
use ferrolb_runtime::{Tasks, watch_into, watch_into_with};

use crate::bgp::report::ExistingSession;
use crate::bgp::{Bfd, BgpAdvertisement, Peer};
use crate::config::SpeakerConfig;
use crate::conflicts::ConflictRecord;
use crate::desired::{Advertisement, ExternalIp, NodeInfo, Selector};
use crate::endpoints::Observed;
use crate::records::ServiceRef;

mod secrets;

pub(crate) use secrets::PasswordSecrets;

/// The reflector stores the speaker reads, filled by one supervised task.
pub(crate) struct Stores {
    services: Store<Service>,
    nodes: Store<Node>,
    pools: Store<IPAddressPool>,
    advertisements: Store<L2Advertisement>,
    slices: Store<EndpointSlice>,
    records: Store<L2Announcement>,
    bgp_peers: Store<BGPPeer>,
    bgp_advertisements: Store<BGPAdvertisement>,
    bgp_sessions: Store<BGPSession>,
    bfd_profiles: Store<BFDProfile>,
    conflicts: Store<AddressConflict>,
    /// The namespace the speaker runs in.
    namespace: String,
    /// One store per Secret the speaker may read for BGPPeers' `passwordSecret`, by name.
    password_secrets: BTreeMap<String, Store<Secret>>,
}

impl Stores {
    /// Starts every watch as the task `watches` in `tasks`; each change wakes `notify`. `BGPSession`s are
    /// watched in `namespace` only, where this speaker writes them, and so is each Secret of
    /// `password_secrets`, by name (a `metadata.name` field selector, which RBAC by `resourceNames` allows).
    pub(crate) fn start(
        client: &kube::Client,
        namespace: &str,
        password_secrets: &[String],
        notify: &Arc<Notify>,
        tasks: &mut Tasks,
    ) -> Stores {
        let (services, s1) = watch_into(Api::<Service>::all(client.clone()), notify.clone());
        let (nodes, s2) = watch_into(Api::<Node>::all(client.clone()), notify.clone());
        let (pools, s3) = watch_into(Api::<IPAddressPool>::all(client.clone()), notify.clone());
        let (advertisements, s4) = watch_into(Api::<L2Advertisement>::all(client.clone()), notify.clone());
        let (slices, s5) = watch_into(Api::<EndpointSlice>::all(client.clone()), notify.clone());
        let (records, s6) = watch_into(Api::<L2Announcement>::all(client.clone()), notify.clone());
        let (bgp_peers, s7) = watch_into(Api::<BGPPeer>::all(client.clone()), notify.clone());
        let (bgp_advertisements, s8) = watch_into(Api::<BGPAdvertisement>::all(client.clone()), notify.clone());
        let (bgp_sessions, s9) = watch_into(Api::<BGPSession>::namespaced(client.clone(), namespace), notify.clone());
        let (bfd_profiles, s10) = watch_into(Api::<BFDProfile>::all(client.clone()), notify.clone());
        let (conflicts, s11) = watch_into(Api::<AddressConflict>::all(client.clone()), notify.clone());
        let mut secret_streams = Vec::new();
        let mut secret_stores = BTreeMap::new();
        for name in password_secrets {
            let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let api = Api::<Secret>::namespaced(client.clone(), namespace);
            let (store, stream) = watch_into_with(api, by_name, notify.clone());
            secret_stores.insert(name.clone(), store);
            secret_streams.push(stream.boxed());
        }
        tasks.spawn("watches", async move {
            tokio::join!(
                s1.collect::<()>(),
                s2.collect::<()>(),
                s3.collect::<()>(),
                s4.collect::<()>(),
                s5.collect::<()>(),
                s6.collect::<()>(),
                s7.collect::<()>(),
                s8.collect::<()>(),
                s9.collect::<()>(),
                s10.collect::<()>(),
                s11.collect::<()>(),
                futures::stream::select_all(secret_streams).collect::<()>()
            );
        });
        Stores {
            services,
            nodes,
            pools,
            advertisements,
            slices,
            records,
            bgp_peers,
            bgp_advertisements,
            bgp_sessions,
            bfd_profiles,
            conflicts,
            namespace: namespace.to_owned(),
            password_secrets: secret_stores,
        }
    }

    /// Waits until every store holds its first full list.
    pub(crate) async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        tokio::try_join!(
            self.services.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.pools.wait_until_ready(),
            self.advertisements.wait_until_ready(),
            self.slices.wait_until_ready(),
            self.records.wait_until_ready(),
            self.bgp_peers.wait_until_ready(),
            self.bgp_advertisements.wait_until_ready(),
            self.bgp_sessions.wait_until_ready(),
            self.bfd_profiles.wait_until_ready(),
            self.conflicts.wait_until_ready(),
            futures::future::try_join_all(self.password_secrets.values().map(Store::wait_until_ready))
        )
        .map(|_| ())
    }

    /// The first InternalIP of Node `name`, where its speaker listens for membership datagrams.
    pub(crate) fn node_address(&self, name: &str) -> Option<IpAddr> {
        self.nodes.get(&reflector::ObjectRef::new(name)).and_then(|n| node_address(&n))
    }

    /// Everything a pass reads, converted.
    pub(crate) fn snapshot(&self, config: &SpeakerConfig) -> Snapshot {
        let services = self.services.state();
        let handled: Vec<&Arc<Service>> = services
            .iter()
            .filter(|s| handles_service(s, &config.load_balancer_class, config.handle_unclassed))
            .collect();
        let slices = self.slices.state();
        let nodes = self.nodes.state();
        let port = config.membership.port;
        let forwarding = config.forward.is_some().then(|| Forwarding {
            services: handled.iter().filter_map(|s| forward_service(s)).collect(),
            slices: slices.iter().filter_map(|s| forward_slice(s)).collect(),
        });
        Snapshot {
            ips: external_ips(&handled),
            nodes: nodes.iter().map(|n| node_info(n)).collect(),
            advertisements: self.advertisements.state().iter().filter_map(|a| advertisement(a)).collect(),
            pool_labels: self
                .pools
                .state()
                .iter()
                .map(|p| (p.name_any(), p.labels().clone().into_iter().collect()))
                .collect(),
            endpoints: observed_endpoints(&handled, &slices),
            peers: nodes.iter().filter_map(|n| Some((n.name_any(), SocketAddr::new(node_address(n)?, port)))).collect(),
            services: services.iter().map(|s| (service_key(s), service_ref(s))).collect(),
            records: self.records.state(),
            own_addresses: nodes
                .iter()
                .find(|n| n.name_any() == config.node_name)
                .map(|n| internal_addresses(n))
                .unwrap_or_default(),
            forwarding,
            bgp_peers: {
                let profiles: BTreeMap<String, Bfd> =
                    self.bfd_profiles.state().iter().map(|p| (p.name_any(), bfd_profile(&p.spec))).collect();
                let secrets = PasswordSecrets::new(
                    &self.namespace,
                    self.password_secrets
                        .iter()
                        .map(|(name, store)| (name.clone(), store.state().into_iter().next()))
                        .collect(),
                );
                self.bgp_peers.state().iter().filter_map(|p| bgp_peer(p, &profiles, &secrets)).collect()
            },
            bgp_advertisements: self.bgp_advertisements.state().iter().filter_map(|a| bgp_advertisement(a)).collect(),
            bgp_sessions: self.bgp_sessions.state().iter().map(|s| existing_session(s)).collect(),
            conflicts: self.conflicts.state().iter().filter_map(|c| conflict_record(c)).collect(),
        }
    }
}

/// An `AddressConflict` as the conflict tracker reads it; `None` when its IP does not parse.
fn conflict_record(conflict: &AddressConflict) -> Option<ConflictRecord> {
    Some(ConflictRecord {
        ip: conflict.spec.ip.parse().ok()?,
        node: conflict.spec.node.clone(),
        interface: conflict.spec.interface.clone(),
        resource_version: conflict.resource_version(),
    })
}

/// What forward mode reads, converted.
#[derive(Debug, Default)]
pub(crate) struct Forwarding {
    /// The handled Services.
    pub(crate) services: Vec<plan::Service>,
    /// Every EndpointSlice of an address family.
    pub(crate) slices: Vec<plan::Slice>,
}

/// The cluster as one pass reads it.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Every external IP in the status of a handled Service.
    pub(crate) ips: Vec<ExternalIp>,
    /// Every Node.
    pub(crate) nodes: Vec<NodeInfo>,
    /// Every valid L2Advertisement.
    pub(crate) advertisements: Vec<Advertisement>,
    /// Pool labels by pool name.
    pub(crate) pool_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Per handled Service: its traffic policy and the nodes with a ready endpoint.
    pub(crate) endpoints: BTreeMap<String, Observed>,
    /// Every Node's membership address.
    pub(crate) peers: BTreeMap<String, SocketAddr>,
    /// Every Service by `namespace/name`.
    pub(crate) services: BTreeMap<String, ServiceRef>,
    /// Every L2Announcement.
    pub(crate) records: Vec<Arc<L2Announcement>>,
    /// This node's InternalIPs.
    pub(crate) own_addresses: Vec<IpAddr>,
    /// Forward mode's inputs (None in kube-proxy mode).
    pub(crate) forwarding: Option<Forwarding>,
    /// Every valid BGPPeer.
    pub(crate) bgp_peers: Vec<Peer>,
    /// Every valid BGPAdvertisement.
    pub(crate) bgp_advertisements: Vec<BgpAdvertisement>,
    /// The `BGPSession` records in this speaker's namespace.
    pub(crate) bgp_sessions: Vec<ExistingSession>,
    /// Every `AddressConflict`.
    pub(crate) conflicts: Vec<ConflictRecord>,
}

fn service_ref(svc: &Service) -> ServiceRef {
    ServiceRef { namespace: svc.namespace().unwrap_or_default(), name: svc.name_any(), uid: svc.uid() }
}

/// Every external IP in Service status, with its pool and the Services sharing it.
pub(crate) fn external_ips(handled: &[&Arc<Service>]) -> Vec<ExternalIp> {
    let mut by_ip: BTreeMap<IpAddr, ExternalIp> = BTreeMap::new();
    for svc in handled {
        let pools = recorded_pools(svc).unwrap_or_default();
        for (i, ip) in ingress_ips(svc).into_iter().enumerate() {
            let pool = pools.get(i).or(pools.first()).map(|p| (*p).to_owned()).unwrap_or_default();
            by_ip
                .entry(ip)
                .or_insert_with(|| ExternalIp { ip, pool, services: BTreeSet::new() })
                .services
                .insert(service_key(svc));
        }
    }
    by_ip.into_values().collect()
}

/// Per handled Service: its traffic policy and the nodes with a ready endpoint.
pub(crate) fn observed_endpoints(
    handled: &[&Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> BTreeMap<String, Observed> {
    let mut observed: BTreeMap<String, Observed> = handled
        .iter()
        .map(|svc| (service_key(svc), Observed { local: local_traffic_policy(svc), ..Default::default() }))
        .collect();
    for slice in slices {
        let Some(entry) = slice_service_key(slice).and_then(|key| observed.get_mut(&key)) else { continue };
        for ep in slice.endpoints.iter().flatten().filter(|e| endpoint_ready(e)) {
            entry.any_ready = true;
            if let Some(node) = &ep.node_name {
                entry.ready_nodes.insert(node.clone());
            }
        }
    }
    observed
}

/// What placement needs of a Node.
pub(crate) fn node_info(node: &Node) -> NodeInfo {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    let is_true = |kind: &str| conditions.into_iter().flatten().any(|c| c.type_ == kind && c.status == "True");
    let is_not_true = |kind: &str| conditions.into_iter().flatten().any(|c| c.type_ == kind && c.status != "True");
    NodeInfo {
        name: node.name_any(),
        labels: node.labels().clone().into_iter().collect(),
        network_unavailable: is_true("NetworkUnavailable"),
        unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
        not_ready: is_not_true("Ready"),
    }
}

/// Every InternalIP of `node` (both families on a dual-stack node).
pub(crate) fn internal_addresses(node: &Node) -> Vec<IpAddr> {
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    addresses.into_iter().flatten().filter(|a| a.type_ == "InternalIP").filter_map(|a| a.address.parse().ok()).collect()
}

/// A node's first InternalIP: where its speaker listens for membership datagrams.
pub(crate) fn node_address(node: &Node) -> Option<IpAddr> {
    internal_addresses(node).into_iter().next()
}

fn selectors(list: &[LabelSelector]) -> Result<Vec<Selector>, ferrolb_api::SelectorError> {
    list.iter().map(selector_from_k8s).collect()
}

/// An L2Advertisement as placement reads it; `None` (and a warning) when a selector is invalid.
pub(crate) fn advertisement(ad: &L2Advertisement) -> Option<Advertisement> {
    let convert = |list: &[LabelSelector]| selectors(list);
    match (convert(&ad.spec.ip_address_pool_selectors), convert(&ad.spec.node_selectors)) {
        (Ok(pool_selectors), Ok(node_selectors)) => Some(Advertisement {
            pools: ad.spec.ip_address_pools.iter().cloned().collect(),
            pool_selectors,
            node_selectors,
            interfaces: ad.spec.interfaces.clone(),
        }),
        (Err(e), _) | (_, Err(e)) => {
            warn!(l2advertisement = %ad.name_any(), error = %e, "ignoring an L2Advertisement with an invalid selector");
            None
        }
    }
}

/// A BFDProfile's timers, defaults filled in.
pub(crate) fn bfd_profile(spec: &BFDProfileSpec) -> Bfd {
    let ms = |v: Option<u32>| Duration::from_millis(u64::from(v.unwrap_or(DEFAULT_BFD_INTERVAL_MS)));
    Bfd::Profile(
        BfdConfig {
            desired_min_tx: ms(spec.transmit_interval),
            required_min_rx: ms(spec.receive_interval),
            detect_mult: spec.detect_multiplier.unwrap_or(DEFAULT_BFD_MULTIPLIER),
            passive: spec.passive_mode.unwrap_or(false),
        },
        spec.minimum_ttl.unwrap_or(DEFAULT_BFD_MINIMUM_TTL),
    )
}

/// A BGPPeer as the speaker reads it, its BFD profile looked up in `profiles` and its TCP MD5 key in
/// `secrets`; `None` (and a warning) for one the API server should have refused.
pub(crate) fn bgp_peer(peer: &BGPPeer, profiles: &BTreeMap<String, Bfd>, secrets: &PasswordSecrets) -> Option<Peer> {
    let name = peer.name_any();
    let spec = &peer.spec;
    let parsed = (|| -> Result<Peer, String> {
        let duration = |field: &str, value: Option<&str>, default: &str| {
            parse_duration(value.unwrap_or(default)).map_err(|e| format!("{field}: {e}"))
        };
        let address =
            |field: &str, text: &str| text.parse().map_err(|_| format!("{field} {text:?} is not an IP address"));
        Ok(Peer {
            name: name.clone(),
            my_asn: spec.my_asn,
            peer_asn: spec.peer_asn,
            address: address("peerAddress", &spec.peer_address)?,
            port: spec.peer_port,
            source: spec.source_address.as_deref().map(|s| address("sourceAddress", s)).transpose()?,
            router_id: spec
                .router_id
                .as_deref()
                .map(|r| r.parse().map_err(|_| format!("routerID {r:?} is not an IPv4 address")))
                .transpose()?,
            hold_time: duration("holdTime", spec.hold_time.as_deref(), DEFAULT_HOLD_TIME)?,
            keepalive: spec.keepalive_time.as_deref().map(|k| duration("keepaliveTime", Some(k), "")).transpose()?,
            connect_retry: duration("connectTime", spec.connect_time.as_deref(), DEFAULT_CONNECT_TIME)?,
            node_selectors: selectors(&spec.node_selectors).map_err(|e| e.to_string())?,
            multihop: spec.ebgp_multi_hop,
            bfd: spec
                .bfd_profile
                .as_ref()
                .map(|name| profiles.get(name).cloned().unwrap_or_else(|| Bfd::Missing(name.clone()))),
            password: spec.password_secret.as_ref().map(|reference| secrets.password(reference)),
        })
    })();
    match parsed {
        Ok(peer) => Some(peer),
        Err(why) => {
            warn!(bgppeer = %name, error = %why, "ignoring an invalid BGPPeer");
            None
        }
    }
}

/// A BGPAdvertisement as the speaker reads it; `None` (and a warning) for an invalid one.
pub(crate) fn bgp_advertisement(ad: &BGPAdvertisement) -> Option<BgpAdvertisement> {
    let name = ad.name_any();
    let spec = &ad.spec;
    let parsed = (|| -> Result<BgpAdvertisement, String> {
        Ok(BgpAdvertisement {
            name: name.clone(),
            scope: Advertisement {
                pools: spec.ip_address_pools.iter().cloned().collect(),
                pool_selectors: selectors(&spec.ip_address_pool_selectors).map_err(|e| e.to_string())?,
                node_selectors: selectors(&spec.node_selectors).map_err(|e| e.to_string())?,
                interfaces: Vec::new(),
            },
            peers: spec.peers.iter().cloned().collect(),
            aggregation_v4: spec.aggregation_length.unwrap_or(32),
            aggregation_v6: spec.aggregation_length_v6.unwrap_or(128),
            local_pref: spec.local_pref,
            communities: spec
                .communities
                .iter()
                .map(|c| c.parse::<AnyCommunity>().map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
        })
    })();
    match parsed {
        Ok(ad) => Some(ad),
        Err(why) => {
            warn!(bgpadvertisement = %name, error = %why, "ignoring an invalid BGPAdvertisement");
            None
        }
    }
}

fn existing_session(session: &BGPSession) -> ExistingSession {
    ExistingSession {
        name: session.name_any(),
        spec: session.spec.clone(),
        status: session.status.clone(),
        resource_version: session.resource_version(),
    }
}

/// A handled Service as forward mode reads it.
pub(crate) fn forward_service(svc: &Service) -> Option<plan::Service> {
    let spec = svc.spec.as_ref()?;
    // The API server validates the ranges; one that does not parse is dropped rather than widening access
    // (`restricted` still says the Service is restricted).
    let ranges = spec.load_balancer_source_ranges.as_deref().unwrap_or_default();
    Some(plan::Service {
        key: service_key(svc),
        ingress: ingress_ips(svc),
        ports: spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(plan::ServicePort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: Protocol::from_kubernetes(p.protocol.as_deref()),
                    port: u16::try_from(p.port).ok()?,
                })
            })
            .collect(),
        local: local_traffic_policy(svc),
        proxy_protocol: svc.annotations().get(PROXY_PROTOCOL).is_some_and(|v| v.trim().eq_ignore_ascii_case("v2")),
        source_ranges: ranges.iter().filter_map(|r| r.trim().parse::<IpNet>().ok()).collect(),
        restricted: !ranges.is_empty(),
    })
}

/// An EndpointSlice as forward mode reads it; `None` for FQDN slices and slices of no Service.
pub(crate) fn forward_slice(slice: &EndpointSlice) -> Option<plan::Slice> {
    let family = match slice.address_type.as_str() {
        "IPv4" => plan::Family::V4,
        "IPv6" => plan::Family::V6,
        _ => return None,
    };
    Some(plan::Slice {
        service: slice_service_key(slice)?,
        family,
        ports: slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(plan::SlicePort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: Protocol::from_kubernetes(p.protocol.as_deref()),
                    port: u16::try_from(p.port?).ok()?,
                })
            })
            .collect(),
        endpoints: slice
            .endpoints
            .iter()
            .flatten()
            .filter_map(|e| {
                Some(plan::Endpoint {
                    address: e.addresses.first()?.parse().ok()?,
                    node: e.node_name.clone(),
                    ready: endpoint_ready(e),
                    serving_while_terminating: endpoint_serving_while_terminating(e),
                })
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests;
