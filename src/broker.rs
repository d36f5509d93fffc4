//! The broker: the registry of topics and their channels, and the one place metadata changes.
//!
//! Every change runs in three steps, in this order: persist it to the [`MetaStore`] (skipped
//! while loading and for ephemeral names), apply it to memory, then publish a [`ChangeEvent`].
//! Changes to one topic are serialised, and each runs on its own task so that a caller that
//! goes away (an HTTP client hanging up) cannot leave a change half done.

mod channel;
mod client;
mod event;
pub mod latency;
mod lazy_task;
mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use channel::{Channel, FlightError};
pub use client::{state as client_state, ClientInfo, Identity};
pub use event::ChangeEvent;
pub use topic::Topic;
use topic::TopicState;

use crate::guid::GuidFactory;
use crate::message::MessageId;
use crate::meta_store::{Change, MetaStore, StoreError};
use crate::metadata::TopicMeta;
use crate::names;
use crate::queue::{self, ChannelCursor, DiskHealth, LogSettings, TopicLog};

/// How many events may wait for a slow subscriber before it is told it lagged (and must
/// resynchronise from a snapshot).
const EVENT_BACKLOG: usize = 4096;

/// Why a broker operation failed. A failed change leaves store and memory as they were.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid topic name {0:?}")]
    InvalidTopic(String),
    #[error("invalid channel name {0:?}")]
    InvalidChannel(String),
    #[error("topic {0:?} not found")]
    TopicNotFound(String),
    #[error("channel {0:?} not found")]
    ChannelNotFound(String),
    #[error("cannot persist the change: {0}")]
    Store(#[from] StoreError),
    #[error("the broker is shutting down")]
    Exiting,
    #[error("restoring a topic is only allowed while loading")]
    NotLoading,
}

/// Where a new topic learns the channels it has on other nodes (lookupd knows them).
pub trait ChannelSource: Send + Sync {
    /// The channel names `topic` has elsewhere; empty when unknown or unreachable. Must return
    /// promptly (a topic waits for it before delivering).
    fn channels_for<'a>(
        &'a self,
        topic: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send + 'a>>;
}

/// What the broker needs from the options.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where topic logs live (`<data-path>/queues`); `None`: in memory, unbounded (tests).
    pub queue_root: Option<std::path::PathBuf>,
    /// How logs store and sync; `mem_queue_size` is the messages each topic also keeps in
    /// memory (ephemeral topics: at most keep).
    pub log: LogSettings,
    /// The node part of message IDs.
    pub node_id: i64,
    /// End-to-end latency percentiles to track (none: not tracked).
    pub e2e_percentiles: Vec<f64>,
    /// The window they are computed over.
    pub e2e_window: std::time::Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            queue_root: None,
            log: LogSettings::default(),
            node_id: 0,
            e2e_percentiles: Vec::new(),
            e2e_window: std::time::Duration::from_secs(600),
        }
    }
}

/// The topic registry. Shared as `Arc<Broker>`.
pub struct Broker {
    store: Arc<MetaStore>,
    config: BrokerConfig,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    is_loading: AtomicBool,
    events: broadcast::Sender<ChangeEvent>,
    store_failure: Mutex<Option<String>>,
    disk_health: Arc<DiskHealth>,
    guids: GuidFactory,
    channel_source: std::sync::RwLock<Option<Arc<dyn ChannelSource>>>,
    /// Owns every topic pump and channel timer.
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Broker {
    /// A broker with no topics, persisting to `store`, with default settings.
    pub fn new(store: Arc<MetaStore>) -> Arc<Self> {
        Self::with_config(store, BrokerConfig::default())
    }

    /// A broker with no topics, persisting to `store`.
    pub fn with_config(store: Arc<MetaStore>, config: BrokerConfig) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Arc::new(Broker {
            store,
            guids: GuidFactory::new(config.node_id),
            channel_source: std::sync::RwLock::new(None),
            config,
            topics: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            is_loading: AtomicBool::new(false),
            events,
            store_failure: Mutex::new(None),
            disk_health: Arc::new(DiskHealth::default()),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        })
    }

    /// The end-to-end latency percentiles tracked (empty: none).
    pub fn e2e_percentiles(&self) -> &[f64] {
        &self.config.e2e_percentiles
    }

    /// A new message ID.
    pub fn next_id(&self) -> MessageId {
        self.guids.next()
    }

    /// Saves every topic's messages and channel cursors exactly (fsynced), so a restart
    /// delivers what was not finished, and nothing finished. Call once no client is left.
    pub async fn save_queues(&self) {
        let topics: Vec<Arc<Topic>> = self
            .lock_topics()
            .values()
            .filter(|t| t.is_live() && t.log().dir().is_some() && t.log().is_loaded())
            .cloned()
            .collect();
        for topic in &topics {
            if let Err(e) = topic.log().sync_now().await {
                tracing::warn!(topic = topic.name(), error = %e, "cannot fsync the message log");
            }
        }
        let saved = tokio::task::spawn_blocking(move || {
            for topic in &topics {
                topic.save_cursors();
            }
        })
        .await;
        if let Err(e) = saved {
            tracing::error!(error = %e, "saving channel cursors failed");
        }
    }

    /// Opens every topic's log in the background (boot leaves them for first use), and
    /// starts the flusher of each that holds messages, so their channels' cursors are saved as
    /// they are delivered. Stops on shutdown.
    pub fn warm_up_queues(self: &Arc<Self>) {
        if self.config.queue_root.is_none() {
            return;
        }
        let broker = self.clone();
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let topics = broker.topics();
            for chunk in topics.chunks(256) {
                if shutdown.is_cancelled() {
                    return;
                }
                let chunk = chunk.to_vec();
                let opened = tokio::task::spawn_blocking(move || {
                    for topic in &chunk {
                        topic.log().load();
                    }
                    chunk
                })
                .await;
                let Ok(chunk) = opened else { return };
                for topic in chunk
                    .iter()
                    .filter(|t| t.log().end().seq > t.log().first().seq)
                {
                    topic.ensure_flusher();
                }
            }
        });
    }

    /// Stops every topic flusher and channel timer and waits for them, and lets go of the
    /// channel source (which holds the broker: the cycle must be broken for the store to
    /// close).
    pub async fn close(&self) {
        *self
            .channel_source
            .write()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn spawner(&self) -> lazy_task::Spawner {
        lazy_task::Spawner {
            tasks: self.tasks.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// The directory holding every topic's log (`None`: logs are in memory).
    pub fn queue_root(&self) -> Option<&std::path::Path> {
        self.config.queue_root.as_deref()
    }

    /// Where `topic`'s log lives on disk (`None`: in memory).
    pub fn topic_dir(&self, topic: &str) -> Option<std::path::PathBuf> {
        let root = self.config.queue_root.as_ref()?;
        (!names::is_ephemeral(topic)).then(|| root.join(topic))
    }

    fn open_log(&self, name: &str) -> Arc<TopicLog> {
        let settings = self.config.log.clone();
        let health = self.disk_health.clone();
        let log = match self.topic_dir(name) {
            Some(dir) => TopicLog::open(&dir, settings, health),
            None if self.config.queue_root.is_none() => TopicLog::in_memory(
                LogSettings {
                    mem_queue_size: usize::MAX,
                    ..settings
                },
                health,
            ),
            None => TopicLog::in_memory(settings, health),
        };
        Arc::new(log)
    }

    fn new_topic(&self, name: &str, paused: bool, log: Arc<TopicLog>) -> Arc<Topic> {
        Arc::new(Topic::new(
            name,
            paused,
            log,
            self.config.log.sync_timeout,
            self.spawner(),
        ))
    }

    fn new_channel(&self, name: &str, paused: bool, cursor: ChannelCursor) -> Arc<Channel> {
        let latency = (!self.config.e2e_percentiles.is_empty()).then_some(self.config.e2e_window);
        Arc::new(Channel::new(name, paused, cursor, latency, self.spawner()))
    }

    /// Where a channel's cursor is saved (`None`: ephemeral or in memory).
    fn channel_state_path(&self, topic: &Topic, channel: &str) -> Option<std::path::PathBuf> {
        let dir = topic.log().dir()?;
        (!names::is_ephemeral(channel)).then(|| queue::channel_state_path(dir, channel))
    }

    /// Registers a connected client (for /stats producers).
    pub fn add_client(&self, client: Arc<ClientInfo>) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client.id, client);
    }

    /// Forgets a disconnected client.
    pub fn remove_client(&self, id: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Every connected client, in connection order.
    pub fn clients(&self) -> Vec<Arc<ClientInfo>> {
        client::sorted(&self.clients)
    }

    /// A consumer left `channel`: its in-flight messages are requeued, and an ephemeral
    /// channel left without consumers is deleted (then an ephemeral topic left without
    /// channels).
    pub async fn remove_consumer(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        channel: &Arc<Channel>,
        client: u64,
    ) {
        channel.requeue_client(client);
        let remaining = channel.remove_client(client);
        if remaining > 0 || !channel.is_ephemeral() || channel.is_deleted() {
            return;
        }
        if let Err(e) = self.remove_channel(topic, channel.name(), true).await {
            tracing::debug!(error = %e, "ephemeral channel not deleted");
        }
    }

    /// The store this broker persists to.
    pub fn store(&self) -> &Arc<MetaStore> {
        &self.store
    }

    /// Subscribes to change events. A subscriber that falls more than a few thousand events
    /// behind gets `RecvError::Lagged` and should resynchronise from [`Broker::topics`].
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.events.subscribe()
    }

    /// Whether boot replay is running: nothing is persisted or announced meanwhile.
    pub fn is_loading(&self) -> bool {
        self.is_loading.load(Ordering::Acquire)
    }

    /// Set by the loader around replay.
    pub fn set_loading(&self, loading: bool) {
        self.is_loading.store(loading, Ordering::Release);
    }

    fn lock_topics(&self) -> MutexGuard<'_, HashMap<String, Arc<Topic>>> {
        // Every change to the map is a single insert or remove: a panic cannot leave it torn.
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every live topic, in name order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self
            .lock_topics()
            .values()
            .filter(|t| t.is_live())
            .cloned()
            .collect();
        topics.sort_by(|a, b| a.name().cmp(b.name()));
        topics
    }

    /// The topic called `name` if it exists; never creates one.
    pub fn get_existing_topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.lock_topics()
            .get(name)
            .filter(|t| t.is_live())
            .cloned()
    }

    fn announce(&self, event: ChangeEvent) {
        if !self.is_loading() {
            // No subscriber is not an error: nobody needs telling.
            let _ = self.events.send(event);
        }
    }

    async fn persist(&self, ephemeral: bool, change: Change) -> Result<(), BrokerError> {
        if ephemeral || self.is_loading() {
            return Ok(());
        }
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || store.apply(&change))
            .await
            .map_err(|_| BrokerError::Exiting)?;
        let mut health = self.store_failure.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                *health = None;
                Ok(())
            }
            Err(e) => {
                *health = Some(e.to_string());
                Err(e.into())
            }
        }
    }

    /// `None` while healthy; else why the last metadata change could not be persisted. Cleared
    /// by the next change that persists.
    pub fn health_problem(&self) -> Option<String> {
        let store = self
            .store_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        store.or_else(|| self.disk_health.problem())
    }

    /// Runs `op` on its own task, so the change completes even if the caller is dropped.
    async fn run_detached<T, F>(self: &Arc<Self>, op: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, BrokerError>> + Send + 'static,
    {
        tokio::spawn(op).await.map_err(|_| BrokerError::Exiting)?
    }

    /// The topic called `name`, created (persisted, then registered, then announced) if it
    /// does not exist.
    ///
    /// # Errors
    /// [`BrokerError::InvalidTopic`] for a bad name; [`BrokerError::Store`] when it cannot be
    /// persisted, in which case no topic is created.
    pub async fn get_or_create_topic(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Arc<Topic>, BrokerError> {
        if !names::is_valid_topic_name(name) {
            return Err(BrokerError::InvalidTopic(name.into()));
        }
        if let Some(topic) = self.get_existing_topic(name) {
            return Ok(topic);
        }
        let broker = self.clone();
        let name = name.to_string();
        self.run_detached(async move { broker.create_topic(&name).await })
            .await
    }

    async fn create_topic(self: &Arc<Self>, name: &str) -> Result<Arc<Topic>, BrokerError> {
        loop {
            let (topic, guard) = {
                let mut topics = self.lock_topics();
                match topics.get(name) {
                    Some(topic) => (topic.clone(), None),
                    None => {
                        let log = self.open_log(name);
                        // Its directory exists from now: a restart that finds it missing
                        // knows files were lost.
                        log.load();
                        let topic = self.new_topic(name, false, log);
                        // A fresh mutex is always free.
                        let guard = topic.change_lock.clone().try_lock_owned().ok();
                        topics.insert(name.to_string(), topic.clone());
                        (topic, guard)
                    }
                }
            };
            if guard.is_none() {
                // Someone else is creating or deleting it: wait for them, then look again.
                let state = {
                    let _wait = topic.change_lock.lock().await;
                    topic.state()
                };
                match state {
                    TopicState::Live => return Ok(topic),
                    TopicState::Pending | TopicState::Gone => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                }
            }
            let change = Change::CreateTopic { topic: name.into() };
            if let Err(e) = self.persist(topic.is_ephemeral(), change).await {
                self.unregister(&topic);
                return Err(e);
            }
            topic.set_state(TopicState::Live);
            tracing::info!(topic = name, "TOPIC: created");
            self.announce(ChangeEvent::TopicCreated { topic: name.into() });
            if !self.is_loading() {
                self.pre_create_channels(&topic).await;
                topic.start();
            }
            return Ok(topic);
        }
    }

    fn unregister(&self, topic: &Arc<Topic>) {
        topic.mark_gone();
        let mut topics = self.lock_topics();
        if topics
            .get(topic.name())
            .is_some_and(|t| Arc::ptr_eq(t, topic))
        {
            topics.remove(topic.name());
        }
    }

    /// Deletes the topic and all its channels: persisted, removed, then announced (each
    /// channel's deletion, then the topic's).
    ///
    /// # Errors
    /// [`BrokerError::TopicNotFound`]; [`BrokerError::Store`], leaving the topic in place.
    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> Result<(), BrokerError> {
        let topic = self
            .get_existing_topic(name)
            .ok_or_else(|| BrokerError::TopicNotFound(name.into()))?;
        let broker = self.clone();
        self.run_detached(async move {
            let _guard = topic.change_lock.lock().await;
            if !topic.is_live() {
                return Err(BrokerError::TopicNotFound(topic.name().into()));
            }
            let change = Change::DeleteTopic {
                topic: topic.name().into(),
            };
            broker.persist(topic.is_ephemeral(), change).await?;
            broker.unregister(&topic);
            let channels: Vec<_> = std::mem::take(&mut *topic.lock_channels())
                .into_values()
                .collect();
            for channel in &channels {
                channel.mark_deleted();
                broker.announce(ChangeEvent::ChannelDeleted {
                    topic: topic.name().into(),
                    channel: channel.name().into(),
                });
            }
            for channel in &channels {
                channel.cursor().close(false);
            }
            topic.log().close_and_remove();
            tracing::info!(topic = topic.name(), "TOPIC: deleted");
            broker.announce(ChangeEvent::TopicDeleted {
                topic: topic.name().into(),
            });
            Ok(())
        })
        .await
    }

    /// Pauses or unpauses the topic: persisted, applied, announced. Setting the flag it
    /// already has changes nothing and announces nothing.
    pub async fn set_topic_paused(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        paused: bool,
    ) -> Result<(), BrokerError> {
        let broker = self.clone();
        let topic = topic.clone();
        self.run_detached(async move {
            let _guard = topic.change_lock.lock().await;
            if !topic.is_live() {
                return Err(BrokerError::TopicNotFound(topic.name().into()));
            }
            if topic.is_paused() == paused {
                return Ok(());
            }
            let change = Change::SetTopicPaused {
                topic: topic.name().into(),
                paused,
            };
            broker.persist(topic.is_ephemeral(), change).await?;
            topic.set_paused(paused);
            broker.announce(ChangeEvent::TopicPaused {
                topic: topic.name().into(),
                paused,
            });
            Ok(())
        })
        .await
    }

    /// The channel called `name` of `topic`, created (persisted, registered, announced) if it
    /// does not exist.
    ///
    /// # Errors
    /// [`BrokerError::InvalidChannel`]; [`BrokerError::TopicNotFound`] when the topic was
    /// deleted meanwhile; [`BrokerError::Store`], creating nothing.
    pub async fn get_or_create_channel(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        name: &str,
    ) -> Result<Arc<Channel>, BrokerError> {
        if !names::is_valid_channel_name(name) {
            return Err(BrokerError::InvalidChannel(name.into()));
        }
        if let Some(channel) = topic.get_existing_channel(name) {
            return Ok(channel);
        }
        let broker = self.clone();
        let topic = topic.clone();
        let name = name.to_string();
        self.run_detached(async move {
            let _guard = topic.change_lock.lock().await;
            if !topic.is_live() {
                return Err(BrokerError::TopicNotFound(topic.name().into()));
            }
            broker.add_channel_locked(&topic, &name).await
        })
        .await
    }

    /// Creates the channel unless present; the caller holds the topic's change lock.
    async fn add_channel_locked(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        name: &str,
    ) -> Result<Arc<Channel>, BrokerError> {
        if let Some(channel) = topic.get_existing_channel(name) {
            return Ok(channel);
        }
        let ephemeral = topic.is_ephemeral() || crate::names::is_ephemeral(name);
        let change = Change::CreateChannel {
            topic: topic.name().into(),
            channel: name.into(),
        };
        self.persist(ephemeral, change).await?;
        // The first channel gets what waited for one; later ones start with the next message.
        let log = topic.log().clone();
        let start = if topic.lock_channels().is_empty() {
            log.head()
        } else {
            log.end()
        };
        let cursor = ChannelCursor::new(log, self.channel_state_path(topic, name), start);
        let channel = self.new_channel(name, false, cursor);
        topic.lock_channels().insert(name.into(), channel.clone());
        topic.changed();
        tracing::info!(topic = topic.name(), channel = %name, "CHANNEL: created");
        self.announce(ChangeEvent::ChannelCreated {
            topic: topic.name().into(),
            channel: name.into(),
        });
        Ok(channel)
    }

    /// Sets where new topics learn the channels they have elsewhere (the lookup loop).
    pub fn set_channel_source(&self, source: Arc<dyn ChannelSource>) {
        *self
            .channel_source
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// Before a topic created at runtime starts delivering, creates the non-ephemeral channels
    /// it has on other nodes (nsqio/nsq#826), so none of their first messages is lost.
    async fn pre_create_channels(self: &Arc<Self>, topic: &Arc<Topic>) {
        let source = self
            .channel_source
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(source) = source else { return };
        for name in source.channels_for(topic.name()).await {
            if !names::is_valid_channel_name(&name) || names::is_ephemeral(&name) {
                continue;
            }
            if let Err(e) = self.add_channel_locked(topic, &name).await {
                tracing::warn!(topic = topic.name(), channel = %name, error = %e, "cannot pre-create channel");
            }
        }
    }

    /// Deletes the channel: persisted, removed, announced; its consumers are disconnected. An
    /// ephemeral topic left without channels is deleted too.
    ///
    /// # Errors
    /// [`BrokerError::ChannelNotFound`]; [`BrokerError::Store`], leaving it in place.
    pub async fn delete_channel(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        name: &str,
    ) -> Result<(), BrokerError> {
        self.remove_channel(topic, name, false).await
    }

    async fn remove_channel(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        name: &str,
        only_if_unused: bool,
    ) -> Result<(), BrokerError> {
        let broker = self.clone();
        let topic_ref = topic.clone();
        let name = name.to_string();
        let deleted = self
            .run_detached(async move {
                let topic = topic_ref;
                let _guard = topic.change_lock.lock().await;
                let channel = topic
                    .get_existing_channel(&name)
                    .filter(|_| topic.is_live())
                    .ok_or_else(|| BrokerError::ChannelNotFound(name.clone()))?;
                if only_if_unused && channel.client_count() > 0 {
                    return Ok(false);
                }
                let change = Change::DeleteChannel {
                    topic: topic.name().into(),
                    channel: name.clone(),
                };
                broker
                    .persist(topic.is_ephemeral() || channel.is_ephemeral(), change)
                    .await?;
                topic.lock_channels().remove(&name);
                channel.mark_deleted();
                channel.cursor().close(true);
                if topic.lock_channels().is_empty() {
                    // What is published from now waits for a next first channel.
                    topic.log().set_head(topic.log().end());
                    if let Err(e) = topic.log().save_head() {
                        tracing::warn!(topic = topic.name(), error = %e, "cannot save the topic cursor");
                    }
                }
                topic.changed();
                tracing::info!(topic = topic.name(), channel = %name, "CHANNEL: deleted");
                broker.announce(ChangeEvent::ChannelDeleted {
                    topic: topic.name().into(),
                    channel: name,
                });
                Ok(true)
            })
            .await?;
        if deleted && topic.is_ephemeral() && topic.channels().is_empty() && topic.is_live() {
            match self.delete_topic(topic.name()).await {
                Ok(()) | Err(BrokerError::TopicNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Pauses or unpauses the channel: persisted, applied, announced.
    pub async fn set_channel_paused(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        channel: &Arc<Channel>,
        paused: bool,
    ) -> Result<(), BrokerError> {
        let broker = self.clone();
        let topic = topic.clone();
        let channel = channel.clone();
        self.run_detached(async move {
            let _guard = topic.change_lock.lock().await;
            if channel.is_deleted() || !topic.is_live() {
                return Err(BrokerError::ChannelNotFound(channel.name().into()));
            }
            if channel.is_paused() == paused {
                return Ok(());
            }
            let change = Change::SetChannelPaused {
                topic: topic.name().into(),
                channel: channel.name().into(),
                paused,
            };
            broker
                .persist(topic.is_ephemeral() || channel.is_ephemeral(), change)
                .await?;
            channel.set_paused(paused);
            broker.announce(ChangeEvent::ChannelPaused {
                topic: topic.name().into(),
                channel: channel.name().into(),
                paused,
            });
            Ok(())
        })
        .await
    }

    /// Boot replay of one stored topic: registers it with its channels and paused flags in
    /// place, then starts it. Persists and announces nothing.
    ///
    /// # Errors
    /// [`BrokerError::NotLoading`] outside loading; invalid names are the caller's to skip.
    pub fn restore_topic(&self, meta: &TopicMeta) -> Result<Arc<Topic>, BrokerError> {
        if !self.is_loading() {
            return Err(BrokerError::NotLoading);
        }
        let log = self.open_log(&meta.name);
        let topic = self.new_topic(&meta.name, meta.paused, log.clone());
        {
            let mut channels = topic.lock_channels();
            for channel in &meta.channels {
                let cursor = match self.channel_state_path(&topic, &channel.name) {
                    Some(path) => ChannelCursor::restore(log.clone(), path),
                    None => ChannelCursor::new(log.clone(), None, log.end()),
                };
                channels.insert(
                    channel.name.clone(),
                    self.new_channel(&channel.name, channel.paused, cursor),
                );
            }
        }

        topic.set_state(TopicState::Live);
        self.lock_topics().insert(meta.name.clone(), topic.clone());
        topic.start();
        Ok(topic)
    }
}
