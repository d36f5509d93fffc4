//! A topic: a named stream every channel of it reads. It holds its log (every message once,
//! see [`TopicLog`]), its channels, its paused flag and its lifecycle state. Messages wait in
//! the log while the topic is paused, not started, or has no channel yet, as Go nsqd holds
//! them in the topic's queue.
//!
//! A flusher task per topic (started with the first message) fsyncs the log (group commit for
//! `--durable`, else every `--sync-every` messages or `--sync-timeout`), saves the channels'
//! cursors every `--sync-timeout`, and deletes log segments every channel has finished.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use super::channel::Channel;
use super::lazy_task::{LazyTask, Spawner};
use crate::message::Message;
use crate::names;
use crate::queue::topic_log::{AppendError, TopicLog};

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
    log: Arc<TopicLog>,
    pub message_count: AtomicU64,
    pub message_bytes: AtomicU64,
    exit: CancellationToken,
    flusher: LazyTask,
    /// How often cursors are saved.
    save_every: std::time::Duration,
}

impl Topic {
    pub(crate) fn new(
        name: &str,
        paused: bool,
        log: Arc<TopicLog>,
        save_every: std::time::Duration,
        spawner: Spawner,
    ) -> Self {
        Topic {
            log,
            message_count: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
            exit: CancellationToken::new(),
            flusher: LazyTask::new(spawner),
            save_every,
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

    /// The topic's message log.
    pub fn log(&self) -> &Arc<TopicLog> {
        &self.log
    }

    /// Whether delivery to channels is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        self.changed();
    }

    /// Lets channels read while the topic is started, unpaused and has channels.
    pub(crate) fn changed(&self) {
        let flowing = self.is_started() && !self.is_paused() && !self.lock_channels().is_empty();
        self.log.set_flowing(flowing);
    }

    /// Cancelled when the topic is deleted.
    pub fn exit_token(&self) -> &CancellationToken {
        &self.exit
    }

    /// Publishes messages, in order, to every channel. With `--durable`, returns only once
    /// they are fsynced.
    ///
    /// # Errors
    /// [`AppendError`] when they could not be written (or fsynced): none of them is kept.
    pub async fn publish(self: &Arc<Self>, messages: Vec<Message>) -> Result<(), AppendError> {
        self.ensure_flusher();
        let count = messages.len() as u64;
        let bytes: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
        let end = self.log.append(messages)?;
        if self.log.is_durable() {
            self.log.wait_durable(end - count, end).await?;
        }
        self.message_count.fetch_add(count, Ordering::Relaxed);
        self.message_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Starts the flusher unless it runs.
    pub(crate) fn ensure_flusher(self: &Arc<Self>) {
        let topic = self.clone();
        self.flusher
            .ensure(move |shutdown| topic.run_flusher(shutdown));
    }

    /// Messages held for the channels: while the topic is paused (or has no channel yet),
    /// those no channel has read. A flowing topic holds none: its messages count in its
    /// channels' depth, as Go's pump would have moved them there.
    pub fn depth(&self) -> usize {
        if self.log.is_flowing() {
            return 0;
        }
        let end = self.log.end().seq;
        end.saturating_sub(self.unread_from()) as usize
    }

    /// Of [`Topic::depth`], those only on disk.
    pub fn backend_depth(&self) -> usize {
        if self.log.dir().is_none() || self.log.is_flowing() {
            return 0;
        }
        let from = self.unread_from();
        self.log.memory_from().saturating_sub(from) as usize
    }

    /// The first message no channel has read.
    fn unread_from(&self) -> u64 {
        let channels = self.channels();
        if channels.is_empty() {
            return self.log.head().seq;
        }
        channels
            .iter()
            .map(|c| c.cursor().read_position().seq)
            .max()
            .unwrap_or(0)
    }

    /// Drops the messages no channel has taken yet: those waiting for a first channel, or,
    /// while paused, those the channels have not read.
    pub fn empty(&self) {
        self.log.set_head(self.log.end());
        if let Err(e) = self.log.save_head() {
            tracing::warn!(topic = %self.name, error = %e, "cannot save the topic cursor");
        }
        if self.is_paused() {
            for channel in self.channels() {
                channel.cursor().skip_unread();
            }
        }
    }

    /// Fsyncs the log and saves every channel's cursor that changed (a cursor that did not
    /// is saved exactly already), then deletes the log segments every channel has finished.
    pub(crate) async fn flush(self: &Arc<Self>) {
        if self.log.dir().is_none() || !self.is_live() || !self.log.is_loaded() {
            return;
        }
        if let Err(e) = self.log.sync_now().await {
            tracing::warn!(topic = %self.name, error = %e, "cannot fsync the message log");
        }
        let topic = self.clone();
        // Saving cursors fsyncs files: off the async workers.
        let saved = tokio::task::spawn_blocking(move || topic.save_cursors()).await;
        if let Err(e) = saved {
            tracing::warn!(topic = %self.name, error = %e, "saving cursors failed");
        }
    }

    /// Saves every changed cursor and deletes finished segments (blocking: it fsyncs).
    pub(crate) fn save_cursors(&self) {
        let channels = self.channels();
        for channel in channels.iter().filter(|c| !c.is_ephemeral()) {
            channel.save_cursor();
        }
        if channels.iter().all(|c| c.is_ephemeral()) {
            if let Err(e) = self.log.save_head() {
                tracing::warn!(topic = %self.name, error = %e, "cannot save the topic cursor");
            }
        }
        // Segments before every reader's watermark (in memory: even when a save failed, what
        // lies before it is finished; a restart from an older save only delivers again) —
        // this is what frees a full disk as consumers catch up.
        let mut keep = channels.iter().map(|c| c.cursor().watermark().pos).min();
        if channels.is_empty() {
            keep = Some(self.log.head().pos);
        }
        if let Some(keep) = keep.filter(|_| self.is_live()) {
            self.log.remove_before(keep);
        }
    }

    /// Runs the log's syncer and saves cursors every `--sync-timeout`, until the topic is
    /// deleted or `shutdown` is cancelled (the broker saves everything itself at shutdown).
    async fn run_flusher(self: Arc<Self>, shutdown: CancellationToken) {
        let stop = CancellationToken::new();
        let syncer = tokio::spawn(self.log.clone().run_syncer(stop.clone()));
        let mut ticks = tokio::time::interval(self.save_every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.exit.cancelled() => break,
                _ = ticks.tick() => self.flush().await,
            }
        }
        stop.cancel();
        if let Err(e) = syncer.await {
            tracing::warn!(topic = %self.name, error = %e, "log syncer failed");
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
        self.log.set_flowing(false);
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
