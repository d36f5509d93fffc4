//! The metadata store on real sled in a temp dir: every change kind, reopening, schema
//! migration from version 1, refusal of a newer schema, import, corrupt records, and the loader
//! proving that boot replay writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rnsq::broker::{Broker, ChangeEvent};
use rnsq::meta_store::{
    Change, ImportMode, ImportSummary, MetaStore, OpenError, StoreError, SCHEMA_VERSION, STORE_DIR,
};
use rnsq::metadata::{ChannelMeta, Metadata, TopicMeta};
use tokio::sync::broadcast::error::TryRecvError;

/// A topic as `(name, paused, [(channel, paused)])`.
type TopicView = (String, bool, Vec<(String, bool)>);

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(STORE_DIR)
}

fn open(path: &Path) -> MetaStore {
    MetaStore::open(path).expect("store opens")
}

fn topic(name: &str, paused: bool, channels: &[(&str, bool)]) -> TopicMeta {
    TopicMeta {
        name: name.into(),
        paused,
        channels: channels
            .iter()
            .map(|(name, paused)| ChannelMeta {
                name: (*name).into(),
                paused: *paused,
            })
            .collect(),
    }
}

fn meta(topics: Vec<TopicMeta>) -> Metadata {
    Metadata { topics }
}

fn create_topic(name: &str) -> Change {
    Change::CreateTopic { topic: name.into() }
}

fn create_channel(topic: &str, channel: &str) -> Change {
    Change::CreateChannel {
        topic: topic.into(),
        channel: channel.into(),
    }
}

fn pause_topic(topic: &str, paused: bool) -> Change {
    Change::SetTopicPaused {
        topic: topic.into(),
        paused,
    }
}

fn pause_channel(topic: &str, channel: &str, paused: bool) -> Change {
    Change::SetChannelPaused {
        topic: topic.into(),
        channel: channel.into(),
        paused,
    }
}

/// Applies `change` and asserts how much the write counter moved (0 for a no-op, else 1).
fn apply_counted(store: &MetaStore, change: Change, counted: u64) {
    let before = store.write_count();
    store
        .apply(&change)
        .unwrap_or_else(|e| panic!("{change:?}: {e}"));
    assert_eq!(
        store.write_count() - before,
        counted,
        "write_count after {change:?}"
    );
}

/// The schema version stored on disk, read with sled directly (the store must be closed).
fn stored_version(path: &Path) -> u32 {
    let db = common::open_sled(path);
    let meta = db.open_tree("meta").expect("meta tree");
    let bytes = meta
        .get(b"schema_version")
        .expect("read version")
        .expect("version key present");
    u32::from_be_bytes(bytes.as_ref().try_into().expect("4-byte version"))
}

#[test]
fn every_change_kind_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&store_path(&dir));
    assert_eq!(store.snapshot().unwrap(), Metadata::default());
    assert_eq!(store.write_count(), 0);

    // Topics: create, and a repeat is a no-op.
    apply_counted(&store, create_topic("alpha"), 1);
    apply_counted(&store, create_topic("alpha"), 0);

    // Creating a channel creates its topic.
    apply_counted(&store, create_channel("beta", "c2"), 1);
    apply_counted(&store, create_channel("beta", "c1"), 1);
    apply_counted(&store, create_channel("beta", "c1"), 0);
    assert_eq!(
        store.snapshot().unwrap(),
        meta(vec![
            topic("alpha", false, &[]),
            topic("beta", false, &[("c1", false), ("c2", false)]),
        ])
    );

    // Pause and unpause a topic; setting the flag it has is a no-op.
    apply_counted(&store, pause_topic("alpha", true), 1);
    apply_counted(&store, pause_topic("alpha", true), 0);
    // Pausing an absent topic creates it, paused.
    apply_counted(&store, pause_topic("gamma", true), 1);

    // Pause and unpause a channel; pausing an absent channel creates it and its topic.
    apply_counted(&store, pause_channel("beta", "c2", true), 1);
    apply_counted(&store, pause_channel("beta", "c2", true), 0);
    apply_counted(&store, pause_channel("delta", "d1", true), 1);
    assert_eq!(
        store.snapshot().unwrap(),
        meta(vec![
            topic("alpha", true, &[]),
            topic("beta", false, &[("c1", false), ("c2", true)]),
            topic("delta", false, &[("d1", true)]),
            topic("gamma", true, &[]),
        ])
    );

    apply_counted(&store, pause_topic("alpha", false), 1);
    apply_counted(&store, pause_channel("beta", "c2", false), 1);
    apply_counted(&store, pause_channel("beta", "c2", false), 0);

    // Delete a channel: the topic stays; deleting an absent channel or a channel of an absent
    // topic is a no-op (and creates nothing).
    apply_counted(
        &store,
        Change::DeleteChannel {
            topic: "beta".into(),
            channel: "c1".into(),
        },
        1,
    );
    apply_counted(
        &store,
        Change::DeleteChannel {
            topic: "beta".into(),
            channel: "c1".into(),
        },
        0,
    );
    apply_counted(
        &store,
        Change::DeleteChannel {
            topic: "nowhere".into(),
            channel: "c1".into(),
        },
        0,
    );

    // Deleting a topic removes its channels; deleting an absent topic is a no-op.
    apply_counted(&store, create_channel("delta", "d2"), 1);
    apply_counted(
        &store,
        Change::DeleteTopic {
            topic: "delta".into(),
        },
        1,
    );
    apply_counted(
        &store,
        Change::DeleteTopic {
            topic: "delta".into(),
        },
        0,
    );
    assert_eq!(
        store.snapshot().unwrap(),
        meta(vec![
            topic("alpha", false, &[]),
            topic("beta", false, &[("c2", false)]),
            topic("gamma", true, &[]),
        ])
    );
    // A topic created again after deletion starts with no channels.
    apply_counted(&store, create_topic("delta"), 1);
    assert_eq!(
        store.snapshot().unwrap().topic("delta"),
        Some(&topic("delta", false, &[]))
    );
    assert_eq!(store.write_count(), 13);

    let report = store.check().unwrap();
    assert_eq!(report.schema_version, SCHEMA_VERSION);
    assert_eq!(
        (
            report.topics,
            report.paused_topics,
            report.channels,
            report.paused_channels
        ),
        (4, 1, 1, 0)
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn reopening_gives_back_the_same_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = open(&path);
    for change in [
        create_topic("orders"),
        create_channel("orders", "billing"),
        create_channel("orders", "archive"),
        pause_channel("orders", "archive", true),
        pause_topic("audit", true),
        create_channel("signups", "mailer"),
        pause_topic("signups", true),
        pause_channel("signups", "mailer", true),
        create_topic("scratch"),
        Change::DeleteTopic {
            topic: "scratch".into(),
        },
    ] {
        store.apply(&change).unwrap();
    }
    let before = store.snapshot().unwrap();
    assert_eq!(
        before,
        meta(vec![
            topic("audit", true, &[]),
            topic("orders", false, &[("archive", true), ("billing", false)]),
            topic("signups", true, &[("mailer", true)]),
        ])
    );
    let check_before = store.check().unwrap();
    drop(store);

    let store = open(&path);
    assert_eq!(store.snapshot().unwrap(), before);
    assert_eq!(store.check().unwrap(), check_before);
    assert_eq!(
        store.write_count(),
        0,
        "opening a current store writes nothing"
    );
    drop(store);
    assert_eq!(stored_version(&path), SCHEMA_VERSION);

    // And once more, after sled itself had it open.
    let store = open(&path);
    assert_eq!(store.snapshot().unwrap(), before);
}

/// Builds a schema-version-1 store by hand.
fn write_v1_store(path: &Path) {
    let db = common::open_sled(path);
    let meta = db.open_tree("meta").unwrap();
    let topics = db.open_tree("topics").unwrap();
    let channels = db.open_tree("channels").unwrap();
    meta.insert(b"schema_version", &1u32.to_be_bytes()).unwrap();
    topics.insert(b"alpha", &[0u8]).unwrap();
    topics.insert(b"beta", &[1u8]).unwrap();
    topics.insert(b"empty", &[0u8]).unwrap();
    let channel_key = |topic: &str, channel: &str| {
        let mut key = topic.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(channel.as_bytes());
        key
    };
    channels.insert(channel_key("alpha", "c2"), &[1u8]).unwrap();
    channels.insert(channel_key("alpha", "c1"), &[0u8]).unwrap();
    channels.insert(channel_key("beta", "b1"), &[1u8]).unwrap();
    // A channel whose topic has no key of its own.
    channels
        .insert(channel_key("orphan", "lonely"), &[1u8])
        .unwrap();
    channels
        .insert(channel_key("orphan", "again"), &[0u8])
        .unwrap();
    db.flush().unwrap();
}

#[test]
fn an_older_store_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    write_v1_store(&path);
    assert_eq!(stored_version(&path), 1);

    let expected = meta(vec![
        topic("alpha", false, &[("c1", false), ("c2", true)]),
        topic("beta", true, &[("b1", true)]),
        topic("empty", false, &[]),
        topic("orphan", false, &[("again", false), ("lonely", true)]),
    ]);
    let store = open(&path);
    assert_eq!(store.snapshot().unwrap(), expected);
    let report = store.check().unwrap();
    assert_eq!(report.schema_version, SCHEMA_VERSION);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        (
            report.topics,
            report.paused_topics,
            report.channels,
            report.paused_channels
        ),
        (4, 1, 5, 3)
    );
    // The migrated store takes changes in the new layout.
    store.apply(&create_channel("orphan", "new")).unwrap();
    store
        .apply(&Change::DeleteTopic {
            topic: "beta".into(),
        })
        .unwrap();
    let after_changes = store.snapshot().unwrap();
    drop(store);

    // On disk: the current version, and the version-1 channels tree is gone.
    {
        let db = common::open_sled(&path);
        let version = db
            .open_tree("meta")
            .unwrap()
            .get(b"schema_version")
            .unwrap();
        assert_eq!(version.as_deref(), Some(&SCHEMA_VERSION.to_be_bytes()[..]));
        let trees: Vec<Vec<u8>> = db.tree_names().iter().map(|n| n.to_vec()).collect();
        assert!(
            !trees.contains(&b"channels".to_vec()),
            "the version-1 channels tree should be dropped: {trees:?}"
        );
    }

    // A further reopen works and sees the same metadata (no second migration).
    let store = open(&path);
    assert_eq!(store.snapshot().unwrap(), after_changes);
    assert_eq!(
        after_changes,
        meta(vec![
            topic("alpha", false, &[("c1", false), ("c2", true)]),
            topic("empty", false, &[]),
            topic(
                "orphan",
                false,
                &[("again", false), ("lonely", true), ("new", false)]
            ),
        ])
    );
}

#[test]
fn a_failed_migration_keeps_the_older_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    write_v1_store(&path);
    {
        // A paused flag that is neither 0 nor 1.
        let db = common::open_sled(&path);
        db.open_tree("topics")
            .unwrap()
            .insert(b"beta", &[7u8])
            .unwrap();
        db.flush().unwrap();
    }
    match MetaStore::open(&path) {
        Err(OpenError::Migration {
            version, reason, ..
        }) => {
            assert_eq!(version, 2);
            assert!(reason.contains("beta"), "{reason}");
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    {
        // Still version 1, with the version-1 channels intact; repair the flag.
        assert_eq!(stored_version(&path), 1);
        let db = common::open_sled(&path);
        assert_eq!(db.open_tree("channels").unwrap().len(), 5);
        db.open_tree("topics")
            .unwrap()
            .insert(b"beta", &[1u8])
            .unwrap();
        db.flush().unwrap();
    }
    let store = open(&path);
    assert_eq!(
        store.snapshot().unwrap().topic("beta"),
        Some(&topic("beta", true, &[("b1", true)]))
    );
}

#[test]
fn a_newer_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    {
        let store = open(&path);
        store.apply(&create_channel("kept", "c")).unwrap();
    }
    let newer = SCHEMA_VERSION + 1;
    {
        let db = common::open_sled(&path);
        db.open_tree("meta")
            .unwrap()
            .insert(b"schema_version", &newer.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }

    let error = MetaStore::open(&path).expect_err("a newer store must be refused");
    let message = error.to_string();
    match error {
        OpenError::TooNew {
            found, supported, ..
        } => assert_eq!((found, supported), (newer, SCHEMA_VERSION)),
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert!(
        message.contains(&format!("schema version {newer}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("up to {SCHEMA_VERSION}")),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");

    // Refusing changed nothing: still the newer version, and a second attempt is refused too.
    assert_eq!(stored_version(&path), newer);
    assert!(matches!(
        MetaStore::open(&path),
        Err(OpenError::TooNew { .. })
    ));
}

/// A store holding `alpha` (paused; channels x paused, y) and `beta` (channel z).
fn populated(path: &Path) -> MetaStore {
    let store = open(path);
    for change in [
        pause_topic("alpha", true),
        pause_channel("alpha", "x", true),
        create_channel("alpha", "y"),
        create_channel("beta", "z"),
    ] {
        store.apply(&change).unwrap();
    }
    store
}

#[test]
fn import_merge_keeps_existing_and_takes_flags() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&store_path(&dir));
    assert!(!store.is_bootstrapped().unwrap());
    let writes = store.write_count();

    let import = meta(vec![
        topic("alpha", false, &[("w", false), ("y", true)]),
        topic("gamma", true, &[("q", true)]),
    ]);
    let summary = store.import(&import, ImportMode::Merge).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            topics_created: 1,
            channels_created: 2,
            topics_removed: 0,
            channels_removed: 0,
            topics_written: 2,
        }
    );
    assert_eq!(
        store.snapshot().unwrap(),
        meta(vec![
            topic("alpha", false, &[("w", false), ("x", true), ("y", true)]),
            topic("beta", false, &[("z", false)]),
            topic("gamma", true, &[("q", true)]),
        ])
    );
    assert!(store.is_bootstrapped().unwrap());
    assert_eq!(store.write_count(), writes + 1, "one import, one write");

    // The same import again changes nothing and writes nothing.
    let again = store.import(&import, ImportMode::Merge).unwrap();
    assert_eq!(
        again,
        ImportSummary {
            topics_written: 0,
            ..ImportSummary::default()
        }
    );
    assert_eq!(store.write_count(), writes + 1);
}

#[test]
fn import_replace_removes_what_the_import_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = populated(&path);

    let import = meta(vec![
        topic("alpha", false, &[("w", true), ("y", true)]),
        topic("gamma", false, &[]),
    ]);
    let summary = store.import(&import, ImportMode::Replace).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            topics_created: 1,   // gamma
            channels_created: 1, // alpha/w
            topics_removed: 1,   // beta
            channels_removed: 2, // alpha/x, beta/z
            topics_written: 3,   // alpha, gamma, beta
        }
    );
    assert_eq!(store.snapshot().unwrap(), import);
    assert!(store.is_bootstrapped().unwrap());
    drop(store);

    // The import is durable: reopened, the store holds exactly the import.
    let store = open(&path);
    assert_eq!(store.snapshot().unwrap(), import);
    assert!(store.is_bootstrapped().unwrap());

    // Replacing with nothing empties the store.
    let summary = store
        .import(&Metadata::default(), ImportMode::Replace)
        .unwrap();
    assert_eq!((summary.topics_removed, summary.channels_removed), (2, 2));
    assert_eq!(store.snapshot().unwrap(), Metadata::default());
}

#[test]
fn an_empty_import_still_marks_the_store_bootstrapped() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = open(&path);
    assert!(!store.is_bootstrapped().unwrap());
    let summary = store.bootstrap(None).unwrap();
    assert_eq!(summary, ImportSummary::default());
    assert!(store.is_bootstrapped().unwrap());
    assert_eq!(store.write_count(), 0, "marking alone changes no topic");
    drop(store);
    assert!(open(&path).is_bootstrapped().unwrap());
}

#[tokio::test]
async fn the_loader_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    {
        let store = open(&path);
        for change in [
            create_topic("empty"),
            pause_topic("frozen", true),
            create_channel("frozen", "c1"),
            pause_channel("orders", "archive", true),
            create_channel("orders", "billing"),
            // Names the loader must skip: written straight into the store.
            create_topic("bad name"),
            create_channel("orders", "tail#ephemeral"),
        ] {
            store.apply(&change).unwrap();
        }
    }
    let store = open(&path);
    let before = store.snapshot().unwrap();
    let problems = store.check().unwrap().problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    let broker = Broker::new(Arc::new(store));
    let mut events = broker.subscribe();

    let report = rnsq::loader::load(&broker).await.expect("load");
    assert_eq!(broker.store().write_count(), 0, "the loader wrote");
    assert!(
        matches!(events.try_recv(), Err(TryRecvError::Empty)),
        "the loader announced something"
    );
    assert!(!broker.is_loading());
    assert_eq!((report.topics, report.channels, report.skipped), (3, 3, 2));
    assert_eq!(broker.store().snapshot().unwrap(), before);

    let topics = broker.topics();
    let restored: Vec<TopicView> = topics
        .iter()
        .map(|t| {
            (
                t.name().to_string(),
                t.is_paused(),
                t.channels()
                    .iter()
                    .map(|c| (c.name().to_string(), c.is_paused()))
                    .collect(),
            )
        })
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        restored,
        vec![
            (s("empty"), false, vec![]),
            (s("frozen"), true, vec![(s("c1"), false)]),
            (
                s("orders"),
                false,
                vec![(s("archive"), true), (s("billing"), false)]
            ),
        ]
    );
    for topic in &topics {
        assert!(topic.is_started(), "{} not started", topic.name());
        assert!(topic.is_live(), "{} not live", topic.name());
    }
    assert!(broker.get_existing_topic("bad name").is_none());

    // Asking for a restored topic writes nothing either.
    broker.get_or_create_topic("orders").await.unwrap();
    assert_eq!(broker.store().write_count(), 0);
    assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));

    // One real change: the counter and the events do work.
    let fresh = broker.get_or_create_topic("fresh").await.unwrap();
    assert!(fresh.is_started());
    assert_eq!(broker.store().write_count(), 1);
    assert_eq!(
        events.try_recv().expect("an event for the new topic"),
        ChangeEvent::TopicCreated {
            topic: "fresh".into()
        }
    );
    assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));
    assert!(broker.store().snapshot().unwrap().topic("fresh").is_some());
}

#[test]
fn a_corrupt_record_is_reported_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    {
        let store = open(&path);
        store.apply(&create_channel("good", "c")).unwrap();
    }
    let garbage: &[u8] = b"\xff\xfe not a topic record";
    // A record whose channel list claims about 2^60 entries: decoding must fail, not allocate.
    let huge: &[u8] = &[0, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
    {
        let db = common::open_sled(&path);
        let topics = db.open_tree("topics").unwrap();
        topics.insert(b"bad", garbage).unwrap();
        topics.insert(b"huge", huge).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(stored_version(&path), SCHEMA_VERSION);

    let store = open(&path);
    for change in [
        pause_topic("bad", true),
        create_channel("bad", "c"),
        Change::DeleteTopic {
            topic: "bad".into(),
        },
    ] {
        match store.apply(&change) {
            Err(StoreError::Corrupt { topic, reason }) => {
                assert_eq!(topic, "bad");
                assert!(!reason.is_empty());
            }
            other => panic!("{change:?}: expected Corrupt, got {other:?}"),
        }
    }
    assert_eq!(store.write_count(), 0);
    match store.snapshot() {
        Err(StoreError::Corrupt { topic, .. }) => assert_eq!(topic, "bad"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.import(&meta(vec![topic("x", false, &[])]), ImportMode::Merge),
        Err(StoreError::Corrupt { .. })
    ));

    assert!(matches!(
        store.apply(&create_topic("huge")),
        Err(StoreError::Corrupt { .. })
    ));

    let report = store.check().unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("\"bad\""),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems[1].contains("\"huge\""),
        "{:?}",
        report.problems
    );
    assert_eq!((report.topics, report.channels), (1, 1));

    // Other topics still take changes.
    store.apply(&pause_topic("good", true)).unwrap();
    assert_eq!(store.write_count(), 1);
    drop(store);

    // The corrupt record is exactly as it was; the refused import wrote nothing.
    let db = common::open_sled(&path);
    let topics = db.open_tree("topics").unwrap();
    assert_eq!(topics.get(b"bad").unwrap().as_deref(), Some(garbage));
    assert_eq!(topics.get(b"huge").unwrap().as_deref(), Some(huge));
    assert!(topics.get(b"x").unwrap().is_none());
    assert!(db
        .open_tree("meta")
        .unwrap()
        .get(b"bootstrapped")
        .unwrap()
        .is_none());
}

/// Regression (issue 9): a change was answered after sled's `flush()` alone, which on Linux is
/// `sync_file_range` and survives no power cut. Every change, and an import, now waits for a
/// durability barrier (flush plus fsync) that began after it was written; concurrent changes
/// share barriers. The power-cut tests (`tests/power_loss.rs`) prove the barrier on disk.
#[test]
fn every_change_waits_for_a_barrier_and_concurrent_changes_share_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&store_path(&dir)));
    for i in 0..5 {
        let before = store.sync_count();
        store.apply(&create_topic(&format!("t{i}"))).unwrap();
        assert!(
            store.sync_count() > before,
            "change {i} answered without a barrier"
        );
    }
    let before = store.sync_count();
    store
        .import(
            &meta(vec![topic("imported", false, &[])]),
            ImportMode::Merge,
        )
        .unwrap();
    assert!(
        store.sync_count() > before,
        "import answered without a barrier"
    );

    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    store
                        .apply(&create_channel(
                            &format!("t{}", i % 5),
                            &format!("c{t}_{i}"),
                        ))
                        .unwrap();
                }
            })
        })
        .collect();
    let before = store.sync_count();
    for t in threads {
        t.join().unwrap();
    }
    let syncs = store.sync_count() - before;
    assert!(syncs >= 1, "200 concurrent changes made no barrier");
    println!("200 concurrent changes shared {syncs} barriers");
}
