//! The store's durability barrier: after it returns, everything sled was given before it was
//! called survives a power cut.
//!
//! sled 0.34's `flush()` is no such barrier on Linux: it writes its buffers with
//! `sync_file_range`, which neither flushes the drive's cache nor commits the file's size and
//! allocation, and sled fsyncs its file only from a background thread every 500 ms and at
//! segment boundaries. So the barrier runs sled's flush and then fsyncs what sled wrote: the
//! log file `db`, any new blob file (sled writes large values to `blobs/<lsn>` without fsync)
//! and the directories whose entries changed (sled renames snapshot files into place and
//! creates blobs without a directory fsync).
//!
//! Group commit: concurrent callers share one flush-and-fsync. A caller takes a ticket; the
//! first caller finding no sync running starts one that covers every ticket taken so far, and
//! callers whose ticket it covers return when it ends. One sync runs at a time, so a caller
//! arriving while one runs waits for the next, which then covers everything waiting.
//!
//! A failed fsync poisons the barrier for good: after a failed fsync Linux may have dropped
//! the dirty pages and a later fsync can succeed without them ("fsyncgate"), so no later
//! success could prove anything. Every later call fails until the store is reopened. A file
//! or directory that cannot be *opened* (out of descriptors, most often) poisons nothing: no
//! fsync ran, no page was dropped, and the next call's sync covers what this one could not.
//! The store's directory and its log stay open for the barrier's life, so a commit without
//! new blobs needs no new descriptor at all.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// sled's log file inside the store's directory.
const LOG_FILE: &str = "db";
/// sled's configuration file, written once when the store is created.
const CONF_FILE: &str = "conf";
/// sled's directory of values too large for the log.
const BLOB_DIR: &str = "blobs";

/// Why the files could not be made durable. Whatever was written since the last barrier that
/// succeeded may be lost at a power cut.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// An fsync failed; the barrier is poisoned until the store is reopened.
    #[error("fsync of {path} failed: {source}")]
    Sync { path: PathBuf, source: io::Error },
    /// A file or directory to fsync could not be opened or listed; nothing is poisoned, and
    /// a later call may succeed.
    #[error("cannot open {path} to fsync it: {source}")]
    Open { path: PathBuf, source: io::Error },
    /// An fsync failed earlier: nothing written since can be proven durable.
    #[error("an earlier fsync failed ({0}); restart the broker to recover")]
    Poisoned(String),
}

/// Tickets and whether a sync runs; see the module doc.
#[derive(Debug, Default)]
struct Tickets {
    /// The last ticket taken.
    taken: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// Whether a caller is running a sync now.
    running: bool,
    /// Why an fsync failed, once one has.
    poisoned: Option<String>,
    /// Syncs that completed.
    syncs: u64,
}

/// The barrier of one open store. Every method blocks on disk I/O.
#[derive(Debug)]
pub(super) struct Barrier {
    dir: PathBuf,
    /// The store's directory, held open so that its fsync needs no new descriptor.
    dir_handle: File,
    /// sled's log file, opened read-only: fsync works on any descriptor of the file.
    log: File,
    tickets: Mutex<Tickets>,
    done: Condvar,
    /// Blob files already fsynced, so that each is fsynced once.
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl Barrier {
    /// Opens the barrier of the store sled just opened at `dir`, and makes the store's files
    /// and directory entries themselves durable (sled creates them without a directory fsync),
    /// including `dir`'s own entry in its parent.
    ///
    /// # Errors
    /// [`BarrierError::Open`] when a file cannot be opened, [`BarrierError::Sync`] when one
    /// cannot be fsynced.
    pub fn open(dir: &Path) -> Result<Barrier, BarrierError> {
        let log_path = dir.join(LOG_FILE);
        let log = File::open(&log_path).map_err(open_error(&log_path))?;
        let dir_handle = File::open(dir).map_err(open_error(dir))?;
        let barrier = Barrier {
            dir: dir.into(),
            dir_handle,
            log,
            tickets: Mutex::new(Tickets::default()),
            done: Condvar::new(),
            synced_blobs: Mutex::new(HashSet::new()),
        };
        let conf = dir.join(CONF_FILE);
        match File::open(&conf) {
            Ok(file) => file.sync_all().map_err(sync_error(&conf))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(open_error(&conf)(e)),
        }
        barrier.log.sync_all().map_err(sync_error(&log_path))?;
        barrier.sync_blobs()?;
        barrier.dir_handle.sync_all().map_err(sync_error(dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(barrier)
    }

    /// Returns once everything given to sled before the call is durable: `flush` (sled's
    /// flush) and the fsyncs ran, wholly after the call began, in this call or a concurrent
    /// one.
    ///
    /// # Errors
    /// `flush`'s error, or [`BarrierError::Sync`] or [`BarrierError::Open`] from the sync this
    /// caller ran, or
    /// [`BarrierError::Poisoned`] after any fsync has failed. What the caller wrote is then in
    /// sled but may not survive a power cut.
    pub fn commit<E: From<BarrierError>>(
        &self,
        flush: impl Fn() -> Result<(), E>,
    ) -> Result<(), E> {
        let mut tickets = self.lock();
        tickets.taken += 1;
        let ticket = tickets.taken;
        loop {
            if let Some(why) = &tickets.poisoned {
                return Err(BarrierError::Poisoned(why.clone()).into());
            }
            if tickets.durable >= ticket {
                return Ok(());
            }
            if tickets.running {
                tickets = self
                    .done
                    .wait(tickets)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            tickets.running = true;
            let covers = tickets.taken;
            drop(tickets);
            let flushed = flush();
            let synced = match &flushed {
                Ok(()) => Some(self.sync_files()),
                Err(_) => None,
            };
            tickets = self.lock();
            tickets.running = false;
            match &synced {
                Some(Ok(())) => {
                    tickets.durable = covers;
                    tickets.syncs += 1;
                }
                Some(Err(e @ BarrierError::Sync { .. })) => tickets.poisoned = Some(e.to_string()),
                Some(Err(_)) => {}
                None => {}
            }
            self.done.notify_all();
            flushed?;
            synced.unwrap_or(Ok(()))?;
        }
    }

    /// How many syncs (flush and fsyncs) have completed: concurrent commits share one.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    fn lock(&self) -> MutexGuard<'_, Tickets> {
        // Every update of `Tickets` is a few assignments: a panic cannot leave it half done.
        self.tickets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// fsyncs the log file, new blobs, and the store directory (for snapshot renames).
    fn sync_files(&self) -> Result<(), BarrierError> {
        self.log
            .sync_data()
            .map_err(sync_error(&self.dir.join(LOG_FILE)))?;
        self.sync_blobs()?;
        self.dir_handle.sync_all().map_err(sync_error(&self.dir))
    }

    /// fsyncs each blob file not fsynced yet and, if there was one, the blob directory.
    fn sync_blobs(&self) -> Result<(), BarrierError> {
        let blob_dir = self.dir.join(BLOB_DIR);
        let entries = match std::fs::read_dir(&blob_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(open_error(&blob_dir)(e)),
        };
        let mut synced = self
            .synced_blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut new = false;
        for entry in entries {
            let name = entry.map_err(open_error(&blob_dir))?.file_name();
            if synced.contains(&name) {
                continue;
            }
            let path = blob_dir.join(&name);
            match File::open(&path) {
                Ok(file) => file.sync_all().map_err(sync_error(&path))?,
                // sled removed it meanwhile (a blob superseded before the flush).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(open_error(&path)(e)),
            }
            synced.insert(name);
            new = true;
        }
        if new {
            sync_dir(&blob_dir)?;
        }
        Ok(())
    }
}

/// Opens `dir` and fsyncs it: an open failure is [`BarrierError::Open`], an fsync failure
/// [`BarrierError::Sync`].
fn sync_dir(dir: &Path) -> Result<(), BarrierError> {
    File::open(dir)
        .map_err(open_error(dir))?
        .sync_all()
        .map_err(sync_error(dir))
}

fn open_error(path: &Path) -> impl Fn(io::Error) -> BarrierError + '_ {
    move |source| BarrierError::Open {
        path: path.into(),
        source,
    }
}

fn sync_error(path: &Path) -> impl Fn(io::Error) -> BarrierError + '_ {
    move |source| BarrierError::Sync {
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use BarrierError::Poisoned;

    #[test]
    fn concurrent_commits_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("s")).unwrap();
        let barrier = Arc::new(Barrier::open(&dir.path().join("s")).unwrap());
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (db, barrier, flushes) = (db.clone(), barrier.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let before = barrier.syncs();
                        db.insert(format!("{t}-{i}"), &i.to_be_bytes()).unwrap();
                        barrier
                            .commit(|| {
                                flushes.fetch_add(1, Ordering::Relaxed);
                                db.flush().map(drop).map_err(|e| Poisoned(e.to_string()))
                            })
                            .unwrap();
                        // The sync that covered this commit started after it began.
                        assert!(barrier.syncs() > before, "commit returned before a sync");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(barrier.syncs(), flushes.load(Ordering::Relaxed));
    }

    #[test]
    fn a_failed_flush_fails_only_its_caller() {
        let dir = tempfile::tempdir().unwrap();
        let _db = sled::open(dir.path().join("s")).unwrap();
        let barrier = Barrier::open(&dir.path().join("s")).unwrap();
        #[derive(Debug)]
        enum TestError {
            Flush,
            Barrier,
        }
        impl From<BarrierError> for TestError {
            fn from(_: BarrierError) -> Self {
                TestError::Barrier
            }
        }
        let failed = barrier.commit(|| Err(TestError::Flush));
        assert!(matches!(failed, Err(TestError::Flush)), "{failed:?}");
        barrier.commit(|| Ok::<(), TestError>(())).unwrap();
        assert_eq!(barrier.syncs(), 1);
    }
}
