//! `ferrolb speaker`: runs the speaker on this node until SIGTERM or Ctrl-C, then stops answering.

use anyhow::Context;
use ferrolb_speaker::SpeakerConfig;
use ferrolb_speaker::announcer::InterfacePolicy;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

use crate::cli::SpeakerArgs;

/// Runs the subcommand.
pub async fn run(args: SpeakerArgs) -> anyhow::Result<()> {
    let client = crate::controller_cmd::client(args.kubeconfig.as_deref()).await?;
    let config = SpeakerConfig {
        node_name: args.node_name.clone(),
        load_balancer_class: args.load_balancer_class.clone(),
        handle_unclassed: !args.ignore_unclassed,
        interfaces: InterfacePolicy { excluded_prefixes: args.exclude_interfaces.clone() },
    };
    info!(node = %config.node_name, "starting speaker");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut speaker = tokio::spawn(ferrolb_speaker::run(client, config, stop_rx));
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: shutting down"),
        r = &mut speaker => return r.context("speaker task panicked")?.context("speaker failed"),
    }
    let _ = stop_tx.send(true);
    speaker.await.context("speaker task panicked")?.context("speaker failed")?;
    info!("stopped");
    Ok(())
}
