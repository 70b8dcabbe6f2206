//! The local lab (`hack/lab`) from Rust tests: a mini-cluster in network namespaces with real kube-proxy and
//! real pods, torn down on drop (also on panic). Needs root.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::controller::ferrolb_binary;
use crate::repo_root;

/// A running lab; `hack/lab down` on drop.
pub struct Lab {
    dir: PathBuf,
    /// A client with admin rights.
    pub client: kube::Client,
}

/// Fails with a clear message unless the tests run as root (the lab needs network namespaces).
pub fn require_root() -> anyhow::Result<()> {
    let uid = Command::new("id").arg("-u").output().context("running id -u")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!("the lab tests need root (network namespaces, veth pairs, nftables); run the suite as root");
    }
    Ok(())
}

impl Lab {
    /// Brings up a lab with `nodes` nodes; `extra` flags go to `hack/lab up` (e.g. `--no-ferrolb`).
    pub async fn start(nodes: usize, extra: &[&str]) -> anyhow::Result<Lab> {
        require_root()?;
        let base = std::env::var_os("FERROLB_TEST_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("ferrolb-lab-{}-{}", std::process::id(), crate::control_plane::unique()));
        let binary = ferrolb_binary()?;
        let guard = LabGuard(dir.clone());
        let output = Command::new(repo_root().join("hack/lab"))
            .arg("--dir")
            .arg(&dir)
            .args(["--nodes", &nodes.to_string()])
            .args(extra)
            .arg("up")
            .env("FERROLB_BIN", binary)
            .output()
            .context("running hack/lab up")?;
        if !output.status.success() {
            bail!(
                "hack/lab up failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let kubeconfig = Kubeconfig::read_from(dir.join("control-plane/kubeconfig"))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(config)?;
        std::mem::forget(guard);
        Ok(Lab { dir, client })
    }

    /// Runs `hack/lab --dir DIR ARGS...` and returns stdout; fails with stderr on a non-zero exit.
    pub fn lab(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(repo_root().join("hack/lab")).arg("--dir").arg(&self.dir).args(args).output()?;
        if !output.status.success() {
            bail!("hack/lab {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs a command in a lab member (`client`, `node-1`, a pod name).
    pub fn exec(&self, member: &str, command: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["exec", member, "--"];
        args.extend_from_slice(command);
        self.lab(&args)
    }

    /// Runs kubectl against the lab.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        crate::kubectl::checked(&self.kubeconfig(), args)
    }

    /// `kubectl apply -f FILE`.
    pub fn apply_file(&self, path: &std::path::Path) -> anyhow::Result<String> {
        self.kubectl(&["apply", "-f", path.to_str().context("utf-8 path")?])
    }

    /// The lab's kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("control-plane/kubeconfig")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        down(&self.dir);
    }
}

struct LabGuard(PathBuf);

impl Drop for LabGuard {
    fn drop(&mut self) {
        down(&self.0);
    }
}

fn down(dir: &std::path::Path) {
    let _ = Command::new(repo_root().join("hack/lab")).arg("--dir").arg(dir).arg("down").status();
}
