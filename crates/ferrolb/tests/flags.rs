//! Extreme values of every numeric flag, given to the real binary: each is refused with a message that says
//! what is wanted (clap's exit status 2), or accepted and carried to the next step (here: reading a
//! kubeconfig that does not exist, exit status 1). No value may panic the process (exit status 101).
//! That an accepted duration can never overflow a clock is `duration.rs`'s unit test.

use std::path::PathBuf;
use std::process::Command;

/// What a flag value must lead to.
enum Expect {
    /// Refused before anything runs, with this in the message.
    Refused(&'static str),
    /// Accepted: the command goes on and fails only for the missing kubeconfig.
    Accepted,
}

fn key_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("ferrolb-flags-key-{}", std::process::id()));
    std::fs::write(&path, "0123456789abcdef0123456789abcdef").unwrap();
    path
}

fn run(subcommand: &str, extra: &[&str], key: &PathBuf) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrolb"));
    command.arg(subcommand).args(["--kubeconfig", "/nonexistent/ferrolb-test-kubeconfig"]);
    // Keep the environment from supplying values under test.
    for var in ["FERROLB_MEMBERSHIP_PORT", "FERROLB_REANNOUNCE_INTERVAL", "FERROLB_METRICS_ADDRESS", "KUBECONFIG"] {
        command.env_remove(var);
    }
    if subcommand == "speaker" {
        command.args(["--node-name", "node-1", "--membership-key-file"]).arg(key);
    }
    let output = command.args(extra).output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn check(subcommand: &str, flag: &str, value: &str, expect: &Expect, key: &PathBuf) {
    let arg = format!("{flag}={value}");
    let (code, stderr) = run(subcommand, &[&arg], key);
    assert_ne!(code, Some(101), "{subcommand} {arg} panicked: {stderr}");
    match expect {
        Expect::Refused(message) => {
            assert_eq!(code, Some(2), "{subcommand} {arg} was not refused: {stderr}");
            assert!(stderr.contains(message), "{subcommand} {arg}: {stderr:?} does not say {message:?}");
        }
        Expect::Accepted => {
            assert_eq!(code, Some(1), "{subcommand} {arg}: {stderr}");
            assert!(stderr.contains("reading kubeconfig"), "{subcommand} {arg} failed elsewhere: {stderr}");
        }
    }
}

#[test]
fn every_numeric_flag_is_refused_clearly_or_accepted_never_panics() {
    use Expect::{Accepted, Refused};
    let key = key_file();
    let cases: &[(&str, &str, &str, Expect)] = &[
        ("speaker", "--membership-port", "0", Refused("port 0 would pick a random port")),
        ("speaker", "--membership-port", "1", Accepted),
        ("speaker", "--membership-port", "65535", Accepted),
        ("speaker", "--membership-port", "65536", Refused("is not a port number")),
        ("speaker", "--membership-port", "-1", Refused("is not a port number")),
        ("speaker", "--reannounce-interval", "0", Accepted),
        ("speaker", "--reannounce-interval", "1ms", Accepted),
        ("speaker", "--reannounce-interval", "168h", Accepted),
        ("speaker", "--reannounce-interval", "169h", Refused("longer than the most this flag takes")),
        ("speaker", "--reannounce-interval", "18446744073709551615", Refused("longer than the most")),
        ("speaker", "--reannounce-interval", "18446744073709551615m", Refused("longer than the most")),
        ("speaker", "--reannounce-interval", "99999999999999999999999h", Refused("longer than the most")),
        ("speaker", "--reannounce-interval", "-5s", Refused("is not a duration")),
        ("speaker", "--reannounce-interval", "5y", Refused("unknown unit")),
        ("speaker", "--conflict-probe-time", "0", Accepted),
        ("speaker", "--conflict-probe-time", "10ms", Accepted),
        ("speaker", "--conflict-probe-time", "10s", Accepted),
        ("speaker", "--conflict-probe-time", "5ms", Refused("a probe listens 10ms to 10s")),
        ("speaker", "--conflict-probe-time", "11s", Refused("a probe listens 10ms to 10s")),
        ("speaker", "--conflict-probe-time", "18446744073709551615m", Refused("longer than the most")),
        ("speaker", "--conflict-recheck-interval", "0", Refused("zero makes no sense")),
        ("speaker", "--conflict-recheck-interval", "1ms", Accepted),
        ("speaker", "--conflict-recheck-interval", "169h", Refused("longer than the most")),
        ("speaker", "--metrics-address", "0.0.0.0:0", Accepted),
        ("speaker", "--metrics-address", "0.0.0.0:65536", Refused("invalid value")),
        ("speaker", "--membership-address", "300.1.1.1", Refused("invalid value")),
        ("controller", "--lease-duration", "0s", Refused("zero makes no sense")),
        ("controller", "--lease-duration", "500ms", Refused("whole seconds, at least 1s")),
        ("controller", "--lease-duration", "1s", Accepted),
        ("controller", "--lease-duration", "168h", Accepted),
        ("controller", "--lease-duration", "18446744073709551615m", Refused("longer than the most")),
        ("controller", "--metrics-address", "[::]:65535", Accepted),
    ];
    for (subcommand, flag, value, expect) in cases {
        check(subcommand, flag, value, expect, &key);
    }
    let _ = std::fs::remove_file(key);
}
