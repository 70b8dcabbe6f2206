//! `ferrolb controller`: connects to the cluster and runs the controller with its metrics server until
//! SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use ferrolb_controller::{Config, Health, IpMode, Metrics};
use kube::config::{KubeConfigOptions, Kubeconfig};
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

use crate::cli::ControllerArgs;

/// Builds a client from `--kubeconfig`, else in-cluster config, else `KUBECONFIG` / `~/.kube/config`.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("finding cluster configuration (in-cluster, KUBECONFIG, ~/.kube/config)")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// Runs the subcommand.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_deref()).await?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let config = Config {
        load_balancer_class: args.load_balancer_class.clone(),
        handle_unclassed: !args.ignore_unclassed,
        ip_mode: match args.mode {
            crate::cli::Mode::KubeProxy => IpMode::Vip,
            crate::cli::Mode::Forward => IpMode::Proxy,
        },
        lease_namespace: args.lease_namespace.clone(),
        lease_name: args.lease_name.clone(),
        identity: identity.clone(),
        lease_duration: args.lease_duration,
    };
    info!(%identity, class = %config.load_balancer_class, unclassed = config.handle_unclassed, "starting controller");

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);

    let (alive, ready) = (health.clone(), health.clone());
    let probes =
        crate::server::Probes { alive: Arc::new(move || alive.is_alive()), ready: Arc::new(move || ready.is_ready()) };
    let server = tokio::spawn(crate::server::serve(args.metrics_address, Arc::new(registry), probes, stop_rx.clone()));
    let controller = tokio::spawn(ferrolb_controller::run(client, config, metrics, health, stop_rx));

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut server = server;
    let mut controller = controller;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: shutting down"),
        r = &mut server => return Err(flatten(r).context("metrics server stopped").err().unwrap_or_else(|| anyhow::anyhow!("metrics server stopped"))),
        r = &mut controller => return flatten_controller(r),
    }
    let _ = stop_tx.send(true);
    flatten_controller(controller.await)?;
    flatten(server.await)?;
    info!("stopped");
    Ok(())
}

fn flatten(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    r.context("task panicked")?
}

fn flatten_controller(r: Result<ferrolb_controller::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    r.context("controller task panicked")?.context("controller failed")
}
