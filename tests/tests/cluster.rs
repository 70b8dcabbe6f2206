//! ferrolb installed as users install it: `helm install` of charts/ferrolb, from the image hack/image
//! builds, on a lab of real nodes (each with its own containerd, kubelet and kube-proxy; pods are containers).
//!
//! One lab serves every check, in order: those that leave the cluster as they found it first (the install,
//! the pods' privileges, the data plane, an address conflict, bad input, a key rotation, the control plane
//! restarting), then those that disturb it (an upgrade, deleted pods, a drain, the uninstall). Each check is
//! its own function, so a failure names it.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use ferrolb_e2e::{Lab, node_address, repo_root, wait_for};

const SOON: Duration = Duration::from_secs(30);
/// A rolling update of three speakers and two controllers, or pods starting on a loaded 2-core machine.
const ROLL: Duration = Duration::from_secs(180);
const NS: &str = "ferrolb-system";
const DEMO_IP: &str = "198.51.100.192";

#[tokio::test]
async fn ferrolb_installed_with_helm_runs_on_real_nodes() -> anyhow::Result<()> {
    // A short re-check interval, so the address conflict's end is seen within the test.
    let lab = Lab::start(3, &["--helm-set", "speaker.conflictProbe.recheckInterval=2s"]).await?;
    every_ferrolb_pod_is_ready(&lab)?;
    pods_hold_exactly_the_privileges_the_chart_gives(&lab)?;
    the_speaker_reads_no_secret_yet_has_the_membership_key(&lab)?;
    nodeport_reaches_every_pod_through_every_node(&lab).await?;
    the_demo_service_answers_from_exactly_one_node(&lab).await?;
    an_address_another_host_holds_is_never_announced(&lab).await?;
    bad_input_fails_with_a_message_that_says_what_to_do(&lab).await?;
    the_membership_key_rotates_without_a_restart_or_a_moved_ip(&lab).await?;
    restarting_the_api_server_and_etcd_moves_no_ip(&lab).await?;
    an_upgrade_rolls_every_pod_without_a_failed_connection(&lab).await?;
    deleting_the_leader_hands_over_to_the_other_replica(&lab).await?;
    a_deleted_speaker_pod_is_replaced_and_its_ip_comes_back(&lab).await?;
    a_drained_node_hands_its_ip_over_without_a_failed_connection(&lab).await?;
    uninstall_leaves_nothing_but_the_crds(&lab).await?;
    Ok(())
}

/// After `helm install --wait` (hack/lab up): a speaker on every node and both controller replicas, Ready,
/// each on a node that registered itself through its kubelet.
fn every_ferrolb_pod_is_ready(lab: &Lab) -> anyhow::Result<()> {
    let nodes = lab.kubectl(&["get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}{\"\\n\"}{end}"])?;
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    for line in nodes.lines() {
        assert!(line.contains(" v1.") && line.contains("containerd://"), "a node not run by a kubelet: {line}");
    }
    let speakers = lab.ferrolb_pods("speaker")?;
    let on: Vec<&str> = speakers.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(on, ["node-1", "node-2", "node-3"], "{speakers:?}");
    assert_eq!(lab.ferrolb_pods("controller")?.len(), 2);
    let ready = lab.kubectl(&[
        "get",
        "pods",
        "-n",
        NS,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ])?;
    assert!(ready.lines().all(|l| l.ends_with("=True")), "{ready}");
    let status = lab.helm(&["status", "ferrolb", "-n", NS])?;
    assert!(status.contains("STATUS: deployed"), "{status}");
    Ok(())
}

/// A field of `/proc/PID/status` (`CapEff`, `Uid`, `NoNewPrivs`).
fn proc_status(pid: u32, field: &str) -> anyhow::Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_owned()))
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// Read from the processes themselves (their /proc entries, which the container's /proc also shows): the
/// speaker is root with exactly NET_RAW and NET_ADMIN; the controller is uid 65532 with no capability, no
/// privilege escalation and a read-only root filesystem.
fn pods_hold_exactly_the_privileges_the_chart_gives(lab: &Lab) -> anyhow::Result<()> {
    // CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13.
    const NET_ADMIN_AND_RAW: &str = "0000000000003000";
    for (pod, _) in lab.ferrolb_pods("speaker")? {
        let pid = *lab.pids(&pod, "ferrolb")?.first().expect("one ferrolb process");
        assert_eq!(proc_status(pid, "CapEff")?, NET_ADMIN_AND_RAW, "{pod}'s effective capabilities");
        assert_eq!(proc_status(pid, "CapBnd")?, NET_ADMIN_AND_RAW, "{pod} could regain other capabilities");
        assert_eq!(proc_status(pid, "Uid")?.split_whitespace().next(), Some("0"), "{pod} runs as root");
        assert_eq!(proc_status(pid, "NoNewPrivs")?, "1", "{pod} may escalate privileges");
    }
    for (pod, _) in lab.ferrolb_pods("controller")? {
        let pid = *lab.pids(&pod, "ferrolb")?.first().expect("one ferrolb process");
        let uids: Vec<String> = proc_status(pid, "Uid")?.split_whitespace().map(str::to_owned).collect();
        assert_eq!(uids, ["65532"; 4], "{pod}'s real, effective, saved and filesystem uid");
        assert_eq!(proc_status(pid, "CapEff")?, "0000000000000000", "{pod} holds capabilities");
        assert_eq!(proc_status(pid, "NoNewPrivs")?, "1");
        // The root mount as the container sees it: mount point "/" in its own mount namespace.
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
        let root = mounts.lines().find(|l| l.split_whitespace().nth(4) == Some("/")).expect("a root mount");
        let options = root.split_whitespace().nth(5).unwrap_or_default();
        assert!(options.split(',').any(|o| o == "ro"), "{pod}'s root filesystem is writable: {root}");
    }
    Ok(())
}

/// The speaker's ServiceAccount may read no Secret at all, the membership key's included; the key still
/// reaches the speaker, as the file the kubelet mounts from the Secret.
fn the_speaker_reads_no_secret_yet_has_the_membership_key(lab: &Lab) -> anyhow::Result<()> {
    let speaker = format!("system:serviceaccount:{NS}:ferrolb-speaker");
    for what in ["secrets", "secrets/ferrolb-membership"] {
        for verb in ["get", "list", "watch"] {
            if verb != "get" && what.contains('/') {
                continue;
            }
            let answer = lab.kubectl_raw(&["auth", "can-i", verb, what, "-n", NS, "--as", &speaker])?;
            assert_eq!(answer.trim(), "no", "the speaker may {verb} {what}");
        }
    }
    let all_namespaces = lab.kubectl_raw(&["auth", "can-i", "list", "secrets", "-A", "--as", &speaker])?;
    assert_eq!(all_namespaces.trim(), "no");
    let secret = lab.kubectl(&["get", "secret", "-n", NS, "ferrolb-membership", "-o", "jsonpath={.data.key}"])?;
    let (pod, _) = lab.ferrolb_pods("speaker")?.into_iter().next().expect("a speaker");
    let pid = lab.pids(&pod, "ferrolb")?[0];
    let mounted = std::fs::read_to_string(format!("/proc/{pid}/root/etc/ferrolb/membership/key"))?;
    let decoded = lab.exec("client", &["sh", "-c", &format!("echo {secret} | base64 -d")])?;
    assert_eq!(mounted, decoded, "the mounted key is not the Secret's");
    Ok(())
}

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

/// Real pods (containers on each node's pod network) behind a NodePort: every node's kube-proxy reaches
/// both, over TCP and UDP.
async fn nodeport_reaches_every_pod_through_every_node(lab: &Lab) -> anyhow::Result<()> {
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    lab.lab(&["pod", "add", "web-2", "--node", "node-2", "--labels", "app=web"])?;
    lab.apply_yaml(WEB)?;
    let ports =
        lab.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort} {.spec.ports[1].nodePort}"])?;
    let (tcp, udp) = ports.split_once(' ').expect("two node ports");
    for node in NODES.map(|n| node_address(n, false)) {
        let url = format!("http://{node}:{tcp}/");
        let seen = wait_for(&format!("both pods through {node}"), SOON, || {
            let url = url.clone();
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
            async move { Ok(lab.exec("client", &["python3", "-c", &script]).ok().filter(|r| r.contains("pod=web-"))) }
        })
        .await?;
        assert!(reply.starts_with("pod=web-"), "{reply}");
    }
    Ok(())
}

/// The README's quick start: the demo Service gets its EXTERNAL-IP, nobody answers for it until an
/// L2Advertisement exists, then exactly one node does, and HTTP works on both families.
async fn the_demo_service_answers_from_exactly_one_node(lab: &Lab) -> anyhow::Result<()> {
    lab.apply_file(&repo_root().join("hack/lab.d/demo.yaml"))?;
    let table = wait_for("the demo Service's EXTERNAL-IP", SOON, || async {
        let out = lab.kubectl(&["get", "svc", "demo"])?;
        Ok(out.contains(DEMO_IP).then_some(out))
    })
    .await?;
    assert!(table.contains("EXTERNAL-IP"), "{table}");
    assert!(lab.arp_answers(DEMO_IP)?.is_empty(), "answered without an L2Advertisement");

    lab.apply_file(&repo_root().join("hack/lab.d/l2advertisement.yaml"))?;
    let macs = wait_for("an ARP answer for the demo IP", SOON, || async {
        let macs = lab.arp_answers(DEMO_IP)?;
        Ok((!macs.is_empty()).then_some(macs))
    })
    .await?;
    assert_eq!(macs.len(), 1, "more than one node answers: {macs:?}");
    let node_macs: Vec<String> = (1..=3).map(|i| lab.node_mac(&format!("node-{i}"))).collect::<Result<_, _>>()?;
    let owner = format!("node-{}", node_macs.iter().position(|m| *m == macs[0]).expect("a node's MAC") + 1);
    assert!(lab.arp_answers("198.51.100.199")?.is_empty(), "an address nobody holds was answered");
    assert_eq!(lab.speaker_metric(&owner, "ferrolb_speaker_owned_ips")?, 1.0);
    assert!(lab.speaker_metric(&owner, "ferrolb_speaker_gratuitous_sent_total{protocol=\"arp\"}")? >= 2.0);
    let body = lab.wait_http(DEMO_IP, "pod=web-").await?;
    assert!(body.starts_with("pod=web-"), "{body}");

    lab.apply_file(&repo_root().join("hack/lab.d/dual.yaml"))?;
    let v6 = wait_for("the dual Service's IPv6 EXTERNAL-IP", SOON, || async {
        let ip = lab.kubectl(&["get", "svc", "dual", "-o", "jsonpath={.status.loadBalancer.ingress[1].ip}"])?;
        Ok((!ip.is_empty()).then_some(ip))
    })
    .await?;
    let body = lab.wait_http(&v6, "pod=web-").await?;
    assert!(body.contains("client=2001:db8:100::"), "{body}");
    let status = lab.lab(&["status"])?;
    assert!(status.contains("installed with helm") && status.contains("ferrolb-speaker-"), "{status}");
    Ok(())
}

/// The lowest address of the demo pool's IPv4 range that no Service holds.
fn next_free_demo_ip(lab: &Lab) -> anyhow::Result<String> {
    let held = lab.kubectl(&["get", "svc", "-A", "-o", "jsonpath={.items[*].status.loadBalancer.ingress[*].ip}"])?;
    let held: BTreeSet<&str> = held.split_whitespace().collect();
    (192..224)
        .map(|last| format!("198.51.100.{last}"))
        .find(|ip| !held.contains(ip.as_str()))
        .context("the pool is full")
}

/// A host on the LAN (the client) already uses the address the next Service would get: the owner's probe
/// finds it, no node ever answers for it, the Service gets the next address with Events that say why, the
/// pool's status, `ferrolb status` and a metric show the conflict, and once the host lets go the re-check
/// removes the AddressConflict.
async fn an_address_another_host_holds_is_never_announced(lab: &Lab) -> anyhow::Result<()> {
    let taken = next_free_demo_ip(lab)?;
    let client_mac = lab.mac("client", "eth0")?;
    lab.exec("client", &["ip", "addr", "add", &format!("{taken}/24"), "dev", "eth0"])?;
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: squatted, namespace: default}\n\
                   spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n";
    lab.apply_yaml(service)?;
    let conflict = wait_for("the AddressConflict", SOON, || async {
        Ok(lab
            .kubectl(&["get", "addressconflicts", "-o", "jsonpath={.items[*].spec.ip}/{.items[*].spec.mac}"])
            .ok()
            .filter(|o| o.len() > 1))
    })
    .await?;
    assert_eq!(conflict, format!("{taken}/{client_mac}"), "the record names the address and the host's MAC");
    let moved = wait_for("squatted to get another address", SOON, || async {
        let ip = lab.kubectl(&["get", "svc", "squatted", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])?;
        Ok((!ip.is_empty() && ip != taken).then_some(ip))
    })
    .await?;
    let events = lab.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=squatted",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])?;
    assert!(
        events.contains(&format!("AddressConflict: {taken} is already in use on the LAN: {client_mac} answered")),
        "{events}"
    );
    assert!(
        events.contains(&format!("IPReassigned: assigned {moved}")) && events.contains(&format!("replaces {taken}")),
        "{events}"
    );
    // No node ever answered for the squatted address; the new one works.
    let node_macs: Vec<String> = (1..=3).map(|i| lab.node_mac(&format!("node-{i}"))).collect::<Result<_, _>>()?;
    let answers = lab.arp_answers(&taken)?;
    assert!(answers.iter().all(|m| !node_macs.contains(m)), "a node answered for {taken}: {answers:?}");
    lab.wait_http(&moved, "pod=web-").await?;
    let pool = lab.kubectl(&["get", "ipaddresspool", "demo", "-o", "jsonpath={.status.conflicts}"])?;
    assert!(pool.contains(&format!("{taken} answered by {client_mac}")), "{pool}");
    let status = lab.ferrolb_status()?;
    assert!(status.contains(&format!("{taken} is answered by another host on the LAN ({client_mac}")), "{status}");
    let found: f64 = (1..=3)
        .map(|i| lab.speaker_metric(&format!("node-{i}"), "ferrolb_speaker_address_conflicts_total").unwrap_or(0.0))
        .sum();
    assert_eq!(found, 1.0, "one node found one conflict");

    // The host lets go: a re-check finds nobody and removes the record; the address is free again.
    lab.exec("client", &["ip", "addr", "del", &format!("{taken}/24"), "dev", "eth0"])?;
    wait_for("the AddressConflict to go", SOON, || async {
        Ok(lab.kubectl(&["get", "addressconflicts", "-o", "name"])?.is_empty().then_some(()))
    })
    .await?;
    lab.kubectl(&["delete", "svc", "squatted"])?;
    wait_for("the pool's status to drop the conflict", SOON, || async {
        Ok(lab
            .kubectl(&["get", "ipaddresspool", "demo", "-o", "jsonpath={.status.conflicts}"])?
            .is_empty()
            .then_some(()))
    })
    .await?;
    Ok(())
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout)
}

/// A value the schema refuses, a namespace whose Pod Security level refuses the speakers, a namespace with
/// no level (the lab's API server enforces baseline by default), and an image no node has: each says what to
/// do, in helm's error, the chart's NOTES, an Event or the pod's status. None disturbs the installed release.
async fn bad_input_fails_with_a_message_that_says_what_to_do(lab: &Lab) -> anyhow::Result<()> {
    let chart = repo_root().join("charts/ferrolb");
    let chart = chart.to_str().expect("utf-8 path");

    let refused = lab.helm_raw(&["upgrade", "ferrolb", chart, "-n", NS, "--reuse-values", "--set", "mode=bogus"])?;
    assert!(!refused.status.success(), "the schema accepted mode=bogus");
    let message = stderr(&refused);
    assert!(message.contains("mode") && message.contains("kube-proxy") && message.contains("forward"), "{message}");

    lab.kubectl(&["create", "namespace", "baseline-ns"])?;
    lab.kubectl(&["label", "namespace", "baseline-ns", "pod-security.kubernetes.io/enforce=baseline"])?;
    let refused = lab.helm_raw(&["install", "psa", chart, "-n", "baseline-ns"])?;
    assert!(!refused.status.success(), "installed into a namespace that enforces baseline");
    let message = stderr(&refused);
    assert!(
        message.contains("kubectl label namespace baseline-ns pod-security.kubernetes.io/enforce=privileged"),
        "{message}"
    );
    assert!(lab.kubectl(&["get", "all", "-n", "baseline-ns", "-o", "name"])?.trim().is_empty());

    // No label: the chart cannot know the cluster's default, so it warns, and the DaemonSet's Events name
    // the violation. The controller is kept off every node, so nothing runs beside the installed release.
    lab.kubectl(&["create", "namespace", "unlabelled-ns"])?;
    let nowhere = r#"{"ferrolb.io/no-such-node":"x"}"#;
    let installed = lab.helm(&[
        "install",
        "psa",
        chart,
        "-n",
        "unlabelled-ns",
        "--set-json",
        &format!("controller.nodeSelector={nowhere}"),
    ])?;
    assert!(
        installed.contains("WARNING: namespace unlabelled-ns has no pod-security.kubernetes.io/enforce label"),
        "{installed}"
    );
    assert!(installed.contains("kubectl label namespace unlabelled-ns pod-security.kubernetes.io/enforce=privileged"));
    let event = wait_for("the DaemonSet's FailedCreate Event", SOON, || async {
        let events = lab.kubectl(&[
            "get",
            "events",
            "-n",
            "unlabelled-ns",
            "--field-selector",
            "reason=FailedCreate",
            "-o",
            "jsonpath={.items[*].message}",
        ])?;
        Ok((!events.is_empty()).then_some(events))
    })
    .await?;
    assert!(event.contains("violates PodSecurity") && event.contains("hostNetwork"), "{event}");
    lab.helm(&["uninstall", "psa", "-n", "unlabelled-ns", "--wait"])?;

    // An image no node has (pullPolicy Never, as everywhere in the lab: nothing may reach a registry).
    lab.kubectl(&["create", "namespace", "image-ns"])?;
    lab.kubectl(&["label", "namespace", "image-ns", "pod-security.kubernetes.io/enforce=privileged"])?;
    let installed = lab.helm(&[
        "install",
        "img",
        chart,
        "-n",
        "image-ns",
        "--set",
        "image.repository=ferrolb.local/ferrolb",
        "--set",
        "image.tag=no-such-tag",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        "controller.replicas=1",
        "--set-json",
        &format!("speaker.nodeSelector={nowhere}"),
    ])?;
    assert!(
        installed.contains("ErrImageNeverPull") && installed.contains("ferrolb.local/ferrolb:no-such-tag"),
        "{installed}"
    );
    let waiting = wait_for("the controller pod's image error", SOON, || async {
        let out = lab.kubectl(&[
            "get",
            "pods",
            "-n",
            "image-ns",
            "-o",
            "jsonpath={.items[*].status.containerStatuses[*].state.waiting.reason}: {.items[*].status.containerStatuses[*].state.waiting.message}",
        ])?;
        Ok(out.starts_with("ErrImageNeverPull").then_some(out))
    })
    .await?;
    assert!(waiting.contains("ferrolb.local/ferrolb:no-such-tag"), "{waiting}");
    lab.helm(&["uninstall", "img", "-n", "image-ns", "--wait"])?;
    for ns in ["baseline-ns", "unlabelled-ns", "image-ns"] {
        lab.kubectl(&["delete", "namespace", ns, "--wait=false"])?;
    }
    Ok(())
}

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

fn membership_secret(lab: &Lab, field: &str) -> anyhow::Result<String> {
    lab.kubectl(&["get", "secret", "-n", NS, "ferrolb-membership", "-o", &format!("jsonpath={field}")])
}

/// `helm upgrade --set speaker.membership.keyGeneration=2` rotates the membership key while the client opens a
/// connection every 10 ms: the Secret gets a new key and keeps the old one as previousKey; each speaker picks
/// both up from its mount (whenever its kubelet refreshes it) without a restart, and once all have it they
/// send only under the new key. Meanwhile no speaker is declared down, no IP changes owner and no connection
/// fails. Going back a generation is refused.
async fn the_membership_key_rotates_without_a_restart_or_a_moved_ip(lab: &Lab) -> anyhow::Result<()> {
    let old_key = membership_secret(lab, "{.data.key}")?;
    let pods = ferrolb_pod_identities(lab)?;
    let owners = || lab.kubectl(&["get", "l2announcements", "-A", "-o", "jsonpath={.items[*].spec.node}"]);
    let owners_before = owners()?;
    let downs = r#"ferrolb_speaker_membership_transitions_total{kind="down"}"#;
    let (downs_before, takeovers_before) =
        (lab.speakers_total(3, downs)?, lab.speakers_total(3, "ferrolb_speaker_ownership_takeovers_total")?);
    let ids_before: Vec<(String, String)> =
        NODES.iter().map(|n| lab.membership_key_ids(n)).collect::<Result<_, _>>()?;
    let old_id = ids_before[0].0.clone();
    assert!(ids_before.iter().all(|ids| *ids == (old_id.clone(), String::new())), "{ids_before:?}");
    let chart = repo_root().join("charts/ferrolb");
    let chart = chart.to_str().expect("utf-8 path");
    let upgrade = |generation: &str| {
        lab.helm_raw(&[
            "upgrade",
            "ferrolb",
            chart,
            "-n",
            NS,
            "--reuse-values",
            "--set",
            &format!("speaker.membership.keyGeneration={generation}"),
            "--wait",
        ])
    };
    let report = lab
        .probe_while(DEMO_IP, 80, 0, || {
            let done = upgrade("2")?;
            anyhow::ensure!(done.status.success(), "helm upgrade: {}", stderr(&done));
            // The act is synchronous (the probe runs beside it): poll each speaker's key ids until every
            // kubelet has refreshed its mount and every speaker has re-read it.
            let mut held = Vec::new();
            ferrolb_e2e::wait_for_blocking("every speaker to take the new key", ROLL, || {
                held = NODES.iter().map(|n| lab.membership_key_ids(n)).collect::<Result<_, _>>()?;
                Ok(held.iter().all(|(sending, accepting)| *sending != old_id && *accepting == old_id))
            })
            .map_err(|e| e.context(format!("the speakers hold {held:?}")))?;
            anyhow::ensure!(held.iter().all(|i| *i == held[0]), "the speakers hold different keys: {held:?}");
            Ok(())
        })
        .await?;
    assert_eq!(report["failures"], 0, "connections failed during the key rotation: {report}");
    assert_ne!(membership_secret(lab, "{.data.key}")?, old_key, "the Secret has no new key");
    assert_eq!(membership_secret(lab, "{.data.previousKey}")?, old_key, "the old key is not kept as previousKey");
    assert_eq!(membership_secret(lab, r"{.metadata.annotations.ferrolb\.io/key-generation}")?, "2");
    // Everyone has the new key: within a few seconds nothing is sealed with the old one any more.
    let previous = r#"ferrolb_speaker_membership_accepted_total{key="previous"}"#;
    // The speakers took the new Secret at different times, so each heard the others under the old key for a
    // while (also proof that the metric exists: a missing one reads as 0 below).
    assert!(lab.speakers_total(3, previous)? > 0.0, "no datagram was ever accepted under the previous key");
    wait_for("every speaker to send under the new key only", SOON, || async {
        let before = lab.speakers_total(3, previous)?;
        // A window of traffic (about 20 datagrams per second per speaker), not synchronisation.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok((lab.speakers_total(3, previous)? == before).then_some(()))
    })
    .await?;
    assert_eq!(ferrolb_pod_identities(lab)?, pods, "a pod restarted for the rotation");
    assert_eq!(owners()?, owners_before, "an IP changed owner during the rotation");
    assert_eq!(lab.speakers_total(3, downs)?, downs_before, "a speaker was declared down during the rotation");
    assert_eq!(lab.speakers_total(3, "ferrolb_speaker_ownership_takeovers_total")?, takeovers_before);

    let back = upgrade("1")?;
    assert!(!back.status.success(), "helm accepted an older key generation");
    assert!(stderr(&back).contains("keys only move forward"), "{}", stderr(&back));
    Ok(())
}

/// `namespace/name=IPs` of every Service, one per line.
fn assigned_ips(lab: &Lab) -> anyhow::Result<String> {
    lab.kubectl(&[
        "get",
        "svc",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.status.loadBalancer.ingress[*].ip}{\"\\n\"}{end}",
    ])
}

/// The API server restarted, then etcd, then both at once, while the client opens a connection every 10 ms
/// to the demo IP: the speakers keep announcing from their caches and the controller re-lists, so no
/// connection fails; afterwards no IP moved or changed owner, no two Services share an IP, every IP is
/// answered by exactly its owner's MAC, and a new Service gets an address that its owner announces (the
/// watches of both components came back).
async fn restarting_the_api_server_and_etcd_moves_no_ip(lab: &Lab) -> anyhow::Result<()> {
    let before = assigned_ips(lab)?;
    let owners = || {
        lab.kubectl(&[
            "get",
            "l2announcements",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.spec.ip}={.spec.node}{\"\\n\"}{end}",
        ])
    };
    let owners_before = owners()?;
    let takeovers = "ferrolb_speaker_ownership_takeovers_total";
    let takeovers_before = lab.speakers_total(3, takeovers)?;
    let report = lab
        .probe_while(DEMO_IP, 80, 0, || {
            for parts in [&["kube-apiserver"][..], &["etcd"], &["etcd", "kube-apiserver"]] {
                let mut args = vec!["restart-control-plane"];
                args.extend_from_slice(parts);
                lab.lab(&args)?;
            }
            Ok(())
        })
        .await?;
    assert_eq!(report["failures"], 0, "connections failed while the control plane restarted: {report}");
    // First proof that both components' watches came back (a Service created now gets an address its owner
    // announces); only then can an IP that moved late show in the checks below.
    let fresh = "apiVersion: v1\nkind: Service\nmetadata: {name: after-restart, namespace: default}\n\
                 spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n";
    lab.apply_yaml(fresh)?;
    let ip = wait_for("an IP for a Service created after the restarts", SOON, || async {
        let ip =
            lab.kubectl(&["get", "svc", "after-restart", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])?;
        Ok((!ip.is_empty()).then_some(ip))
    })
    .await?;
    lab.wait_http(&ip, "pod=web-").await?;
    lab.kubectl(&["delete", "svc", "after-restart"])?;
    wait_for("the new Service's record to go", SOON, || async { Ok(lab.recorded_owner(&ip)?.is_none().then_some(())) })
        .await?;
    assert_eq!(assigned_ips(lab)?, before, "an IP moved");
    assert_eq!(owners()?, owners_before, "an IP changed owner");
    // The new Service's IP is the one takeover allowed.
    assert_eq!(lab.speakers_total(3, takeovers)?, takeovers_before + 1.0, "a speaker took an IP over");
    let mut seen = BTreeSet::new();
    for ip in before.lines().filter_map(|l| l.split_once('=')).flat_map(|(_, ips)| ips.split_whitespace()) {
        assert!(seen.insert(ip.to_owned()), "{ip} is held by two Services:\n{before}");
    }
    for line in owners_before.lines() {
        let (ip, node) = line.split_once('=').context("ip=node")?;
        if ip.contains(':') {
            continue; // arp_answers asks over ARP; the IPv6 path is the same code.
        }
        assert_eq!(lab.arp_answers(ip)?, [lab.node_mac(node)?], "{ip} is not answered by its owner {node} alone");
    }
    Ok(())
}

/// (pod name, pod uid, image) of every ferrolb pod.
fn ferrolb_pod_identities(lab: &Lab) -> anyhow::Result<BTreeSet<(String, String, String)>> {
    let out = lab.kubectl(&[
        "get",
        "pods",
        "-n",
        NS,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.spec.containers[0].image}{\"\\n\"}{end}",
    ])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_owned(), f.next()?.to_owned(), f.next()?.to_owned()))
        })
        .collect())
}

/// `helm upgrade` to a new image with a changed value rolls every speaker and both controllers while the
/// client opens a new connection every 10 ms to the demo IP: none fails, and no IP moves.
async fn an_upgrade_rolls_every_pod_without_a_failed_connection(lab: &Lab) -> anyhow::Result<()> {
    let ips_before =
        lab.kubectl(&["get", "svc", "-A", "-o", "jsonpath={.items[*].status.loadBalancer.ingress[*].ip}"])?;
    let before = ferrolb_pod_identities(lab)?;
    // A new image: the same binary, built again (a new image ID), under a new tag.
    let archive = lab.dir().join("upgrade.oci.tar");
    let binary = ferrolb_e2e::ferrolb_binary()?;
    let built = std::process::Command::new(repo_root().join("hack/image"))
        .args(["--quiet", "--binary"])
        .arg(&binary)
        .args(["--name", "ferrolb.local/ferrolb:upgrade", "--out"])
        .arg(&archive)
        .output()?;
    anyhow::ensure!(built.status.success(), "hack/image failed: {}", stderr(&built));
    lab.lab(&["load-image", archive.to_str().expect("utf-8 path")])?;
    let chart = repo_root().join("charts/ferrolb");
    let report = lab
        .probe_while(DEMO_IP, 80, 0, || {
            lab.helm(&[
                "upgrade",
                "ferrolb",
                chart.to_str().expect("utf-8 path"),
                "-n",
                NS,
                "--reuse-values",
                "--set",
                "image.tag=upgrade",
                "--set",
                "log.level=debug",
                "--wait",
                "--timeout",
                "300s",
            ])?;
            // helm --wait calls a DaemonSet ready with maxUnavailable pods still rolling.
            lab.kubectl(&["rollout", "status", "-n", NS, "daemonset/ferrolb-speaker", "--timeout", "300s"])?;
            lab.kubectl(&["rollout", "status", "-n", NS, "deployment/ferrolb-controller", "--timeout", "300s"])
                .map(drop)
        })
        .await?;
    // Three speakers roll: the IP moves off each owner and possibly back, so a few path changes.
    Lab::assert_handover_lost_nothing(&report, 3, "during the rolling upgrade");
    assert_eq!(report["last_second_ok"], true, "{report}");
    let after = ferrolb_pod_identities(lab)?;
    assert_eq!(after.len(), 5, "{after:?}");
    let old_uids: BTreeSet<&String> = before.iter().map(|(_, uid, _)| uid).collect();
    for (pod, uid, image) in &after {
        assert!(!old_uids.contains(uid), "{pod} was not replaced");
        assert_eq!(image, "ferrolb.local/ferrolb:upgrade", "{pod}");
    }
    let args = lab.kubectl(&[
        "get",
        "ds",
        "-n",
        NS,
        "ferrolb-speaker",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
    ])?;
    assert!(args.contains("--log-level=debug"), "{args}");
    let ips_after =
        lab.kubectl(&["get", "svc", "-A", "-o", "jsonpath={.items[*].status.loadBalancer.ingress[*].ip}"])?;
    assert_eq!(ips_before, ips_after, "an IP moved during the upgrade");
    Ok(())
}

fn lease_holder(lab: &Lab) -> anyhow::Result<String> {
    lab.kubectl(&["get", "lease", "-n", NS, "ferrolb-controller", "-o", "jsonpath={.spec.holderIdentity}"])
}

/// Deleting the leader's pod: once its process has stopped, another replica holds the Lease within the
/// Lease's duration (15 s) and a Service created in between gets its IP. (A stopping leader releases the
/// Lease, so the standby and the Deployment's replacement pod race for it; either may win.)
async fn deleting_the_leader_hands_over_to_the_other_replica(lab: &Lab) -> anyhow::Result<()> {
    let leader = lease_holder(lab)?;
    let controllers: Vec<String> = lab.ferrolb_pods("controller")?.into_iter().map(|(p, _)| p).collect();
    assert!(controllers.contains(&leader), "the Lease holder {leader:?} is not a controller pod: {controllers:?}");
    lab.kubectl(&["delete", "pod", "-n", NS, &leader, "--wait=false"])?;
    // The old leader still writes while it shuts down; the check starts when its process is gone.
    wait_for("the old leader's pod gone", ROLL, || async {
        Ok((!lab.ferrolb_pods("controller")?.iter().any(|(p, _)| *p == leader)).then_some(()))
    })
    .await?;
    let gone = std::time::Instant::now();
    lab.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: after-leader, namespace: default}\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports: [{port: 81, targetPort: 8080}]\n",
    )?;
    let ip = wait_for("the Service created meanwhile to get an IP", SOON, || async {
        let ip = lab.kubectl(&["get", "svc", "after-leader", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])?;
        Ok((!ip.is_empty()).then_some(ip))
    })
    .await?;
    let took = gone.elapsed();
    assert!(took < Duration::from_secs(20), "it took {took:?} after the leader stopped, more than the Lease's 15 s");
    assert!(ip.starts_with("198.51.100."), "{ip}");
    let holder = lease_holder(lab)?;
    let now: Vec<String> = lab.ferrolb_pods("controller")?.into_iter().map(|(p, _)| p).collect();
    assert!(holder != leader && now.contains(&holder), "the Lease is held by {holder:?}; controllers: {now:?}");
    eprintln!("leader {leader} stopped; {holder} assigned a new Service's IP {took:?} later");
    lab.kubectl(&["delete", "svc", "after-leader"])?;
    wait_for("the Deployment whole again", ROLL, || async {
        let ready =
            lab.kubectl(&["get", "deploy", "-n", NS, "ferrolb-controller", "-o", "jsonpath={.status.readyReplicas}"])?;
        Ok((ready == "2").then_some(()))
    })
    .await
}

/// Deleting the speaker pod that announces the demo IP: the IP moves to another node at once, the
/// DaemonSet starts a new pod on the same node, and the IP comes back there (placement is a pure function of
/// the live nodes, which are the same again).
async fn a_deleted_speaker_pod_is_replaced_and_its_ip_comes_back(lab: &Lab) -> anyhow::Result<()> {
    let owner = wait_for("the demo IP's owner", SOON, || async { lab.recorded_owner(DEMO_IP) }).await?;
    let (pod, _) = lab.ferrolb_pods("speaker")?.into_iter().find(|(_, n)| *n == owner).expect("a speaker on the owner");
    lab.kubectl(&["delete", "pod", "-n", NS, &pod, "--wait=false"])?;
    let moved = wait_for("the IP announced from another node", SOON, || async {
        Ok(lab.recorded_owner(DEMO_IP)?.filter(|n| *n != owner))
    })
    .await?;
    assert_ne!(moved, owner);
    let replacement = wait_for("a new speaker pod on the node", ROLL, || async {
        let pods = lab.ferrolb_pods("speaker")?;
        Ok(pods.into_iter().find(|(p, n)| *n == owner && *p != pod).map(|(p, _)| p))
    })
    .await?;
    let owner_mac = lab.node_mac(&owner)?;
    wait_for(&format!("the IP back on {owner} ({replacement})"), ROLL, || async {
        Ok((lab.recorded_owner(DEMO_IP)?.as_deref() == Some(owner.as_str())
            && lab.arp_answers(DEMO_IP)? == [owner_mac.clone()])
        .then_some(()))
    })
    .await
}

/// `kubectl drain` of the node announcing the demo IP, while the client opens a new connection every 10 ms:
/// the cordon hands the IP to another node and no connection fails. The drain evicts what is not a
/// DaemonSet's (the controller replicas; the selector spares the lab's bare test pods, which drain would
/// otherwise refuse without --force); the speaker's pod stays, running but no longer announcing.
async fn a_drained_node_hands_its_ip_over_without_a_failed_connection(lab: &Lab) -> anyhow::Result<()> {
    let owner = wait_for("the demo IP's owner", SOON, || async { lab.recorded_owner(DEMO_IP) }).await?;
    let report = lab
        .probe_while(DEMO_IP, 80, 5, || {
            lab.kubectl(&["drain", &owner, "--ignore-daemonsets", "--pod-selector", "!app", "--timeout", "150s"])
                .map(drop)
        })
        .await?;
    Lab::assert_handover_lost_nothing(&report, 1, &format!("while {owner} was drained"));
    assert_eq!(report["last_second_ok"], true, "{report}");
    let next = wait_for("another node announcing", SOON, || async {
        Ok(lab.recorded_owner(DEMO_IP)?.filter(|n| *n != owner))
    })
    .await?;
    lab.wait_answered_by(DEMO_IP, &next).await?;
    assert!(lab.ferrolb_pods("speaker")?.iter().any(|(_, n)| *n == owner), "the drain removed {owner}'s speaker");
    lab.kubectl(&["uncordon", &owner])?;
    wait_for("the Deployment whole again", ROLL, || async {
        let ready =
            lab.kubectl(&["get", "deploy", "-n", NS, "ferrolb-controller", "-o", "jsonpath={.status.readyReplicas}"])?;
        Ok((ready == "2").then_some(()))
    })
    .await
}

/// `helm uninstall`: every ferrolb pod goes, no node answers ARP or NDP for a former IP, no node keeps a
/// ferrolb nftables table or policy rule; the CRDs stay (Helm never deletes them).
async fn uninstall_leaves_nothing_but_the_crds(lab: &Lab) -> anyhow::Result<()> {
    let v6 = lab.kubectl(&["get", "svc", "dual", "-o", "jsonpath={.status.loadBalancer.ingress[1].ip}"])?;
    assert!(!lab.arp_answers(DEMO_IP)?.is_empty(), "nobody answered before the uninstall");
    let finalizers = lab.kubectl(&["get", "svc", "dual", "-o", "jsonpath={.metadata.finalizers}"])?;
    assert!(finalizers.contains("service.kubernetes.io/load-balancer-cleanup"), "{finalizers}");
    lab.helm(&["uninstall", "ferrolb", "-n", NS, "--wait", "--timeout", "120s"])?;
    wait_for("every ferrolb pod gone", ROLL, || async {
        Ok(lab.kubectl(&["get", "pods", "-n", NS, "-o", "name"])?.trim().is_empty().then_some(()))
    })
    .await?;
    assert!(lab.arp_answers(DEMO_IP)?.is_empty(), "a node still answers ARP for {DEMO_IP}");
    let ndp = lab
        .exec(
            "client",
            &["sh", "-c", &format!("ip -6 neigh flush all; ping -6 -c 1 -W 1 {v6} >/dev/null; ip -6 neigh show {v6}")],
        )
        .unwrap_or_default();
    assert!(!ndp.contains("lladdr"), "a node still answers neighbour solicitations for {v6}: {ndp}");
    for node in ["node-1", "node-2", "node-3"] {
        let tables = lab.exec(node, &["nft", "list", "tables"])?;
        assert!(!tables.contains("ferrolb"), "{node} kept ferrolb's nftables table: {tables}");
        for family in ["-4", "-6"] {
            let rules = lab.exec(node, &["ip", family, "rule", "show"])?;
            assert!(!rules.contains("4210") && !rules.contains("4211"), "{node} kept ferrolb's policy rules:\n{rules}");
        }
    }
    let crds = lab.kubectl(&["get", "crds", "-o", "name"])?;
    for crd in ["ipaddresspools.ferrolb.io", "l2advertisements.ferrolb.io", "l2announcements.ferrolb.io"] {
        assert!(crds.contains(crd), "helm uninstall removed {crd}");
    }
    // With no controller left, `ferrolb release-finalizers` lets go of ferrolb's finalizers: a Service that
    // held an address keeps it in status for a reinstall, and is deleted at once.
    let output = std::process::Command::new(ferrolb_e2e::ferrolb_binary()?)
        .args(["release-finalizers", "--kubeconfig"])
        .arg(lab.kubeconfig())
        .output()?;
    assert!(output.status.success(), "release-finalizers: {}", String::from_utf8_lossy(&output.stderr));
    let finalizers = lab.kubectl(&["get", "svc,ipaddresspools", "-A", "-o", "jsonpath={..finalizers}"])?;
    assert!(!finalizers.contains("load-balancer-cleanup") && !finalizers.contains("pool-protection"), "{finalizers}");
    assert_eq!(lab.kubectl(&["get", "svc", "dual", "-o", "jsonpath={.status.loadBalancer.ingress[1].ip}"])?, v6);
    lab.kubectl(&["delete", "svc", "dual", "--timeout", "30s"])?;
    Ok(())
}
