//! Real routers for the speaker's tests, in network namespaces: FRR (zebra with bgpd and/or bfdd) and BIRD 2,
//! started as child processes and killed on drop. Test support only.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_testns::Netns;

pub const NODE_V4: &str = "198.51.100.11";
pub const NODE_V6: &str = "2001:db8:100::11";
pub const ROUTER_V4: &str = "198.51.100.1";
pub const ROUTER_V6: &str = "2001:db8:100::1";
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// === the routers ===

/// A router process (or two) in the router namespace, killed on drop.
pub struct Router {
    /// The router's namespace.
    pub netns: Netns,
    /// Its configuration and logs.
    pub dir: PathBuf,
    children: Vec<Child>,
    /// FRR's path space (`-N`), for vtysh; BIRD's control socket.
    pub handle: String,
}

impl Drop for Router {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if !self.handle.ends_with(".ctl") {
            let _ = std::fs::remove_dir_all(format!("/var/run/frr/{}", self.handle));
        }
    }
}

pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrolb-bgp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    // FRR drops to its own user; it must read its configuration and write its logs here.
    let _ = Command::new("chown").args(["-R", "frr:frr"]).arg(&dir).status();
    dir
}

/// Starts zebra and the given FRR daemons (name and configuration) in `netns`, and waits until zebra sees
/// the namespace's `eth0` up (bgpd and bfdd need it before they take a session on it).
pub fn start_frr(netns: Netns, daemons: &[(&str, String)]) -> Router {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let handle = format!("flbt{}-{n}", std::process::id());
    let dir = scratch(&handle);
    let run = PathBuf::from(format!("/var/run/frr/{handle}"));
    std::fs::create_dir_all(&run).expect("FRR run dir");
    let _ = Command::new("chown").args(["frr:frr"]).arg(&run).status();
    let mut all = vec![("zebra", "hostname router\n".to_owned())];
    all.extend(daemons.iter().map(|(d, c)| (*d, c.clone())));
    for (daemon, config) in &all {
        std::fs::write(dir.join(format!("{daemon}.conf")), config).expect("FRR configuration");
    }
    let _ = Command::new("chown").args(["-R", "frr:frr"]).arg(&dir).status();
    let mut children = Vec::new();
    for (daemon, _) in &all {
        let child = netns
            .command(
                &format!("/usr/lib/frr/{daemon}"),
                &[
                    "-N",
                    &handle,
                    "-f",
                    &dir.join(format!("{daemon}.conf")).to_string_lossy(),
                    "-i",
                    &run.join(format!("{daemon}.pid")).to_string_lossy(),
                    "--log",
                    &format!("file:{}", dir.join(format!("{daemon}.log")).display()),
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start FRR (apt-get install frr)");
        children.push(child);
        let vty = run.join(format!("{daemon}.vty"));
        wait_for(&format!("{daemon}'s vty socket"), || vty.exists().then_some(()));
    }
    let router = Router { netns, dir, children, handle };
    wait_for("zebra to see eth0 up", || {
        (router.vtysh("show interface eth0 json")["eth0"]["operationalStatus"] == "up").then_some(())
    });
    router
}

/// FRR as a top-of-rack router: AS 64513, peering with the node in AS `node_asn`, ECMP on, and routes of its
/// own (with communities) that it announces to the node.
pub fn frr(netns: Netns, node_asn: u32) -> Router {
    frr_with(netns, node_asn, None)
}

/// [`frr`] with the session to the node signed with TCP MD5 (`neighbor ... password`).
pub fn frr_with_password(netns: Netns, node_asn: u32, password: &str) -> Router {
    frr_with(netns, node_asn, Some(password))
}

fn frr_with(netns: Netns, node_asn: u32, password: Option<&str>) -> Router {
    let password = password.map(|p| format!(" neighbor {NODE_V4} password {p}\n")).unwrap_or_default();
    // Datacenter defaults: no 30 s advertisement interval towards external peers.
    let bgpd = format!(
        "frr defaults datacenter
hostname router
router bgp 64513
 bgp router-id {ROUTER_V4}
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor {NODE_V4} remote-as {node_asn}
 neighbor {NODE_V4} timers 3 9
 neighbor {NODE_V4} timers connect 1
{password} address-family ipv4 unicast
  neighbor {NODE_V4} activate
  neighbor {NODE_V4} send-community all
  maximum-paths 8
 exit-address-family
 address-family ipv6 unicast
  neighbor {NODE_V4} activate
  neighbor {NODE_V4} send-community all
  maximum-paths 8
 exit-address-family
route-map tagged permit 10
 set community 64513:7 64513:8
 set large-community 64513:1:2
"
    );
    let router = start_frr(netns, &[("bgpd", bgpd)]);
    // Routes of its own, tagged, for the node to receive (a network statement in the file can be read
    // before its route-map exists; added now, it takes).
    for (family, network) in [("ipv4", "203.0.113.0/24"), ("ipv6", "2001:db8:ffff::/48")] {
        router.configure_bgp(&[
            &format!("address-family {family} unicast"),
            &format!("network {network} route-map tagged"),
        ]);
    }
    router
}

/// bfdd's configuration: one peer, the node, transmit and receive every `interval_ms`, multiplier `mult`.
fn bfdd_conf(interval_ms: u32, mult: u8) -> String {
    format!(
        "bfd
 peer {NODE_V4} local-address {ROUTER_V4}
  receive-interval {interval_ms}
  transmit-interval {interval_ms}
  detect-multiplier {mult}
 !
!
"
    )
}

/// FRR's bfdd peering with the node: transmit and receive every `interval_ms`, multiplier `mult`.
pub fn frr_bfd(netns: Netns, interval_ms: u32, mult: u8) -> Router {
    start_frr(netns, &[("bfdd", bfdd_conf(interval_ms, mult))])
}

/// FRR with bgpd guarded by bfdd: AS 64513 peering with the node in AS 64512 with a long hold time (30 s
/// keepalive, 90 s hold), so that only BFD can end the session quickly.
pub fn frr_bgp_bfd(netns: Netns, interval_ms: u32, mult: u8) -> Router {
    let bgpd = format!(
        "frr defaults datacenter
hostname router
router bgp 64513
 bgp router-id {ROUTER_V4}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor {NODE_V4} remote-as 64512
 neighbor {NODE_V4} timers 30 90
 neighbor {NODE_V4} timers connect 1
 neighbor {NODE_V4} bfd
 address-family ipv4 unicast
  neighbor {NODE_V4} activate
 exit-address-family
"
    );
    start_frr(netns, &[("bfdd", bfdd_conf(interval_ms, mult)), ("bgpd", bgpd)])
}

impl Router {
    /// Kills one daemon (by name), as a crash would.
    pub fn kill(&mut self, daemon: &str) {
        let pid = std::fs::read_to_string(format!("/var/run/frr/{}/{daemon}.pid", self.handle)).expect("pid file");
        let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    }

    /// Runs configuration commands under `router bgp 64513`.
    pub fn configure_bgp(&self, commands: &[&str]) {
        let mut args = vec!["-N", &self.handle, "-c", "configure terminal", "-c", "router bgp 64513"];
        for command in commands {
            args.extend(["-c", command]);
        }
        let out = Command::new("vtysh").args(&args).output().expect("vtysh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Runs a vtysh command and returns its JSON output (Null when there is none).
    pub fn vtysh(&self, command: &str) -> serde_json::Value {
        let out = Command::new("vtysh").args(["-N", &self.handle, "-c", command]).output().expect("vtysh");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The router's kernel routes for `prefix`.
    pub fn kernel_route(&self, prefix: &str) -> String {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        self.netns.ip(&[family, "route", "show", prefix])
    }

    /// Runs a birdc command.
    pub fn birdc(&self, command: &str) -> String {
        let out = Command::new("birdc").args(["-s", &self.handle]).args(command.split(' ')).output().expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// BIRD 2 as the router: AS 64513, passive (ferrolb's speaker connects), importing everything.
pub fn bird(netns: Netns) -> Router {
    let dir = scratch(&format!("bird-{}", netns.name));
    let socket = dir.join("bird.ctl").to_string_lossy().into_owned();
    let conf = format!(
        "router id {ROUTER_V4};
protocol device {{}}
protocol bgp node1 {{
  local {ROUTER_V4} as 64513;
  neighbor {NODE_V4} as 64512;
  passive on;
  hold time 9;
  error wait time 1, 5;
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}
"
    );
    let conf_path = dir.join("bird.conf");
    std::fs::write(&conf_path, conf).expect("bird.conf");
    let child = netns
        .command("bird", &["-f", "-c", &conf_path.to_string_lossy(), "-s", &socket])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start BIRD (apt-get install bird2)");
    let ctl = PathBuf::from(&socket);
    wait_for("BIRD's control socket", || ctl.exists().then_some(()));
    Router { netns, dir, children: vec![child], handle: socket }
}
