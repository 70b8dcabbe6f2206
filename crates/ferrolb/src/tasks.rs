//! How the binary judges the end of a top-level task: at shutdown a clean end is success; before it, any
//! end is an error naming the task, so the process exits non-zero and the pod restarts.

use anyhow::Context;
use tokio::task::JoinError;

/// The task `name` finished during shutdown: its own error or panic is the process's.
pub fn finished<E>(name: &str, result: Result<Result<(), E>, JoinError>) -> anyhow::Result<()>
where
    E: Into<anyhow::Error>,
{
    result
        .with_context(|| format!("the {name} task panicked"))?
        .map_err(|e| e.into().context(format!("the {name} failed")))
}

/// The task `name` ended before shutdown was asked for: always an error.
pub fn ended<E>(name: &str, result: Result<Result<(), E>, JoinError>) -> anyhow::Result<()>
where
    E: Into<anyhow::Error>,
{
    finished(name, result)?;
    anyhow::bail!("the {name} stopped on its own")
}
