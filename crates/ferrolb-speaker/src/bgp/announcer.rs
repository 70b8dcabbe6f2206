//! The BGP announcer: one session task ([`super::peer`]) per peer of this node, started, restarted and
//! stopped to match each [`BgpOrder`], and handed its routes. A change of a session's settings restarts it
//! (the old one withdraws and ends first); a change of routes never does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::session::State;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::bfd::BfdEndpoint;
use super::metrics::BgpMetrics;
use super::peer::{PeerStatus, PeerTask, Routes, state_labels};
use super::placement::{BgpOrder, PeerOrder, SessionSettings};
use crate::announce::Announcer;

/// How long a graceful stop of every session may take at shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

struct Handle {
    settings: SessionSettings,
    routes: watch::Sender<Routes>,
    stop: watch::Sender<Option<String>>,
    status: watch::Receiver<PeerStatus>,
    task: JoinHandle<()>,
}

impl Handle {
    fn stopped(&self) -> bool {
        self.stop.borrow().is_some()
    }
}

/// This node's BGP sessions; see the module doc.
pub struct BgpAnnouncer {
    peers: BTreeMap<String, Handle>,
    /// Sessions told to stop, still withdrawing or closing.
    stopping: Vec<JoinHandle<()>>,
    changed: Arc<Notify>,
    metrics: BgpMetrics,
    bfd: Option<BfdEndpoint>,
}

impl BgpAnnouncer {
    /// No sessions yet; sessions whose peer names a BFD profile run it on `bfd` (`None`: BFD unavailable,
    /// and such sessions run without it).
    pub fn new(metrics: BgpMetrics, bfd: Option<BfdEndpoint>) -> BgpAnnouncer {
        BgpAnnouncer { peers: BTreeMap::new(), stopping: Vec::new(), changed: Arc::new(Notify::new()), metrics, bfd }
    }

    /// Signalled whenever a session's status changes.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Every session's status, by BGPPeer name.
    pub fn statuses(&self) -> BTreeMap<String, PeerStatus> {
        self.peers.iter().map(|(name, h)| (name.clone(), h.status.borrow().clone())).collect()
    }

    fn start(&mut self, name: &str, order: &PeerOrder, after: Option<JoinHandle<()>>) {
        let routes =
            Routes { routes: order.routes.clone(), next_hop_v4: order.next_hop_v4, next_hop_v6: order.next_hop_v6 };
        let (routes_tx, routes_rx) = watch::channel(routes);
        let (stop_tx, stop_rx) = watch::channel(None);
        let (status_tx, status_rx) = watch::channel(PeerStatus::default());
        let task = PeerTask {
            name: name.to_owned(),
            settings: order.settings.clone(),
            routes: routes_rx,
            stop: stop_rx,
            status: status_tx,
            changed: self.changed.clone(),
            metrics: self.metrics.clone(),
            bfd: self.bfd.clone(),
        };
        let task = tokio::spawn(async move {
            // A restarted session waits for its predecessor to withdraw and close.
            if let Some(previous) = after {
                let _ = previous.await;
            }
            task.run().await;
        });
        let handle =
            Handle { settings: order.settings.clone(), routes: routes_tx, stop: stop_tx, status: status_rx, task };
        self.peers.insert(name.to_owned(), handle);
    }

    fn count_states(&self) {
        for state in State::ALL {
            let n = self.peers.values().filter(|h| h.status.borrow().state == state).count();
            self.metrics.sessions.get_or_create(&state_labels(state)).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

impl Announcer for BgpAnnouncer {
    type Order = BgpOrder;

    fn announce(&mut self, order: &BgpOrder) {
        self.stopping.retain(|t| !t.is_finished());
        let gone: Vec<String> = self.peers.keys().filter(|n| !order.peers.contains_key(*n)).cloned().collect();
        for name in gone {
            if let Some(handle) = self.peers.remove(&name) {
                let reason = if order.refused.contains_key(&name) {
                    // For instance its passwordSecret lost the key; the BGPSession record says what.
                    format!("ferrolb: BGPPeer {name} can no longer be set up on this node")
                } else {
                    format!("ferrolb: BGPPeer {name} no longer selects this node")
                };
                handle.stop.send_replace(Some(reason));
                self.stopping.push(handle.task);
            }
        }
        for (name, wanted) in &order.peers {
            let restart = self.peers.get(name).is_some_and(|h| h.settings != wanted.settings);
            let previous = if restart {
                self.peers.remove(name).map(|h| {
                    h.stop.send_replace(Some("ferrolb: the BGPPeer's settings changed".to_owned()));
                    h.task
                })
            } else {
                None
            };
            match self.peers.get(name) {
                Some(handle) => {
                    let routes = Routes {
                        routes: wanted.routes.clone(),
                        next_hop_v4: wanted.next_hop_v4,
                        next_hop_v6: wanted.next_hop_v6,
                    };
                    handle.routes.send_if_modified(|r| {
                        let modified = *r != routes;
                        if modified {
                            *r = routes;
                        }
                        modified
                    });
                }
                None => self.start(name, wanted, previous),
            }
        }
        self.count_states();
    }

    fn refresh(&mut self) {
        // A router keeps BGP routes until told otherwise: nothing to repeat.
        self.count_states();
    }

    async fn withdraw_all(&mut self) {
        let reason = "ferrolb: the speaker is shutting down".to_owned();
        let mut tasks: Vec<JoinHandle<()>> = std::mem::take(&mut self.stopping);
        // The handles (and their channels) live until every session has withdrawn and said goodbye.
        let handles: Vec<Handle> = std::mem::take(&mut self.peers).into_values().collect();
        for handle in &handles {
            handle.stop.send_replace(Some(reason.clone()));
        }
        let (senders, joins): (Vec<_>, Vec<_>) =
            handles.into_iter().map(|h| ((h.routes, h.stop, h.status), h.task)).unzip();
        tasks.extend(joins);
        let _ = tokio::time::timeout(STOP_TIMEOUT, futures::future::join_all(tasks)).await;
        drop(senders);
        self.count_states();
    }

    fn failed(&self) -> Option<String> {
        self.peers
            .iter()
            .find(|(_, h)| h.task.is_finished() && !h.stopped())
            .map(|(name, _)| format!("the BGP session task for peer {name} stopped"))
    }
}
