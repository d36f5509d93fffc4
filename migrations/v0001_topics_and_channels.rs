//! Schema version 1: tree `topics` maps a topic name to a one-byte paused flag; tree `channels`
//! maps `topic 0x00 channel` to a one-byte paused flag.

use sled::Transactional;

use super::{bump_version, MigrationError, META_TREE, TOPICS_TREE};

/// The channels tree of version 1 (dropped by version 2).
pub(crate) const CHANNELS_TREE: &str = "channels";

pub(super) fn up(db: &sled::Db) -> Result<(), MigrationError> {
    // Creating an empty tree is not part of any transaction; an empty tree left by a crash
    // before the version bump is what this step makes anyway.
    let meta = db.open_tree(META_TREE)?;
    let topics = db.open_tree(TOPICS_TREE)?;
    let channels = db.open_tree(CHANNELS_TREE)?;
    (&meta, &topics, &channels).transaction(|(meta, _topics, _channels)| bump_version(meta, 0))?;
    Ok(())
}
