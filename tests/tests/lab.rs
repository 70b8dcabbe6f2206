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
    let file = std::env::temp_dir().join(format!("ferrolb-lab-web-{}.yaml", std::process::id()));
    std::fs::write(&file, WEB)?;
    lab.apply_file(&file)?;
    std::fs::remove_file(&file)?;
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
