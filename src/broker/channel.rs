//! A channel: one consumer group's view of a topic. Its queues arrive with the protocol; here
//! it holds its name and paused flag.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::names;

/// A channel of a topic. Shared behind an `Arc`; its flags change only through the broker.
#[derive(Debug)]
pub struct Channel {
    name: String,
    ephemeral: bool,
    paused: AtomicBool,
    deleted: AtomicBool,
}

impl Channel {
    pub(crate) fn new(name: &str, paused: bool) -> Self {
        Channel {
            name: name.into(),
            ephemeral: names::is_ephemeral(name),
            paused: AtomicBool::new(paused),
            deleted: AtomicBool::new(false),
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the name ends in `#ephemeral`: never persisted.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Whether delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Whether the channel has been deleted; a holder of a deleted channel must let go of it.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }
}
