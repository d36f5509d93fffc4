//! The metadata store: topics, their channels and both paused flags, in sled.
//!
//! Each topic is one key in the `topics` tree whose value holds the topic's paused flag and
//! its channels (see `migrations/README.md`). So every change — create, delete, pause or
//! unpause of a topic or a channel — is one sled transaction on one key, and [`MetaStore::apply`]
//! returns only after that transaction is durable: flushed by sled, then fsynced by the store's
//! own barrier (`barrier.rs`: sled's flush alone does not survive a power cut), with concurrent
//! changes sharing one fsync. sled is the source of truth; the
//! `nsqd.dat` beside it is an export.
//!
//! Ephemeral names are the caller's to keep out: the broker never hands them to the store.

mod barrier;
mod check;
mod import;
mod migrations;
pub(crate) mod record;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::metadata::Metadata;
use barrier::Barrier;
use record::TopicRecord;

pub use barrier::BarrierError;
pub use check::CheckReport;
pub use import::{ImportMode, ImportSummary};
pub use migrations::CURRENT_VERSION as SCHEMA_VERSION;

/// The store's directory inside the data path.
pub const STORE_DIR: &str = "meta.sled";

/// The key in the meta tree that says the first-boot import has been done.
const BOOTSTRAPPED_KEY: &[u8] = b"bootstrapped";

/// An error from sled, kept opaque so that sled's types stay inside this module.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(sled::Error);

/// Why the store could not be opened. Nothing was changed on disk, except by migration steps
/// that completed before the failing one.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the metadata store at {path}: {source}")]
    Storage { path: PathBuf, source: StorageError },
    #[error("cannot make the metadata store at {path} durable: {source}")]
    Durability { path: PathBuf, source: BarrierError },
    #[error(
        "the metadata store at {path} has schema version {found}, written by a newer rnsq; \
         this rnsq reads versions up to {supported}: run the newer rnsq, or move {path} aside"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("cannot upgrade the metadata store at {path} to schema version {version}: {reason}")]
    Migration {
        path: PathBuf,
        version: u32,
        reason: String,
    },
}

/// Why a read or a change failed. A failed change leaves the store as it was.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store I/O error: {0}")]
    Storage(#[from] StorageError),
    /// The store's files could not be made durable (an fsync failed, now or earlier).
    #[error("metadata store I/O error: {0}")]
    Durability(#[from] BarrierError),
    #[error("metadata store record of topic {topic:?} is unreadable: {reason}")]
    Corrupt { topic: String, reason: String },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Storage(StorageError(e))
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

/// One metadata change. Every change concerns exactly one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Creates the topic unless present.
    CreateTopic { topic: String },
    /// Removes the topic and all its channels, if present.
    DeleteTopic { topic: String },
    /// Sets the topic's paused flag, creating the topic if absent.
    SetTopicPaused { topic: String, paused: bool },
    /// Creates the channel (and its topic) unless present.
    CreateChannel { topic: String, channel: String },
    /// Removes the channel, if present; the topic stays.
    DeleteChannel { topic: String, channel: String },
    /// Sets the channel's paused flag, creating the channel (and topic) if absent.
    SetChannelPaused {
        topic: String,
        channel: String,
        paused: bool,
    },
}

impl Change {
    /// The topic the change concerns.
    pub fn topic(&self) -> &str {
        match self {
            Change::CreateTopic { topic }
            | Change::DeleteTopic { topic }
            | Change::SetTopicPaused { topic, .. }
            | Change::CreateChannel { topic, .. }
            | Change::DeleteChannel { topic, .. }
            | Change::SetChannelPaused { topic, .. } => topic,
        }
    }

    /// The topic's record after this change, given the record before it (`None`: absent).
    fn next(&self, current: Option<TopicRecord>) -> Option<TopicRecord> {
        match self {
            Change::CreateTopic { .. } => Some(current.unwrap_or_default()),
            Change::DeleteTopic { .. } => None,
            Change::SetTopicPaused { paused, .. } => {
                let mut record = current.unwrap_or_default();
                record.paused = *paused;
                Some(record)
            }
            Change::CreateChannel { channel, .. } => {
                let mut record = current.unwrap_or_default();
                record.add_channel(channel);
                Some(record)
            }
            Change::DeleteChannel { channel, .. } => current.map(|mut record| {
                if let Ok(at) = record.find_channel(channel) {
                    record.channels.remove(at);
                }
                record
            }),
            Change::SetChannelPaused {
                channel, paused, ..
            } => {
                let mut record = current.unwrap_or_default();
                record.add_channel(channel);
                if let Ok(at) = record.find_channel(channel) {
                    record.channels[at].paused = *paused;
                }
                Some(record)
            }
        }
    }
}

/// The open store. Cheap to share behind an `Arc`; every method blocks on disk I/O, so async
/// callers run it on a blocking thread.
pub struct MetaStore {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    topics: sled::Tree,
    barrier: Barrier,
    /// Held while a change is written (not while it is flushed) and while a snapshot is read,
    /// so that a snapshot never sees half of a multi-topic import.
    writer: Mutex<()>,
    writes: AtomicU64,
}

impl MetaStore {
    /// Opens (creating if missing) the store at `path`, upgrading an older schema.
    ///
    /// # Errors
    /// [`OpenError::TooNew`] for a store written by a newer rnsq, [`OpenError::Migration`] when
    /// an upgrade step fails (the store keeps the last version reached), and
    /// [`OpenError::Storage`] when sled cannot open the files.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let storage = |e: sled::Error| OpenError::Storage {
            path: path.into(),
            source: StorageError(e),
        };
        let db = open_sled(path).map_err(storage)?;
        match migrations::run(&db) {
            Ok(migrations::Outcome::Current { from }) => {
                if from != 0 && from < SCHEMA_VERSION {
                    tracing::info!(path = %path.display(), from, to = SCHEMA_VERSION, "metadata store upgraded");
                }
            }
            Ok(migrations::Outcome::TooNew { found }) => {
                return Err(OpenError::TooNew {
                    path: path.into(),
                    found,
                    supported: SCHEMA_VERSION,
                })
            }
            Err((version, reason)) => {
                return Err(OpenError::Migration {
                    path: path.into(),
                    version,
                    reason: reason.to_string(),
                })
            }
        }
        let meta = db.open_tree(migrations::META_TREE).map_err(storage)?;
        let topics = db.open_tree(migrations::TOPICS_TREE).map_err(storage)?;
        // Migrations and a new store's files must be durable before the store serves.
        db.flush().map_err(storage)?;
        let barrier = Barrier::open(path).map_err(|source| OpenError::Durability {
            path: path.into(),
            source,
        })?;
        Ok(MetaStore {
            path: path.into(),
            db,
            barrier,
            meta,
            topics,
            writer: Mutex::new(()),
            writes: AtomicU64::new(0),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many changes this handle has written (a change that changed nothing is not
    /// counted). Lets tests prove that a phase wrote nothing.
    pub fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes every change written so far durable (see [`barrier`]).
    fn flush(&self) -> Result<(), StoreError> {
        self.barrier.commit(|| {
            self.db.flush()?;
            Ok::<(), StoreError>(())
        })
    }

    /// How many durability barriers (sled flush plus fsyncs) have completed; concurrent
    /// changes share one.
    pub fn sync_count(&self) -> u64 {
        self.barrier.syncs()
    }

    /// Whether the first-boot import (see [`MetaStore::bootstrap`]) has been done.
    pub fn is_bootstrapped(&self) -> Result<bool, StoreError> {
        Ok(self.meta.get(BOOTSTRAPPED_KEY)?.is_some())
    }

    /// Marks the store bootstrapped, merging `initial` (a Go nsqd's metadata) in the same
    /// transaction, so that a crash leaves either no import and no mark or both.
    pub fn bootstrap(&self, initial: Option<&Metadata>) -> Result<ImportSummary, StoreError> {
        self.import(initial.unwrap_or(&Metadata::default()), ImportMode::Merge)
    }

    /// Applies one change as one transaction and makes it durable before returning.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when sled fails; the change is then undone as far as sled
    /// allows (a failed flush writes the previous record back), and
    /// [`StoreError::Durability`] when an fsync failed, now or earlier: from then on every change
    /// fails until the store is reopened. [`StoreError::Corrupt`] when
    /// the topic's record cannot be decoded; nothing is written.
    pub fn apply(&self, change: &Change) -> Result<(), StoreError> {
        let key = change.topic().as_bytes();
        let writer = self.lock_writer();
        let (previous, changed) = self.topics.transaction(|tx| {
            let previous = tx.get(key)?;
            let current = match &previous {
                None => None,
                Some(bytes) => Some(TopicRecord::decode(bytes).map_err(|reason| {
                    ConflictableTransactionError::Abort(StoreError::Corrupt {
                        topic: change.topic().into(),
                        reason,
                    })
                })?),
            };
            let before = current.clone();
            let next = change.next(current);
            if next == before {
                return Ok((previous, false));
            }
            match &next {
                Some(record) => tx.insert(key, record.encode())?,
                None => tx.remove(key)?,
            };
            Ok((previous, true))
        })?;
        drop(writer);
        if changed {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = self.flush() {
            if changed {
                self.undo(key, previous);
            }
            return Err(e);
        }
        Ok(())
    }

    fn undo(&self, key: &[u8], previous: Option<sled::IVec>) {
        let _writer = self.lock_writer();
        let restored = match previous {
            Some(bytes) => self.topics.insert(key, bytes).map(drop),
            None => self.topics.remove(key).map(drop),
        };
        let undone = restored
            .map_err(StoreError::from)
            .and_then(|()| self.flush());
        if let Err(e) = undone {
            tracing::error!(error = %e, "could not undo a metadata change whose flush failed");
        }
    }

    /// Every topic record, in name order; the caller holds the writer lock for consistency.
    fn read_records(&self) -> Result<Vec<(String, TopicRecord)>, StoreError> {
        let mut records = Vec::new();
        for entry in self.topics.iter() {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key).into_owned();
            let record = TopicRecord::decode(&value).map_err(|reason| StoreError::Corrupt {
                topic: name.clone(),
                reason,
            })?;
            records.push((name, record));
        }
        Ok(records)
    }

    /// Every topic with its channels and flags, as one consistent snapshot.
    pub fn snapshot(&self) -> Result<Metadata, StoreError> {
        let _writer = self.lock_writer();
        let topics = self
            .read_records()?
            .iter()
            .map(|(name, record)| record.to_meta(name))
            .collect();
        // sled iterates keys in byte order, which is name order for these ASCII names.
        Ok(Metadata { topics })
    }

    /// Flushes everything written so far. Dropping the store also flushes.
    pub fn close(&self) -> Result<(), StoreError> {
        self.flush()
    }
}

/// Opens sled, waiting up to [`LOCK_WAIT`] while a store this process just closed still holds
/// sled's file lock: sled releases it from a background thread after the last handle drops.
/// (Another process cannot be the holder: the data-path lock keeps it out.)
fn open_sled(path: &Path) -> Result<sled::Db, sled::Error> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open();
        match opened {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// How long [`open_sled`] waits for a lingering file lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
