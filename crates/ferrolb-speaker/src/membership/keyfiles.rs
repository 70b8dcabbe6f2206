//! The membership keys as files: the key a speaker sends with and the one before it, both mounted from the
//! membership Secret. The kubelet updates a mounted Secret in place, so the speaker reads the files again
//! every few seconds and hands a changed [`Keyring`] to the running membership: rotating the key restarts no
//! speaker and moves no IP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tracing::{info, warn};

use super::envelope::{KeyError, Keyring, MembershipKey};

/// How often the files are read again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Where the keys are.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// The key this speaker sends with.
    pub key: PathBuf,
    /// The key before it, still accepted during a rotation; a missing or empty file means none.
    pub previous: Option<PathBuf>,
}

/// Why the key files give no usable ring.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// A file could not be read.
    #[error("reading the membership key from {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file holds no usable key.
    #[error("the membership key in {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with the key.
        source: KeyError,
    },
}

impl KeyFileError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            KeyFileError::Read { .. } => "membership_key_read",
            KeyFileError::Key { .. } => "membership_key_invalid",
        }
    }
}

fn key_in(path: &Path, bytes: &[u8]) -> Result<MembershipKey, KeyFileError> {
    MembershipKey::from_bytes(bytes).map_err(|source| KeyFileError::Key { path: path.to_owned(), source })
}

impl KeyFiles {
    /// Reads both files.
    pub fn read(&self) -> Result<Keyring, KeyFileError> {
        let read =
            |path: &Path| std::fs::read(path).map_err(|source| KeyFileError::Read { path: path.to_owned(), source });
        let primary = key_in(&self.key, &read(&self.key)?)?;
        let previous = match &self.previous {
            None => None,
            Some(path) => match std::fs::read(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(KeyFileError::Read { path: path.clone(), source }),
                Ok(bytes) if bytes.trim_ascii().is_empty() => None,
                Ok(bytes) => Some(key_in(path, &bytes)?),
            },
        };
        Ok(Keyring::new(primary, previous))
    }

    /// Reads the files every [`RELOAD_EVERY`] and calls `changed` with each ring [`next`] accepts. What it
    /// refuses (an unreadable file, a bad key, a ring unrelated to the one in use) is logged once, and the
    /// unrelated rings counted in `refused`, while the ring in use stays. Never returns.
    pub async fn follow(self, mut current: Keyring, changed: impl Fn(Keyring) + Send, refused: Counter) {
        let mut every = tokio::time::interval(RELOAD_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing: Option<String> = None;
        loop {
            every.tick().await;
            match next(&current, self.read()) {
                Next::Keep => failing = None,
                Next::Change(ring) => {
                    failing = None;
                    info!(
                        sending_with = %ring.primary().id(),
                        also_accepting = %ring.previous_id().map_or_else(|| "nothing".to_owned(), |id| id.to_string()),
                        "the membership keys changed",
                    );
                    current = (*ring).clone();
                    changed(*ring);
                }
                Next::Refuse { why, reason } => {
                    if failing.as_ref() != Some(&why) {
                        if reason == UNRELATED {
                            refused.inc();
                        }
                        warn!(error = %why, reason, "keeping the membership keys in use");
                        failing = Some(why);
                    }
                }
            }
        }
    }
}

/// The `reason` of a ring refused for sharing no key with the one in use.
const UNRELATED: &str = "membership_key_unrelated";

/// What to do with what the key files hold now.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The same ring as in use.
    Keep,
    /// A new ring to hand to the membership.
    Change(Box<Keyring>),
    /// Keep the ring in use: `why` says what is wrong with the files.
    Refuse {
        /// A sentence for the log.
        why: String,
        /// A static label.
        reason: &'static str,
    },
}

/// Decides on what the files hold (`read`) given the ring in use. A ring that shares no key with the one in
/// use is refused: a Secret re-created, or re-rendered by `helm template`, with a fresh key and no
/// previousKey; speakers picking it up one by one would split the membership.
pub fn next(current: &Keyring, read: Result<Keyring, KeyFileError>) -> Next {
    match read {
        Err(e) => Next::Refuse { why: e.to_string(), reason: e.label() },
        Ok(ring) if ring == *current => Next::Keep,
        Ok(ring) if !ring.shares_a_key_with(current) => Next::Refuse {
            why: format!(
                "the key files now hold key {} and no key this speaker holds; a running membership cannot move \
                 to an unrelated key without splitting (rotate with speaker.membership.keyGeneration, which keeps \
                 the old key as previousKey, or restart every speaker)",
                ring.primary().id()
            ),
            reason: UNRELATED,
        },
        Ok(ring) => Next::Change(Box::new(ring)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_key_is_optional_and_a_bad_key_names_its_file() {
        let dir = std::env::temp_dir().join(format!("ferrolb-keyfiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        let previous = dir.join("previousKey");
        std::fs::write(&key, "the key after the rotation\n").unwrap();
        let files = KeyFiles { key: key.clone(), previous: Some(previous.clone()) };
        assert_eq!(files.read().unwrap().previous_id(), None, "no previous file: no previous key");
        std::fs::write(&previous, "").unwrap();
        assert_eq!(files.read().unwrap().previous_id(), None, "an empty previous file: no previous key");
        std::fs::write(&previous, "the key before the rotation").unwrap();
        let ring = files.read().unwrap();
        assert_eq!(ring.previous_id(), Some(MembershipKey::from_bytes(b"the key before the rotation").unwrap().id()));
        std::fs::write(&previous, "short").unwrap();
        let e = files.read().unwrap_err();
        assert!(e.to_string().contains("previousKey") && e.to_string().contains("at least 16"), "{e}");
        std::fs::remove_file(&key).unwrap();
        let e = files.read().unwrap_err();
        assert_eq!(e.label(), "membership_key_read");
        assert!(e.to_string().contains(&key.display().to_string()), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rotation_is_taken_and_an_unrelated_key_refused() {
        let k = |s: &str| MembershipKey::from_bytes(s.as_bytes()).unwrap();
        let (old, new, other) =
            ("the key before the rotation", "the key after the rotation!", "a key of another install");
        let current = Keyring::new(k(old), None);
        assert_eq!(next(&current, Ok(Keyring::new(k(old), None))), Next::Keep);
        let rotated = Keyring::new(k(new), Some(k(old)));
        assert_eq!(next(&current, Ok(rotated.clone())), Next::Change(Box::new(rotated.clone())));
        // The old key dropped later, and the next rotation: each shares a key with the ring in use.
        assert_eq!(next(&rotated, Ok(Keyring::new(k(new), None))), Next::Change(Box::new(Keyring::new(k(new), None))));
        let Next::Refuse { why, reason } = next(&current, Ok(Keyring::new(k(other), None))) else {
            panic!("an unrelated key was taken")
        };
        assert_eq!(reason, UNRELATED);
        assert!(why.contains("keyGeneration"), "{why}");
        let missing = KeyFiles { key: "/nonexistent/key".into(), previous: None }.read();
        assert!(matches!(next(&current, missing), Next::Refuse { reason: "membership_key_read", .. }));
    }
}
