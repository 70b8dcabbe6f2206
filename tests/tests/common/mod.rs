//! Helpers shared by the controller end-to-end tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ferrolb_api::k8s::{Service, jiff};
use ferrolb_e2e::{ControlPlane, wait_for};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;

/// A generous bound for anything the controller should do "within a second".
pub const SOON: Duration = Duration::from_secs(20);

/// A pool manifest.
pub fn pool(name: &str, addresses: &[&str], extra: &str) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "apiVersion: ferrolb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {{name: {name}}}\nspec:\n  addresses: [{}]\n{extra}",
        list.join(", ")
    )
}

/// A LoadBalancer Service manifest with TCP port `port`; `annotations` and `spec_extra` are YAML lines.
pub fn service(ns: &str, name: &str, port: u16, annotations: &[(&str, &str)], spec_extra: &str) -> String {
    let ann: String = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    let ann = if ann.is_empty() { String::new() } else { format!("  annotations:\n{ann}") };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n{ann}spec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports: [{{port: {port}, name: p{port}}}]\n{spec_extra}"
    )
}

/// The addresses in a Service's `status.loadBalancer.ingress`.
pub fn ingress_ips(svc: Service) -> Vec<String> {
    svc.status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect()
}

/// The external IPs in a Service's status.
pub async fn ips(plane: &ControlPlane, ns: &str, name: &str) -> anyhow::Result<Vec<String>> {
    let api: Api<Service> = Api::namespaced(plane.client.clone(), ns);
    Ok(ingress_ips(api.get(name).await?))
}

/// Who holds the controller's leader-election Lease ("" when released).
pub fn lease_holder(plane: &ControlPlane) -> anyhow::Result<String> {
    Ok(lease_record(plane)?.holder)
}

/// The controller's Lease as its holder last wrote it.
pub struct LeaseRecord {
    /// Who holds it (empty: released).
    pub holder: String,
    /// The renew time, from the holder's own wall clock (`None`: released).
    pub renewed: Option<jiff::Timestamp>,
    /// How many times it changed hands.
    pub transitions: u64,
}

/// Reads the controller's Lease.
pub fn lease_record(plane: &ControlPlane) -> anyhow::Result<LeaseRecord> {
    let out = plane.kubectl(&[
        "get",
        "lease",
        "-n",
        "ferrolb-system",
        "ferrolb-controller",
        "-o",
        "jsonpath={.spec.holderIdentity}|{.spec.renewTime}|{.spec.leaseTransitions}",
    ])?;
    let mut fields = out.trim().split('|');
    let holder = fields.next().unwrap_or_default().to_owned();
    let renewed = fields.next().filter(|t| !t.is_empty()).map(str::parse).transpose()?;
    let transitions = fields.next().filter(|t| !t.is_empty()).map_or(Ok(0), str::parse)?;
    Ok(LeaseRecord { holder, renewed, transitions })
}

/// Waits until a Service has exactly `n` external IPs and returns them.
pub async fn wait_ips(plane: &ControlPlane, ns: &str, name: &str, n: usize) -> anyhow::Result<Vec<String>> {
    wait_for(&format!("{ns}/{name} to get {n} external IP(s)"), SOON, || async move {
        let got = ips(plane, ns, name).await?;
        Ok((got.len() == n).then_some(got))
    })
    .await
}

/// Waits for an Event on a Service with `reason`, returning its message.
pub async fn wait_event(plane: &ControlPlane, ns: &str, name: &str, reason: &str) -> anyhow::Result<String> {
    wait_for(&format!("event {reason} on {ns}/{name}"), SOON, || async move {
        let api: Api<Event> = Api::namespaced(plane.client.clone(), ns);
        let events = api.list(&ListParams::default().fields(&format!("involvedObject.name={name}"))).await?;
        Ok(events
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.message.unwrap_or_default()))
    })
    .await
}

/// Waits for an Event on a Service with `reason` whose message contains `text`, returning the message.
pub async fn wait_event_with(
    plane: &ControlPlane,
    ns: &str,
    name: &str,
    reason: &str,
    text: &str,
) -> anyhow::Result<String> {
    wait_for(&format!("event {reason} on {ns}/{name} saying {text:?}"), SOON, || async move {
        let api: Api<Event> = Api::namespaced(plane.client.clone(), ns);
        let events = api.list(&ListParams::default().fields(&format!("involvedObject.name={name}"))).await?;
        Ok(events
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.message)
            .find(|m| m.contains(text)))
    })
    .await
}

/// Every handled Service's IPs in the cluster, keyed by `ns/name`.
pub async fn all_ips(plane: &ControlPlane) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let api: Api<Service> = Api::all(plane.client.clone());
    let mut out = BTreeMap::new();
    for svc in api.list(&ListParams::default()).await? {
        let key = format!(
            "{}/{}",
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone().unwrap_or_default()
        );
        let list = ingress_ips(svc);
        if !list.is_empty() {
            out.insert(key, list);
        }
    }
    Ok(out)
}

/// Fails if any IP is held by two Services.
pub fn assert_no_duplicates(all: &BTreeMap<String, Vec<String>>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (svc, list) in all {
        for ip in list {
            if let Some(other) = seen.insert(ip, svc) {
                panic!("{ip} is held by both {other} and {svc}");
            }
        }
    }
}
