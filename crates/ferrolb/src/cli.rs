//! Command-line flags of every subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// ferrolb: LoadBalancer Services for bare-metal Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "ferrolb", version, about)]
pub struct Cli {
    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Allocate external IPs to LoadBalancer Services (one active replica, Lease-based leader election).
    Controller(ControllerArgs),
    /// Print every CRD as YAML (or write them to a directory).
    Crds(CrdsArgs),
    /// Convert MetalLB IPAddressPool and L2Advertisement YAML to ferrolb's (stdout) and list what cannot be
    /// converted (stderr; exit status 2).
    MigrateFromMetallb(MigrateArgs),
    /// Remove ferrolb's finalizers from every Service and IPAddressPool, so they can be deleted once ferrolb is
    /// gone (after `helm uninstall`). Run it only when no controller runs: a running one
    /// puts them back.
    ReleaseFinalizers(ClusterArgs),
    /// Show pools with usage, every Service's external IPs with the node announcing each, and problems.
    Status(ClusterArgs),
    /// Announce this node's share of the external IPs with ARP/NDP (runs on every node, host network).
    Speaker(SpeakerArgs),
}

/// Flags of `ferrolb speaker`.
#[derive(Debug, Args)]
pub struct SpeakerArgs {
    /// Kubeconfig file; default: in-cluster config, then `KUBECONFIG`, then `~/.kube/config`.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// This node's name (the Node object).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    #[arg(long, default_value = "0.0.0.0:7473", env = "FERROLB_METRICS_ADDRESS")]
    pub metrics_address: SocketAddr,
    /// The loadBalancerClass handled.
    #[arg(long, default_value = ferrolb_api::DEFAULT_LOAD_BALANCER_CLASS)]
    pub load_balancer_class: String,
    /// Leave Services without a loadBalancerClass alone.
    #[arg(long)]
    pub ignore_unclassed: bool,
    /// Interface name prefixes never announced on (comma separated; a trailing * is allowed).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "docker*,veth*,cni*,flannel*,cali*,cilium*,kube-ipvs*,cbr*,lxc*,tunl*,vxlan*,weave*"
    )]
    pub exclude_interfaces: Vec<String>,
    /// File holding the membership key shared by all speakers (mounted from a Secret; at least 16 bytes).
    #[arg(long, env = "FERROLB_MEMBERSHIP_KEY_FILE")]
    pub membership_key_file: PathBuf,
    /// File holding the key used before the last rotation, still accepted (a missing or empty file means
    /// none). Both files are read again every 2 s, so a key rotated in the Secret takes effect without a
    /// restart.
    #[arg(long, env = "FERROLB_MEMBERSHIP_PREVIOUS_KEY_FILE")]
    pub membership_previous_key_file: Option<PathBuf>,
    /// UDP port of the membership protocol, the same on every node (MetalLB uses 7946; this default differs
    /// so both can run during a migration).
    #[arg(long, default_value_t = ferrolb_speaker::membership::DEFAULT_PORT, env = "FERROLB_MEMBERSHIP_PORT",
          value_parser = parse_port)]
    pub membership_port: u16,
    /// Re-send the gratuitous ARP / unsolicited NA for every owned IP at this interval, e.g. 30s (a bare
    /// number is seconds; 0: only when taking an IP).
    #[arg(long, default_value = "0", env = "FERROLB_REANNOUNCE_INTERVAL", value_parser = crate::duration::parse)]
    pub reannounce_interval: Duration,
    /// Before first announcing a new external IP, probe for it this long (ARP probes, IPv6 duplicate address
    /// detection) and announce nothing if another host answers: an address conflict (0: no probing).
    #[arg(long, default_value = "200ms", env = "FERROLB_CONFLICT_PROBE_TIME", value_parser = crate::duration::parse_probe)]
    pub conflict_probe_time: Duration,
    /// How often the node that found an address conflict checks whether it is gone (then the address may be
    /// handed out again).
    #[arg(long, default_value = "60s", env = "FERROLB_CONFLICT_RECHECK_INTERVAL",
          value_parser = crate::duration::parse_positive)]
    pub conflict_recheck_interval: Duration,
    /// The address other speakers reach this one on; default: the Node's first InternalIP.
    #[arg(long, env = "FERROLB_MEMBERSHIP_ADDRESS")]
    pub membership_address: Option<std::net::IpAddr>,
    /// Who delivers traffic for the external IPs (must match the controller's --mode).
    #[arg(long, value_enum, default_value = "kube-proxy", env = "FERROLB_MODE")]
    pub mode: Mode,
    /// In forward mode, how traffic is delivered.
    #[arg(long, value_enum, default_value = "auto", env = "FERROLB_FORWARD_PATH")]
    pub forward_path: ForwardPathArg,
    /// The namespace the speaker runs in; its BGPSession records are written there.
    #[arg(long, default_value = "ferrolb-system", env = "POD_NAMESPACE")]
    pub namespace: String,
    /// Secrets in the speaker's namespace that BGPPeers' passwordSecret may name (comma separated): the only
    /// Secrets the speaker reads, each watched by name (the chart grants exactly these).
    #[arg(long, value_delimiter = ',', env = "FERROLB_BGP_PASSWORD_SECRETS")]
    pub bgp_password_secrets: Vec<String>,
}

/// Who delivers traffic for the external IPs; the controller and every speaker must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// kube-proxy delivers it (`ipMode: VIP`); the speakers only announce.
    KubeProxy,
    /// The owning speaker delivers it itself (`ipMode: Proxy`), so kube-proxy leaves the IPs alone.
    Forward,
}

/// How a speaker in forward mode delivers traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardPathArg {
    /// nftables when it works on this node, else userspace.
    Auto,
    /// nftables DNAT to the endpoints (fastest; keeps the client address with externalTrafficPolicy Local).
    Kernel,
    /// A userspace relay to the endpoints (portable; optional PROXY protocol v2).
    Userspace,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags, shared by every subcommand.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text", env = "FERROLB_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `ferrolb=debug,kube=info`).
    #[arg(long, global = true, default_value = "info", env = "FERROLB_LOG")]
    pub log_level: String,
}

/// Flags of `ferrolb crds`.
#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Flags of `ferrolb migrate-from-metallb`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// MetalLB YAML files (multi-document streams); `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

/// Flags of the commands an operator runs against a cluster, `ferrolb status` and `ferrolb
/// release-finalizers`: where the cluster is and which Services ferrolb handles there.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file; default: in-cluster config, then `KUBECONFIG`, then `~/.kube/config`.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The loadBalancerClass ferrolb handles.
    #[arg(long, default_value = ferrolb_api::DEFAULT_LOAD_BALANCER_CLASS)]
    pub load_balancer_class: String,
    /// ferrolb was started with --ignore-unclassed: leave Services without a class out.
    #[arg(long)]
    pub ignore_unclassed: bool,
}

/// Flags of `ferrolb controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Kubeconfig file; default: in-cluster config, then `KUBECONFIG`, then `~/.kube/config`.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    #[arg(long, default_value = "0.0.0.0:7472", env = "FERROLB_METRICS_ADDRESS")]
    pub metrics_address: SocketAddr,
    /// The loadBalancerClass handled.
    #[arg(long, default_value = ferrolb_api::DEFAULT_LOAD_BALANCER_CLASS)]
    pub load_balancer_class: String,
    /// Leave Services without a loadBalancerClass alone (by default they are handled).
    #[arg(long)]
    pub ignore_unclassed: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "ferrolb-system", env = "POD_NAMESPACE")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ferrolb-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease; default: the host name plus the process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a Lease is valid without renewal, in whole seconds; a new leader takes over after at most
    /// this long.
    #[arg(long, default_value = "15s", value_parser = crate::duration::parse_lease)]
    pub lease_duration: Duration,
    /// Who delivers traffic for the external IPs: sets `ipMode` (VIP or Proxy) on every address.
    #[arg(long, value_enum, default_value = "kube-proxy", env = "FERROLB_MODE")]
    pub mode: Mode,
}

/// A UDP or TCP port every peer must know: 0 (any free port) would be a different one on every node.
fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) => Err("port 0 would pick a random port, which the other speakers cannot know; give 1-65535".to_owned()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("{text:?} is not a port number (1-65535)")),
    }
}
