//! Owner selection per IP by rendezvous (highest random weight) hashing.
//!
//! The hash is a fixed function (FNV-1a folded through a SplitMix64 finaliser), not `std`'s `DefaultHasher`,
//! whose output may change between Rust releases: speakers of different builds must agree during an upgrade.

use std::net::IpAddr;

/// FNV-1a over `bytes`, then SplitMix64's finaliser to spread the bits (FNV alone clusters on short inputs).
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The weight of `node` for `ip`; the highest weight wins.
pub fn weight(node: &str, ip: IpAddr) -> u64 {
    let ip_bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    stable_hash(&[node.as_bytes(), &ip_bytes])
}

/// The node that announces `ip`, among the eligible live `candidates`: the highest weight, ties broken by
/// name. `None` when there is no candidate.
pub fn owner<'a>(ip: IpAddr, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates.into_iter().max_by(|a, b| weight(a, ip).cmp(&weight(b, ip)).then_with(|| b.cmp(a)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)) // 198.51.100.0 + i
    }

    #[test]
    fn the_hash_is_pinned() {
        // Changing the hash moves every IP during an upgrade: this value must never change.
        assert_eq!(weight("node-1", "198.51.100.192".parse().unwrap()), 0x60df_1bb0_dd70_8e29);
    }

    #[test]
    fn no_candidates_no_owner() {
        assert_eq!(owner(ip(1), []), None);
    }

    #[test]
    fn load_spreads_over_nodes() {
        let nodes = ["node-1", "node-2", "node-3", "node-4"];
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for i in 0..4000 {
            *counts.entry(owner(ip(i), nodes).unwrap()).or_default() += 1;
        }
        for node in nodes {
            let n = counts[node];
            assert!((800..1200).contains(&n), "{node} owns {n} of 4000");
        }
    }

    proptest! {
        /// Every speaker agrees, whatever order it lists the candidates in.
        #[test]
        fn order_does_not_matter(mut nodes in prop::collection::btree_set("[a-z]{1,8}", 1..8), i in 0u32..1000) {
            let list: Vec<String> = nodes.iter().cloned().collect();
            let forward = owner(ip(i), list.iter().map(String::as_str)).map(str::to_owned);
            let backward = owner(ip(i), list.iter().rev().map(String::as_str)).map(str::to_owned);
            prop_assert_eq!(&forward, &backward);
            nodes.clear();
        }

        /// A node leaving moves only the IPs it owned; a node joining takes IPs only for itself.
        #[test]
        fn minimal_movement(nodes in prop::collection::btree_set("[a-z]{1,8}", 2..8), leaver in 0usize..8) {
            let all: Vec<&str> = nodes.iter().map(String::as_str).collect();
            let gone = all[leaver % all.len()];
            let rest: Vec<&str> = all.iter().copied().filter(|n| *n != gone).collect();
            for i in 0..200 {
                let before = owner(ip(i), all.iter().copied()).unwrap();
                let after = owner(ip(i), rest.iter().copied()).unwrap();
                if before != gone {
                    prop_assert_eq!(before, after);
                }
            }
        }
    }
}
