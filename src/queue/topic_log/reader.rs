//! Reading a topic's log: messages from memory or disk in order ([`TopicLog::read`]), damage
//! counted and kept aside, consumed segments deleted, and where the oldest message is.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::codec::decode;
use super::TopicLog;
use crate::message::Message;
use crate::queue::cursor_file::Cursor;
use crate::queue::segment_log::{self, Item, LogError, LogReader, Position};

impl TopicLog {
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
pub(super) fn first_record(dir: &Path, end: Cursor) -> Result<Cursor, LogError> {
    // Not from a stale segment below a gap: those are not part of the log.
    let Some(&segment) = segment_log::live_segments(dir)?.first() else {
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
