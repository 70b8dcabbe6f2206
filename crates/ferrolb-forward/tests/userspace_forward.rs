//! The userspace forward path with real packets: a "node" and a "client" network namespace joined by a veth
//! pair, the client routing the VIPs via the node, echo servers on the node's address standing in for the
//! NodePort, and the forwarder running inside the node namespace (on a thread that entered it).
//!
//! Needs root (namespaces, policy rules, transparent sockets): without it every test fails and says so.
//! Waits poll a condition with a deadline; the only fixed windows are where the point is that something
//! does not arrive (no ARP reply, no connection on another port).

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;

use std::time::{Duration, Instant};

use ferrolb_forward::userspace::rules::{REFUSE_PRIORITY, RELAY_PRIORITY, RELAY_TABLE};
use ferrolb_forward::userspace::{Limits, Relay, UserspaceForwarder, proxy_protocol};
use ferrolb_forward::{Frontend, Protocol};
use ferrolb_testns::{Netns, NsRuntime, require_root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

const NODE_V4: &str = "198.51.100.1";
const CLIENT_V4: &str = "198.51.100.2";
const NODE_V6: &str = "2001:db8:100::1";
const CLIENT_V6: &str = "2001:db8:100::2";
const VIP_V4: &str = "203.0.113.10";
const VIP_V6: &str = "2001:db8:300::10";
const TIMEOUT: Duration = Duration::from_secs(5);

// === topology ===

/// The node (with its runtime and the forwarder) and the client.
struct Lab {
    node_rt: NsRuntime,
    forwarder: Arc<Mutex<UserspaceForwarder>>,
    client: Netns,
    node: Netns,
}

impl Lab {
    fn new(limits: Limits) -> Lab {
        require_root("the userspace forward tests (network namespaces, policy rules, transparent sockets)");
        let node = Netns::new("node");
        let client = Netns::new("client");
        node.link(
            "veth0",
            &[&format!("{NODE_V4}/24"), &format!("{NODE_V6}/64")],
            &client,
            "veth0",
            &[&format!("{CLIENT_V4}/24"), &format!("{CLIENT_V6}/64")],
        );
        client.ip(&["route", "add", &format!("{VIP_V4}/32"), "via", NODE_V4]);
        client.ip(&["-6", "route", "add", &format!("{VIP_V6}/128"), "via", NODE_V6]);
        // The node's default route leads back to the client, as a node's leads to the router that sent it
        // the VIP's traffic: forwarding anything for the VIP would loop.
        node.ip(&["route", "add", "default", "via", CLIENT_V4]);
        node.ip(&["-6", "route", "add", "default", "via", CLIENT_V6]);
        // A Kubernetes node forwards: the VIP's other ports must still never be forwarded back out.
        node.within(|| {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding");
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1").expect("enable forwarding");
        });
        let node_rt = NsRuntime::new(&node);
        let forwarder = Arc::new(Mutex::new(node_rt.run(async move { UserspaceForwarder::new(limits) })));
        Lab { node_rt, forwarder, client, node }
    }

    fn set(&self, relays: Vec<Relay>) {
        let forwarder = self.forwarder.clone();
        let failed = self.node_rt.run(async move { forwarder.lock().await.set(&relays).await });
        assert!(failed.is_empty(), "frontends failed: {failed:?}");
    }

    fn set_refusing(&self, relays: Vec<Relay>, refused: &[&str]) {
        let forwarder = self.forwarder.clone();
        let refused = refused.iter().map(|ip| ip.parse().expect("ip")).collect();
        let failed = self.node_rt.run(async move { forwarder.lock().await.set_refusing(&relays, &refused).await });
        assert!(failed.is_empty(), "frontends failed: {failed:?}");
    }

    fn clear(&self) {
        let forwarder = self.forwarder.clone();
        self.node_rt.run(async move { forwarder.lock().await.clear().await });
    }

    fn stats(&self) -> ferrolb_forward::userspace::StatsSnapshot {
        let forwarder = self.forwarder.clone();
        self.node_rt.run(async move { forwarder.lock().await.stats().snapshot() })
    }

    /// A TCP echo server on the node at `address`; each reply is prefixed with `tag`.
    fn tcp_echo(&self, address: SocketAddr, tag: &'static [u8]) {
        let listener =
            self.node_rt.run(async move { tokio::net::TcpListener::bind(address).await.expect("bind echo") });
        self.node_rt.handle.spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                        let mut reply = tag.to_vec();
                        reply.extend_from_slice(&buffer[..n]);
                        if stream.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
    }

    /// A UDP echo server on the node at `address`.
    fn udp_echo(&self, address: SocketAddr) {
        self.udp_tagged_echo(address, b"");
    }

    /// A UDP echo server on the node at `address`; each reply is prefixed with `tag`.
    fn udp_tagged_echo(&self, address: SocketAddr, tag: &'static [u8]) {
        let socket = self.node_rt.run(async move { tokio::net::UdpSocket::bind(address).await.expect("bind echo") });
        self.node_rt.handle.spawn(async move {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
                let mut reply = tag.to_vec();
                reply.extend_from_slice(&buffer[..n]);
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }

    fn connect(&self, address: SocketAddr) -> std::io::Result<TcpStream> {
        self.client.within(|| {
            let stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            Ok(stream)
        })
    }

    fn udp_client(&self, family: &SocketAddr) -> UdpSocket {
        let any: SocketAddr = if family.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("any");
        self.client.within(|| {
            let socket = UdpSocket::bind(any).expect("bind client");
            socket.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            socket
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let forwarder = self.forwarder.clone();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.node_rt.run(async move { forwarder.lock().await.clear().await });
        }));
    }
}

// === helpers ===

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("address"), port)
}

fn relay(protocol: Protocol, vip: &str, port: u16, backend: SocketAddr) -> Relay {
    relay_to(protocol, vip, port, &[backend])
}

fn relay_to(protocol: Protocol, vip: &str, port: u16, backends: &[SocketAddr]) -> Relay {
    let frontend = Frontend { ip: vip.parse().expect("vip"), protocol, port };
    Relay { frontend, backends: backends.to_vec(), proxy_protocol: false }
}

/// Sends `message` and reads the echo (with the server's tag) back.
fn echo(stream: &mut TcpStream, message: &[u8], tag: &[u8]) {
    stream.write_all(message).expect("write");
    let mut reply = vec![0u8; tag.len() + message.len()];
    stream.read_exact(&mut reply).expect("read echo");
    assert_eq!(&reply[..tag.len()], tag);
    assert_eq!(&reply[tag.len()..], message);
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether connecting to `address` from the client fails (refused, unreachable or nothing within a second).
fn unreachable(lab: &Lab, address: SocketAddr) -> bool {
    lab.client.within(|| TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err())
}

// === tests ===

#[test]
fn tcp_and_udp_reach_the_backend_through_the_vip_over_ipv4_and_ipv6() {
    let lab = Lab::new(Limits::RECOMMENDED);
    for node in [NODE_V4, NODE_V6] {
        lab.tcp_echo(addr(node, 30080), b"");
        lab.udp_echo(addr(node, 30053));
    }
    lab.set(vec![
        relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30080)),
        relay(Protocol::Tcp, VIP_V6, 80, addr(NODE_V6, 30080)),
        relay(Protocol::Udp, VIP_V4, 53, addr(NODE_V4, 30053)),
        relay(Protocol::Udp, VIP_V6, 53, addr(NODE_V6, 30053)),
    ]);
    for vip in [VIP_V4, VIP_V6] {
        let mut stream = lab.connect(addr(vip, 80)).expect("connect through the VIP");
        echo(&mut stream, b"hello", b"");
        // A large transfer, then half-close: the echo of everything still arrives, then end-of-file.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut reader = stream.try_clone().expect("clone");
        let expected = big.clone();
        let read = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).expect("read to end");
            got
        });
        stream.write_all(&big).expect("write big");
        stream.shutdown(Shutdown::Write).expect("half-close");
        assert_eq!(read.join().expect("reader"), expected, "bytes through {vip}");

        let client = lab.udp_client(&addr(vip, 53));
        client.send_to(b"ping", addr(vip, 53)).expect("send");
        let mut buffer = [0u8; 64];
        let (n, from) = client.recv_from(&mut buffer).expect("udp echo through the VIP");
        assert_eq!(&buffer[..n], b"ping");
        assert_eq!(from, addr(vip, 53), "the reply comes from the VIP");
    }
    let stats = lab.stats();
    assert_eq!(stats.tcp_total, 2);
    assert_eq!(stats.udp_flows_total, 2);
}

#[test]
fn the_backend_sees_the_client_in_a_proxy_protocol_header() {
    let lab = Lab::new(Limits::RECOMMENDED);
    lab.tcp_echo(addr(NODE_V4, 30080), b"");
    lab.tcp_echo(addr(NODE_V6, 30080), b"");
    lab.udp_echo(addr(NODE_V4, 30053));
    let mut relays = vec![
        relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30080)),
        relay(Protocol::Tcp, VIP_V6, 443, addr(NODE_V6, 30080)),
        relay(Protocol::Udp, VIP_V4, 53, addr(NODE_V4, 30053)),
    ];
    for relay in &mut relays {
        relay.proxy_protocol = true;
    }
    lab.set(relays);
    for vip in [addr(VIP_V4, 80), addr(VIP_V6, 443)] {
        let mut stream = lab.connect(vip).expect("connect");
        let header = proxy_protocol::header(Protocol::Tcp, stream.local_addr().expect("local"), vip);
        // The echo server returns what it received: the header first, then the data.
        echo(&mut stream, b"data", &header);
    }
    let client = lab.udp_client(&addr(VIP_V4, 53));
    // Connected, so its local address names the client's own address as the header must.
    lab.client.within(|| client.connect(addr(VIP_V4, 53))).expect("connect");
    client.send(b"query").expect("send");
    let header = proxy_protocol::header(Protocol::Udp, client.local_addr().expect("local"), addr(VIP_V4, 53));
    let mut buffer = [0u8; 256];
    let n = client.recv(&mut buffer).expect("udp echo");
    assert_eq!(&buffer[..header.len()], &header[..]);
    assert_eq!(&buffer[header.len()..n], b"query");
}

#[test]
fn other_ports_of_the_vip_are_refused_and_the_kernel_answers_no_arp_for_it() {
    let lab = Lab::new(Limits::RECOMMENDED);
    lab.tcp_echo(addr(NODE_V4, 30080), b"");
    // A host process listening on every address (IPv4 and IPv6), on a port no frontend relays.
    lab.tcp_echo(addr("::", 8080), b"");
    lab.set(vec![
        relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30080)),
        relay(Protocol::Tcp, VIP_V6, 80, addr(NODE_V6, 30080)),
    ]);
    let node_mac = lab.client.within(|| arp_reply(NODE_V4.parse().expect("node")));
    assert!(node_mac.is_some(), "control: the node answers ARP for its own address");
    assert_eq!(
        lab.client.within(|| arp_reply(VIP_V4.parse().expect("vip"))),
        None,
        "the kernel answered ARP for the VIP"
    );

    assert!(lab.connect(addr(VIP_V4, 80)).is_ok(), "the relayed port works");
    assert!(lab.connect(addr(NODE_V4, 8080)).is_ok(), "control: the wildcard listener works on the node's address");
    for vip in [VIP_V4, VIP_V6] {
        assert_refused(&lab, addr(vip, 8080));
    }
}

#[test]
fn an_owned_vip_with_nothing_relayed_is_refused_on_every_port() {
    let lab = Lab::new(Limits::RECOMMENDED);
    lab.tcp_echo(addr("::", 8080), b"");
    // What the speaker asks for when it owns a VIP whose only Service it cannot relay (source ranges).
    lab.set_refusing(vec![], &[VIP_V4, VIP_V6]);
    assert!(lab.connect(addr(NODE_V4, 8080)).is_ok(), "control: the wildcard listener works on the node's address");
    for vip in [VIP_V4, VIP_V6] {
        assert_refused(&lab, addr(vip, 8080));
    }
    lab.clear();
    assert!(our_rules(&lab.node).is_empty(), "clear left rules behind");
}

/// A connection from the client to `address` is neither delivered to a host listener nor forwarded (which
/// would loop until it timed out): the node refuses it at once with an ICMP error.
fn assert_refused(lab: &Lab, address: SocketAddr) {
    match lab.client.within(|| TcpStream::connect_timeout(&address, Duration::from_secs(2))) {
        Ok(_) => panic!("{address} reached a host listener"),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::HostUnreachable | ErrorKind::PermissionDenied),
            "{address} was not refused by the node: {e}"
        ),
    }
}

/// Sends an ARP request for `target` on the client's veth and returns the replier's MAC, if any replies
/// within a second.
fn arp_reply(target: Ipv4Addr) -> Option<[u8; 6]> {
    let interface = pnet_datalink::interfaces().into_iter().find(|i| i.name == "veth0").expect("veth0");
    let mac = interface.mac.expect("mac").octets();
    let config = pnet_datalink::Config { read_timeout: Some(Duration::from_millis(100)), ..Default::default() };
    let pnet_datalink::Channel::Ethernet(mut tx, mut rx) = pnet_datalink::channel(&interface, config).expect("channel")
    else {
        panic!("not an ethernet channel");
    };
    let client: Ipv4Addr = CLIENT_V4.parse().expect("client");
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&client.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    tx.send_to(&frame, None).expect("send").expect("sent");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let Ok(frame) = rx.next() else { continue };
        let is_reply = frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 2];
        if is_reply && frame[28..32] == target.octets() {
            return Some(frame[22..28].try_into().expect("mac"));
        }
    }
    None
}

#[test]
fn clear_removes_every_rule_and_route_and_set_is_idempotent() {
    let lab = Lab::new(Limits::RECOMMENDED);
    lab.tcp_echo(addr(NODE_V4, 30080), b"");
    // A rule a crashed run left behind.
    lab.node.ip(&[
        "rule",
        "add",
        "pref",
        &REFUSE_PRIORITY.to_string(),
        "to",
        "203.0.113.99",
        "prohibit",
        "protocol",
        "245",
    ]);
    let relays = vec![
        relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30080)),
        relay(Protocol::Udp, VIP_V6, 53, addr(NODE_V6, 30053)),
    ];
    lab.set(relays.clone());
    let rules = our_rules(&lab.node);
    assert_eq!(rules.len(), 4, "one relay rule per frontend, one refuse rule per VIP: {rules:?}");
    assert!(!rules.iter().any(|rule| rule.contains("203.0.113.99")), "the stale rule is gone: {rules:?}");
    lab.set(relays);
    assert_eq!(our_rules(&lab.node), rules, "setting the same relays again changes nothing");
    assert!(lab.connect(addr(VIP_V4, 80)).is_ok());

    lab.clear();
    assert_eq!(our_rules(&lab.node), Vec::<String>::new());
    for family in ["-4", "-6"] {
        let routes = lab.node.ip(&[family, "route", "show", "table", &RELAY_TABLE.to_string()]);
        assert_eq!(routes.trim(), "", "routes left in the relay table");
    }
    assert!(unreachable(&lab, addr(VIP_V4, 80)), "the VIP is still reachable after clear");
}

/// Our rules (by priority), IPv4 and IPv6, as `ip rule` prints them.
fn our_rules(node: &Netns) -> Vec<String> {
    let priorities = [format!("{RELAY_PRIORITY}:"), format!("{REFUSE_PRIORITY}:")];
    let mut rules: Vec<String> = ["-4", "-6"]
        .iter()
        .flat_map(|family| node.ip(&[family, "rule", "show"]).lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| priorities.iter().any(|p| line.starts_with(p.as_str())))
        .collect();
    rules.sort();
    rules
}

#[test]
fn changing_other_frontends_leaves_established_connections_alone() {
    let lab = Lab::new(Limits::RECOMMENDED);
    lab.tcp_echo(addr(NODE_V4, 30080), b"one:");
    lab.tcp_echo(addr(NODE_V4, 30081), b"two:");
    lab.set(vec![
        relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30080)),
        relay(Protocol::Tcp, VIP_V4, 81, addr(NODE_V4, 30080)),
    ]);
    let mut established = lab.connect(addr(VIP_V4, 80)).expect("connect");
    echo(&mut established, b"before", b"one:");

    // Port 81 goes away; port 80 now points to another backend.
    lab.set(vec![relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30081))]);
    echo(&mut established, b"after", b"one:");
    assert!(unreachable(&lab, addr(VIP_V4, 81)), "the removed frontend still answers");
    let mut fresh = lab.connect(addr(VIP_V4, 80)).expect("connect again");
    echo(&mut fresh, b"new", b"two:");
}

#[test]
fn new_connections_take_the_endpoints_in_turn_and_none_is_refused() {
    let lab = Lab::new(Limits::RECOMMENDED);
    lab.tcp_echo(addr(NODE_V4, 30080), b"one:");
    lab.tcp_echo(addr(NODE_V4, 30081), b"two:");
    lab.set(vec![relay_to(Protocol::Tcp, VIP_V4, 80, &[addr(NODE_V4, 30080), addr(NODE_V4, 30081)])]);
    for tag in [b"one:", b"two:", b"one:", b"two:"] {
        let mut stream = lab.connect(addr(VIP_V4, 80)).expect("connect");
        echo(&mut stream, b"hello", tag);
    }

    // No endpoint: the connection is accepted and reset at once, never left hanging.
    lab.set(vec![relay_to(Protocol::Tcp, VIP_V4, 80, &[])]);
    let mut stream = lab.connect(addr(VIP_V4, 80)).expect("connect");
    let mut buffer = [0u8; 8];
    let read = stream.write_all(b"hello").and_then(|()| stream.read(&mut buffer));
    let closed = match &read {
        Ok(n) => *n == 0,
        Err(e) => matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
    };
    assert!(closed, "a connection to a Service without endpoints was not closed at once: {read:?}");
}

#[test]
fn a_udp_flow_whose_endpoint_left_moves_to_a_current_one() {
    let lab = Lab::new(Limits::RECOMMENDED);
    lab.udp_tagged_echo(addr(NODE_V4, 30053), b"one:");
    lab.udp_tagged_echo(addr(NODE_V4, 30054), b"two:");
    lab.set(vec![relay_to(Protocol::Udp, VIP_V4, 53, &[addr(NODE_V4, 30053), addr(NODE_V4, 30054)])]);
    let vip = addr(VIP_V4, 53);
    let client = lab.udp_client(&vip);
    let mut buffer = [0u8; 16];
    let mut ask = |message: &[u8]| {
        client.send_to(message, vip).expect("send");
        let n = client.recv(&mut buffer).expect("echo");
        buffer[..n].to_vec()
    };
    assert_eq!(ask(b"a"), b"one:a", "the first flow goes to the first endpoint");
    assert_eq!(ask(b"b"), b"one:b", "a flow stays on its endpoint");

    // The first endpoint leaves (its pod died): the same client's next datagram reaches the other.
    lab.set(vec![relay_to(Protocol::Udp, VIP_V4, 53, &[addr(NODE_V4, 30054)])]);
    wait_for("the flow to move", || ask(b"c") == b"two:c");
    assert_eq!(lab.stats().udp_flows_active, 1);
}

#[test]
fn udp_flows_close_after_being_idle_and_the_oldest_makes_room() {
    let limits = Limits { udp_idle: Duration::from_millis(300), max_udp_flows: 2, ..Limits::RECOMMENDED };
    let lab = Lab::new(limits);
    lab.udp_echo(addr(NODE_V4, 30053));
    lab.set(vec![relay(Protocol::Udp, VIP_V4, 53, addr(NODE_V4, 30053))]);
    let vip = addr(VIP_V4, 53);
    let clients: Vec<UdpSocket> = (0..3).map(|_| lab.udp_client(&vip)).collect();
    let mut buffer = [0u8; 16];
    for client in &clients[..2] {
        client.send_to(b"x", vip).expect("send");
        client.recv(&mut buffer).expect("echo");
    }
    assert_eq!(lab.stats().udp_flows_active, 2);
    clients[2].send_to(b"x", vip).expect("send");
    clients[2].recv(&mut buffer).expect("echo for the third client");
    let stats = lab.stats();
    assert_eq!((stats.udp_flows_active, stats.udp_flows_evicted), (2, 1));
    wait_for("idle flows to close", || lab.stats().udp_flows_active == 0);
    // A client whose flow closed simply gets a new one.
    clients[0].send_to(b"y", vip).expect("send");
    clients[0].recv(&mut buffer).expect("echo after expiry");
    assert_eq!(lab.stats().udp_flows_total, 4);
}

#[test]
fn connections_over_the_limit_are_closed_and_counted() {
    let limits = Limits { max_tcp_connections: 1, ..Limits::RECOMMENDED };
    let lab = Lab::new(limits);
    lab.tcp_echo(addr(NODE_V4, 30080), b"");
    lab.set(vec![relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30080))]);
    let mut first = lab.connect(addr(VIP_V4, 80)).expect("connect");
    echo(&mut first, b"held", b"");
    // The handshake completes before the relay decides; its reset may reach the client before connect(2)
    // returns, so a reset from connect counts as closed too.
    let closed = match lab.connect(addr(VIP_V4, 80)) {
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(mut second) => {
            let mut buffer = [0u8; 8];
            match second.read(&mut buffer) {
                Ok(0) => true,
                Err(e) => e.kind() == ErrorKind::ConnectionReset,
                Ok(_) => false,
            }
        }
    };
    assert!(closed, "the connection over the limit was relayed");
    assert_eq!(lab.stats().refused_over_limit, 1);
    drop(first);
    wait_for("the first connection to end", || lab.stats().tcp_active == 0);
    let mut third = lab.connect(addr(VIP_V4, 80)).expect("connect after the first closed");
    echo(&mut third, b"again", b"");
}

#[test]
fn a_client_that_vanishes_frees_its_connection_slot() {
    let limits = Limits { tcp_keepalive: Duration::from_secs(1), ..Limits::RECOMMENDED };
    let lab = Lab::new(limits);
    lab.tcp_echo(addr(NODE_V4, 30080), b"");
    lab.set(vec![relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30080))]);
    let mut held = lab.connect(addr(VIP_V4, 80)).expect("connect");
    echo(&mut held, b"held", b"");
    assert_eq!(lab.stats().tcp_active, 1);
    // The client goes away without a word (its link goes down), leaving an idle connection behind.
    lab.client.ip(&["link", "set", "veth0", "down"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while lab.stats().tcp_active != 0 {
        assert!(Instant::now() < deadline, "the relay still holds the vanished client's connection after 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn frontends_that_cannot_listen_are_reported() {
    let lab = Lab::new(Limits::RECOMMENDED);
    // The node itself already uses the port on the VIP's address (through a transparent bind of its own).
    let vip: IpAddr = VIP_V4.parse().expect("vip");
    let holder = lab.node.within(move || {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        socket.set_ip_transparent_v4(true).expect("transparent");
        socket.bind(&SocketAddr::new(vip, 80).into()).expect("bind");
        socket.listen(1).expect("listen");
        socket
    });
    let forwarder = lab.forwarder.clone();
    let wanted = vec![relay(Protocol::Tcp, VIP_V4, 80, addr(NODE_V4, 30080))];
    let failed = lab.node_rt.run(async move { forwarder.lock().await.set(&wanted).await });
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].1.label(), "listen");
    // The VIP is still refused on every port, and nothing relays port 80.
    let rules = our_rules(&lab.node);
    assert_eq!(rules.len(), 1, "only the refuse rule: {rules:?}");
    drop(holder);
}
