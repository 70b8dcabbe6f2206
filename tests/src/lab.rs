//! The local lab (`hack/lab`) from Rust tests: a mini-cluster in network namespaces with real kube-proxy and
//! real pods, torn down on drop (also on panic). Needs root.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::controller::ferrolb_binary;
use crate::repo_root;

/// A running lab; `hack/lab down` on drop.
///
/// Labs share the host namespace's view of the documentation ranges (every lab's bridge holds
/// 198.51.100.1/24), so two at once would route each other's replies: [`Lab::start`] holds a host-wide lock
/// for the lab's lifetime and the lab tests run one after another.
pub struct Lab {
    dir: PathBuf,
    _exclusive: std::fs::File,
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
        Lab::start_with_env(nodes, extra, &[]).await
    }

    /// Like [`Lab::start`], with environment variables for the lab's processes (e.g. speaker settings).
    pub async fn start_with_env(nodes: usize, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Lab> {
        require_root()?;
        let lock_path = std::env::temp_dir().join("ferrolb-lab.lock");
        let exclusive = tokio::task::spawn_blocking(move || -> anyhow::Result<std::fs::File> {
            let file = std::fs::File::options().create(true).truncate(false).write(true).open(&lock_path)?;
            file.lock().with_context(|| format!("locking {}", lock_path.display()))?;
            Ok(file)
        })
        .await??;
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
            .envs(env.iter().copied())
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
        Ok(Lab { dir, _exclusive: exclusive, client })
    }

    /// The node named by the L2Announcement for `ip` (in any namespace), if there is one.
    pub fn recorded_owner(&self, ip: &str) -> anyhow::Result<Option<String>> {
        let name = ferrolb_api::l2announcement_name(ip.parse()?);
        let out = self.kubectl(&[
            "get",
            "l2announcements",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.node}{\"\\n\"}{end}",
        ])?;
        Ok(out.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).map(str::to_owned))
    }

    /// Runs `hack/lab --dir DIR ARGS...` and returns stdout; fails with stderr on a non-zero exit.
    pub fn lab(&self, args: &[&str]) -> anyhow::Result<String> {
        self.lab_with_env(args, &[])
    }

    /// [`lab`](Lab::lab) with extra environment, which the processes it starts inherit (e.g. a speaker's).
    pub fn lab_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
        let output = Command::new(repo_root().join("hack/lab"))
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .envs(env.iter().copied())
            .output()?;
        if !output.status.success() {
            bail!("hack/lab {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A vtysh command on the router of a `--bgp` lab (FRR), its output read as JSON.
    pub fn vtysh_json(&self, command: &str) -> anyhow::Result<serde_json::Value> {
        let out = self.lab(&["vtysh", "-c", command])?;
        serde_json::from_str(&out).with_context(|| format!("vtysh -c '{command}' printed: {out}"))
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

    /// Runs kubectl against the lab and returns stdout whatever the exit status (`kubectl auth can-i` exits
    /// 1 for "no").
    pub fn kubectl_raw(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(&crate::kubectl::raw(&self.kubeconfig(), args, None)?.stdout).into_owned())
    }

    /// `kubectl apply -f FILE`.
    pub fn apply_file(&self, path: &std::path::Path) -> anyhow::Result<String> {
        self.kubectl(&["apply", "-f", path.to_str().context("utf-8 path")?])
    }

    /// `kubectl apply` of a YAML text.
    pub fn apply_yaml(&self, yaml: &str) -> anyhow::Result<String> {
        let file = std::env::temp_dir().join(format!(
            "ferrolb-lab-{}-{}.yaml",
            std::process::id(),
            crate::control_plane::unique()
        ));
        std::fs::write(&file, yaml)?;
        let result = self.apply_file(&file);
        let _ = std::fs::remove_file(&file);
        result
    }

    /// Starts a command in a lab member in the background (for probes that run while the test acts).
    pub fn spawn_exec(&self, member: &str, command: &[&str]) -> anyhow::Result<std::process::Child> {
        Command::new(repo_root().join("hack/lab"))
            .arg("--dir")
            .arg(&self.dir)
            .args(["exec", member, "--"])
            .args(command)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting a background command in the lab")
    }

    /// Starts watching, from the client, who answers ARP for `ip` (hack/lab.d/arp-watch.py: a request every
    /// 20 ms); returns once the first request is out. [`ClientProbe::finish`] gives the report (`rounds`,
    /// `answered`, `max_gap_ms`, `two_macs_rounds`, `two_macs_windows`, `macs`).
    pub async fn watch_arp(&self, ip: &str) -> anyhow::Result<ClientProbe> {
        ClientProbe::start(self, "the ARP watch", "arp-watch.py", &["eth0", ip]).await
    }

    /// Waits (up to 30 s) until an HTTP GET from the client to `ip` (v4 or v6) answers with a body holding
    /// `expect`, and returns the body.
    pub async fn wait_http(&self, ip: &str, expect: &str) -> anyhow::Result<String> {
        let url = if ip.contains(':') { format!("http://[{ip}]/") } else { format!("http://{ip}/") };
        crate::wait_for(&format!("HTTP through {ip}"), std::time::Duration::from_secs(30), || async {
            Ok(self.exec("client", &["curl", "-s", "-m", "2", &url]).ok().filter(|b| b.contains(expect)))
        })
        .await
    }

    /// Waits (up to 30 s) until `node`'s LAN interface, and no other MAC, answers the client's ARP requests
    /// for `ip`.
    pub async fn wait_answered_by(&self, ip: &str, node: &str) -> anyhow::Result<()> {
        let mac = self.node_mac(node)?;
        crate::wait_for(&format!("{node} alone answering ARP for {ip}"), std::time::Duration::from_secs(30), || async {
            Ok((self.arp_answers(ip)? == [mac.as_str()]).then_some(()))
        })
        .await
    }

    /// The MACs that answer an ARP request for `ip` on the client's segment (a raw probe, one second).
    pub fn arp_answers(&self, ip: &str) -> anyhow::Result<Vec<String>> {
        self.arp_answers_on("eth0", ip)
    }

    /// The MACs that answer an ARP request for `ip` sent from the client's interface `dev`.
    pub fn arp_answers_on(&self, dev: &str, ip: &str) -> anyhow::Result<Vec<String>> {
        let probe = repo_root().join("hack/lab.d/arp-probe.py");
        let out = self.exec("client", &["python3", probe.to_str().context("utf-8 path")?, dev, ip, "1.0"])?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// The MAC of node-N's LAN interface.
    pub fn node_mac(&self, node: &str) -> anyhow::Result<String> {
        self.mac(node, "eth0")
    }

    /// The MAC of interface `dev` in a lab member.
    pub fn mac(&self, member: &str, dev: &str) -> anyhow::Result<String> {
        Ok(self.exec(member, &["cat", &format!("/sys/class/net/{dev}/address")])?.trim().to_owned())
    }

    /// Everything node-N's speaker exports, in Prometheus' text format.
    pub fn speaker_metrics(&self, node: &str) -> anyhow::Result<String> {
        self.exec(node, &["curl", "-s", "-m", "2", "http://127.0.0.1:7473/metrics"])
    }

    /// The value of the metric `name` (with its labels, as exported) on node-N's speaker; 0 when absent.
    pub fn speaker_metric(&self, node: &str, name: &str) -> anyhow::Result<f64> {
        let metrics = self.speaker_metrics(node)?;
        Ok(metrics
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0.0))
    }

    /// The metric `name` summed over node-1 .. node-`nodes`'s speakers.
    pub fn speakers_total(&self, nodes: usize, name: &str) -> anyhow::Result<f64> {
        (1..=nodes).map(|i| self.speaker_metric(&format!("node-{i}"), name)).sum()
    }

    /// The ids of the membership keys node-N's speaker sends with and still accepts (empty: none), from
    /// `ferrolb_speaker_membership_keys`.
    pub fn membership_key_ids(&self, node: &str) -> anyhow::Result<(String, String)> {
        let metrics = self.speaker_metrics(node)?;
        let line = metrics
            .lines()
            .find(|l| l.starts_with("ferrolb_speaker_membership_keys{"))
            .with_context(|| format!("{node}'s speaker exports no membership_keys"))?;
        let label = |name: &str| {
            line.split(&format!("{name}=\"")).nth(1).and_then(|rest| rest.split('"').next()).map(str::to_owned)
        };
        Ok((label("sending").context("no sending label")?, label("accepting").context("no accepting label")?))
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the lab's kube-apiserver, to play an API outage.
    pub fn freeze_api_server(&self, frozen: bool) -> anyhow::Result<()> {
        let pid = std::fs::read_to_string(self.dir.join("control-plane/kube-apiserver.pid"))?;
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, pid.trim()]).status()?;
        anyhow::ensure!(status.success(), "kill {signal} {} failed", pid.trim());
        Ok(())
    }

    /// `ferrolb status` against the lab, as an operator runs it: its output, failing if it fails.
    pub fn ferrolb_status(&self) -> anyhow::Result<String> {
        let output =
            Command::new(ferrolb_binary()?).args(["status", "--kubeconfig"]).arg(self.kubeconfig()).output()?;
        anyhow::ensure!(output.status.success(), "ferrolb status failed: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs helm against the lab (`hack/lab helm ARGS...`) and returns stdout; fails with stderr.
    pub fn helm(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["helm"];
        all.extend_from_slice(args);
        self.lab(&all)
    }

    /// helm against the lab, returning its raw output (for expected failures).
    pub fn helm_raw(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new(repo_root().join("hack/lab"))
            .arg("--dir")
            .arg(&self.dir)
            .arg("helm")
            .args(args)
            .output()
            .context("running hack/lab helm")
    }

    /// The host pids of pod `pod`'s processes whose command name is `comm` (to read `/proc/PID/status`).
    pub fn pids(&self, pod: &str, comm: &str) -> anyhow::Result<Vec<u32>> {
        self.lab(&["pid", pod, comm])?.lines().map(|l| l.trim().parse().context("a pid")).collect()
    }

    /// ferrolb's pods of `component` (`speaker`, `controller`) as (pod, node), sorted by node.
    pub fn ferrolb_pods(&self, component: &str) -> anyhow::Result<Vec<(String, String)>> {
        let out = self.kubectl(&[
            "get",
            "pods",
            "-n",
            "ferrolb-system",
            "-l",
            &format!("app.kubernetes.io/component={component}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
        ])?;
        let mut pods: Vec<(String, String)> =
            out.lines().filter_map(|l| l.split_once(' ').map(|(p, n)| (p.to_owned(), n.to_owned()))).collect();
        pods.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(pods)
    }

    /// Checks a [`Lab::probe_while`] report of a handover: no new connection may fail, except that up to
    /// `handovers` of them may be reset (ECONNRESET) once connected, one per change of path at most.
    ///
    /// Why those: a connection whose handshake straddles the switch sends its SYN to the old node and its
    /// final ACK to the new one (the client learnt the new MAC, or the router the new next hop, in between).
    /// The new node's conntrack picks the ACK up mid-stream and kube-proxy DNATs it to a pod of its own
    /// choosing, which answers an ACK for a connection it never saw with a reset. That is kube-proxy's state
    /// per node, not a gap in the announcement: a probe attempt that times out, is refused or is
    /// unreachable, or more resets than path changes, still fail the check.
    pub fn assert_handover_lost_nothing(report: &serde_json::Value, handovers: u64, what: &str) {
        let failures = report["failures"].as_u64().unwrap_or(u64::MAX);
        let resets = report["errors"]["ECONNRESET"].as_u64().unwrap_or(0);
        assert!(
            failures == resets && resets <= handovers,
            "new connections failed {what} (at most {handovers} reset mid-handshake allowed): {report}"
        );
    }

    /// Runs the client's connection probe (a new TCP connection to `ip:port` every 10 ms), calls `act` once
    /// connections flow, and lets the probe run for at least `min_seconds` and until one second after `act`
    /// returns (10 minutes at most); returns the probe's JSON report (`failures`, `max_gap_ms`,
    /// `last_second_ok`, ...).
    pub async fn probe_while(
        &self,
        ip: &str,
        port: u16,
        min_seconds: u64,
        act: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<serde_json::Value> {
        let port = port.to_string();
        let probe =
            ClientProbe::start(self, "the probe's first connection", "connect-probe.py", &[ip, &port, "600", "10"])
                .await?;
        let began = std::time::Instant::now();
        let acted = act();
        // The probe's run length, not synchronisation: the window in which the event's effect is watched.
        let window = std::time::Duration::from_secs(min_seconds).saturating_sub(began.elapsed());
        tokio::time::sleep(window.saturating_sub(std::time::Duration::from_secs(1))).await;
        let report = probe.finish().await;
        acted?;
        report
    }

    /// The lab's directory (state, logs; `hack/lab --dir`).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The lab's admin kubeconfig.
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

/// node-N's address on the lab's LAN, as hack/lab numbers it: 198.51.100.(10+N), or 2001:db8:100::(10+N).
pub fn node_address(node: &str, v6: bool) -> String {
    let n: u32 =
        node.strip_prefix("node-").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{node} is not node-N"));
    if v6 { format!("2001:db8:100::{}", 10 + n) } else { format!("198.51.100.{}", 10 + n) }
}

/// One of hack/lab.d's probes running on the lab's client: it touches a start file once it runs, stops when a
/// stop file appears and prints one JSON report.
pub struct ClientProbe {
    child: std::process::Child,
    stop: PathBuf,
}

impl ClientProbe {
    /// Starts `python3 hack/lab.d/SCRIPT ARGS... --start-file F --stop-file G` on the client and returns once
    /// it has started (`what` names the wait).
    async fn start(lab: &Lab, what: &str, script: &str, args: &[&str]) -> anyhow::Result<ClientProbe> {
        let script = repo_root().join("hack/lab.d").join(script);
        let flag = std::env::temp_dir().join(format!(
            "ferrolb-probe-{}-{}",
            std::process::id(),
            crate::control_plane::unique()
        ));
        let (start, stop) = (flag.with_extension("start"), flag.with_extension("stop"));
        let mut command = vec!["python3", script.to_str().context("utf-8 path")?];
        command.extend_from_slice(args);
        command.extend_from_slice(&["--start-file", start.to_str().context("utf-8 path")?]);
        command.extend_from_slice(&["--stop-file", stop.to_str().context("utf-8 path")?]);
        let mut child = lab.spawn_exec("client", &command)?;
        let started =
            crate::wait_for(what, std::time::Duration::from_secs(30), || async { Ok(start.exists().then_some(())) })
                .await;
        if let Err(e) = started {
            let _ = child.kill();
            let output = child.wait_with_output()?;
            bail!(
                "{e:#}; {} printed {:?}, stderr {:?}",
                script.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let _ = std::fs::remove_file(&start);
        Ok(ClientProbe { child, stop })
    }

    /// Stops the probe and returns its report.
    pub async fn finish(self) -> anyhow::Result<serde_json::Value> {
        std::fs::write(&self.stop, b"")?;
        let child = self.child;
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        let _ = std::fs::remove_file(&self.stop);
        serde_json::from_slice(&output.stdout).map_err(|e| {
            anyhow::anyhow!(
                "the probe printed {:?} ({e}); stderr {:?}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }
}
