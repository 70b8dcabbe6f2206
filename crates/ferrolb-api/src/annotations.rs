//! Annotation keys ferrolb reads on Services (its own and MetalLB's, so MetalLB users switch without edits)
//! and the one it writes.

/// Names the pool a Service wants its address from.
pub const ADDRESS_POOL: &str = "ferrolb.io/address-pool";
/// Comma-separated addresses a Service asks for (at most one per family).
pub const LOAD_BALANCER_IPS: &str = "ferrolb.io/loadBalancerIPs";
/// The sharing key: Services with equal keys may share an address.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";
/// In forward mode, `v2` sends the Service's backends a PROXY protocol v2 header with the client's address
/// (those ports then go through the speaker's userspace relay, which can write it).
pub const PROXY_PROTOCOL: &str = "ferrolb.io/proxy-protocol";
/// Written by the controller: the pool(s) the Service's addresses came from.
pub const ALLOCATED_FROM_POOL: &str = "ferrolb.io/ip-allocated-from-pool";

/// Keys accepted for the pool name, in order of precedence.
pub const ADDRESS_POOL_KEYS: [&str; 3] = [ADDRESS_POOL, "metallb.io/address-pool", "metallb.universe.tf/address-pool"];
/// Keys accepted for requested addresses, in order of precedence.
pub const LOAD_BALANCER_IPS_KEYS: [&str; 3] =
    [LOAD_BALANCER_IPS, "metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"];
/// Keys accepted for the sharing key, in order of precedence.
pub const ALLOW_SHARED_IP_KEYS: [&str; 3] =
    [ALLOW_SHARED_IP, "metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"];
/// The finalizer that holds back deletion of a pool whose addresses are in use.
pub const POOL_FINALIZER: &str = "ferrolb.io/pool-protection";
/// Kubernetes' finalizer for a Service whose load balancer must be cleaned up before the Service goes (the
/// one cloud providers set). The controller sets it on every Service it gave an address to and removes it
/// once the address is released: the Service is deleted, changed type, or holds no address any more.
pub const LB_CLEANUP_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
