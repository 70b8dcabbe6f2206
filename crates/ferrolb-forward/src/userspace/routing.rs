//! Makes the kernel's policy rules and [`RELAY_TABLE`] routes match what [`rules`] describes, through
//! rtnetlink. It always reads the kernel's state before changing it, so leftovers of a crashed run and
//! rules deleted behind our back are repaired by the next sync, and repeating a sync changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::packet_route::rule::RuleMessage;
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};
use tokio::task::JoinHandle;
use tracing::debug;

use super::rules::{self, Classified, RELAY_TABLE, ROUTE_PROTOCOL, Rule};

const EEXIST: i32 = 17;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;

/// An rtnetlink connection; its background task stops when this is dropped.
#[derive(Debug)]
pub struct Routing {
    handle: Handle,
    connection: JoinHandle<()>,
    loopback: Option<u32>,
}

/// A rule or route that could not be changed, and why.
#[derive(Debug)]
pub enum Failure {
    /// A rule could not be added or removed.
    Rule(Rule, rtnetlink::Error),
    /// The family's local route in [`RELAY_TABLE`] is missing, so none of its relay rules would work.
    Route(Family, rtnetlink::Error),
    /// The kernel's rules or routes could not be read: nothing was changed.
    Read(rtnetlink::Error),
    /// No interface named `lo` (the local routes need it).
    NoLoopback,
}

impl Drop for Routing {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Routing {
    /// Opens the connection. Must run inside a tokio runtime.
    pub fn connect() -> std::io::Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        Ok(Routing { handle, connection: tokio::spawn(connection), loopback: None })
    }

    /// Makes our rules exactly `desired`, with the local route of each family that has a relay rule (and
    /// none for other families). Returns what failed; everything else is in place.
    pub async fn sync(&mut self, desired: &BTreeSet<Rule>) -> Vec<Failure> {
        let mut failures = Vec::new();
        let families: BTreeSet<Family> = desired
            .iter()
            .filter_map(|rule| match rule {
                Rule::Relay(frontend) => Some(Family::of(frontend.ip)),
                Rule::Refuse(_) => None,
            })
            .collect();
        if let Err(failure) = self.sync_routes(&families, &mut failures).await {
            failures.push(failure);
            return failures;
        }
        let (current, stale) = match self.read_rules().await {
            Ok(read) => read,
            Err(e) => {
                failures.push(Failure::Read(e));
                return failures;
            }
        };
        let current_rules: BTreeSet<Rule> = current.keys().copied().collect();
        let (to_add, to_remove) = rules::diff(&current_rules, desired);
        for rule in to_remove {
            if let Some(message) = current.get(&rule).cloned() {
                debug!(?rule, "removing routing rule");
                if let Err(e) = self.delete_rule(message).await {
                    failures.push(Failure::Rule(rule, e));
                }
            }
        }
        for message in stale {
            debug!(?message, "removing a stale ferrolb routing rule");
            if let Err(e) = self.delete_rule(message).await {
                failures.push(Failure::Read(e));
            }
        }
        for rule in to_add {
            debug!(?rule, "adding routing rule");
            let mut request = self.handle.rule().add();
            *request.message_mut() = rules::message(rule);
            if let Err(e) = request.execute().await
                && errno(&e) != Some(EEXIST)
            {
                failures.push(Failure::Rule(rule, e));
            }
        }
        failures
    }

    async fn delete_rule(&self, message: RuleMessage) -> Result<(), rtnetlink::Error> {
        match self.handle.rule().del(message).execute().await {
            Err(e) if !matches!(errno(&e), Some(ENOENT | ESRCH)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Our rules in the kernel (with the message to delete each) and stale ones to delete.
    async fn read_rules(&self) -> Result<(BTreeMap<Rule, RuleMessage>, Vec<RuleMessage>), rtnetlink::Error> {
        let mut ours = BTreeMap::new();
        let mut stale = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let messages: Vec<RuleMessage> = self.handle.rule().get(version).execute().try_collect().await?;
            for message in messages {
                match rules::classify(&message) {
                    Classified::Foreign => {}
                    Classified::Ours(rule) => {
                        if ours.insert(rule, message.clone()).is_some() {
                            stale.push(message);
                        }
                    }
                    Classified::Stale => stale.push(message),
                }
            }
        }
        Ok((ours, stale))
    }

    /// Keeps `local default dev lo` in [`RELAY_TABLE`] for exactly the wanted families; anything else found
    /// in the table is removed. Failures for one family are pushed to `failures`.
    async fn sync_routes(&mut self, families: &BTreeSet<Family>, failures: &mut Vec<Failure>) -> Result<(), Failure> {
        let mut present = BTreeSet::new();
        for family in [Family::V4, Family::V6] {
            let dump = match family {
                Family::V4 => RouteMessageBuilder::<Ipv4Addr>::new().build(),
                Family::V6 => RouteMessageBuilder::<Ipv6Addr>::new().build(),
            };
            let routes: Vec<RouteMessage> =
                self.handle.route().get(dump).execute().try_collect().await.map_err(Failure::Read)?;
            for route in routes.into_iter().filter(|route| table_of(route) == RELAY_TABLE) {
                if is_our_local_default(&route) && families.contains(&family) && present.insert(family) {
                    continue;
                }
                debug!(?route, "removing route from the relay table");
                if let Err(e) = self.handle.route().del(route).execute().await
                    && !matches!(errno(&e), Some(ENOENT | ESRCH))
                {
                    failures.push(Failure::Route(family, e));
                }
            }
        }
        for &family in families.difference(&present) {
            let loopback = self.loopback().await?;
            let route = local_default(family, loopback);
            debug!(?route, "adding the local route to the relay table");
            if let Err(e) = self.handle.route().add(route).replace().execute().await {
                failures.push(Failure::Route(family, e));
            }
        }
        Ok(())
    }

    async fn loopback(&mut self) -> Result<u32, Failure> {
        if let Some(index) = self.loopback {
            return Ok(index);
        }
        let link = self.handle.link().get().match_name("lo".to_owned()).execute().try_next().await;
        match link {
            Ok(Some(link)) => {
                self.loopback = Some(link.header.index);
                Ok(link.header.index)
            }
            Ok(None) | Err(_) => Err(Failure::NoLoopback),
        }
    }
}

/// An IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

fn local_default(family: Family, loopback: u32) -> RouteMessage {
    let protocol = RouteProtocol::Other(ROUTE_PROTOCOL);
    if family == Family::V4 {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .table_id(RELAY_TABLE)
            .output_interface(loopback)
            .kind(RouteType::Local)
            .scope(RouteScope::Host)
            .protocol(protocol)
            .build()
    } else {
        RouteMessageBuilder::<Ipv6Addr>::new()
            .table_id(RELAY_TABLE)
            .output_interface(loopback)
            .kind(RouteType::Local)
            .scope(RouteScope::Host)
            .protocol(protocol)
            .build()
    }
}

fn table_of(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

fn is_our_local_default(route: &RouteMessage) -> bool {
    route.header.kind == RouteType::Local
        && route.header.destination_prefix_length == 0
        && route.header.protocol == RouteProtocol::Other(ROUTE_PROTOCOL)
}

/// The positive errno of a netlink error reply.
pub fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}
