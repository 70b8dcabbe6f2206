//! `ferrolb controller`: connects to the cluster and runs the controller with its metrics server until
//! SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use ferrolb_controller::{Config, Health, IpMode, Metrics};
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

use crate::cli::ControllerArgs;

/// Runs the subcommand.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let client = ferrolb_runtime::client(args.kubeconfig.as_deref()).await?;
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

    let mut server =
        tokio::spawn(crate::server::serve(args.metrics_address, Arc::new(registry), health.clone(), stop_rx.clone()));
    let mut controller = tokio::spawn(ferrolb_controller::run(client, config, metrics, health, stop_rx));

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: shutting down"),
        r = &mut server => {
            // Stop writing (and release the Lease) before failing.
            let _ = stop_tx.send(true);
            let _ = controller.await;
            return crate::tasks::ended("metrics server", r);
        }
        r = &mut controller => return crate::tasks::ended("controller", r),
    }
    let _ = stop_tx.send(true);
    crate::tasks::finished("controller", controller.await)?;
    crate::tasks::finished("metrics server", server.await)?;
    info!("stopped");
    Ok(())
}
