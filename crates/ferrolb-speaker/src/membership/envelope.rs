//! The authenticated envelope around every membership datagram.
//!
//! Speakers share a key (from a Secret); each datagram carries an HMAC-SHA256 tag over a version byte, a send
//! time and the payload. Without the key nobody can join, refute or forge a death; the send time bounds how
//! long a captured datagram can be replayed. Pure: the caller passes the clock in.
//!
//! Layout: `b"FLB"` · version `1` · send time (u64 big-endian, ms since the Unix epoch) · tag (32 bytes) ·
//! payload.

use ring::hmac;

const MAGIC: &[u8; 4] = b"FLB\x01";
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + 8 + TAG_LEN;

/// How far a datagram's send time may be from the receiver's clock. Nodes of one cluster keep their clocks
/// within seconds (certificates and tokens need it); a wide window keeps a skewed clock from splitting the
/// membership while still bounding replays.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The shared membership key.
#[derive(Clone)]
pub struct MembershipKey(hmac::Key);

impl std::fmt::Debug for MembershipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MembershipKey(..)")
    }
}

/// Why a key is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key is too short to be a secret.
    #[error("the membership key has {0} bytes; it needs at least {MIN_KEY_LEN} (e.g. `openssl rand -base64 32`)")]
    TooShort(usize),
}

impl KeyError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            KeyError::TooShort(_) => "key_too_short",
        }
    }
}

impl MembershipKey {
    /// A key from the Secret's bytes; surrounding whitespace (a trailing newline in a file) is ignored.
    pub fn from_bytes(bytes: &[u8]) -> Result<MembershipKey, KeyError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort(trimmed.len()));
        }
        Ok(MembershipKey(hmac::Key::new(hmac::HMAC_SHA256, trimmed)))
    }
}

/// Why a datagram is refused; `label` names it in metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than the header, or not our magic and version.
    #[error("not a ferrolb membership datagram")]
    NotOurs,
    /// The tag does not match: a different key, or tampered.
    #[error("the authentication tag does not match (wrong key or forged)")]
    BadTag,
    /// Authentic but sent too long ago (or too far in the future): a replay or a badly skewed clock.
    #[error("sent {0} ms away from this node's clock")]
    Stale(u64),
}

impl OpenError {
    /// A static metric label.
    pub fn label(&self) -> &'static str {
        match self {
            OpenError::NotOurs => "not_ours",
            OpenError::BadTag => "bad_tag",
            OpenError::Stale(_) => "stale",
        }
    }
}

/// Wraps `payload` for sending at `now_ms`.
pub fn seal(key: &MembershipKey, now_ms: u64, payload: &[u8]) -> Vec<u8> {
    let time = now_ms.to_be_bytes();
    let mut ctx = hmac::Context::with_key(&key.0);
    ctx.update(MAGIC);
    ctx.update(&time);
    ctx.update(payload);
    let tag = ctx.sign();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&time);
    out.extend_from_slice(tag.as_ref());
    out.extend_from_slice(payload);
    out
}

/// Checks a received datagram at `now_ms` and returns its payload.
pub fn open<'a>(key: &MembershipKey, now_ms: u64, datagram: &'a [u8]) -> Result<&'a [u8], OpenError> {
    if datagram.len() < HEADER_LEN || !datagram.starts_with(MAGIC) {
        return Err(OpenError::NotOurs);
    }
    let (time, rest) = datagram[MAGIC.len()..].split_at(8);
    let (tag, payload) = rest.split_at(TAG_LEN);
    let mut signed = Vec::with_capacity(MAGIC.len() + 8 + payload.len());
    signed.extend_from_slice(MAGIC);
    signed.extend_from_slice(time);
    signed.extend_from_slice(payload);
    hmac::verify(&key.0, &signed, tag).map_err(|_| OpenError::BadTag)?;
    let sent = u64::from_be_bytes(time.try_into().map_err(|_| OpenError::NotOurs)?);
    let skew = now_ms.abs_diff(sent);
    if skew > MAX_CLOCK_SKEW_MS {
        return Err(OpenError::Stale(skew));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> MembershipKey {
        MembershipKey::from_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn a_sealed_datagram_opens_with_the_same_key() {
        let k = key("0123456789abcdef0123");
        let sealed = seal(&k, 1_000_000, b"hello");
        assert_eq!(open(&k, 1_000_500, &sealed), Ok(&b"hello"[..]));
    }

    #[test]
    fn another_key_or_a_flipped_bit_is_refused() {
        let sealed = seal(&key("0123456789abcdef0123"), 1_000_000, b"member x is down");
        assert_eq!(open(&key("0123456789abcdef0124"), 1_000_000, &sealed), Err(OpenError::BadTag));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open(&key("0123456789abcdef0123"), 1_000_000, &bad).is_err(), "bit flip at {i} accepted");
        }
    }

    #[test]
    fn old_datagrams_are_refused() {
        let k = key("0123456789abcdef0123");
        let sealed = seal(&k, 1_000_000, b"x");
        assert_eq!(open(&k, 1_000_000 + MAX_CLOCK_SKEW_MS + 1, &sealed), Err(OpenError::Stale(MAX_CLOCK_SKEW_MS + 1)));
        assert!(open(&k, 1_000_000 - 1000, &sealed).is_ok(), "a slightly fast sender is fine");
    }

    #[test]
    fn short_keys_and_foreign_datagrams_are_refused() {
        assert_eq!(MembershipKey::from_bytes(b"short\n").unwrap_err(), KeyError::TooShort(5));
        assert!(MembershipKey::from_bytes(b"  0123456789abcdef\n").is_ok());
        let k = key("0123456789abcdef0123");
        assert_eq!(open(&k, 0, b"FLB"), Err(OpenError::NotOurs));
        assert_eq!(open(&k, 0, &[0u8; 100]), Err(OpenError::NotOurs));
    }
}
