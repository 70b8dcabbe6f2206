//! `ferrolb speaker`: runs the speaker on this node until SIGTERM or Ctrl-C, then leaves the membership and
//! stops answering. The speaker's loop and the metrics server are both supervised: if either ends on its
//! own, the process exits non-zero and says which.

use std::sync::Arc;

use anyhow::Context;
use ferrolb_forward::dataplane::{ForwardOptions, ForwardPath};
use ferrolb_runtime::Health;
use ferrolb_speaker::l2::InterfacePolicy;
use ferrolb_speaker::membership::KeyFiles;
use ferrolb_speaker::{MembershipOptions, ProbeSettings, SpeakerConfig};
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

use crate::cli::{ForwardPathArg, Mode, SpeakerArgs};

/// Runs the subcommand.
pub async fn run(args: SpeakerArgs) -> anyhow::Result<()> {
    let keys = KeyFiles { key: args.membership_key_file.clone(), previous: args.membership_previous_key_file.clone() };
    // Refuse a missing or bad key before anything else starts.
    keys.read()?;
    let client = ferrolb_runtime::client(args.kubeconfig.as_deref()).await?;
    let config = SpeakerConfig {
        node_name: args.node_name.clone(),
        load_balancer_class: args.load_balancer_class.clone(),
        handle_unclassed: !args.ignore_unclassed,
        interfaces: InterfacePolicy { excluded_prefixes: args.exclude_interfaces.clone() },
        membership: MembershipOptions { port: args.membership_port, keys, address: args.membership_address },
        reannounce_every: (!args.reannounce_interval.is_zero()).then_some(args.reannounce_interval),
        conflict_probe: (!args.conflict_probe_time.is_zero())
            .then_some(ProbeSettings { window: args.conflict_probe_time, recheck: args.conflict_recheck_interval }),
        forward: (args.mode == Mode::Forward).then_some(ForwardOptions {
            path: match args.forward_path {
                ForwardPathArg::Auto => ForwardPath::Auto,
                ForwardPathArg::Kernel => ForwardPath::Kernel,
                ForwardPathArg::Userspace => ForwardPath::Userspace,
            },
        }),
        namespace: args.namespace.clone(),
        bgp_password_secrets: args.bgp_password_secrets.clone(),
    };
    info!(node = %config.node_name, "starting speaker");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut registry = Registry::default();
    let metrics = ferrolb_speaker::Metrics::register(&mut registry);
    let health = Arc::new(Health::default());
    let mut server =
        tokio::spawn(crate::server::serve(args.metrics_address, Arc::new(registry), health.clone(), stop_rx.clone()));
    let mut speaker = tokio::spawn(ferrolb_speaker::run(client, config, metrics, health, stop_rx));
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: shutting down"),
        r = &mut speaker => return crate::tasks::ended("speaker", r),
        r = &mut server => {
            // The speaker must not go on unobservable: stop it cleanly (leave, withdraw), then fail.
            let _ = stop_tx.send(true);
            let _ = speaker.await;
            return crate::tasks::ended("metrics server", r);
        }
    }
    let _ = stop_tx.send(true);
    crate::tasks::finished("speaker", speaker.await)?;
    crate::tasks::finished("metrics server", server.await)?;
    info!("stopped");
    Ok(())
}
