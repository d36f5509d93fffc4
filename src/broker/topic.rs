//! A topic: a named stream that copies each message to every channel. It holds its channels,
//! its paused flag, its lifecycle state, and the queue of messages not yet copied to channels
//! (kept while it is paused, not started, or has no channel yet, as Go nsqd does).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::channel::Channel;
use super::lazy_task::{LazyTask, Spawner};
use crate::message::Message;
use crate::names;
use crate::queue::MessageQueue;

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
    queue: MessageQueue,
    pub message_count: AtomicU64,
    pub message_bytes: AtomicU64,
    /// Bumped on start, pause, unpause and channel changes, so that the pump looks again.
    changes: watch::Sender<u64>,
    exit: CancellationToken,
    pump_task: LazyTask,
}

impl Topic {
    pub(crate) fn new(name: &str, paused: bool, mem_queue_size: usize, spawner: Spawner) -> Self {
        Topic {
            queue: MessageQueue::in_memory(mem_queue_size),
            message_count: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
            changes: watch::channel(0).0,
            exit: CancellationToken::new(),
            pump_task: LazyTask::new(spawner),
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
        self.changed();
    }

    /// Tells the pump to look again (start, pause, channel set).
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// Cancelled when the topic is deleted.
    pub fn exit_token(&self) -> &CancellationToken {
        &self.exit
    }

    /// Publishes messages: they are queued in order, then copied to every channel (by the
    /// pump, started with the first message).
    pub fn put_messages(self: &Arc<Self>, messages: impl IntoIterator<Item = Message>) {
        let topic = self.clone();
        self.pump_task
            .ensure(move |shutdown| topic.run_pump(shutdown));
        for message in messages {
            self.message_count.fetch_add(1, Ordering::Relaxed);
            self.message_bytes
                .fetch_add(message.body.len() as u64, Ordering::Relaxed);
            if let Err(e) = self.queue.put(message) {
                tracing::error!(topic = %self.name, error = %e, "message dropped");
            }
        }
    }

    /// Messages not yet copied to channels.
    pub fn depth(&self) -> usize {
        self.queue.depth()
    }

    /// Of [`Topic::depth`], those beyond `--mem-queue-size`.
    pub fn backend_depth(&self) -> usize {
        self.queue.backend_depth()
    }

    /// Drops the messages not yet copied to channels.
    pub fn empty(&self) {
        self.queue.empty();
    }

    /// Copies queued messages to every channel while the topic is started, unpaused and has
    /// channels; stops when the topic is deleted or `shutdown` is cancelled.
    async fn run_pump(self: Arc<Self>, shutdown: CancellationToken) {
        let mut changes = self.changes.subscribe();
        loop {
            // Marked before looking, so a change made while looking is not missed.
            changes.mark_unchanged();
            let channels: Vec<Arc<Channel>> = self.channels();
            let flowing = self.is_started() && !self.is_paused() && !channels.is_empty();
            if !flowing {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.exit.cancelled() => return,
                    _ = changes.changed() => continue,
                }
            }
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = self.exit.cancelled() => return,
                    _ = changes.changed() => break,
                    message = self.queue.next() => {
                        let Some(message) = message else { return };
                        copy_to(&channels, message);
                        // Drain what else is waiting before looking at the other events again.
                        for _ in 0..PUMP_BATCH {
                            match self.queue.try_next() {
                                Some(message) => copy_to(&channels, message),
                                None => break,
                            }
                        }
                    }
                }
            }
        }
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
        self.changed();
    }

    pub(crate) fn mark_gone(&self) {
        self.set_state(TopicState::Gone);
        self.exit.cancel();
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

/// How many waiting messages the pump copies before it checks for pause and channel changes.
const PUMP_BATCH: usize = 1024;

/// Gives each live channel its own copy of `message` (bodies are shared).
fn copy_to(channels: &[Arc<Channel>], message: Message) {
    let live: Vec<&Arc<Channel>> = channels.iter().filter(|c| !c.is_deleted()).collect();
    let Some((last, rest)) = live.split_last() else {
        return;
    };
    for channel in rest {
        deliver(channel, message.clone());
    }
    deliver(last, message);
}

fn deliver(channel: &Arc<Channel>, message: Message) {
    if message.deferred_ms == 0 {
        channel.put(message);
    } else {
        let delay = std::time::Duration::from_millis(u64::from(message.deferred_ms));
        channel.put_deferred(message, delay);
    }
}
