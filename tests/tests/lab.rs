//! The lab's data plane is real: NodePort traffic from the client reaches real pods through every node's
//! kube-proxy, and ferrolb's controller publishes EXTERNAL-IPs inside it.

use std::collections::BTreeSet;
use std::time::Duration;

use ferrolb_e2e::{Lab, repo_root, wait_for};

const SOON: Duration = Duration::from_secs(30);

const WEB: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 8080, protocol: TCP}
  - {name: echo, port: 8081, protocol: UDP}
"#;

#[tokio::test]
async fn nodeport_reaches_every_pod_through_every_node() -> anyhow::Result<()> {
    let lab = Lab::start(3, &["--no-ferrolb"]).await?;
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    lab.lab(&["pod", "add", "web-2", "--node", "node-2", "--labels", "app=web"])?;
    lab.apply_yaml(WEB)?;
    let ports =
        lab.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort} {.spec.ports[1].nodePort}"])?;
    let (tcp, udp) = ports.split_once(' ').expect("two node ports");
    wait_for("an EndpointSlice with both pods", SOON, || async {
        let out = lab.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[0]}",
        ])?;
        Ok((out.split_whitespace().count() == 2).then_some(()))
    })
    .await?;

    for node in ["198.51.100.11", "198.51.100.12", "198.51.100.13"] {
        let url = format!("http://{node}:{tcp}/");
        // Every node answers, and across requests every pod is reached.
        let seen = wait_for(&format!("both pods through {node}"), SOON, || {
            let url = url.clone();
            let lab = &lab;
            async move {
                let mut seen = BTreeSet::new();
                for _ in 0..20 {
                    let body = lab.exec("client", &["curl", "-s", "-m", "2", &url]).unwrap_or_default();
                    if let Some(pod) = body.split_whitespace().find_map(|w| w.strip_prefix("pod=")) {
                        seen.insert(pod.to_owned());
                    }
                }
                Ok((seen.len() == 2).then_some(seen))
            }
        })
        .await?;
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["web-1", "web-2"]);

        let script = format!(
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); \
             s.sendto(b'hi', ('{node}', {udp})); print(s.recvfrom(200)[0].decode())"
        );
        let reply = wait_for(&format!("UDP echo through {node}"), SOON, || {
            let script = script.clone();
            let lab = &lab;
            async move { Ok(lab.exec("client", &["python3", "-c", &script]).ok().filter(|r| r.contains("pod=web-"))) }
        })
        .await?;
        assert!(reply.starts_with("pod=web-"), "{reply}");
    }
    Ok(())
}

#[tokio::test]
async fn controller_in_the_lab_publishes_the_external_ip() -> anyhow::Result<()> {
    let lab = Lab::start(2, &[]).await?;
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    lab.apply_file(&repo_root().join("hack/lab.d/demo.yaml"))?;
    let table = wait_for("EXTERNAL-IP of the demo Service", SOON, || async {
        let out = lab.kubectl(&["get", "svc", "demo"])?;
        Ok(out.contains("198.51.100.192").then_some(out))
    })
    .await?;
    assert!(table.contains("EXTERNAL-IP"), "{table}");
    // The lab's status command sees the running pieces.
    let status = lab.lab(&["status"])?;
    assert!(status.contains("ferrolb-controller") && status.contains("running"), "{status}");
    Ok(())
}

#[tokio::test]
async fn speaker_announces_external_ips_from_exactly_one_node() -> anyhow::Result<()> {
    let lab = Lab::start(3, &[]).await?;
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    lab.lab(&["pod", "add", "web-2", "--node", "node-2", "--labels", "app=web"])?;
    lab.apply_file(&repo_root().join("hack/lab.d/demo.yaml"))?;
    wait_for("the demo Service's EXTERNAL-IP", SOON, || async {
        Ok(lab
            .kubectl(&["get", "svc", "demo", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])?
            .contains("198.51.100.192")
            .then_some(()))
    })
    .await?;
    // Without an L2Advertisement nobody answers for the address.
    assert!(lab.arp_answers("198.51.100.192")?.is_empty(), "answered without an L2Advertisement");

    lab.apply_file(&repo_root().join("hack/lab.d/l2advertisement.yaml"))?;
    let macs = wait_for("an ARP answer for 198.51.100.192", SOON, || async {
        let macs = lab.arp_answers("198.51.100.192")?;
        Ok((!macs.is_empty()).then_some(macs))
    })
    .await?;
    assert_eq!(macs.len(), 1, "more than one node answers: {macs:?}");
    let node_macs: Vec<String> = (1..=3)
        .map(|i| lab.exec(&format!("node-{i}"), &["cat", "/sys/class/net/eth0/address"]).map(|m| m.trim().to_owned()))
        .collect::<Result<_, _>>()?;
    assert!(node_macs.contains(&macs[0]), "answer from {} is not a node ({node_macs:?})", macs[0]);
    // An address nobody holds gets no answer.
    assert!(lab.arp_answers("198.51.100.199")?.is_empty());
    // The owner's metrics count what it did.
    let owner = format!("node-{}", node_macs.iter().position(|m| *m == macs[0]).expect("a node's MAC") + 1);
    let value = |name: &str| lab.speaker_metric(&owner, name);
    assert_eq!(value("ferrolb_speaker_owned_ips")?, 1.0);
    assert!(value("ferrolb_speaker_requests_answered_total{protocol=\"arp\"}")? >= 1.0);
    assert!(value("ferrolb_speaker_gratuitous_sent_total{protocol=\"arp\"}")? >= 2.0);

    // TCP through the EXTERNAL-IP reaches a pod (kube-proxy handles the VIP on the owner).
    let body = wait_for("HTTP through the EXTERNAL-IP", SOON, || async {
        Ok(lab
            .exec("client", &["curl", "-s", "-m", "2", "http://198.51.100.192/"])
            .ok()
            .filter(|b| b.contains("pod=web-")))
    })
    .await?;
    assert!(body.starts_with("pod=web-"), "{body}");

    // IPv6: a dual-stack Service is reachable on its IPv6 EXTERNAL-IP (answered by NDP).
    lab.apply_file(&repo_root().join("hack/lab.d/dual.yaml"))?;
    let v6 = wait_for("the dual Service's IPv6 EXTERNAL-IP", SOON, || async {
        let ip = lab.kubectl(&["get", "svc", "dual", "-o", "jsonpath={.status.loadBalancer.ingress[1].ip}"])?;
        Ok((!ip.is_empty()).then_some(ip))
    })
    .await?;
    let url = format!("http://[{v6}]/");
    let body = wait_for("HTTP through the IPv6 EXTERNAL-IP", SOON, || {
        let url = url.clone();
        let lab = &lab;
        async move { Ok(lab.exec("client", &["curl", "-s", "-m", "2", &url]).ok().filter(|b| b.contains("pod=web-"))) }
    })
    .await?;
    assert!(body.contains("client=2001:db8:100::"), "{body}");
    Ok(())
}
