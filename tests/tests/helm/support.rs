//! Helpers of the Helm chart suite: running the pinned helm (`hack/helm`), parsing what it renders, finding
//! objects and container flags in it, and running things under the chart's ServiceAccounts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};
use ferrolb_e2e::{ControlPlane, repo_root};
use serde_json::json;
use serde_yaml::Value;

/// The release name and namespace every cluster test installs.
pub const RELEASE: &str = "ferrolb";
pub const NAMESPACE: &str = "ferrolb-system";

/// The chart's directory.
pub fn chart() -> PathBuf {
    repo_root().join("charts/ferrolb")
}

/// The values file that sets every option.
pub fn all_options() -> PathBuf {
    chart().join("ci/all-options-values.yaml")
}

/// Runs `hack/helm` (which builds the pinned helm on first use) with its state under `home`.
pub fn helm(home: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(repo_root().join("hack/helm"))
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .context("running hack/helm")
}

/// Runs helm and returns stdout; fails with stderr on a non-zero exit.
pub fn helm_ok(home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = helm(home, args)?;
    if !output.status.success() {
        bail!("helm {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A scratch directory for helm's cache and config, for commands that touch no cluster.
pub fn scratch_home() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrolb-helm-home-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating a scratch directory in the temp dir");
    dir
}

/// `helm template` of the chart with extra arguments (`-f FILE`, `--set K=V`), as YAML text.
pub fn template_text(extra: &[&str]) -> anyhow::Result<String> {
    let chart = chart();
    let mut args = vec!["template", RELEASE, chart.to_str().expect("utf-8 path"), "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    helm_ok(&scratch_home(), &args)
}

/// `helm template`, parsed into one value per object.
pub fn render(extra: &[&str]) -> anyhow::Result<Vec<Value>> {
    parse_documents(&template_text(extra)?)
}

/// Splits multi-document YAML (documents separated by `---` lines, as helm prints them) into objects,
/// dropping empty documents.
pub fn parse_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    let mut document = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            let value: Value = serde_yaml::from_str(&document)
                .with_context(|| format!("rendered YAML does not parse:\n{document}"))?;
            if !value.is_null() {
                objects.push(value);
            }
            document.clear();
        } else {
            document.push_str(line);
            document.push('\n');
        }
    }
    Ok(objects)
}

/// The one object of `kind` named `name`; fails listing what exists otherwise.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    objects.iter().find(|o| str_at(o, "kind") == Some(kind) && str_at(o, "metadata.name") == Some(name)).with_context(
        || {
            let have: Vec<String> = objects.iter().map(describe).collect();
            format!("no {kind} {name} among: {}", have.join(", "))
        },
    )
}

/// Every object of `kind`.
pub fn all_of<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| str_at(o, "kind") == Some(kind)).collect()
}

/// `Kind/name` for messages.
pub fn describe(object: &Value) -> String {
    format!("{}/{}", str_at(object, "kind").unwrap_or("?"), str_at(object, "metadata.name").unwrap_or("?"))
}

/// The value at a dotted path of mapping keys and list indexes (`spec.template.spec.containers.0`).
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match key.parse::<usize>() {
        Ok(index) if v.is_sequence() => v.get(index),
        _ => v.get(key),
    })
}

/// The string at a dotted path.
pub fn str_at<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// The strings of a list at a dotted path (empty when absent).
pub fn strings_at(value: &Value, path: &str) -> Vec<String> {
    at(value, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The first container of a workload.
pub fn container(workload: &Value) -> anyhow::Result<&Value> {
    at(workload, "spec.template.spec.containers.0").with_context(|| format!("{} has no container", describe(workload)))
}

/// The flag names (`--x` of `--x=y`) a container passes, in order, after the subcommand.
pub fn flag_names(args: &[String]) -> Vec<String> {
    args.iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().expect("split yields one").to_owned())
        .collect()
}

/// The value of `--name=value` among `args`.
pub fn flag_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().find_map(|a| a.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// The long flags `ferrolb SUBCOMMAND --help` documents.
pub fn documented_flags(subcommand: &str) -> anyhow::Result<BTreeSet<String>> {
    let output = Command::new(ferrolb_e2e::ferrolb_binary()?).args([subcommand, "--help"]).output()?;
    if !output.status.success() {
        bail!("ferrolb {subcommand} --help failed");
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == '<')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect())
}

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
