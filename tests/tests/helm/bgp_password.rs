//! The real speaker under the chart's ServiceAccount reads a BGPPeer's `passwordSecret` by name and signs its
//! session with the key: a missing Secret is reported on the BGPSession, the key that arrives gets a
//! connection through a TCP MD5 listener that accepts only it, and a new key in the Secret gets a new
//! connection signed with that one. The key never reaches the speaker's log.
//!
//! Everything runs in a network namespace of its own (root): the control plane, the speaker (host network
//! as in the chart, here the namespace's) and the "router", a listener on the namespace's loopback.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};

use anyhow::Context;
use ferrolb_e2e::control_plane::Components;
use ferrolb_e2e::{ControlPlane, ferrolb_binary, wait_for};
use ferrolb_md5sig::{Md5Key, set_key};
use ferrolb_testns::{Netns, require_root};
use socket2::{Domain, Socket, Type};

use crate::cluster::{Reaped, SOON, free_port, install, service_account_kubeconfig};
use crate::render::NAMESPACE;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const FIRST_KEY: &str = "ferrolb-e2e-first-key";
const SECOND_KEY: &str = "ferrolb-e2e-second-key";

#[test]
fn the_speaker_signs_its_session_with_the_key_from_the_secret_it_may_read() -> anyhow::Result<()> {
    require_root("the passwordSecret test (it runs in a network namespace)");
    let netns = Netns::new("md5");
    netns.within(|| tokio::runtime::Runtime::new()?.block_on(run()))
}

async fn run() -> anyhow::Result<()> {
    let plane = ControlPlane::start(Components::ApiServer).await?;
    install(&plane, "install", &["--set", "speaker.bgpPasswordSecrets={tor-md5}"])?;
    plane.apply("apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n")?;
    let address = r#"{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}]}}"#;
    plane.kubectl(&["patch", "node", "node-1", "--subresource=status", "--type=merge", "-p", address])?;

    // The router: accepts only connections signed with the key it holds for 127.0.0.1.
    let router = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    set_key(&router, LOOPBACK, &Md5Key::new(FIRST_KEY.as_bytes())?)?;
    router.bind(&SocketAddr::new(LOOPBACK, 0).into())?;
    router.listen(8)?;
    router.set_nonblocking(true)?;
    let port = router.local_addr()?.as_socket().context("an IP listener")?.port();
    plane.apply(&format!(
        "apiVersion: ferrolb.io/v1alpha1\nkind: BGPPeer\nmetadata: {{name: tor}}\nspec:\n  myASN: 64512\n  \
         peerASN: 64513\n  peerAddress: 127.0.0.1\n  peerPort: {port}\n  connectTime: 500ms\n  \
         passwordSecret: {{name: tor-md5}}\n"
    ))?;

    let (speaker, log) = start_speaker(&plane)?;
    let session = ferrolb_api::bgpsession_name("node-1", "tor");
    wait_for("the BGPSession to say the Secret is missing", SOON, || async {
        let jsonpath = "jsonpath={.status.lastError}";
        let error = plane.kubectl(&["get", "bgpsession", &session, "-n", NAMESPACE, "-o", jsonpath]).ok();
        Ok(error.filter(|e| e == "Secret ferrolb-system/tor-md5 (passwordSecret) does not exist"))
    })
    .await?;

    // The Secret arrives: the speaker's SYN is signed with its key, or the kernel would drop it.
    let secret = |key: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: tor-md5, namespace: {NAMESPACE}}}\n\
             type: kubernetes.io/basic-auth\nstringData: {{password: {key}}}\n"
        )
    };
    plane.apply(&secret(FIRST_KEY))?;
    let first = accept(&router, "a connection signed with the first key").await?;

    // A new key: the router takes it first, then the Secret; the session restarts signed with the new key
    // (the router no longer accepts the old one).
    set_key(&router, LOOPBACK, &Md5Key::new(SECOND_KEY.as_bytes())?)?;
    plane.apply(&secret(SECOND_KEY))?;
    let _second = accept(&router, "a connection signed with the second key").await?;
    drop(first);
    drop(speaker);

    let log = std::fs::read_to_string(log)?;
    assert!(log.contains("starting speaker"), "the log is the speaker's:\n{log}");
    for key in [FIRST_KEY, SECOND_KEY] {
        assert!(!log.contains(key), "the speaker logged a key");
    }
    Ok(())
}

/// The speaker as a process in this namespace, under the chart's speaker ServiceAccount, with the Secret
/// names the installed DaemonSet passes; logs at debug level to the returned file.
fn start_speaker(plane: &ControlPlane) -> anyhow::Result<(Reaped, std::path::PathBuf)> {
    let json = plane.kubectl(&["get", "daemonset", "ferrolb-speaker", "-n", NAMESPACE, "-o", "json"])?;
    let daemonset: serde_json::Value = serde_json::from_str(&json)?;
    let args: Vec<String> =
        serde_json::from_value(daemonset["spec"]["template"]["spec"]["containers"][0]["args"].clone())?;
    let secrets = args
        .iter()
        .find(|a| a.starts_with("--bgp-password-secrets="))
        .context("the DaemonSet passes no --bgp-password-secrets")?;
    let key_file = plane.dir().join("membership.key");
    std::fs::write(&key_file, "a membership key for the test")?;
    let membership_port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
    let kubeconfig = service_account_kubeconfig(plane, "ferrolb-speaker")?;
    let log_path = plane.dir().join("logs").join("speaker.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(ferrolb_binary()?)
        .args(["speaker", "--node-name", "node-1", "--namespace", NAMESPACE, secrets])
        .args(["--membership-address", "127.0.0.1", "--membership-port", &membership_port])
        .arg(format!("--metrics-address=127.0.0.1:{}", free_port()?))
        .arg("--membership-key-file")
        .arg(&key_file)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("FERROLB_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the speaker")?;
    Ok((Reaped(child), log_path))
}

/// Waits for `router` to accept a connection; only a correctly signed SYN gets that far.
async fn accept(router: &Socket, what: &str) -> anyhow::Result<Socket> {
    wait_for(what, SOON, || async {
        match router.accept() {
            Ok((connection, _)) => Ok(Some(connection)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await
}
