//! Benchmark: 1000 (IPv6 single-stack) LoadBalancer Services created at once against a real control plane; reports the time
//! until all have an EXTERNAL-IP, per-Service latency (create call returned -> IP in status, seen by a
//! watch) and the controller's peak RSS. Run through `hack/bench/controller-burst`.
//!
//! `BURST_LB=metallb` measures MetalLB's controller instead (as released, built by `hack/lib/tools.sh`; its
//! directory in `FERROLB_METALLB_DIR`), with the same Services, pool and clock, so the two compare on one
//! machine. MetalLB logs at `warn` and ferrolb at `info,ferrolb=debug` (the harness's level), so logging
//! costs, if anything, favour MetalLB.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrolb_api::k8s::Service;
use ferrolb_e2e::control_plane::Components;
use ferrolb_e2e::{ControlPlane, ControllerProcess};
use futures::{StreamExt, TryStreamExt, stream};
use kube::Api;
use kube::api::ListParams;
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

const POOL: &str = "2001:db8:b::/64";

/// The controller under measurement.
enum Contender {
    Ferrolb,
    /// MetalLB's controller; the directory holds `bin/controller` and `crds/`.
    Metallb(PathBuf),
}

/// A running controller of either kind.
enum Running {
    Ferrolb(ControllerProcess),
    Metallb(Child),
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Ferrolb(p) => p.pid(),
            Running::Metallb(c) => c.id(),
        }
    }

    /// SIGTERM, then wait for the exit.
    fn terminate(&mut self) -> anyhow::Result<()> {
        match self {
            Running::Ferrolb(p) => p.terminate(),
            Running::Metallb(c) => {
                Command::new("kill").arg("-TERM").arg(c.id().to_string()).status()?;
                c.wait()?;
                Ok(())
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Metallb(c) = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Contender {
    fn from_env() -> anyhow::Result<Contender> {
        match std::env::var("BURST_LB").as_deref() {
            Err(_) | Ok("ferrolb") => Ok(Contender::Ferrolb),
            Ok("metallb") => Ok(Contender::Metallb(
                std::env::var_os("FERROLB_METALLB_DIR").context("BURST_LB=metallb needs FERROLB_METALLB_DIR")?.into(),
            )),
            Ok(other) => anyhow::bail!("BURST_LB must be ferrolb or metallb, not {other}"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Contender::Ferrolb => "ferrolb",
            Contender::Metallb(_) => "MetalLB",
        }
    }

    /// The pool (and for MetalLB its CRDs and namespace).
    fn prepare(&self, plane: &ControlPlane) -> anyhow::Result<()> {
        match self {
            Contender::Ferrolb => {
                plane.apply(&format!(
                    "apiVersion: ferrolb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {{name: burst}}\nspec: {{addresses: [\"{POOL}\"]}}\n"
                ))?;
            }
            Contender::Metallb(dir) => {
                let crds = dir.join("crds");
                plane.kubectl(&["apply", "--server-side", "-f", &crds.to_string_lossy()])?;
                plane.kubectl(&["create", "namespace", "metallb-system"])?;
                plane.kubectl(&[
                    "wait",
                    "--for",
                    "condition=Established",
                    "crd/ipaddresspools.metallb.io",
                    "--timeout",
                    "30s",
                ])?;
                plane.apply(&format!(
                    "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: burst, namespace: metallb-system}}\nspec: {{addresses: [\"{POOL}\"]}}\n"
                ))?;
            }
        }
        Ok(())
    }

    fn start(&self, plane: &ControlPlane, name: &str) -> anyhow::Result<Running> {
        match self {
            Contender::Ferrolb => Ok(Running::Ferrolb(ControllerProcess::start(plane, name, &[])?)),
            Contender::Metallb(dir) => {
                let log = std::fs::File::create(plane.dir().join("logs").join(format!("{name}.log")))?;
                let child = Command::new(dir.join("bin/controller"))
                    .env("KUBECONFIG", plane.kubeconfig())
                    .args(["--namespace", "metallb-system", "--webhook-mode", "disabled", "--disable-cert-rotation"])
                    .args(["--port", "0", "--log-level", "warn"])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .context("starting MetalLB's controller")?;
                Ok(Running::Metallb(child))
            }
        }
    }

    /// Waits until the controller would allocate, so the clock measures allocation, not start-up: ferrolb
    /// holds its Lease; MetalLB (no leader election) has given a canary Service an address.
    async fn wait_ready(&self, plane: &ControlPlane, api: &Api<Service>) -> anyhow::Result<()> {
        match self {
            Contender::Ferrolb => {
                ferrolb_e2e::wait_for("the controller to lead", Duration::from_secs(30), || async {
                    let out = plane.kubectl_raw(
                        &["get", "lease", "-n", "ferrolb-system", "ferrolb-controller", "-o", "name"],
                        None,
                    )?;
                    Ok(out.status.success().then_some(()))
                })
                .await
            }
            Contender::Metallb(_) => {
                api.create(&PostParams::default(), &service("canary", 0)?).await?;
                ferrolb_e2e::wait_for("MetalLB to allocate", Duration::from_secs(60), || async {
                    Ok(api.get("canary-0000").await.ok().filter(has_ip).map(|_| ()))
                })
                .await
            }
        }
    }
}

fn has_ip(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .is_some_and(|i| !i.is_empty())
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
    let contender = Contender::from_env()?;
    let plane = ControlPlane::start(Components::ApiServer).await?;
    contender.prepare(&plane)?;
    let mut controller = contender.start(&plane, "controller")?;
    let api: Api<Service> = Api::namespaced(plane.client.clone(), "default");
    contender.wait_ready(&plane, &api).await?;
    let assigned: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = assigned.clone();
    let watch = tokio::spawn(watcher(api.clone(), watcher::Config::default()).applied_objects().try_for_each(
        move |svc: Service| {
            let name = svc.metadata.name.clone().unwrap_or_default();
            if has_ip(&svc) && name.starts_with("burst-") {
                seen.lock().expect("lock").entry(name).or_insert_with(Instant::now);
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
    println!("controller:                       {}", contender.name());
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
    let restarted = contender.start(&plane, "controller-2")?;
    let deadline = restart + Duration::from_secs(120);
    loop {
        let list = api.list(&ListParams::default()).await?;
        let with_ip = list
            .items
            .iter()
            .filter(|s| s.metadata.name.as_deref().is_some_and(|n| !n.starts_with("canary-")) && has_ip(s))
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
