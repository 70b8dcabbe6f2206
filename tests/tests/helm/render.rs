//! Rendering helpers of the Helm chart suite: running the pinned helm (`hack/helm`), parsing what it
//! renders, finding objects, container flags, option paths and RBAC grants in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};
use ferrolb_e2e::repo_root;
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

/// Removes the value at a dotted path of mapping keys, so the chart's default applies there.
pub fn remove_leaf(values: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('.').map_or((None, path), |(p, k)| (Some(p), k));
    let parent = match parent {
        None => Some(values),
        Some(p) => p.split('.').try_fold(values, |v, k| v.get_mut(k)),
    };
    if let Some(map) = parent.and_then(Value::as_mapping_mut) {
        map.remove(key);
    }
}

/// The option paths of `values`: mapping keys are followed while the default at that path is a non-empty
/// mapping (free-form maps such as nodeSelector are one option); anything else is a leaf.
pub fn leaves(values: &Value, defaults: &Value, prefix: &str) -> Vec<(String, Value)> {
    let Some(map) = values.as_mapping() else { return vec![(prefix.to_owned(), values.clone())] };
    let default_is_structure =
        prefix.is_empty() || at(defaults, prefix).and_then(Value::as_mapping).is_some_and(|m| !m.is_empty());
    if !default_is_structure {
        return vec![(prefix.to_owned(), values.clone())];
    }
    map.iter()
        .flat_map(|(k, v)| {
            let key = k.as_str().expect("string keys");
            let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
            leaves(v, defaults, &path)
        })
        .collect()
}

/// One RBAC rule, flattened: (apiGroup, resource, verb, resourceName or "").
pub type Grant = (String, String, String, String);

pub fn grants(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in at(role, "rules").and_then(Value::as_sequence).into_iter().flatten() {
        let names = strings_at(rule, "resourceNames");
        let names = if names.is_empty() { vec![String::new()] } else { names };
        for group in strings_at(rule, "apiGroups") {
            for resource in strings_at(rule, "resources") {
                for verb in strings_at(rule, "verbs") {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

pub fn expect(rows: &[(&str, &str, &str)]) -> BTreeSet<Grant> {
    rows.iter()
        .flat_map(|(group, resource, verbs)| {
            verbs.split(',').map(move |v| {
                let (verb, name) = v.split_once('/').unwrap_or((v, ""));
                (group.to_string(), resource.to_string(), verb.to_string(), name.to_string())
            })
        })
        .collect()
}
