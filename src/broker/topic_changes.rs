//! The metadata changes to topics: create, delete, pause, and boot's restore.

use std::sync::Arc;

use super::topic::TopicState;
use super::{Broker, BrokerError, ChangeEvent, Topic};
use crate::meta_store::Change;
use crate::metadata::TopicMeta;
use crate::names;
use crate::queue::ChannelCursor;

impl Broker {
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
