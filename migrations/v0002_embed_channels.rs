//! Schema version 2: each topic's channels move into its record in `topics`
//! (bincode `TopicRecord`), and the `channels` tree is dropped. See `migrations/README.md`.

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::v0001::CHANNELS_TREE;
use super::{bump_version, MigrationError, META_TREE, TOPICS_TREE};
use crate::meta_store::record::{ChannelRecord, TopicRecord};

fn flag(bytes: &[u8], what: &str) -> Result<bool, MigrationError> {
    match bytes {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(MigrationError::Corrupt(format!(
            "{what}: paused flag is not one byte 0 or 1"
        ))),
    }
}

pub(super) fn up(db: &sled::Db) -> Result<(), MigrationError> {
    let meta = db.open_tree(META_TREE)?;
    let topics = db.open_tree(TOPICS_TREE)?;
    let channels = db.open_tree(CHANNELS_TREE)?;

    // A transaction cannot scan, so the new records are built first; the store is opened by
    // this process alone while it migrates, so nothing changes in between.
    let mut records: std::collections::BTreeMap<Vec<u8>, TopicRecord> = Default::default();
    for entry in topics.iter() {
        let (key, value) = entry?;
        let what = format!("topic {:?}", String::from_utf8_lossy(&key));
        records.entry(key.to_vec()).or_default().paused = flag(&value, &what)?;
    }
    let mut channel_keys = Vec::new();
    for entry in channels.iter() {
        let (key, value) = entry?;
        let what = format!("channel key {:?}", String::from_utf8_lossy(&key));
        let split = key.iter().position(|b| *b == 0).ok_or_else(|| {
            MigrationError::Corrupt(format!("{what}: no 0x00 between topic and channel"))
        })?;
        let channel = String::from_utf8(key[split + 1..].to_vec())
            .map_err(|_| MigrationError::Corrupt(format!("{what}: not UTF-8")))?;
        let record = records.entry(key[..split].to_vec()).or_default();
        let paused = flag(&value, &what)?;
        if let Err(at) = record.find_channel(&channel) {
            record.channels.insert(
                at,
                ChannelRecord {
                    name: channel,
                    paused,
                },
            );
        }
        channel_keys.push(key);
    }

    (&meta, &topics, &channels).transaction(|(meta, topics, channels)| {
        for (key, record) in &records {
            topics.insert(key.as_slice(), record.encode())?;
        }
        for key in &channel_keys {
            channels.remove(key)?;
        }
        bump_version(meta, 1)?;
        Ok::<_, ConflictableTransactionError<MigrationError>>(())
    })?;
    db.drop_tree(CHANNELS_TREE)?;
    Ok(())
}
