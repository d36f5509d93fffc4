//! Tests of a topic log reopened after a power cut or by a newer release: zero-filled tails,
//! logs written before segment headers, segments of a newer format, stale segments below a
//! gap, and cursors saved past a tail the cut lost.

use std::fs;
use std::io::Write;
use std::path::Path;

use bytes::Bytes;

use super::*;
use crate::queue::cursor_file::{self, SavedCursor};
use crate::queue::segment_log::{segment_path, SEGMENT_HEADER};
use crate::queue::ChannelCursor;

fn message(n: u8) -> Message {
    Message::new([n; 16], Bytes::from(vec![n; 3]))
}

fn bodies(log: &TopicLog, from: Cursor) -> Vec<u8> {
    let mut reader = None;
    let mut out = Vec::new();
    log.read(from, &mut reader, usize::MAX, &mut out).unwrap();
    out.iter().map(|(_, m)| m.body[0]).collect()
}

fn open(dir: &Path) -> TopicLog {
    TopicLog::open(dir, LogSettings::default(), Arc::new(DiskHealth::default()))
}

/// Writes messages `0..n` (bodies `[i; 3]`) to a new log in `dir`, fsynced.
async fn written(dir: &Path, n: u8) {
    let log = Arc::new(open(dir));
    for i in 0..n {
        log.append(vec![message(i)]).unwrap();
    }
    log.sync_now().await.unwrap();
}

/// Regression: a zero-filled tail (a cut after the file's size was durable, before its data)
/// was read as empty records; the next message number fell back to 1.
#[tokio::test]
async fn a_zero_filled_tail_is_cut_and_numbering_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), 3).await;
    fs::OpenOptions::new()
        .append(true)
        .open(segment_path(dir.path(), 0))
        .unwrap()
        .write_all(&[0u8; 4096])
        .unwrap();
    let log = open(dir.path());
    assert_eq!(log.end().seq, 4);
    assert_eq!(log.counters.truncated_bytes.load(Ordering::Relaxed), 4096);
    assert_eq!(bodies(&log, log.first()), [0, 1, 2]);
    assert_eq!(log.counters.damaged_records.load(Ordering::Relaxed), 0);
    assert_eq!(log.append(vec![message(3)]).unwrap(), 5);
    assert_eq!(bodies(&log, log.first()), [0, 1, 2, 3]);
}

/// A message's payload as the topic log's module docs give it.
fn payload(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut out = seq.to_be_bytes().to_vec();
    out.extend_from_slice(&1_700_000_000_000_000_000i64.to_be_bytes());
    out.extend_from_slice(&2u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&[seq as u8; 16]);
    out.extend_from_slice(body);
    out
}

/// A topic log written before segments had headers: the segment starts with its first
/// record. Its messages are read whole, and numbering goes on after them.
#[tokio::test]
async fn a_headerless_log_of_an_earlier_release_is_read_and_numbered_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Vec::new();
    for seq in 1..=3u64 {
        let p = payload(seq, format!("old-{seq}").as_bytes());
        segment.extend_from_slice(&(p.len() as u32).to_be_bytes());
        segment.extend_from_slice(&crc32c::crc32c(&p).to_be_bytes());
        segment.extend_from_slice(&p);
    }
    fs::write(segment_path(dir.path(), 0), &segment).unwrap();
    let log = Arc::new(open(dir.path()));
    assert_eq!(log.end().seq, 4);
    let first = log.first();
    assert_eq!((first.seq, first.pos), (1, Position::default()));
    let mut reader = None;
    let mut out = Vec::new();
    log.read(first, &mut reader, usize::MAX, &mut out).unwrap();
    let got: Vec<(u64, String, u16)> = out
        .iter()
        .map(|(at, m)| (at.seq, String::from_utf8_lossy(&m.body).into(), m.attempts))
        .collect();
    assert_eq!(
        got,
        [
            (1, "old-1".into(), 2),
            (2, "old-2".into(), 2),
            (3, "old-3".into(), 2)
        ]
    );
    assert_eq!(log.append(vec![message(9)]).unwrap(), 5);
    log.sync_now().await.unwrap();
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.end().seq, 5);
    assert_eq!(bodies(&log, log.first()).len(), 4);
}

/// A segment of a newer format: the log does not open, and says so the way every open
/// failure is reported — the publisher's error and the storage health name the file and
/// both versions; nothing is read or written.
#[test]
fn a_log_of_a_newer_format_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"RNSQLOG\0".to_vec();
    bytes.extend_from_slice(&2u32.to_be_bytes());
    bytes.extend_from_slice(&[0u8; 40]);
    let path = segment_path(dir.path(), 0);
    fs::write(&path, &bytes).unwrap();
    let health = Arc::new(DiskHealth::default());
    let log = TopicLog::open(dir.path(), LogSettings::default(), health.clone());
    let err = log.append(vec![message(1)]).unwrap_err().to_string();
    for part in [&path.display().to_string(), "version 2", "version 1"] {
        assert!(err.contains(part), "{err:?} names {part:?}");
    }
    assert!(!log.is_loaded());
    let problem = health.problem().expect("storage reported unhealthy");
    assert!(problem.contains("version 2"), "{problem}");
    assert_eq!(bodies(&log, log.first()), Vec::<u8>::new());
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "the file is left as it was"
    );
}

/// A segment below a gap (a delete a cut undid) is not where the log starts.
#[tokio::test]
async fn a_stale_segment_below_a_gap_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let settings = LogSettings {
        max_bytes_per_file: 64,
        ..LogSettings::default()
    };
    let log = Arc::new(TopicLog::open(
        dir.path(),
        settings.clone(),
        Arc::new(DiskHealth::default()),
    ));
    for i in 0..4 {
        log.append(vec![message(i)]).unwrap();
    }
    log.sync_now().await.unwrap();
    drop(log);
    fs::remove_file(segment_path(dir.path(), 1)).unwrap();
    let log = TopicLog::open(dir.path(), settings, Arc::new(DiskHealth::default()));
    assert_eq!(log.first().seq, 3);
    assert_eq!(bodies(&log, log.first()), [2, 3]);
}

/// Regression: a power cut lost the log's unsynced tail while a channel's cursor, saved
/// (fsynced) after reading it, survived. The log numbered new messages from the end it found,
/// so the channel, restoring its cursor after a message was published and answered `OK`,
/// took that message as read and never delivered it.
#[tokio::test]
async fn a_cursor_saved_past_a_lost_tail_does_not_swallow_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    for i in 0..3 {
        log.append(vec![message(i)]).unwrap();
    }
    log.sync_now().await.unwrap();
    let durable_end = log.end().pos.offset;
    for i in 3..7 {
        log.append(vec![message(i)]).unwrap();
    }
    // The channel read and finished all 7; its cursor was saved.
    let state = dir.path().join("channels").join("c.state");
    let read = log.end();
    let saved = SavedCursor {
        read,
        watermark: read,
        pending: Vec::new(),
    };
    cursor_file::save(&state, &saved).unwrap();
    drop(log);
    // The cut: the 4 messages never fsynced are gone.
    let segment = fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), 0))
        .unwrap();
    segment.set_len(durable_end).unwrap();

    let log = Arc::new(open(dir.path()));
    assert!(
        log.end().seq >= read.seq,
        "no number the cursor has seen is reused"
    );
    log.set_flowing(true);
    let at = log.append(vec![message(42)]).unwrap() - 1;
    let cursor = ChannelCursor::restore(log.clone(), state);
    let mut deferred = Vec::new();
    let got = cursor
        .take(&mut deferred)
        .expect("the new message is delivered");
    assert_eq!((got.seq, got.body[0]), (at, 42));
    assert!(cursor.take(&mut deferred).is_none());
    let end = log.end().pos;
    assert_eq!(
        (end.segment, end.offset > SEGMENT_HEADER),
        (1, true),
        "written in a new segment, past every position the cursor has seen"
    );
}
