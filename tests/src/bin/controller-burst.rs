//! Benchmark: 1000 (IPv6 single-stack) LoadBalancer Services created at once against a real control plane; reports the time
//! until all have an EXTERNAL-IP, per-Service latency (create call returned -> IP in status, seen by a
//! watch) and the controller's peak RSS. Run through `hack/bench/controller-burst`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrolb_api::k8s::Service;
use ferrolb_e2e::control_plane::Components;
use ferrolb_e2e::{ControlPlane, ControllerProcess};
use futures::{StreamExt, TryStreamExt, stream};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};

fn service(prefix: &str, i: usize) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": format!("{prefix}-{i:04}"), "namespace": "default" },
        "spec": {
            "type": "LoadBalancer", "selector": { "app": "burst" }, "ports": [{ "port": 80 }],
            // The IPv4 service range of the test control plane is a documentation /24 (254 ClusterIPs);
            // the IPv6 one holds 65536.
            "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"
        }
    }))?)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BURST_SERVICES").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let plane = ControlPlane::start(Components::ApiServer).await?;
    let mut controller = ControllerProcess::start(&plane, "controller", &[])?;
    plane.apply("apiVersion: ferrolb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: burst}\nspec: {addresses: [\"2001:db8:b::/64\"]}\n")?;
    // Let the controller take the lease before the clock starts.
    ferrolb_e2e::wait_for("the controller to lead", Duration::from_secs(30), || async {
        let out =
            plane.kubectl_raw(&["get", "lease", "-n", "ferrolb-system", "ferrolb-controller", "-o", "name"], None)?;
        Ok(out.status.success().then_some(()))
    })
    .await?;

    let api: Api<Service> = Api::namespaced(plane.client.clone(), "default");
    let assigned: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = assigned.clone();
    let watch = tokio::spawn(watcher(api.clone(), watcher::Config::default()).applied_objects().try_for_each(
        move |svc: Service| {
            let has_ip =
                svc.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).is_some_and(|i| !i.is_empty());
            if has_ip {
                seen.lock().expect("lock").entry(svc.metadata.name.unwrap_or_default()).or_insert_with(Instant::now);
            }
            futures::future::ready(Ok(()))
        },
    ));

    let start = Instant::now();
    let created: Vec<(String, Instant)> = stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let svc = service("burst", i)?;
                let name = svc.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &svc).await.with_context(|| format!("creating {name}"))?;
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let created_all = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while assigned.lock().expect("lock").len() < n {
        anyhow::ensure!(Instant::now() < deadline, "not all Services got an IP within 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = start.elapsed();
    watch.abort();
    let got = assigned.lock().expect("lock").clone();
    let peak = peak_rss_kib(controller.pid());
    let mut latencies: Vec<Duration> =
        created.iter().map(|(name, at)| got[name].saturating_duration_since(*at)).collect();
    latencies.sort();
    let last_ip = got.values().max().copied().expect("n > 0");
    println!("services:                         {n}");
    println!("all created after:                {:.2} s", created_all.as_secs_f64());
    println!("all with EXTERNAL-IP after:       {:.2} s (from the first create)", total.as_secs_f64());
    println!(
        "last IP after last create:        {:.2} s",
        last_ip.saturating_duration_since(start + created_all).as_secs_f64()
    );
    println!("per-Service latency p50:          {:.0} ms", percentile(&latencies, 0.50).as_secs_f64() * 1000.0);
    println!("per-Service latency p99:          {:.0} ms", percentile(&latencies, 0.99).as_secs_f64() * 1000.0);
    println!("per-Service latency max:          {:.0} ms", latencies.last().expect("n > 0").as_secs_f64() * 1000.0);
    match peak {
        Some(kib) => println!("controller peak RSS (VmHWM):      {:.1} MiB", kib as f64 / 1024.0),
        None => println!("controller peak RSS:              unavailable"),
    }

    // Phase 2: a backlog. With the controller stopped (gracefully, so the lease is free), create another n
    // Services; then start a controller and time how long it takes until all 2n have an address (n restored
    // from status, n allocated), including its cache sync and lease acquisition.
    controller.terminate()?;
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &service("backlog", i)?)
                    .await
                    .map(|_| ())
                    .context("creating backlog")
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await?;
    let restart = Instant::now();
    let restarted = ControllerProcess::start(&plane, "controller-2", &[])?;
    let deadline = restart + Duration::from_secs(120);
    loop {
        let list = api.list(&Default::default()).await?;
        let with_ip = list
            .items
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref())
                    .and_then(|l| l.ingress.as_ref())
                    .is_some_and(|i| !i.is_empty())
            })
            .count();
        if with_ip >= 2 * n {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "backlog not cleared within 120 s ({with_ip}/{})", 2 * n);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "backlog: {n} pending + {n} to restore, all with EXTERNAL-IP {:.2} s after controller start",
        restart.elapsed().as_secs_f64()
    );
    if let Some(kib) = peak_rss_kib(restarted.pid()) {
        println!("restarted controller peak RSS:    {:.1} MiB ({} Services)", kib as f64 / 1024.0, 2 * n);
    }
    Ok(())
}
