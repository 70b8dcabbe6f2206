//! `ferrolb migrate-from-metallb` as a user runs it: the real binary, its exit status, stdout and stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../hack/lab.d/metallb-sample.yaml")
}

fn migrate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("migrate-from-metallb")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn sample_prints_what_converted_and_exits_2_for_the_echo_mode_profile() {
    let file = sample();
    let file = file.to_str().unwrap();
    let output = migrate(&[file], "");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [format!(
            "{file}: BFDProfile/echo: not converted: echo mode is not implemented by ferrolb's BFD (asynchronous mode only); drop echoMode to convert"
        )]
    );
    assert!(stdout.starts_with("# Converted from MetalLB"), "{stdout}");
    assert!(stdout.contains("metallb.universe.tf/"));
    assert_eq!(stdout.matches("apiVersion: ferrolb.io/v1alpha1").count(), 7, "{stdout}");
    assert!(stdout.contains("64500:666"), "the community alias is written out: {stdout}");
    assert!(!stdout.contains("namespace:"), "{stdout}");
}

#[test]
fn everything_converted_exits_0_and_stdin_works() {
    let yaml =
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/30]}\n";
    let output = migrate(&["-"], yaml);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty());
    assert!(String::from_utf8(output.stdout).unwrap().contains("kind: IPAddressPool"));
}

#[test]
fn invalid_yaml_exits_1_naming_file_and_document() {
    let output = migrate(&["-"], "kind: L2Advertisement\n---\nkind: [unclosed\n");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stdin: document 2: invalid YAML: "), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing is printed when an input is not YAML");
}

#[test]
fn missing_file_exits_1() {
    let output = migrate(&["/nonexistent/metallb.yaml"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8(output.stderr).unwrap().contains("reading /nonexistent/metallb.yaml"));
}
