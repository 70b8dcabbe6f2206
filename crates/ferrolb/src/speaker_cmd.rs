//! `ferrolb speaker`: runs the speaker on this node until SIGTERM or Ctrl-C, then leaves the membership and
//! stops answering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use ferrolb_speaker::announcer::InterfacePolicy;
use ferrolb_speaker::membership::MembershipKey;
use ferrolb_speaker::{MembershipOptions, SpeakerConfig};
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

use crate::cli::{ForwardPathArg, Mode, SpeakerArgs};
use ferrolb_speaker::forward::dataplane::{ForwardOptions, ForwardPath};

fn read_key(path: &std::path::Path) -> anyhow::Result<MembershipKey> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the membership key from {}", path.display()))?;
    MembershipKey::from_bytes(&bytes).with_context(|| format!("the membership key in {}", path.display()))
}

/// Runs the subcommand.
pub async fn run(args: SpeakerArgs) -> anyhow::Result<()> {
    let client = crate::controller_cmd::client(args.kubeconfig.as_deref()).await?;
    let config = SpeakerConfig {
        node_name: args.node_name.clone(),
        load_balancer_class: args.load_balancer_class.clone(),
        handle_unclassed: !args.ignore_unclassed,
        interfaces: InterfacePolicy { excluded_prefixes: args.exclude_interfaces.clone() },
        membership: MembershipOptions {
            port: args.membership_port,
            key: read_key(&args.membership_key_file)?,
            address: args.membership_address,
        },
        reannounce_every: (args.reannounce_interval > 0)
            .then(|| std::time::Duration::from_secs(args.reannounce_interval)),
        forward: (args.mode == Mode::Forward).then_some(ForwardOptions {
            path: match args.forward_path {
                ForwardPathArg::Auto => ForwardPath::Auto,
                ForwardPathArg::Kernel => ForwardPath::Kernel,
                ForwardPathArg::Userspace => ForwardPath::Userspace,
            },
        }),
    };
    info!(node = %config.node_name, "starting speaker");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut registry = Registry::default();
    let metrics = ferrolb_speaker::Metrics::register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let ready_probe = ready.clone();
    let probes = crate::server::Probes {
        alive: Arc::new(|| true),
        ready: Arc::new(move || ready_probe.load(Ordering::Relaxed)),
    };
    let server = tokio::spawn(crate::server::serve(args.metrics_address, Arc::new(registry), probes, stop_rx.clone()));
    let mut speaker = tokio::spawn(ferrolb_speaker::run(client, config, metrics, ready, stop_rx));
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: shutting down"),
        r = &mut speaker => return r.context("speaker task panicked")?.context("speaker failed"),
    }
    let _ = stop_tx.send(true);
    speaker.await.context("speaker task panicked")?.context("speaker failed")?;
    server.await.context("metrics server panicked")??;
    info!("stopped");
    Ok(())
}
