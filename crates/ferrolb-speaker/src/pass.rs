//! One turn of the speaker's loop as a pure function: from the state kept across turns and this turn's
//! inputs to a [`Pass`] that says everything to do, in order. No I/O and no clock here (the caller passes
//! `now`), so every ordering rule is a unit test.
//!
//! The rules a pass encodes:
//! - Until the membership view settles this speaker may believe it is alone: it places nothing rather than
//!   claiming everything.
//! - Forwarding brackets announcing: a new owner forwards an IP ([`Pass::forward_before`]) before it answers
//!   for it, and an old owner keeps forwarding an IP it gave up for [`DRAIN`] ([`Pass::forward_after`]),
//!   until clients have followed the new owner's announcement.
//! - Events only on change: an IP's Event is sent when its placement changes, the takeover note from the
//!   owner, the not-announced Warning and the missing-speaker notices from the janitor (the first live member
//!   by name), so each change gives one Event, not one per speaker.
//! - Records: the owner writes an IP's `L2Announcement`, the janitor removes stale ones ([`crate::records`]);
//!   every node keeps its own `BGPSession` records ([`crate::bgp::report`]).
//! - A new IP is probed for before this node first announces it ([`crate::conflicts`]): it is withheld
//!   (neither announced nor placed, so no Event or record says it is) until the probe comes back quiet;
//!   when another host answers, the Services get an `AddressConflict` Warning and the IP stays dark.
//! - Claims other MACs make on an IP announced here are settled before anything else ([`crate::split`]):
//!   an IP yielded to a speaker outside the view (a split membership) is withheld like a probed one, and a
//!   foreign host claiming it twice becomes an address conflict.
//! - Forward mode skips endpoints on nodes that left the membership ([`crate::departed`]): Kubernetes
//!   keeps a dead node's pods ready for tens of seconds, the membership knows in a fraction of a second.
//! - BGP: every eligible node advertises (no single owner, [`crate::bgp::placement`]); in forward mode it
//!   forwards what it advertises, set up before the routes go out. A session's Events are sent on change
//!   (down, failing for a new reason, up again); the janitor says which nodes advertise each IP when that
//!   set changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_api::L2Announcement;
use ferrolb_forward::plan::{self as forward_plan, Forward};

use crate::absent::AbsenceTracker;
use crate::bgp::peer::PeerStatus;
use crate::bgp::placement::{self as bgp_placement, BgpAdvertisement, BgpConfig, BgpOrder, NodeAddresses, Peer};
use crate::bgp::report::{self as bgp_report, ExistingSession, SessionWrite};
use crate::conflicts::{
    ConflictRecord, ConflictTracker, ConflictWrite, Observed as ConflictsSeen, ProbeOrder, ProbeResult, ProbeSettings,
    conflict_note, found_while_announcing_note,
};
use crate::departed::Departures;
use crate::desired::{Advertisement, Cluster, ExternalIp, NodeInfo, Placement, place};
use crate::endpoints::{EndpointTracker, Observed};
use crate::events::{OutEvent, Reason, Regarding, bgp_advertisers_note, not_announced, takeover_note, why_moved};
use crate::l2::{L2Order, Link, choose};
use crate::membership::View;
use crate::records::{RecordInputs, ServiceRef, Write, reconcile};
use crate::split::{HeardClaim, Observed as ClaimsSeen, SplitTracker, split_note};
use crate::wake::wake;

/// How long an old owner keeps forwarding an IP it gave up: the new owner announces three times over 1.1 s,
/// and clients keep sending to the old owner's MAC until an announcement reaches them.
pub const DRAIN: Duration = Duration::from_secs(2);

/// What a pass reads, besides its own state.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The membership's view.
    pub view: &'a View,
    /// Every external IP in use.
    pub ips: &'a [ExternalIp],
    /// Every Node.
    pub nodes: &'a [NodeInfo],
    /// Every valid L2Advertisement.
    pub advertisements: &'a [Advertisement],
    /// Pool labels by pool name.
    pub pool_labels: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// Per Service, the endpoints as the API reports them (damped here for `externalTrafficPolicy: Local`).
    pub endpoints: &'a BTreeMap<String, Observed>,
    /// Every Node's membership address.
    pub peers: &'a BTreeMap<String, SocketAddr>,
    /// Every Service by `namespace/name`.
    pub services: &'a BTreeMap<String, ServiceRef>,
    /// The `L2Announcement` records that exist.
    pub records: &'a [&'a L2Announcement],
    /// The interfaces this node may announce on, read for this pass.
    pub links: &'a [Link],
    /// This node's addresses (BGP's next hops).
    pub own_addresses: &'a [IpAddr],
    /// Forward mode's inputs; `None` in kube-proxy mode.
    pub forwarding: Option<Forwarding<'a>>,
    /// BGP mode's inputs.
    pub bgp: Bgp<'a>,
    /// Address conflict detection's inputs.
    pub conflicts: Conflicts<'a>,
    /// Claims other MACs made on watched IPs since the last pass.
    pub heard: &'a [HeardClaim],
    /// The wall-clock time, RFC 3339, for the `since` of IPs taken now.
    pub wall_clock: &'a str,
}

/// What BGP placement and its reports read.
#[derive(Debug, Clone, Copy)]
pub struct Bgp<'a> {
    /// Every valid BGPPeer.
    pub peers: &'a [Peer],
    /// Every valid BGPAdvertisement.
    pub advertisements: &'a [BgpAdvertisement],
    /// This node's sessions as they are now, by peer.
    pub statuses: &'a BTreeMap<String, PeerStatus>,
    /// The `BGPSession` records in this speaker's namespace.
    pub sessions: &'a [ExistingSession],
}

/// What address conflict detection reads.
#[derive(Debug, Clone, Copy)]
pub struct Conflicts<'a> {
    /// The probe's timings; `None`: no probing (every IP is announced at once).
    pub settings: Option<ProbeSettings>,
    /// The `AddressConflict` records that exist.
    pub records: &'a [ConflictRecord],
    /// Probe results since the last pass.
    pub results: &'a [ProbeResult],
}

/// What forward mode's plan reads.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The handled Services.
    pub services: &'a [forward_plan::Service],
    /// The EndpointSlices.
    pub slices: &'a [forward_plan::Slice],
}

/// What the data path must forward at one step of a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardOrder {
    /// Every IP this node answers for at that step (the data path refuses their other ports).
    pub owned: BTreeSet<IpAddr>,
    /// The ports to forward.
    pub forwards: Vec<Forward>,
}

/// Everything one pass asks for, applied in field order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// New membership peers, when the Nodes changed.
    pub peers: Option<BTreeMap<String, SocketAddr>>,
    /// IPs whose placement changed, for the log.
    pub changed: Vec<(IpAddr, Placement)>,
    /// Forward mode: what to forward before announcing (the IPs owned before or after this pass).
    pub forward_before: Option<ForwardOrder>,
    /// What layer 2 announces from now on.
    pub announce: L2Order,
    /// What BGP advertises from now on.
    pub bgp: BgpOrder,
    /// Forward mode: what to forward after announcing (the IPs owned now, and those still draining).
    pub forward_after: Option<ForwardOrder>,
    /// Events to publish.
    pub events: Vec<OutEvent>,
    /// How many IPs this node took in this pass.
    pub takeovers: u64,
    /// `L2Announcement` writes (empty: nothing to write).
    pub records: Vec<Write>,
    /// `BGPSession` writes (empty: nothing to write).
    pub bgp_sessions: Vec<SessionWrite>,
    /// Probes to run (their results come back as [`Conflicts::results`]).
    pub probes: Vec<ProbeOrder>,
    /// How many conflicts were found in this pass.
    pub conflicts_found: u64,
    /// `AddressConflict` writes.
    pub conflict_writes: Vec<ConflictWrite>,
    /// Announced IPs to defend now against another MAC's claim (sent after [`Pass::announce`]).
    pub defend: Vec<IpAddr>,
    /// Yielded IPs to probe now, with their interfaces.
    pub probe_yielded: BTreeMap<IpAddr, Vec<String>>,
    /// How many claims signed by a speaker outside the view were heard in this pass.
    pub split_claims: u64,
    /// When the next pass must run at the latest (endpoints settling, a drain ending, a missing speaker
    /// becoming reportable); `None`: only on a change.
    pub wake_at: Option<Instant>,
}

/// What the speaker remembers from one pass to the next.
#[derive(Debug)]
pub struct State {
    me: String,
    membership_port: u16,
    endpoints: EndpointTracker,
    absence: AbsenceTracker,
    departures: Departures,
    conflicts: ConflictTracker,
    split: SplitTracker,
    /// The placement of every IP after the last pass.
    placed: BTreeMap<IpAddr, Placement>,
    /// When this node took each IP it announces (RFC 3339).
    since: BTreeMap<IpAddr, String>,
    /// The peers last handed to the membership.
    peers: BTreeMap<String, SocketAddr>,
    /// The IPs this node announced after the last pass: one that leaves starts draining.
    owned: BTreeSet<IpAddr>,
    /// IPs given up but still forwarded, until when.
    draining: BTreeMap<IpAddr, Instant>,
    /// What the data path was last told to forward.
    forwarded: BTreeSet<IpAddr>,
    /// Each BGP session's status at the last pass, for its Events.
    bgp_statuses: BTreeMap<String, PeerStatus>,
    /// The nodes advertising each IP over BGP at the last settled pass; `None` before the first, which is
    /// taken as it is (a restarted janitor does not repeat an Event per IP).
    advertisers: Option<BTreeMap<IpAddr, BTreeSet<String>>>,
}

impl State {
    /// The state of a speaker on node `me` that has not placed anything yet; `peers` are those the
    /// membership was started with.
    pub fn new(me: &str, membership_port: u16, peers: BTreeMap<String, SocketAddr>) -> State {
        State {
            me: me.to_owned(),
            membership_port,
            endpoints: EndpointTracker::default(),
            absence: AbsenceTracker::default(),
            departures: Departures::default(),
            conflicts: ConflictTracker::default(),
            split: SplitTracker::default(),
            placed: BTreeMap::new(),
            since: BTreeMap::new(),
            peers,
            owned: BTreeSet::new(),
            draining: BTreeMap::new(),
            forwarded: BTreeSet::new(),
            bgp_statuses: BTreeMap::new(),
            advertisers: None,
        }
    }

    /// Whether the data path forwards anything (at shutdown, whether to drain before removing it).
    pub fn forwards_anything(&self) -> bool {
        !self.forwarded.is_empty()
    }
}

/// One Event per Service of `ext` that exists, each with `reason` and `note`.
fn service_events<'a>(
    ext: &'a ExternalIp,
    services: &'a BTreeMap<String, ServiceRef>,
    reason: Reason,
    note: &'a str,
) -> impl Iterator<Item = OutEvent> + 'a {
    ext.services.iter().filter_map(|s| services.get(s)).map(move |service| OutEvent {
        regarding: Regarding::Service(service.clone()),
        reason,
        note: note.to_owned(),
    })
}

/// One pass; see the module doc.
pub fn pass(state: &mut State, inputs: &Inputs<'_>, now: Instant) -> Pass {
    let me = state.me.clone();
    let view = inputs.view;
    let peers = (state.peers != *inputs.peers).then(|| {
        state.peers = inputs.peers.clone();
        state.peers.clone()
    });

    let endpoints = state.endpoints.observe(now, inputs.endpoints);
    let mut wake_at = state.endpoints.next_change(now);
    let cluster = Cluster {
        nodes: inputs.nodes,
        advertisements: inputs.advertisements,
        pool_labels: inputs.pool_labels,
        live: &view.members,
        endpoints: &endpoints,
    };
    // A speaker outvoted on the membership key holds the wrong one: it places nothing and leaves the
    // janitor's duties (Events about missing speakers, stale records) to the others.
    let outvoted = view.outvoted();
    let janitor = view.members.first() == Some(&me) && !outvoted;
    let mut events = Vec::new();

    // Every speaker tracks missing speakers, so a new janitor knows what was reported; only the janitor
    // publishes.
    // A node is expected to run a speaker when an L2Advertisement or a BGPAdvertisement selects it.
    let expecting: Vec<Advertisement> = inputs
        .advertisements
        .iter()
        .cloned()
        .chain(inputs.bgp.advertisements.iter().map(|a| a.scope.clone()))
        .collect();
    let notices = state.absence.observe(now, inputs.nodes, &expecting, view);
    wake(&mut wake_at, state.absence.next_change(now));
    if janitor {
        events.extend(notices.into_iter().map(|notice| OutEvent {
            regarding: Regarding::Node(notice.node().to_owned()),
            reason: notice.reason(),
            note: notice.note(&me, state.membership_port),
        }));
    }

    let mut placed = if view.settled && !outvoted { place(&me, inputs.ips, &cluster) } else { BTreeMap::new() };
    let mut announce = L2Order {
        links: inputs.links.to_vec(),
        ips: placed
            .iter()
            .filter_map(|(ip, p)| match p {
                Placement::Announce { interfaces } => {
                    Some((*ip, choose(*ip, interfaces, inputs.links).into_iter().map(|l| l.name.clone()).collect()))
                }
                _ => None,
            })
            .collect(),
        yielded: BTreeMap::new(),
    };
    // Claims on the IPs announced here: split memberships settle by rank, foreign hosts are defended once.
    let mut settlement = crate::split::Settlement::default();
    if view.settled {
        let announced: BTreeSet<IpAddr> =
            state.placed.iter().filter(|(_, p)| matches!(p, Placement::Announce { .. })).map(|(ip, _)| *ip).collect();
        let nodes: BTreeSet<String> = inputs.nodes.iter().map(|n| n.name.clone()).collect();
        let seen = ClaimsSeen {
            me: &me,
            live: &view.members,
            nodes: &nodes,
            placed_here: &announce.ips,
            announced: &announced,
            heard: inputs.heard,
        };
        settlement = state.split.settle(&seen, now);
        for ip in &settlement.withhold {
            placed.remove(ip);
            announce.ips.remove(ip);
        }
        announce.yielded = std::mem::take(&mut settlement.yielded);
        for claim in &settlement.splits {
            let note = split_note(&me, claim, &view.members);
            for ext in inputs.ips.iter().filter(|e| e.ip == claim.ip) {
                events.extend(service_events(ext, inputs.services, Reason::MembershipSplit, &note));
            }
        }
        wake(&mut wake_at, settlement.wake_at);
    }
    // Address conflicts: new IPs are probed first; an IP being probed or in conflict is withheld, as if not
    // placed here at all.
    let mut probes = Vec::new();
    let mut conflict_writes = Vec::new();
    let mut conflicts_found = 0;
    if let (true, Some(settings)) = (view.settled, inputs.conflicts.settings) {
        let seen = ConflictsSeen {
            me: &me,
            janitor,
            live: &view.members,
            ips: inputs.ips,
            placed: &placed,
            mine: &announce.ips,
            links: inputs.links,
            records: inputs.conflicts.records,
            results: inputs.conflicts.results,
            found_while_announcing: &settlement.conflicts,
            wall_clock: inputs.wall_clock,
        };
        let decision = state.conflicts.decide(&seen, settings, now);
        for ip in &decision.withhold {
            placed.remove(ip);
            announce.ips.remove(ip);
        }
        for (ip, answer) in &decision.found {
            conflicts_found += 1;
            let note = if settlement.conflicts.iter().any(|(found, _)| found == ip) {
                found_while_announcing_note(&me, *ip, answer)
            } else {
                conflict_note(&me, *ip, answer)
            };
            for ext in inputs.ips.iter().filter(|e| e.ip == *ip) {
                events.extend(service_events(ext, inputs.services, Reason::AddressConflict, &note));
            }
        }
        wake(&mut wake_at, decision.wake_at);
        probes = decision.probes;
        conflict_writes = decision.writes;
    }
    let changed: Vec<(IpAddr, Placement)> =
        placed.iter().filter(|(ip, p)| state.placed.get(ip) != Some(p)).map(|(ip, p)| (*ip, p.clone())).collect();
    let bgp_config = BgpConfig { peers: inputs.bgp.peers, advertisements: inputs.bgp.advertisements };
    let bgp = bgp_placement::order(
        &me,
        inputs.ips,
        &cluster,
        &bgp_config,
        NodeAddresses::from_addresses(inputs.own_addresses),
    );
    // What this node receives traffic for: the IPs it answers for on layer 2 and those it advertises.
    let owned: BTreeSet<IpAddr> = announce.ips.keys().chain(bgp.ips.iter()).copied().collect();

    // Forwarding brackets announcing: before, what was forwarded plus what is owned now; after, what is
    // owned now plus what drains.
    let (forward_before, forward_after) = match inputs.forwarding {
        None => (None, None),
        Some(forwarding) => {
            let departed = state.departures.observe(view, inputs.nodes);
            let nodes = forward_plan::Nodes { me: &me, departed: &departed };
            let order = |ips: BTreeSet<IpAddr>| ForwardOrder {
                forwards: forward_plan::plan(&nodes, &ips, forwarding.services, forwarding.slices),
                owned: ips,
            };
            let before = order(state.forwarded.union(&owned).copied().collect());
            for ip in state.owned.difference(&owned) {
                state.draining.entry(*ip).or_insert(now + DRAIN);
            }
            state.draining.retain(|ip, until| *until > now && !owned.contains(ip));
            wake(&mut wake_at, state.draining.values().min().copied());
            let keep: BTreeSet<IpAddr> = owned.iter().chain(state.draining.keys()).copied().collect();
            // What the data path forwards is what was asked, even if applying it fails: it retries on the
            // next pass, and a lasting failure never keeps a drained IP alive.
            state.forwarded = keep.clone();
            (Some(before), Some(order(keep)))
        }
    };
    state.owned = owned;

    // Events and records of placement changes.
    state.since.retain(|ip, _| announce.ips.contains_key(ip));
    let mut takeovers = 0;
    for ext in inputs.ips {
        let placement = placed.get(&ext.ip);
        if placement == state.placed.get(&ext.ip) {
            continue;
        }
        match placement {
            Some(Placement::Announce { .. }) => {
                state.since.insert(ext.ip, inputs.wall_clock.to_owned());
                takeovers += 1;
                let previous = inputs
                    .records
                    .iter()
                    .find(|r| r.spec.ip.parse::<IpAddr>().ok() == Some(ext.ip) && r.spec.node != me)
                    .map(|r| r.spec.node.as_str());
                let why = previous.map(|p| (p, why_moved(p, &me, ext, &cluster)));
                let interfaces = announce.ips.get(&ext.ip).map(Vec::as_slice).unwrap_or_default();
                let note = takeover_note(&me, ext.ip, interfaces, why.as_ref().map(|(p, w)| (*p, w.as_str())));
                events.extend(service_events(ext, inputs.services, Reason::Announcing, &note));
            }
            // Without its pool (the controller writes the annotation just after the status) there is
            // nothing certain to say yet.
            Some(other) if janitor && !ext.pool.is_empty() => {
                let bgp_covered = bgp_placement::covered(ext, &cluster, &bgp_config);
                if let Some((reason, note)) = not_announced(ext.ip, other, &ext.pool, bgp_covered) {
                    events.extend(service_events(ext, inputs.services, reason, &note));
                }
            }
            _ => {}
        }
    }
    // BGP: session Events on change; the janitor tells each Service which nodes advertise its IP.
    for (peer, status) in inputs.bgp.statuses {
        if let Some((reason, note)) = bgp_report::session_event(&me, peer, state.bgp_statuses.get(peer), status) {
            events.push(OutEvent { regarding: Regarding::BgpPeer(peer.clone()), reason, note });
        }
    }
    state.bgp_statuses = inputs.bgp.statuses.clone();
    if view.settled {
        let mut advertisers = BTreeMap::new();
        for ext in inputs.ips.iter().filter(|e| bgp_placement::covered(e, &cluster, &bgp_config)) {
            let nodes = bgp_placement::advertisers(ext, &cluster, &bgp_config);
            let known = state.advertisers.as_ref().map(|a| a.get(&ext.ip));
            if janitor && known.is_some_and(|before| before != Some(&nodes)) {
                let (reason, note) = bgp_advertisers_note(ext.ip, &nodes);
                events.extend(service_events(ext, inputs.services, reason, &note));
            }
            advertisers.insert(ext.ip, nodes);
        }
        state.advertisers = Some(advertisers);
    }
    let bgp_sessions = bgp_report::reconcile(&me, &bgp, inputs.bgp.statuses, inputs.bgp.sessions);
    let records = reconcile(&RecordInputs {
        me: &me,
        janitor,
        ips: inputs.ips,
        placed: &placed,
        interfaces: &announce.ips,
        since: &state.since,
        services: inputs.services,
        existing: inputs.records,
    });
    state.placed = placed;
    Pass {
        peers,
        changed,
        forward_before,
        announce,
        bgp,
        forward_after,
        events,
        takeovers,
        records,
        bgp_sessions,
        probes,
        conflicts_found,
        conflict_writes,
        defend: settlement.defend,
        probe_yielded: settlement.probe,
        split_claims: settlement.split_claims,
        wake_at,
    }
}

#[cfg(test)]
mod tests;
