//! Message storage: each topic's log ([`TopicLog`]: every message once, on disk or, for
//! ephemeral topics, in memory) and each channel's cursor into it ([`ChannelCursor`]).
//!
//! Layout on disk, under `<data-path>/queues/<topic>/`: the log's segment files
//! (`<number>.log`, damaged bytes kept aside in `<number>.log.bad`), `topic.state` (where a
//! first channel starts reading) and `channels/<channel>.state` (each channel's saved place).
//!
//! Why a topic log rather than a queue per channel (as Go nsqd has): a message is written and
//! fsynced once however many channels read it, so adding channels does not multiply the cost
//! of a durable publish. A channel costs a small state file, not a copy of the stream.

pub mod channel_cursor;
pub mod cursor_file;
pub mod disk_health;
pub mod segment_log;
pub mod topic_log;

pub use channel_cursor::ChannelCursor;
pub use disk_health::DiskHealth;
pub use topic_log::{AppendError, LogSettings, TopicLog};

/// The directory, under the data path, holding one directory per topic.
pub const QUEUES_DIR: &str = "queues";

/// The directory, in a topic's, holding its channels' saved cursors.
pub const CHANNELS_DIR: &str = "channels";

/// Where `channel`'s cursor is saved in the topic directory `topic_dir`.
pub fn channel_state_path(topic_dir: &std::path::Path, channel: &str) -> std::path::PathBuf {
    topic_dir
        .join(CHANNELS_DIR)
        .join(format!("{channel}.state"))
}
