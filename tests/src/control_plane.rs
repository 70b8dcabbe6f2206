//! A fresh control plane per test, from `hack/control-plane`, with ferrolb's CRDs installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::repo_root;

/// A running control plane; stopped and deleted on drop.
pub struct ControlPlane {
    dir: PathBuf,
    /// A client with admin rights.
    pub client: kube::Client,
}

/// Which components to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Components {
    /// etcd and kube-apiserver only (enough for the controller; starts faster).
    ApiServer,
    /// Also kube-controller-manager (EndpointSlices, namespace deletion, garbage collection).
    All,
}

impl ControlPlane {
    /// Starts a control plane in a new temporary directory and installs the CRDs.
    pub async fn start(components: Components) -> anyhow::Result<ControlPlane> {
        let base = std::env::var_os("FERROLB_TEST_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("ferrolb-cp-{}-{}", std::process::id(), unique()));
        let output = Command::new(repo_root().join("hack/control-plane"))
            .args(["up"])
            .arg(&dir)
            .env("FERROLB_CP_COMPONENTS", if components == Components::All { "all" } else { "apiserver" })
            .output()
            .context("running hack/control-plane")?;
        // Construct the guard first so a failure below still tears down what started.
        let guard = DirGuard(dir.clone());
        if !output.status.success() {
            bail!("hack/control-plane up failed:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        let kubeconfig = Kubeconfig::read_from(dir.join("kubeconfig"))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(config)?;
        std::mem::forget(guard);
        let plane = ControlPlane { dir, client };
        plane.kubectl(&["apply", "-f", repo_root().join("crds").to_str().expect("utf-8 path")])?;
        plane.kubectl(&["create", "namespace", "ferrolb-system"])?;
        plane.kubectl(&[
            "wait",
            "--for",
            "condition=Established",
            "crd/ipaddresspools.ferrolb.io",
            "--timeout",
            "30s",
        ])?;
        Ok(plane)
    }

    /// The kubeconfig path.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Runs kubectl against this control plane; fails with stderr on a non-zero exit.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        crate::kubectl::checked(&self.kubeconfig(), args)
    }

    /// Runs kubectl with `stdin` and returns its raw output (for expected failures).
    pub fn kubectl_raw(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<std::process::Output> {
        crate::kubectl::raw(&self.kubeconfig(), args, stdin)
    }

    /// `kubectl apply -f -` with YAML.
    pub fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        let output = self.kubectl_raw(&["apply", "-f", "-"], Some(yaml))?;
        if !output.status.success() {
            bail!("kubectl apply failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The directory holding the control plane's state and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        down(&self.dir);
    }
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        down(&self.0);
    }
}

fn down(dir: &Path) {
    let _ = Command::new(repo_root().join("hack/control-plane")).arg("down").arg(dir).status();
}

/// A number unique within this process, for directory names.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
