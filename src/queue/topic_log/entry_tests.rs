//! Which directory entries are made durable before a claim depends on them: the entries
//! leading to a new topic's first segment before its first durable `OK`, a new segment's entry
//! at a roll, and a deleted topic's removal before the delete returns.

use bytes::Bytes;

use super::*;
use crate::queue::segment_log::synced_dirs_under;

fn message(n: u8) -> Message {
    Message::new([n; 16], Bytes::from(vec![n; 3]))
}

/// A `--durable` OK for the first message of a new topic: the topic directory, the queue root
/// and the data path were fsynced (so the segment's entry, the topic directory's entry and the
/// queue root's entry are durable), and a segment started by a roll had its entry fsynced
/// before any record was written to it.
#[tokio::test]
async fn a_durable_ok_follows_fsyncs_of_every_entry_leading_to_the_record() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join(crate::queue::QUEUES_DIR);
    let dir = root.join("fresh");
    let settings = LogSettings {
        durable: true,
        max_bytes_per_file: 100,
        ..LogSettings::default()
    };
    let log = Arc::new(TopicLog::open(
        &dir,
        settings,
        Arc::new(DiskHealth::default()),
    ));
    let to = log.append(vec![message(1)]).unwrap();
    log.wait_durable(to - 1, to).await.unwrap();
    let synced = synced_dirs_under(data.path());
    for entry in [&dir, &root, &data.path().to_path_buf()] {
        assert!(synced.contains(entry), "{} in {synced:?}", entry.display());
    }

    // A roll: the new segment's entry is durable once the append returns.
    let ancestors = |synced: &[std::path::PathBuf]| {
        synced
            .iter()
            .filter(|d| **d == root || **d == data.path())
            .count()
    };
    let before = synced_dirs_under(data.path());
    let to = log.append(vec![message(2)]).unwrap();
    assert_eq!(log.end().pos.segment, 1, "the second message rolled");
    let after = synced_dirs_under(data.path());
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(
        after.last(),
        Some(&dir),
        "the topic directory, for the new segment"
    );
    log.wait_durable(to - 1, to).await.unwrap();
    // The entries above the topic directory are fsynced once per process, not per fsync.
    assert_eq!(
        ancestors(&synced_dirs_under(data.path())),
        ancestors(&before)
    );
}

/// A deleted topic's directory is gone from the queue root durably once the delete returns:
/// a cut that brought it back would give its messages to a topic created later by that name.
#[tokio::test]
async fn a_topic_delete_is_durable_when_it_returns() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join(crate::queue::QUEUES_DIR);
    let dir = root.join("doomed");
    let log = Arc::new(TopicLog::open(
        &dir,
        LogSettings::default(),
        Arc::new(DiskHealth::default()),
    ));
    log.append(vec![message(1)]).unwrap();
    log.sync_now().await.unwrap();
    let before = synced_dirs_under(&root)
        .iter()
        .filter(|d| **d == root)
        .count();
    log.close_and_remove();
    assert!(!dir.exists());
    let after = synced_dirs_under(&root)
        .iter()
        .filter(|d| **d == root)
        .count();
    assert_eq!(
        after,
        before + 1,
        "the queue root fsynced after the removal"
    );
}
