//! Boot replay: rebuilds the broker's topics, channels and paused flags from the store.
//!
//! The broker's `is_loading` flag is set for the whole replay, so nothing replayed is
//! persisted again or announced; each topic is registered with its channels and flags already
//! in place, and only then started. Announcing everything is the lookup loop's job, after this.
//!
//! Metadata and message files must agree: a stored topic whose queue directory is missing
//! starts empty, with a warning; a queue directory with no topic in the store is reported and
//! left alone (it may be the only copy of someone's messages).

use std::collections::HashSet;
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
    /// Stored topics whose queue files were missing (they start empty).
    pub missing_queues: Vec<String>,
    /// Queue directories with no topic in the store (kept, not deleted).
    pub orphan_queues: Vec<String>,
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
    let queue_dirs = queue_dirs(broker);
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
        if queue_dirs
            .as_ref()
            .is_some_and(|dirs| !dirs.contains(&topic.name))
        {
            report.missing_queues.push(topic.name.clone());
        }
        broker.restore_topic(topic)?;
        report.topics += 1;
        report.channels += topic.channels.len();
    }
    if let Some(dirs) = &queue_dirs {
        let known: HashSet<&str> = metadata.topics.iter().map(|t| t.name.as_str()).collect();
        report.orphan_queues = dirs
            .iter()
            .filter(|name| !known.contains(name.as_str()))
            .cloned()
            .collect();
        report.orphan_queues.sort();
    }
    warn_about(&report);
    Ok(report)
}

/// The topic directories under the queue root, read once (`None`: no root, or unreadable).
fn queue_dirs(broker: &Broker) -> Option<HashSet<String>> {
    let root = broker.queue_root()?;
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(HashSet::new()),
        Err(e) => {
            tracing::warn!(root = %root.display(), error = %e, "cannot list queue directories");
            return None;
        }
    };
    Some(
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    )
}

/// At most this many names are listed in one warning.
const NAMES_LISTED: usize = 10;

fn listed(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(NAMES_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_LISTED {
        text.push_str(&format!(" and {} more", names.len() - NAMES_LISTED));
    }
    text
}

fn warn_about(report: &LoadReport) {
    if !report.missing_queues.is_empty() {
        tracing::warn!(
            count = report.missing_queues.len(),
            topics = %listed(&report.missing_queues),
            "queue files missing for stored topics: they start empty"
        );
    }
    if !report.orphan_queues.is_empty() {
        tracing::warn!(
            count = report.orphan_queues.len(),
            topics = %listed(&report.orphan_queues),
            "queue files for topics not in the metadata store: kept, not loaded (create the topic to serve them, or remove the directories)"
        );
    }
}
