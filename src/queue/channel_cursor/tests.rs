//! Unit tests of the channel cursor: what a saved cursor redelivers, and how long a
//! deferred message read from the log waits.

use super::*;
use crate::queue::disk_health::DiskHealth;
use crate::queue::topic_log::LogSettings;
use bytes::Bytes;

fn message(n: u8) -> Message {
    Message::new([n; 16], Bytes::from(vec![n]))
}

fn drain(cursor: &ChannelCursor) -> Vec<Message> {
    let mut out = Vec::new();
    let mut deferred = Vec::new();
    while let Some(m) = cursor.take(&mut deferred) {
        out.push(m);
    }
    out
}

#[test]
fn a_saved_cursor_redelivers_exactly_the_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let health = Arc::new(DiskHealth::default());
    let log = Arc::new(TopicLog::open(
        dir.path(),
        LogSettings::default(),
        health.clone(),
    ));
    log.set_flowing(true);
    let state = dir.path().join("channels").join("c.state");
    let cursor = ChannelCursor::new(log.clone(), Some(state.clone()), log.end());
    log.append((0..10).map(message).collect()).unwrap();
    let taken = drain(&cursor);
    assert_eq!(taken.len(), 10);
    // Finish all but 2 and 5; 5 is in flight with 3 attempts.
    for m in &taken {
        if m.body[0] != 2 && m.body[0] != 5 {
            cursor.finish(m.seq);
        }
    }
    let mut notes = HashMap::from([(taken[5].seq, (3u16, 0i64))]);
    cursor.save(&mut notes);
    drop(cursor);

    let log = Arc::new(TopicLog::open(dir.path(), LogSettings::default(), health));
    log.set_flowing(true);
    let cursor = ChannelCursor::restore(log.clone(), state);
    assert_eq!(cursor.depth(), 2);
    log.append(vec![message(10)]).unwrap();
    let again: Vec<(u8, u16)> = drain(&cursor)
        .iter()
        .map(|m| (m.body[0], m.attempts))
        .collect();
    assert_eq!(again, vec![(2, 0), (5, 3), (10, 0)]);
}

fn deferred(n: u8, deferred_ms: u32, stamped_hours_ahead: i64) -> Message {
    let mut m = message(n);
    m.deferred_ms = deferred_ms;
    m.timestamp += stamped_hours_ahead * 3_600_000_000_000;
    m
}

/// Takes one message that must be deferred; returns how long it waits (ms from now).
fn deferral(cursor: &ChannelCursor) -> (Message, i64) {
    let mut deferred = Vec::new();
    assert!(cursor.take(&mut deferred).is_none(), "nothing is due yet");
    let (m, due) = deferred.pop().expect("the message is deferred");
    (m, due - now_ms())
}

// nsqio/nsq#1124: a DPUB's delay ran on the wall clock, so one published before the clock
// stepped back waited the jump on top (stepped forward, it came at once).
#[test]
fn a_dpub_in_memory_counts_its_delay_on_the_monotonic_clock() {
    let log = Arc::new(TopicLog::in_memory(
        LogSettings::default(),
        Arc::new(DiskHealth::default()),
    ));
    log.set_flowing(true);
    let cursor = ChannelCursor::new(log.clone(), None, log.end());
    // Stamped three hours ago on the wall clock (it has stepped forward since).
    log.append(vec![deferred(1, 5000, -3)]).unwrap();
    let (m, wait) = deferral(&cursor);
    assert!(m.published.is_some());
    assert!((4000..=5000).contains(&wait), "waits {wait} ms");
}

#[test]
fn a_dpub_read_back_from_disk_never_waits_longer_than_it_asked() {
    let dir = tempfile::tempdir().unwrap();
    let health = Arc::new(DiskHealth::default());
    let log = TopicLog::open(dir.path(), LogSettings::default(), health.clone());
    // Stamped three hours ahead of the wall clock (it has stepped back since).
    log.append(vec![deferred(1, 5000, 3)]).unwrap();
    drop(log);
    let log = Arc::new(TopicLog::open(dir.path(), LogSettings::default(), health));
    log.set_flowing(true);
    let cursor = ChannelCursor::new(log.clone(), None, log.first());
    let (m, wait) = deferral(&cursor);
    assert!(m.published.is_none(), "read back from disk");
    assert!((4000..=5000).contains(&wait), "waits {wait} ms");
}
