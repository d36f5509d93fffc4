//! Power-cut tests of recovery at open. The last segment of a log is cut at every byte (its
//! header and each of its records, the last two included), or its bytes from there on are
//! replaced by zeros (a file whose size was made durable before its data), or zeros are added
//! past its end; in segments with a header and in headerless ones (earlier releases). Each
//! time, the records read after reopening are exactly a prefix of those written, the counters
//! say how many bytes were cut, and the log goes on after them.
//!
//! The segments are built here byte by byte from the documented format (module docs of
//! [`super`]), not by the writer, so these tests also pin the format down.

use std::fs;
use std::path::Path;

use super::*;

const MAGIC: &[u8; 8] = b"RNSQLOG\0";

/// `[len BE][CRC32C BE][payload]`.
fn record(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `[magic][version 1 BE][CRC32C of the 12 bytes before, BE]`.
fn header_v1() -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&1u32.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A segment holding `payloads`, with or without a header, and the offset at which each
/// record ends (after the header's end, or 0, for none).
fn segment(headered: bool, payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = if headered { header_v1() } else { Vec::new() };
    let mut ends = vec![bytes.len()];
    for payload in payloads {
        bytes.extend_from_slice(&record(payload));
        ends.push(bytes.len());
    }
    (bytes, ends)
}

/// Payloads of a few sizes (a length with 1, 2 and 3 leading zero bytes), each different.
fn payloads(from: u8, count: u8) -> Vec<Vec<u8>> {
    (from..from + count)
        .map(|i| vec![i + 1; [3usize, 40, 300, 17, 70_000][i as usize % 5]])
        .collect()
}

/// Every record of the log in `dir`, from the start; none may be damage.
fn read_all(dir: &Path) -> Vec<Vec<u8>> {
    let mut reader = LogReader::new(dir, Position::default());
    let mut out = Vec::new();
    loop {
        match reader.next_record().unwrap() {
            Item::Record(_, payload) => out.push(payload),
            Item::Damaged(at, len) => panic!("damage reported at {at:?} ({len} bytes)"),
            Item::End => return out,
        }
    }
}

/// A scratch directory, in memory where the machine has a tmpfs: each case fsyncs its
/// repair, and there are thousands of cases.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// How the last segment's bytes look after the cut.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The file ends at the cut.
    Truncated,
    /// The file keeps its size; from the cut on its bytes are zeros.
    ZeroFilled,
    /// As `ZeroFilled`, and the file is a block longer, all zeros.
    ZeroExtended,
}

/// Builds a two-segment log (`sealed` in segment 0, `last` in segment 1), cuts segment 1 at
/// `cut` as `how`, reopens it, and checks what survives.
fn cut_and_reopen(
    formats: (bool, bool),
    sealed: &[Vec<u8>],
    last: &[Vec<u8>],
    cut: usize,
    how: Cut,
) {
    let dir = scratch();
    let (bytes0, _) = segment(formats.0, sealed);
    fs::write(segment_path(dir.path(), 0), &bytes0).unwrap();
    let (mut bytes, ends) = segment(formats.1, last);
    let size = bytes.len();
    match how {
        Cut::Truncated => bytes.truncate(cut),
        Cut::ZeroFilled => bytes[cut..].fill(0),
        Cut::ZeroExtended => {
            bytes[cut..].fill(0);
            bytes.resize(size + 4096, 0);
        }
    }
    let path = segment_path(dir.path(), 1);
    fs::write(&path, &bytes).unwrap();
    let what = format!("{formats:?} cut at {cut} of {size}, {how:?}");

    // The records whose bytes all lie before the cut survive; of a header cut short nothing
    // is left (the segment is empty, and gets a header with its next records).
    let whole = ends.iter().rposition(|&end| end <= cut).unwrap_or(0);
    let kept = if whole == 0 { 0 } else { ends[whole] };
    let kept = if whole == 0 && formats.1 && cut >= ends[0] {
        ends[0]
    } else {
        kept
    };
    let expected: Vec<Vec<u8>> = sealed.iter().chain(&last[..whole]).cloned().collect();

    let (mut log, recovery, last_payload) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        recovery.truncated_bytes,
        (bytes.len() - kept) as u64,
        "{what}: bytes cut"
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), kept as u64, "{what}");
    assert_eq!(
        last_payload.as_ref(),
        expected.last(),
        "{what}: the last record"
    );
    assert_eq!(read_all(dir.path()), expected, "{what}: the records read");

    // The log goes on right after them, and all of it reads back after another open.
    log.append_batch(&[b"after the cut"]).unwrap();
    drop(log);
    let (_log, recovery, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovery.truncated_bytes, 0, "{what}: nothing more to cut");
    let mut expected = expected;
    expected.push(b"after the cut".to_vec());
    assert_eq!(read_all(dir.path()), expected, "{what}: after an append");
}

#[test]
fn a_cut_at_any_byte_of_the_last_segment_leaves_a_prefix() {
    let sealed = payloads(0, 2);
    // 17, 70,000, 3 and 40 bytes: the last two are cut at every byte.
    let last = payloads(3, 4);
    let big = last.iter().position(|p| p.len() == 70_000).unwrap();
    // Headered throughout; headerless throughout (an earlier release's log); and a log
    // upgraded in place (its sealed segment headerless, the new one headered).
    for formats in [(true, true), (false, false), (false, true)] {
        let (bytes, ends) = segment(formats.1, &last);
        for cut in 0..=bytes.len() {
            // Inside the 70,000-byte payload every 4999th byte is enough (its bounds and its
            // length and checksum are cut byte by byte).
            if cut > ends[big] + 8 && cut < ends[big + 1] - 8 && cut % 4999 != 0 {
                continue;
            }
            for how in [Cut::Truncated, Cut::ZeroFilled, Cut::ZeroExtended] {
                cut_and_reopen(formats, &sealed, &last, cut, how);
            }
        }
    }
}

/// A segment of a single record cut anywhere, the sealed one before it holding nothing: the
/// log reopens empty or with that record, and numbering goes on from the right record.
#[test]
fn a_cut_in_the_only_record_of_a_new_segment_leaves_the_sealed_ones() {
    let sealed = payloads(7, 3);
    let last = payloads(1, 1);
    for formats in [(true, true), (false, false), (false, true)] {
        let (bytes, _) = segment(formats.1, &last);
        for cut in 0..=bytes.len() {
            for how in [Cut::Truncated, Cut::ZeroFilled] {
                if cut == bytes.len() && !matches!(how, Cut::Truncated) {
                    continue;
                }
                cut_and_reopen(formats, &sealed, &last, cut, how);
            }
        }
    }
}
