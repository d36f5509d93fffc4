//! Unit tests of the channel cursor: what a saved cursor redelivers.

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
