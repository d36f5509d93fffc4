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
//! fsyncs after `--sync-every` messages or `--sync-timeout`, whichever comes first.
//!
//! Record payload, big-endian: `seq: u64, timestamp: i64, attempts: u16, deferred_ms: u32,
//! id: [u8; 16]`, then the body.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cursor_file::{self, Cursor, SavedCursor};
use super::disk_health::DiskHealth;
use super::segment_log::{self, Item, LogError, LogReader, Position, SegmentLog};
use crate::message::{Message, MESSAGE_ID_LEN};

/// Fsyncs of one log that may run at once.
const SYNCS_IN_FLIGHT: usize = 2;

const PAYLOAD_HEADER: usize = 8 + 8 + 2 + 4 + MESSAGE_ID_LEN;

/// The file holding where a topic's first channel would start reading.
const TOPIC_STATE: &str = "topic.state";

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
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            mem_queue_size: 10_000,
            max_bytes_per_file: 100 * 1024 * 1024,
            sync_every: 2500,
            sync_timeout: Duration::from_secs(2),
            durable: false,
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

#[derive(Debug, Clone, Default)]
struct SyncState {
    /// Every message numbered below this is durable.
    synced: u64,
    /// The last failed fsync: the messages it was for (from, to) and why.
    failure: Option<(u64, u64, String)>,
}

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
}

impl std::fmt::Debug for TopicLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn encode_into(out: &mut Vec<u8>, message: &Message) {
    out.extend_from_slice(&message.seq.to_be_bytes());
    out.extend_from_slice(&message.timestamp.to_be_bytes());
    out.extend_from_slice(&message.attempts.to_be_bytes());
    out.extend_from_slice(&message.deferred_ms.to_be_bytes());
    out.extend_from_slice(&message.id);
    out.extend_from_slice(&message.body);
}

fn decode(payload: &[u8]) -> Option<Message> {
    if payload.len() < PAYLOAD_HEADER {
        return None;
    }
    let seq = u64::from_be_bytes(payload[0..8].try_into().ok()?);
    let timestamp = i64::from_be_bytes(payload[8..16].try_into().ok()?);
    let attempts = u16::from_be_bytes(payload[16..18].try_into().ok()?);
    let deferred_ms = u32::from_be_bytes(payload[18..22].try_into().ok()?);
    let id: [u8; MESSAGE_ID_LEN] = payload[22..PAYLOAD_HEADER].try_into().ok()?;
    Some(Message {
        id,
        body: Bytes::copy_from_slice(&payload[PAYLOAD_HEADER..]),
        timestamp,
        attempts,
        deferred_ms,
        seq,
    })
}

/// What one read of a topic directory found.
struct Listing {
    has_segments: bool,
    has_channels_dir: bool,
    temps_removed: usize,
}

/// Reads `dir` once (creating it if missing), removing stray temp files.
fn scan(dir: &Path) -> Result<Listing, LogError> {
    let fail = |source| LogError {
        path: dir.into(),
        source,
    };
    let mut listing = Listing {
        has_segments: false,
        has_channels_dir: false,
        temps_removed: 0,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(fail)?;
            return Ok(listing);
        }
        Err(e) => return Err(fail(e)),
    };
    for entry in entries {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".log") {
            listing.has_segments = true;
        } else if name == super::CHANNELS_DIR {
            listing.has_channels_dir = true;
        } else if name.ends_with(".tmp") && fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a stray temp file");
            listing.temps_removed += 1;
        }
    }
    Ok(listing)
}

/// Removes `*.tmp` files left by a crash in `dir`; returns how many.
fn remove_temps(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tmp") && fs::remove_file(&path).is_ok() {
            tracing::info!(file = %path.display(), "removed a stray temp file");
            removed += 1;
        }
    }
    removed
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

    fn open_now(&self, dir: &Path, inner: &mut Inner) -> Result<(), LogError> {
        let settings = &self.settings;
        let listing = scan(dir)?;
        let mut temps = listing.temps_removed;
        if listing.has_channels_dir {
            temps += remove_temps(&dir.join(super::CHANNELS_DIR));
        }
        self.counters
            .temp_files_removed
            .store(temps as u64, Ordering::Relaxed);
        if !listing.has_segments {
            // Nothing written yet (most topics at boot): one directory read, no record or
            // cursor to look for.
            inner.disk = Some(SegmentLog::empty(dir, settings.max_bytes_per_file));
            return Ok(());
        }
        let (disk, recovery, last) = SegmentLog::open(dir, settings.max_bytes_per_file)?;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(dir = %dir.display(), bytes = recovery.truncated_bytes, "truncated a torn tail of the message log");
        }
        let end = Cursor {
            seq: last.as_deref().and_then(decode).map_or(1, |m| m.seq + 1),
            pos: disk.write_position(),
        };
        let first = first_record(dir, end)?;
        let head = match cursor_file::load(&dir.join(TOPIC_STATE)) {
            Ok(Some(saved)) => clamp(saved.read, first, end),
            Ok(None) => first,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a damaged topic cursor");
                first
            }
        };
        self.counters
            .truncated_bytes
            .store(recovery.truncated_bytes, Ordering::Relaxed);
        inner.disk = Some(disk);
        inner.end = end;
        inner.first = first;
        inner.head = head;
        inner.head_saved = Some(head);
        self.sync_started.store(end.seq, Ordering::Release);
        self.synced.send_modify(|s| s.synced = end.seq);
        Ok(())
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

    /// Waits until every message numbered in `from..to` is fsynced.
    ///
    /// Group commit: a publisher not covered by an fsync already started starts one itself
    /// (at most [`SYNCS_IN_FLIGHT`] at once), and that fsync covers every message written
    /// before it; the others wait for it. No task hop stands between a publisher and its
    /// fsync.
    pub async fn wait_durable(self: &Arc<Self>, from: u64, to: u64) -> Result<(), AppendError> {
        let mut state = self.synced.subscribe();
        loop {
            {
                let s = state.borrow_and_update();
                if let Some((failed_from, failed_to, reason)) = &s.failure {
                    if from < *failed_to && to > *failed_from {
                        return Err(AppendError(reason.clone()));
                    }
                }
                if s.synced >= to {
                    return Ok(());
                }
            }
            let covered = self.sync_started.load(Ordering::Acquire) >= to;
            if !covered && self.syncs_running.load(Ordering::Acquire) < SYNCS_IN_FLIGHT {
                let _ = self.sync_now().await;
                continue;
            }
            if state.changed().await.is_err() {
                return Err(AppendError("the message log closed".into()));
            }
        }
    }

    /// Fsyncs everything appended so far (a no-op when nothing is new).
    pub async fn sync_now(self: &Arc<Self>) -> Result<(), AppendError> {
        let (handle, target, from) = {
            let mut inner = self.inner();
            // Messages below `from` are covered by an fsync already started.
            let from = self.sync_started.load(Ordering::Acquire);
            let target = inner.end.seq;
            inner.unsynced = 0;
            inner.unsynced_since = None;
            let handle = match &inner.disk {
                Some(disk) if target > from => disk.sync_handle(),
                _ => return Ok(()),
            };
            self.sync_started.store(target, Ordering::Release);
            (handle, target, from)
        };
        let file = match handle {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(()),
            Err(e) => return self.synced_or_failed(Err(e.to_string()), from, target),
        };
        self.syncs_running.fetch_add(1, Ordering::AcqRel);
        // The fsync and its bookkeeping run together on the blocking thread, so a caller
        // that goes away cannot leave waiters without an answer.
        let log = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = file.sync_data().map_err(|e| format!("fsync: {e}"));
            log.syncs_running.fetch_sub(1, Ordering::AcqRel);
            log.synced_or_failed(result, from, target)
        })
        .await
        .map_err(|e| AppendError(e.to_string()))?
    }

    /// Records how the fsync of messages `from..target` ended, telling every waiter.
    fn synced_or_failed(
        &self,
        result: Result<(), String>,
        from: u64,
        target: u64,
    ) -> Result<(), AppendError> {
        match result {
            Ok(()) => {
                self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .fsynced_messages
                    .fetch_add(target - from, Ordering::Relaxed);
                self.synced.send_modify(|s| s.synced = s.synced.max(target));
                self.health.recovered();
                Ok(())
            }
            Err(reason) => {
                tracing::error!(error = %reason, "cannot fsync the message log");
                self.health.failed(reason.clone());
                self.synced
                    .send_modify(|s| s.failure = Some((from, target, reason.clone())));
                Err(AppendError(reason))
            }
        }
    }

    /// Fsyncs when asked (durable publishers), after `--sync-every` messages, or
    /// `--sync-timeout` after the first unsynced one; a last time when `stop` is cancelled.
    ///
    /// Up to [`SYNCS_IN_FLIGHT`] fsyncs overlap: a publisher arriving while one runs starts
    /// the next at once rather than wait a whole fsync for its turn. Each covers everything
    /// written before it started, so the highest finished one says what is durable.
    pub async fn run_syncer(self: Arc<Self>, stop: CancellationToken) {
        if self.dir.is_none() {
            return;
        }
        let mut running = tokio::task::JoinSet::new();
        loop {
            let since = self.inner().unsynced_since;
            let timeout = async {
                match since {
                    Some(at) => tokio::time::sleep_until(at + self.settings.sync_timeout).await,
                    None => std::future::pending().await,
                }
            };
            let room = running.len() < SYNCS_IN_FLIGHT;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.sync_wanted.notified(), if room => {}
                _ = timeout, if room => {}
                Some(_) = running.join_next(), if !running.is_empty() => continue,
            }
            let log = self.clone();
            // A failure is reported to waiters and /ping; the next round tries again.
            running.spawn(async move {
                let _ = log.sync_now().await;
            });
        }
        while running.join_next().await.is_some() {}
        let _ = self.sync_now().await;
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

    /// Where a topic's first channel starts reading.
    pub fn head(&self) -> Cursor {
        self.inner().head
    }

    /// The topic is deleted: nothing is written or opened here any more, and the directory
    /// goes (a cursor save running now finishes first).
    pub fn close_and_remove(&self) {
        let mut closed = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        *closed = true;
        self.set_flowing(false);
        let Some(dir) = &self.dir else { return };
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        // A file created in it meanwhile (a segment being started) makes one pass fail.
        for attempt in 0..5 {
            match fs::remove_dir_all(dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) if attempt == 4 => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a deleted topic's queue files");
                }
                Err(_) => {}
            }
        }
        drop(closed);
    }

    /// Moves where a first channel would start (to the end: nothing waits for one).
    pub fn set_head(&self, head: Cursor) {
        self.inner().head = head;
    }

    /// Saves the head (for a topic without channels) so a restart keeps it, unless it is
    /// saved already.
    pub fn save_head(&self) -> Result<(), LogError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let closed = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return Ok(());
        }
        let head = {
            let inner = self.inner();
            let unchanged = inner.head_saved == Some(inner.head)
                || (inner.head_saved.is_none() && inner.head == inner.first);
            if unchanged || !inner.loaded {
                return Ok(());
            }
            inner.head
        };
        let saved = SavedCursor {
            read: head,
            watermark: head,
            pending: Vec::new(),
        };
        cursor_file::save(&dir.join(TOPIC_STATE), &saved)?;
        drop(closed);
        self.inner().head_saved = Some(head);
        Ok(())
    }

    /// Reads up to `max` messages from `from` into `out` (each with its own cursor);
    /// returns the cursor after them. `reader` is the caller's disk reader, kept between
    /// calls.
    pub fn read(
        &self,
        from: Cursor,
        reader: &mut Option<LogReader>,
        max: usize,
        out: &mut Vec<(Cursor, Message)>,
    ) -> Result<Cursor, LogError> {
        let mut at = from;
        while out.len() < max {
            {
                let inner = self.inner();
                if at.seq >= inner.end.seq {
                    break;
                }
                let front = inner.cache.front().map(|c| c.at.seq);
                if let Some(front) = front.filter(|f| at.seq >= *f) {
                    let skip = (at.seq - front) as usize;
                    for cached in inner.cache.iter().skip(skip).take(max - out.len()) {
                        out.push((cached.at, cached.message.clone()));
                        at = Cursor {
                            seq: cached.at.seq + 1,
                            pos: cached.next,
                        };
                    }
                    continue;
                }
                if self.dir.is_none() {
                    // Memory only: what fell out of memory is gone.
                    let to = front.map_or(inner.end, |_| inner.cache[0].at);
                    self.counters
                        .dropped
                        .fetch_add(to.seq - at.seq, Ordering::Relaxed);
                    at = to;
                    continue;
                }
            }
            let Some(dir) = &self.dir else { break };
            let reader = match reader {
                Some(r) if r.position() == at.pos => r,
                _ => reader.insert(LogReader::new(dir, at.pos)),
            };
            match reader.next_record()? {
                Item::Record(pos, payload) => match decode(&payload) {
                    Some(message) if message.seq >= at.seq => {
                        at = Cursor {
                            seq: message.seq + 1,
                            pos: reader.position(),
                        };
                        out.push((
                            Cursor {
                                seq: message.seq,
                                pos,
                            },
                            message,
                        ));
                    }
                    Some(_) => at.pos = reader.position(),
                    None => {
                        self.damaged(pos, payload.len() as u64);
                        at.pos = reader.position();
                    }
                },
                Item::Damaged(pos, len) => {
                    self.damaged(pos, len);
                    at.pos = reader.position();
                }
                Item::End => {
                    // Numbered messages are missing from the files (damage cut them off):
                    // count them as lost rather than wait for them forever.
                    let end = self.end();
                    tracing::warn!(from = at.seq, to = end.seq, "messages missing from the log");
                    self.counters
                        .damaged_records
                        .fetch_add(end.seq - at.seq, Ordering::Relaxed);
                    at = end;
                }
            }
        }
        Ok(at)
    }

    /// Counts (once) and keeps aside a damaged stretch a reader passed over.
    fn damaged(&self, at: Position, len: u64) {
        let first_time = self
            .quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(at);
        if !first_time {
            return;
        }
        self.counters
            .damaged_records
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .damaged_bytes
            .fetch_add(len, Ordering::Relaxed);
        tracing::warn!(dir = ?self.dir, segment = at.segment, offset = at.offset, len, "skipped a damaged record (kept in <segment>.log.bad)");
        if let Some(dir) = &self.dir {
            if let Err(e) = segment_log::quarantine(dir, at, len) {
                tracing::warn!(error = %e, "cannot keep the damaged bytes aside");
            }
        }
    }

    /// Deletes segments wholly before `keep` (a position every reader is at or past).
    pub fn remove_before(&self, keep: Position) {
        let mut inner = self.inner();
        let Some(disk) = inner.disk.as_ref() else {
            return;
        };
        match disk.remove_below(keep.segment) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::debug!(removed, "removed consumed log segments");
                if let Some(dir) = &self.dir {
                    let end = inner.end;
                    if let Ok(first) = first_record(dir, end) {
                        inner.first = first;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot remove consumed log segments"),
        }
    }
}

/// The oldest record in `dir` (`end` when there is none).
fn first_record(dir: &Path, end: Cursor) -> Result<Cursor, LogError> {
    let Some(&segment) = segment_log::segments(dir)?.first() else {
        return Ok(end);
    };
    let mut reader = LogReader::new(dir, Position { segment, offset: 0 });
    loop {
        match reader.next_record()? {
            Item::Record(pos, payload) => {
                if let Some(message) = decode(&payload) {
                    return Ok(Cursor {
                        seq: message.seq,
                        pos,
                    });
                }
            }
            Item::Damaged(..) => {}
            Item::End => return Ok(end),
        }
    }
}

/// `cursor`, kept within `first..=end`.
pub fn clamp(cursor: Cursor, first: Cursor, end: Cursor) -> Cursor {
    if cursor.seq < first.seq || cursor.pos < first.pos {
        first
    } else if cursor.seq > end.seq || cursor.pos > end.pos {
        end
    } else {
        cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> Message {
        Message::new([n; 16], Bytes::from(vec![n; 3]))
    }

    fn read_all(log: &TopicLog, from: Cursor) -> Vec<u8> {
        let mut reader = None;
        let mut out = Vec::new();
        log.read(from, &mut reader, usize::MAX, &mut out).unwrap();
        out.iter().map(|(_, m)| m.body[0]).collect()
    }

    #[tokio::test]
    async fn numbers_messages_and_reads_from_memory_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LogSettings {
            mem_queue_size: 2,
            max_bytes_per_file: 200,
            ..LogSettings::default()
        };
        let health = Arc::new(DiskHealth::default());
        let log = Arc::new(TopicLog::open(dir.path(), settings.clone(), health.clone()));
        let start = log.end();
        assert_eq!(start.seq, 1);
        for n in 0..10 {
            log.append(vec![message(n)]).unwrap();
        }
        assert_eq!(log.end().seq, 11);
        assert_eq!(log.memory_from(), 9);
        assert_eq!(read_all(&log, start), (0..10).collect::<Vec<_>>());
        log.sync_now().await.unwrap();
        drop(log);
        let log = TopicLog::open(dir.path(), settings, health);
        assert_eq!(log.end().seq, 11);
        assert_eq!(log.first().seq, 1);
        assert_eq!(read_all(&log, log.first()), (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_durable_publisher_waits_for_a_shared_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LogSettings {
            durable: true,
            ..LogSettings::default()
        };
        let log = Arc::new(TopicLog::open(
            dir.path(),
            settings,
            Arc::new(DiskHealth::default()),
        ));
        let stop = CancellationToken::new();
        let syncer = tokio::spawn(log.clone().run_syncer(stop.clone()));
        let mut waits = Vec::new();
        for n in 0..50 {
            let log = log.clone();
            waits.push(tokio::spawn(async move {
                let from = log.end().seq;
                let to = log.append(vec![message(n)]).unwrap();
                log.wait_durable(from.min(to - 1), to).await
            }));
        }
        for wait in waits {
            wait.await.unwrap().unwrap();
        }
        let fsyncs = log.counters.fsyncs.load(Ordering::Relaxed);
        assert!((1..=50).contains(&fsyncs), "{fsyncs} fsyncs");
        assert_eq!(log.counters.fsynced_messages.load(Ordering::Relaxed), 50);
        stop.cancel();
        syncer.await.unwrap();
    }

    #[test]
    fn memory_only_drops_what_a_slow_reader_missed() {
        let settings = LogSettings {
            mem_queue_size: 3,
            ..LogSettings::default()
        };
        let log = TopicLog::in_memory(settings, Arc::new(DiskHealth::default()));
        let start = log.end();
        for n in 0..5 {
            log.append(vec![message(n)]).unwrap();
        }
        assert_eq!(read_all(&log, start), vec![2, 3, 4]);
        assert_eq!(log.counters.dropped.load(Ordering::Relaxed), 2);
    }
}
