//! Forward mode in the lab: the owning speaker itself delivers traffic for its IPs, on both data paths.
//!
//! Each test brings up a lab in forward mode and checks, from the client, through the EXTERNAL-IPs: TCP and
//! UDP on IPv4 and IPv6; that a Cluster Service reaches the same pods as its NodePort; that Local keeps the
//! client's address (kernel path); that two Services sharing an IP each get their own ports; that a port that
//! is not a Service's is refused even when a host process listens on it; that kube-proxy leaves the IPs alone
//! (`ipMode: Proxy`); that a UDP flow that never pauses moves off a removed endpoint; that a dead owner's IP
//! forwards from the next node, which skips the dead node's still-"ready" pod, and uses it again once the
//! node is back; and that a speaker stopped cleanly leaves no rule behind.
//! (Throughput is measured by `hack/bench/dataplane`, not here.)

use std::collections::BTreeSet;
use std::time::Duration;

use ferrolb_e2e::{Lab, wait_for};

const SOON: Duration = Duration::from_secs(30);

/// Pools, an L2Advertisement for every node, and the Services under test.
const SETUP: &str = r#"apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: forward}
spec: {addresses: [198.51.100.192/27, "2001:db8:100::f000/116"]}
---
apiVersion: ferrolb.io/v1alpha1
kind: L2Advertisement
metadata: {name: everywhere}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: echo, port: 53, targetPort: 8081, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: solo, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {app: solo}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: share-tcp
  namespace: default
  annotations: {ferrolb.io/loadBalancerIPs: 198.51.100.220, ferrolb.io/allow-shared-ip: pair}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 8000, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata:
  name: share-udp
  namespace: default
  annotations: {ferrolb.io/loadBalancerIPs: 198.51.100.220, ferrolb.io/allow-shared-ip: pair}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: echo, port: 5353, targetPort: 8081, protocol: UDP}]
"#;

const SHARED: &str = "198.51.100.220";

fn url(ip: &str, port: u16) -> String {
    if ip.contains(':') { format!("http://[{ip}]:{port}/") } else { format!("http://{ip}:{port}/") }
}

/// One HTTP GET from the client; the pod's one-line answer, or None.
fn get(lab: &Lab, ip: &str, port: u16) -> Option<String> {
    lab.exec("client", &["curl", "-s", "-m", "2", &url(ip, port)]).ok().filter(|b| b.starts_with("pod="))
}

/// One UDP datagram from the client and the echo's answer, or None.
fn udp(lab: &Lab, ip: &str, port: u16) -> Option<String> {
    let family = if ip.contains(':') { "AF_INET6" } else { "AF_INET" };
    let script = format!(
        "import socket; s=socket.socket(socket.{family}, socket.SOCK_DGRAM); s.settimeout(1); \
         s.sendto(b'hi', ('{ip}', {port})); print(s.recvfrom(200)[0].decode())"
    );
    lab.exec("client", &["python3", "-c", &script]).ok().filter(|r| r.starts_with("pod="))
}

/// The pods that 40 GETs to `ip:port` reached.
fn pods_reached(lab: &Lab, ip: &str, port: u16) -> BTreeSet<String> {
    (0..40)
        .filter_map(|_| get(lab, ip, port))
        .filter_map(|b| b.split_whitespace().next().map(|p| p.trim_start_matches("pod=").to_owned()))
        .collect()
}

fn jsonpath(lab: &Lab, object: &str, path: &str) -> anyhow::Result<String> {
    lab.kubectl(&["get", object, "-o", &format!("jsonpath={path}")])
}

/// Waits for `service`'s EXTERNAL-IPs (`count` of them) and returns them.
async fn external_ips(lab: &Lab, service: &str, count: usize) -> anyhow::Result<Vec<String>> {
    wait_for(&format!("{service}'s EXTERNAL-IPs"), SOON, || async {
        let ips = jsonpath(lab, &format!("svc/{service}"), "{.status.loadBalancer.ingress[*].ip}")?;
        let ips: Vec<String> = ips.split_whitespace().map(str::to_owned).collect();
        Ok((ips.len() == count).then_some(ips))
    })
    .await
}

/// Brings up the Services and checks everything but failover and shutdown; returns web's IPv4 address.
async fn forwarding_works(lab: &Lab, kernel: bool) -> anyhow::Result<String> {
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    lab.lab(&["pod", "add", "web-2", "--node", "node-2", "--labels", "app=web"])?;
    lab.lab(&["pod", "add", "solo", "--node", "node-3", "--labels", "app=solo"])?;
    lab.apply_yaml(SETUP)?;
    let web = external_ips(lab, "web", 2).await?;
    let solo = external_ips(lab, "solo", 2).await?;
    assert_eq!(external_ips(lab, "share-tcp", 1).await?, [SHARED]);
    assert_eq!(external_ips(lab, "share-udp", 1).await?, [SHARED]);
    let modes = jsonpath(lab, "svc/web", "{.status.loadBalancer.ingress[*].ipMode}")?;
    assert_eq!(modes, "Proxy Proxy", "forward mode publishes ipMode Proxy");

    // TCP and UDP on both families, and a Cluster Service reaches exactly the pods its NodePort reaches.
    let node_port: u16 = jsonpath(lab, "svc/web", "{.spec.ports[0].nodePort}")?.parse()?;
    for ip in &web {
        wait_for(&format!("HTTP through {ip}"), SOON, || async { Ok(get(lab, ip, 80)) }).await?;
        let reply = wait_for(&format!("UDP through {ip}"), SOON, || async { Ok(udp(lab, ip, 53)) }).await?;
        assert!(reply.starts_with("pod=web-"), "{reply}");
        let node = &ferrolb_e2e::node_address("node-1", ip.contains(':'));
        let through_ip = pods_reached(lab, ip, 80);
        let through_node_port = pods_reached(lab, node, node_port);
        assert_eq!(through_ip, through_node_port, "{ip} and the NodePort on node-1 reach different pods");
        assert_eq!(through_ip.len(), 2, "{through_ip:?}");
    }

    // A connection established before an endpoint change keeps working after the table is rewritten for it.
    held_connection_survives_an_endpoint_change(lab, &web[0]).await?;

    // Local: only node-3 has the pod, so it owns the IPs, and the kernel path keeps the client's address.
    for (ip, client) in solo.iter().zip(["198.51.100.2", "2001:db8:100::2"]) {
        let body = wait_for(&format!("HTTP through {ip} (Local)"), SOON, || async { Ok(get(lab, ip, 80)) }).await?;
        assert!(body.starts_with("pod=solo "), "{body}");
        if kernel {
            assert!(body.contains(&format!("client={client}")), "the client's address was not kept: {body}");
        }
    }

    // A shared IP: each Service's port goes to its own protocol, and the other combination is refused.
    wait_for("TCP to the shared IP", SOON, || async { Ok(get(lab, SHARED, 8000)) }).await?;
    wait_for("UDP to the shared IP", SOON, || async { Ok(udp(lab, SHARED, 5353)) }).await?;
    assert!(get(lab, SHARED, 5353).is_none(), "TCP on the UDP Service's port was delivered");
    assert!(udp(lab, SHARED, 8000).is_none(), "UDP on the TCP Service's port was delivered");

    // A host process on the owner listening on another port is reachable on the node's address, never through
    // the external IP; an unused port is refused outright.
    let owner = wait_for("web's IPv4 L2Announcement", SOON, || async { lab.recorded_owner(&web[0]) }).await?;
    let owner_ip = format!("198.51.100.1{}", owner.trim_start_matches("node-"));
    // The owner's metrics say what it forwards and how (web's TCP and UDP ports at least).
    let path = if kernel { "kernel" } else { "userspace" };
    let ports = lab.speaker_metric(&owner, &format!("ferrolb_speaker_forwarded_ports{{path=\"{path}\"}}"))?;
    assert!(ports >= 2.0, "{owner} reports {ports} ports forwarded on the {path} path");
    if !kernel {
        let accepted = lab.speaker_metric(&owner, "ferrolb_speaker_relay_tcp_connections_accepted_total")?;
        assert!(accepted >= 40.0, "{owner}'s relay counted {accepted} connections");
    }
    let mut listener = lab.spawn_exec(&owner, &["python3", "-m", "http.server", "9999", "--bind", "0.0.0.0"])?;
    let direct = wait_for("the host listener on the owner's own address", SOON, || async {
        Ok(lab
            .exec("client", &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2", &url(&owner_ip, 9999)])
            .ok()
            .filter(|c| c == "200"))
    })
    .await;
    // curl's exit status 7 is "could not connect": refused at once, not a timeout (28) that a missing rule
    // would also produce.
    let through_ip = std::process::Command::new(ferrolb_e2e::repo_root().join("hack/lab"))
        .args(["--dir", &lab.dir().to_string_lossy(), "exec", "client", "--"])
        .args(["curl", "-s", "-m", "5", &url(&web[0], 9999)])
        .output()?;
    let _ = listener.kill();
    let _ = listener.wait();
    direct?;
    assert_eq!(
        through_ip.status.code(),
        Some(7),
        "a port that is not the Service's must be refused at once: {through_ip:?}"
    );

    // kube-proxy leaves Proxy-mode IPs to ferrolb: its tables on every node never mention them.
    for node in ["node-1", "node-2", "node-3"] {
        let kube_proxy = lab.exec(node, &["nft", "list", "table", "ip", "kube-proxy"])?
            + &lab.exec(node, &["nft", "list", "table", "ip6", "kube-proxy"])?;
        assert!(kube_proxy.contains("nodeport"), "kube-proxy's tables on {node} look empty:\n{kube_proxy}");
        for ip in web.iter().chain(&solo) {
            assert!(!kube_proxy.contains(ip.as_str()), "kube-proxy on {node} handles {ip}");
        }
    }
    Ok(web[0].clone())
}

/// Opens a TCP connection to `ip:80` and holds it, adds a third web pod (a new endpoint, so the owner writes
/// its forwarding state again), waits until new connections reach the new pod, and only then sends the
/// request on the held connection: the answer must still come back.
async fn held_connection_survives_an_endpoint_change(lab: &Lab, ip: &str) -> anyhow::Result<()> {
    let flag = std::env::temp_dir().join(format!("ferrolb-held-{}", std::process::id()));
    let flag = flag.to_str().expect("utf-8 temp dir").to_owned();
    let script = format!(
        "import socket, os, time\n\
         s = socket.create_connection(('{ip}', 80), timeout=60)\n\
         open('{flag}.up', 'w').close()\n\
         while not os.path.exists('{flag}.go'): time.sleep(0.05)\n\
         s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n\
         print(s.makefile().read())\n"
    );
    let held = lab.spawn_exec("client", &["python3", "-c", &script])?;
    wait_for("the held connection", SOON, || async {
        Ok(std::path::Path::new(&format!("{flag}.up")).exists().then_some(()))
    })
    .await?;
    lab.lab(&["pod", "add", "web-3", "--node", "node-3", "--labels", "app=web"])?;
    wait_for("new connections reaching the new pod", SOON, || async {
        Ok(get(lab, ip, 80).filter(|b| b.starts_with("pod=web-3 ")))
    })
    .await?;
    std::fs::write(format!("{flag}.go"), b"")?;
    let output = tokio::task::spawn_blocking(move || held.wait_with_output()).await??;
    let _ = std::fs::remove_file(format!("{flag}.up"));
    let _ = std::fs::remove_file(format!("{flag}.go"));
    let reply = String::from_utf8_lossy(&output.stdout);
    assert!(reply.contains("pod=web-"), "the held connection broke when the endpoints changed: {reply:?}");
    lab.lab(&["pod", "del", "web-3"])?;
    Ok(())
}

/// A UDP client that never pauses keeps one flow (one source port, a datagram every ~50 ms). When the pod it
/// reaches is removed, its next datagrams must reach the other pod: the owner deletes the flow's conntrack
/// entry, which would otherwise keep the old DNAT for as long as the client keeps sending.
async fn udp_flow_moves_off_a_removed_endpoint(lab: &Lab, ip: &str) -> anyhow::Result<()> {
    let log = std::env::temp_dir().join(format!("ferrolb-udp-flow-{}", std::process::id()));
    let log = log.to_str().expect("utf-8 temp dir").to_owned();
    let _ = std::fs::remove_file(&log);
    let script = r#"
import socket, os, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.05)
out = open('LOG', 'a')
end = time.time() + 120
while time.time() < end and not os.path.exists('LOG.stop'):
    s.sendto(b'hi', ('IP', 53))
    try:
        out.write(s.recvfrom(200)[0].decode().split()[0] + '\n')
    except socket.timeout:
        out.write('-\n')
    out.flush()
"#
    .replace("LOG", &log)
    .replace("IP", ip);
    let mut client = lab.spawn_exec("client", &["python3", "-c", &script])?;
    let replies = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut deleted: Option<String> = None;
    let result = async {
        let first = wait_for("the UDP flow's first answer", SOON, || async {
            Ok(replies().lines().find(|l| l.starts_with("pod=")).map(|l| l.trim_start_matches("pod=").to_owned()))
        })
        .await?;
        lab.lab(&["pod", "del", &first])?;
        deleted = Some(first.clone());
        let seen = replies().lines().count();
        wait_for("the same flow answered by the other pod", SOON, || async {
            Ok(replies().lines().skip(seen).find(|l| l.starts_with("pod=") && *l != format!("pod={first}")).map(drop))
        })
        .await
    }
    .await;
    // Whatever happened: stop the client and put the pod back, so the rest of the test finds the lab whole.
    std::fs::write(format!("{log}.stop"), b"")?;
    let _ = client.wait();
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(format!("{log}.stop"));
    if let Some(pod) = deleted {
        let node = if pod == "web-1" { "node-1" } else { "node-2" };
        lab.lab(&["pod", "add", &pod, "--node", node, "--labels", "app=web"])?;
    }
    result
}

/// Kills `ip`'s owner, which hosts one of web's endpoints, and waits until new connections succeed through
/// another node; returns the new owner. Kubernetes keeps the dead node's pod as a ready endpoint for tens of
/// seconds, so once the new owner answers, every new connection must still succeed: the owner skips endpoints
/// on nodes that left the membership. When the node is back, its pod is used again.
async fn dead_owner_forwards_from_the_next_node(lab: &Lab, ip: &str) -> anyhow::Result<String> {
    let owner = wait_for("the owner", SOON, || async { lab.recorded_owner(ip) }).await?;
    let on_owner = match owner.as_str() {
        "node-1" => "web-1".to_owned(),
        "node-2" => "web-2".to_owned(),
        other => {
            lab.lab(&["pod", "add", "web-3", "--node", other, "--labels", "app=web"])?;
            "web-3".to_owned()
        }
    };
    let reaches = |pod: String| async move {
        let reached = pods_reached(lab, ip, 80);
        Ok(reached.contains(&pod).then_some(()))
    };
    wait_for("new connections reaching the owner's pod", SOON, || reaches(on_owner.clone())).await?;
    lab.lab(&["kill-node", &owner])?;
    let next =
        wait_for("another node announcing", SOON, || async { Ok(lab.recorded_owner(ip)?.filter(|n| *n != owner)) })
            .await?;
    lab.wait_answered_by(ip, &next).await?;
    wait_for("HTTP through the new owner", SOON, || async { Ok(get(lab, ip, 80)) }).await?;
    let failed = (0..20).filter(|_| get(lab, ip, 80).is_none()).count();
    let ready = jsonpath(lab, "endpointslices", "{.items[*].endpoints[*].conditions.ready}")?;
    assert_eq!(failed, 0, "new connections failed after the failover (the dead node's pod was used; ready: {ready})");
    lab.lab(&["revive-node", &owner])?;
    wait_for("the revived node's pod reached again", Duration::from_secs(90), || reaches(on_owner.clone())).await?;
    if on_owner == "web-3" {
        lab.lab(&["pod", "del", "web-3"])?;
    }
    Ok(next)
}

/// Stops `node`'s speaker with SIGTERM and checks that none of ferrolb's kernel state is left on it.
fn clean_stop_leaves_nothing(lab: &Lab, node: &str) -> anyhow::Result<()> {
    lab.lab(&["stop-speaker", node])?;
    let tables = lab.exec(node, &["nft", "list", "tables"])?;
    assert!(!tables.contains("ferrolb"), "{node} kept ferrolb's table after a clean stop: {tables}");
    for family in ["-4", "-6"] {
        let rules = lab.exec(node, &["ip", family, "rule", "show"])?;
        assert!(
            rules.lines().all(|l| l.starts_with("0:") || l.starts_with("32766:") || l.starts_with("32767:")),
            "{node} kept policy-routing rules after a clean stop:\n{rules}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn kernel_path_forwards_only_the_services_ports_and_hands_over() -> anyhow::Result<()> {
    let lab = Lab::start(3, &["--mode", "forward", "--forward-path", "kernel"]).await?;
    let ip = forwarding_works(&lab, true).await?;
    udp_flow_moves_off_a_removed_endpoint(&lab, &ip).await?;
    // loadBalancerSourceRanges: kube-proxy enforces them only for ipMode VIP, so in forward mode ferrolb must.
    let solo = external_ips(&lab, "solo", 2).await?;
    let ranges = |r: &str| format!(r#"{{"spec":{{"loadBalancerSourceRanges":{r}}}}}"#);
    lab.kubectl(&["patch", "svc", "solo", "-p", &ranges(r#"["203.0.113.0/24"]"#)])?;
    wait_for("the client shut out by the source ranges", SOON, || async {
        Ok(get(&lab, &solo[0], 80).is_none().then_some(()))
    })
    .await?;
    assert!(get(&lab, &solo[1], 80).is_none(), "no IPv6 range was given, so no IPv6 client may connect");
    lab.kubectl(&["patch", "svc", "solo", "-p", &ranges(r#"["203.0.113.0/24", "198.51.100.0/24"]"#)])?;
    wait_for("the client let in again", SOON, || async { Ok(get(&lab, &solo[0], 80)) }).await?;
    // Someone else deleting ferrolb's table (a firewall reload) does not stop forwarding for long.
    let owner = lab.recorded_owner(&ip)?.unwrap_or_default();
    lab.exec(&owner, &["nft", "delete", "table", "inet", "ferrolb"])?;
    wait_for("the table written again", SOON, || async {
        Ok(lab.exec(&owner, &["nft", "list", "table", "inet", "ferrolb"]).ok().filter(|t| t.contains(&ip)).map(drop))
    })
    .await?;
    wait_for("HTTP after the table came back", SOON, || async { Ok(get(&lab, &ip, 80)) }).await?;
    let next = dead_owner_forwards_from_the_next_node(&lab, &ip).await?;
    clean_stop_leaves_nothing(&lab, &next)?;
    wait_for("HTTP after the clean stop", SOON, || async { Ok(get(&lab, &ip, 80)) }).await?;
    Ok(())
}

#[tokio::test]
async fn userspace_path_forwards_only_the_services_ports_and_hands_over() -> anyhow::Result<()> {
    let lab = Lab::start(3, &["--mode", "forward", "--forward-path", "userspace"]).await?;
    let ip = forwarding_works(&lab, false).await?;
    // The relay's policy rules are in place on the owner (and nftables holds nothing of ferrolb's).
    let owner = lab.recorded_owner(&ip)?.unwrap_or_default();
    let rules = lab.exec(&owner, &["ip", "-4", "rule", "show"])?;
    assert!(rules.contains(&format!("to {ip} ipproto tcp dport 80 lookup 4210")), "{rules}");
    assert!(!lab.exec(&owner, &["nft", "list", "tables"])?.contains("ferrolb"));
    // The relay dials the endpoints itself, so a flow to a removed one is closed and moves.
    udp_flow_moves_off_a_removed_endpoint(&lab, &ip).await?;
    let next = dead_owner_forwards_from_the_next_node(&lab, &ip).await?;
    clean_stop_leaves_nothing(&lab, &next)?;
    wait_for("HTTP after the clean stop", SOON, || async { Ok(get(&lab, &ip, 80)) }).await?;
    Ok(())
}
