//! What the speakers write to the API so operators can see who holds each IP: `L2Announcement` objects and
//! Events on the Services.
//!
//! [`reconcile`] is pure: from this node's placements and the objects that exist, it returns the writes to
//! make. The owner of an IP writes its object (moving it over a former owner's); the janitor (the first live
//! node by name) removes objects for IPs nobody announces. Deletes carry the resourceVersion that was read,
//! so a delete never removes an object another speaker has just rewritten.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_api::{L2Announcement, L2AnnouncementSpec, l2announcement_name};

use crate::desired::{ExternalIp, Placement};

/// A Service as the records need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID, for owner references and Events.
    pub uid: Option<String>,
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Create or replace the object (server-side apply).
    Apply {
        /// The Service the object belongs to (its namespace, and the owner reference).
        owner: ServiceRef,
        /// Object name.
        name: String,
        /// Desired spec.
        spec: L2AnnouncementSpec,
    },
    /// Delete the object if it is still at `resource_version`.
    Delete {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The version read.
        resource_version: Option<String>,
    },
}

/// The inputs of [`reconcile`].
#[derive(Debug)]
pub struct RecordInputs<'a> {
    /// This node.
    pub me: &'a str,
    /// Whether this node cleans up objects of IPs nobody announces.
    pub janitor: bool,
    /// Every IP in use, with its Services.
    pub ips: &'a [ExternalIp],
    /// This node's placement of every IP.
    pub placed: &'a BTreeMap<IpAddr, Placement>,
    /// Interfaces this node announces each of its IPs on.
    pub interfaces: &'a BTreeMap<IpAddr, Vec<String>>,
    /// When this node took each of its IPs (RFC 3339).
    pub since: &'a BTreeMap<IpAddr, String>,
    /// Services by `namespace/name`.
    pub services: &'a BTreeMap<String, ServiceRef>,
    /// The objects that exist.
    pub existing: &'a [&'a L2Announcement],
}

fn key_of(obj: &L2Announcement) -> (String, String) {
    (obj.metadata.namespace.clone().unwrap_or_default(), obj.metadata.name.clone().unwrap_or_default())
}

/// The writes that make the objects match this node's view; see the module doc.
pub fn reconcile(input: &RecordInputs<'_>) -> Vec<Write> {
    let mut writes = Vec::new();
    let mut by_ip: BTreeMap<IpAddr, Vec<&L2Announcement>> = BTreeMap::new();
    for obj in input.existing {
        match obj.spec.ip.parse::<IpAddr>() {
            Ok(ip) => by_ip.entry(ip).or_default().push(obj),
            // Not ours to interpret; the janitor removes it.
            Err(_) if input.janitor => writes.push(delete(obj)),
            Err(_) => {}
        }
    }
    for ext in input.ips {
        let objects = by_ip.remove(&ext.ip).unwrap_or_default();
        match input.placed.get(&ext.ip) {
            Some(Placement::Announce { .. }) => {
                let Some(owner) = ext.services.iter().find_map(|s| input.services.get(s)) else { continue };
                let name = l2announcement_name(ext.ip);
                let spec = L2AnnouncementSpec {
                    ip: ext.ip.to_string(),
                    service: owner.name.clone(),
                    services: ext.services.iter().cloned().collect(),
                    node: input.me.to_owned(),
                    interfaces: input.interfaces.get(&ext.ip).cloned().unwrap_or_default(),
                    since: input.since.get(&ext.ip).cloned().unwrap_or_default(),
                };
                let wanted_key = (owner.namespace.clone(), name.clone());
                let mut current = false;
                for obj in objects {
                    if key_of(obj) != wanted_key {
                        writes.push(delete(obj));
                    } else if obj.spec == spec {
                        current = true;
                    }
                }
                if !current {
                    writes.push(Write::Apply { owner: owner.clone(), name, spec });
                }
            }
            // Another node owns it and writes the object.
            Some(Placement::OtherOwner(_)) => {}
            _ if input.janitor => writes.extend(objects.into_iter().map(delete)),
            _ => {}
        }
    }
    // Objects of IPs no Service uses any more.
    if input.janitor {
        writes.extend(by_ip.into_values().flatten().map(delete));
    }
    writes
}

fn delete(obj: &L2Announcement) -> Write {
    let (namespace, name) = key_of(obj);
    Write::Delete { namespace, name, resource_version: obj.metadata.resource_version.clone() }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn svc() -> BTreeMap<String, ServiceRef> {
        let r = ServiceRef { namespace: "default".into(), name: "web".into(), uid: Some("u1".into()) };
        [("default/web".to_owned(), r)].into()
    }

    fn ext(ip: &str) -> ExternalIp {
        ExternalIp { ip: ip.parse().unwrap(), pool: "p".into(), services: BTreeSet::from(["default/web".to_owned()]) }
    }

    fn object(ip: &str, node: &str, rv: &str) -> L2Announcement {
        let mut obj = L2Announcement::new(
            &l2announcement_name(ip.parse().unwrap()),
            L2AnnouncementSpec {
                ip: ip.into(),
                service: "web".into(),
                services: vec!["default/web".into()],
                node: node.into(),
                interfaces: vec!["eth0".into()],
                since: "t0".into(),
            },
        );
        obj.metadata.namespace = Some("default".into());
        obj.metadata.resource_version = Some(rv.into());
        obj
    }

    struct Case {
        placed: BTreeMap<IpAddr, Placement>,
        interfaces: BTreeMap<IpAddr, Vec<String>>,
        since: BTreeMap<IpAddr, String>,
        services: BTreeMap<String, ServiceRef>,
    }

    impl Case {
        fn new(ip: &str, placement: Placement) -> Case {
            let ip: IpAddr = ip.parse().unwrap();
            Case {
                placed: [(ip, placement)].into(),
                interfaces: [(ip, vec!["eth0".to_owned()])].into(),
                since: [(ip, "t1".to_owned())].into(),
                services: svc(),
            }
        }

        fn run(&self, janitor: bool, ips: &[ExternalIp], existing: &[&L2Announcement]) -> Vec<Write> {
            reconcile(&RecordInputs {
                me: "node-2",
                janitor,
                ips,
                placed: &self.placed,
                interfaces: &self.interfaces,
                since: &self.since,
                services: &self.services,
                existing,
            })
        }
    }

    #[test]
    fn the_owner_moves_the_record_to_itself() {
        let case = Case::new("203.0.113.10", Placement::Announce { interfaces: vec![] });
        let old = object("203.0.113.10", "node-1", "5");
        let writes = case.run(false, &[ext("203.0.113.10")], &[&old]);
        let [Write::Apply { owner, name, spec }] = writes.as_slice() else { panic!("{writes:?}") };
        assert_eq!((owner.namespace.as_str(), name.as_str()), ("default", "ip-203-0-113-10"));
        assert_eq!((spec.node.as_str(), spec.since.as_str()), ("node-2", "t1"));
        // Once it is current, nothing more is written.
        let mut current = object("203.0.113.10", "node-2", "6");
        current.spec.since = "t1".into();
        assert_eq!(case.run(false, &[ext("203.0.113.10")], &[&current]), vec![]);
    }

    #[test]
    fn records_of_unannounced_ips_are_removed_by_the_janitor_only() {
        let case = Case::new("203.0.113.10", Placement::NoEligibleNode);
        let old = object("203.0.113.10", "node-1", "5");
        assert_eq!(case.run(false, &[ext("203.0.113.10")], &[&old]), vec![]);
        let expected = Write::Delete {
            namespace: "default".into(),
            name: "ip-203-0-113-10".into(),
            resource_version: Some("5".into()),
        };
        assert_eq!(case.run(true, &[ext("203.0.113.10")], &[&old]), vec![expected.clone()]);
        // The IP is no longer used at all.
        assert_eq!(case.run(true, &[], &[&old]), vec![expected]);
    }

    #[test]
    fn records_of_other_owners_are_left_alone() {
        let case = Case::new("203.0.113.10", Placement::OtherOwner("node-3".into()));
        let old = object("203.0.113.10", "node-1", "5");
        assert_eq!(case.run(true, &[ext("203.0.113.10")], &[&old]), vec![]);
    }
}
