//! The end-to-end harness: a real control plane per test (etcd + kube-apiserver, optionally
//! kube-controller-manager) started with `hack/control-plane`, the real `ferrolb` binary as a process, and
//! helpers to wait on conditions. Everything is torn down on drop, also when a test panics.

pub mod control_plane;
pub mod controller;
pub mod fake_clock;
pub mod kubectl;
pub mod lab;
pub mod wait;

pub use control_plane::ControlPlane;
pub use controller::{ControllerProcess, ferrolb_binary};
pub use fake_clock::FakeClock;
pub use lab::{Lab, node_address};
pub use wait::{wait_for, wait_for_blocking};

/// The lab tests' usual start: the demo pool (198.51.100.192/27) and an L2Advertisement for every node.
pub const DEMO_POOL_ON_EVERY_NODE: &str = r#"apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: demo}
spec: {addresses: [198.51.100.192/27]}
---
apiVersion: ferrolb.io/v1alpha1
kind: L2Advertisement
metadata: {name: everywhere}
spec: {}
"#;

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}
