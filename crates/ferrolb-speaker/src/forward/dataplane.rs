//! The speaker's side of forward mode: chooses the data path once at start, then makes it match each plan.
//!
//! The run loop calls [`Dataplane::set`] twice per change, so that a new owner forwards before it announces
//! and an old owner stops forwarding only after it stops answering: first with the union of the IPs it owned
//! and now owns, then (after the announcer has moved) with the IPs it now owns. Both calls are cheap when
//! nothing changed: the kernel path rewrites its table only when the rendered text differs.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tracing::{info, warn};

use super::kernel::{self, NftTable, render};
use super::plan::Forward;

/// Which data path to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardPath {
    /// nftables if it works on this node, else userspace.
    #[default]
    Auto,
    /// nftables only.
    Kernel,
    /// The userspace relay only.
    Userspace,
}

/// Forward-mode settings.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// The data path.
    pub path: ForwardPath,
}

/// Why the data path could not start or apply a plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel path failed.
    #[error("kernel path: {0}")]
    Kernel(#[from] kernel::Error),
    /// The userspace path failed for some frontends.
    #[error("userspace path: {0}")]
    Userspace(String),
}

/// The running data path.
#[derive(Debug)]
pub struct Dataplane {
    nft: Option<NftTable>,
    applied: Option<String>,
}

impl Dataplane {
    /// Starts the data path: with [`ForwardPath::Auto`], the kernel path if an empty table can be written.
    pub async fn start(options: &ForwardOptions) -> Result<Dataplane, Error> {
        let nft = NftTable::default();
        let empty = render(&BTreeSet::new(), &[]);
        let kernel = match options.path {
            ForwardPath::Userspace => false,
            ForwardPath::Kernel => {
                nft.apply(&empty).await?;
                true
            }
            ForwardPath::Auto => match nft.apply(&empty).await {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "nftables is not usable here; forwarding in userspace");
                    false
                }
            },
        };
        info!(path = if kernel { "kernel (nftables)" } else { "userspace" }, "forward mode");
        Ok(Dataplane { nft: kernel.then_some(nft), applied: kernel.then_some(empty) })
    }

    /// Makes the data path forward exactly `forwards`; `owned` lists every IP this node answers for.
    pub async fn set(&mut self, owned: &BTreeSet<IpAddr>, forwards: &[Forward]) -> Result<(), Error> {
        if let Some(nft) = &self.nft {
            let script = render(owned, forwards);
            if self.applied.as_deref() != Some(script.as_str()) {
                nft.apply(&script).await?;
                self.applied = Some(script);
            }
        }
        Ok(())
    }

    /// Re-writes the table if something else removed it (a flushed ruleset); called on the resync.
    pub async fn repair(&mut self) -> Result<(), Error> {
        if let (Some(nft), Some(script)) = (&self.nft, &self.applied)
            && !nft.present().await
        {
            warn!("ferrolb's nftables table vanished (a flushed ruleset?); writing it again");
            nft.apply(script).await?;
        }
        Ok(())
    }

    /// Removes everything; called on a clean shutdown, after the announcer has stopped answering.
    pub async fn clear(&mut self) {
        if let Some(nft) = &self.nft {
            if let Err(e) = nft.remove().await {
                warn!(error = %e, "could not remove ferrolb's nftables table");
            }
            self.applied = None;
        }
    }
}
