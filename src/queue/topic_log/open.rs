//! Opening a topic's directory on first use: one read of it (removing the temp files a save
//! cut short), recovery of the log, the first and next message numbers, and the topic cursor.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::codec::decode;
use super::head::TOPIC_STATE;
use super::reader::{clamp, first_record};
use super::{Inner, TopicLog};
use crate::queue::cursor_file::{self, Cursor};
use crate::queue::segment_log::{LogError, SegmentLog};

impl TopicLog {
    pub(super) fn open_now(&self, dir: &Path, inner: &mut Inner) -> Result<(), LogError> {
        let settings = &self.settings;
        let listing = scan(dir)?;
        let mut temps = listing.temps_removed;
        let mut states = Vec::new();
        if listing.has_channels_dir {
            temps += scan_channels(&dir.join(crate::queue::CHANNELS_DIR), &mut states);
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
        let (mut disk, recovery, last) = SegmentLog::open(dir, settings.max_bytes_per_file)?;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(dir = %dir.display(), bytes = recovery.truncated_bytes, "truncated a torn tail of the message log");
        }
        let mut end = Cursor {
            seq: last.as_deref().and_then(decode).map_or(1, |m| m.seq + 1),
            pos: disk.write_position(),
        };
        states.push(dir.join(TOPIC_STATE));
        if let Some(ahead) = saved_past(&states, end) {
            // A power cut lost the log's unsynced tail while a cursor saved (fsynced) after
            // reading it survived. New messages must not reuse those numbers or positions:
            // a channel restoring that cursor would take them as already read, and lose
            // messages answered `OK` after this restart.
            tracing::warn!(dir = %dir.display(), log_end = end.seq, saved = ahead, "a saved cursor is past the end of the message log (its tail was lost): numbering on from the cursor, in a new segment");
            end.seq = end.seq.max(ahead);
            disk.roll_on_next_append();
        }
        if settings.sync_on_open {
            // Only the last segment can hold unsynced records: each segment is fsynced before
            // the next one is started. The entries leading to it may be unsynced too.
            disk.sync()?;
            self.sync_entries()
                .map_err(|e| LogError::io(dir, std::io::Error::other(e)))?;
        }
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
}

/// The highest message number a cursor saved in `states` read up to, if any of them was saved
/// past `end` (by number or by position). Files that cannot be read are passed over (their
/// channels read from the oldest message kept).
fn saved_past(states: &[PathBuf], end: Cursor) -> Option<u64> {
    states
        .iter()
        .filter_map(|path| cursor_file::load(path).ok().flatten())
        .map(|saved| saved.read)
        .filter(|read| read.seq > end.seq || read.pos > end.pos)
        .map(|read| read.seq)
        .max()
}

/// What one read of a topic directory found.
struct Listing {
    has_segments: bool,
    has_channels_dir: bool,
    temps_removed: usize,
}

/// Reads `dir` once (creating it if missing), removing stray temp files.
///
/// A directory made here is not fsynced into its parent: the log's first fsync does that
/// (see [`TopicLog::sync_entries`]) before any message in it counts as durable.
fn scan(dir: &Path) -> Result<Listing, LogError> {
    let fail = |source| LogError::io(dir, source);
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
        } else if name == crate::queue::CHANNELS_DIR {
            listing.has_channels_dir = true;
        } else if name.ends_with(".tmp") && fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a stray temp file");
            listing.temps_removed += 1;
        }
    }
    Ok(listing)
}

/// Removes `*.tmp` files left by a crash in the channels directory `dir` and lists its state
/// files into `states`; returns how many temp files went. (Their removal need not be
/// durable: one a cut brings back is removed at the next open.)
fn scan_channels(dir: &Path, states: &mut Vec<PathBuf>) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            if fs::remove_file(&path).is_ok() {
                tracing::info!(file = %path.display(), "removed a stray temp file");
                removed += 1;
            }
        } else if path.extension().is_some_and(|e| e == "state") {
            states.push(path);
        }
    }
    removed
}
