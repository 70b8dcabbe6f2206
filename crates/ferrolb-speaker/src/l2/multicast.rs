//! Solicited-node multicast membership: for every owned IPv6 address the interface announcing it must
//! receive the address's solicited-node group (ff02::1:ffXX:XXXX), because real NICs filter multicast and
//! neighbour solicitations go to that group.
//!
//! Membership is held safely through UDPv6 sockets (`IPV6_JOIN_GROUP`): the kernel adds the group's MAC
//! (33:33:ff:XX:XX:XX) to the device's filter while a socket holds it and removes it when the socket leaves or
//! closes. One socket holds only as many groups as its option memory allows (`net.core.optmem_max`: about
//! 2,000 with the default 128 KiB), so an interface gets another socket whenever the last one is full; a
//! node announcing 10,000 IPv6 addresses needs several. Several addresses with the same low 24 bits share a group, so [`Groups`] counts
//! users per (interface, group) and joins on the first, leaves on the last. [`Groups`] is the pure
//! bookkeeping (it returns [`Change`]s); [`Memberships`] applies them to sockets.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;

use ferrolb_packet::solicited_node;
use nix::errno::Errno;
use socket2::{Domain, Socket, Type};
use tracing::{debug, warn};

/// A membership change to apply on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Join `group` on the interface with index `ifindex`.
    Join {
        /// Interface name.
        interface: String,
        /// Interface index the group is joined on.
        ifindex: u32,
        /// The solicited-node group.
        group: Ipv6Addr,
    },
    /// Leave `group` on the interface with index `ifindex`.
    Leave {
        /// Interface name.
        interface: String,
        /// Interface index the group was joined on.
        ifindex: u32,
        /// The solicited-node group.
        group: Ipv6Addr,
    },
    /// Close the interface's socket: it holds no group any more, or its device is gone (re-created
    /// interfaces get a new index and the kernel dropped the old device's groups with it).
    Close {
        /// Interface name.
        interface: String,
    },
}

#[derive(Debug, Default)]
struct InterfaceGroups {
    ifindex: u32,
    users: BTreeMap<Ipv6Addr, usize>,
}

/// Which groups each interface must hold, counted per owned address; pure.
#[derive(Debug, Default)]
pub struct Groups {
    interfaces: BTreeMap<String, InterfaceGroups>,
}

impl Groups {
    /// `ip` is now owned on `interface` (index `ifindex`): joins its group unless another address holds it.
    pub fn take(&mut self, interface: &str, ifindex: u32, ip: Ipv6Addr) -> Vec<Change> {
        let mut changes = self.relink(interface, ifindex);
        let entry = self.interfaces.entry(interface.to_owned()).or_default();
        entry.ifindex = ifindex;
        let group = solicited_node(ip);
        let users = entry.users.entry(group).or_default();
        *users += 1;
        if *users == 1 {
            changes.push(Change::Join { interface: interface.to_owned(), ifindex, group });
        }
        changes
    }

    /// `ip` is no longer owned on `interface`: leaves its group if no other address holds it. Releasing an
    /// address never taken changes nothing.
    pub fn release(&mut self, interface: &str, ip: Ipv6Addr) -> Vec<Change> {
        let group = solicited_node(ip);
        let Some(entry) = self.interfaces.get_mut(interface) else { return Vec::new() };
        let Some(users) = entry.users.get_mut(&group) else { return Vec::new() };
        *users -= 1;
        if *users > 0 {
            return Vec::new();
        }
        entry.users.remove(&group);
        let mut changes = vec![Change::Leave { interface: interface.to_owned(), ifindex: entry.ifindex, group }];
        if entry.users.is_empty() {
            self.interfaces.remove(interface);
            changes.push(Change::Close { interface: interface.to_owned() });
        }
        changes
    }

    /// `interface` now has index `ifindex`. If it changed (the device was removed and created again),
    /// re-joins every group it holds on the new device.
    pub fn relink(&mut self, interface: &str, ifindex: u32) -> Vec<Change> {
        let Some(entry) = self.interfaces.get_mut(interface) else { return Vec::new() };
        if entry.ifindex == ifindex {
            return Vec::new();
        }
        entry.ifindex = ifindex;
        let mut changes = vec![Change::Close { interface: interface.to_owned() }];
        changes.extend(entry.users.keys().map(|group| Change::Join {
            interface: interface.to_owned(),
            ifindex,
            group: *group,
        }));
        changes
    }

    /// The groups held on `interface`.
    #[cfg(test)]
    pub fn held(&self, interface: &str) -> Vec<Ipv6Addr> {
        self.interfaces.get(interface).map(|e| e.users.keys().copied().collect()).unwrap_or_default()
    }
}

/// [`Groups`] applied to UDPv6 sockets: per interface, as many as its groups need.
#[derive(Debug, Default)]
pub struct Memberships {
    groups: Groups,
    sockets: HashMap<String, Vec<Socket>>,
    /// Which of its interface's sockets holds each joined group.
    holder: HashMap<(String, Ipv6Addr), usize>,
}

/// Whether a failed join means "this socket is full" (its option memory is used up), so another socket
/// would take the group.
fn socket_full(e: &std::io::Error) -> bool {
    e.raw_os_error().is_some_and(|code| code == Errno::ENOMEM as i32 || code == Errno::ENOBUFS as i32)
}

impl Memberships {
    /// See [`Groups::take`].
    pub fn take(&mut self, interface: &str, ifindex: u32, ip: Ipv6Addr) {
        let changes = self.groups.take(interface, ifindex, ip);
        self.apply(changes);
    }

    /// See [`Groups::release`].
    pub fn release(&mut self, interface: &str, ip: Ipv6Addr) {
        let changes = self.groups.release(interface, ip);
        self.apply(changes);
    }

    /// See [`Groups::relink`].
    pub fn relink(&mut self, interface: &str, ifindex: u32) {
        let changes = self.groups.relink(interface, ifindex);
        self.apply(changes);
    }

    /// How many sockets hold groups on `interface`.
    #[cfg(test)]
    pub fn sockets(&self, interface: &str) -> usize {
        self.sockets.get(interface).map_or(0, Vec::len)
    }

    fn apply(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Join { interface, ifindex, group } => match self.join(&interface, ifindex, &group) {
                    Ok(index) => {
                        self.holder.insert((interface.clone(), group), index);
                        debug!(%interface, %group, socket = index, "joined the solicited-node group");
                    }
                    Err(e) => warn!(%interface, %group, error = %e, "cannot join the solicited-node group"),
                },
                Change::Leave { interface, ifindex, group } => {
                    let Some(index) = self.holder.remove(&(interface.clone(), group)) else { continue };
                    if let Some(socket) = self.sockets.get(&interface).and_then(|s| s.get(index)) {
                        match socket.leave_multicast_v6(&group, ifindex) {
                            Ok(()) => debug!(%interface, %group, "left the solicited-node group"),
                            // The device may be gone, taking the membership with it.
                            Err(e) => debug!(%interface, %group, error = %e, "leaving the solicited-node group"),
                        }
                    }
                }
                Change::Close { interface } => {
                    self.sockets.remove(&interface);
                    self.holder.retain(|(i, _), _| *i != interface);
                }
            }
        }
    }

    /// Joins `group` on the interface's newest socket, or on a new one when that is full; returns the index
    /// of the socket that holds it. Sockets are never closed until the interface is, so indices stay valid.
    fn join(&mut self, interface: &str, ifindex: u32, group: &Ipv6Addr) -> std::io::Result<usize> {
        let sockets = self.sockets.entry(interface.to_owned()).or_default();
        if let Some(last) = sockets.last() {
            match last.join_multicast_v6(group, ifindex) {
                Ok(()) => return Ok(sockets.len() - 1),
                Err(e) if socket_full(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
        socket.join_multicast_v6(group, ifindex)?;
        sockets.push(socket);
        if sockets.len() > 1 {
            debug!(%interface, sockets = sockets.len(), "another socket for solicited-node groups");
        }
        Ok(sockets.len() - 1)
    }
}

#[cfg(test)]
mod tests;
