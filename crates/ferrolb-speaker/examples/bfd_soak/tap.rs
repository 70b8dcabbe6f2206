//! A packet tap in a router namespace: the kernel's timestamp of every BFD control packet on the link, so the
//! benchmark sees when each side really put a packet on the wire, not when a busy process got round to it.
//!
//! Seen from the router's namespace, the node's packets are tapped as they arrive, before the router's input
//! chain drops any: their gaps are ferrolb's transmit timing. The router's packets are tapped as they leave,
//! after its output chain has dropped some: their gaps are the silences ferrolb's side lived through.

use std::fs::File;
use std::io::IoSliceMut;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};

/// The gaps between consecutive packets of one direction.
#[derive(Debug, Clone, Default)]
pub struct Gaps {
    /// Packets seen.
    pub count: u64,
    /// Every gap, in microseconds.
    pub gaps_us: Vec<u32>,
    last_ns: Option<i128>,
}

impl Gaps {
    fn record(&mut self, at_ns: i128) {
        self.count += 1;
        if let Some(last) = self.last_ns {
            self.gaps_us.push(u32::try_from((at_ns - last).max(0) / 1000).unwrap_or(u32::MAX));
        }
        self.last_ns = Some(at_ns);
    }

    /// The gap at quantile `q` (0 to 1) in milliseconds, and 0 without gaps.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.gaps_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0.0;
        }
        // Nearest rank; the index is within the vector by construction.
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        f64::from(sorted[rank - 1]) / 1000.0
    }
}

/// Both directions of one link.
#[derive(Debug, Clone, Default)]
pub struct TapStats {
    /// The node's packets, before the router's loss (ferrolb's transmit timing).
    pub from_node: Gaps,
    /// The router's packets, after the router's loss (the silences ferrolb's side saw).
    pub from_router: Gaps,
}

/// A running tap; stopped on drop.
#[derive(Debug)]
pub struct Tap {
    stats: Arc<Mutex<TapStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tap {
    /// Starts tapping in namespace `netns` (a name under /run/netns), telling directions apart by source.
    pub fn start(netns: &str, node: Ipv4Addr, router: Ipv4Addr) -> Tap {
        let stats = Arc::new(Mutex::new(TapStats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/run/netns/{netns}");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn({
            let stats = stats.clone();
            let stop = stop.clone();
            move || {
                setns(File::open(path).expect("open namespace"), CloneFlags::CLONE_NEWNET).expect("setns");
                let socket = packet_socket().expect("packet socket for the tap");
                ready_tx.send(()).expect("tap ready");
                run(&socket, &stats, &stop, node, router);
            }
        });
        ready_rx.recv().expect("tap thread started");
        Tap { stats, stop, thread: Some(thread) }
    }

    /// Forgets everything seen so far (the measurement starts now).
    pub fn reset(&self) {
        *self.stats.lock().expect("tap stats") = TapStats::default();
    }

    /// What has been seen since the last reset.
    pub fn snapshot(&self) -> TapStats {
        self.stats.lock().expect("tap stats").clone()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A cooked (no link header) packet socket for every protocol: only `ETH_P_ALL` taps see outgoing packets.
fn packet_socket() -> std::io::Result<socket2::Socket> {
    const ETH_P_ALL: u16 = 0x0003;
    let protocol = socket2::Protocol::from(i32::from(ETH_P_ALL.to_be()));
    let socket = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::DGRAM, Some(protocol))?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)?;
    Ok(socket)
}

fn run(socket: &socket2::Socket, stats: &Mutex<TapStats>, stop: &AtomicBool, node: Ipv4Addr, router: Ipv4Addr) {
    let mut buffer = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let Ok(message) = recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
        else {
            continue; // the read timeout: look at the stop flag again
        };
        let mut at_ns = None;
        if let Ok(cmsgs) = message.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    at_ns = Some(i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec()));
                }
            }
        }
        let len = message.bytes;
        let (Some(at_ns), Some(source)) = (at_ns, bfd_source(&buffer[..len.min(buffer.len())])) else {
            continue;
        };
        let mut stats = stats.lock().expect("tap stats");
        if source == node {
            stats.from_node.record(at_ns);
        } else if source == router {
            stats.from_router.record(at_ns);
        }
    }
}

/// The source address of an IPv4 single-hop BFD control packet (UDP to port 3784), or None for anything else.
fn bfd_source(ip: &[u8]) -> Option<Ipv4Addr> {
    let first = *ip.first()?;
    let header = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ip.get(9) != Some(&17) || ip.len() < header + 8 {
        return None;
    }
    let port = u16::from_be_bytes([ip[header + 2], ip[header + 3]]);
    (port == 3784).then(|| Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]))
}
