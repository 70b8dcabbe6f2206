//! The BGP resources against a real kube-apiserver: the CEL rules refuse bad ASNs, addresses, timers,
//! communities, Secret references and a plain password with the messages a person reads, defaults are filled
//! in, and `kubectl get` shows tables.

use ferrolb_e2e::ControlPlane;
use ferrolb_e2e::control_plane::Components;

fn peer(name: &str, fields: &str) -> String {
    format!("apiVersion: ferrolb.io/v1alpha1\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec:\n{fields}")
}

const GOOD_PEER: &str = "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n";

fn refused(plane: &ControlPlane, object: &str, message: &str) {
    let out = plane.kubectl_raw(&["apply", "-f", "-"], Some(object)).expect("kubectl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted:\n{object}");
    assert!(stderr.contains(message), "expected {message:?} for\n{object}\ngot: {stderr}");
}

#[tokio::test]
async fn bgp_peers_are_validated_with_clear_messages() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::ApiServer).await?;
    let asn = "is not a usable AS number";
    for (fields, message) in [
        ("  myASN: 0\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n", asn),
        ("  myASN: 4294967295\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n", asn),
        ("  myASN: 64512\n  peerASN: 23456\n  peerAddress: 192.0.2.254\n", "AS_TRANS"),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: router.example\n",
            "peerAddress \"router.example\" is not an IPv4 or IPv6 address",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  routerID: 2001:db8::1\n",
            "routerID \"2001:db8::1\" is not an IPv4 address",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  sourceAddress: 300.1.2.3\n",
            "sourceAddress \"300.1.2.3\"",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  holdTime: 2s\n",
            "must be 0s or between 3s and 65535s",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  holdTime: ninety\n",
            "holdTime \"ninety\" is not a duration",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  holdTime: 9s\n  keepaliveTime: 9s\n",
            "keepaliveTime 9s must be shorter than holdTime 9s",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  keepaliveTime: 2m\n",
            "must be shorter than holdTime 90s (the default)",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  connectTime: 10m\n",
            "must be between 100ms and 5m",
        ),
        ("  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  peerPort: 0\n", "peerPort"),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  password: hunter2\n",
            "password is not supported: a key in a BGPPeer can be read by anyone who may read BGPPeers",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  passwordSecret: {name: Tor_Key}\n",
            "passwordSecret.name \"Tor_Key\" is not a Secret name",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  passwordSecret: {name: tor, namespace: a.b}\n",
            "passwordSecret.namespace \"a.b\" is not a namespace name",
        ),
        (
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.254\n  passwordSecret: {namespace: ferrolb-system}\n",
            "spec.passwordSecret.name: Required value",
        ),
    ] {
        refused(&plane, &peer("bad", fields), message);
    }
    plane.apply(&peer("tor", GOOD_PEER))?;
    plane.apply(&peer(
        "signed",
        &format!("{GOOD_PEER}  passwordSecret: {{name: tor-md5, namespace: ferrolb-system}}\n"),
    ))?;
    let secret = plane.kubectl(&["get", "bgppeers", "signed", "-o", "jsonpath={.spec.passwordSecret.name}"])?;
    assert_eq!(secret, "tor-md5");
    plane.apply(&peer("fast", "  myASN: 4200000000\n  peerASN: 64513\n  peerAddress: 2001:db8:100::fe\n  holdTime: 3s\n  keepaliveTime: 1s\n  connectTime: 500ms\n  routerID: 198.51.100.11\n  ebgpMultiHop: true\n"))?;
    let port = plane.kubectl(&["get", "bgppeers", "tor", "-o", "jsonpath={.spec.peerPort}"])?;
    assert_eq!(port, "179", "the default port is filled in");
    let table = plane.kubectl(&["get", "bgppeers"])?;
    assert!(table.contains("ADDRESS") && table.contains("192.0.2.254") && table.contains("4200000000"), "{table}");
    Ok(())
}

#[tokio::test]
async fn bgp_advertisements_and_sessions_are_validated_and_listed() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::ApiServer).await?;
    let adv = |spec: &str| {
        format!("apiVersion: ferrolb.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {{name: a}}\nspec:\n{spec}")
    };
    let not_community = "is not a community";
    for (spec, message) in [
        ("  communities: [\"65536:1\"]\n", not_community),
        ("  communities: [\"65000\"]\n", not_community),
        ("  communities: [\"large:1:2\"]\n", not_community),
        ("  communities: [\"large:4294967296:1:2\"]\n", not_community),
        ("  communities: [\"no-such-name\"]\n", not_community),
        ("  aggregationLength: 33\n", "aggregationLength"),
        ("  aggregationLengthV6: 129\n", "aggregationLengthV6"),
    ] {
        refused(&plane, &adv(spec), message);
    }
    plane.apply(&adv(
        "  communities: [\"65000:100\", \"large:64512:1:2\", \"no-export\"]\n  localPref: 200\n  peers: [tor]\n",
    ))?;
    let defaults = plane.kubectl(&[
        "get",
        "bgpadvertisements",
        "a",
        "-o",
        "jsonpath={.spec.aggregationLength}/{.spec.aggregationLengthV6}",
    ])?;
    assert_eq!(defaults, "32/128");
    plane.apply("apiVersion: ferrolb.io/v1alpha1\nkind: BGPSession\nmetadata: {name: node-1.tor, namespace: ferrolb-system}\nspec: {node: node-1, peer: tor, peerAddress: 192.0.2.254}\n")?;
    let table = plane.kubectl(&["get", "bgpsessions", "-A"])?;
    for column in ["NODE", "PEER", "STATE", "PREFIXES", "LAST ERROR", "node-1"] {
        assert!(table.contains(column), "{column} missing from\n{table}");
    }
    Ok(())
}

#[tokio::test]
async fn bfd_profiles_are_validated_and_listed() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::ApiServer).await?;
    let profile = |name: &str, spec: &str| {
        format!("apiVersion: ferrolb.io/v1alpha1\nkind: BFDProfile\nmetadata: {{name: {name}}}\nspec:\n{spec}")
    };
    for (spec, message) in [
        ("  echoMode: true\n", "echoMode is not supported by ferrolb's BFD"),
        ("  transmitInterval: 5\n", "spec.transmitInterval"),
        ("  receiveInterval: 60001\n", "spec.receiveInterval"),
        ("  detectMultiplier: 1\n", "spec.detectMultiplier"),
        ("  minimumTtl: 255\n", "spec.minimumTtl"),
    ] {
        refused(&plane, &profile("bad", spec), message);
    }
    plane.apply(&profile("fast", "  transmitInterval: 50\n  receiveInterval: 50\n  detectMultiplier: 5\n"))?;
    plane.apply(&profile("defaults", "  echoMode: false\n"))?;
    plane.apply(&peer("tor", &format!("{GOOD_PEER}  bfdProfile: fast\n")))?;
    let table = plane.kubectl(&["get", "bfdprofiles"])?;
    for expected in ["TRANSMIT", "MULTIPLIER", "fast", "50", "defaults"] {
        assert!(table.contains(expected), "{expected} missing from\n{table}");
    }
    let named = plane.kubectl(&["get", "bgppeers", "tor", "-o", "jsonpath={.spec.bfdProfile}"])?;
    assert_eq!(named, "fast");
    Ok(())
}
