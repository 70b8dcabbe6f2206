//! `ferrolb release-finalizers`: after an uninstall nobody removes ferrolb's finalizers, and every Service it
//! gave an address to (and every pool) would hang in Terminating when deleted. Run after `helm uninstall`.
//! Addresses in Service status and the pool annotation stay, so a reinstall keeps them.

use anyhow::Context;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::json;

use ferrolb_api::k8s::{ResourceExt, Service};
use ferrolb_api::{
    IPAddressPool, LB_CLEANUP_FINALIZER, POOL_FINALIZER, handles_type_and_class, recorded_pools, service_key,
};

use crate::cli::ClusterArgs;

/// How often one object's write is retried after a conflict (someone else wrote it in between).
const ATTEMPTS: usize = 5;

/// Whether the cleanup finalizer of `service` is ferrolb's: the controller wrote its pool annotation, or it
/// has the type and class ferrolb handles (a finalizer on another class's Service may be another load
/// balancer's).
fn service_is_ours(service: &Service, args: &ClusterArgs) -> bool {
    recorded_pools(service).is_some()
        || handles_type_and_class(service, &args.load_balancer_class, !args.ignore_unclassed)
}

/// The finalizer list without `finalizer`, or `None` when it is not there.
fn without(finalizers: &[String], finalizer: &str) -> Option<Vec<String>> {
    finalizers.iter().any(|f| f == finalizer).then(|| finalizers.iter().filter(|f| *f != finalizer).cloned().collect())
}

/// Removes `finalizer` from one object, re-reading it after a conflict. `Ok(false)`: nothing to remove.
async fn release<K>(api: &Api<K>, mut object: K, finalizer: &str) -> anyhow::Result<bool>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = object.name_any();
    for _ in 0..ATTEMPTS {
        let Some(rest) = without(object.finalizers(), finalizer) else { return Ok(false) };
        let body = json!({ "metadata": { "resourceVersion": object.resource_version(), "finalizers": rest } });
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&name).await? {
                Some(fresh) => object = fresh,
                None => return Ok(false),
            },
            Err(e) => return Err(e).with_context(|| format!("removing {finalizer} from {name}")),
        }
    }
    anyhow::bail!("removing {finalizer} from {name}: it kept changing ({ATTEMPTS} conflicts in a row)")
}

/// Lists every Service and pool and removes ferrolb's finalizers; prints what it released.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let client = ferrolb_runtime::client(args.kubeconfig.as_deref()).await?;
    let services =
        Api::<Service>::all(client.clone()).list(&ListParams::default()).await.context("listing Services")?;
    let mut released_services = 0;
    for service in services.items.into_iter().filter(|s| service_is_ours(s, &args)) {
        let api = Api::<Service>::namespaced(client.clone(), &service.namespace().unwrap_or_default());
        let key = service_key(&service);
        if release(&api, service, LB_CLEANUP_FINALIZER).await.with_context(|| format!("Service {key}"))? {
            released_services += 1;
        }
    }
    let pools_api = Api::<IPAddressPool>::all(client.clone());
    let pools = pools_api.list(&ListParams::default()).await.context("listing IPAddressPools")?;
    let mut released_pools = 0;
    for pool in pools.items {
        let name = pool.name_any();
        if release(&pools_api, pool, POOL_FINALIZER).await.with_context(|| format!("IPAddressPool {name}"))? {
            released_pools += 1;
        }
    }
    println!("released {released_services} Services and {released_pools} IPAddressPools");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::k8s::{ObjectMeta, ServiceSpec};

    fn args() -> ClusterArgs {
        ClusterArgs {
            kubeconfig: None,
            load_balancer_class: ferrolb_api::DEFAULT_LOAD_BALANCER_CLASS.to_owned(),
            ignore_unclassed: false,
        }
    }

    fn service(type_: &str, class: Option<&str>, annotated: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                annotations: annotated.then(|| [(ferrolb_api::ALLOCATED_FROM_POOL.to_owned(), "p".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(type_.to_owned()),
                load_balancer_class: class.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_ferrolbs_services_and_only_its_finalizer() {
        assert!(service_is_ours(&service("LoadBalancer", None, false), &args()));
        assert!(service_is_ours(&service("ClusterIP", None, true), &args()), "annotated: ferrolb gave it an address");
        assert!(!service_is_ours(&service("LoadBalancer", Some("example.com/cloud"), false), &args()));
        assert!(!service_is_ours(&service("ClusterIP", None, false), &args()));
        let unclassed = ClusterArgs { ignore_unclassed: true, ..args() };
        assert!(!service_is_ours(&service("LoadBalancer", None, false), &unclassed));

        let list = vec!["example.com/hold".to_owned(), LB_CLEANUP_FINALIZER.to_owned()];
        assert_eq!(without(&list, LB_CLEANUP_FINALIZER), Some(vec!["example.com/hold".to_owned()]));
        assert_eq!(without(&list[..1], LB_CLEANUP_FINALIZER), None);
    }
}
