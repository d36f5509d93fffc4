//! A channel's place in its topic's log, and the messages it holds outside the log's order.
//!
//! - `read`: the next message of the log the channel has not taken.
//! - `outstanding`: messages taken and not finished (in flight, deferred, requeued); the
//!   oldest is the **watermark**: everything before it is finished.
//! - `ready`: messages to deliver before reading on (requeued, timed out, due).
//!
//! What is saved (`<topic>/channels/<channel>.state`, see [`cursor_file`]) is the watermark,
//! the read cursor and the outstanding messages' numbers with their attempts and due times;
//! every other message between watermark and read cursor is finished. Restoring reads the log
//! again from the watermark, delivering only those outstanding ones. A clean shutdown saves
//! the exact state; after a crash the last periodic save is used, so messages finished since
//! are delivered again (at least once), and none is lost.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::cursor_file::{self, Cursor, Pending, SavedCursor};
use super::segment_log::{LogReader, Position};
use super::topic_log::{clamp, TopicLog};
use crate::message::Message;

/// Messages taken from the log at a time.
const PREFETCH: usize = 128;

/// What a restored channel still has to deliver from the part of the log it had read.
struct Replay {
    /// The saved read cursor: past it, everything is new.
    until: Cursor,
    /// Outstanding messages by number: (attempts, due ms).
    pending: HashMap<u64, (u16, i64)>,
}

struct Inner {
    ready: VecDeque<Message>,
    prefetched: VecDeque<Message>,
    read: Cursor,
    reader: Option<LogReader>,
    outstanding: BTreeMap<u64, Position>,
    replay: Option<Replay>,
    /// Changed since the last save.
    dirty: bool,
    /// The saved state is still to be read (on first use).
    restore_pending: bool,
}

impl Inner {
    /// The next message not yet read (while replaying, where the saved state left off).
    fn read_position(&self) -> Cursor {
        match &self.replay {
            Some(replay) => replay.until,
            None => self.read,
        }
    }

    /// The oldest message not finished, or the read cursor when none is outstanding.
    fn watermark(&self) -> Cursor {
        match self.outstanding.first_key_value() {
            Some((&seq, &pos)) if seq < self.read.seq => Cursor { seq, pos },
            _ => self.read,
        }
    }
}

/// A channel's reading state. See the module docs.
pub struct ChannelCursor {
    log: Arc<TopicLog>,
    state_path: Option<PathBuf>,
    inner: Mutex<Inner>,
    readable: Notify,
    /// Held while saving; true once closed (deleted): nothing is saved any more.
    save_lock: Mutex<bool>,
    /// Messages taken from the log (the channel's `message_count`).
    pub taken: AtomicU64,
}

fn now_ms() -> i64 {
    crate::message::now_ns() / 1_000_000
}

impl ChannelCursor {
    /// A new channel reading from `start`; saves that at once (without fsync: a crash of the
    /// process keeps it, and a lost file only means reading from the log's start again).
    pub fn new(log: Arc<TopicLog>, state_path: Option<PathBuf>, start: Cursor) -> Self {
        let cursor = Self::build(log, state_path, start, None);
        if let Some(path) = &cursor.state_path {
            let saved = SavedCursor {
                read: start,
                watermark: start,
                pending: Vec::new(),
            };
            if let Err(e) = cursor_file::save_quick(path, &saved) {
                tracing::warn!(error = %e, "cannot save a new channel's cursor");
            }
        }
        cursor
    }

    /// A channel restored from its saved state at `state_path` (none saved, or unreadable:
    /// from the oldest message kept, so nothing is lost). The file is read on first use.
    pub fn restore(log: Arc<TopicLog>, state_path: PathBuf) -> Self {
        let cursor = Self::build(log, Some(state_path), Cursor::default(), None);
        cursor
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .restore_pending = true;
        cursor
    }

    fn restore_now(&self, inner: &mut Inner) {
        let Some(state_path) = &self.state_path else {
            return;
        };
        let (first, end) = (self.log.first(), self.log.end());
        if first.seq >= end.seq {
            // An empty log: nothing to deliver, whatever was saved.
            inner.read = end;
            return;
        }
        let saved = match cursor_file::load(state_path) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(error = %e, "reading the channel from the oldest message kept");
                None
            }
        };
        let Some(saved) = saved else {
            inner.read = first;
            inner.dirty = true;
            return;
        };
        let until = clamp(saved.read, first, end);
        let watermark = clamp(saved.watermark, first, until);
        inner.replay = (watermark.seq < until.seq).then(|| Replay {
            until,
            pending: saved
                .pending
                .iter()
                .map(|p| (p.seq, (p.attempts, p.due_ms)))
                .collect(),
        });
        inner.read = watermark;
    }

    fn build(
        log: Arc<TopicLog>,
        state_path: Option<PathBuf>,
        read: Cursor,
        replay: Option<Replay>,
    ) -> Self {
        ChannelCursor {
            log,
            state_path,
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                prefetched: VecDeque::new(),
                read,
                reader: None,
                outstanding: BTreeMap::new(),
                replay,
                dirty: false,
                restore_pending: false,
            }),
            readable: Notify::new(),
            save_lock: Mutex::new(false),
            taken: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.restore_pending {
            inner.restore_pending = false;
            self.restore_now(&mut inner);
        }
        inner
    }

    /// The topic's log.
    pub fn log(&self) -> &Arc<TopicLog> {
        &self.log
    }

    /// Notified (all waiters) when a message is requeued.
    pub fn readable(&self) -> &Notify {
        &self.readable
    }

    /// The next message to deliver, if one is waiting. Messages read from the log that are
    /// not due yet go to `deferred` with their due time (ms since the epoch).
    pub fn take(&self, deferred: &mut Vec<(Message, i64)>) -> Option<Message> {
        let mut inner = self.lock();
        if let Some(message) = inner.ready.pop_front() {
            return Some(message);
        }
        loop {
            if let Some(message) = inner.prefetched.pop_front() {
                return Some(message);
            }
            if !self.log.is_flowing() {
                return None;
            }
            let mut batch = Vec::with_capacity(PREFETCH);
            let from = inner.read;
            let mut reader = inner.reader.take();
            let result = self.log.read(from, &mut reader, PREFETCH, &mut batch);
            inner.reader = reader;
            match result {
                Ok(next) => inner.read = next,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the message log");
                    return None;
                }
            }
            if batch.is_empty() {
                return None;
            }
            inner.dirty = true;
            let now = now_ms();
            let mut new = 0;
            for (at, mut message) in batch {
                let mut due = if message.deferred_ms > 0 {
                    let asked = i64::from(message.deferred_ms);
                    match message.published {
                        // Published by this process: counted on the monotonic clock.
                        Some(at) => {
                            let waited = i64::try_from(at.elapsed().as_millis()).unwrap_or(asked);
                            now + (asked - waited).max(0)
                        }
                        // Read back from disk: the wall clock is all that spans a restart, but
                        // never later than the deferral from now (it may have stepped back).
                        None => (message.timestamp / 1_000_000 + asked).min(now + asked),
                    }
                } else {
                    0
                };
                if let Some(replay) = inner.replay.as_mut().filter(|r| at.seq < r.until.seq) {
                    // Saved as finished unless listed.
                    let Some((attempts, due_ms)) = replay.pending.remove(&at.seq) else {
                        continue;
                    };
                    message.attempts = attempts;
                    due = due_ms;
                } else {
                    new += 1;
                }
                inner.outstanding.insert(at.seq, at.pos);
                if due > now {
                    deferred.push((message, due));
                } else {
                    inner.prefetched.push_back(message);
                }
            }
            if inner
                .replay
                .as_ref()
                .is_some_and(|r| inner.read.seq >= r.until.seq)
            {
                inner.replay = None;
            }
            self.taken.fetch_add(new, Ordering::Relaxed);
        }
    }

    /// Puts a message back in front of the log's order.
    pub fn requeue(&self, message: Message) {
        {
            let mut inner = self.lock();
            inner.ready.push_back(message);
            inner.dirty = true;
        }
        self.readable.notify_waiters();
    }

    /// The message numbered `seq` is finished.
    pub fn finish(&self, seq: u64) {
        let mut inner = self.lock();
        inner.outstanding.remove(&seq);
        inner.dirty = true;
    }

    /// Messages waiting: requeued, read ahead, and not yet read from the log.
    pub fn depth(&self) -> usize {
        let inner = self.lock();
        let end = self.log.end().seq;
        let unread = match &inner.replay {
            Some(replay) => replay.pending.len() as u64 + end.saturating_sub(replay.until.seq),
            None => end.saturating_sub(inner.read.seq),
        };
        inner.ready.len() + inner.prefetched.len() + unread as usize
    }

    /// Of the messages not yet read, those only on disk.
    pub fn backend_depth(&self) -> usize {
        if self.log.dir().is_none() {
            return 0;
        }
        let read = self.lock().read.seq;
        self.log.memory_from().saturating_sub(read) as usize
    }

    /// The next message of the log this channel has not read.
    pub fn read_position(&self) -> Cursor {
        self.lock().read_position()
    }

    /// Drops everything: waiting, outstanding and unread messages.
    pub fn empty(&self) {
        let end = self.log.end();
        let mut inner = self.lock();
        inner.ready.clear();
        inner.prefetched.clear();
        inner.outstanding.clear();
        inner.replay = None;
        inner.read = end;
        inner.reader = None;
        inner.dirty = true;
    }

    /// Skips the messages not read yet (the topic was emptied while paused).
    pub fn skip_unread(&self) {
        let end = self.log.end();
        let mut inner = self.lock();
        inner.prefetched.clear();
        inner.replay = None;
        inner.read = end;
        inner.reader = None;
        inner.dirty = true;
    }

    /// Saves the state if it changed, with `notes` giving the attempts and due times of
    /// outstanding messages held elsewhere (in flight, deferred).
    pub fn save(&self, notes: &mut HashMap<u64, (u16, i64)>) {
        let Some(path) = self.state_path.as_ref() else {
            return;
        };
        // Held through the write, so a delete cannot slip between a check and the write.
        let closed = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return;
        }
        let saved =
            {
                let mut inner = self.lock();
                if !inner.dirty {
                    return;
                }
                for message in inner.ready.iter().chain(inner.prefetched.iter()) {
                    notes.entry(message.seq).or_insert((message.attempts, 0));
                }
                let note = |seq: u64| {
                    let (attempts, due_ms) = notes.get(&seq).copied().unwrap_or((0, 0));
                    Pending {
                        seq,
                        attempts,
                        due_ms,
                    }
                };
                let mut pending: Vec<Pending> =
                    inner.outstanding.keys().map(|&s| note(s)).collect();
                if let Some(replay) = &inner.replay {
                    pending.extend(replay.pending.iter().map(|(&seq, &(attempts, due_ms))| {
                        Pending {
                            seq,
                            attempts,
                            due_ms,
                        }
                    }));
                }
                inner.dirty = false;
                SavedCursor {
                    read: inner.read_position(),
                    watermark: inner.watermark(),
                    pending,
                }
            };
        let result = cursor_file::save(path, &saved);
        drop(closed);
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot save the channel cursor");
            self.lock().dirty = true;
        }
    }

    /// The oldest message not finished (or the read cursor when none is outstanding):
    /// everything before it is finished.
    pub fn watermark(&self) -> Cursor {
        self.lock().watermark()
    }

    /// Stops saving (the channel or its topic is deleted) and removes the saved file; a save
    /// running now finishes first.
    pub fn close(&self, remove_file: bool) {
        let mut closed = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        *closed = true;
        if let Some(path) = self.state_path.as_ref().filter(|_| remove_file) {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::debug!(error = %e, "no channel cursor file to remove");
            }
        }
    }
}

#[cfg(test)]
mod tests;
