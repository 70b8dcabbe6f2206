//! The Helm chart (`charts/ferrolb`): lint and render with default and all-option values, every option
//! reaching the output, a values typo failing with its name, the real API server accepting every object,
//! RBAC that is enough for the real controller and no more, and an upgrade keeping the membership key and IPs;
//! `helm/bgp_password.rs` runs the real speaker under its ServiceAccount with a BGPPeer's passwordSecret.

#[path = "helm/bgp_password.rs"]
mod bgp_password;
#[path = "helm/cluster.rs"]
mod cluster;
#[path = "helm/render.rs"]
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, ensure};
use cluster::*;
use ferrolb_e2e::control_plane::Components;
use ferrolb_e2e::{ControlPlane, repo_root, wait_for};
use render::*;
use serde_yaml::Value;

#[test]
fn chart_crds_are_copies_of_the_generated_crds() -> anyhow::Result<()> {
    let names = |dir: &Path| -> anyhow::Result<BTreeSet<String>> {
        std::fs::read_dir(dir)?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<anyhow::Result<_>>()
    };
    let (top, copy) = (repo_root().join("crds"), chart().join("crds"));
    assert_eq!(names(&top)?, names(&copy)?, "charts/ferrolb/crds must hold the same files as crds/");
    for name in names(&top)? {
        let path = copy.join(&name);
        assert!(!path.symlink_metadata()?.is_symlink(), "{name} is a symlink; helm packages need files");
        assert_eq!(std::fs::read(top.join(&name))?, std::fs::read(&path)?, "{name} differs; copy crds/ again");
    }
    Ok(())
}

#[test]
fn default_values_render_a_hardened_install() -> anyhow::Result<()> {
    let lint = helm_ok(&scratch_home(), &["lint", "--strict", chart().to_str().expect("utf-8")])?;
    assert!(!lint.contains("[WARNING]") && !lint.contains("[ERROR]"), "helm lint:\n{lint}");
    let objects = render(&[])?;

    let controller = find(&objects, "Deployment", "ferrolb-controller")?;
    assert_eq!(at(controller, "spec.replicas").and_then(Value::as_u64), Some(2));
    let pod = at(controller, "spec.template.spec").context("pod spec")?;
    assert_eq!(at(pod, "securityContext.runAsNonRoot").and_then(Value::as_bool), Some(true));
    assert_eq!(str_at(pod, "securityContext.seccompProfile.type"), Some("RuntimeDefault"));
    assert_eq!(str_at(pod, "serviceAccountName"), Some("ferrolb-controller"));
    let anti = at(pod, "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.podAffinityTerm")
        .context("controller replicas are not spread over nodes")?;
    assert_eq!(str_at(anti, "topologyKey"), Some("kubernetes.io/hostname"));
    let c = container(controller)?;
    assert_hardened(c)?;
    assert!(at(c, "securityContext.capabilities.add").is_none(), "the controller needs no capability");
    let args = strings_at(c, "args");
    assert_eq!(flag_value(&args, "--metrics-address"), Some("0.0.0.0:7472"));
    assert_eq!(flag_value(&args, "--lease-name"), Some("ferrolb-controller"));
    assert_probes(c, 7472)?;
    let env_fields: BTreeMap<&str, &str> = at(c, "env")
        .and_then(Value::as_sequence)
        .context("controller env")?
        .iter()
        .filter_map(|e| Some((str_at(e, "name")?, str_at(e, "valueFrom.fieldRef.fieldPath")?)))
        .collect();
    assert_eq!(
        env_fields.get("POD_NAMESPACE"),
        Some(&"metadata.namespace"),
        "the Lease must live in the release namespace"
    );
    assert_eq!(env_fields.get("POD_NAME"), Some(&"metadata.name"), "each replica needs its own Lease identity");

    let pdb = find(&objects, "PodDisruptionBudget", "ferrolb-controller")?;
    assert_eq!(at(pdb, "spec.selector.matchLabels"), at(controller, "spec.selector.matchLabels"));
    assert_eq!(at(pdb, "spec.maxUnavailable").and_then(Value::as_u64), Some(1));

    let speaker = find(&objects, "DaemonSet", "ferrolb-speaker")?;
    let pod = at(speaker, "spec.template.spec").context("pod spec")?;
    assert_eq!(at(pod, "hostNetwork").and_then(Value::as_bool), Some(true));
    assert_eq!(str_at(pod, "dnsPolicy"), Some("ClusterFirstWithHostNet"));
    assert_eq!(str_at(pod, "securityContext.seccompProfile.type"), Some("RuntimeDefault"));
    assert_eq!(at(pod, "terminationGracePeriodSeconds").and_then(Value::as_u64), Some(30));
    let tolerations = at(pod, "tolerations").and_then(Value::as_sequence).context("speaker tolerations")?;
    assert!(
        tolerations.iter().any(|t| str_at(t, "operator") == Some("Exists") && at(t, "key").is_none()),
        "the speaker must tolerate every taint (control-plane nodes included): {tolerations:?}"
    );
    let c = container(speaker)?;
    assert_hardened(c)?;
    let mut added = strings_at(c, "securityContext.capabilities.add");
    added.sort();
    assert_eq!(added, ["NET_ADMIN", "NET_RAW"], "the speaker adds exactly NET_RAW and NET_ADMIN");
    // Forward mode's relay binds the Services' own ports, privileged ones included.
    let forward = render(&["--set", "mode=forward"])?;
    let mut added =
        strings_at(container(find(&forward, "DaemonSet", "ferrolb-speaker")?)?, "securityContext.capabilities.add");
    added.sort();
    assert_eq!(added, ["NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW"], "forward mode's speaker capabilities");
    assert_probes(c, 7473)?;
    let node_name = at(c, "env")
        .and_then(Value::as_sequence)
        .and_then(|env| env.iter().find(|e| str_at(e, "name") == Some("NODE_NAME")))
        .context("speaker without NODE_NAME")?;
    assert_eq!(str_at(node_name, "valueFrom.fieldRef.fieldPath"), Some("spec.nodeName"));
    let args = strings_at(c, "args");
    assert_eq!(flag_value(&args, "--membership-port"), Some("7947"));
    // The key files the speaker reads are the Secret's keys: the whole Secret is mounted (a directory mount
    // is refreshed in place when a rotation changes the Secret; items would fail on the absent previousKey).
    let key_file = flag_value(&args, "--membership-key-file").context("no --membership-key-file")?;
    let previous_file = flag_value(&args, "--membership-previous-key-file").context("no previous key file")?;
    let mount = str_at(c, "volumeMounts.0.mountPath").context("speaker without a mount")?;
    assert!(at(c, "volumeMounts.0.subPath").is_none(), "a subPath mount is never refreshed");
    let volume = at(pod, "volumes.0").context("speaker without a volume")?;
    assert!(at(volume, "secret.items").is_none(), "the whole Secret is mounted");
    assert_eq!(key_file, format!("{mount}/key"));
    assert_eq!(previous_file, format!("{mount}/previousKey"));
    let secret = find(&objects, "Secret", str_at(volume, "secret.secretName").unwrap_or("?"))?;
    let encoded = str_at(secret, "data.key").context("the Secret lacks the key")?;
    assert!(encoded.len() >= 24, "a membership key of at least 16 bytes, got {encoded:?} (base64)");
    assert!(at(secret, "data.previousKey").is_none(), "a fresh install has no previous key");
    let generation = at(secret, "metadata.annotations").and_then(|a| a.get("ferrolb.io/key-generation"));
    assert_eq!(generation.and_then(Value::as_str), Some("1"), "the Secret records its key generation");

    let optional = ["ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap", "IPAddressPool", "L2Advertisement"];
    for kind in optional {
        assert!(all_of(&objects, kind).is_empty(), "{kind} must be off by default");
    }

    // No PDB when asked, or when one replica could never be disrupted without an outage anyway.
    for set in ["controller.podDisruptionBudget.enabled=false", "controller.replicas=1"] {
        assert!(all_of(&render(&["--set", set])?, "PodDisruptionBudget").is_empty(), "{set} still renders a PDB");
    }
    // RBAC and ServiceAccounts can be left to the operator.
    let bare = render(&[
        "--set",
        "rbac.create=false,controller.serviceAccount.create=false,controller.serviceAccount.name=mine",
    ])?;
    assert!(all_of(&bare, "ClusterRole").is_empty() && all_of(&bare, "Role").is_empty());
    assert!(find(&bare, "ServiceAccount", "mine").is_err());
    let pod_account = str_at(find(&bare, "Deployment", "ferrolb-controller")?, "spec.template.spec.serviceAccountName");
    assert_eq!(pod_account, Some("mine"));
    Ok(())
}

fn assert_hardened(c: &Value) -> anyhow::Result<()> {
    let name = str_at(c, "name").unwrap_or("?");
    ensure!(
        at(c, "securityContext.readOnlyRootFilesystem").and_then(Value::as_bool) == Some(true),
        "{name}: writable root"
    );
    ensure!(
        at(c, "securityContext.allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false),
        "{name}: privilege escalation allowed"
    );
    ensure!(strings_at(c, "securityContext.capabilities.drop") == ["ALL"], "{name}: capabilities not dropped");
    ensure!(at(c, "securityContext.privileged").is_none(), "{name}: privileged");
    Ok(())
}

/// Liveness and readiness on the port the binary serves /healthz and /readyz on.
fn assert_probes(c: &Value, port: u64) -> anyhow::Result<()> {
    let ports = at(c, "ports").and_then(Value::as_sequence).context("no ports")?;
    let metrics = ports.iter().find(|p| str_at(p, "name") == Some("metrics")).context("no metrics port")?;
    ensure!(at(metrics, "containerPort").and_then(Value::as_u64) == Some(port), "metrics port is not {port}");
    ensure!(str_at(c, "livenessProbe.httpGet.path") == Some("/healthz"), "liveness probe path");
    ensure!(str_at(c, "readinessProbe.httpGet.path") == Some("/readyz"), "readiness probe path");
    ensure!(str_at(c, "livenessProbe.httpGet.port") == Some("metrics"), "liveness probe port");
    ensure!(str_at(c, "readinessProbe.httpGet.port") == Some("metrics"), "readiness probe port");
    Ok(())
}

/// Options `ci/all-options-values.yaml` leaves at their default, and why.
const LEFT_AT_DEFAULT: &[(&str, &str)] = &[
    ("controller.podDisruptionBudget.enabled", "false is covered by default_values_render_a_hardened_install"),
    ("rbac.create", "false is covered by default_values_render_a_hardened_install"),
    ("controller.serviceAccount.create", "false is covered by default_values_render_a_hardened_install"),
    ("speaker.serviceAccount.create", "same template as the controller's"),
    ("controller.affinity", "set, it replaces the podAntiAffinity preset this file sets to hard"),
    ("speaker.updateStrategy.type", "RollingUpdate is the only type with options to exercise"),
    ("prometheus.podMonitor.enabled", "exclusive with serviceMonitor; exercised in a second render"),
    ("grafana.dashboard.labels.grafana_dashboard", "the sidecar's label; the file adds nothing to it"),
    (
        "speaker.membership.keyGeneration",
        "ignored with existingSecret; an_upgrade_keeps_the_membership_key_... rotates",
    ),
];

/// `helm upgrade --reuse-values` from a release made before the key rotation values existed leaves them unset
/// (helm then reuses the old values, not the chart's defaults): the chart must behave as if they were at
/// their defaults, or the upgrade would fail ("keys only move forward" from generation 0) or point the
/// speaker at a directory as its previous key file.
#[test]
fn values_of_a_release_older_than_key_rotation_render_as_the_defaults() -> anyhow::Result<()> {
    let generated = render(&["--set", "speaker.membership.keyGeneration=null"])?;
    let secret = find(&generated, "Secret", "ferrolb-membership")?;
    let generation = at(secret, "metadata.annotations").and_then(|a| a.get("ferrolb.io/key-generation"));
    assert_eq!(generation.and_then(Value::as_str), Some("1"));
    let existing =
        render(&["--set", "speaker.membership.existingSecret=mine,speaker.membership.existingSecretPreviousKey=null"])?;
    let args = strings_at(container(find(&existing, "DaemonSet", "ferrolb-speaker")?)?, "args");
    assert_eq!(
        flag_value(&args, "--membership-previous-key-file"),
        Some("/etc/ferrolb/membership/previousKey"),
        "{args:?}"
    );
    Ok(())
}

#[test]
fn every_option_in_all_options_values_changes_the_render() -> anyhow::Result<()> {
    let file = all_options();
    let file_arg = file.to_str().expect("utf-8 path");
    let lint = helm_ok(&scratch_home(), &["lint", "--strict", chart().to_str().expect("utf-8"), "-f", file_arg])?;
    assert!(!lint.contains("[WARNING]") && !lint.contains("[ERROR]"), "helm lint:\n{lint}");
    let defaults: Value = serde_yaml::from_str(&std::fs::read_to_string(chart().join("values.yaml"))?)?;
    let options: Value = serde_yaml::from_str(&std::fs::read_to_string(&file)?)?;
    let option_leaves = leaves(&options, &defaults, "");
    // Every option the chart has is in the file.
    let set: BTreeSet<&str> = option_leaves.iter().map(|(p, _)| p.as_str()).collect();
    for (path, _) in leaves(&defaults, &defaults, "") {
        assert!(set.contains(path.as_str()), "ci/all-options-values.yaml does not set {path}");
    }
    let pod_monitor = ["--set", "prometheus.serviceMonitor.enabled=false,prometheus.podMonitor.enabled=true"];
    let base = template_text(&["-f", file_arg])?;
    let base_pod_monitor = template_text(&["-f", file_arg, pod_monitor[0], pod_monitor[1]])?;
    let mut unchanged = Vec::new();
    for (path, value) in &option_leaves {
        let default = at(&defaults, path).cloned().unwrap_or(Value::Null);
        if *value == default {
            assert!(LEFT_AT_DEFAULT.iter().any(|(p, _)| p == path), "{path} is at its default; exercise it");
            continue;
        }
        // Leave this one option out (back to its default): the output must change.
        let mut without = options.clone();
        remove_leaf(&mut without, path);
        let without_file = scratch_home().join("without.yaml");
        std::fs::write(&without_file, serde_yaml::to_string(&without)?)?;
        let without_arg = without_file.to_str().expect("utf-8 path");
        let (args, reference) = if path.starts_with("prometheus.podMonitor.") {
            (vec!["-f", without_arg, pod_monitor[0], pod_monitor[1]], &base_pod_monitor)
        } else {
            (vec!["-f", without_arg], &base)
        };
        if template_text(&args)? == *reference {
            unchanged.push(path.clone());
        }
    }
    assert!(unchanged.is_empty(), "these values change nothing in the output: {unchanged:?}");

    // What the file turns on is there, and the API kinds are the expected ones.
    let objects = parse_documents(&base)?;
    for (kind, n) in [("ServiceMonitor", 2), ("PrometheusRule", 1), ("ConfigMap", 1), ("IPAddressPool", 2)] {
        assert_eq!(all_of(&objects, kind).len(), n, "{kind}s rendered");
    }
    assert!(all_of(&objects, "Secret").is_empty(), "existingSecret is set; the chart must not make its own");
    let dashboard = find(&objects, "ConfigMap", "edge-lb-dashboard")?;
    assert_eq!(str_at(dashboard, "metadata.labels.grafana_dashboard"), Some("1"));
    let json: serde_json::Value = serde_json::from_str(
        at(dashboard, "data").and_then(|d| d.get("ferrolb.json")).and_then(Value::as_str).context("dashboard JSON")?,
    )?;
    let titles: Vec<&str> =
        json["panels"].as_array().into_iter().flatten().filter_map(|p| p["title"].as_str()).collect();
    for wanted in ["Pool usage", "External IPs announced per node", "Failovers (IPs taken over)"] {
        assert!(titles.contains(&wanted), "dashboard panels: {titles:?}");
    }
    let rule = find(&objects, "PrometheusRule", "edge-lb")?;
    let alerts: BTreeMap<&str, &str> = at(rule, "spec.groups")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .flat_map(|g| at(g, "rules").and_then(Value::as_sequence).into_iter().flatten())
        .filter_map(|r| Some((str_at(r, "alert")?, str_at(r, "expr")?)))
        .collect();
    assert!(alerts["FerrolbPoolUsageWarning"].ends_with(">= 70 < 85"), "{alerts:?}");
    assert!(alerts["FerrolbPoolUsageHigh"].ends_with(">= 85 < 99"), "{alerts:?}");
    assert!(alerts["FerrolbPoolFull"].ends_with(">= 99"), "{alerts:?}");
    assert!(alerts["FerrolbMembershipSplit"].contains("ferrolb_speaker_membership_size"), "{alerts:?}");
    assert!(alerts["FerrolbAllocationFailures"].contains("ferrolb_controller_allocation_failures_total"));
    let with_pod_monitor = parse_documents(&base_pod_monitor)?;
    assert_eq!(all_of(&with_pod_monitor, "PodMonitor").len(), 2);
    assert!(all_of(&with_pod_monitor, "ServiceMonitor").is_empty());
    Ok(())
}

#[test]
fn rendered_flags_are_flags_of_the_binary() -> anyhow::Result<()> {
    let all = all_options();
    for values in [vec![], vec!["-f", all.to_str().expect("utf-8 path")]] {
        let objects = render(&values)?;
        for workload in all_of(&objects, "Deployment").into_iter().chain(all_of(&objects, "DaemonSet")) {
            let args = strings_at(container(workload)?, "args");
            let subcommand = args.first().context("no subcommand")?;
            let known = documented_flags(subcommand)?;
            let flags = flag_names(&args);
            let mut seen = BTreeSet::new();
            for flag in &flags {
                assert!(
                    known.contains(flag),
                    "{}: ferrolb {subcommand} has no {flag} (has {known:?})",
                    describe(workload)
                );
                // clap refuses a single-valued flag given twice, so the pod would crash-loop.
                assert!(seen.insert(flag), "{}: {flag} passed twice: {args:?}", describe(workload));
            }
        }
    }
    Ok(())
}

#[test]
fn a_values_typo_fails_with_a_message_naming_the_field() -> anyhow::Result<()> {
    let typo_file = scratch_home().join("typo-values.yaml");
    std::fs::write(&typo_file, "speaker:\n  membership:\n    prot: 7000\n")?;
    let cases: [(&[&str], &str); 6] = [
        (&["--set", "controller.replica=3"], "'replica' not allowed"),
        (&["--set", "logLevel=debug"], "'logLevel' not allowed"),
        (&["-f", typo_file.to_str().expect("utf-8 path")], "'prot' not allowed"),
        (&["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (&["--set", "mode=proxy"], "/mode"),
        (&["--set", "prometheus.serviceMonitor.enabled=true,prometheus.podMonitor.enabled=true"], "pick one"),
    ];
    let chart = chart();
    for (args, wanted) in cases {
        let mut full = vec!["template", "x", chart.to_str().expect("utf-8 path")];
        full.extend_from_slice(args);
        let output = helm(&scratch_home(), &full)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "helm {full:?} accepted a mistake");
        assert!(stderr.contains(wanted), "helm {full:?}: wanted {wanted:?} in:\n{stderr}");
    }
    Ok(())
}

#[test]
fn rbac_rules_are_exactly_the_calls_the_code_makes() -> anyhow::Result<()> {
    let objects = render(&[])?;
    for role in all_of(&objects, "ClusterRole").into_iter().chain(all_of(&objects, "Role")) {
        for rule in at(role, "rules").and_then(Value::as_sequence).into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !strings_at(rule, field).iter().any(|s| s.contains('*')),
                    "{}: wildcard {field}",
                    describe(role)
                );
            }
        }
    }
    // Derived from the Api<...> calls in crates/ferrolb-controller (run.rs, apply.rs, lease.rs).
    let controller = expect(&[
        ("", "services", "list,watch,patch"),
        ("", "services/status", "patch"),
        ("", "namespaces", "list,watch"),
        ("ferrolb.io", "ipaddresspools", "list,watch,patch"),
        ("ferrolb.io", "ipaddresspools/status", "patch"),
        ("ferrolb.io", "addressconflicts", "list,watch"),
        ("events.k8s.io", "events", "create,patch"),
    ]);
    assert_eq!(grants(find(&objects, "ClusterRole", "ferrolb-controller")?), controller);
    let lease = expect(&[("coordination.k8s.io", "leases", "create,get/ferrolb-controller,update/ferrolb-controller")]);
    assert_eq!(grants(find(&objects, "Role", "ferrolb-controller")?), lease);
    // Derived from crates/ferrolb-speaker/src/observe.rs (eleven reflectors) and writer.rs (L2Announcement
    // and AddressConflict apply/delete, BGPSession apply/status/delete in the release namespace, Events).
    let speaker = expect(&[
        ("", "services", "list,watch"),
        ("", "nodes", "list,watch"),
        ("discovery.k8s.io", "endpointslices", "list,watch"),
        ("ferrolb.io", "ipaddresspools", "list,watch"),
        ("ferrolb.io", "l2advertisements", "list,watch"),
        ("ferrolb.io", "bgppeers", "list,watch"),
        ("ferrolb.io", "bgpadvertisements", "list,watch"),
        ("ferrolb.io", "bfdprofiles", "list,watch"),
        ("ferrolb.io", "l2announcements", "list,watch,create,patch,delete"),
        ("ferrolb.io", "addressconflicts", "list,watch,create,patch,delete"),
        ("events.k8s.io", "events", "create"),
    ]);
    assert_eq!(grants(find(&objects, "ClusterRole", "ferrolb-speaker")?), speaker);
    let sessions = expect(&[
        ("ferrolb.io", "bgpsessions", "list,watch,create,patch,delete"),
        ("ferrolb.io", "bgpsessions/status", "patch"),
    ]);
    assert_eq!(
        grants(find(&objects, "Role", "ferrolb-speaker")?),
        sessions,
        "BGPSessions only, in the release namespace"
    );
    // With BGP password Secrets listed: list and watch of exactly those, by name (observe.rs watches each with
    // a metadata.name field selector), in the release namespace and nowhere else.
    let objects = render(&["--set", "speaker.bgpPasswordSecrets={tor-a-md5,tor-b-md5}"])?;
    let mut with_secrets = sessions.clone();
    with_secrets.extend(expect(&[("", "secrets", "list/tor-a-md5,watch/tor-a-md5,list/tor-b-md5,watch/tor-b-md5")]));
    assert_eq!(grants(find(&objects, "Role", "ferrolb-speaker")?), with_secrets);
    assert_eq!(grants(find(&objects, "ClusterRole", "ferrolb-speaker")?), speaker, "no Secret cluster-wide");
    let args = strings_at(container(find(&objects, "DaemonSet", "ferrolb-speaker")?)?, "args");
    assert!(args.contains(&"--bgp-password-secrets=tor-a-md5,tor-b-md5".to_owned()), "{args:?}");
    Ok(())
}

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_api_server() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::ApiServer).await?;
    plane.apply(&monitoring_crds())?;
    plane.kubectl(&["wait", "--for", "condition=Established", "crd", "--all", "--timeout", "30s"])?;
    plane.kubectl(&["create", "namespace", "monitoring"])?;
    let all = all_options();
    let all = all.to_str().expect("utf-8 path");
    let pod_monitor = "prometheus.serviceMonitor.enabled=false,prometheus.podMonitor.enabled=true";
    for values in [vec![], vec!["-f", all], vec!["-f", all, "--set", pod_monitor]] {
        let text = template_text(&values)?;
        let n_objects = parse_documents(&text)?.len();
        let output = plane.kubectl_raw(&["apply", "--dry-run=server", "--validate=strict", "-f", "-"], Some(&text))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "values {values:?} rejected:\n{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(stdout.matches("(server dry run)").count(), n_objects, "values {values:?}:\n{stdout}");
    }
    // Acceptance means something: a misspelled field in a monitoring object is refused too.
    let bad = template_text(&["-f", all])?.replace("relabelings:", "relabeling:");
    let output = plane.kubectl_raw(&["apply", "--dry-run=server", "--validate=strict", "-f", "-"], Some(&bad))?;
    assert!(!output.status.success(), "a misspelled ServiceMonitor field was accepted");
    assert!(String::from_utf8_lossy(&output.stderr).contains("relabeling"));
    Ok(())
}

#[tokio::test]
async fn service_accounts_may_do_what_the_code_does_and_no_more() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::ApiServer).await?;
    install(&plane, "install", &["--set", "speaker.bgpPasswordSecrets={tor-md5}"])?;
    let table: &[(&str, &str, bool)] = &[
        ("ferrolb-speaker", "list services", true),
        ("ferrolb-speaker", "watch nodes", true),
        ("ferrolb-speaker", "list endpointslices.discovery.k8s.io", true),
        ("ferrolb-speaker", "watch l2advertisements.ferrolb.io", true),
        ("ferrolb-speaker", "create l2announcements.ferrolb.io -n default", true),
        ("ferrolb-speaker", "delete l2announcements.ferrolb.io -n default", true),
        ("ferrolb-speaker", "create events.events.k8s.io -n default", true),
        ("ferrolb-speaker", "watch bgppeers.ferrolb.io", true),
        ("ferrolb-speaker", "list bfdprofiles.ferrolb.io", true),
        ("ferrolb-speaker", "patch bgpsessions.ferrolb.io -n ferrolb-system", true),
        ("ferrolb-speaker", "patch bgpsessions.ferrolb.io/status -n ferrolb-system", true),
        ("ferrolb-speaker", "patch bgpsessions.ferrolb.io -n default", false),
        ("ferrolb-speaker", "patch bgppeers.ferrolb.io", false),
        ("ferrolb-speaker", "get secrets -n ferrolb-system", false),
        ("ferrolb-speaker", "get secrets/ferrolb-membership -n ferrolb-system", false),
        ("ferrolb-speaker", "list secrets -A", false),
        ("ferrolb-speaker", "list secrets -n ferrolb-system", false),
        ("ferrolb-speaker", "watch secrets/tor-md5 -n ferrolb-system", true),
        ("ferrolb-speaker", "list secrets/tor-md5 -n ferrolb-system", true),
        ("ferrolb-speaker", "get secrets/tor-md5 -n ferrolb-system", false),
        ("ferrolb-speaker", "watch secrets/tor-md5 -n default", false),
        ("ferrolb-speaker", "watch secrets/other -n ferrolb-system", false),
        ("ferrolb-speaker", "patch services/status -n default", false),
        ("ferrolb-speaker", "patch services -n default", false),
        ("ferrolb-speaker", "patch ipaddresspools.ferrolb.io", false),
        ("ferrolb-speaker", "patch nodes", false),
        ("ferrolb-controller", "patch services/status -n default", true),
        ("ferrolb-controller", "patch services -n default", true),
        ("ferrolb-controller", "watch namespaces", true),
        ("ferrolb-controller", "patch ipaddresspools.ferrolb.io/status", true),
        ("ferrolb-controller", "update leases.coordination.k8s.io/ferrolb-controller -n ferrolb-system", true),
        ("ferrolb-controller", "create events.events.k8s.io -n default", true),
        ("ferrolb-controller", "get secrets -n ferrolb-system", false),
        ("ferrolb-controller", "list secrets -A", false),
        ("ferrolb-controller", "update leases.coordination.k8s.io/kube-scheduler -n ferrolb-system", false),
        ("ferrolb-controller", "create leases.coordination.k8s.io -n kube-system", false),
        ("ferrolb-controller", "update services -n default", false),
        ("ferrolb-controller", "create l2announcements.ferrolb.io -n default", false),
    ];
    let mut wrong = Vec::new();
    for (account, request, allowed) in table {
        if can(&plane, account, request)? != *allowed {
            wrong.push(format!("{account} {request}: expected {}", if *allowed { "allowed" } else { "denied" }));
        }
    }
    assert!(wrong.is_empty(), "RBAC differs:\n{}", wrong.join("\n"));

    // The same through a real token: the speaker writes an L2Announcement the way it does (server-side
    // apply, which needs create as well as patch) and is refused the membership Secret it only mounts.
    let speaker = service_account_kubeconfig(&plane, "ferrolb-speaker")?;
    let speaker = speaker.to_str().expect("utf-8 path");
    let record = "apiVersion: ferrolb.io/v1alpha1\nkind: L2Announcement\nmetadata: {name: probe, namespace: default}\n\
                  spec: {ip: 198.51.100.7, node: node-1, service: web, since: '2026-01-01T00:00:00Z'}\n";
    let apply = ["apply", "--server-side", "--field-manager", "ferrolb-speaker", "-f", "-"];
    let output = ferrolb_e2e::kubectl::raw(Path::new(speaker), &apply, Some(record))?;
    assert!(
        output.status.success(),
        "the speaker's token could not apply an L2Announcement: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    ferrolb_e2e::kubectl::checked(Path::new(speaker), &["delete", "l2announcement", "probe", "-n", "default"])?;
    let denied =
        ferrolb_e2e::kubectl::raw(Path::new(speaker), &["get", "secret", "ferrolb-membership", "-n", NAMESPACE], None)?;
    assert!(!denied.status.success() && String::from_utf8_lossy(&denied.stderr).contains("forbidden"));
    // A listed BGP password Secret can be listed by name, as the speaker's watch does, and nothing more.
    let basic_auth = ["--type", "kubernetes.io/basic-auth", "--from-literal=password=k"];
    plane.kubectl(&[&["create", "secret", "generic", "tor-md5", "-n", NAMESPACE][..], &basic_auth].concat())?;
    let by_name = ["get", "secrets", "-n", NAMESPACE, "--field-selector", "metadata.name=tor-md5", "-o", "name"];
    let listed = ferrolb_e2e::kubectl::checked(Path::new(speaker), &by_name)?;
    assert_eq!(listed.trim(), "secret/tor-md5");
    let all = ferrolb_e2e::kubectl::raw(Path::new(speaker), &["get", "secrets", "-n", NAMESPACE], None)?;
    assert!(!all.status.success() && String::from_utf8_lossy(&all.stderr).contains("forbidden"));
    Ok(())
}

#[tokio::test]
async fn the_controller_works_under_the_charts_service_account() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::ApiServer).await?;
    let port = format!("controller.metricsPort={}", free_port()?);
    install(&plane, "install", &["-f", &pool_values(&plane)?, "--set", &port])?;
    let controller = Reaped(start_installed_controller(&plane, "ferrolb-controller-0")?);
    plane.apply(&service_yaml("web"))?;
    let ip = wait_ip(&plane, "web").await?;
    assert!(ip.starts_with("198.51.100.19") || ip.starts_with("198.51.100.20"), "{ip} is not from the pool");
    // Every kind of write the controller makes went through: Lease, Event, pool status and finalizer.
    let holder = plane.kubectl(&[
        "get",
        "lease",
        "ferrolb-controller",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    assert_eq!(holder, "ferrolb-controller-0");
    wait_for("an IPAllocated Event and pool status", SOON, || async {
        let reasons =
            plane.kubectl(&["get", "events.events.k8s.io", "-n", "default", "-o", "jsonpath={.items[*].reason}"])?;
        let assigned = plane.kubectl(&["get", "ipaddresspool", "demo", "-o", "jsonpath={.status.assigned}"])?;
        let finalizers = plane.kubectl(&["get", "ipaddresspool", "demo", "-o", "jsonpath={.metadata.finalizers}"])?;
        Ok((reasons.contains("IPAllocated") && assigned == "1" && finalizers.contains("ferrolb.io/")).then_some(()))
    })
    .await?;
    let log = std::fs::read_to_string(plane.dir().join("logs/ferrolb-controller-0.log"))?;
    // kube's refusals read "... is forbidden ..." with `reason: "Forbidden"` and `code: 403` (a bare "403" could be
    // part of a port number in the log).
    let refused = log.contains("forbidden") || log.contains("Forbidden") || log.contains("code: 403");
    assert!(!refused, "the controller was refused something:\n{log}");
    drop(controller);
    Ok(())
}

#[tokio::test]
async fn an_upgrade_keeps_the_membership_key_and_every_ip() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::ApiServer).await?;
    let port = format!("controller.metricsPort={}", free_port()?);
    let pools = pool_values(&plane)?;
    install(&plane, "install", &["-f", &pools, "--set", &port])?;
    let secret = |p: &ControlPlane| {
        p.kubectl(&["get", "secret", "ferrolb-membership", "-n", NAMESPACE, "-o", "jsonpath={.data.key}"])
    };
    let key = secret(&plane)?;
    assert!(key.len() >= 24, "membership key {key:?}");
    let mut first = Reaped(start_installed_controller(&plane, "ferrolb-controller-0")?);
    plane.apply(&service_yaml("web"))?;
    let ip = wait_ip(&plane, "web").await?;

    install(
        &plane,
        "upgrade",
        &["-f", &pools, "--set", &port, "--set", "speaker.membership.port=7950,log.level=debug"],
    )?;
    assert_eq!(secret(&plane)?, key, "the upgrade replaced the membership key");
    let args = plane.kubectl(&[
        "get",
        "daemonset",
        "ferrolb-speaker",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
    ])?;
    assert!(
        args.contains("--membership-port=7950") && args.contains("--log-level=debug"),
        "upgrade not applied: {args}"
    );
    // A typo fails a real upgrade with its name, and changes nothing.
    let typo = install(&plane, "upgrade", &["--reuse-values", "--set", "controller.replica=3"]);
    let message = format!("{:#}", typo.expect_err("helm upgrade accepted controller.replica"));
    assert!(message.contains("'replica' not allowed"), "{message}");
    // A second upgrade that reuses the values keeps it too (lookup sees the Secret the first upgrade kept).
    install(&plane, "upgrade", &["--reuse-values"])?;
    assert_eq!(secret(&plane)?, key);

    // A rotation: a new key, the old one kept as previousKey; later upgrades keep both; the next rotation
    // drops the oldest; going back a generation is refused.
    let previous = |p: &ControlPlane| {
        p.kubectl(&["get", "secret", "ferrolb-membership", "-n", NAMESPACE, "-o", "jsonpath={.data.previousKey}"])
    };
    install(&plane, "upgrade", &["--reuse-values", "--set", "speaker.membership.keyGeneration=2"])?;
    let rotated = secret(&plane)?;
    assert!(rotated != key && rotated.len() >= 24, "no new key: {rotated:?}");
    assert_eq!(previous(&plane)?, key, "the old key is not kept");
    install(&plane, "upgrade", &["--reuse-values"])?;
    assert_eq!((secret(&plane)?, previous(&plane)?), (rotated.clone(), key.clone()), "an upgrade changed the keys");
    let back = install(&plane, "upgrade", &["--reuse-values", "--set", "speaker.membership.keyGeneration=1"]);
    let message = format!("{:#}", back.expect_err("helm went back a key generation"));
    assert!(message.contains("keys only move forward"), "{message}");
    install(&plane, "upgrade", &["--reuse-values", "--set", "speaker.membership.keyGeneration=3"])?;
    assert_eq!(previous(&plane)?, rotated, "the second rotation keeps the first one's key");
    assert!(![key.clone(), rotated.clone()].contains(&secret(&plane)?), "the second rotation made no new key");

    // The upgraded Deployment's controller replaces the old one (rolling update): the IP stays put and
    // the new leader still allocates.
    let status = Command::new("kill").arg("-TERM").arg(first.0.id().to_string()).status()?;
    ensure!(status.success(), "kill -TERM failed");
    first.0.wait()?;
    let _second = Reaped(start_installed_controller(&plane, "ferrolb-controller-1")?);
    plane.apply(&service_yaml("api"))?;
    wait_ip(&plane, "api").await?;
    assert_eq!(wait_ip(&plane, "web").await?, ip, "the upgrade moved an IP");
    let holder = plane.kubectl(&[
        "get",
        "lease",
        "ferrolb-controller",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    assert_eq!(holder, "ferrolb-controller-1");
    Ok(())
}
