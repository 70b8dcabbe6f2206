//! The kernel path's table against the real `nft` and kernel, in a namespace of its own: every rendered
//! script is accepted, a new plan replaces the old one whole, and removal leaves nothing behind.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_forward::kernel::{NftTable, render};
use ferrolb_forward::plan::Forward;
use ferrolb_forward::{Frontend, Protocol};
use ferrolb_testns::{Netns, require_root};

struct Namespace(Netns);

impl Namespace {
    fn new() -> Namespace {
        Namespace::new_named("t")
    }

    fn new_named(tag: &str) -> Namespace {
        require_root("the nftables table tests");
        Namespace(Netns::new(&format!("nft-{tag}")))
    }

    fn nft(&self) -> NftTable {
        NftTable::with_command(["ip", "netns", "exec", &self.0.name, "nft"].map(String::from).to_vec())
    }

    fn ruleset(&self) -> String {
        self.0.run("nft", &["list", "ruleset"])
    }
}

fn forward(ip: &str, protocol: Protocol, port: u16, local: bool, endpoints: &[&str]) -> Forward {
    Forward {
        frontend: Frontend { ip: ip.parse().unwrap(), protocol, port },
        service: "default/web".into(),
        local,
        endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
        proxy_protocol: false,
        source_ranges: Vec::new(),
        restricted: false,
    }
}

#[tokio::test]
async fn tables_are_accepted_replaced_whole_and_removed() {
    let ns = Namespace::new();
    let nft = ns.nft();
    assert!(!nft.present().await);
    let owned: BTreeSet<IpAddr> = ["203.0.113.10", "2001:db8:300::10"].iter().map(|s| s.parse().unwrap()).collect();
    let mut first = [
        forward("203.0.113.10", Protocol::Tcp, 80, false, &["192.0.2.5:8080", "192.0.2.70:8080"]),
        forward("203.0.113.10", Protocol::Udp, 53, false, &["192.0.2.5:8053"]),
        forward("2001:db8:300::10", Protocol::Tcp, 80, true, &["[2001:db8:200:1::5]:8080"]),
    ];
    first[0].restricted = true;
    first[0].source_ranges = vec!["198.51.100.0/24".parse().unwrap(), "192.0.2.0/26".parse().unwrap()];
    first[2].restricted = true;
    nft.apply(&render(&owned, &first)).await.expect("the first plan is accepted");
    assert!(nft.present().await);
    let listed = ns.ruleset();
    assert!(listed.contains("192.0.2.70:8080"), "{listed}");
    assert!(listed.contains("ip saddr != { 192.0.2.0/26, 198.51.100.0/24 } drop"), "{listed}");
    assert!(listed.contains("2001:db8:300::10 . tcp . 80 : goto svc2"), "{listed}");

    // The empty plan and a changed one replace the table whole: nothing of the first remains.
    nft.apply(&render(&BTreeSet::new(), &[])).await.expect("the empty plan is accepted");
    let second = [forward("203.0.113.10", Protocol::Tcp, 443, false, &["192.0.2.6:8443"])];
    let one: BTreeSet<IpAddr> = ["203.0.113.10".parse().unwrap()].into();
    nft.apply(&render(&one, &second)).await.expect("the second plan is accepted");
    let listed = ns.ruleset();
    assert!(listed.contains("192.0.2.6:8443"), "{listed}");
    assert!(!listed.contains("192.0.2.70"), "a rule of the old plan survived: {listed}");
    assert!(!listed.contains("2001:db8:300::10"), "an element of the old plan survived: {listed}");

    // Removal is complete and idempotent, and other tables are not touched.
    ns.0.run("nft", &["add", "table", "ip", "someone-else"]);
    nft.remove().await.expect("removal");
    nft.remove().await.expect("removing an absent table is fine");
    assert!(!nft.present().await);
    let listed = ns.ruleset();
    assert!(!listed.contains("ferrolb"), "{listed}");
    assert!(listed.contains("table ip someone-else"), "{listed}");
}

#[tokio::test]
async fn a_refused_script_reports_nft_s_message() {
    let ns = Namespace::new_named("bad");
    let err = ns.nft().apply("table inet ferrolb {\n\tchain x {\n\t\tbogus\n\t}\n}\n").await.unwrap_err();
    assert!(err.to_string().contains("nft refused the ruleset"), "{err}");
    assert!(err.to_string().contains("bogus"), "nft's own message is kept: {err}");
}
