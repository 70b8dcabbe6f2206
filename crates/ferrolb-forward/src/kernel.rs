//! The kernel path: one nftables table, `inet ferrolb`, that DNATs traffic for owned `IP:port` straight to the
//! endpoints the Service's NodePort would reach.
//!
//! Netfilter binds one NAT per hook, so a DNAT to `NodeIP:NodePort` in PREROUTING would land on the bare
//! NodePort socket instead of chaining into kube-proxy's rules; ferrolb therefore picks the endpoint itself
//! (from [`super::plan`]) with the same `externalTrafficPolicy` semantics:
//! - `Local`: endpoints on this node only, no source NAT, so the pod sees the client's address;
//! - `Cluster`: any ready endpoint, masqueraded, so replies from other nodes come back through this one.
//!
//! Traffic for an owned IP on any other port is never DNATed, so it reaches the forward hook still addressed to
//! the IP, where it is refused (TCP reset, ICMP port unreachable). It can never reach a host process, because
//! the IP is not a local address.
//!
//! The table is written whole in one `nft -f` transaction (create, delete, recreate), so there is never a
//! moment with a half-written table; it is only touched when the rendered text changes, and removed on a clean
//! shutdown. [`render`] is pure; [`NftTable`] runs `nft`, as kube-proxy's nftables mode does.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::plan::Forward;
use super::program::{Program, RunError};

/// The family and name of ferrolb's table.
pub const TABLE: &str = "inet ferrolb";

/// Priority of the DNAT chains: just before kube-proxy and iptables' `dstnat` (-100). Numeric, because nft
/// accepts the `dstnat` keyword in prerouting only.
const DNAT_PRIORITY: i32 = -110;
/// Priority of the refusing chain: before iptables' `filter` (0), so nothing else can accept the packet.
const FILTER_PRIORITY: i32 = -10;
/// Priority of the masquerading chain: just before `srcnat` (100).
const SNAT_PRIORITY: i32 = 90;

/// Why the table could not be written or removed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` could not be run.
    #[error("cannot run nft: {0}")]
    Spawn(#[source] std::io::Error),
    /// `nft` ran and refused.
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
    /// `nft` did not finish in time.
    #[error("nft did not finish within {0:?}")]
    Timeout(Duration),
}

impl Error {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Spawn(_) => "nft_spawn",
            Error::Refused(_) => "nft_refused",
            Error::Timeout(_) => "nft_timeout",
        }
    }
}

fn elements(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() { String::new() } else { format!("\t\telements = {{ {} }}\n", items.join(", ")) }
}

fn set(out: &mut String, name: &str, kind: &str, items: impl IntoIterator<Item = String>) {
    let _ = write!(out, "\tset {name} {{\n\t\ttype {kind}\n{}\t}}\n", elements(items));
}

fn dnat_target(endpoint: SocketAddr) -> String {
    match endpoint {
        SocketAddr::V4(a) => format!("dnat ip to {}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("dnat ip6 to [{}]:{}", a.ip(), a.port()),
    }
}

/// The whole `nft -f` script that makes ferrolb's table exactly `forwards` (which must all be for IPs this
/// node owns). `owned` lists every owned IP, including those without a forwardable port, so their other
/// traffic is refused too.
pub fn render(owned: &BTreeSet<IpAddr>, forwards: &[Forward]) -> String {
    let mut out = String::new();
    // Creating first makes the delete valid on a fresh node; the three steps are one transaction.
    let _ = write!(out, "table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{\n");
    let mut map4 = Vec::new();
    let mut map6 = Vec::new();
    let mut chains = String::new();
    for (i, f) in forwards.iter().enumerate() {
        if f.endpoints.is_empty() {
            continue;
        }
        let fe = f.frontend;
        let proto = fe.protocol.as_str();
        let key = format!("{} . {proto} . {} : goto svc{i}", fe.ip, fe.port);
        if fe.ip.is_ipv4() {
            map4.push(key)
        } else {
            map6.push(key)
        }
        let policy = if f.local { "Local" } else { "Cluster" };
        let _ = writeln!(chains, "\tchain svc{i} {{");
        let _ = writeln!(chains, "\t\tcomment \"{} {fe} ({policy})\"", f.service);
        if f.restricted {
            let family = if fe.ip.is_ipv4() { "ip" } else { "ip6" };
            if f.source_ranges.is_empty() {
                let _ = writeln!(chains, "\t\tdrop");
            } else {
                let ranges: Vec<String> = f.source_ranges.iter().map(ToString::to_string).collect();
                let _ = writeln!(chains, "\t\t{family} saddr != {{ {} }} drop", ranges.join(", "));
            }
        }
        if let [only] = f.endpoints.as_slice() {
            let _ = writeln!(chains, "\t\tmeta l4proto {proto} {}", dnat_target(*only));
        } else {
            let arms: Vec<String> = (0..f.endpoints.len()).map(|j| format!("{j} : goto svc{i}ep{j}")).collect();
            let _ = writeln!(chains, "\t\tnumgen random mod {} vmap {{ {} }}", f.endpoints.len(), arms.join(", "));
        }
        chains.push_str("\t}\n");
        if f.endpoints.len() > 1 {
            for (j, endpoint) in f.endpoints.iter().enumerate() {
                let _ = writeln!(
                    chains,
                    "\tchain svc{i}ep{j} {{\n\t\tmeta l4proto {proto} {}\n\t}}",
                    dnat_target(*endpoint)
                );
            }
        }
    }
    let (owned4, owned6): (Vec<IpAddr>, Vec<IpAddr>) = owned.iter().partition(|ip| ip.is_ipv4());
    // Masquerade an IP whose Services use Cluster; the allocator never mixes Local and Cluster on one IP.
    let masq: BTreeSet<IpAddr> =
        forwards.iter().filter(|f| !f.local && !f.endpoints.is_empty()).map(|f| f.frontend.ip).collect();
    let (masq4, masq6): (Vec<IpAddr>, Vec<IpAddr>) = masq.iter().partition(|ip| ip.is_ipv4());
    let _ = write!(
        out,
        "\tmap services4 {{\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n{}\t}}\n",
        elements(map4)
    );
    let _ = write!(
        out,
        "\tmap services6 {{\n\t\ttype ipv6_addr . inet_proto . inet_service : verdict\n{}\t}}\n",
        elements(map6)
    );
    set(&mut out, "owned4", "ipv4_addr", owned4.iter().map(ToString::to_string));
    set(&mut out, "owned6", "ipv6_addr", owned6.iter().map(ToString::to_string));
    set(&mut out, "masquerade4", "ipv4_addr", masq4.iter().map(ToString::to_string));
    set(&mut out, "masquerade6", "ipv6_addr", masq6.iter().map(ToString::to_string));
    out.push_str(&chains);
    let dispatch = "\t\tip daddr . meta l4proto . th dport vmap @services4\n\
                    \t\tip6 daddr . meta l4proto . th dport vmap @services6\n";
    let _ = write!(
        out,
        "\tchain prerouting {{\n\t\ttype nat hook prerouting priority {DNAT_PRIORITY}; policy accept;\n{dispatch}\t}}\n"
    );
    // Connections this node opens to its own IPs (host-network pods, probes) take the same way.
    let _ = write!(
        out,
        "\tchain output {{\n\t\ttype nat hook output priority {DNAT_PRIORITY}; policy accept;\n{dispatch}\t}}\n"
    );
    let _ = write!(
        out,
        "\tchain refuse {{\n\t\ttype filter hook forward priority {FILTER_PRIORITY}; policy accept;\n\
         \t\tip daddr @owned4 meta l4proto tcp reject with tcp reset\n\
         \t\tip daddr @owned4 reject with icmpx port-unreachable\n\
         \t\tip6 daddr @owned6 meta l4proto tcp reject with tcp reset\n\
         \t\tip6 daddr @owned6 reject with icmpx port-unreachable\n\t}}\n"
    );
    let _ = write!(
        out,
        "\tchain postrouting {{\n\t\ttype nat hook postrouting priority {SNAT_PRIORITY}; policy accept;\n\
         \t\tct status dnat ct original ip daddr @masquerade4 masquerade\n\
         \t\tct status dnat ct original ip6 daddr @masquerade6 masquerade\n\t}}\n"
    );
    out.push_str("}\n");
    out
}

/// Runs `nft` to write and remove ferrolb's table.
#[derive(Debug, Clone)]
pub struct NftTable {
    nft: Program,
}

impl Default for NftTable {
    fn default() -> Self {
        NftTable::with_command(vec!["nft".into()])
    }
}

impl NftTable {
    /// Runs `command` (e.g. `ip netns exec NS nft`) instead of `nft`.
    pub fn with_command(command: Vec<String>) -> NftTable {
        NftTable { nft: Program::new(command) }
    }

    async fn run(&self, args: &[&str], script: Option<&str>) -> Result<String, Error> {
        let output = self.nft.run(args, script).await.map_err(|e| match e {
            RunError::Spawn(e) => Error::Spawn(e),
            RunError::Timeout(limit) => Error::Timeout(limit),
        })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::Refused(String::from_utf8_lossy(&output.stderr).trim().to_owned()))
        }
    }

    /// Applies a script from [`render`] in one transaction.
    pub async fn apply(&self, script: &str) -> Result<(), Error> {
        self.run(&["-f", "-"], Some(script)).await.map(|_| ())
    }

    /// Whether the table exists (someone may have flushed the ruleset).
    pub async fn present(&self) -> bool {
        self.run(&["list", "table", "inet", "ferrolb"], None).await.is_ok()
    }

    /// Removes the table; absent is fine.
    pub async fn remove(&self) -> Result<(), Error> {
        self.apply(&format!("table {TABLE}\ndelete table {TABLE}\n")).await
    }
}

#[cfg(test)]
mod tests;
