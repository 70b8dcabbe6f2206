//! What the controller is told at start.

use std::time::Duration;

/// How traffic for an external IP reaches the Service, which sets `status.loadBalancer.ingress[].ipMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    /// kube-proxy handles the IP (`ipMode: VIP`); the speaker only announces.
    Vip,
    /// The speaker forwards traffic itself (`ipMode: Proxy`), so kube-proxy leaves the IP alone.
    Proxy,
}

impl IpMode {
    /// The value written to `ipMode`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpMode::Vip => "VIP",
            IpMode::Proxy => "Proxy",
        }
    }
}

/// Controller configuration. No `Default`: every caller states what it wants.
#[derive(Debug, Clone)]
pub struct Config {
    /// The loadBalancerClass handled (`ferrolb.io/lb` by default).
    pub load_balancer_class: String,
    /// Whether Services without a loadBalancerClass are handled.
    pub handle_unclassed: bool,
    /// The `ipMode` written into Service status.
    pub ip_mode: IpMode,
    /// Namespace of the leader-election Lease.
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// This replica's identity in the Lease.
    pub identity: String,
    /// How long a Lease is valid without renewal.
    pub lease_duration: Duration,
}
