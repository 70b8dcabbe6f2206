use std::sync::Arc;

use ferrolb_api::k8s::{
    LoadBalancerIngress, LoadBalancerStatus, ObjectMeta, Service, ServicePort, ServiceSpec, ServiceStatus, Time, jiff,
};
use ferrolb_api::{IPAddressPool, IPAddressPoolSpec};

use super::{Snapshot, State, plan};
use crate::config::{Config, IpMode};

fn config() -> Config {
    Config {
        load_balancer_class: "ferrolb.io/lb".into(),
        handle_unclassed: true,
        ip_mode: IpMode::Vip,
        lease_namespace: "x".into(),
        lease_name: "x".into(),
        identity: "x".into(),
        lease_duration: std::time::Duration::from_secs(15),
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::from_second(1_800_000_000).unwrap())
}

fn pool(name: &str, addresses: &[&str]) -> Arc<IPAddressPool> {
    Arc::new(IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        },
    ))
}

/// A LoadBalancer Service created at `created` seconds, optionally already holding `ip` in status.
fn svc(name: &str, created: i64, ip: Option<&str>) -> Arc<Service> {
    Arc::new(Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap())),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort { port: 80, ..Default::default() }]),
            ..Default::default()
        }),
        status: ip.map(|ip| ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.into()),
                    ip_mode: Some("VIP".into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }),
    })
}

fn planned_ips(plan: &super::Plan, name: &str) -> Option<Vec<String>> {
    plan.services.iter().find(|w| w.key.name() == name).map(|w| w.ingress.iter().map(|ip| ip.to_string()).collect())
}

#[test]
fn restores_published_addresses_before_allocating() {
    // "new" was created first but is pending; "old" already holds .0 in status (from a previous leader).
    let snapshot = Snapshot {
        services: vec![svc("new", 1, None), svc("old", 2, Some("198.51.100.0"))],
        pools: vec![pool("p", &["198.51.100.0/30"])],
        ..Default::default()
    };
    let mut state = State::default();
    let plan = plan(&mut state, &snapshot, &config(), &now());
    assert_eq!(planned_ips(&plan, "new"), Some(vec!["198.51.100.1".to_owned()]));
    // "old" needs only its annotation, not a new status.
    let old = plan.services.iter().find(|w| w.key.name() == "old").unwrap();
    assert!(!old.write_status);
    assert_eq!(old.pool_annotation, Some(Some("p".to_owned())));
    // A restart is silent for Services that keep their address: only "new" gets an Event.
    let events: Vec<&str> = plan.events.iter().map(|e| e.key.name()).collect();
    assert_eq!(events, ["new"]);
}

#[test]
fn unchanged_cluster_plans_nothing_twice() {
    let snapshot = Snapshot {
        services: vec![svc("a", 1, None)],
        pools: vec![pool("p", &["198.51.100.0/30"])],
        ..Default::default()
    };
    let mut state = State::default();
    let first = plan(&mut state, &snapshot, &config(), &now());
    assert_eq!(first.services.len(), 1);
    assert_eq!(first.events.len(), 1);
    // The store has not caught up yet: the same write must not be sent again, nor the Event.
    let second = plan(&mut state, &snapshot, &config(), &now());
    assert!(second.services.is_empty(), "{:?}", second.services);
    assert!(second.events.is_empty());
    // A failed write is retried.
    state.forget_service_write(&first.services[0].key);
    let third = plan(&mut state, &snapshot, &config(), &now());
    assert_eq!(third.services.len(), 1);
}

#[test]
fn deleted_service_frees_its_address() {
    let pools = vec![pool("p", &["198.51.100.0/32"])];
    let mut state = State::default();
    let one = Snapshot { services: vec![svc("a", 1, None)], pools: pools.clone(), ..Default::default() };
    let _ = plan(&mut state, &one, &config(), &now());
    let two = Snapshot { services: vec![svc("b", 2, None)], pools, ..Default::default() };
    let plan = plan(&mut state, &two, &config(), &now());
    assert_eq!(planned_ips(&plan, "b"), Some(vec!["198.51.100.0".to_owned()]));
}

#[test]
fn failure_is_an_event_and_a_pending_status() {
    let snapshot = Snapshot {
        services: vec![svc("a", 1, None), svc("b", 2, None)],
        pools: vec![pool("p", &["198.51.100.0/32"])],
        ..Default::default()
    };
    let mut state = State::default();
    let plan = plan(&mut state, &snapshot, &config(), &now());
    let warning = plan.events.iter().find(|e| e.key.name() == "b").unwrap();
    assert!(warning.warning);
    assert_eq!(warning.reason, "PoolExhausted");
    assert_eq!(plan.failures, vec!["pool_exhausted"]);
    assert!(planned_ips(&plan, "b").is_none(), "a pending Service without status needs no write");
}

#[test]
fn pool_gets_finalizer_and_status() {
    let snapshot = Snapshot { services: vec![], pools: vec![pool("p", &["198.51.100.0/30"])], ..Default::default() };
    let mut state = State::default();
    let plan = plan(&mut state, &snapshot, &config(), &now());
    assert_eq!(plan.finalizers.len(), 1);
    assert_eq!(plan.finalizers[0].finalizers, vec![ferrolb_api::POOL_FINALIZER.to_owned()]);
    let status = &plan.pool_statuses[0].status;
    assert_eq!(status.available_ipv4, 4);
    assert_eq!(status.available.as_deref(), Some("4"));
}

#[test]
fn a_pool_of_everything_hands_out_no_reserved_address_and_counts_exactly() {
    let snapshot = Snapshot {
        services: vec![svc("a", 1, None)],
        pools: vec![pool("all", &["0.0.0.0/0", "::/0"])],
        ..Default::default()
    };
    let plan = plan(&mut State::default(), &snapshot, &config(), &now());
    assert_eq!(planned_ips(&plan, "a"), Some(vec!["1.0.0.0".to_owned()]), "not 0.0.0.0");
    let status = &plan.pool_statuses[0].status;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    let v4 = (1u128 << 32) - ((1 << 25) + (1 << 16) + (1 << 28) + 1) - 1;
    let v6 = u128::MAX - (2 + (1 << 118) + (1 << 120)) + 1;
    assert_eq!(ready.message.split(';').next().unwrap(), format!("{v4} IPv4 and {v6} IPv6 addresses free"));
    assert!(
        ready.message.ends_with("are unspecified, loopback, link-local, multicast, broadcast and are never handed out"),
        "{}",
        ready.message
    );
}

#[test]
fn a_conflict_moves_the_service_says_why_and_shows_in_the_pool() {
    let mut snapshot = Snapshot {
        services: vec![svc("web", 1, Some("198.51.100.0"))],
        pools: vec![pool("p", &["198.51.100.0/30"])],
        ..Default::default()
    };
    let mut state = State::default();
    plan(&mut state, &snapshot, &config(), &now());
    snapshot.conflicts.insert("198.51.100.0".parse().unwrap(), "02:00:00:00:00:99".into());
    let moved = plan(&mut state, &snapshot, &config(), &now());
    assert_eq!(planned_ips(&moved, "web"), Some(vec!["198.51.100.1".to_owned()]));
    let event = moved.events.iter().find(|e| e.key.name() == "web").expect("an Event");
    assert_eq!((event.reason.as_str(), event.warning), ("IPReassigned", true));
    assert!(
        event.note.contains("replaces 198.51.100.0, which another host on the LAN answers for (02:00:00:00:00:99)")
    );
    let status = &moved.pool_statuses.last().expect("the pool's status").status;
    assert_eq!(status.conflicts, ["198.51.100.0 answered by 02:00:00:00:00:99"]);
}

/// `svc` with the metadata a previous pass wrote: the pool annotation, and the cleanup finalizer if `finalizer`.
fn written_svc(name: &str, ip: &str, finalizer: bool) -> Service {
    let mut service = (*svc(name, 1, Some(ip))).clone();
    service.metadata.annotations = Some([(ferrolb_api::ALLOCATED_FROM_POOL.to_owned(), "p".to_owned())].into());
    if finalizer {
        service.metadata.finalizers = Some(vec![ferrolb_api::LB_CLEANUP_FINALIZER.to_owned()]);
    }
    service
}

#[test]
fn the_cleanup_finalizer_goes_with_an_address() {
    let pools = vec![pool("p", &["198.51.100.0/32"])];
    let mut state = State::default();
    // Assigned: the annotation and the finalizer are written with the status.
    let one =
        Snapshot { services: vec![svc("a", 1, None), svc("b", 2, None)], pools: pools.clone(), ..Default::default() };
    let first = plan(&mut state, &one, &config(), &now());
    let a = first.services.iter().find(|w| w.key.name() == "a").unwrap();
    assert!(a.write_status);
    assert_eq!(a.cleanup_finalizer, Some(true));
    // Pending: no finalizer, nothing to clean up.
    assert!(first.services.iter().all(|w| w.key.name() != "b"), "{:?}", first.services);

    // Written: nothing more to do.
    let done = Snapshot {
        services: vec![Arc::new(written_svc("a", "198.51.100.0", true))],
        pools: pools.clone(),
        ..Default::default()
    };
    assert!(plan(&mut state, &done, &config(), &now()).services.is_empty());

    // A Service from before the finalizer (an upgrade): the finalizer alone is added.
    let mut fresh = State::default();
    let old =
        Snapshot { services: vec![Arc::new(written_svc("a", "198.51.100.0", false))], pools, ..Default::default() };
    let upgrade = plan(&mut fresh, &old, &config(), &now());
    assert_eq!(upgrade.services.len(), 1);
    let w = &upgrade.services[0];
    assert!(!w.write_status && w.pool_annotation.is_none(), "{w:?}");
    assert_eq!(w.cleanup_finalizer, Some(true));
}

#[test]
fn a_type_change_clears_everything_and_removes_the_finalizer() {
    let mut service = written_svc("a", "198.51.100.0", true);
    service.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let snapshot = Snapshot {
        services: vec![Arc::new(service)],
        pools: vec![pool("p", &["198.51.100.0/32"])],
        ..Default::default()
    };
    let plan = plan(&mut State::default(), &snapshot, &config(), &now());
    let w = &plan.services[0];
    assert!(w.write_status && w.ingress.is_empty(), "{w:?}");
    assert_eq!(w.pool_annotation, Some(None));
    assert_eq!(w.cleanup_finalizer, Some(false));
}

#[test]
fn a_deleted_service_loses_only_the_finalizer_and_frees_its_address_at_once() {
    let pools = vec![pool("p", &["198.51.100.0/32"])];
    let mut deleting = written_svc("a", "198.51.100.0", true);
    deleting.metadata.deletion_timestamp = Some(now());
    // Someone else's finalizer holds the object: ferrolb's goes, the address is free in the same pass.
    deleting.metadata.finalizers.as_mut().unwrap().push("example.com/hold".into());
    let snapshot =
        Snapshot { services: vec![Arc::new(deleting.clone()), svc("b", 2, None)], pools, ..Default::default() };
    let mut state = State::default();
    let plan = plan(&mut state, &snapshot, &config(), &now());
    let a = plan.services.iter().find(|w| w.key.name() == "a").unwrap();
    assert!(!a.write_status && a.pool_annotation.is_none(), "no pointless writes on a deleted object: {a:?}");
    assert_eq!(a.cleanup_finalizer, Some(false));
    assert_eq!(planned_ips(&plan, "b"), Some(vec!["198.51.100.0".to_owned()]));

    // Without the annotation (removed by hand) the finalizer is still ferrolb's to remove...
    deleting.metadata.annotations = None;
    let alone = Snapshot { services: vec![Arc::new(deleting.clone())], ..Default::default() };
    let again = super::plan(&mut State::default(), &alone, &config(), &now());
    assert_eq!(again.services[0].cleanup_finalizer, Some(false));
    // ...but not on a Service of another class: that finalizer may be another load balancer's.
    deleting.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    let other = Snapshot { services: vec![Arc::new(deleting)], ..Default::default() };
    assert!(super::plan(&mut State::default(), &other, &config(), &now()).services.is_empty());
}
