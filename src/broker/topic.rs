//! A topic: a named stream that copies each message to every channel. Its queues arrive with
//! the protocol; here it holds its channels, its paused flag and its lifecycle state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::channel::Channel;
use crate::names;

/// Where a topic is in its life. Only `Live` topics are visible to readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TopicState {
    /// Being created: its persistence has not finished.
    Pending = 0,
    Live = 1,
    /// Deleted, or its creation failed.
    Gone = 2,
}

/// A topic. Shared behind an `Arc`; it changes only through the broker, which serialises
/// changes to one topic with [`Topic::change_lock`].
#[derive(Debug)]
pub struct Topic {
    name: String,
    ephemeral: bool,
    paused: AtomicBool,
    state: AtomicU8,
    started: AtomicBool,
    channels: Mutex<BTreeMap<String, Arc<Channel>>>,
    /// Held across a whole metadata change of this topic (persist, apply, announce).
    pub(crate) change_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Topic {
    pub(crate) fn new(name: &str, paused: bool) -> Self {
        Topic {
            name: name.into(),
            ephemeral: names::is_ephemeral(name),
            paused: AtomicBool::new(paused),
            state: AtomicU8::new(TopicState::Pending as u8),
            started: AtomicBool::new(false),
            channels: Mutex::new(BTreeMap::new()),
            change_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the name ends in `#ephemeral`: never persisted.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Whether copying messages to channels is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    pub(crate) fn state(&self) -> TopicState {
        match self.state.load(Ordering::Acquire) {
            0 => TopicState::Pending,
            1 => TopicState::Live,
            _ => TopicState::Gone,
        }
    }

    pub(crate) fn set_state(&self, state: TopicState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Whether the topic exists (created and not deleted).
    pub fn is_live(&self) -> bool {
        self.state() == TopicState::Live
    }

    /// Whether the topic may deliver: set once its channels and flags are in place.
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    pub(crate) fn start(&self) {
        self.started.store(true, Ordering::Release);
    }

    pub(crate) fn lock_channels(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Channel>>> {
        // The map stays consistent under a panic: every change is a single insert or remove.
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The channel called `name`, if it exists.
    pub fn get_existing_channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.lock_channels().get(name).cloned()
    }

    /// Every channel, in name order.
    pub fn channels(&self) -> Vec<Arc<Channel>> {
        self.lock_channels().values().cloned().collect()
    }
}
