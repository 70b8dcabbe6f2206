//! Forgetting UDP flows whose endpoint went away, on the kernel path.
//!
//! Netfilter keeps the DNAT it chose for a UDP flow in the flow's conntrack entry, and the entry lives as long
//! as the client keeps sending. A client that never pauses (DNS resolver, syslog, game server) would keep
//! sending to an endpoint that is gone, whatever the table says now. kube-proxy deletes such entries when an
//! endpoint is removed; ferrolb does the same for the flows it DNATs: after a new table is in place, entries
//! whose original destination is the frontend and whose reply comes from a removed endpoint are deleted, so
//! the next datagram is DNATed afresh. TCP needs none of this: a connection to a gone endpoint fails and the
//! client reconnects.
//!
//! [`stale_udp_flows`] is pure; [`Conntrack`] runs the `conntrack` program (conntrack-tools) through
//! [`super::program`], as [`super::kernel::NftTable`] runs `nft`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::plan::Forward;
use super::program::{Program, RunError};
use super::{Frontend, Protocol};

/// UDP flows to forget: those to `frontend` whose replies come from `endpoint` (address and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleFlows {
    /// Where the client sent them.
    pub frontend: Frontend,
    /// The endpoint that is no longer behind the frontend.
    pub endpoint: SocketAddr,
}

/// The UDP flows that `before` DNATed and `after` no longer would: for every UDP frontend of `before`, each
/// endpoint that `after` does not list for it (all of them when the frontend is gone).
pub fn stale_udp_flows(before: &[Forward], after: &[Forward]) -> Vec<StaleFlows> {
    let now: BTreeMap<Frontend, BTreeSet<SocketAddr>> =
        after.iter().map(|f| (f.frontend, f.endpoints.iter().copied().collect())).collect();
    let mut stale: BTreeSet<StaleFlows> = BTreeSet::new();
    for f in before.iter().filter(|f| f.frontend.protocol == Protocol::Udp) {
        let kept = now.get(&f.frontend);
        for endpoint in &f.endpoints {
            if !kept.is_some_and(|k| k.contains(endpoint)) {
                stale.insert(StaleFlows { frontend: f.frontend, endpoint: *endpoint });
            }
        }
    }
    stale.into_iter().collect()
}

/// Why entries could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `conntrack` could not be run (not installed?).
    #[error("cannot run conntrack: {0}")]
    Spawn(#[source] std::io::Error),
    /// `conntrack` ran and failed.
    #[error("conntrack failed: {0}")]
    Failed(String),
    /// `conntrack` did not finish in time.
    #[error("conntrack did not finish within {0:?}")]
    Timeout(Duration),
}

impl Error {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Spawn(_) => "conntrack_spawn",
            Error::Failed(_) => "conntrack_failed",
            Error::Timeout(_) => "conntrack_timeout",
        }
    }
}

/// Runs `conntrack -D` for stale flows.
#[derive(Debug, Clone)]
pub struct Conntrack {
    conntrack: Program,
}

impl Default for Conntrack {
    fn default() -> Self {
        Conntrack::with_command(vec!["conntrack".into()])
    }
}

/// The arguments that delete the entries of `flows`.
pub fn delete_arguments(flows: &StaleFlows) -> Vec<String> {
    let family = if flows.frontend.ip.is_ipv4() { "ipv4" } else { "ipv6" };
    [
        "-D",
        "-f",
        family,
        "-p",
        "udp",
        "--orig-dst",
        &flows.frontend.ip.to_string(),
        "--orig-port-dst",
        &flows.frontend.port.to_string(),
        "--reply-src",
        &flows.endpoint.ip().to_string(),
        "--reply-port-src",
        &flows.endpoint.port().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Conntrack {
    /// Runs `command` (e.g. `ip netns exec NS conntrack`) instead of `conntrack`.
    pub fn with_command(command: Vec<String>) -> Conntrack {
        Conntrack { conntrack: Program::new(command) }
    }

    /// Whether the `conntrack` program runs here (checked once at start, so a node without it gets one
    /// warning rather than one per endpoint change).
    pub async fn available(&self) -> bool {
        self.conntrack.run(&["--version"], None).await.is_ok_and(|output| output.status.success())
    }

    /// Deletes the entries of `flows`; none matching is fine. Returns how many were deleted.
    pub async fn forget(&self, flows: &StaleFlows) -> Result<u64, Error> {
        let args = delete_arguments(flows);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self.conntrack.run(&args, None).await.map_err(|e| match e {
            RunError::Spawn(e) => Error::Spawn(e),
            RunError::Timeout(limit) => Error::Timeout(limit),
        })?;
        deleted_count(&String::from_utf8_lossy(&output.stderr), output.status.success()).map_err(Error::Failed)
    }
}

/// How many entries `conntrack -D` says it deleted, from its stderr: "conntrack v1.4.7 (conntrack-tools): 3
/// flow entries have been deleted." (its exit status is 1 when that number is 0). Anything else is a
/// failure, with conntrack's own message.
pub fn deleted_count(stderr: &str, success: bool) -> Result<u64, String> {
    let count = stderr
        .lines()
        .filter_map(|line| line.split_once("): ").map(|(_, rest)| rest))
        .find(|rest| rest.contains("flow entries have been deleted") || rest.contains("flow entry has been deleted"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    match count {
        Some(n) => Ok(n),
        None if success => Ok(0),
        None => Err(stderr.trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(protocol: Protocol, port: u16, endpoints: &[&str]) -> Forward {
        Forward {
            frontend: Frontend { ip: "198.51.100.192".parse().expect("ip"), protocol, port },
            service: "default/web".into(),
            local: false,
            endpoints: endpoints.iter().map(|e| e.parse::<SocketAddr>().expect("endpoint")).collect(),
            proxy_protocol: false,
            source_ranges: Vec::new(),
            restricted: false,
        }
    }

    #[test]
    fn a_removed_udp_endpoint_is_stale_and_a_kept_one_is_not() {
        let before = [forward(Protocol::Udp, 53, &["192.0.2.10:8081", "192.0.2.74:8081"])];
        let after = [forward(Protocol::Udp, 53, &["192.0.2.74:8081", "192.0.2.75:8081"])];
        let stale = stale_udp_flows(&before, &after);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].endpoint, "192.0.2.10:8081".parse::<SocketAddr>().expect("endpoint"));
        assert_eq!(stale[0].frontend.port, 53);
    }

    #[test]
    fn a_frontend_that_is_gone_leaves_all_its_endpoints_stale() {
        let before = [forward(Protocol::Udp, 53, &["192.0.2.10:8081", "192.0.2.74:8081"])];
        assert_eq!(stale_udp_flows(&before, &[]).len(), 2);
    }

    #[test]
    fn tcp_is_never_flushed() {
        let before = [forward(Protocol::Tcp, 80, &["192.0.2.10:8080"])];
        assert!(stale_udp_flows(&before, &[]).is_empty());
    }

    #[test]
    fn a_target_port_change_makes_the_old_port_stale() {
        // The flows still go to the old port, where nothing may listen any more.
        let before = [forward(Protocol::Udp, 53, &["192.0.2.10:8081"])];
        let after = [forward(Protocol::Udp, 53, &["192.0.2.10:9000"])];
        assert_eq!(stale_udp_flows(&before, &after).len(), 1);
    }

    #[test]
    fn conntrack_messages_are_read() {
        let tool = "conntrack v1.4.7 (conntrack-tools)";
        assert_eq!(deleted_count(&format!("{tool}: 3 flow entries have been deleted.\n"), true), Ok(3));
        assert_eq!(deleted_count(&format!("{tool}: 0 flow entries have been deleted.\n"), false), Ok(0));
        let failed = format!("{tool}: Operation failed: such conntrack doesn't exist\n");
        assert_eq!(deleted_count(&failed, false), Err(failed.trim().to_owned()));
        assert!(deleted_count("conntrack: command not found", false).is_err());
    }

    #[test]
    fn the_command_names_family_frontend_and_endpoint() {
        let flows = StaleFlows {
            frontend: Frontend { ip: "2001:db8:100::f000".parse().expect("ip"), protocol: Protocol::Udp, port: 53 },
            endpoint: "[2001:db8:200:1::10]:8081".parse().expect("endpoint"),
        };
        assert_eq!(
            delete_arguments(&flows).join(" "),
            "-D -f ipv6 -p udp --orig-dst 2001:db8:100::f000 --orig-port-dst 53 --reply-src 2001:db8:200:1::10 \
             --reply-port-src 8081"
        );
    }
}
