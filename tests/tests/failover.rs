//! Ownership in the lab with real speakers, real ARP and real TCP: a dead owner's IP moves, a graceful stop
//! hands over without a failed connection, forged membership datagrams are refused, and eligibility follows
//! endpoints, labels and L2Advertisements. (How fast is measured by `hack/bench/failover`, not here.)

use std::time::Duration;

use ferrolb_e2e::{DEMO_POOL_ON_EVERY_NODE, Lab, wait_for};

const SOON: Duration = Duration::from_secs(30);

/// nftables rules that drop 5% of the membership datagrams a node receives.
const LOSS: &str = "nft add table inet flbloss && \
    nft add chain inet flbloss input '{ type filter hook input priority 0; }' && \
    nft add rule inet flbloss input udp dport 7947 numgen random mod 100 '<' 5 drop";
const IP: &str = "198.51.100.192";

/// The demo pool, an L2Advertisement limited to nodes labelled announce=yes, and a Service for app=web.
const SETUP: &str = r#"apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: demo}
spec: {addresses: [198.51.100.192/27]}
---
apiVersion: ferrolb.io/v1alpha1
kind: L2Advertisement
metadata: {name: announcers}
spec:
  nodeSelectors: [{matchLabels: {ferrolb.io/announce: "yes"}}]
---
apiVersion: v1
kind: Service
metadata: {name: demo, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

/// Node-2 and node-3 may announce; the only pod runs on node-1, so killing an announcer never kills the
/// backend. Returns (owner, the other announcer) once the owner answers ARP and TCP works.
async fn announcers_with_backend_elsewhere(lab: &Lab) -> anyhow::Result<(String, String)> {
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    for node in ["node-2", "node-3"] {
        lab.kubectl(&["label", "node", node, "ferrolb.io/announce=yes"])?;
    }
    lab.apply_yaml(SETUP)?;
    let owner = wait_for("an L2Announcement for the demo IP", SOON, || async { lab.recorded_owner(IP) }).await?;
    assert!(owner == "node-2" || owner == "node-3", "{owner} is not selected by the L2Advertisement");
    let other = if owner == "node-2" { "node-3" } else { "node-2" }.to_owned();
    lab.wait_answered_by(IP, &owner).await?;
    wait_for("TCP through the EXTERNAL-IP", SOON, || async {
        Ok(lab
            .exec("client", &["curl", "-s", "-m", "2", &format!("http://{IP}/")])
            .ok()
            .filter(|b| b.contains("pod=web-1")))
    })
    .await?;
    Ok((owner, other))
}

fn service_events(lab: &Lab) -> anyhow::Result<String> {
    lab.kubectl(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        "involvedObject.name=demo",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

/// Waits until nobody records or answers for the IP, then for an Event on the Service saying `why`.
async fn withdrawn_with_event(lab: &Lab, why: &str) -> anyhow::Result<()> {
    wait_for("the IP withdrawn", SOON, || async {
        Ok((lab.recorded_owner(IP)?.is_none() && lab.arp_answers(IP)?.is_empty()).then_some(()))
    })
    .await?;
    wait_for(&format!("an Event saying {why:?}"), SOON, || async {
        Ok(service_events(lab)?.contains(why).then_some(()))
    })
    .await
}

#[tokio::test]
async fn a_dead_owner_s_ip_moves_even_during_an_api_outage_while_loss_and_forgeries_move_nothing() -> anyhow::Result<()>
{
    let lab = Lab::start(3, &[]).await?;
    let (owner, other) = announcers_with_backend_elsewhere(&lab).await?;

    // 5% membership packet loss into every node for 20 s: nobody is declared dead, nothing moves.
    let downs = |lab: &Lab| lab.speakers_total(3, "ferrolb_speaker_membership_transitions_total{kind=\"down\"}");
    let downs_before = downs(&lab)?;
    for i in 1..=3 {
        lab.exec(&format!("node-{i}"), &["sh", "-c", LOSS])?;
    }
    tokio::time::sleep(Duration::from_secs(20)).await; // an observation window, not synchronisation
    for i in 1..=3 {
        lab.exec(&format!("node-{i}"), &["nft", "delete", "table", "inet", "flbloss"])?;
    }
    assert_eq!(downs(&lab)?, downs_before, "a speaker was declared dead under 5% loss");
    assert_eq!(lab.recorded_owner(IP)?.as_deref(), Some(owner.as_str()), "the IP moved under 5% loss");

    // The owner dies while the API server is unreachable: the speakers fail over on their own.
    lab.freeze_api_server(true)?;
    let report = lab.probe_while(IP, 80, 12, || lab.lab(&["kill-node", &owner]).map(drop)).await;
    lab.freeze_api_server(false)?;
    let report = report?;
    assert_eq!(report["last_second_ok"], true, "connections did not come back after {owner} died: {report}");
    let gap = report["max_gap_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(gap < 5000.0, "new connections failed for {gap} ms: {report}");

    let other_mac = lab.node_mac(&other)?;
    assert_eq!(lab.arp_answers(IP)?, [other_mac], "only the surviving announcer may answer");
    wait_for("the record naming the new owner", SOON, || async {
        Ok((lab.recorded_owner(IP)?.as_deref() == Some(other.as_str())).then_some(()))
    })
    .await?;
    let events = wait_for("an Event explaining the takeover", SOON, || async {
        let events = service_events(&lab)?;
        Ok(events.contains(&format!("took over from {owner}: {owner} left membership")).then_some(events))
    })
    .await?;
    assert!(events.contains(&format!("announcing {IP} from {other}")), "{events}");

    // Datagrams without the key are counted and change nothing: forgeries naming the speakers' key id (which
    // anyone on the LAN sees in the header) with a made-up tag, forgeries under another key, and garbage.
    let port_before = lab.speaker_metric(&other, "ferrolb_speaker_membership_size")?;
    let (key_id, _) = lab.membership_key_ids(&other)?;
    let forge = "import socket,os,time\n\
        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
        kid=bytes.fromhex(KID)\n\
        for i in range(20):\n    \
        t=int(time.time()*1000).to_bytes(8,'big')\n    \
        s.sendto(b'FLB\\x02'+t+kid+kid+os.urandom(32)+os.urandom(60),(ADDR,7947))\n    \
        s.sendto(b'FLB\\x02'+t+os.urandom(16)+os.urandom(32)+os.urandom(60),(ADDR,7947))\n    \
        s.sendto(os.urandom(100),(ADDR,7947))\n";
    let node_ip = ferrolb_e2e::node_address(&other, false);
    let forge = forge.replace("ADDR", &format!("'{node_ip}'")).replace("KID", &format!("'{key_id}'"));
    lab.exec("client", &["python3", "-c", &forge])?;
    wait_for("the forged datagrams counted as refused, each for its reason", SOON, || async {
        for reason in ["bad_tag", "unknown_key", "not_ours"] {
            let metric = format!("ferrolb_speaker_membership_rejected_total{{reason=\"{reason}\"}}");
            if lab.speaker_metric(&other, &metric)? < 20.0 {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    assert_eq!(lab.speaker_metric(&other, "ferrolb_speaker_membership_size")?, port_before);
    assert_eq!(lab.recorded_owner(IP)?.as_deref(), Some(other.as_str()));
    Ok(())
}

#[tokio::test]
async fn a_gracefully_stopped_speaker_hands_over_without_a_failed_connection() -> anyhow::Result<()> {
    let lab = Lab::start(3, &[]).await?;
    let (owner, other) = announcers_with_backend_elsewhere(&lab).await?;

    let report = lab.probe_while(IP, 80, 6, || lab.lab(&["stop-speaker", &owner]).map(drop)).await?;
    Lab::assert_handover_lost_nothing(&report, 1, "during a graceful handover");
    assert_eq!(report["last_second_ok"], true, "{report}");
    let other_mac = lab.node_mac(&other)?;
    assert_eq!(lab.arp_answers(IP)?, [other_mac], "the stopped speaker must not answer");
    wait_for("the record naming the new owner", SOON, || async {
        Ok((lab.recorded_owner(IP)?.as_deref() == Some(other.as_str())).then_some(()))
    })
    .await?;

    // Back again: it rejoins and the membership is whole.
    lab.lab(&["start-speaker", &owner])?;
    wait_for("the restarted speaker in the membership", SOON, || async {
        Ok((lab.speaker_metric(&other, "ferrolb_speaker_membership_size")? == 3.0).then_some(()))
    })
    .await?;
    let answers = wait_for("one ARP answer after the rejoin", SOON, || async {
        let answers = lab.arp_answers(IP)?;
        Ok((answers.len() == 1).then_some(answers))
    })
    .await?;
    let holder = lab.recorded_owner(IP)?.unwrap_or_default();
    assert_eq!(answers, [lab.node_mac(&holder)?], "the answering node is not the recorded owner {holder}");

    // `ferrolb status` names the holder.
    let text = lab.ferrolb_status()?;
    let line = text.lines().find(|l| l.starts_with("default/demo")).unwrap_or_default();
    assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["default/demo", IP, holder.as_str()], "{text}");
    assert!(text.contains("demo") && text.contains("198.51.100.192/27"), "{text}");
    Ok(())
}

/// A Service with `externalTrafficPolicy: Local` for app=local (after [`DEMO_POOL_ON_EVERY_NODE`]).
const LOCAL: &str = r#"apiVersion: v1
kind: Service
metadata: {name: demo, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: local}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

#[tokio::test]
async fn eligibility_follows_local_endpoints_labels_and_advertisements() -> anyhow::Result<()> {
    // Speakers re-announce every second here, which this test also checks.
    let lab = Lab::start(3, &["--helm-set", "speaker.extraArgs={--reannounce-interval=1}"]).await?;
    lab.lab(&["pod", "add", "local-1", "--node", "node-2", "--labels", "app=local"])?;
    lab.apply_yaml(DEMO_POOL_ON_EVERY_NODE)?;
    lab.apply_yaml(LOCAL)?;
    let owner_is = |node: &'static str| {
        let lab = &lab;
        async move {
            let mac = lab.node_mac(node)?;
            wait_for(&format!("{node} holding the IP"), SOON, || async {
                let recorded = lab.recorded_owner(IP)?;
                Ok((recorded.as_deref() == Some(node) && lab.arp_answers(IP)? == [mac.clone()]).then_some(()))
            })
            .await
        }
    };
    // externalTrafficPolicy Local: only the node with the endpoint may hold the IP.
    owner_is("node-2").await?;
    let body = lab.exec("client", &["curl", "-s", "-m", "2", &format!("http://{IP}/")])?;
    assert!(body.contains("pod=local-1") && body.contains("client=198.51.100.2"), "{body}");

    // The periodic re-announcement keeps sending gratuitous ARP while node-2 holds the IP.
    let sent = lab.speaker_metric("node-2", "ferrolb_speaker_gratuitous_sent_total{protocol=\"arp\"}")?;
    wait_for("gratuitous ARP re-sent by the owner", SOON, || async {
        let now = lab.speaker_metric("node-2", "ferrolb_speaker_gratuitous_sent_total{protocol=\"arp\"}")?;
        Ok((now >= sent + 12.0).then_some(()))
    })
    .await?;

    // Moving the pod moves the IP.
    lab.lab(&["pod", "add", "local-2", "--node", "node-3", "--labels", "app=local"])?;
    lab.lab(&["pod", "del", "local-1"])?;
    owner_is("node-3").await?;

    // The exclusion label takes node-3 out; no other node has an endpoint, so nobody announces, the record
    // goes and the Service is told why.
    lab.kubectl(&["label", "node", "node-3", "node.kubernetes.io/exclude-from-external-load-balancers="])?;
    withdrawn_with_event(&lab, "no live node is eligible").await?;
    lab.kubectl(&["label", "node", "node-3", "node.kubernetes.io/exclude-from-external-load-balancers-"])?;
    owner_is("node-3").await?;

    // Removing the L2Advertisement withdraws the IP.
    lab.kubectl(&["delete", "l2advertisement", "everywhere"])?;
    withdrawn_with_event(&lab, "no L2Advertisement or BGPAdvertisement covers pool demo").await?;
    Ok(())
}
