//! What operators see of BGP, decided purely: the `BGPSession` record of each of this node's sessions, the
//! writes that keep those records true, and the Events a session's changes deserve (down, failing with a new
//! reason, established again).

use std::collections::BTreeMap;

use ferrolb_api::{BGPSessionSpec, BGPSessionStatus, bgpsession_name, format_duration};
use ferrolb_bgp::session::{Down, State};

use super::peer::PeerStatus;
use super::placement::BgpOrder;
use crate::events::Reason;

/// A `BGPSession` as it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingSession {
    /// Object name.
    pub name: String,
    /// Its spec.
    pub spec: BGPSessionSpec,
    /// Its status.
    pub status: Option<BGPSessionStatus>,
    /// The version read, for deletes.
    pub resource_version: Option<String>,
}

/// One write to the `BGPSession` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionWrite {
    /// Create or update the record and its status (server-side apply).
    Apply {
        /// Object name.
        name: String,
        /// Desired spec.
        spec: BGPSessionSpec,
        /// Desired status (boxed: it is most of the write's size).
        status: Box<BGPSessionStatus>,
    },
    /// Delete the record if it is still at `resource_version`.
    Delete {
        /// Object name.
        name: String,
        /// The version read.
        resource_version: Option<String>,
    },
}

/// What a session that signs with TCP MD5 adds to "the peer does not answer": a router drops segments with a
/// key it does not share (or when it expects none), so a wrong key looks exactly like a silent peer.
pub const MD5_HINT: &str = "the session signs with the TCP MD5 key from passwordSecret; a router holding another key, \
                            or none, drops every segment without answering";

/// The record of one session; `signed` when it has a TCP MD5 key.
pub fn session_status(status: &PeerStatus, warnings: &[String], signed: bool) -> BGPSessionStatus {
    let negotiated = status.negotiated.as_ref().filter(|_| status.state == State::Established);
    let last_error = status.last_down.as_ref().filter(|d| !matches!(d, Down::Stopped)).map(|d| match d {
        Down::ConnectFailed if signed => format!("{d}; {MD5_HINT}"),
        _ => d.to_string(),
    });
    let mut warnings = warnings.to_vec();
    if let Some(why) = &status.md5_error {
        warnings.push(format!("cannot sign the connection with the TCP MD5 key: {why}"));
    }
    BGPSessionStatus {
        state: status.state.as_str().to_owned(),
        hold_time: negotiated.map(|n| format_duration(n.hold_time)),
        keepalive_time: negotiated.map(|n| format_duration(n.keepalive)),
        established_since: status.established_since.clone(),
        prefixes_advertised: i64::try_from(status.prefixes).unwrap_or(i64::MAX),
        last_error,
        bfd: status.bfd.map(|s| s.as_str().to_owned()),
        warnings,
    }
}

/// The writes that make this node's records match its sessions: one per session of the order (a refused
/// peer's record says why), and deletes for records of peers this node no longer has.
pub fn reconcile(
    me: &str,
    order: &BgpOrder,
    statuses: &BTreeMap<String, PeerStatus>,
    existing: &[ExistingSession],
) -> Vec<SessionWrite> {
    let mine: BTreeMap<&str, &ExistingSession> =
        existing.iter().filter(|e| e.spec.node == me).map(|e| (e.spec.peer.as_str(), e)).collect();
    let mut writes = Vec::new();
    let mut wanted = BTreeMap::new();
    for (peer, p) in &order.peers {
        let status = statuses.get(peer).cloned().unwrap_or_default();
        let spec =
            BGPSessionSpec { node: me.to_owned(), peer: peer.clone(), peer_address: p.settings.address.to_string() };
        wanted.insert(peer.as_str(), (spec, session_status(&status, &p.warnings, p.settings.md5.is_some())));
    }
    for (peer, why) in &order.refused {
        let spec = BGPSessionSpec { node: me.to_owned(), peer: peer.clone(), peer_address: String::new() };
        let status = BGPSessionStatus {
            state: State::Idle.as_str().to_owned(),
            last_error: Some(why.clone()),
            ..Default::default()
        };
        wanted.insert(peer.as_str(), (spec, status));
    }
    for (peer, (spec, status)) in wanted {
        let current = mine.get(peer).is_some_and(|e| e.spec == spec && e.status.as_ref() == Some(&status));
        if !current {
            writes.push(SessionWrite::Apply { name: bgpsession_name(me, peer), spec, status: Box::new(status) });
        }
    }
    for (peer, e) in &mine {
        if !order.peers.contains_key(*peer) && !order.refused.contains_key(*peer) {
            writes.push(SessionWrite::Delete { name: e.name.clone(), resource_version: e.resource_version.clone() });
        }
    }
    writes
}

/// The Event a session's change deserves, if any: down from Established, failing for a new reason, or
/// established again after a failure.
pub fn session_event(me: &str, peer: &str, before: Option<&PeerStatus>, now: &PeerStatus) -> Option<(Reason, String)> {
    let was_up = before.is_some_and(|b| b.state == State::Established);
    let is_up = now.state == State::Established;
    let why = now.last_down.as_ref().filter(|d| !matches!(d, Down::Stopped));
    match (was_up, is_up) {
        (true, false) => {
            let why = why.map_or_else(|| "stopped".to_owned(), ToString::to_string);
            Some((Reason::BgpSessionDown, format!("BGP session from {me} to {peer} went down: {why}")))
        }
        (false, true) => before
            .and_then(|b| b.last_down.as_ref())
            .filter(|d| !matches!(d, Down::Stopped))
            .map(|_| (Reason::BgpSessionEstablished, format!("BGP session from {me} to {peer} is established again"))),
        (false, false) => {
            let before_why = before.and_then(|b| b.last_down.as_ref()).map(ToString::to_string);
            let why = why?.to_string();
            (before_why.as_deref() != Some(why.as_str())).then(|| {
                (Reason::BgpSessionFailing, format!("BGP session from {me} to {peer} cannot be established: {why}"))
            })
        }
        (true, true) => None,
    }
}

#[cfg(test)]
mod tests;
