//! The controller against a real kube-apiserver: allocation, every request kind and failure Event,
//! sharing, dual-stack, pool rules, class filtering, restarts, two replicas, stepped wall clocks and pool
//! edits.

mod common;

use std::time::Duration;

use common::*;
use ferrolb_api::k8s::{Service, jiff};
use ferrolb_e2e::control_plane::Components;
use ferrolb_e2e::{ControlPlane, ControllerProcess, wait_for};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};

async fn cluster() -> anyhow::Result<ControlPlane> {
    ControlPlane::start(Components::ApiServer).await
}

#[tokio::test]
async fn external_ip_shows_in_kubectl_get_svc() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply(&pool("demo", &["198.51.100.192/27", "2001:db8:100::f000/116"], ""))?;
    plane.apply(&service("default", "web", 80, &[], ""))?;
    let got = wait_ips(&plane, "default", "web", 1).await?;
    assert_eq!(got, ["198.51.100.192"]);

    let table = plane.kubectl(&["get", "svc", "web", "-n", "default"])?;
    assert!(table.contains("EXTERNAL-IP") && table.contains("198.51.100.192"), "kubectl get svc shows:\n{table}");
    let mode = plane.kubectl(&["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ipMode}"])?;
    assert_eq!(mode, "VIP");
    let annotation = plane.kubectl(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.metadata.annotations.ferrolb\\.io/ip-allocated-from-pool}",
    ])?;
    assert_eq!(annotation, "demo");
    let message = wait_event(&plane, "default", "web", "IPAllocated").await?;
    assert!(message.contains("198.51.100.192") && message.contains("demo"), "{message}");

    // Pool status and printer columns.
    wait_for("pool status", SOON, || async {
        let out = plane.kubectl(&[
            "get",
            "ipaddresspools",
            "demo",
            "-o",
            "jsonpath={.status.assigned}/{.status.availableIPv4}/{.status.availableIPv6}",
        ])?;
        Ok((out == "1/31/4096").then_some(()))
    })
    .await?;
    let table = plane.kubectl(&["get", "ipaddresspools"])?;
    for column in ["ADDRESSES", "ASSIGNED", "AVAILABLE", "AGE"] {
        assert!(table.contains(column), "missing {column} in:\n{table}");
    }
    let ready = plane.kubectl(&[
        "get",
        "ipaddresspools",
        "demo",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ])?;
    assert_eq!(ready, "True");
    // The pool carries the protection finalizer.
    let finalizers = plane.kubectl(&["get", "ipaddresspools", "demo", "-o", "jsonpath={.metadata.finalizers}"])?;
    assert!(finalizers.contains("ferrolb.io/pool-protection"), "{finalizers}");
    Ok(())
}

#[tokio::test]
async fn invalid_pools_are_rejected_with_clear_messages() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let cases = [
        ("198.51.100.0/33", "is not a CIDR"),
        ("not-an-address", "is not a CIDR"),
        ("198.51.100.5/24", "has bits set after the prefix length"),
        ("198.51.100.20-198.51.100.10", "starts after it ends"),
        ("2001:db8::ff-2001:db8::1", "starts after it ends"),
        ("198.51.100.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("127.0.0.0/8", "holds only unspecified, loopback, link-local, multicast or broadcast addresses"),
        ("224.0.0.10-224.0.0.20", "holds only unspecified, loopback, link-local, multicast or broadcast"),
        ("fe80::/64", "can never be LoadBalancer IPs"),
        ("ff02::1/128", "can never be LoadBalancer IPs"),
        ("0.0.0.0/32", "can never be LoadBalancer IPs"),
    ];
    for (entry, message) in cases {
        let out = plane.kubectl_raw(&["apply", "-f", "-"], Some(&pool("bad", &[entry], "")))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{entry} was accepted");
        assert!(stderr.contains(message), "{entry}: expected {message:?} in {stderr}");
    }
    let empty = "apiVersion: ferrolb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: bad}\nspec: {addresses: []}\n";
    let out = plane.kubectl_raw(&["apply", "-f", "-"], Some(empty))?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("addresses must list at least one CIDR or range"));
    // And the good forms are accepted, with defaults filled in.
    plane.apply(&pool("good", &["198.51.100.10-198.51.100.20", "2001:db8:1::/64", "198.51.100.7/32"], ""))?;
    // A pool that covers reserved addresses among others is fine: they are left out.
    plane.apply(&pool("everything", &["0.0.0.0/0", "::/0"], "  autoAssign: false\n"))?;
    let auto =
        plane.kubectl(&["get", "ipaddresspools", "good", "-o", "jsonpath={.spec.autoAssign}/{.spec.avoidBuggyIPs}"])?;
    assert_eq!(auto, "true/false");
    let explain = plane.kubectl(&["explain", "ipaddresspools.spec.addresses"])?;
    assert!(explain.contains("inclusive ranges"), "{explain}");
    Ok(())
}

#[tokio::test]
async fn request_kinds_and_failure_events() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply(&pool("general", &["198.51.100.0/30"], ""))?;
    plane.apply(&pool("reserved", &["203.0.113.128/30"], "  autoAssign: false\n"))?;
    plane.apply(&pool("v4only", &["192.0.2.0/30"], "  autoAssign: false\n"))?;

    // spec.loadBalancerIP, ferrolb's annotation, and both MetalLB spellings.
    plane.apply(&service("default", "by-spec", 80, &[], "  loadBalancerIP: 198.51.100.2\n"))?;
    plane.apply(&service("default", "by-annotation", 80, &[("ferrolb.io/loadBalancerIPs", "203.0.113.129")], ""))?;
    plane.apply(&service(
        "default",
        "by-metallb",
        80,
        &[("metallb.universe.tf/loadBalancerIPs", "203.0.113.130")],
        "",
    ))?;
    plane.apply(&service("default", "by-pool", 80, &[("metallb.io/address-pool", "reserved")], ""))?;
    assert_eq!(wait_ips(&plane, "default", "by-spec", 1).await?, ["198.51.100.2"]);
    assert_eq!(wait_ips(&plane, "default", "by-annotation", 1).await?, ["203.0.113.129"]);
    assert_eq!(wait_ips(&plane, "default", "by-metallb", 1).await?, ["203.0.113.130"]);
    assert_eq!(wait_ips(&plane, "default", "by-pool", 1).await?, ["203.0.113.128"]);

    // Each failure leaves the Service pending with a Warning that says why.
    let failing = [
        ("unknown-pool", vec![("ferrolb.io/address-pool", "nope")], "", "UnknownPool", "pool nope does not exist"),
        (
            "outside",
            vec![("ferrolb.io/loadBalancerIPs", "198.51.100.200")],
            "",
            "IPNotInAnyPool",
            "not in any IPAddressPool",
        ),
        ("taken", vec![("ferrolb.io/loadBalancerIPs", "198.51.100.2")], "", "IPInUse", "in use by default/by-spec"),
        (
            "bad-ip",
            vec![("ferrolb.io/loadBalancerIPs", "198.51.100.999")],
            "",
            "InvalidRequest",
            "is not an IP address",
        ),
        (
            "v6-from-v4",
            vec![("ferrolb.io/address-pool", "v4only")],
            "  ipFamilies: [IPv6]\n  ipFamilyPolicy: SingleStack\n",
            "FamilyUnavailable",
            "no IPv6 addresses",
        ),
    ];
    for (name, annotations, extra, reason, text) in &failing {
        plane.apply(&service("default", name, 80, annotations, extra))?;
        let message = wait_event(&plane, "default", name, reason).await?;
        assert!(message.contains(text), "{name}: {message}");
        assert!(ips(&plane, "default", name).await?.is_empty(), "{name} got an address");
    }
    // Exhaustion: general has .0-.3, .2 is taken by by-spec.
    for name in ["fill-a", "fill-b", "fill-c"] {
        plane.apply(&service("default", name, 80, &[], ""))?;
        wait_ips(&plane, "default", name, 1).await?;
    }
    plane.apply(&service("default", "one-too-many", 80, &[], ""))?;
    let message = wait_event(&plane, "default", "one-too-many", "PoolExhausted").await?;
    assert!(message.contains("no free IPv4 address left in pool general"), "{message}");
    // Freeing an address lets the pending Service through, and the freed address is reused.
    let freed = ips(&plane, "default", "fill-a").await?;
    plane.kubectl(&["delete", "svc", "fill-a"])?;
    assert_eq!(wait_ips(&plane, "default", "one-too-many", 1).await?, freed);
    assert_no_duplicates(&all_ips(&plane).await?);
    Ok(())
}

#[tokio::test]
async fn sharing_allowed_and_refused() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply(&pool("p", &["198.51.100.0/29"], ""))?;
    plane.apply(&service("default", "http", 80, &[("ferrolb.io/allow-shared-ip", "web")], ""))?;
    let first = wait_ips(&plane, "default", "http", 1).await?;
    plane.apply(&service("default", "https", 443, &[("metallb.io/allow-shared-ip", "web")], ""))?;
    assert_eq!(wait_ips(&plane, "default", "https", 1).await?, first, "same key, other port: shares");
    plane.apply(&service("default", "clash", 80, &[("ferrolb.io/allow-shared-ip", "web")], ""))?;
    assert_ne!(wait_ips(&plane, "default", "clash", 1).await?, first, "same port: never shares");
    plane.apply(&service("default", "nokey", 22, &[], ""))?;
    assert_ne!(wait_ips(&plane, "default", "nokey", 1).await?, first);
    // Asking for the shared address without the key is refused with the reason.
    plane.apply(&service("default", "intruder", 8080, &[("ferrolb.io/loadBalancerIPs", first[0].as_str())], ""))?;
    let message = wait_event(&plane, "default", "intruder", "IPInUse").await?;
    assert!(message.contains(&first[0]), "{message}");
    // ETP Local Services share only when they select the same pods.
    plane.apply(&service(
        "default",
        "local-a",
        81,
        &[("ferrolb.io/allow-shared-ip", "web")],
        "  externalTrafficPolicy: Local\n",
    ))?;
    let local_a = wait_ips(&plane, "default", "local-a", 1).await?;
    assert_ne!(local_a, first, "Local with different pods must not share");
    Ok(())
}

#[tokio::test]
async fn dual_stack_services() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply(&pool("dual", &["198.51.100.0/30", "2001:db8:100::/126"], ""))?;
    let dual = "  ipFamilies: [IPv6, IPv4]\n  ipFamilyPolicy: RequireDualStack\n";
    plane.apply(&service("default", "both", 80, &[], dual))?;
    let got = wait_ips(&plane, "default", "both", 2).await?;
    assert_eq!(got, ["2001:db8:100::", "198.51.100.0"]);
    plane.apply(&service("default", "prefer", 80, &[], "  ipFamilyPolicy: PreferDualStack\n"))?;
    assert_eq!(wait_ips(&plane, "default", "prefer", 2).await?.len(), 2);
    plane.apply(&service("default", "v6", 80, &[], "  ipFamilies: [IPv6]\n  ipFamilyPolicy: SingleStack\n"))?;
    assert_eq!(wait_ips(&plane, "default", "v6", 1).await?, ["2001:db8:100::2"]);
    let status = plane.kubectl(&[
        "get",
        "ipaddresspools",
        "dual",
        "-o",
        "jsonpath={.status.assignedIPv4}/{.status.assignedIPv6}",
    ])?;
    assert_eq!(status, "2/3");
    Ok(())
}

#[tokio::test]
async fn auto_assign_and_service_allocation() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.kubectl(&["create", "namespace", "team"])?;
    plane.kubectl(&["create", "namespace", "gold"])?;
    plane.kubectl(&["label", "namespace", "gold", "tier=gold"])?;
    plane.apply(&pool("manual", &["192.0.2.0/30"], "  autoAssign: false\n"))?;
    plane.apply(&pool("general", &["198.51.100.0/30"], ""))?;
    plane.apply(&pool(
        "team-pool",
        &["203.0.113.0/30"],
        "  serviceAllocation:\n    priority: 10\n    namespaces: [team]\n",
    ))?;
    plane.apply(&pool(
        "gold-pool",
        &["203.0.113.64/30"],
        "  serviceAllocation:\n    priority: 5\n    namespaceSelectors: [{matchLabels: {tier: gold}}]\n    serviceSelectors: [{matchExpressions: [{key: expose, operator: In, values: [\"yes\"]}]}]\n",
    ))?;
    plane.apply(&service("default", "plain", 80, &[], ""))?;
    assert_eq!(
        wait_ips(&plane, "default", "plain", 1).await?,
        ["198.51.100.0"],
        "never from the autoAssign=false pool"
    );
    plane.apply(&service("team", "svc", 80, &[], ""))?;
    assert_eq!(wait_ips(&plane, "team", "svc", 1).await?, ["203.0.113.0"]);
    let labelled = service("gold", "svc", 80, &[], "")
        .replace("  namespace: gold\n", "  namespace: gold\n  labels: {expose: \"yes\"}\n");
    plane.apply(&labelled)?;
    assert_eq!(wait_ips(&plane, "gold", "svc", 1).await?, ["203.0.113.64"]);
    plane.apply(&service("gold", "unlabelled", 80, &[], ""))?;
    assert_eq!(wait_ips(&plane, "gold", "unlabelled", 1).await?, ["198.51.100.1"]);
    plane.apply(&service("default", "named-manual", 80, &[("ferrolb.io/address-pool", "manual")], ""))?;
    assert_eq!(wait_ips(&plane, "default", "named-manual", 1).await?, ["192.0.2.0"]);
    plane.apply(&service("default", "wrong-team", 80, &[("ferrolb.io/address-pool", "team-pool")], ""))?;
    let message = wait_event(&plane, "default", "wrong-team", "PoolNotAllowed").await?;
    assert!(message.contains("team-pool"), "{message}");
    // Labelling a namespace later moves nothing that is already assigned, but new Services follow the label.
    plane.kubectl(&["label", "namespace", "team", "tier=gold"])?;
    let again = labelled.replace("namespace: gold", "namespace: team").replace("name: svc", "name: svc2");
    plane.apply(&again)?;
    assert_eq!(wait_ips(&plane, "team", "svc2", 1).await?, ["203.0.113.65"]);
    assert_eq!(ips(&plane, "team", "svc").await?, ["203.0.113.0"]);
    Ok(())
}

#[tokio::test]
async fn class_filtering() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &["--ignore-unclassed"])?;
    plane.apply(&pool("p", &["198.51.100.0/30"], ""))?;
    plane.apply(&service("default", "ours", 80, &[], "  loadBalancerClass: ferrolb.io/lb\n"))?;
    plane.apply(&service("default", "other", 80, &[], "  loadBalancerClass: example.com/other\n"))?;
    plane.apply(&service("default", "unclassed", 80, &[], ""))?;
    assert_eq!(wait_ips(&plane, "default", "ours", 1).await?, ["198.51.100.0"]);
    // The controller has run passes since: make sure with a later Service, then check the others untouched.
    plane.apply(&service("default", "ours-2", 80, &[], "  loadBalancerClass: ferrolb.io/lb\n"))?;
    wait_ips(&plane, "default", "ours-2", 1).await?;
    for name in ["other", "unclassed"] {
        assert!(ips(&plane, "default", name).await?.is_empty(), "{name} got an address");
        let ann = plane.kubectl(&["get", "svc", name, "-o", "jsonpath={.metadata.annotations}"])?;
        assert!(!ann.contains("ferrolb.io"), "{name} was touched: {ann}");
        let events = plane.kubectl(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "name",
        ])?;
        assert!(events.trim().is_empty(), "{name} got events: {events}");
    }
    Ok(())
}

#[tokio::test]
async fn type_change_releases_the_address() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply(&pool("p", &["198.51.100.9/32"], ""))?;
    plane.apply(&service("default", "first", 80, &[], ""))?;
    assert_eq!(wait_ips(&plane, "default", "first", 1).await?, ["198.51.100.9"]);
    plane.apply(&service("default", "second", 80, &[], ""))?;
    wait_event(&plane, "default", "second", "PoolExhausted").await?;
    let api: Api<Service> = Api::namespaced(plane.client.clone(), "default");
    let patch = serde_json::json!({ "spec": { "type": "ClusterIP" } });
    api.patch("first", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    assert_eq!(wait_ips(&plane, "default", "second", 1).await?, ["198.51.100.9"]);
    wait_for("first's status and annotation cleared", SOON, || async {
        let svc = api.get("first").await?;
        let cleared = svc.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).unwrap_or_default().is_empty()
            && !svc.metadata.annotations.unwrap_or_default().contains_key("ferrolb.io/ip-allocated-from-pool");
        Ok(cleared.then_some(()))
    })
    .await?;
    Ok(())
}

/// The Service's finalizers.
async fn finalizers(api: &Api<Service>, name: &str) -> anyhow::Result<Vec<String>> {
    Ok(api.get(name).await?.metadata.finalizers.unwrap_or_default())
}

const CLEANUP: &str = "service.kubernetes.io/load-balancer-cleanup";

/// Waits until the Service carries the cleanup finalizer.
async fn wait_cleanup_finalizer(api: &Api<Service>, name: &str) -> anyhow::Result<()> {
    wait_for(&format!("{name}'s cleanup finalizer"), SOON, || async {
        Ok(finalizers(api, name).await?.iter().any(|f| f == CLEANUP).then_some(()))
    })
    .await
}

#[tokio::test]
async fn the_cleanup_finalizer_follows_the_address_and_deletion_waits_for_it() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let mut controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply(&pool("p", &["198.51.100.9/32"], ""))?;
    plane.apply(&service("default", "first", 80, &[], ""))?;
    assert_eq!(wait_ips(&plane, "default", "first", 1).await?, ["198.51.100.9"]);
    let api: Api<Service> = Api::namespaced(plane.client.clone(), "default");
    assert!(finalizers(&api, "first").await?.iter().any(|f| f == CLEANUP), "no cleanup finalizer with the address");

    // A pending Service has nothing to clean up.
    plane.apply(&service("default", "second", 80, &[], ""))?;
    wait_event(&plane, "default", "second", "PoolExhausted").await?;
    assert!(finalizers(&api, "second").await?.is_empty());

    // Another type: the finalizer goes with the address; back to LoadBalancer, it returns.
    let to = |t: &str| serde_json::json!({ "spec": { "type": t } });
    api.patch("first", &PatchParams::default(), &Patch::Merge(&to("ClusterIP"))).await?;
    wait_for("first's finalizer removed", SOON, || async {
        Ok(finalizers(&api, "first").await?.is_empty().then_some(()))
    })
    .await?;
    assert_eq!(wait_ips(&plane, "default", "second", 1).await?, ["198.51.100.9"]);
    wait_cleanup_finalizer(&api, "second").await?;

    // Deleted while someone else's finalizer holds the object: ferrolb lets go of the address at once (first,
    // back as a LoadBalancer, gets it), removes only its own finalizer, and the object waits for the other.
    api.patch("first", &PatchParams::default(), &Patch::Merge(&to("LoadBalancer"))).await?;
    wait_event(&plane, "default", "first", "PoolExhausted").await?;
    let hold = serde_json::json!({ "metadata": { "finalizers": ["example.com/hold", CLEANUP] } });
    api.patch("second", &PatchParams::default(), &Patch::Merge(&hold)).await?;
    api.delete("second", &DeleteParams::default()).await?;
    assert_eq!(wait_ips(&plane, "default", "first", 1).await?, ["198.51.100.9"]);
    wait_for("only the other finalizer left on second", SOON, || async {
        Ok((finalizers(&api, "second").await? == ["example.com/hold"]).then_some(()))
    })
    .await?;
    let release = serde_json::json!({ "metadata": { "finalizers": null } });
    api.patch("second", &PatchParams::default(), &Patch::Merge(&release)).await?;

    // Deleted with the controller running: gone once the controller let go.
    api.delete("first", &DeleteParams::default()).await?;
    wait_for("first deleted", SOON, || async { Ok(api.get_opt("first").await?.is_none().then_some(())) }).await?;

    // After an uninstall (no controller left), `ferrolb release-finalizers` lets the rest go: a Service
    // holding an address, and the pool it came from.
    plane.apply(&service("default", "third", 80, &[], ""))?;
    wait_cleanup_finalizer(&api, "third").await?;
    controller.kill()?;
    let output = std::process::Command::new(ferrolb_e2e::ferrolb_binary()?)
        .args(["release-finalizers", "--kubeconfig"])
        .arg(plane.kubeconfig())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "release-finalizers failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.trim(), "released 1 Services and 1 IPAddressPools");
    assert!(finalizers(&api, "third").await?.is_empty());
    assert_eq!(ips(&plane, "default", "third").await?, ["198.51.100.9"], "the address stays for a reinstall");
    api.delete("third", &DeleteParams::default()).await?;
    plane.kubectl(&["delete", "ipaddresspool", "p", "--timeout", "20s"])?;
    assert!(api.get_opt("third").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn pool_shrink_and_delete() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply(&pool("a", &["198.51.100.0/30"], ""))?;
    for name in ["s0", "s1", "s2"] {
        plane.apply(&service("default", name, 80, &[], ""))?;
        wait_ips(&plane, "default", name, 1).await?;
    }
    // Shrink: s2 (198.51.100.2) leaves the pool and has nowhere to go.
    plane.apply(&pool("a", &["198.51.100.0/31"], ""))?;
    let message = wait_event(&plane, "default", "s2", "PoolExhausted").await?;
    assert!(message.contains("pool a"), "{message}");
    wait_for("s2 to lose its address", SOON, || async {
        Ok(ips(&plane, "default", "s2").await?.is_empty().then_some(()))
    })
    .await?;
    assert_eq!(ips(&plane, "default", "s0").await?, ["198.51.100.0"], "s0 must not move");
    // A new pool picks s2 up.
    plane.apply(&pool("b", &["192.0.2.8/30"], ""))?;
    assert_eq!(wait_ips(&plane, "default", "s2", 1).await?, ["192.0.2.8"]);

    // Deleting a pool in use waits, and says who holds it.
    plane.kubectl(&["delete", "ipaddresspool", "a", "--wait=false"])?;
    let message = wait_for("DeletionBlocked condition", SOON, || async {
        let out = plane.kubectl(&[
            "get",
            "ipaddresspool",
            "a",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"DeletionBlocked\")].message}",
        ])?;
        Ok((!out.is_empty()).then_some(out))
    })
    .await?;
    assert!(message.contains("default/s0") && message.contains("default/s1"), "{message}");
    assert_eq!(
        ips(&plane, "default", "s0").await?,
        ["198.51.100.0"],
        "holders keep their address while the pool is deleting"
    );
    // A new Service does not get an address from the deleting pool.
    plane.apply(&service("default", "s3", 80, &[], ""))?;
    assert_eq!(wait_ips(&plane, "default", "s3", 1).await?, ["192.0.2.9"]);
    let api: Api<Service> = Api::namespaced(plane.client.clone(), "default");
    api.delete("s0", &DeleteParams::default()).await?;
    api.delete("s1", &DeleteParams::default()).await?;
    wait_for("pool a to be gone", SOON, || async {
        let out = plane.kubectl_raw(&["get", "ipaddresspool", "a"], None)?;
        Ok((!out.status.success()).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn restart_mid_burst_moves_nothing() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let mut controller = ControllerProcess::start(&plane, "controller-1", &[])?;
    plane.apply(&pool("big", &["198.51.100.0/24"], ""))?;
    let manifests: Vec<String> = (0..200).map(|i| service("default", &format!("burst-{i:03}"), 80, &[], "")).collect();
    plane.apply(&manifests[..100].join("---\n"))?;
    // Kill it while it is still working through the burst.
    wait_for("some Services to get addresses", SOON, || async {
        Ok((all_ips(&plane).await?.len() >= 10).then_some(()))
    })
    .await?;
    plane.apply(&manifests[100..].join("---\n"))?;
    controller.kill()?;
    let before = all_ips(&plane).await?;
    assert!(!before.is_empty());
    assert_no_duplicates(&before);

    let _restarted = ControllerProcess::start(&plane, "controller-2", &[])?;
    let after = wait_for("all 200 Services to get addresses", Duration::from_secs(60), || async {
        let all = all_ips(&plane).await?;
        Ok((all.len() == 200).then_some(all))
    })
    .await?;
    assert_no_duplicates(&after);
    for (svc, ips) in &before {
        assert_eq!(after.get(svc), Some(ips), "{svc} moved across the restart");
    }
    Ok(())
}

#[tokio::test]
async fn two_controllers_never_duplicate() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let mut first = ControllerProcess::start(&plane, "replica-a", &[])?;
    let second = ControllerProcess::start(&plane, "replica-b", &[])?;
    plane.apply(&pool("p", &["198.51.100.0/24"], ""))?;
    let manifests: Vec<String> = (0..60).map(|i| service("default", &format!("s{i:02}"), 80, &[], "")).collect();
    plane.apply(&manifests[..30].join("---\n"))?;
    wait_for("30 Services to get addresses", SOON, || async { Ok((all_ips(&plane).await?.len() == 30).then_some(())) })
        .await?;
    let holder = lease_holder(&plane)?;
    // Kill the leader abruptly: the other replica takes over once the lease expires and carries on.
    if holder == "replica-a" {
        first.kill()?;
    } else {
        drop(second);
    }
    plane.apply(&manifests[30..].join("---\n"))?;
    let all = wait_for("all 60 Services to get addresses", Duration::from_secs(60), || async {
        let all = all_ips(&plane).await?;
        Ok((all.len() == 60).then_some(all))
    })
    .await?;
    assert_no_duplicates(&all);
    let new_holder = lease_holder(&plane)?;
    assert_ne!(new_holder, holder, "leadership did not move");
    Ok(())
}

#[tokio::test]
async fn graceful_stop_releases_the_lease() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let mut controller = ControllerProcess::start(&plane, "only", &[])?;
    wait_for("the lease to be held", SOON, || async {
        let out = plane.kubectl_raw(
            &["get", "lease", "-n", "ferrolb-system", "ferrolb-controller", "-o", "jsonpath={.spec.holderIdentity}"],
            None,
        )?;
        Ok((String::from_utf8_lossy(&out.stdout) == "only").then_some(()))
    })
    .await?;
    controller.terminate()?;
    let holder = lease_holder(&plane)?;
    assert_eq!(holder, "", "SIGTERM must release the lease so a standby takes over at once");
    Ok(())
}

#[tokio::test]
async fn an_address_in_conflict_is_handed_out_to_nobody_until_the_conflict_is_gone() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let _controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply(&pool("demo", &["198.51.100.192/30"], ""))?;
    plane.apply(&service("default", "web", 80, &[], ""))?;
    assert_eq!(wait_ips(&plane, "default", "web", 1).await?, ["198.51.100.192"]);
    // What a speaker writes when another host answers its probe for .192.
    let conflict = "apiVersion: ferrolb.io/v1alpha1\nkind: AddressConflict\nmetadata: {name: ip-198-51-100-192}\n\
                    spec: {ip: 198.51.100.192, mac: '02:00:00:00:00:99', node: node-2, interface: eth0, \
                    detected: '2026-12-02T04:00:00Z', services: [default/web]}\n";
    plane.apply(conflict)?;
    wait_for("web to move off the address in conflict", SOON, || async {
        Ok(ips(&plane, "default", "web").await?.into_iter().find(|ip| ip == "198.51.100.193").map(drop))
    })
    .await?;
    let note = wait_event_with(&plane, "default", "web", "IPReassigned", "replaces 198.51.100.192").await?;
    assert!(note.contains("assigned 198.51.100.193") && note.contains("02:00:00:00:00:99"), "{note}");
    let listed = wait_for("the pool's status to list the conflict", SOON, || async {
        let out = plane.kubectl(&["get", "ipaddresspool", "demo", "-o", "jsonpath={.status.conflicts}"])?;
        Ok((!out.is_empty()).then_some(out))
    })
    .await?;
    assert!(listed.contains("198.51.100.192 answered by 02:00:00:00:00:99"), "{listed}");
    // Asked for by name, it is refused with the reason.
    plane.apply(&service("default", "pinned", 80, &[("ferrolb.io/loadBalancerIPs", "198.51.100.192")], ""))?;
    let refused = wait_event(&plane, "default", "pinned", "AddressConflict").await?;
    assert!(refused.contains("answered by another host on the LAN"), "{refused}");
    // The conflict is gone (the speaker's re-check deleted the object): the address can be had again.
    plane.kubectl(&["delete", "addressconflict", "ip-198-51-100-192"])?;
    assert_eq!(wait_ips(&plane, "default", "pinned", 1).await?, ["198.51.100.192"]);
    assert_eq!(ips(&plane, "default", "web").await?, ["198.51.100.193"], "web stays where it moved");
    wait_for("the pool's status to drop the conflict", SOON, || async {
        let out = plane.kubectl(&["get", "ipaddresspool", "demo", "-o", "jsonpath={.status.conflicts}"])?;
        Ok(out.is_empty().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_lease_namespace_is_said_once_and_holds_readiness() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let controller = ControllerProcess::start(&plane, "only", &["--lease-namespace", "lb-elsewhere"])?;
    plane.apply(&pool("demo", &["198.51.100.192/27"], ""))?;
    plane.apply(&service("default", "web", 80, &[], ""))?;
    let body = wait_for("/readyz to say what is missing", SOON, || async {
        Ok(controller.http_get("/readyz").ok().filter(|(code, _)| *code == 503).map(|(_, body)| body))
    })
    .await?;
    assert!(body.contains("kubectl create namespace lb-elsewhere"), "/readyz says: {body}");
    let ingress = plane.kubectl(&["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress}"])?;
    assert_eq!(ingress, "", "nothing can be allocated without a leader");

    plane.kubectl(&["create", "namespace", "lb-elsewhere"])?;
    assert_eq!(wait_ips(&plane, "default", "web", 1).await?, ["198.51.100.192"]);
    wait_for("/readyz to be ready", SOON, || async {
        Ok(controller.http_get("/readyz").ok().filter(|(code, _)| *code == 200).map(drop))
    })
    .await?;
    // Election rounds failed meanwhile (one every 0.8 s, each logged at debug level only): the operator was
    // told once, at error level.
    let log = controller.log_text();
    let said: Vec<&str> = log.lines().filter(|l| l.contains("no controller can become leader")).collect();
    assert_eq!(said.len(), 1, "the missing namespace must be said exactly once:\n{log}");
    assert!(said[0].contains("ERROR"), "{}", said[0]);
    let rounds = log.lines().filter(|l| l.contains("cannot create the lease")).count();
    assert!(rounds >= 1, "no failed election round was seen, so the test proves nothing:\n{log}");
    Ok(())
}

#[tokio::test]
async fn control_plane_runs_the_endpointslice_controller() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::All).await?;
    plane.apply(&service("default", "web", 80, &[], ""))?;
    wait_for("an EndpointSlice for default/web", SOON, || async {
        let out = plane.kubectl(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "name"])?;
        Ok((!out.trim().is_empty()).then_some(()))
    })
    .await?;
    Ok(())
}

/// The leader's wall clock, then the standby's, steps 3 minutes forward, then 3 minutes back, then to the
/// true time again. The Lease's renew time shows each step of the leader's clock (so the step really
/// happened), yet the lease never changes hands, no address moves, and a Service created under each stepped
/// clock gets an address. Leadership is timed on the monotonic clock: the holder counts its deadline from
/// its last successful renewal, a standby from when it saw the record last change, as client-go does; the
/// renew time written is never compared with anyone's clock.
#[tokio::test]
async fn stepped_wall_clocks_move_no_lease_and_no_address() -> anyhow::Result<()> {
    let plane = cluster().await?;
    let leader_clock = ferrolb_e2e::FakeClock::at(plane.dir().join("clock-replica-a"))?;
    let standby_clock = ferrolb_e2e::FakeClock::at(plane.dir().join("clock-replica-b"))?;
    let _leader = ControllerProcess::start_with_env(&plane, "replica-a", &[], &leader_clock.env()?)?;
    wait_for("replica-a to hold the lease", SOON, || async {
        Ok((lease_holder(&plane)? == "replica-a").then_some(()))
    })
    .await?;
    let _standby = ControllerProcess::start_with_env(&plane, "replica-b", &[], &standby_clock.env()?)?;
    plane.apply(&pool("p", &["198.51.100.0/24"], ""))?;
    let manifests: Vec<String> = (0..10).map(|i| service("default", &format!("s{i:02}"), 80, &[], "")).collect();
    plane.apply(&manifests.join("---\n"))?;
    let before = wait_for("10 Services to get addresses", SOON, || async {
        let all = all_ips(&plane).await?;
        Ok((all.len() == 10).then_some(all))
    })
    .await?;
    let transitions = lease_record(&plane)?.transitions;
    let mut created = 0;
    for (clock, whose) in [(&leader_clock, "the leader"), (&standby_clock, "the standby")] {
        for (offset, seconds) in [("+180", 180), ("-180", -180), ("+0", 0)] {
            clock.step(offset)?;
            if whose == "the leader" {
                // Its next renewal carries the stepped time.
                wait_for(&format!("a renewal at {offset}"), SOON, || async {
                    let renewed = lease_record(&plane)?.renewed;
                    let ahead = renewed.map(|r| r.as_second() - jiff::Timestamp::now().as_second());
                    Ok(ahead.is_some_and(|a| (a - seconds).abs() < 30).then_some(()))
                })
                .await?;
            }
            // Two lease durations (4 s each) under the stepped clock, and a new Service served meanwhile.
            let name = format!("n{created:02}");
            created += 1;
            plane.apply(&service("default", &name, 80, &[], ""))?;
            let until = std::time::Instant::now() + Duration::from_secs(8);
            while std::time::Instant::now() < until {
                let lease = lease_record(&plane)?;
                assert_eq!(lease.holder, "replica-a", "the lease moved with {whose}'s clock at {offset}");
                assert_eq!(lease.transitions, transitions, "the lease changed hands with {whose}'s clock at {offset}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            wait_for(&format!("{name} to get an address"), SOON, || async {
                Ok(all_ips(&plane).await?.contains_key(&format!("default/{name}")).then_some(()))
            })
            .await?;
        }
    }
    let after = all_ips(&plane).await?;
    for (svc, ips) in &before {
        assert_eq!(after.get(svc), Some(ips), "{svc} moved while clocks stepped");
    }
    assert_no_duplicates(&after);
    Ok(())
}
