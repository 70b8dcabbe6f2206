//! Test-only builders for pools and requests, shared by unit tests, property tests and benchmarks.

use std::net::IpAddr;

use crate::address::{AddressRange, Family};
use crate::pool::{Pool, PoolConfig, PoolName, ServiceAllocation};
use crate::request::{FamilyPolicy, PortKey, Protocol, Request, ServiceKey, SharingKey};

/// A pool builder: `pool("a", &["198.51.100.0/30"]).manual().build()`.
#[derive(Debug, Clone)]
pub struct PoolBuilder(PoolConfig);

/// Starts a pool with auto-assign on and the given entries (which must parse).
pub fn pool(name: &str, entries: &[&str]) -> PoolBuilder {
    PoolBuilder(PoolConfig {
        name: PoolName::new(name),
        ranges: entries.iter().map(|e| e.parse::<AddressRange>().expect("valid test entry")).collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
        deleting: false,
    })
}

impl PoolBuilder {
    /// autoAssign: false.
    pub fn manual(mut self) -> Self {
        self.0.auto_assign = false;
        self
    }
    /// avoidBuggyIPs: true.
    pub fn avoid_buggy(mut self) -> Self {
        self.0.avoid_buggy_ips = true;
        self
    }
    /// A serviceAllocation.
    pub fn allocation(mut self, allocation: ServiceAllocation) -> Self {
        self.0.allocation = Some(allocation);
        self
    }
    /// Marks the pool as being deleted.
    pub fn deleting(mut self) -> Self {
        self.0.deleting = true;
        self
    }
    /// The pool.
    pub fn build(self) -> Pool {
        Pool::new(self.0)
    }
}

/// A request builder: `svc("ns", "a").ip("198.51.100.1").share("k").port(80)`.
#[derive(Debug, Clone)]
pub struct RequestBuilder(pub Request);

/// Starts an IPv4 single-stack request with TCP port 80.
pub fn svc(namespace: &str, name: &str) -> RequestBuilder {
    RequestBuilder(Request {
        service: ServiceKey::new(namespace, name),
        namespace_labels: Default::default(),
        service_labels: Default::default(),
        families: FamilyPolicy::Single(Family::V4),
        pool: None,
        ips: Vec::new(),
        sharing: None,
        ports: vec![PortKey { protocol: Protocol::Tcp, port: 80 }],
        local_selector: None,
    })
}

impl RequestBuilder {
    /// Asks for a specific address.
    pub fn ip(mut self, ip: &str) -> Self {
        self.0.ips.push(ip.parse::<IpAddr>().expect("valid test ip"));
        self
    }
    /// Names a pool.
    pub fn pool(mut self, pool: &str) -> Self {
        self.0.pool = Some(PoolName::new(pool));
        self
    }
    /// Sets the sharing key.
    pub fn share(mut self, key: &str) -> Self {
        self.0.sharing = Some(SharingKey(key.to_owned()));
        self
    }
    /// Replaces the ports with TCP ports.
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.0.ports = ports.iter().map(|&port| PortKey { protocol: Protocol::Tcp, port }).collect();
        self
    }
    /// Sets the family policy.
    pub fn families(mut self, families: FamilyPolicy) -> Self {
        self.0.families = families;
        self
    }
    /// Marks the Service externalTrafficPolicy Local with a pod selector `app=<app>`.
    pub fn local(mut self, app: &str) -> Self {
        self.0.local_selector = Some([("app".to_owned(), app.to_owned())].into());
        self
    }
    /// Adds a namespace label.
    pub fn ns_label(mut self, key: &str, value: &str) -> Self {
        self.0.namespace_labels.insert(key.to_owned(), value.to_owned());
        self
    }
    /// Adds a Service label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.service_labels.insert(key.to_owned(), value.to_owned());
        self
    }
    /// The request.
    pub fn build(self) -> Request {
        self.0
    }
}
