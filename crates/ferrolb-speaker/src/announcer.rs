//! The ARP/NDP announcer: answers requests for owned IPs on raw packet sockets and sends gratuitous ARP /
//! unsolicited neighbour advertisements when it takes an IP.
//!
//! One responder thread per interface reads frames (blocking reads with a short timeout so it can stop) and
//! looks each request up in the shared table of owned IPs; removing an IP from the table stops the answers at
//! once. The IP is never put on a host interface, so the kernel neither answers for it nor serves host
//! sockets on it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ferrolb_packet::{
    GratuitousForm, Mac, ParseError, Request, arp_reply, gratuitous_arp, neighbor_advertisement, parse,
};
use pnet_datalink::{Channel, DataLinkSender, NetworkInterface};
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, ProtocolLabels, ReasonLabels};

/// Delays of the repeated announcements after taking an IP: spread over more than a second so Linux
/// neighbours inside their `locktime` (1 s) accept at least one.
const ANNOUNCE_AT: [Duration; 3] = [Duration::ZERO, Duration::from_millis(500), Duration::from_millis(1100)];

/// Which interfaces may announce.
#[derive(Debug, Clone)]
pub struct InterfacePolicy {
    /// Name prefixes never used (`docker`, `veth`, `cni`, ...); a trailing `*` is allowed and ignored.
    pub excluded_prefixes: Vec<String>,
}

impl InterfacePolicy {
    fn eligible(&self, iface: &NetworkInterface) -> bool {
        iface.is_up()
            && !iface.is_loopback()
            && iface.mac.is_some_and(|m| m != pnet_datalink::MacAddr::zero())
            && !self.excluded_prefixes.iter().any(|p| iface.name.starts_with(p.trim_end_matches('*')))
    }
}

type Owned = Arc<RwLock<HashMap<(IpAddr, String), ()>>>;

struct Responder {
    mac: Mac,
    tx: Arc<Mutex<Box<dyn DataLinkSender>>>,
    stop: Arc<AtomicBool>,
}

/// Announces IPs; see the module doc.
pub struct Announcer {
    policy: InterfacePolicy,
    owned: Owned,
    responders: HashMap<String, Responder>,
    metrics: Metrics,
}

impl Announcer {
    /// An announcer with nothing to announce.
    pub fn new(policy: InterfacePolicy, metrics: Metrics) -> Announcer {
        Announcer { policy, owned: Arc::default(), responders: HashMap::new(), metrics }
    }

    /// Makes `wanted` (IP to explicit interfaces; empty means automatic) the set of announced IPs.
    /// Returns the interfaces each IP is announced on.
    pub fn set(&mut self, wanted: &BTreeMap<IpAddr, Vec<String>>) -> BTreeMap<IpAddr, Vec<String>> {
        let interfaces: Vec<NetworkInterface> =
            pnet_datalink::interfaces().into_iter().filter(|i| self.policy.eligible(i)).collect();
        let mut placed: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for (ip, explicit) in wanted {
            let chosen: Vec<&NetworkInterface> = if !explicit.is_empty() {
                interfaces.iter().filter(|i| explicit.contains(&i.name)).collect()
            } else {
                let on_subnet: Vec<&NetworkInterface> =
                    interfaces.iter().filter(|i| i.ips.iter().any(|net| net.contains(*ip))).collect();
                if on_subnet.is_empty() { interfaces.iter().collect() } else { on_subnet }
            };
            if chosen.is_empty() {
                warn!(%ip, "no eligible interface to announce on");
            }
            placed.insert(*ip, chosen.iter().map(|i| i.name.clone()).collect());
        }
        for name in placed.values().flatten() {
            if !self.responders.contains_key(name)
                && let Some(iface) = interfaces.iter().find(|i| &i.name == name)
            {
                match self.start_responder(iface) {
                    Ok(r) => {
                        self.responders.insert(name.clone(), r);
                    }
                    Err(e) => warn!(interface = %name, error = %e, "cannot open a packet socket"),
                }
            }
        }
        let new: HashMap<(IpAddr, String), ()> =
            placed.iter().flat_map(|(ip, names)| names.iter().map(move |n| ((*ip, n.clone()), ()))).collect();
        let added: Vec<(IpAddr, String)> = {
            let mut table = self.owned.write().expect("owned table lock");
            let added = new.keys().filter(|k| !table.contains_key(*k)).cloned().collect();
            for key in table.keys().filter(|k| !new.contains_key(*k)) {
                info!(ip = %key.0, interface = %key.1, "stopped announcing");
            }
            *table = new;
            added
        };
        for (ip, name) in added {
            if let Some(r) = self.responders.get(&name) {
                info!(%ip, interface = %name, "announcing");
                announce(r.mac, ip, r.tx.clone(), self.metrics.clone());
            }
        }
        placed
    }

    /// Stops answering for everything (graceful shutdown).
    pub fn clear(&mut self) {
        self.owned.write().expect("owned table lock").clear();
        for r in self.responders.values() {
            r.stop.store(true, Ordering::Relaxed);
        }
    }

    fn start_responder(&self, iface: &NetworkInterface) -> std::io::Result<Responder> {
        let config = pnet_datalink::Config {
            read_timeout: Some(Duration::from_millis(200)),
            promiscuous: false,
            ..Default::default()
        };
        let (tx, mut rx) = match pnet_datalink::channel(iface, config)? {
            Channel::Ethernet(tx, rx) => (tx, rx),
            _ => return Err(std::io::Error::other("not an Ethernet channel")),
        };
        let mac = Mac(iface.mac.map(|m| [m.0, m.1, m.2, m.3, m.4, m.5]).unwrap_or_default());
        let tx = Arc::new(Mutex::new(tx));
        let stop = Arc::new(AtomicBool::new(false));
        let (owned, name, thread_tx, thread_stop) = (self.owned.clone(), iface.name.clone(), tx.clone(), stop.clone());
        let metrics = self.metrics.clone();
        std::thread::Builder::new().name(format!("respond-{name}")).spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                let frame = match rx.next() {
                    Ok(frame) => frame,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(e) => {
                        warn!(interface = %name, error = %e, "reading frames failed");
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                let Some(reply) = answer(frame, mac, &name, &owned, &metrics) else { continue };
                if let Some(Err(e)) = thread_tx.lock().expect("sender lock").send_to(&reply, None) {
                    warn!(interface = %name, error = %e, "sending a reply failed");
                }
            }
        })?;
        Ok(Responder { mac, tx, stop })
    }
}

/// The reply to `frame`, if it asks for an IP we own on `interface`.
fn answer(frame: &[u8], mac: Mac, interface: &str, owned: &Owned, metrics: &Metrics) -> Option<Vec<u8>> {
    let request = match parse(frame) {
        Ok(request) => request,
        // Ordinary traffic (IP packets, ARP replies) is not a drop; malformed requests are.
        Err(ParseError::Unrelated | ParseError::NotArpRequest) => return None,
        Err(e) => {
            metrics.parse_drops.get_or_create(&ReasonLabels { reason: e.label() }).inc();
            return None;
        }
    };
    let protocol = ProtocolLabels { protocol: if matches!(request, Request::Arp { .. }) { "arp" } else { "ndp" } };
    metrics.requests_seen.get_or_create(&protocol).inc();
    let table = owned.read().ok()?;
    let ours = |ip: IpAddr| table.contains_key(&(ip, interface.to_owned()));
    let reply = match request {
        Request::Arp { frame_source, sender_mac, sender_ip, target_ip } => {
            if frame_source == mac || !ours(IpAddr::V4(target_ip)) {
                return None;
            }
            debug!(ip = %target_ip, from = %sender_ip, "answering ARP");
            Some(arp_reply(mac, target_ip, sender_mac, sender_ip))
        }
        Request::NeighborSolicit { frame_source, source_ip, target, source_link_layer, .. } => {
            if frame_source == mac || !ours(IpAddr::V6(target)) {
                return None;
            }
            debug!(ip = %target, from = %source_ip, "answering neighbour solicitation");
            // Unicast NUD probes may omit the source link-layer option: answer the frame's source.
            let to_mac = source_link_layer.unwrap_or(frame_source);
            Some(neighbor_advertisement(mac, target, Some((to_mac, source_ip))))
        }
    };
    metrics.requests_answered.get_or_create(&protocol).inc();
    reply
}

/// Sends the gratuitous announcements for a newly taken IP, spread over a little more than a second.
fn announce(mac: Mac, ip: IpAddr, tx: Arc<Mutex<Box<dyn DataLinkSender>>>, metrics: Metrics) {
    let protocol = ProtocolLabels { protocol: if ip.is_ipv4() { "arp" } else { "ndp" } };
    let frames: Vec<Vec<u8>> = match ip {
        IpAddr::V4(v4) => {
            vec![gratuitous_arp(mac, v4, GratuitousForm::Request), gratuitous_arp(mac, v4, GratuitousForm::Reply)]
        }
        IpAddr::V6(v6) => vec![neighbor_advertisement(mac, v6, None)],
    };
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for at in ANNOUNCE_AT {
            tokio::time::sleep_until(start + at).await;
            let mut sender = tx.lock().expect("sender lock");
            for frame in &frames {
                match sender.send_to(frame, None) {
                    Some(Err(e)) => warn!(%ip, error = %e, "sending an announcement failed"),
                    _ => {
                        metrics.gratuitous_sent.get_or_create(&protocol).inc();
                    }
                }
            }
        }
    });
}
