//! Where a topic's first channel starts reading (the head): messages published before any
//! channel exists wait for one, and `topic.state` keeps the head across restarts.

use super::TopicLog;
use crate::queue::cursor_file::{self, Cursor, SavedCursor};
use crate::queue::segment_log::LogError;

/// The file holding where a topic's first channel would start reading.
pub(super) const TOPIC_STATE: &str = "topic.state";

impl TopicLog {
    /// Where a topic's first channel starts reading.
    pub fn head(&self) -> Cursor {
        self.inner().head
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
}
