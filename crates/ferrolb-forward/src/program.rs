//! Running a host networking program (`nft`, `conntrack`) as kube-proxy does, rather than hand-writing
//! netlink: a command line (which may be prefixed, e.g. `ip netns exec NS nft` in tests), an optional script
//! on stdin, a time limit, and the output kept for the caller to read.

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long one run may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a program could not be run to the end (its exit status is the caller's to judge).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It could not be started (not installed?), or its stdin or output failed.
    #[error("{0}")]
    Spawn(#[source] std::io::Error),
    /// It did not finish in time (and was killed).
    #[error("did not finish within {0:?}")]
    Timeout(Duration),
}

impl RunError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RunError::Spawn(_) => "spawn",
            RunError::Timeout(_) => "timeout",
        }
    }
}

/// A program and the arguments that come before the ones each run adds.
#[derive(Debug, Clone)]
pub struct Program {
    command: Vec<String>,
    timeout: Duration,
}

impl Program {
    /// `command` is the program and any prefix, e.g. `["nft"]` or `["ip", "netns", "exec", "NS", "nft"]`.
    pub fn new(command: Vec<String>) -> Program {
        Program { command, timeout: TIMEOUT }
    }

    /// Runs it with `args` and, if given, `stdin`; returns its output whatever its exit status.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, RunError> {
        let (program, prefix) = self
            .command
            .split_first()
            .ok_or_else(|| RunError::Spawn(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command")))?;
        let mut child = Command::new(program)
            .args(prefix)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(RunError::Spawn)?;
        if let (Some(script), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(script.as_bytes()).await.map_err(RunError::Spawn)?;
        }
        tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| RunError::Timeout(self.timeout))?
            .map_err(RunError::Spawn)
    }
}
