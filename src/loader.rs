//! Boot replay: rebuilds the broker's topics, channels and paused flags from the store.
//!
//! The broker's `is_loading` flag is set for the whole replay, so nothing replayed is
//! persisted again or announced; each topic is registered with its channels and flags already
//! in place, and only then started. Announcing everything is the lookup loop's job, after this.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::{Broker, BrokerError};
use crate::meta_store::StoreError;
use crate::names;

/// Why replay failed. The broker is left with the topics restored so far and `is_loading`
/// cleared.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the metadata store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot restore topic: {0}")]
    Broker(#[from] BrokerError),
    #[error("the store read was cancelled")]
    Cancelled,
}

/// What replay restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub topics: usize,
    pub channels: usize,
    /// Names in the store that are not valid (they are skipped with a warning).
    pub skipped: usize,
    pub elapsed: Duration,
}

/// Replays the store into `broker`.
pub async fn load(broker: &Arc<Broker>) -> Result<LoadReport, LoadError> {
    let started = Instant::now();
    broker.set_loading(true);
    let result = replay(broker).await;
    broker.set_loading(false);
    let mut report = result?;
    report.elapsed = started.elapsed();
    tracing::info!(
        topics = report.topics,
        channels = report.channels,
        skipped = report.skipped,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "metadata loaded"
    );
    Ok(report)
}

async fn replay(broker: &Arc<Broker>) -> Result<LoadReport, LoadError> {
    let store = broker.store().clone();
    let mut metadata = tokio::task::spawn_blocking(move || store.snapshot())
        .await
        .map_err(|_| LoadError::Cancelled)??;
    let mut report = LoadReport::default();
    for topic in &mut metadata.topics {
        if !names::is_valid_topic_name(&topic.name) || names::is_ephemeral(&topic.name) {
            tracing::warn!(topic = %topic.name, "skipping creation of invalid topic");
            report.skipped += 1;
            continue;
        }
        topic.channels.retain(|channel| {
            let keep = names::is_valid_channel_name(&channel.name) && !names::is_ephemeral(&channel.name);
            if !keep {
                tracing::warn!(topic = %topic.name, channel = %channel.name, "skipping creation of invalid channel");
                report.skipped += 1;
            }
            keep
        });
        broker.restore_topic(topic)?;
        report.topics += 1;
        report.channels += topic.channels.len();
    }
    Ok(report)
}
