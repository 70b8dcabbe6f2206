//! The BGP part of `ferrolb status`: every node's sessions as a table, and the problems they show.

use ferrolb_api::BGPSession;

/// One BGPSession line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The node.
    pub node: String,
    /// The BGPPeer.
    pub peer: String,
    /// The peer's address.
    pub address: String,
    /// RFC 4271's state name.
    pub state: String,
    /// Routes advertised.
    pub prefixes: i64,
    /// Why it last went down, if it did.
    pub last_error: Option<String>,
    /// The guarding BFD session's state, if the peer names a profile.
    pub bfd: Option<String>,
}

/// The rows, sorted by node then peer.
pub fn session_rows(sessions: &[BGPSession]) -> Vec<SessionRow> {
    let mut rows: Vec<SessionRow> = sessions
        .iter()
        .map(|s| {
            let status = s.status.clone().unwrap_or_default();
            SessionRow {
                node: s.spec.node.clone(),
                peer: s.spec.peer.clone(),
                address: s.spec.peer_address.clone(),
                state: if status.state.is_empty() { "Unknown".to_owned() } else { status.state },
                prefixes: status.prefixes_advertised,
                last_error: status.last_error,
                bfd: status.bfd,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.node, &a.peer).cmp(&(&b.node, &b.peer)));
    rows
}

/// One problem line per session that is not Established, or is but without the BFD it asked for.
pub fn session_problems(rows: &[SessionRow]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| {
            if r.state != "Established" {
                let why = r.last_error.as_deref().unwrap_or("not established yet");
                return Some(format!("BGP session {} -> {} ({}) is {}: {why}", r.node, r.peer, r.address, r.state));
            }
            let bfd = r.bfd.as_deref().filter(|b| *b != "Up")?;
            Some(format!(
                "BGP session {} -> {} ({}) is Established but its BFD session is {bfd}: a dead path is noticed only after the hold time",
                r.node, r.peer, r.address
            ))
        })
        .collect()
}
