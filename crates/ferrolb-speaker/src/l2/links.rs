//! The host's interfaces as layer 2 announcing sees them, and which of them announce an IP.
//!
//! [`read_links`] is the only I/O here: it lists the interfaces the [`InterfacePolicy`] allows, as plain
//! [`Link`]s, at the start of every speaker pass. [`choose`] is pure: the interfaces an L2Advertisement
//! names, else those on the IP's subnet, else every interface open to automatic choice (not a bond or bridge
//! member, and one that resolves addresses).

use std::net::IpAddr;
use std::path::Path;

use ferrolb_packet::Mac;
use ipnet::IpNet;
use pnet_datalink::NetworkInterface;

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

/// An interface that may announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// Its index: a re-created interface gets a new one.
    pub index: u32,
    /// Its MAC, the source of every frame sent on it.
    pub mac: Mac,
    /// The networks of its addresses.
    pub networks: Vec<IpNet>,
    /// Enslaved to a bond or bridge (`IFLA_MASTER`): the master carries its traffic.
    pub member: bool,
    /// It resolves addresses (not `IFF_NOARP`).
    pub arp: bool,
}

impl Link {
    fn from_interface(iface: &NetworkInterface) -> Link {
        let mac = iface.mac.map(|m| Mac([m.0, m.1, m.2, m.3, m.4, m.5])).unwrap_or(Mac([0; 6]));
        Link {
            name: iface.name.clone(),
            index: iface.index,
            mac,
            networks: iface.ips.iter().filter_map(|n| IpNet::new(n.ip(), n.prefix()).ok()).collect(),
            member: Path::new("/sys/class/net").join(&iface.name).join("master").exists(),
            arp: iface.flags & IFF_NOARP == 0,
        }
    }

    /// Whether automatic choice may use it: not a bond/bridge member, and it resolves addresses.
    fn automatic(&self) -> bool {
        !self.member && self.arp
    }
}

/// The interfaces `policy` allows, read from the host now.
pub fn read_links(policy: &InterfacePolicy) -> Vec<Link> {
    pnet_datalink::interfaces().iter().filter(|i| policy.eligible(i)).map(Link::from_interface).collect()
}

/// The interfaces `ip` is announced on: those named in `explicit` if any; else, among interfaces open to
/// automatic choice, those on the IP's subnet, or all of them when none is.
pub fn choose<'a>(ip: IpAddr, explicit: &[String], links: &'a [Link]) -> Vec<&'a Link> {
    if !explicit.is_empty() {
        return links.iter().filter(|l| explicit.contains(&l.name)).collect();
    }
    let automatic: Vec<&Link> = links.iter().filter(|l| l.automatic()).collect();
    let on_subnet: Vec<&Link> =
        automatic.iter().copied().filter(|l| l.networks.iter().any(|net| net.contains(&ip))).collect();
    if on_subnet.is_empty() { automatic } else { on_subnet }
}

#[cfg(test)]
mod tests;
