//! The metadata changes to channels: create (also pre-created from other nodes), delete
//! (also an ephemeral channel's last consumer leaving), pause.

use std::sync::Arc;

use super::{Broker, BrokerError, ChangeEvent, Channel, Topic};
use crate::meta_store::Change;
use crate::names;
use crate::queue::ChannelCursor;

impl Broker {
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
    pub(super) async fn add_channel_locked(
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

    /// Before a topic created at runtime starts delivering, creates the non-ephemeral channels
    /// it has on other nodes (nsqio/nsq#826), so none of their first messages is lost.
    pub(super) async fn pre_create_channels(self: &Arc<Self>, topic: &Arc<Topic>) {
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

    pub(super) async fn remove_channel(
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
}
