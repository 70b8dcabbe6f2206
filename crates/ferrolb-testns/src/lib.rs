//! Network namespaces for the crates' own tests with real packets: [`Netns`] creates one (deleted on drop,
//! also when a test panics), wires it to another with a veth pair, runs commands and closures inside it, and
//! [`NsRuntime`] runs a tokio runtime on a thread inside it, so sockets its tasks open belong there.
//!
//! Test support only: never a dependency of a shipped crate. Needs root, and says so when it is missing.

#![forbid(unsafe_code)]

use std::fs::File;
use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, setns};

/// Fails the calling test with a message unless it runs as root.
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} needs root (network namespaces); run the suite as root, as CI does"
    );
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name under `/run/netns`.
    pub name: String,
}

impl Netns {
    /// A new namespace named after `tag`, the process and a counter, with `lo` up.
    pub fn new(tag: &str) -> Netns {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!("flb-t-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        ip(&["netns", "add", &name]);
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Runs `ip` inside the namespace and returns its output; panics with stderr on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Runs `program` inside the namespace (with `ip netns exec`) and returns its stdout; panics on failure.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program, args).output().expect("run a program in the namespace");
        assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The hardware address of `dev` inside the namespace.
    pub fn mac(&self, dev: &str) -> [u8; 6] {
        let text = self.run("cat", &[&format!("/sys/class/net/{dev}/address")]);
        let bytes: Vec<u8> = text.trim().split(':').map(|b| u8::from_str_radix(b, 16).expect("hex")).collect();
        bytes.try_into().expect("six bytes")
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]).args(args);
        command
    }

    /// Joins this namespace to `other` with a veth pair: `here` in this one, `there` in the other, both up
    /// with the given addresses (CIDR notation; IPv6 ones without duplicate address detection).
    pub fn link(&self, here: &str, here_addresses: &[&str], other: &Netns, there: &str, there_addresses: &[&str]) {
        ip(&["link", "add", here, "netns", &self.name, "type", "veth", "peer", "name", there, "netns", &other.name]);
        for (netns, dev, addresses) in [(self, here, here_addresses), (other, there, there_addresses)] {
            for address in addresses {
                if address.contains(':') {
                    netns.ip(&["addr", "add", address, "dev", dev, "nodad"]);
                } else {
                    netns.ip(&["addr", "add", address, "dev", dev]);
                }
            }
            netns.ip(&["link", "set", dev, "up"]);
        }
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    setns(File::open(path).expect("open namespace"), CloneFlags::CLONE_NEWNET).expect("setns");
                    f()
                })
                .join()
                .expect("thread in namespace")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Runs `ip` and returns its output; panics with stderr on failure.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A single-threaded tokio runtime on a thread inside a namespace: every task spawned on it runs there.
#[derive(Debug)]
pub struct NsRuntime {
    /// Spawns tasks inside the namespace.
    pub handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    /// Starts the runtime's thread inside `netns`.
    pub fn new(netns: &Netns) -> NsRuntime {
        let path = format!("/run/netns/{}", netns.name);
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            setns(File::open(path).expect("open namespace"), CloneFlags::CLONE_NEWNET).expect("setns");
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            handle_tx.send(runtime.handle().clone()).expect("send handle");
            let _ = runtime.block_on(stopped);
        });
        let handle = handle_rx.recv().expect("runtime handle");
        NsRuntime { handle, stop: Some(stop), thread: Some(thread) }
    }

    /// Runs `future` in the namespace and waits for it.
    pub fn run<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        futures::executor::block_on(self.handle.spawn(future)).expect("task in namespace")
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
