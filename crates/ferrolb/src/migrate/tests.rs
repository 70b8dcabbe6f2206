use ferrolb_api::k8s::ResourceExt;
use ferrolb_api::{IPAddressPool, L2Advertisement, selector_from_k8s};

use super::*;

const SAMPLE: &str = include_str!("../../../../hack/lab.d/metallb-sample.yaml");

fn run(yaml: &str) -> Conversion {
    convert(&parse_documents(yaml).expect("valid YAML"))
}

fn pools(conversion: &Conversion) -> Vec<&IPAddressPool> {
    conversion
        .objects
        .iter()
        .filter_map(|c| match &c.object {
            Object::Pool(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn l2s(conversion: &Conversion) -> Vec<&L2Advertisement> {
    conversion
        .objects
        .iter()
        .filter_map(|c| match &c.object {
            Object::L2Advertisement(l) => Some(l),
            _ => None,
        })
        .collect()
}

fn problem_lines(conversion: &Conversion) -> Vec<String> {
    conversion.problems.iter().map(ToString::to_string).collect()
}

/// Every converted object must be accepted by ferrolb's own Rust-side parsing: the controller's pool
/// conversion (address entries and selectors) and the shared selector rule for L2Advertisements.
fn assert_ferrolb_accepts(conversion: &Conversion) {
    for pool in pools(conversion) {
        ferrolb_controller::pool_from_resource(pool)
            .unwrap_or_else(|e| panic!("ferrolb refuses pool {}: {e}", pool.name_any()));
        for entry in &pool.spec.addresses {
            assert!(!entry.contains(' '), "{entry:?} has spaces the CRD's CEL rules would refuse");
            assert!(entry.len() <= MAX_ENTRY_LEN);
        }
        assert!(pool.spec.addresses.len() <= MAX_ADDRESSES);
        assert!(pool.metadata.namespace.is_none());
    }
    for l2 in l2s(conversion) {
        for selector in l2.spec.ip_address_pool_selectors.iter().chain(&l2.spec.node_selectors) {
            selector_from_k8s(selector).unwrap();
        }
        assert!(l2.metadata.namespace.is_none());
    }
}

#[test]
fn pool_with_ranges_cidrs_and_service_allocation() {
    let conversion = run(r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: prod, namespace: metallb-system, labels: {tier: prod}, annotations: {a: b}, uid: x}
spec:
  addresses: ["198.51.100.0/26", " 198.51.100.100 - 198.51.100.120 ", "2001:DB8::/120", "192.0.2.7/32"]
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 5
    namespaces: [shop]
    namespaceSelectors: [{matchLabels: {team: web}}]
    serviceSelectors: [{matchExpressions: [{key: exposure, operator: In, values: [public]}]}]
"#);
    assert_eq!(problem_lines(&conversion), Vec::<String>::new());
    let [pool] = pools(&conversion)[..] else { panic!("one pool expected") };
    assert_eq!(pool.name_any(), "prod");
    assert_eq!(pool.metadata.namespace, None);
    assert_eq!(pool.metadata.annotations, None);
    assert_eq!(pool.labels().get("tier").map(String::as_str), Some("prod"));
    assert_eq!(
        pool.spec.addresses,
        ["198.51.100.0/26", "198.51.100.100-198.51.100.120", "2001:db8::/120", "192.0.2.7/32"]
    );
    assert!(!pool.spec.auto_assign);
    assert!(pool.spec.avoid_buggy_ips);
    let allocation = pool.spec.service_allocation.as_ref().unwrap();
    assert_eq!(allocation.priority, 5);
    assert_eq!(allocation.namespaces, ["shop"]);
    assert_eq!(allocation.namespace_selectors.len(), 1);
    assert_eq!(allocation.service_selectors[0].match_expressions.as_ref().unwrap()[0].key, "exposure");
    assert!(conversion.objects[0].notes.is_empty());
    assert_ferrolb_accepts(&conversion);
}

#[test]
fn pool_defaults_match_metallb() {
    let conversion = run(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n  addresses: [10.0.0.0/30]\n",
    );
    let [pool] = pools(&conversion)[..] else { panic!("one pool expected") };
    assert!(pool.spec.auto_assign, "MetalLB's autoAssign defaults to true");
    assert!(!pool.spec.avoid_buggy_ips);
    assert_eq!(pool.spec.service_allocation, None);
}

#[test]
fn cidr_with_host_bits_is_masked_like_metallb_and_noted() {
    let conversion = run(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n  addresses: [198.51.100.5/24]\n",
    );
    let [pool] = pools(&conversion)[..] else { panic!("one pool expected") };
    assert_eq!(pool.spec.addresses, ["198.51.100.0/24"]);
    assert_eq!(conversion.objects[0].notes.len(), 1);
    assert!(conversion.objects[0].notes[0].contains("198.51.100.0/24"));
    assert_ferrolb_accepts(&conversion);
}

#[test]
fn normalise_address_table() {
    let cases = [
        ("198.51.100.0/24", Some("198.51.100.0/24")),
        ("198.51.100.1-198.51.100.9", Some("198.51.100.1-198.51.100.9")),
        ("198.51.100.1 - 198.51.100.9", Some("198.51.100.1-198.51.100.9")),
        ("2001:db8::1 -2001:db8::ff", Some("2001:db8::1-2001:db8::ff")),
        ("2001:db8:0:0::/64", Some("2001:db8::/64")),
        ("0.0.0.0/0", Some("0.0.0.0/0")),
        ("198.51.100.9-198.51.100.1", None),
        ("198.51.100.1-2001:db8::1", None),
        ("198.51.100.0/33", None),
        ("198.51.100.0", None),
        ("banana", None),
    ];
    for (entry, expected) in cases {
        assert_eq!(normalise_entry(entry).ok().map(|(text, _)| text).as_deref(), expected, "{entry:?}");
    }
}

#[test]
fn invalid_and_too_many_addresses_are_reported() {
    let many: Vec<String> = (0..33).map(|i| format!("\"10.0.{i}.0/24\"")).collect();
    let yaml = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: bad}}\nspec:\n  addresses: [10.0.0.9-10.0.0.1]\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: big}}\nspec:\n  addresses: [{}]\n",
        many.join(", ")
    );
    let conversion = run(&yaml);
    assert!(conversion.objects.is_empty());
    let lines = problem_lines(&conversion);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("IPAddressPool/bad: not converted: address \"10.0.0.9-10.0.0.1\""), "{lines:?}");
    assert_eq!(conversion.problems[1].reason, Reason::TooManyAddresses(33));
}

#[test]
fn pool_without_addresses_is_reported() {
    let conversion =
        run("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: e}\nspec: {addresses: []}\n");
    assert_eq!(
        problem_lines(&conversion),
        ["IPAddressPool/e: not converted: no addresses; a ferrolb pool needs at least one"]
    );
}

#[test]
fn l2advertisement_with_selectors_and_interfaces() {
    let conversion = run(r#"
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: edge, namespace: metallb-system}
spec:
  ipAddressPools: [prod]
  ipAddressPoolSelectors: [{matchLabels: {tier: prod}}]
  nodeSelectors: [{matchExpressions: [{key: edge, operator: Exists}]}]
  interfaces: [eth0, eth1]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: all, namespace: metallb-system}
"#);
    assert_eq!(problem_lines(&conversion), Vec::<String>::new());
    let [edge, all] = l2s(&conversion)[..] else { panic!("two L2Advertisements expected") };
    assert_eq!(edge.name_any(), "edge");
    assert_eq!(edge.spec.ip_address_pools, ["prod"]);
    assert_eq!(edge.spec.ip_address_pool_selectors.len(), 1);
    assert_eq!(edge.spec.node_selectors[0].match_expressions.as_ref().unwrap()[0].operator, "Exists");
    assert_eq!(edge.spec.interfaces, ["eth0", "eth1"]);
    assert_eq!(all.spec, L2AdvertisementSpec::default());
    assert_ferrolb_accepts(&conversion);
}

#[test]
fn invalid_selector_operator_is_reported() {
    let conversion = run(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: x}\nspec:\n  nodeSelectors: [{matchExpressions: [{key: a, operator: Gt, values: ['1']}]}]\n",
    );
    assert!(conversion.objects.is_empty());
    assert!(matches!(conversion.problems[0].reason, Reason::InvalidSelector(_)), "{:?}", conversion.problems);
}

#[test]
fn bgp_peers_and_advertisements_convert_with_community_aliases_written_out() {
    let conversion = run(r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1, holdTime: 9s, ebgpMultiHop: true,
       nodeSelectors: [{matchLabels: {rack: a}}]}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities, namespace: metallb-system}
spec:
  communities:
  - {name: edge, value: "65000:100"}
  - {name: big, value: "large:64500:1:2"}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: adv, namespace: metallb-system}
spec: {ipAddressPools: [public], communities: [edge, big, "65000:200"], localPref: 50, aggregationLength: 24, peers: [tor]}
"#);
    assert!(conversion.problems.is_empty(), "{:?}", conversion.problems);
    let [peer, adv] = conversion.objects.as_slice() else { panic!("{:?}", conversion.objects.len()) };
    let Object::BgpPeer(peer) = &peer.object else { panic!("not a peer") };
    assert_eq!((peer.spec.my_asn, peer.spec.peer_asn, peer.spec.peer_port), (64500, 64501, 179));
    assert_eq!((peer.spec.hold_time.as_deref(), peer.spec.ebgp_multi_hop), (Some("9s"), true));
    assert_eq!(peer.metadata.namespace, None, "ferrolb's BGP objects are cluster-scoped");
    let notes = &adv.notes;
    let Object::BgpAdvertisement(adv) = &adv.object else { panic!("not an advertisement") };
    assert_eq!(adv.spec.communities, ["65000:100", "large:64500:1:2", "65000:200"]);
    assert_eq!((adv.spec.local_pref, adv.spec.aggregation_length), (Some(50), Some(24)));
    assert_eq!(notes.len(), 2, "{notes:?}");
}

#[test]
fn a_password_secret_converts_without_its_namespace_and_says_where_the_secret_goes() {
    let conversion = run(r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1, passwordSecret: {name: tor-md5, namespace: metallb-system}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: plain, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.2, password: "", passwordSecret: {}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: odd, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.3, passwordSecret: {name: k, key: pw}}
"#);
    assert_eq!(
        problem_lines(&conversion),
        ["BGPPeer/odd: not converted: spec.passwordSecret.key has no ferrolb equivalent"]
    );
    let [signed, plain] = conversion.objects.as_slice() else { panic!("{:?}", conversion.objects.len()) };
    let Object::BgpPeer(peer) = &signed.object else { panic!("not a peer") };
    let reference = peer.spec.password_secret.as_ref().expect("passwordSecret converted");
    assert_eq!((reference.name.as_str(), reference.namespace.as_deref()), ("tor-md5", None));
    assert_eq!(
        signed.notes,
        [
            "passwordSecret: ferrolb's speakers read Secret tor-md5 in ferrolb's own namespace, not in namespace metallb-system: copy it there (type kubernetes.io/basic-auth, key password) and list tor-md5 in the chart value speaker.bgpPasswordSecrets"
        ]
    );
    // What MetalLB's Go types write for a peer without a key is no key.
    let Object::BgpPeer(peer) = &plain.object else { panic!("not a peer") };
    assert_eq!(peer.spec.password_secret, None);
    assert!(plain.notes.is_empty(), "{:?}", plain.notes);
}

#[test]
fn bgp_fields_ferrolb_cannot_honour_are_listed_and_nothing_of_the_peer_is_converted() {
    let conversion = run(r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1, password: secret, vrf: red}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: adv}
spec: {communities: [nowhere]}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {echoMode: true, slowTimer: 2000}
"#);
    assert!(conversion.objects.is_empty());
    assert_eq!(
        problem_lines(&conversion),
        [
            "BGPPeer/tor: not converted: spec.password: a key in a BGPPeer can be read by anyone who may read BGPPeers; put it in a kubernetes.io/basic-auth Secret (key password) in ferrolb's namespace, name it in spec.passwordSecret and list it in the chart value speaker.bgpPasswordSecrets (spec.vrf without a ferrolb equivalent too)",
            "BGPAdvertisement/adv: not converted: invalid spec: community \"nowhere\" is neither a value (AS:value, large:a:b:c) nor an alias defined by a Community in the input",
            "BFDProfile/fast: not converted: spec.slowTimer has no ferrolb equivalent",
        ]
    );
}

#[test]
fn unknown_kinds_and_non_objects_are_reported() {
    let conversion = run(r#"
apiVersion: metallb.io/v1beta1
kind: FutureThing
metadata: {name: f}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: controller}
---
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: {name: s}
---
just a string
---
"#);
    assert!(conversion.objects.is_empty());
    assert_eq!(
        problem_lines(&conversion),
        [
            "FutureThing/f: not converted: unknown MetalLB kind metallb.io/v1beta1 FutureThing",
            "Deployment/controller: not converted: not a MetalLB configuration object (apps/v1)",
            "ServiceL2Status/s: not converted: status written by MetalLB; ferrolb records its own announcements \
             (L2Announcement)",
            "?/?: not converted: not a Kubernetes object (no apiVersion and kind)",
        ]
    );
}

#[test]
fn unknown_fields_keep_the_whole_object_out() {
    let conversion = run(r#"
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: future}
spec: {ipAddressPools: [a], someFutureField: true}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: future}
spec: {addresses: [10.0.0.0/30], serviceAllocation: {priority: 1, weights: [1]}}
"#);
    assert!(conversion.objects.is_empty());
    assert_eq!(
        problem_lines(&conversion),
        [
            "L2Advertisement/future: not converted: spec.someFutureField has no ferrolb equivalent",
            "IPAddressPool/future: not converted: spec.serviceAllocation.weights has no ferrolb equivalent",
        ]
    );
}

#[test]
fn missing_name_is_reported() {
    let conversion = run("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {namespace: x}\n");
    assert_eq!(problem_lines(&conversion), ["L2Advertisement/?: not converted: no metadata.name"]);
}

#[test]
fn kubectl_list_items_are_converted() {
    let conversion = run(r#"
apiVersion: v1
kind: List
items:
  - apiVersion: metallb.io/v1beta1
    kind: IPAddressPool
    metadata: {name: p, namespace: metallb-system, resourceVersion: "7"}
    spec: {addresses: [10.0.0.0/30]}
  - apiVersion: metallb.io/v1beta1
    kind: L2Advertisement
    metadata: {name: l}
"#);
    assert_eq!(conversion.objects.len(), 2);
    assert!(conversion.problems.is_empty());
    assert_eq!(pools(&conversion)[0].metadata.resource_version, None);
}

#[test]
fn invalid_yaml_names_the_document() {
    let yaml = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\n---\nkind: [unclosed\n";
    let error = parse_documents(yaml).unwrap_err();
    assert_eq!(error.index, 2);
    assert_eq!(error.to_string(), "document 2: invalid YAML");
}

#[test]
fn legacy_configmap_layer2_pools_convert_and_bgp_is_reported() {
    let conversion = run(r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    peers:
    - peer-address: 192.0.2.1
      peer-asn: 64501
      my-asn: 64500
    address-pools:
    - name: default
      protocol: layer2
      addresses: [198.51.100.10-198.51.100.20, 198.51.100.64/26]
      auto-assign: false
      avoid-buggy-ips: true
    - name: routed
      protocol: bgp
      addresses: [203.0.113.0/24]
"#);
    let [pool] = pools(&conversion)[..] else { panic!("one pool expected") };
    assert_eq!(pool.name_any(), "default");
    assert_eq!(pool.spec.addresses, ["198.51.100.10-198.51.100.20", "198.51.100.64/26"]);
    assert!(!pool.spec.auto_assign);
    assert!(pool.spec.avoid_buggy_ips);
    let [l2] = l2s(&conversion)[..] else { panic!("one L2Advertisement expected") };
    assert_eq!(l2.spec.ip_address_pools, ["default"]);
    assert_eq!(
        problem_lines(&conversion),
        [
            "ConfigMap/config peers: not converted: BGP in the legacy ConfigMap is not converted: upgrade MetalLB to its CRDs (0.13+) and convert those",
            "ConfigMap/config address-pools[routed]: not converted: BGP in the legacy ConfigMap is not converted: upgrade MetalLB to its CRDs (0.13+) and convert those",
        ]
    );
    assert_ferrolb_accepts(&conversion);
}

#[test]
fn unrelated_configmap_is_not_metallb() {
    let conversion = run("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {x: y}\n");
    assert!(matches!(conversion.problems[0].reason, Reason::NotMetallb { .. }), "{:?}", conversion.problems);
}

#[test]
fn sample_file_converts() {
    let conversion = run(SAMPLE);
    let names: Vec<String> = conversion
        .objects
        .iter()
        .map(|c| match &c.object {
            Object::Pool(p) => format!("IPAddressPool/{}", p.name_any()),
            Object::L2Advertisement(l) => format!("L2Advertisement/{}", l.name_any()),
            Object::BgpPeer(p) => format!("BGPPeer/{}", p.name_any()),
            Object::BgpAdvertisement(a) => format!("BGPAdvertisement/{}", a.name_any()),
            Object::BfdProfile(b) => format!("BFDProfile/{}", b.name_any()),
        })
        .collect();
    assert_eq!(
        names,
        [
            "IPAddressPool/production",
            "IPAddressPool/on-request",
            "L2Advertisement/prod-l2",
            "L2Advertisement/everywhere",
            "BGPPeer/tor",
            "BFDProfile/fast",
            "BGPAdvertisement/to-tor"
        ]
    );
    assert_eq!(
        problem_lines(&conversion),
        [
            "BFDProfile/echo: not converted: echo mode is not implemented by ferrolb's BFD (asynchronous mode only); drop echoMode to convert"
        ]
    );
    assert_eq!(pools(&conversion)[0].spec.addresses[1], "198.51.100.100-198.51.100.120");
    assert_ferrolb_accepts(&conversion);
    // The sample's profile sets both intervals; its unset multiplier keeps MetalLB's meaning, not ferrolb's
    // faster default.
    let fast = conversion.objects.iter().find_map(|c| match &c.object {
        Object::BfdProfile(b) => Some((b, &c.notes)),
        _ => None,
    });
    let (fast, notes) = fast.expect("the BFDProfile converts");
    assert_eq!(
        (fast.spec.transmit_interval, fast.spec.receive_interval, fast.spec.detect_multiplier),
        (Some(100), Some(100), Some(3))
    );
    assert_eq!(notes, &["detectMultiplier written as MetalLB's default, 3"]);
}

#[test]
fn duplicate_names_across_namespaces_and_files_are_reported() {
    let pool = |ns: &str| {
        format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: p, namespace: {ns}}}\n\
             spec: {{addresses: [10.0.0.0/30]}}\n"
        )
    };
    let l2 = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: p}\n";
    let first = run(&format!("{}---\n{}---\n{l2}", pool("a"), pool("b")));
    let second = run(&format!("{}---\n{l2}", pool("c")));
    let mut conversions = [first, second];
    remove_duplicates(&mut conversions);
    let kept: Vec<usize> = conversions.iter().map(|c| c.objects.len()).collect();
    assert_eq!(kept, [2, 0], "the first pool and the L2Advertisement (another kind) are kept");
    let reported: Vec<Vec<String>> = conversions.iter().map(problem_lines).collect();
    let duplicate = |kind: &str| {
        format!(
            "{kind}/p: not converted: another {kind} of this name was converted before (ferrolb's are cluster-scoped); rename one"
        )
    };
    assert_eq!(
        reported,
        [vec![duplicate("IPAddressPool")], vec![duplicate("IPAddressPool"), duplicate("L2Advertisement")]]
    );
}
