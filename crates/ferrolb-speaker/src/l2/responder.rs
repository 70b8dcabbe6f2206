//! One responder per interface: a thread reading a filtered raw packet socket that answers ARP requests and
//! neighbour solicitations for the addresses it owns on that interface, and reports every claim another MAC
//! makes on an address it watches (owned, or yielded in a split membership) to the speaker's loop.
//!
//! The socket is created here (socket2) with the [`super::bpf`] program attached before it is bound, then
//! handed to `pnet_datalink`, which binds it to the interface and owns it from then on. The kernel thus
//! wakes the thread only for ARP and neighbour discovery; [`ferrolb_packet::parse`] still validates every
//! frame, and looking the target up in the responder's own address set allocates nothing. A gratuitous
//! request (sender = target) is a claim, not a question, and gets no reply. Claims go to the loop over a
//! bounded channel that never blocks this thread: a flood of them loses the excess, not the answers.
//! Dropping the [`Responder`] empties the sets (no answer is sent from then on) and stops its thread within
//! one read timeout.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use ferrolb_packet::{Mac, ParseError, Request, arp_reply, claim, neighbor_advertisement, parse};
use pnet_datalink::{Channel, DataLinkSender, NetworkInterface};
use socket2::{Domain, SockFilter, Socket, Type};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::bpf;
use super::error::Error;
use super::links::Link;
use crate::metrics::{Metrics, ProtocolLabels, ReasonLabels};

/// How long a read blocks before the thread checks whether it must stop.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// The sending half shared by the responder thread and the gratuitous announcements.
pub(crate) type Sender = Arc<Mutex<Box<dyn DataLinkSender>>>;

/// A set of addresses shared between a responder's thread and the announcer.
pub(super) type Addresses = Arc<RwLock<HashSet<IpAddr>>>;

/// A claim another MAC made on a watched address, as heard on one interface: the loop checks who signed it.
#[derive(Debug, Clone)]
pub struct HeardFrame {
    /// The address claimed.
    pub ip: IpAddr,
    /// The MAC claiming it.
    pub mac: Mac,
    /// The interface it was heard on.
    pub interface: String,
    /// The whole frame, signature included.
    pub frame: Vec<u8>,
}

/// Where responders report claims.
pub type ClaimSender = mpsc::Sender<HeardFrame>;

/// A running responder; its thread stops when this is dropped.
pub(crate) struct Responder {
    /// The interface index the socket is bound to: a re-created interface gets a new one.
    pub(crate) ifindex: u32,
    /// The interface's MAC, the source of every frame sent.
    pub(crate) mac: Mac,
    /// Sends frames on the interface.
    pub(crate) tx: Sender,
    /// The addresses answered for.
    pub(super) addresses: Addresses,
    /// The addresses whose claims by other MACs are reported: those answered for, and those yielded.
    watched: Addresses,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.addresses.write().unwrap_or_else(PoisonError::into_inner).clear();
        self.watched.write().unwrap_or_else(PoisonError::into_inner).clear();
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Responder {
    /// Opens the filtered socket on `link` and starts the thread, answering for nothing yet; claims on
    /// watched addresses go to `claims`.
    pub(crate) fn start(link: &Link, metrics: Metrics, claims: ClaimSender) -> Result<Responder, Error> {
        let iface = interface(link);
        let Channel::Ethernet(tx, mut rx) = open_channel(&iface, &bpf::claims(), READ_TIMEOUT)? else {
            return Err(Error::NotEthernet(link.name.clone()));
        };
        let mac = link.mac;
        let tx: Sender = Arc::new(Mutex::new(tx));
        let stop = Arc::new(AtomicBool::new(false));
        let (addresses, watched) = (Addresses::default(), Addresses::default());
        let (name, thread_tx, thread_stop, owned) = (link.name.clone(), tx.clone(), stop.clone(), addresses.clone());
        let thread_watched = watched.clone();
        let thread = std::thread::Builder::new()
            .name(format!("respond-{name}"))
            .spawn(move || {
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
                    metrics.frames_read.inc();
                    if let Some(heard) = claimed(frame, mac, &thread_watched, &name)
                        && claims.try_send(heard).is_err()
                    {
                        metrics.claims_dropped.inc();
                    }
                    let Some(reply) = answer(frame, mac, &owned, &metrics) else { continue };
                    if let Some(Err(e)) = thread_tx.lock().unwrap_or_else(PoisonError::into_inner).send_to(&reply, None)
                    {
                        warn!(interface = %name, error = %e, "sending a reply failed");
                    }
                }
                debug!(interface = %name, "responder stopped");
            })
            .map_err(Error::Thread)?;
        Ok(Responder { ifindex: link.index, mac, tx, addresses, watched, stop, thread })
    }

    /// Answers for exactly `addresses` from now on, and reports claims on them and on `yielded`.
    pub(crate) fn answer_for(&self, addresses: HashSet<IpAddr>, yielded: &BTreeSet<IpAddr>) {
        let watched: HashSet<IpAddr> = addresses.iter().chain(yielded).copied().collect();
        *self.addresses.write().unwrap_or_else(PoisonError::into_inner) = addresses;
        *self.watched.write().unwrap_or_else(PoisonError::into_inner) = watched;
    }

    /// Whether the thread ended without being told to (it panicked): the interface is no longer answered.
    pub(crate) fn died(&self) -> bool {
        self.thread.is_finished() && !self.stop.load(Ordering::Relaxed)
    }
}

/// The `pnet_datalink` view of `link`, which is all `pnet_datalink::channel` needs to bind a socket to it.
pub(super) fn interface(link: &Link) -> NetworkInterface {
    let [a, b, c, d, e, f] = link.mac.0;
    NetworkInterface {
        name: link.name.clone(),
        description: String::new(),
        index: link.index,
        mac: Some(pnet_datalink::MacAddr(a, b, c, d, e, f)),
        ips: Vec::new(),
        flags: 0,
    }
}

/// A raw packet socket on `iface` that passes only what `filter` accepts, reads blocking at most
/// `read_timeout`.
pub(super) fn open_channel(
    iface: &NetworkInterface,
    filter: &[bpf::Instruction],
    read_timeout: Duration,
) -> Result<Channel, Error> {
    // Protocol 0: the socket hears nothing until pnet binds it to the interface with ETH_P_ALL, and by then
    // the filter is attached, so no unfiltered frame (from any interface) is ever queued on it.
    let socket = Socket::new(Domain::PACKET, Type::RAW, None).map_err(Error::PacketSocket)?;
    let program: Vec<SockFilter> = filter.iter().map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k)).collect();
    socket.attach_filter(&program).map_err(Error::Filter)?;
    let config = pnet_datalink::Config {
        read_timeout: Some(read_timeout),
        promiscuous: false,
        // pnet takes the descriptor over: it binds it to the interface and closes it (also on failure).
        socket_fd: Some(socket.into_raw_fd()),
        ..Default::default()
    };
    pnet_datalink::channel(iface, config).map_err(Error::PacketSocket)
}

/// The claim `frame` makes on a `watched` address, if another MAC makes it (our own frames come back on the
/// socket too) and it is not a probe (probes are questions, answered below).
fn claimed(frame: &[u8], mac: Mac, watched: &Addresses, interface: &str) -> Option<HeardFrame> {
    let found = claim(frame).filter(|c| !c.probe && c.mac != mac)?;
    if frame.get(6..12) == Some(&mac.0[..])
        || !watched.read().unwrap_or_else(PoisonError::into_inner).contains(&found.ip)
    {
        return None;
    }
    Some(HeardFrame { ip: found.ip, mac: found.mac, interface: interface.to_owned(), frame: frame.to_vec() })
}

/// The reply to `frame`, if it asks for one of the `owned` addresses.
fn answer(frame: &[u8], mac: Mac, owned: &Addresses, metrics: &Metrics) -> Option<Vec<u8>> {
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
    let table = owned.read().unwrap_or_else(PoisonError::into_inner);
    let ours = |ip: IpAddr| table.contains(&ip);
    let reply = match request {
        Request::Arp { frame_source, sender_mac, sender_ip, target_ip } => {
            // A gratuitous request (sender = target) announces the address; it is a claim, not a question.
            if frame_source == mac || sender_ip == target_ip || !ours(IpAddr::V4(target_ip)) {
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
