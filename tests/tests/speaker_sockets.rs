//! The speaker's sockets against a real kernel, in the lab: the owner of an IPv6 EXTERNAL-IP joins its
//! solicited-node group (and leaves it), the responder's BPF filter keeps ordinary traffic out of userspace,
//! and an interface created after the speaker started is used at once (rtnetlink), also when re-created.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ferrolb_e2e::{Lab, repo_root, wait_for};

const SOON: Duration = Duration::from_secs(30);
/// How soon an interface change must be acted on. Besides its 60 s resync, the speaker's loop also wakes on
/// every Node event, and the lab's keeper patches Node status every 10 s: the test therefore changes the
/// interface right after a heartbeat and expects the answer well before the next one.
const AT_ONCE: Duration = Duration::from_secs(5);

/// A pool on a segment only reachable through an interface the test adds to node-2 later, advertised on
/// that interface from node-2 only.
const EXTRA: &str = r#"apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: extra}
spec:
  addresses: [203.0.113.200/29]
---
apiVersion: ferrolb.io/v1alpha1
kind: L2Advertisement
metadata: {name: extra}
spec:
  ipAddressPools: [extra]
  interfaces: [flbx]
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node-2}}]
---
apiVersion: v1
kind: Service
metadata:
  name: extra
  namespace: default
  annotations: {ferrolb.io/address-pool: extra}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

/// The Ethernet address of `ip`'s solicited-node group, as `ip maddr` prints it.
fn solicited_node_mac(ip: Ipv6Addr) -> String {
    let o = ip.octets();
    format!("33:33:ff:{:02x}:{:02x}:{:02x}", o[13], o[14], o[15])
}

fn lists_group(lab: &Lab, node: &str, mac: &str) -> anyhow::Result<bool> {
    Ok(lab.exec(node, &["ip", "maddr", "show", "dev", "eth0"])?.contains(mac))
}

#[tokio::test]
async fn owner_joins_the_solicited_node_group_and_the_filter_keeps_traffic_out() -> anyhow::Result<()> {
    let lab = Lab::start(2, &[]).await?;
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    lab.apply_file(&repo_root().join("hack/lab.d/demo.yaml"))?;
    lab.apply_file(&repo_root().join("hack/lab.d/l2advertisement.yaml"))?;
    lab.apply_file(&repo_root().join("hack/lab.d/dual.yaml"))?;
    let v6: Ipv6Addr = wait_for("the dual Service's IPv6 EXTERNAL-IP", SOON, || async {
        let ip = lab.kubectl(&["get", "svc", "dual", "-o", "jsonpath={.status.loadBalancer.ingress[1].ip}"])?;
        Ok(ip.parse().ok())
    })
    .await?;
    let group_mac = solicited_node_mac(v6);

    // (a) Exactly one node holds the group, and it is the node that answers NDP for the address.
    let owner = wait_for("one node listing the solicited-node MAC", SOON, || async {
        let holders: Vec<&str> =
            ["node-1", "node-2"].into_iter().filter(|n| lists_group(&lab, n, &group_mac).unwrap_or(false)).collect();
        Ok((holders.len() == 1).then(|| holders[0]))
    })
    .await?;
    let other = if owner == "node-1" { "node-2" } else { "node-1" };
    let answering_mac = wait_for("a neighbour entry for the IPv6 EXTERNAL-IP", SOON, || async {
        // Any datagram to the address makes the client resolve it.
        let send =
            format!("import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'x', ('{v6}', 9))");
        lab.exec("client", &["python3", "-c", &send])?;
        let neigh = lab.exec("client", &["ip", "-6", "neigh", "show", &v6.to_string(), "dev", "eth0"])?;
        Ok(neigh.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).map(str::to_owned))
    })
    .await?;
    assert_eq!(answering_mac, lab.mac(owner, "eth0")?, "the group is held by another node than the answering one");
    assert!(!lists_group(&lab, other, &group_mac)?, "{other} holds the group too");

    // (b) The filter: a burst of UDP to the owner's own address barely moves the frames it reads, while an
    // ARP request does. An ARP request after the burst is the marker: once the responder has seen it, every
    // earlier frame of the burst was either read or filtered out by the kernel.
    let owner_ip = &ferrolb_e2e::node_address(owner, false);
    let frames = || lab.speaker_metric(owner, "ferrolb_speaker_frames_read_total");
    let arp_seen = || lab.speaker_metric(owner, "ferrolb_speaker_requests_seen_total{protocol=\"arp\"}");
    let mark = || async {
        let before = arp_seen()?;
        wait_for("the responder to read an ARP request", SOON, || async {
            lab.arp_answers_on("eth0", "198.51.100.250")?;
            Ok((arp_seen()? > before).then_some(()))
        })
        .await
    };
    let start = frames()?;
    mark().await?;
    let before_burst = frames()?;
    assert!(before_burst > start, "an ARP request was not counted as read ({start} -> {before_burst})");
    let burst = format!(
        "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for i in range(2000): s.sendto(b'burst', ('{owner_ip}', 9))"
    );
    lab.exec("client", &["python3", "-c", &burst])?;
    mark().await?;
    let after_burst = frames()?;
    assert!(
        after_burst - before_burst < 100.0,
        "the responder read {} frames for a burst of 2000 UDP datagrams",
        after_burst - before_burst
    );

    // (a) Releasing the address leaves the group.
    lab.kubectl(&["delete", "svc", "dual"])?;
    wait_for("the owner to leave the solicited-node group", SOON, || async {
        Ok((!lists_group(&lab, owner, &group_mac)?).then_some(()))
    })
    .await?;
    Ok(())
}

/// Creates a veth pair between node-2 (`flbx`, 203.0.113.11) and the client (`flbxc`, 203.0.113.2).
fn add_segment(lab: &Lab, client_netns: &str) -> anyhow::Result<()> {
    lab.exec("node-2", &["ip", "link", "add", "flbx", "type", "veth", "peer", "name", "flbxc"])?;
    lab.exec("node-2", &["ip", "link", "set", "flbxc", "netns", client_netns])?;
    lab.exec("client", &["ip", "addr", "add", "203.0.113.2/24", "dev", "flbxc"])?;
    lab.exec("client", &["ip", "link", "set", "flbxc", "up"])?;
    lab.exec("node-2", &["ip", "addr", "add", "203.0.113.11/24", "dev", "flbx"])?;
    lab.exec("node-2", &["ip", "link", "set", "flbx", "up"])?;
    Ok(())
}

/// Returns once node-2's Node object has not changed for 5 s. A kubelet heartbeats through its Lease and
/// rewrites its Node only when the status changes (or every 5 minutes), so after a quiet spell no Node
/// event is due that could be what makes the speaker look at its interfaces again.
async fn after_a_quiet_node(lab: &Lab) -> anyhow::Result<()> {
    let version = || lab.kubectl(&["get", "node", "node-2", "-o", "jsonpath={.metadata.resourceVersion}"]);
    let mut last = (version()?, Instant::now());
    wait_for("node-2's Node object quiet for 5 s", Duration::from_secs(90), || {
        let current = version();
        let quiet = match current {
            Ok(v) if v == last.0 => last.1.elapsed() >= Duration::from_secs(5),
            Ok(v) => {
                last = (v, Instant::now());
                false
            }
            Err(_) => false,
        };
        async move { Ok(quiet.then_some(())) }
    })
    .await
}

async fn answered_at_once(lab: &Lab, since: Instant) -> anyhow::Result<()> {
    let node_mac = lab.mac("node-2", "flbx")?;
    let macs = wait_for("an ARP answer on the new interface", SOON, || async {
        let macs = lab.arp_answers_on("flbxc", "203.0.113.200")?;
        Ok((!macs.is_empty()).then_some(macs))
    })
    .await?;
    eprintln!("answered {:?} after the interface change", since.elapsed());
    assert_eq!(macs, [node_mac], "answered by something else than node-2's new interface");
    assert!(since.elapsed() < AT_ONCE, "the new interface was used only after {:?}", since.elapsed());
    Ok(())
}

#[tokio::test]
async fn an_interface_created_after_start_is_used_at_once() -> anyhow::Result<()> {
    let lab = Lab::start(2, &[]).await?;
    // A ready endpoint, without which nobody announces the Service's address.
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    lab.apply_yaml(EXTRA)?;
    wait_for("the extra Service's EXTERNAL-IP", SOON, || async {
        let ip = lab.kubectl(&["get", "svc", "extra", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])?;
        Ok((ip == "203.0.113.200").then_some(()))
    })
    .await?;
    // node-2 owns the address before the interface it must announce on exists.
    wait_for("node-2 to own the address", SOON, || async {
        Ok((lab.speaker_metric("node-2", "ferrolb_speaker_owned_ips")? == 1.0).then_some(()))
    })
    .await?;
    let client_netns = lab.exec("client", &["sh", "-c", "ip netns identify $$"])?.trim().to_owned();
    anyhow::ensure!(!client_netns.is_empty(), "cannot name the client's network namespace");

    after_a_quiet_node(&lab).await?;
    let created = Instant::now();
    add_segment(&lab, &client_netns)?;
    answered_at_once(&lab, created).await?;

    // Removed and created again (a new index and MAC): the responder is re-opened on the new device.
    let old_mac = lab.mac("node-2", "flbx")?;
    lab.exec("node-2", &["ip", "link", "del", "flbx"])?;
    after_a_quiet_node(&lab).await?;
    let recreated = Instant::now();
    add_segment(&lab, &client_netns)?;
    assert_ne!(lab.mac("node-2", "flbx")?, old_mac, "a new veth should get a new MAC");
    answered_at_once(&lab, recreated).await?;
    Ok(())
}
