//! Supervision of a component's background tasks: every long-running task is registered by name, and the
//! main loop selects on [`Tasks::ended`], so a task that returns or panics ends the component with an error
//! that names it, instead of leaving it half alive (announcing with a dead membership, say).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How a supervised task ended.
#[derive(Debug)]
pub enum Ended {
    /// It returned, which a long-running task must not do while the component runs.
    Returned(&'static str),
    /// It panicked.
    Panicked(&'static str, String),
    /// It was cancelled from outside.
    Cancelled(&'static str),
}

impl Ended {
    /// The task's name.
    pub fn name(&self) -> &'static str {
        match self {
            Ended::Returned(name) | Ended::Panicked(name, _) | Ended::Cancelled(name) => name,
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Returned(name) => write!(f, "the {name} task ended"),
            Ended::Panicked(name, message) => write!(f, "the {name} task panicked: {message}"),
            Ended::Cancelled(name) => write!(f, "the {name} task was cancelled"),
        }
    }
}

impl std::error::Error for Ended {}

/// Named background tasks; dropping this aborts the ones still running.
#[derive(Debug, Default)]
pub struct Tasks {
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    /// Spawns `task` under `name`.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.running.push((name, tokio::spawn(task)));
    }

    /// Supervises a task spawned elsewhere.
    pub fn adopt(&mut self, name: &'static str, handle: JoinHandle<()>) {
        self.running.push((name, handle));
    }

    /// Waits until any task ends and says which and how; never resolves while there is none.
    pub async fn ended(&mut self) -> Ended {
        if self.running.is_empty() {
            return std::future::pending().await;
        }
        let (result, index, _) = futures::future::select_all(self.running.iter_mut().map(|(_, h)| h)).await;
        let (name, _) = self.running.swap_remove(index);
        match result {
            Ok(()) => Ended::Returned(name),
            Err(e) if e.is_panic() => Ended::Panicked(name, panic_message(e.into_panic())),
            Err(_) => Ended::Cancelled(name),
        }
    }

    /// Stops supervising `name` and waits up to `limit` for it to finish (a writer flushing at shutdown);
    /// aborts it if it does not.
    pub async fn finish(&mut self, name: &'static str, limit: Duration) {
        let Some(index) = self.running.iter().position(|(n, _)| *n == name) else { return };
        let (_, mut handle) = self.running.swap_remove(index);
        if tokio::time::timeout(limit, &mut handle).await.is_err() {
            handle.abort();
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for (_, handle) in &self.running {
            handle.abort();
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(|| "(no message)".to_owned(), |s| (*s).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_returns_or_panics_is_named() {
        let mut tasks = Tasks::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("short", async {});
        let ended = tasks.ended().await;
        assert_eq!(ended.to_string(), "the short task ended");
        tasks.spawn("broken", async { panic!("boom") });
        let ended = tasks.ended().await;
        assert!(matches!(ended, Ended::Panicked("broken", ref m) if m == "boom"), "{ended}");
        // The one left never ends.
        assert!(tokio::time::timeout(Duration::from_millis(50), tasks.ended()).await.is_err());
    }

    #[tokio::test]
    async fn finish_waits_for_a_task_then_aborts_it() {
        let mut tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn("writer", async move {
            let _ = rx.await;
        });
        drop(tx);
        tasks.finish("writer", Duration::from_secs(5)).await;
        tasks.spawn("stuck", std::future::pending());
        tasks.finish("stuck", Duration::from_millis(10)).await;
        assert!(tokio::time::timeout(Duration::from_millis(50), tasks.ended()).await.is_err(), "nothing left");
    }
}
