//! Cluster helpers of the Helm chart suite: installing the chart into a `ControlPlane`, acting as its
//! ServiceAccounts, stand-in monitoring CRDs, and running the installed controller as a process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use ferrolb_e2e::{ControlPlane, ferrolb_binary, wait_for};
use serde_json::json;
use serde_yaml::Value;

use crate::render::{NAMESPACE, RELEASE, chart, helm_ok};

/// Generous: the controller allocates within a second on an idle machine; the machine is shared.
pub const SOON: Duration = Duration::from_secs(30);

/// Installs (or upgrades) the chart into `plane` with extra arguments; returns helm's output.
pub fn install(plane: &ControlPlane, verb: &str, extra: &[&str]) -> anyhow::Result<String> {
    let kubeconfig = plane.kubeconfig();
    let chart = chart();
    let mut args = vec![
        verb,
        RELEASE,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    helm_ok(&plane.dir().join("helm"), &args)
}

/// A kubeconfig for `plane` that authenticates with a real token of ServiceAccount `account` in the
/// release namespace (TokenRequest), so the API server applies exactly that account's RBAC.
pub fn service_account_kubeconfig(plane: &ControlPlane, account: &str) -> anyhow::Result<PathBuf> {
    let token = plane.kubectl(&["create", "token", account, "-n", NAMESPACE, "--duration", "1h"])?;
    let text = std::fs::read_to_string(plane.kubeconfig())?;
    let mut config: Value = serde_yaml::from_str(&text)?;
    let users = config.get_mut("users").and_then(Value::as_sequence_mut).context("kubeconfig without users")?;
    for user in users {
        let user = user.get_mut("user").and_then(Value::as_mapping_mut).context("kubeconfig user without a body")?;
        user.insert("token".into(), token.trim().into());
    }
    let path = plane.dir().join(format!("{account}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config)?)?;
    Ok(path)
}

/// Stand-ins for prometheus-operator's CRDs, as a JSON List: the fields of ServiceMonitor, PodMonitor and
/// PrometheusRule the chart uses, with their upstream names and types, and nothing else. The API server's
/// strict field validation then rejects a misspelled or misplaced field as the real CRDs would.
pub fn monitoring_crds() -> String {
    let string = || json!({"type": "string"});
    let strings = || json!({"type": "array", "items": {"type": "string"}});
    let string_map = || json!({"type": "object", "additionalProperties": {"type": "string"}});
    let duration = || {
        json!({"type": "string", "pattern":
            "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"})
    };
    let relabeling = json!({"type": "object", "properties": {
        "sourceLabels": strings(), "targetLabel": string(), "action": string(), "regex": string(),
        "replacement": string()}});
    let endpoint = json!({"type": "object", "properties": {
        "port": string(), "path": string(), "interval": duration(),
        "relabelings": {"type": "array", "items": relabeling}}});
    let selection = |endpoints: &str| {
        json!({"type": "object", "required": ["selector"], "properties": {
            "namespaceSelector": {"type": "object", "properties": {"any": {"type": "boolean"}, "matchNames": strings()}},
            "selector": {"type": "object", "properties": {"matchLabels": string_map()}},
            (endpoints): {"type": "array", "items": endpoint.clone()},
        }})
    };
    let rule_spec = json!({"type": "object", "properties": {"groups": {"type": "array", "items": {
        "type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1},
            "rules": {"type": "array", "items": {"type": "object", "required": ["expr"], "properties": {
                "alert": string(), "record": string(), "expr": {"x-kubernetes-int-or-string": true},
                "for": duration(), "labels": string_map(), "annotations": string_map()}}}}}}}});
    let crd = |kind: &str, plural: &str, spec: serde_json::Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
            "spec": {
                "group": "monitoring.coreos.com",
                "scope": "Namespaced",
                "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                          "singular": kind.to_lowercase()},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object", "properties": {"spec": spec}}}}],
            },
        })
    };
    json!({"apiVersion": "v1", "kind": "List", "items": [
        crd("ServiceMonitor", "servicemonitors", selection("endpoints")),
        crd("PodMonitor", "podmonitors", selection("podMetricsEndpoints")),
        crd("PrometheusRule", "prometheusrules", rule_spec),
    ]})
    .to_string()
}

/// `kubectl auth can-i` as a ServiceAccount of the release.
pub fn can(plane: &ControlPlane, account: &str, request: &str) -> anyhow::Result<bool> {
    let user = format!("system:serviceaccount:{NAMESPACE}:{account}");
    let mut args = vec!["auth", "can-i"];
    args.extend(request.split_whitespace());
    args.extend(["--as", &user]);
    let output = plane.kubectl_raw(&args, None)?;
    match String::from_utf8_lossy(&output.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!("kubectl auth can-i {request}: {other} {}", String::from_utf8_lossy(&output.stderr)),
    }
}

/// The controller Deployment's container args as installed, run as a process under the controller's
/// ServiceAccount token, with the env the Deployment's downward API would give pod `pod`.
pub fn start_installed_controller(plane: &ControlPlane, pod: &str) -> anyhow::Result<Child> {
    let json = plane.kubectl(&["get", "deployment", "ferrolb-controller", "-n", NAMESPACE, "-o", "json"])?;
    let deployment: serde_json::Value = serde_json::from_str(&json)?;
    let args: Vec<String> =
        serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone())?;
    // Loopback only: the pod would bind every address of its own network namespace.
    let args: Vec<String> = args.into_iter().map(|a| a.replace("=0.0.0.0:", "=127.0.0.1:")).collect();
    let kubeconfig = service_account_kubeconfig(plane, "ferrolb-controller")?;
    let log = std::fs::File::create(plane.dir().join("logs").join(format!("{pod}.log")))?;
    Command::new(ferrolb_binary()?)
        .args(&args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("POD_NAMESPACE", NAMESPACE)
        .env("POD_NAME", pod)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the installed controller")
}

/// Kills the child on drop.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback TCP port for the metrics server.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub const POOL: &str = "- name: demo\n  spec:\n    addresses: [198.51.100.192/28]\n";

pub fn service_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n"
    )
}

pub async fn wait_ip(plane: &ControlPlane, name: &str) -> anyhow::Result<String> {
    wait_for(&format!("an external IP on {name}"), SOON, || async {
        let ip = plane.kubectl(&[
            "get",
            "svc",
            name,
            "-n",
            "default",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])?;
        Ok((!ip.is_empty()).then_some(ip))
    })
    .await
}

pub fn pool_values(plane: &ControlPlane) -> anyhow::Result<String> {
    let path = plane.dir().join("pool-values.yaml");
    std::fs::write(&path, format!("pools:\n{POOL}l2Advertisements:\n- name: everywhere\n  spec: {{}}\n"))?;
    Ok(path.to_str().expect("utf-8 path").to_owned())
}
