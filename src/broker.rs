//! The broker: the registry of topics and their channels, and the one place metadata changes.
//!
//! Every change runs in three steps, in this order: persist it to the [`MetaStore`] (skipped
//! while loading and for ephemeral names), apply it to memory, then publish a [`ChangeEvent`].
//! Changes to one topic are serialised, and each runs on its own task so that a caller that
//! goes away (an HTTP client hanging up) cannot leave a change half done. The broker owns
//! those tasks: once shutdown begins ([`Broker::stop_changes`]) a new change fails with
//! [`BrokerError::Exiting`], and shutdown waits for the running ones before the store closes.
//!
//! The parts live beside it: `change` (how a change runs: persist, announce, detach),
//! `topic_changes` and `channel_changes` (the changes themselves), `registry` (the topics and
//! clients known), `queues` (each topic's log and channel cursors), `health`.

mod change;
mod channel;
mod channel_changes;
mod client;
mod event;
mod flights;
mod health;
pub mod latency;
mod lazy_task;
mod queues;
mod registry;
mod topic;
mod topic_changes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use channel::{Channel, FlightError};
pub use client::{state as client_state, AuthInfo, ClientInfo, Identity, TlsInfo, TransportInfo};
pub use event::ChangeEvent;
pub use topic::Topic;

use crate::guid::GuidFactory;
use crate::message::MessageId;
use crate::meta_store::{MetaStore, StoreError};
use crate::queue::{DiskHealth, LogSettings};

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
    /// The longest a message may be deferred (`--max-req-timeout`): a due time restored from
    /// disk that lies further ahead (the wall clock stepped back meanwhile) is held this long.
    pub max_defer: std::time::Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            queue_root: None,
            log: LogSettings::default(),
            node_id: 0,
            e2e_percentiles: Vec::new(),
            e2e_window: std::time::Duration::from_secs(600),
            max_defer: std::time::Duration::from_secs(3600),
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
    /// Owns every metadata change running.
    changes: change::Changes,
    /// Owns every topic pump and channel timer.
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Broker {
    /// A broker with no topics, persisting to `store`, with default settings.
    pub fn new(store: Arc<MetaStore>) -> Arc<Self> {
        Self::with_config(store, BrokerConfig::default())
    }

    /// A broker with no topics, persisting to `store`, whose message IDs are unique within
    /// this process.
    pub fn with_config(store: Arc<MetaStore>, config: BrokerConfig) -> Arc<Self> {
        let guids = GuidFactory::new(config.node_id);
        Self::with_guids(store, config, guids)
    }

    /// A broker with no topics, persisting to `store`, taking message IDs from `guids` (the
    /// daemon's resumes from the data path's lease, so IDs stay increasing across restarts).
    pub fn with_guids(
        store: Arc<MetaStore>,
        config: BrokerConfig,
        guids: GuidFactory,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Arc::new(Broker {
            store,
            guids,
            channel_source: std::sync::RwLock::new(None),
            config,
            topics: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            is_loading: AtomicBool::new(false),
            events,
            store_failure: Mutex::new(None),
            disk_health: Arc::new(DiskHealth::default()),
            changes: change::Changes::default(),
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

    /// Refuses new metadata changes and waits for those running ([`Broker::stop_changes`],
    /// if shutdown has not already), stops every topic flusher and channel timer and waits for
    /// them, and lets go of the channel source (which holds the broker: the cycle must be
    /// broken for the store to close). After it, nothing the broker runs touches the store.
    pub async fn close(&self) {
        self.stop_changes().await;
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

    /// Sets where new topics learn the channels they have elsewhere (the lookup loop).
    pub fn set_channel_source(&self, source: Arc<dyn ChannelSource>) {
        *self
            .channel_source
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(source);
    }
}
