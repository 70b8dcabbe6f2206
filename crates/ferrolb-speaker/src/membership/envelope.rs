//! The authenticated envelope around every membership datagram.
//!
//! Speakers share a key (from a Secret); each datagram carries an HMAC-SHA256 tag over the header and the
//! payload. Without a key nobody can join, refute or forge a death; the send time bounds how long a captured
//! datagram can be replayed. Pure: the caller passes the clock in.
//!
//! Keys rotate without an outage ([`Keyring`]): a speaker holds the key it sends with and the one before it,
//! which it still accepts. The header names, by [`KeyId`], the key that sealed the datagram and the sender's
//! own sending key, so that a receiver knows which key opens it and which key the sender accepts for sure
//! ([`sealing_keys`]).
//!
//! Layout: `b"FLB"` · version `2` · send time (u64 big-endian, ms since the Unix epoch) · sealing key id (8
//! bytes) · the sender's sending key id (8 bytes) · tag (32 bytes) · payload. The tag covers everything before
//! it and the payload.

use ring::hmac;

const MAGIC: &[u8; 4] = b"FLB\x02";
const ID_LEN: usize = 8;
const TAG_LEN: usize = 32;
const SIGNED_HEADER_LEN: usize = MAGIC.len() + 8 + 2 * ID_LEN;
const HEADER_LEN: usize = SIGNED_HEADER_LEN + TAG_LEN;

/// What a key's id is derived from (an HMAC of this label under the key).
const ID_LABEL: &[u8] = b"ferrolb membership key id";

/// How far a datagram's send time may be from the receiver's clock. Nodes of one cluster keep their clocks
/// within seconds (certificates and tokens need it); a wide window keeps a skewed clock from splitting the
/// membership while still bounding replays.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// A key's public name: the first 8 bytes of an HMAC of a fixed label under the key. It tells keys apart on
/// the wire and in logs without saying anything about the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; ID_LEN]);

impl KeyId {
    /// The id as it goes on the wire.
    pub fn bytes(self) -> [u8; ID_LEN] {
        self.0
    }

    /// The id read from the wire.
    pub fn from_bytes(bytes: [u8; ID_LEN]) -> KeyId {
        KeyId(bytes)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A membership key.
#[derive(Clone)]
pub struct MembershipKey {
    key: hmac::Key,
    id: KeyId,
}

impl std::fmt::Debug for MembershipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MembershipKey({})", self.id)
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
        let key = hmac::Key::new(hmac::HMAC_SHA256, trimmed);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&hmac::sign(&key, ID_LABEL).as_ref()[..ID_LEN]);
        Ok(MembershipKey { key, id: KeyId(id) })
    }

    /// This key's public name.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The HMAC-SHA256 of `message` under this key (for what else the key signs: announced frames).
    pub(crate) fn sign(&self, message: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, message)
    }
}

/// The keys a speaker holds: the one it sends with and, during a rotation, the one before it, still
/// accepted. Two rings are equal when they hold the same keys in the same roles.
#[derive(Clone, Debug)]
pub struct Keyring {
    primary: MembershipKey,
    previous: Option<MembershipKey>,
}

impl PartialEq for Keyring {
    fn eq(&self, other: &Keyring) -> bool {
        self.primary.id == other.primary.id && self.previous_id() == other.previous_id()
    }
}

impl Eq for Keyring {}

impl Keyring {
    /// A ring that sends with `primary` and also accepts `previous` (dropped when it is the same key).
    pub fn new(primary: MembershipKey, previous: Option<MembershipKey>) -> Keyring {
        let previous = previous.filter(|p| p.id != primary.id);
        Keyring { primary, previous }
    }

    /// The key this speaker sends with.
    pub fn primary(&self) -> &MembershipKey {
        &self.primary
    }

    /// The id of the key accepted besides the primary, if any.
    pub fn previous_id(&self) -> Option<KeyId> {
        self.previous.as_ref().map(MembershipKey::id)
    }

    /// Whether the two rings hold a key in common (in any role): only then can speakers holding one and
    /// speakers holding the other still talk.
    pub fn shares_a_key_with(&self, other: &Keyring) -> bool {
        std::iter::once(&self.primary).chain(&self.previous).any(|k| other.get(k.id).is_some())
    }

    /// The key named `id`, if this ring holds it.
    pub fn get(&self, id: KeyId) -> Option<&MembershipKey> {
        std::iter::once(&self.primary).chain(&self.previous).find(|k| k.id == id)
    }
}

/// Why a datagram is refused; `label` names it in metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than the header, or not our magic and version.
    #[error("not a ferrolb membership datagram")]
    NotOurs,
    /// Sealed with a key this speaker does not hold: another cluster, or a key rotated away.
    #[error("sealed with key {0}, which this speaker does not hold")]
    UnknownKey(KeyId),
    /// The tag does not match: tampered or forged.
    #[error("the authentication tag does not match (forged or damaged)")]
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
            OpenError::UnknownKey(_) => "unknown_key",
            OpenError::BadTag => "bad_tag",
            OpenError::Stale(_) => "stale",
        }
    }
}

/// A datagram that opened.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// What the sender's membership protocol sent.
    pub payload: &'a [u8],
    /// The key that sealed it.
    pub sealed_with: KeyId,
    /// The key the sender sends with (and so surely accepts).
    pub sender_primary: KeyId,
    /// When the sender's wall clock says it sent it (ms since the Unix epoch).
    pub sent_ms: u64,
}

fn header(now_ms: u64, sealed_with: KeyId, sender_primary: KeyId) -> [u8; SIGNED_HEADER_LEN] {
    let mut h = [0u8; SIGNED_HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4..12].copy_from_slice(&now_ms.to_be_bytes());
    h[12..20].copy_from_slice(&sealed_with.0);
    h[20..28].copy_from_slice(&sender_primary.0);
    h
}

/// Wraps `payload` for sending at `now_ms`, sealed with `with` (one of `ring`'s keys, see [`sealing_keys`]).
pub fn seal(ring: &Keyring, with: &MembershipKey, now_ms: u64, payload: &[u8]) -> Vec<u8> {
    let header = header(now_ms, with.id, ring.primary.id);
    let mut ctx = hmac::Context::with_key(&with.key);
    ctx.update(&header);
    ctx.update(payload);
    let tag = ctx.sign();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(tag.as_ref());
    out.extend_from_slice(payload);
    out
}

/// Checks a received datagram at `now_ms` against the keys of `ring` and returns what it carries.
pub fn open<'a>(ring: &Keyring, now_ms: u64, datagram: &'a [u8]) -> Result<Opened<'a>, OpenError> {
    if datagram.len() < HEADER_LEN || !datagram.starts_with(MAGIC) {
        return Err(OpenError::NotOurs);
    }
    let (signed, rest) = datagram.split_at(SIGNED_HEADER_LEN);
    let (tag, payload) = rest.split_at(TAG_LEN);
    let id = |range: std::ops::Range<usize>| {
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&signed[range]);
        KeyId(id)
    };
    let sealed_with = id(12..20);
    let sender_primary = id(20..28);
    let key = ring.get(sealed_with).ok_or(OpenError::UnknownKey(sealed_with))?;
    let mut message = Vec::with_capacity(SIGNED_HEADER_LEN + payload.len());
    message.extend_from_slice(signed);
    message.extend_from_slice(payload);
    hmac::verify(&key.key, &message, tag).map_err(|_| OpenError::BadTag)?;
    let mut time = [0u8; 8];
    time.copy_from_slice(&signed[4..12]);
    let sent_ms = u64::from_be_bytes(time);
    let skew = now_ms.abs_diff(sent_ms);
    if skew > MAX_CLOCK_SKEW_MS {
        return Err(OpenError::Stale(skew));
    }
    Ok(Opened { payload, sealed_with, sender_primary, sent_ms })
}

/// The keys to seal a datagram to a peer with, given the sending key that peer last named (None: nothing
/// heard from it yet). The peer's own sending key when this ring holds it, since the peer surely accepts it;
/// otherwise one copy under each key held, so that whichever the peer accepts gets through. So during a
/// rotation a speaker that already has the new key keeps talking the old one to peers that do not, and
/// switches to the new one as each of them sends with it.
pub fn sealing_keys(ring: &Keyring, peer_primary: Option<KeyId>) -> Vec<&MembershipKey> {
    match peer_primary.and_then(|id| ring.get(id)) {
        Some(key) => vec![key],
        None => std::iter::once(&ring.primary).chain(&ring.previous).collect(),
    }
}

#[cfg(test)]
mod tests;
