//! Tests of the segment log: appends, rolls, reads across segments, torn tails, damage.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::*;

fn read_all(dir: &Path) -> (Vec<Vec<u8>>, u64) {
    let mut reader = LogReader::new(dir, Position::default());
    let mut out = Vec::new();
    let mut damaged = 0;
    loop {
        match reader.next_record().unwrap() {
            Item::Record(_, payload) => out.push(payload),
            Item::Damaged(at, len) => {
                quarantine(dir, at, len).unwrap();
                damaged += 1;
            }
            Item::End => return (out, damaged),
        }
    }
}

#[test]
fn appends_across_segments_and_reads_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, recovery, last) = SegmentLog::open(dir.path(), 64).unwrap();
    assert_eq!((recovery.truncated_bytes, last), (0, None));
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 10 + i as usize]).collect();
    for p in &payloads {
        log.append_batch(&[p]).unwrap();
    }
    log.sync().unwrap();
    assert!(
        segments(dir.path()).unwrap().len() > 3,
        "records rolled into several segments"
    );
    assert_eq!(read_all(dir.path()), (payloads.clone(), 0));
    drop(log);
    let (mut log, recovery, last) = SegmentLog::open(dir.path(), 64).unwrap();
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(last.as_deref(), Some(&payloads[19][..]));
    log.append_batch(&[b"after"]).unwrap();
    let (all, _) = read_all(dir.path());
    assert_eq!(all.len(), 21);
    assert_eq!(all.last().unwrap(), b"after");
}

#[test]
fn a_batch_lands_in_one_segment_with_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 100).unwrap();
    let starts = log
        .append_batch(&[[1u8; 30], [2u8; 30], [3u8; 30]])
        .unwrap();
    assert_eq!(starts.len(), 3);
    assert!(starts.iter().all(|p| p.segment == 0));
    let next = log.append_batch(&[[4u8; 30]]).unwrap();
    assert_eq!(
        next[0],
        Position {
            segment: 1,
            offset: 0
        }
    );
    assert_eq!(read_all(dir.path()).0.len(), 4);
}

#[test]
fn a_torn_tail_is_truncated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    log.append_batch(&[b"one", b"two"]).unwrap();
    drop(log);
    let path = segment_path(dir.path(), 0);
    // A partial record: a header promising 100 bytes and 5 of them.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&100u32.to_be_bytes()).unwrap();
    file.write_all(&[0, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
    drop(file);
    let (log, recovery, last) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovery.truncated_bytes, 13);
    assert_eq!(last.as_deref(), Some(&b"two"[..]));
    assert_eq!(
        read_all(dir.path()),
        (vec![b"one".to_vec(), b"two".to_vec()], 0)
    );

    // A whole last record whose checksum fails is a torn tail too.
    drop(log);
    let size = fs::metadata(&path).unwrap().len();
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let (_log, recovery, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovery.truncated_bytes, HEADER + 3);
    assert_eq!(fs::metadata(&path).unwrap().len(), size - HEADER - 3);
    assert_eq!(read_all(dir.path()), (vec![b"one".to_vec()], 0));
}

#[test]
fn a_damaged_record_in_the_middle_is_reported_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    let starts = log
        .append_batch(&[&b"first"[..], &b"middle"[..], &b"last"[..]])
        .unwrap();
    drop(log);
    let path = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[(starts[1].offset + HEADER) as usize] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let (_log, recovery, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        recovery.truncated_bytes, 0,
        "mid-file damage is not a torn tail"
    );
    assert_eq!(
        read_all(dir.path()),
        (vec![b"first".to_vec(), b"last".to_vec()], 1)
    );
    let bad = fs::read(path.with_extension("log.bad")).unwrap();
    assert_eq!(bad.len() as u64, HEADER + 6);
}

#[test]
fn a_lying_length_in_a_sealed_segment_skips_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 40).unwrap();
    log.append_batch(&[[1u8; 10], [2u8; 10]]).unwrap();
    log.append_batch(&[[3u8; 30]]).unwrap();
    drop(log);
    let path = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[18..22].copy_from_slice(&1000u32.to_be_bytes());
    fs::write(&path, &bytes).unwrap();
    let (all, damaged) = read_all(dir.path());
    assert_eq!(all, vec![vec![1u8; 10], vec![3u8; 30]]);
    assert_eq!(damaged, 1);
}

#[test]
fn bytes_read_past_the_end_are_read_again_before_they_count_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    log.append_batch(&[b"one"]).unwrap();
    // A write that failed half way leaves bytes past the end, which a reader buffers.
    let path = segment_path(dir.path(), 0);
    let end = log.write_position().offset;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[9u8; 20])
        .unwrap();
    let mut reader = LogReader::new(dir.path(), Position::default());
    assert!(matches!(reader.next_record().unwrap(), Item::Record(..)));
    // They are cut off, and the next record is written where they were.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(end)
        .unwrap();
    log.append_batch(&[b"two"]).unwrap();
    match reader.next_record().unwrap() {
        Item::Record(_, payload) => assert_eq!(payload, b"two"),
        other => panic!("expected the new record, got {other:?}"),
    }
}

#[test]
fn old_segments_are_removed_but_never_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 16).unwrap();
    for i in 0..4u8 {
        log.append_batch(&[[i; 10]]).unwrap();
    }
    assert_eq!(segments(dir.path()).unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(log.remove_below(2).unwrap(), 2);
    assert_eq!(log.remove_below(99).unwrap(), 1);
    assert_eq!(segments(dir.path()).unwrap(), vec![3]);
}
