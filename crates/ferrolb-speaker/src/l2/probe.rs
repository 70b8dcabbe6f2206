//! Asking the LAN whether anyone has an address: three ARP probes (RFC 5227) or duplicate address detection
//! solicitations (RFC 4862) spread over a short window, on a raw packet socket of its own that hears only
//! ARP and neighbour discovery ([`super::bpf::claims`]), listening for any other machine claiming the
//! address. The window is far shorter than RFC 5227's seconds (a host on a LAN answers in well under a
//! millisecond, and a new Service should not wait long for its address to work); one answer is enough.
//!
//! Blocking: the caller runs it on a blocking thread.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_packet::{Mac, arp_probe, claim, dad_solicitation};
use pnet_datalink::Channel;

use super::bpf;
use super::error::Error;
use super::links::Link;
use super::responder::{interface, open_channel};

/// How many probes go out across the window.
const PROBES: u32 = 3;

/// How long one read blocks, so the window's end and the next probe are kept to within this.
const READ_TIMEOUT: Duration = Duration::from_millis(10);

/// Probes for `ip` on `link` for `window`; the first other machine that claims it, if any.
pub fn probe(link: &Link, ip: IpAddr, window: Duration) -> Result<Option<Mac>, Error> {
    let Channel::Ethernet(mut tx, mut rx) = open_channel(&interface(link), &bpf::claims(), READ_TIMEOUT)? else {
        return Err(Error::NotEthernet(link.name.clone()));
    };
    let frame = match ip {
        IpAddr::V4(v4) => arp_probe(link.mac, v4),
        IpAddr::V6(v6) => dad_solicitation(link.mac, v6),
    };
    let start = Instant::now();
    let mut sent = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= window {
            return Ok(None);
        }
        if sent < PROBES && elapsed >= window * sent / PROBES {
            if let Some(Err(e)) = tx.send_to(&frame, None) {
                return Err(Error::PacketSocket(e));
            }
            sent += 1;
        }
        match rx.next() {
            Ok(frame) => {
                // Our own probes come back on the socket too: only another MAC counts.
                if let Some(found) = claim(frame).filter(|c| c.ip == ip && c.mac != link.mac) {
                    return Ok(Some(found.mac));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(Error::PacketSocket(e)),
        }
    }
}
