//! What the speaker is told at start.

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_forward::dataplane::ForwardOptions;

use crate::l2::InterfacePolicy;
use crate::membership::KeyFiles;

/// How this speaker joins the membership.
#[derive(Debug, Clone)]
pub struct MembershipOptions {
    /// UDP port, the same on every node.
    pub port: u16,
    /// The files holding the shared keys, read at start and followed for rotations.
    pub keys: KeyFiles,
    /// The address peers reach this node on; default: the Node's first InternalIP.
    pub address: Option<IpAddr>,
}

/// Speaker configuration. No `Default`: every caller states what it wants.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    /// This node's name.
    pub node_name: String,
    /// The loadBalancerClass handled.
    pub load_balancer_class: String,
    /// Whether Services without a class are handled.
    pub handle_unclassed: bool,
    /// Interfaces never used.
    pub interfaces: InterfacePolicy,
    /// Membership settings.
    pub membership: MembershipOptions,
    /// Send the gratuitous announcements for every owned IP again at this interval (None: only on taking).
    pub reannounce_every: Option<Duration>,
    /// Forward mode (None: kube-proxy delivers the traffic and the speaker only announces).
    pub forward: Option<ForwardOptions>,
    /// Address conflict detection: how long a new IP is probed before it is first announced, and how often
    /// a conflict found is checked again (None: no probing).
    pub conflict_probe: Option<crate::conflicts::ProbeSettings>,
    /// The namespace this speaker runs in, where its `BGPSession` records go.
    pub namespace: String,
    /// The Secrets (in `namespace`) BGPPeers' `passwordSecret` may name: the only Secrets the speaker reads,
    /// each watched by name.
    pub bgp_password_secrets: Vec<String>,
}
