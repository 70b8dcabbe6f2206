//! The layer 2 announcer: carries out an [`L2Order`] with one [`Responder`] per interface in use, gratuitous
//! announcements for what is new, and solicited-node groups for owned IPv6 addresses. Announcements are
//! signed with the membership key ([`crate::membership::signed_frames`]) once [`L2Announcer::sign_as`] has
//! been called, so other speakers of the cluster can tell them from another host's. It also sends what
//! settling a claim needs ([`crate::split`]): one defence of an owned IP, and probes for a yielded one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::PoisonError;
use std::time::Duration;

use ferrolb_packet::{GratuitousForm, Mac, arp_probe, dad_solicitation, gratuitous_arp, neighbor_advertisement};
use tracing::{info, warn};

use super::links::Link;
use super::multicast::Memberships;
use super::responder::{Addresses, ClaimSender, Responder, Sender};
use crate::announce::Announcer;
use crate::membership::Keyring;
use crate::membership::signed_frames::sign_frame;
use crate::metrics::{Metrics, ProtocolLabels};

/// Delays of the repeated announcements after taking an IP: spread over more than a second so Linux
/// neighbours inside their `locktime` (1 s) accept at least one.
const ANNOUNCE_AT: [Duration; 3] = [Duration::ZERO, Duration::from_millis(500), Duration::from_millis(1100)];

/// What one pass asks of layer 2: the interfaces this node may announce on (read at the start of the pass),
/// and each IP this node announces with the names of the interfaces it goes out on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Order {
    /// The interfaces read for this pass.
    pub links: Vec<Link>,
    /// Each announced IP and its interfaces (empty: no eligible interface, so it is not answered).
    pub ips: BTreeMap<IpAddr, Vec<String>>,
    /// IPs placed here but yielded to another speaker (a split membership), with their interfaces: not
    /// answered, but their claims are still heard there.
    pub yielded: BTreeMap<IpAddr, Vec<String>>,
}

/// Answers ARP/NDP for the IPs of the last [`L2Order`]; see the module doc.
pub struct L2Announcer {
    responders: HashMap<String, Responder>,
    /// The IPs announced on each interface, as last ordered.
    announced: BTreeMap<String, BTreeSet<IpAddr>>,
    multicast: Memberships,
    metrics: Metrics,
    /// Who signs the announcements, and with which keys; `None`: unsigned.
    signer: Option<Signer>,
    /// Where the responders report claims.
    claims: ClaimSender,
}

/// The node that signs announcements and the keys it signs with.
#[derive(Clone)]
struct Signer {
    node: String,
    ring: Keyring,
}

impl L2Announcer {
    /// An announcer with nothing to announce; its responders report claims on `claims`.
    pub fn new(metrics: Metrics, claims: ClaimSender) -> L2Announcer {
        L2Announcer {
            responders: HashMap::new(),
            announced: BTreeMap::new(),
            multicast: Memberships::default(),
            metrics,
            signer: None,
            claims,
        }
    }

    /// Sends one gratuitous announcement for each of `ips` on every interface it is announced on now: the
    /// defence of an owned IP against another MAC's claim.
    pub fn defend(&self, ips: &[IpAddr]) {
        for ip in ips {
            for (name, announced) in &self.announced {
                let Some(r) = self.responders.get(name).filter(|_| announced.contains(ip)) else { continue };
                let frames = signed(&announcements(r.mac, *ip), self.signer.as_ref());
                let mut sender = r.tx.lock().unwrap_or_else(PoisonError::into_inner);
                for frame in &frames {
                    if let Some(Err(e)) = sender.send_to(frame, None) {
                        warn!(%ip, interface = %name, error = %e, "sending a defence failed");
                    } else {
                        self.metrics.defences_sent.inc();
                    }
                }
            }
        }
    }

    /// Sends one ARP probe (or duplicate address detection solicitation) for each yielded IP on its
    /// interfaces: the speaker it was yielded to answers, which keeps the yield.
    pub fn probe(&self, ips: &BTreeMap<IpAddr, Vec<String>>) {
        for (ip, names) in ips {
            for r in names.iter().filter_map(|n| self.responders.get(n)) {
                let frame = match ip {
                    IpAddr::V4(v4) => arp_probe(r.mac, *v4),
                    IpAddr::V6(v6) => dad_solicitation(r.mac, *v6),
                };
                if let Some(Err(e)) = r.tx.lock().unwrap_or_else(PoisonError::into_inner).send_to(&frame, None) {
                    warn!(%ip, error = %e, "sending a probe for a yielded IP failed");
                }
            }
        }
    }

    /// Signs every announcement from now on as `node`, under the ring's sending key (called each pass, so a
    /// rotated key signs from the next announcement on).
    pub fn sign_as(&mut self, node: &str, ring: &Keyring) {
        if self.signer.as_ref().is_none_or(|s| s.node != node || s.ring != *ring) {
            self.signer = Some(Signer { node: node.to_owned(), ring: ring.clone() });
        }
    }

    /// Stops responders whose interface is unused, gone or re-created, and opens the missing ones. Returns
    /// the interfaces whose responder was opened now.
    fn update_responders(&mut self, used: &BTreeSet<&str>, links: &[Link]) -> BTreeSet<String> {
        self.responders.retain(|name, r| {
            let current = links.iter().find(|l| l.name == *name).map(|l| l.index);
            let keep = used.contains(name.as_str()) && current == Some(r.ifindex);
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
            if self.responders.contains_key(*name) {
                continue;
            }
            let Some(link) = links.iter().find(|l| l.name == *name) else { continue };
            match Responder::start(link, self.metrics.clone(), self.claims.clone()) {
                Ok(r) => {
                    info!(interface = %name, ifindex = r.ifindex, "responder started");
                    self.responders.insert((*name).to_owned(), r);
                    opened.insert((*name).to_owned());
                }
                Err(e) => warn!(interface = %name, error = %e, reason = e.label(), "cannot start a responder"),
            }
        }
        opened
    }
}

impl Announcer for L2Announcer {
    type Order = L2Order;

    /// Answers for exactly the order's IPs on their interfaces from now on; announces what is new, and
    /// everything on a responder just (re-)opened: a re-created interface may have a new MAC that neighbours
    /// must learn.
    fn announce(&mut self, order: &L2Order) {
        let mut wanted: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
        for (ip, names) in &order.ips {
            if names.is_empty() {
                warn!(%ip, "no eligible interface to announce on");
            }
            for name in names {
                wanted.entry(name.clone()).or_default().insert(*ip);
            }
        }
        let mut yielded: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
        for (ip, names) in &order.yielded {
            for name in names {
                yielded.entry(name.as_str()).or_default().insert(*ip);
            }
        }
        let used: BTreeSet<&str> = wanted.keys().map(String::as_str).chain(yielded.keys().copied()).collect();
        let opened = self.update_responders(&used, &order.links);
        for link in &order.links {
            self.multicast.relink(&link.name, link.index);
        }
        let no_yield = BTreeSet::new();
        for (name, responder) in &self.responders {
            let addresses: HashSet<IpAddr> = wanted.get(name).into_iter().flatten().copied().collect();
            responder.answer_for(addresses, yielded.get(name.as_str()).unwrap_or(&no_yield));
        }
        let none = BTreeSet::new();
        for (name, before) in &self.announced {
            for ip in before.difference(wanted.get(name).unwrap_or(&none)) {
                info!(%ip, interface = %name, "stopped announcing");
                if let IpAddr::V6(v6) = ip {
                    self.multicast.release(name, *v6);
                }
            }
        }
        for (name, now) in &wanted {
            let before = self.announced.get(name).unwrap_or(&none);
            let ifindex = order.links.iter().find(|l| l.name == *name).map(|l| l.index);
            let responder = self.responders.get(name);
            for ip in now {
                let added = !before.contains(ip);
                if added {
                    info!(%ip, interface = %name, "announcing");
                    if let (IpAddr::V6(v6), Some(ifindex)) = (ip, ifindex) {
                        self.multicast.take(name, ifindex, *v6);
                    }
                }
                if let (true, Some(r)) = (added || opened.contains(name), responder) {
                    announce(r, *ip, self.signer.as_ref(), self.metrics.clone());
                }
            }
        }
        self.announced = wanted;
    }

    /// Sends the gratuitous announcements again for every announced IP (the optional periodic
    /// re-announcement, for neighbours that dropped or never learnt the entry).
    fn refresh(&mut self) {
        for (name, ips) in &self.announced {
            let Some(r) = self.responders.get(name) else { continue };
            for ip in ips {
                announce(r, *ip, self.signer.as_ref(), self.metrics.clone());
            }
        }
    }

    /// Stops answering for everything and leaves every multicast group (graceful shutdown).
    async fn withdraw_all(&mut self) {
        self.responders.clear();
        self.announced.clear();
        self.multicast = Memberships::default();
    }

    fn failed(&self) -> Option<String> {
        self.responders.iter().find(|(_, r)| r.died()).map(|(name, _)| format!("the responder on {name} stopped"))
    }
}

/// The gratuitous frames that say `ip` is at `mac`: both ARP forms, or an unsolicited NA.
fn announcements(mac: Mac, ip: IpAddr) -> Vec<Vec<u8>> {
    match ip {
        IpAddr::V4(v4) => {
            vec![gratuitous_arp(mac, v4, GratuitousForm::Request), gratuitous_arp(mac, v4, GratuitousForm::Reply)]
        }
        IpAddr::V6(v6) => vec![neighbor_advertisement(mac, v6, None)],
    }
}

/// `frames`, signed when there is a signer.
fn signed(frames: &[Vec<u8>], signer: Option<&Signer>) -> Vec<Vec<u8>> {
    match signer {
        Some(s) => frames.iter().map(|f| sign_frame(&s.ring, &s.node, f)).collect(),
        None => frames.to_vec(),
    }
}

/// Sends the gratuitous announcements for a newly taken IP from responder `r`, spread over a little more
/// than a second, signed when there is a signer. The repeats stop once `r` no longer answers for the IP (it
/// was given up, or yielded), so they never claim an IP this node let go.
fn announce(r: &Responder, ip: IpAddr, signer: Option<&Signer>, metrics: Metrics) {
    let protocol = ProtocolLabels { protocol: if ip.is_ipv4() { "arp" } else { "ndp" } };
    let frames = signed(&announcements(r.mac, ip), signer);
    let (tx, answering): (Sender, Addresses) = (r.tx.clone(), r.addresses.clone());
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for at in ANNOUNCE_AT {
            tokio::time::sleep_until(start + at).await;
            if !answering.read().unwrap_or_else(PoisonError::into_inner).contains(&ip) {
                return;
            }
            let mut sender = tx.lock().unwrap_or_else(PoisonError::into_inner);
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
