//! Running kubectl against a kubeconfig, shared by the control-plane and lab harnesses.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

/// Runs kubectl, feeding `stdin` if given, and returns its raw output (for expected failures).
pub fn raw(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
    let mut command = Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    let Some(input) = stdin else { return command.output().context("running kubectl") };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    child.stdin.take().expect("piped").write_all(input.as_bytes())?;
    child.wait_with_output().context("waiting for kubectl")
}

/// Runs kubectl and returns stdout; fails with stderr on a non-zero exit.
pub fn checked(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = raw(kubeconfig, args, None)?;
    if !output.status.success() {
        bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
