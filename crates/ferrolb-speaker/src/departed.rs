//! Which nodes left the membership and have not come back, so forward mode skips their endpoints.
//!
//! A node that dies keeps its pods as ready endpoints until Kubernetes marks it NotReady (the node monitor's
//! grace period, tens of seconds), and every new connection sent there fails. The membership knows within
//! its detection time, so the owner of an IP stops sending new connections to such a node's endpoints
//! ([`ferrolb_forward::plan::Nodes::departed`]; the plan keeps them when they are the only ones).
//!
//! A node counts as departed once this speaker has seen it as a live member in a settled view and it is no
//! longer one while its Node object still exists. It is taken back when it rejoins, when its Node is
//! deleted, or when Kubernetes says its kubelet is back: the Node was seen NotReady and then Ready again (a
//! node whose kubelet runs but whose speaker stays away, say removed by a nodeSelector, is not shunned for
//! ever). A node this speaker never saw as a member is never departed: it may simply run no speaker.
//!
//! Pure: the caller passes the view and the Nodes each pass.

use std::collections::{BTreeMap, BTreeSet};

use crate::desired::NodeInfo;
use crate::membership::View;

/// The nodes seen as members, and those that left.
#[derive(Debug, Default)]
pub struct Departures {
    /// Nodes seen as live members of a settled view (and not since forgotten).
    seen: BTreeSet<String>,
    /// Nodes that left, and whether Kubernetes has since reported them NotReady.
    departed: BTreeMap<String, bool>,
}

impl Departures {
    /// Records this pass's view and Nodes; returns the nodes whose endpoints to avoid.
    pub fn observe(&mut self, view: &View, nodes: &[NodeInfo]) -> BTreeSet<String> {
        if view.settled {
            let by_name: BTreeMap<&str, &NodeInfo> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
            self.seen.extend(view.members.iter().cloned());
            self.seen.retain(|name| by_name.contains_key(name.as_str()));
            self.departed.retain(|name, _| self.seen.contains(name) && !view.members.contains(name));
            for name in self.seen.difference(&view.members) {
                self.departed.entry(name.clone()).or_insert(false);
            }
            let mut back = Vec::new();
            for (name, reported_not_ready) in &mut self.departed {
                match by_name.get(name.as_str()) {
                    Some(node) if node.not_ready => *reported_not_ready = true,
                    Some(_) if *reported_not_ready => back.push(name.clone()),
                    _ => {}
                }
            }
            for name in back {
                self.departed.remove(&name);
                self.seen.remove(&name);
            }
        }
        self.departed.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
