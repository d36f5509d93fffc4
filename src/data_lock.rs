//! The data-path lock: one broker per `--data-path`.
//!
//! The lock is an exclusive `flock` on the data directory itself — the same lock Go nsqd
//! takes, so a Go nsqd and rnsq also keep out of each other's way. It is released by the
//! kernel when the process exits, however it exits. Who holds it is written to
//! `<data-path>/rnsq.lock` (pid and addresses) so that a refused process can name the holder
//! and `rnsq meta export` can ask the running broker.

use std::fs::{self, File, TryLockError};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable_dir;

/// The holder-information file inside the data path.
pub const HOLDER_FILE: &str = "rnsq.lock";

/// Who holds a data path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub http_address: Option<SocketAddr>,
    pub tcp_address: Option<SocketAddr>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rnsq pid {}", self.pid)?;
        if let Some(http) = self.http_address {
            write!(f, ", HTTP {http}")?;
        }
        Ok(())
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data path {path} is in use by {holder}; stop it or choose another --data-path")]
    Held { path: PathBuf, holder: String },
    #[error("data path {path} cannot be used: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DataLock {
    dir: File,
    path: PathBuf,
    /// Whether the previous holder's record was still there: it did not stop cleanly.
    after_crash: bool,
}

impl DataLock {
    /// Creates `path` if missing (durably: its entry survives a power cut) and locks it.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder when another process has it; [`LockError::Io`]
    /// when the directory cannot be created, opened or written.
    pub fn acquire(path: &Path) -> Result<DataLock, LockError> {
        let io_error = |source| LockError::Io {
            path: path.into(),
            source,
        };
        durable_dir::create_all(path).map_err(io_error)?;
        let dir = File::open(path).map_err(io_error)?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(path)
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "another process (an rnsq or a Go nsqd)".into());
                return Err(LockError::Held {
                    path: path.into(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        // A clean stop removes the record (see `Drop`); a crashed holder leaves it behind.
        let after_crash = path.join(HOLDER_FILE).exists();
        let lock = DataLock {
            dir,
            path: path.into(),
            after_crash,
        };
        // Proves the directory is writable before anything else is opened in it.
        lock.set_holder(&Holder {
            pid: std::process::id(),
            http_address: None,
            tcp_address: None,
        })
        .map_err(io_error)?;
        Ok(lock)
    }

    /// Records who holds the lock (replacing the previous record).
    pub fn set_holder(&self, holder: &Holder) -> io::Result<()> {
        let text = serde_json::to_vec(holder).map_err(io::Error::other)?;
        let tmp = self.path.join(format!("{HOLDER_FILE}.tmp"));
        fs::write(&tmp, text)?;
        fs::rename(&tmp, self.path.join(HOLDER_FILE))
    }

    /// The locked directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the previous broker on this data path did not stop cleanly (it was killed, or
    /// the machine lost power): what it wrote may still be only in the OS page cache, not on
    /// disk. A false positive (a power cut that brought a removed record back) costs only the
    /// extra fsyncs this answer asks for.
    pub fn after_crash(&self) -> bool {
        self.after_crash
    }
}

impl Drop for DataLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.path.join(HOLDER_FILE));
        let _ = self.dir.unlock();
    }
}

/// The holder recorded in `path`, if the file exists and parses.
pub fn read_holder(path: &Path) -> Option<Holder> {
    serde_json::from_slice(&fs::read(path.join(HOLDER_FILE)).ok()?).ok()
}

/// Whether some process holds `path`'s lock now, and who (as far as recorded). A missing
/// directory is not held.
pub fn probe(path: &Path) -> Result<Option<Option<Holder>>, LockError> {
    if !path.exists() {
        return Ok(None);
    }
    let dir = File::open(path).map_err(|source| LockError::Io {
        path: path.into(),
        source,
    })?;
    match dir.try_lock() {
        Ok(()) => {
            let _ = dir.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(Some(read_holder(path))),
        Err(TryLockError::Error(source)) => Err(LockError::Io {
            path: path.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let lock = DataLock::acquire(&path).unwrap();
        let http: SocketAddr = "127.0.0.1:4151".parse().unwrap();
        lock.set_holder(&Holder {
            pid: 42,
            http_address: Some(http),
            tcp_address: None,
        })
        .unwrap();
        let message = DataLock::acquire(&path).unwrap_err().to_string();
        assert!(
            message.contains("rnsq pid 42, HTTP 127.0.0.1:4151"),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert_eq!(probe(&path).unwrap().flatten().map(|h| h.pid), Some(42));
        drop(lock);
        assert!(probe(&path).unwrap().is_none());
        DataLock::acquire(&path).unwrap();
    }
}
