//! The key's rules, and real signed connections over loopback: the kernel completes a handshake only when
//! both ends hold the same key for each other's address.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::*;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// Long enough for a loopback handshake, short enough that a dropped SYN (retried after 1 s) times out.
const CONNECT: Duration = Duration::from_millis(800);

fn key(text: &str) -> Md5Key {
    Md5Key::new(text.as_bytes()).expect("a valid key")
}

#[test]
fn keys_are_one_to_eighty_bytes() {
    let cases: [(usize, Option<&str>); 5] = [
        (0, Some("a TCP MD5 key cannot be empty")),
        (1, None),
        (80, None),
        (81, Some("a TCP MD5 key is at most 80 bytes; this one is 81")),
        (300, Some("a TCP MD5 key is at most 80 bytes; this one is 300")),
    ];
    for (len, error) in cases {
        let result = Md5Key::new(&vec![b'k'; len]);
        assert_eq!(result.as_ref().err().map(ToString::to_string).as_deref(), error, "{len} bytes");
        if let Ok(k) = result {
            assert_eq!(k.as_bytes().len(), len);
        }
    }
}

#[test]
fn debug_never_shows_the_key_and_equality_compares_it() {
    let secret = key("hunter2-but-longer");
    let shown = format!("{secret:?} {:?}", Some(secret.clone()));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(shown, "Md5Key(<redacted>) Some(Md5Key(<redacted>))");
    assert_eq!(secret, key("hunter2-but-longer"));
    assert_ne!(secret, key("hunter2-but-longe"), "a prefix is another key");
    assert_ne!(key("a"), key("b"));
}

#[test]
fn the_request_carries_the_key_and_its_length() {
    let request = TcpMd5Sig::new(V4, &key("abc"));
    assert_eq!(request.key_len, 3);
    assert_eq!(&request.key[..4], b"abc\0");
    assert_eq!((request.flags, request.prefix_len, request.ifindex), (0, 0, 0));
}

/// A listener on `ip` that requires `listener_key` from `ip` (None: no key).
fn listener(ip: IpAddr, listener_key: Option<&Md5Key>) -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::for_address(SocketAddr::new(ip, 0)), Type::STREAM, None).unwrap();
    if let Some(k) = listener_key {
        set_key(&socket, ip, k).unwrap();
    }
    socket.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    socket.listen(8).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// Connects to `to` with `client_key` (None: unsigned); returns the connected socket.
fn connect(to: SocketAddr, client_key: Option<&Md5Key>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    if let Some(k) = client_key {
        set_key(&socket, to.ip(), k).unwrap();
    }
    socket.connect_timeout(&to.into(), CONNECT)?;
    Ok(socket)
}

#[test]
fn the_same_key_on_both_ends_connects_and_carries_data() {
    for ip in [V4, V6] {
        let k = key("ferrolb-test-key");
        let (server, addr) = listener(ip, Some(&k));
        let mut client = connect(addr, Some(&k)).unwrap_or_else(|e| panic!("{ip}: {e}"));
        client.write_all(b"OPEN").unwrap();
        let (accepted, _) = server.accept().unwrap();
        let mut accepted: std::net::TcpStream = accepted.into();
        let mut buf = [0u8; 4];
        accepted.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"OPEN", "{ip}");
    }
}

#[test]
fn a_wrong_or_missing_key_never_connects() {
    let k = key("the-routers-key");
    let (_server, addr) = listener(V4, Some(&k));
    let wrong = connect(addr, Some(&key("not-the-routers-key")));
    assert_eq!(wrong.err().map(|e| e.kind()), Some(io::ErrorKind::TimedOut), "a wrong key is silently dropped");
    let unsigned = connect(addr, None);
    assert_eq!(unsigned.err().map(|e| e.kind()), Some(io::ErrorKind::TimedOut), "an unsigned SYN is dropped");
    // A key the listener does not expect is dropped as well (while an unsigned SYN reaches it).
    let (_plain, plain_addr) = listener(V4, None);
    connect(plain_addr, None).expect("the control: no key on either end connects");
    let unexpected = connect(plain_addr, Some(&k));
    assert_eq!(unexpected.err().map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
}

#[test]
fn a_peer_of_the_other_family_is_refused_with_an_error() {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let err = set_key(&socket, V6, &key("k")).unwrap_err();
    assert_eq!(err.label(), "setsockopt", "{err}");
    let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    assert!(set_key(&udp, V4, &key("k")).is_err(), "not a TCP socket");
}
