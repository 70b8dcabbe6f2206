//! A wall clock a test can step for one child process: Debian's libfaketime, preloaded, reads the offset
//! from a file of the clock's own (re-read every second), and fakes only the wall clock, so the process's
//! monotonic clock stays true. That is the fault a stepped NTP correction or a wrong RTC gives a node.

use std::path::PathBuf;

/// One process's wall clock.
#[derive(Debug, Clone)]
pub struct FakeClock {
    file: PathBuf,
}

impl FakeClock {
    /// A clock read from `file`, at the true time unless the file already holds an offset.
    pub fn at(file: PathBuf) -> anyhow::Result<FakeClock> {
        if !file.exists() {
            std::fs::write(&file, "+0\n")?;
        }
        Ok(FakeClock { file })
    }

    /// The environment that runs a process on this clock.
    pub fn env(&self) -> anyhow::Result<Vec<(String, String)>> {
        let file = self.file.to_str().ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", self.file.display()))?;
        Ok([
            ("LD_PRELOAD", libfaketime()?.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", file),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("NO_FAKE_STAT", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec())
    }

    /// Steps the clock to `offset` from the true time (libfaketime's syntax: `+180`, `-180`, `+0` seconds);
    /// the process picks it up within a second.
    pub fn step(&self, offset: &str) -> anyhow::Result<()> {
        Ok(std::fs::write(&self.file, format!("{offset}\n"))?)
    }
}

/// Where Debian's libfaketime is.
fn libfaketime() -> anyhow::Result<String> {
    let found = std::fs::read_dir("/usr/lib")?
        .filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    found
        .and_then(|p| p.to_str().map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("libfaketime.so.1 not found (apt-get install faketime; hack/test does)"))
}
