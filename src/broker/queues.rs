//! Where the broker's messages live: each topic's log and each channel's cursor into it,
//! opened, warmed up at boot and saved exactly at shutdown.

use std::sync::Arc;

use super::{Broker, Channel, Topic};
use crate::names;
use crate::queue::{self, ChannelCursor, LogSettings, TopicLog};

impl Broker {
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

    /// The directory holding every topic's log (`None`: logs are in memory).
    pub fn queue_root(&self) -> Option<&std::path::Path> {
        self.config.queue_root.as_deref()
    }

    /// Where `topic`'s log lives on disk (`None`: in memory).
    pub fn topic_dir(&self, topic: &str) -> Option<std::path::PathBuf> {
        let root = self.config.queue_root.as_ref()?;
        (!names::is_ephemeral(topic)).then(|| root.join(topic))
    }

    pub(super) fn open_log(&self, name: &str) -> Arc<TopicLog> {
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

    pub(super) fn new_topic(&self, name: &str, paused: bool, log: Arc<TopicLog>) -> Arc<Topic> {
        Arc::new(Topic::new(
            name,
            paused,
            log,
            self.config.log.sync_timeout,
            self.spawner(),
        ))
    }

    pub(super) fn new_channel(
        &self,
        name: &str,
        paused: bool,
        cursor: ChannelCursor,
    ) -> Arc<Channel> {
        let latency = (!self.config.e2e_percentiles.is_empty()).then_some(self.config.e2e_window);
        Arc::new(Channel::new(
            name,
            paused,
            cursor,
            latency,
            self.config.max_defer,
            self.spawner(),
        ))
    }

    /// Where a channel's cursor is saved (`None`: ephemeral or in memory).
    pub(super) fn channel_state_path(
        &self,
        topic: &Topic,
        channel: &str,
    ) -> Option<std::path::PathBuf> {
        let dir = topic.log().dir()?;
        (!names::is_ephemeral(channel)).then(|| queue::channel_state_path(dir, channel))
    }
}
