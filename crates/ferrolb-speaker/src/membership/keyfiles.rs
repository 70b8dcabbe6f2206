//! The membership keys as files: the key a speaker sends with and the one before it, both mounted from the
//! membership Secret. The kubelet updates a mounted Secret in place, so the speaker reads the files again
//! every few seconds and hands a changed [`Keyring`] to the running membership: rotating the key restarts no
//! speaker and moves no IP.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

    /// Reads the files every [`RELOAD_EVERY`] and calls `changed` with each ring that differs from the one in
    /// use (`current` at first). A read that fails is reported once and the ring in use kept, so a Secret
    /// being replaced never stops the membership. Never returns.
    pub async fn follow(self, mut current: Keyring, changed: impl Fn(Keyring) + Send) {
        let mut every = tokio::time::interval(RELOAD_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing: Option<String> = None;
        loop {
            every.tick().await;
            match self.read() {
                Ok(ring) => {
                    failing = None;
                    if ring != current {
                        info!(
                            sending_with = %ring.primary().id(),
                            also_accepting = %ring.previous_id().map_or_else(|| "nothing".to_owned(), |id| id.to_string()),
                            "the membership keys changed",
                        );
                        current = ring.clone();
                        changed(ring);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    if failing.as_ref() != Some(&message) {
                        warn!(error = %message, reason = e.label(), "keeping the membership keys in use");
                        failing = Some(message);
                    }
                }
            }
        }
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
}
