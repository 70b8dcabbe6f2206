//! The real `ferrolb controller` binary as a child process, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};

use crate::{ControlPlane, repo_root};

/// The `ferrolb` binary: `FERROLB_BIN` if set, else built once per test run (`cargo build -p ferrolb`).
pub fn ferrolb_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERROLB_BIN") {
        return Ok(PathBuf::from(path));
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-q", "-p", "ferrolb"])
                .current_dir(repo_root())
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("cargo build -p ferrolb failed".to_owned());
            }
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from);
            Ok(target.join("debug/ferrolb"))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// A running controller; SIGKILLed on drop if still running.
pub struct ControllerProcess {
    child: Child,
    /// Where its log goes.
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Starts `ferrolb controller` against `plane` with extra flags; its log is `<plane dir>/logs/<name>.log`.
    pub fn start(plane: &ControlPlane, name: &str, extra: &[&str]) -> anyhow::Result<ControllerProcess> {
        ControllerProcess::start_with_env(plane, name, extra, &[])
    }

    /// [`ControllerProcess::start`] with more environment (a [`crate::FakeClock`]'s, say).
    pub fn start_with_env(
        plane: &ControlPlane,
        name: &str,
        extra: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<ControllerProcess> {
        let log = plane.dir().join("logs").join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(ferrolb_binary()?)
            .arg("controller")
            .arg("--kubeconfig")
            .arg(plane.kubeconfig())
            .args(["--metrics-address", "127.0.0.1:0", "--identity", name, "--lease-duration", "4s"])
            .args(extra)
            .env("FERROLB_LOG", "info,ferrolb=debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .context("starting ferrolb controller")?;
        Ok(ControllerProcess { child, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process abruptly (SIGKILL), as a node or OOM kill would.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Stops the process with SIGTERM and waits; fails if it does not exit cleanly.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let exit = self.child.wait()?;
        if !exit.success() {
            bail!("controller exited with {exit}; log: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
        Ok(())
    }

    /// Where its `/metrics`, `/healthz` and `/readyz` server listens, once its log says so.
    pub fn server_address(&self) -> Option<std::net::SocketAddr> {
        let log = self.log_text();
        let line = log.lines().find(|l| l.contains("serving /metrics"))?;
        let at = line.split("address=").nth(1)?.split_whitespace().next()?;
        at.parse().ok()
    }

    /// `GET path` on its server: the status code and the body.
    pub fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        use std::io::{Read, Write};
        let address = self.server_address().context("the controller has not said where it serves yet")?;
        let mut stream = std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no status line")?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Ok((code, body))
    }

    /// The log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
