//! A topic's message log: every message published to the topic, once, in order, numbered
//! from 1. Channels read it through cursors of their own ([`super::ChannelCursor`]), so a
//! message is written and fsynced once however many channels the topic has.
//!
//! Storage is a [`SegmentLog`] on disk, with the newest `--mem-queue-size` messages also kept
//! in memory so that channels keeping up never read the disk; or, for ephemeral topics (Go
//! nsqd gives them no disk either), memory alone, holding the newest `--mem-queue-size`
//! messages (a channel further behind loses the older ones, counted as dropped).
//!
//! Fsync: in `--durable` mode a publisher waits for the fsync covering its messages; one
//! fsync covers everything written before it starts (group commit). Otherwise the syncer
//! fsyncs after `--sync-every` messages or `--sync-timeout`, whichever comes first. The first
//! fsync in a process also makes durable the directory entries leading to the segments, so a
//! message counts as durable only once a power cut cannot take it away (docs/durability.md
//! goes through each claim).
//!
//! Record payload, big-endian: `seq: u64, timestamp: i64, attempts: u16, deferred_ms: u32,
//! id: [u8; 16]`, then the body.
//!
//! The pieces: `codec` (a message as a record), `open` (opening a topic directory),
//! `head` (where a first channel starts), `syncer` (fsyncs and group commit), `reader`
//! (reading, damage, deleting segments).

pub mod codec;
mod head;
mod open;
mod reader;
mod syncer;

#[cfg(test)]
mod entry_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::cursor_file::Cursor;
use super::disk_health::DiskHealth;
use super::segment_log::{parent_dir, sync_dir, Position, SegmentLog};
use crate::message::Message;
use codec::encode_into;
use syncer::SyncState;

/// How a log stores and syncs.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Messages also kept in memory (disk) or at most kept (memory only).
    pub mem_queue_size: usize,
    pub max_bytes_per_file: u64,
    pub sync_every: u64,
    pub sync_timeout: Duration,
    /// Publishers wait for their fsync.
    pub durable: bool,
    /// The previous broker on this data path crashed: what it wrote but never fsynced may be
    /// only in the page cache, so a log fsyncs what it recovered when it opens (else a power
    /// cut long after the restart could still lose messages published before the crash).
    pub sync_on_open: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            mem_queue_size: 10_000,
            max_bytes_per_file: 100 * 1024 * 1024,
            sync_every: 2500,
            sync_timeout: Duration::from_secs(2),
            durable: false,
            sync_on_open: false,
        }
    }
}

/// What opening repaired and reading passed over, and how often the log fsynced.
#[derive(Debug, Default)]
pub struct LogCounters {
    /// Bytes cut from a torn tail at open.
    pub truncated_bytes: AtomicU64,
    /// Damaged records (or stretches) passed over by readers, each counted once.
    pub damaged_records: AtomicU64,
    pub damaged_bytes: AtomicU64,
    /// Stray temp files removed at open.
    pub temp_files_removed: AtomicU64,
    /// Memory-only overflow: messages a channel was too far behind to get.
    pub dropped: AtomicU64,
    pub fsyncs: AtomicU64,
    /// Messages made durable by those fsyncs.
    pub fsynced_messages: AtomicU64,
}

/// Why a publish failed; nothing of it was kept.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AppendError(pub String);

struct Cached {
    at: Cursor,
    next: Position,
    message: Message,
}

struct Inner {
    /// Whether the directory has been read (logs open on first use).
    loaded: bool,
    /// The topic is deleted: its directory must not be made again.
    closed: bool,
    /// Why it could not be, last time.
    load_error: Option<String>,
    disk: Option<SegmentLog>,
    /// The next message's number and record position.
    end: Cursor,
    /// The oldest message kept.
    first: Cursor,
    /// Where a topic's first channel starts reading.
    head: Cursor,
    /// The head as last saved in `topic.state`.
    head_saved: Option<Cursor>,
    cache: VecDeque<Cached>,
    unsynced: u64,
    unsynced_since: Option<Instant>,
}

/// One topic's log. Shared by the topic and its channels.
pub struct TopicLog {
    dir: Option<PathBuf>,
    settings: LogSettings,
    inner: Mutex<Inner>,
    /// Notified (all waiters) when messages are appended or the topic starts flowing.
    appended: Notify,
    sync_wanted: Notify,
    synced: watch::Sender<SyncState>,
    /// The highest target of an fsync started.
    sync_started: AtomicU64,
    /// Fsyncs running now.
    syncs_running: std::sync::atomic::AtomicUsize,
    pub counters: LogCounters,
    health: Arc<DiskHealth>,
    quarantined: Mutex<HashSet<Position>>,
    /// Held while saving `topic.state`; true once the topic is deleted.
    save_lock: Mutex<bool>,
    /// Whether channels may read (the topic is started and not paused).
    flowing: std::sync::atomic::AtomicBool,
    /// The directory entries leading to the segments are durable (see
    /// [`TopicLog::sync_entries`]).
    entries_synced: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for TopicLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl TopicLog {
    /// A log kept in memory only.
    pub fn in_memory(settings: LogSettings, health: Arc<DiskHealth>) -> Self {
        let start = Cursor {
            seq: 1,
            pos: Position::default(),
        };
        Self::build(None, settings, health, None, start, start, start)
    }

    /// The log in `dir`, opened on first use (see [`TopicLog::load`]): a broker restoring
    /// 100,000 topics at boot reads none of their directories before it serves.
    pub fn open(dir: &Path, settings: LogSettings, health: Arc<DiskHealth>) -> Self {
        let start = Cursor {
            seq: 1,
            pos: Position::default(),
        };
        let log = Self::build(
            Some(dir.into()),
            settings,
            health,
            None,
            start,
            start,
            start,
        );
        log.inner.lock().unwrap_or_else(|p| p.into_inner()).loaded = false;
        log
    }

    /// Opens the log now if it is not open yet: removes stray temp files, truncates a torn
    /// tail (both counted), and finds the first and next message numbers. A failure is
    /// reported (and retried on the next use).
    pub fn load(&self) {
        drop(self.inner());
    }

    /// Whether the log has been opened.
    pub fn is_loaded(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).loaded
    }

    fn build(
        dir: Option<PathBuf>,
        settings: LogSettings,
        health: Arc<DiskHealth>,
        disk: Option<SegmentLog>,
        first: Cursor,
        end: Cursor,
        head: Cursor,
    ) -> Self {
        TopicLog {
            dir,
            settings,
            inner: Mutex::new(Inner {
                loaded: true,
                closed: false,
                load_error: None,
                disk,
                end,
                first,
                head,
                head_saved: None,
                cache: VecDeque::new(),
                unsynced: 0,
                unsynced_since: None,
            }),
            appended: Notify::new(),
            sync_wanted: Notify::new(),
            synced: watch::channel(SyncState {
                synced: end.seq,
                failure: None,
            })
            .0,
            sync_started: AtomicU64::new(end.seq),
            syncs_running: std::sync::atomic::AtomicUsize::new(0),
            counters: LogCounters::default(),
            health,
            quarantined: Mutex::new(HashSet::new()),
            save_lock: Mutex::new(false),
            flowing: std::sync::atomic::AtomicBool::new(false),
            entries_synced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !inner.loaded && !inner.closed {
            if let Some(dir) = &self.dir {
                match self.open_now(dir, &mut inner) {
                    Ok(()) => {
                        inner.loaded = true;
                        inner.load_error = None;
                    }
                    Err(e) => {
                        let reason = format!("cannot open the message log: {e}");
                        if inner.load_error.as_ref() != Some(&reason) {
                            tracing::error!(error = %reason);
                        }
                        self.health.failed(reason.clone());
                        inner.load_error = Some(reason);
                    }
                }
            }
        }
        inner
    }

    /// The directory on disk; `None` for a memory-only log.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Whether publishers wait for the fsync.
    pub fn is_durable(&self) -> bool {
        self.settings.durable && self.dir.is_some()
    }

    /// Lets channels read (or stops them).
    pub fn set_flowing(&self, flowing: bool) {
        self.flowing.store(flowing, Ordering::Release);
        self.appended.notify_waiters();
    }

    /// Whether channels may read.
    pub fn is_flowing(&self) -> bool {
        self.flowing.load(Ordering::Acquire)
    }

    /// Notified when there may be more to read.
    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    /// Appends `messages` (numbering them) with one write; returns the number after the
    /// last. On failure nothing was kept and storage is reported unhealthy.
    pub fn append(&self, mut messages: Vec<Message>) -> Result<u64, AppendError> {
        let mut inner = self.inner();
        if let Some(reason) = inner.load_error.clone().filter(|_| !inner.loaded) {
            return Err(AppendError(reason));
        }
        let mut seq = inner.end.seq;
        for message in &mut messages {
            message.seq = seq;
            seq += 1;
        }
        let positions: Vec<(Position, Position)> = match inner.disk.as_mut() {
            Some(disk) => {
                let mut buffer = Vec::new();
                let mut bounds = Vec::with_capacity(messages.len());
                for message in &messages {
                    let start = buffer.len();
                    encode_into(&mut buffer, message);
                    bounds.push(start..buffer.len());
                }
                let payloads: Vec<&[u8]> = bounds.iter().map(|r| &buffer[r.clone()]).collect();
                let starts = match disk.append_batch(&payloads) {
                    Ok(starts) => starts,
                    Err(e) => {
                        drop(inner);
                        let reason = e.to_string();
                        tracing::error!(error = %reason, "cannot write to the message log");
                        self.health.failed(reason.clone());
                        return Err(AppendError(reason));
                    }
                };
                let end = disk.write_position();
                starts
                    .iter()
                    .enumerate()
                    .map(|(i, &start)| (start, starts.get(i + 1).copied().unwrap_or(end)))
                    .collect()
            }
            None => vec![(Position::default(), Position::default()); messages.len()],
        };
        let count = messages.len() as u64;
        for (message, (start, next)) in messages.into_iter().zip(positions) {
            inner.cache.push_back(Cached {
                at: Cursor {
                    seq: message.seq,
                    pos: start,
                },
                next,
                message,
            });
        }
        let unbounded = self.dir.is_none() && self.settings.mem_queue_size == usize::MAX;
        while !unbounded && inner.cache.len() > self.settings.mem_queue_size {
            inner.cache.pop_front();
        }
        inner.end = Cursor {
            seq,
            pos: inner
                .disk
                .as_ref()
                .map_or_else(Position::default, SegmentLog::write_position),
        };
        if self.dir.is_none() {
            inner.first = inner.cache.front().map_or(inner.end, |c| c.at);
            self.synced.send_modify(|s| s.synced = seq);
        } else {
            inner.unsynced += count;
            if inner.unsynced_since.is_none() {
                inner.unsynced_since = Some(Instant::now());
            }
            if inner.unsynced >= self.settings.sync_every {
                self.sync_wanted.notify_one();
            }
        }
        drop(inner);
        self.appended.notify_waiters();
        Ok(seq)
    }

    /// The next message's number and position.
    pub fn end(&self) -> Cursor {
        self.inner().end
    }

    /// The oldest message kept.
    pub fn first(&self) -> Cursor {
        self.inner().first
    }

    /// The number of the oldest message held in memory (the end if none).
    pub fn memory_from(&self) -> u64 {
        let inner = self.inner();
        inner.cache.front().map_or(inner.end.seq, |c| c.at.seq)
    }

    /// The topic is deleted: nothing is written or opened here any more, and the directory
    /// goes (a cursor save running now finishes first). Once this returns the removal is
    /// durable: a power cut cannot bring the directory back.
    pub fn close_and_remove(&self) {
        let mut closed = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        *closed = true;
        self.set_flowing(false);
        let Some(dir) = &self.dir else { return };
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        // A file created in it meanwhile (a segment being started) makes one pass fail.
        for attempt in 0..5 {
            match fs::remove_dir_all(dir) {
                Ok(()) => {
                    // The delete is answered once this returns, and a directory that a cut
                    // brings back would be served again by a topic created later with the same
                    // name (an orphan queue is adopted): its removal from the queue root must
                    // be durable first.
                    if let Err(e) = sync_dir(parent_dir(dir)) {
                        tracing::warn!(error = %e, "cannot make a deleted topic's removal durable");
                    }
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) if attempt == 4 => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a deleted topic's queue files");
                }
                Err(_) => {}
            }
        }
        drop(closed);
    }
}

pub use reader::clamp;
