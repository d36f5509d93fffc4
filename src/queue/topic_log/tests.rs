//! Tests of the topic log: numbering, memory and disk reads, group commit, memory-only drops.

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::*;

fn message(n: u8) -> Message {
    Message::new([n; 16], Bytes::from(vec![n; 3]))
}

fn read_all(log: &TopicLog, from: Cursor) -> Vec<u8> {
    let mut reader = None;
    let mut out = Vec::new();
    log.read(from, &mut reader, usize::MAX, &mut out).unwrap();
    out.iter().map(|(_, m)| m.body[0]).collect()
}

#[tokio::test]
async fn numbers_messages_and_reads_from_memory_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let settings = LogSettings {
        mem_queue_size: 2,
        max_bytes_per_file: 200,
        ..LogSettings::default()
    };
    let health = Arc::new(DiskHealth::default());
    let log = Arc::new(TopicLog::open(dir.path(), settings.clone(), health.clone()));
    let start = log.end();
    assert_eq!(start.seq, 1);
    for n in 0..10 {
        log.append(vec![message(n)]).unwrap();
    }
    assert_eq!(log.end().seq, 11);
    assert_eq!(log.memory_from(), 9);
    assert_eq!(read_all(&log, start), (0..10).collect::<Vec<_>>());
    log.sync_now().await.unwrap();
    drop(log);
    let log = TopicLog::open(dir.path(), settings, health);
    assert_eq!(log.end().seq, 11);
    assert_eq!(log.first().seq, 1);
    assert_eq!(read_all(&log, log.first()), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_durable_publisher_waits_for_a_shared_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let settings = LogSettings {
        durable: true,
        ..LogSettings::default()
    };
    let log = Arc::new(TopicLog::open(
        dir.path(),
        settings,
        Arc::new(DiskHealth::default()),
    ));
    let stop = CancellationToken::new();
    let syncer = tokio::spawn(log.clone().run_syncer(stop.clone()));
    let mut waits = Vec::new();
    for n in 0..50 {
        let log = log.clone();
        waits.push(tokio::spawn(async move {
            let from = log.end().seq;
            let to = log.append(vec![message(n)]).unwrap();
            log.wait_durable(from.min(to - 1), to).await
        }));
    }
    for wait in waits {
        wait.await.unwrap().unwrap();
    }
    let fsyncs = log.counters.fsyncs.load(Ordering::Relaxed);
    assert!((1..=50).contains(&fsyncs), "{fsyncs} fsyncs");
    assert_eq!(log.counters.fsynced_messages.load(Ordering::Relaxed), 50);
    stop.cancel();
    syncer.await.unwrap();
}

#[test]
fn memory_only_drops_what_a_slow_reader_missed() {
    let settings = LogSettings {
        mem_queue_size: 3,
        ..LogSettings::default()
    };
    let log = TopicLog::in_memory(settings, Arc::new(DiskHealth::default()));
    let start = log.end();
    for n in 0..5 {
        log.append(vec![message(n)]).unwrap();
    }
    assert_eq!(read_all(&log, start), vec![2, 3, 4]);
    assert_eq!(log.counters.dropped.load(Ordering::Relaxed), 2);
}
