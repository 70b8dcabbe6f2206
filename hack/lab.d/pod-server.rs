//! The lab's pod: HTTP on TCP 8080 and a UDP echo on 8081, on IPv4 and IPv6 (one dual-stack socket each).
//!
//! Both answer with one line, `pod=<name> client=<address the pod saw>`, so tests can tell which pod
//! answered and whether the client address survived the path. The name comes from `POD_NAME` (the lab sets
//! it from the Pod's metadata.name) or the first argument. `pod-server --pause` only waits for a signal: the
//! same image serves as the pods' sandbox (pause) image.
//!
//! Standard library only, so `rustc` builds it as one static file (hack/lab does, and caches it):
//! `rustc --edition 2024 -O -C target-feature=+crt-static -C strip=symbols pod-server.rs`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;

unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
    fn pause() -> i32;
}

/// As PID 1 of its container, the process gets no signal it has no handler for, so without this a
/// SIGTERM from the kubelet would be ignored until the grace period ends in SIGKILL.
extern "C" fn exit_now(_: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

fn main() {
    for signum in [2, 15] {
        // SAFETY: installs a handler that only calls _exit.
        unsafe { signal(signum, exit_now) };
    }
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--pause") {
        loop {
            // SAFETY: pause(2) only blocks until a signal arrives.
            unsafe { pause() };
        }
    }
    let name = std::env::var("POD_NAME").ok().or(arg).unwrap_or_else(|| "unnamed".into());
    let line = move |peer: SocketAddr| -> String {
        let ip = match peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        format!("pod={name} client={ip}\n")
    };
    let udp_line = line.clone();
    let udp = UdpSocket::bind("[::]:8081").expect("binding UDP [::]:8081");
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(udp_line(peer).as_bytes(), peer);
            }
        }
    });
    let listener = TcpListener::bind("[::]:8080").expect("binding TCP [::]:8080");
    for stream in listener.incoming().flatten() {
        let line = line.clone();
        thread::spawn(move || serve(stream, &line));
    }
}

/// Answers every request on the connection with the line, until the client closes it.
fn serve(mut stream: TcpStream, line: &dyn Fn(SocketAddr) -> String) {
    let Ok(peer) = stream.peer_addr() else { return };
    let body = line(peer);
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            pending.drain(..end + 4);
            // HTTP/1.1 keeps the connection unless asked not to; HTTP/1.0 closes it after the answer.
            let keep = head.lines().next().is_some_and(|l| l.ends_with("http/1.1")) && !head.contains("connection: close");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
                body.len(),
                if keep { "" } else { "Connection: close\r\n" }
            );
            if stream.write_all(reply.as_bytes()).is_err() || !keep {
                return;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
        if pending.len() > 65536 {
            return;
        }
    }
}
