//! The ARP/NDP announcer: answers requests for owned IPs on raw packet sockets and sends gratuitous ARP /
//! unsolicited neighbour advertisements when it takes an IP.
//!
//! One [`responder`](crate::responder) thread per interface in use reads the frames a kernel BPF filter lets
//! through and looks each request up in the shared table of owned IPs; removing an IP from the table stops
//! the answers at once. Every [`Announcer::set`] re-reads the interfaces (the loop calls it on every
//! rtnetlink change): a responder whose interface is gone or was re-created (new index) is stopped or
//! re-opened, one no IP uses any more is stopped, and each owned IPv6 address's solicited-node group is
//! joined on its interfaces ([`crate::multicast`]). The IP is never put on a host interface, so the kernel
//! neither answers for it nor serves host sockets on it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferrolb_packet::{GratuitousForm, Mac, gratuitous_arp, neighbor_advertisement};
use pnet_datalink::NetworkInterface;
use tracing::{info, warn};

use crate::metrics::{Metrics, ProtocolLabels};
use crate::multicast::Memberships;
use crate::responder::{Responder, Sender};

/// Delays of the repeated announcements after taking an IP: spread over more than a second so Linux
/// neighbours inside their `locktime` (1 s) accept at least one.
const ANNOUNCE_AT: [Duration; 3] = [Duration::ZERO, Duration::from_millis(500), Duration::from_millis(1100)];

/// `IFF_NOARP`: the interface does not resolve addresses (tunnels, some virtual devices).
const IFF_NOARP: u32 = 0x80;

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

/// Failures to open the announcer's sockets; each has a static [`Error::label`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The raw packet socket could not be opened or bound.
    #[error("cannot open a packet socket: {0}")]
    PacketSocket(#[source] std::io::Error),
    /// The kernel refused the BPF filter.
    #[error("cannot attach the BPF filter: {0}")]
    Filter(#[source] std::io::Error),
    /// pnet gave something other than an Ethernet channel.
    #[error("interface {0} is not Ethernet")]
    NotEthernet(String),
    /// The responder thread could not be spawned.
    #[error("cannot start the responder thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The rtnetlink socket could not be opened or subscribed.
    #[error("cannot subscribe to rtnetlink: {0}")]
    Netlink(#[source] std::io::Error),
}

impl Error {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::PacketSocket(_) => "packet_socket",
            Error::Filter(_) => "filter",
            Error::NotEthernet(_) => "not_ethernet",
            Error::Thread(_) => "thread",
            Error::Netlink(_) => "netlink",
        }
    }
}

/// An IP announced on an interface (by name).
pub(crate) type Key = (IpAddr, String);

/// The owned (IP, interface) pairs, shared with the responder threads.
pub(crate) type Owned = Arc<RwLock<HashMap<Key, ()>>>;

/// An eligible interface as the choice sees it.
#[derive(Debug, Clone)]
struct Link {
    iface: NetworkInterface,
    /// Enslaved to a bond or bridge (`IFLA_MASTER`): the master carries its traffic.
    member: bool,
}

impl Link {
    /// Whether automatic choice may use it: not a bond/bridge member, and it resolves addresses.
    fn automatic(&self) -> bool {
        !self.member && self.iface.flags & IFF_NOARP == 0
    }
}

fn read_links(policy: &InterfacePolicy) -> Vec<Link> {
    pnet_datalink::interfaces()
        .into_iter()
        .filter(|i| policy.eligible(i))
        .map(|iface| Link { member: Path::new("/sys/class/net").join(&iface.name).join("master").exists(), iface })
        .collect()
}

/// The interfaces `ip` is announced on: those named in `explicit` if any; else, among interfaces open to
/// automatic choice, those on the IP's subnet, or all of them when none is.
fn choose<'a>(ip: IpAddr, explicit: &[String], links: &'a [Link]) -> Vec<&'a Link> {
    if !explicit.is_empty() {
        return links.iter().filter(|l| explicit.contains(&l.iface.name)).collect();
    }
    let automatic: Vec<&Link> = links.iter().filter(|l| l.automatic()).collect();
    let on_subnet: Vec<&Link> =
        automatic.iter().copied().filter(|l| l.iface.ips.iter().any(|net| net.contains(ip))).collect();
    if on_subnet.is_empty() { automatic } else { on_subnet }
}

/// Announces IPs; see the module doc.
pub struct Announcer {
    policy: InterfacePolicy,
    owned: Owned,
    responders: HashMap<String, Responder>,
    multicast: Memberships,
    metrics: Metrics,
}

impl Announcer {
    /// An announcer with nothing to announce.
    pub fn new(policy: InterfacePolicy, metrics: Metrics) -> Announcer {
        Announcer {
            policy,
            owned: Arc::default(),
            responders: HashMap::new(),
            multicast: Memberships::default(),
            metrics,
        }
    }

    /// Makes `wanted` (IP to explicit interfaces; empty means automatic) the set of announced IPs.
    /// Returns the interfaces each IP is announced on.
    pub fn set(&mut self, wanted: &BTreeMap<IpAddr, Vec<String>>) -> BTreeMap<IpAddr, Vec<String>> {
        let links = read_links(&self.policy);
        let mut placed: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for (ip, explicit) in wanted {
            let chosen = choose(*ip, explicit, &links);
            if chosen.is_empty() {
                warn!(%ip, "no eligible interface to announce on");
            }
            placed.insert(*ip, chosen.iter().map(|l| l.iface.name.clone()).collect());
        }
        let index: HashMap<&str, u32> = links.iter().map(|l| (l.iface.name.as_str(), l.iface.index)).collect();
        let opened = self.update_responders(&placed, &links);
        for (name, ifindex) in &index {
            self.multicast.relink(name, *ifindex);
        }

        let new: HashMap<Key, ()> =
            placed.iter().flat_map(|(ip, names)| names.iter().map(move |n| ((*ip, n.clone()), ()))).collect();
        let (added, removed): (Vec<Key>, Vec<Key>) = {
            let mut table = self.owned.write().expect("owned table lock");
            let added = new.keys().filter(|k| !table.contains_key(*k)).cloned().collect();
            let removed = table.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
            *table = new;
            (added, removed)
        };
        for (ip, name) in &removed {
            info!(%ip, interface = %name, "stopped announcing");
            if let IpAddr::V6(v6) = ip {
                self.multicast.release(name, *v6);
            }
        }
        for (ip, name) in &added {
            info!(%ip, interface = %name, "announcing");
            if let (IpAddr::V6(v6), Some(ifindex)) = (ip, index.get(name.as_str())) {
                self.multicast.take(name, *ifindex, *v6);
            }
        }
        // Announce what is new, and everything on a responder just (re-)opened: a re-created interface may
        // have a new MAC that neighbours must learn.
        for (ip, names) in &placed {
            for name in names {
                let fresh = opened.contains(name) || added.iter().any(|(a, n)| a == ip && n == name);
                if let (true, Some(r)) = (fresh, self.responders.get(name)) {
                    announce(r.mac, *ip, r.tx.clone(), self.metrics.clone());
                }
            }
        }
        placed
    }

    /// Stops responders whose interface is unused, gone or re-created, and opens the missing ones. Returns
    /// the interfaces whose responder was opened now.
    fn update_responders(&mut self, placed: &BTreeMap<IpAddr, Vec<String>>, links: &[Link]) -> BTreeSet<String> {
        let used: BTreeSet<&String> = placed.values().flatten().collect();
        self.responders.retain(|name, r| {
            let current = links.iter().find(|l| &l.iface.name == name).map(|l| l.iface.index);
            let keep = used.contains(name) && current == Some(r.ifindex);
            if !keep {
                info!(interface = %name, reason = match current {
                    None => "gone",
                    Some(i) if i != r.ifindex => "re-created",
                    Some(_) => "unused",
                }, "stopping the responder");
            }
            keep
        });
        let mut opened = BTreeSet::new();
        for name in used {
            if self.responders.contains_key(name) {
                continue;
            }
            let Some(link) = links.iter().find(|l| &l.iface.name == name) else { continue };
            match Responder::start(&link.iface, self.owned.clone(), self.metrics.clone()) {
                Ok(r) => {
                    info!(interface = %name, ifindex = r.ifindex, "responder started");
                    self.responders.insert(name.clone(), r);
                    opened.insert(name.clone());
                }
                Err(e) => warn!(interface = %name, error = %e, reason = e.label(), "cannot start a responder"),
            }
        }
        opened
    }

    /// Sends the gratuitous announcements again for every owned IP (the optional periodic re-announcement,
    /// for neighbours that dropped or never learnt the entry).
    pub fn reannounce(&self) {
        let owned: Vec<Key> = self.owned.read().expect("owned table lock").keys().cloned().collect();
        for (ip, name) in owned {
            if let Some(r) = self.responders.get(&name) {
                announce(r.mac, ip, r.tx.clone(), self.metrics.clone());
            }
        }
    }

    /// Stops answering for everything and leaves every multicast group (graceful shutdown).
    pub fn clear(&mut self) {
        self.owned.write().expect("owned table lock").clear();
        self.responders.clear();
        self.multicast = Memberships::default();
    }
}

/// Sends the gratuitous announcements for a newly taken IP, spread over a little more than a second.
fn announce(mac: Mac, ip: IpAddr, tx: Sender, metrics: Metrics) {
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

#[cfg(test)]
mod tests;
