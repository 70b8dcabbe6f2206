//! The classic BPF program the kernel runs on the speaker's packet sockets, so a thread wakes only for the
//! frames it reads instead of every frame on the interface: every ARP frame and IPv6 neighbour solicitations
//! and advertisements ([`claims`]). The responder answers the requests among them and reports the claims
//! (split memberships, foreign hosts); a conflict probe reads the answers to its probes.
//!
//! The filter is only a pre-filter: [`ferrolb_packet::parse`] still validates every frame it lets through
//! (hop limit, checksum, options). It looks at fixed offsets of an untagged Ethernet frame (the kernel hands
//! AF_PACKET sockets frames with the VLAN tag already stripped), so a neighbour solicitation behind an IPv6
//! extension header is dropped: RFC 4861 solicitations carry none in practice, and the parser rejects them too.
//! Pure data: the program is a value, tested by a small interpreter in `tests.rs`.

/// One classic BPF instruction (`struct sock_filter`): opcode, jump offsets if true / false, constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    /// The opcode (`BPF_LD | BPF_H | BPF_ABS`, ...).
    pub code: u16,
    /// Instructions to skip when a conditional jump is taken.
    pub jt: u8,
    /// Instructions to skip when a conditional jump is not taken.
    pub jf: u8,
    /// The constant operand (an offset, a value to compare, a return value).
    pub k: u32,
}

/// `BPF_LD | BPF_H | BPF_ABS`: load the big-endian 16-bit word at offset `k`.
pub const LOAD_HALF: u16 = 0x28;
/// `BPF_LD | BPF_B | BPF_ABS`: load the byte at offset `k`.
pub const LOAD_BYTE: u16 = 0x30;
/// `BPF_JMP | BPF_JEQ | BPF_K`: jump by `jt` if the accumulator equals `k`, else by `jf`.
pub const JUMP_IF_EQUAL: u16 = 0x15;
/// `BPF_RET | BPF_K`: accept `k` bytes of the frame (0 drops it).
pub const RETURN: u16 = 0x06;

/// Bytes kept of an accepted frame: all of it.
const ACCEPT: u32 = u32::MAX;

const ETHERTYPE_OFFSET: u32 = 12;
const ETHERTYPE_ARP: u32 = 0x0806;
const ETHERTYPE_IPV6: u32 = 0x86dd;
/// Ethernet header (14) + 6: the IPv6 next-header field.
const IPV6_NEXT_HEADER_OFFSET: u32 = 20;
const NEXT_HEADER_ICMPV6: u32 = 58;
/// Ethernet header (14) + fixed IPv6 header (40): the ICMPv6 type, when no extension header intervenes.
const ICMPV6_TYPE_OFFSET: u32 = 54;
const NEIGHBOR_SOLICIT: u32 = 135;
const NEIGHBOR_ADVERT: u32 = 136;

/// The filter: accept every ARP frame and ICMPv6 neighbour solicitations and advertisements (questions,
/// answers, announcements and probes), drop everything else.
pub fn claims() -> Vec<Instruction> {
    let op = |code, k| Instruction { code, jt: 0, jf: 0, k };
    let jump = |k, jt, jf| Instruction { code: JUMP_IF_EQUAL, jt, jf, k };
    vec![
        /* 0 */ op(LOAD_HALF, ETHERTYPE_OFFSET),
        /* 1 */ jump(ETHERTYPE_ARP, 6, 0), // ARP: 8 (accept), else 2
        /* 2 */ jump(ETHERTYPE_IPV6, 0, 6), // IPv6: 3, else 9 (drop)
        /* 3 */ op(LOAD_BYTE, IPV6_NEXT_HEADER_OFFSET),
        /* 4 */ jump(NEXT_HEADER_ICMPV6, 0, 4), // ICMPv6: 5, else 9
        /* 5 */ op(LOAD_BYTE, ICMPV6_TYPE_OFFSET),
        /* 6 */ jump(NEIGHBOR_SOLICIT, 1, 0), // solicitation: 8, else 7
        /* 7 */ jump(NEIGHBOR_ADVERT, 0, 1), // advertisement: 8, else 9
        /* 8 */ op(RETURN, ACCEPT),
        /* 9 */ op(RETURN, 0),
    ]
}

#[cfg(test)]
mod tests;
