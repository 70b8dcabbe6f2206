//! Forward mode's data plane: the node that owns an external IP delivers the traffic that arrives for the
//! Services' ports itself, so ferrolb works whatever kube-proxy does with LoadBalancer IPs (the controller
//! publishes `ipMode: Proxy`, and kube-proxy leaves those IPs alone).
//!
//! [`plan`] turns plain descriptions of Services and their endpoints into what to forward (pure). Two data
//! paths carry it out: [`kernel`] writes one nftables table that DNATs straight to the endpoints the NodePort
//! would reach (one NAT per hook means a DNAT to the NodePort would not chain into kube-proxy's rules), and
//! [`userspace`] relays connections and datagrams to the node's own NodePort where nftables is unavailable.
//! [`dataplane`] picks the path and applies each plan; [`conntrack`] forgets UDP flows to removed endpoints.
//!
//! Architecture invariant: no Kubernetes types (CI checks that neither kube nor k8s-openapi is a
//! dependency); the speaker converts its watched objects into [`plan`]'s inputs. It never touches nftables
//! tables or routing rules other than its own (`inet ferrolb`; rules with priority 4210/4211 and table 4210).

pub mod conntrack;
pub mod dataplane;
mod frontend;
pub mod kernel;
pub mod metrics;
pub mod plan;
pub mod program;
pub mod userspace;

pub use frontend::{Frontend, Protocol};
pub use metrics::Metrics;
