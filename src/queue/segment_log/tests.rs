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
            offset: SEGMENT_HEADER
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
    // The second record's length (after the header and the first record of 18 bytes).
    let second = SEGMENT_HEADER as usize + 18;
    bytes[second..second + 4].copy_from_slice(&1000u32.to_be_bytes());
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

/// `[len BE][CRC32C BE][payload]`, as the module docs give it.
fn record_bytes(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A header naming `version`, as the module docs give it.
fn header_bytes(version: u32) -> Vec<u8> {
    let mut out = b"RNSQLOG\0".to_vec();
    out.extend_from_slice(&version.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[test]
fn a_new_segment_is_a_header_then_records_in_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    let starts = log.append_batch(&[&b"one"[..], &b"three"[..]]).unwrap();
    log.append_batch(&[b"two"]).unwrap();
    let mut expected = header_bytes(FORMAT_VERSION);
    for payload in [&b"one"[..], b"three", b"two"] {
        expected.extend_from_slice(&record_bytes(payload));
    }
    assert_eq!(fs::read(segment_path(dir.path(), 0)).unwrap(), expected);
    assert_eq!(
        starts[0].offset, SEGMENT_HEADER,
        "the first record follows the header"
    );
    drop(log);
    let (_log, recovery, last) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovery, Recovery::default());
    assert_eq!(last.as_deref(), Some(&b"two"[..]));
    assert_eq!(read_all(dir.path()).0, [&b"one"[..], b"three", b"two"]);
}

/// A log written before segments had headers (records from offset 0) is read, appended to
/// in its own format, and its next segment gets a header.
#[test]
fn a_headerless_segment_of_an_earlier_release_is_read_and_continued() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<Vec<u8>> = (1..=3u8).map(|i| vec![i; 20 * i as usize]).collect();
    let bytes: Vec<u8> = old.iter().flat_map(|p| record_bytes(p)).collect();
    let path = segment_path(dir.path(), 0);
    fs::write(&path, &bytes).unwrap();

    let mut reader = LogReader::new(dir.path(), Position::default());
    match reader.next_record().unwrap() {
        Item::Record(at, payload) => {
            assert_eq!(at, Position::default(), "offset 0 is the first record");
            assert_eq!(payload, old[0]);
        }
        other => panic!("expected the first record, got {other:?}"),
    }
    let (mut log, recovery, last) = SegmentLog::open(dir.path(), 200).unwrap();
    assert_eq!(recovery, Recovery::default());
    assert_eq!(last.as_ref(), old.last());
    let size = bytes.len() as u64;
    let at = log.append_batch(&[b"appended"]).unwrap();
    assert_eq!(
        at[0],
        Position {
            segment: 0,
            offset: size
        },
        "headerless, continued"
    );
    let next = log.append_batch(&[[9u8; 100]]).unwrap();
    assert_eq!(
        next[0],
        Position {
            segment: 1,
            offset: SEGMENT_HEADER
        }
    );
    assert!(fs::read(segment_path(dir.path(), 1))
        .unwrap()
        .starts_with(&header_bytes(FORMAT_VERSION)));
    drop(log);
    let (_log, _, last) = SegmentLog::open(dir.path(), 200).unwrap();
    assert_eq!(last, Some(vec![9u8; 100]));
    let mut all = old.clone();
    all.push(b"appended".to_vec());
    all.push(vec![9u8; 100]);
    assert_eq!(read_all(dir.path()), (all, 0));
}

/// A segment whose header names a newer format is refused, naming the file and both
/// versions, whether it is the last segment or a sealed one; nothing is changed.
#[test]
fn a_segment_of_a_newer_format_is_refused_naming_the_file_and_both_versions() {
    for newer_segment in [0u64, 1] {
        let dir = tempfile::tempdir().unwrap();
        for segment in 0..2 {
            let version = if segment == newer_segment {
                7
            } else {
                FORMAT_VERSION
            };
            let mut bytes = header_bytes(version);
            bytes.extend_from_slice(&record_bytes(b"payload"));
            // Garbage at the end, which a repair would cut: it must stay.
            bytes.extend_from_slice(&[0xAB; 5]);
            fs::write(segment_path(dir.path(), segment), &bytes).unwrap();
        }
        let path = segment_path(dir.path(), newer_segment);
        let before = fs::read(segment_path(dir.path(), 1)).unwrap();
        let err = SegmentLog::open(dir.path(), 1 << 20)
            .err()
            .expect("refused");
        match &err {
            LogError::NewerFormat {
                path: p,
                found,
                supported,
            } => assert_eq!((p, *found, *supported), (&path, 7, FORMAT_VERSION)),
            other => panic!("expected NewerFormat, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains("version 7") && text.contains("version 1"),
            "{text}"
        );
        assert_eq!(fs::read(segment_path(dir.path(), 1)).unwrap(), before);
        // A reader meeting it says the same, and returns nothing of it.
        let mut reader = LogReader::new(
            dir.path(),
            Position {
                segment: newer_segment,
                offset: 0,
            },
        );
        assert!(matches!(
            reader.next_record(),
            Err(LogError::NewerFormat { found: 7, .. })
        ));
    }
}

#[test]
fn a_damaged_header_before_whole_records_is_damage_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = header_bytes(FORMAT_VERSION);
    bytes[14] ^= 0xff;
    bytes.extend_from_slice(&record_bytes(b"kept"));
    fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
    let (_log, recovery, last) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(last.as_deref(), Some(&b"kept"[..]));
    let mut reader = LogReader::new(dir.path(), Position::default());
    assert_eq!(
        reader.next_record().unwrap(),
        Item::Damaged(Position::default(), SEGMENT_HEADER)
    );
    assert!(matches!(reader.next_record().unwrap(), Item::Record(_, p) if p == b"kept"));
}

/// Regression: a delete of consumed segments that a power cut partly undid left a segment
/// below a gap; readers started there and stopped at the gap, losing the rest of the log.
#[test]
fn segments_below_a_gap_are_not_part_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 16).unwrap();
    for i in 1..=5u8 {
        log.append_batch(&[[i; 10]]).unwrap();
    }
    drop(log);
    // Segments 0..=2 were deleted; the unlink of 1 did not survive the cut.
    for gone in [0, 2] {
        fs::remove_file(segment_path(dir.path(), gone)).unwrap();
    }
    assert_eq!(live_segments(dir.path()).unwrap(), vec![3, 4]);
    let (log, recovery, last) = SegmentLog::open(dir.path(), 16).unwrap();
    assert_eq!(recovery.stale_segments, 1);
    assert_eq!(last, Some(vec![5u8; 10]));
    // The next deletion of consumed segments takes it.
    assert_eq!(log.remove_below(3).unwrap(), 1);
    assert_eq!(segments(dir.path()).unwrap(), vec![3, 4]);
}

#[test]
fn a_roll_asked_for_starts_the_next_segment_and_empty_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    log.append_batch(&[b"one"]).unwrap();
    log.roll_on_next_append();
    let at = log.append_batch(&[b"two"]).unwrap();
    assert_eq!(
        at[0],
        Position {
            segment: 1,
            offset: SEGMENT_HEADER
        }
    );
    let before = log.write_position();
    assert!(log.append_batch(&[&b"x"[..], &b""[..]]).is_err());
    assert_eq!(log.write_position(), before, "nothing of the batch is kept");
    assert_eq!(read_all(dir.path()).0, [b"one", b"two"]);
}
