//! Segment-log records and recovery from arbitrary file bytes: the walk a log runs over its
//! last segment when it opens, and the topic log's message payload codec. The first byte
//! picks the mode: arbitrary bytes as the whole file, or a valid log built from the input
//! (with or without a header) followed by the rest of the input as garbage.
//!
//! Asserts: recovery keeps a prefix of the file that walks, record by record, to exactly its
//! end, ending on a whole record; every record it keeps has a checksum that holds and
//! re-encodes to the same bytes; nothing after the end would be read as a whole record; the
//! last payload reported is the last record kept; a valid prefix with garbage after it is
//! recovered as exactly that prefix (plus any whole records the garbage really holds, after
//! it); a payload that decodes as a message re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnsq::queue::segment_log::header::{self, Header, SEGMENT_HEADER};
use rnsq::queue::segment_log::record::{encode_into, parse, Parsed};
use rnsq::queue::segment_log::recovery::scan;
use rnsq::queue::topic_log::codec;

/// The whole records from `from` on, as the walk finds them, and where the last one ends.
fn walk(bytes: &[u8], from: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    let (mut offset, mut end) = (from, from);
    let mut records = Vec::new();
    loop {
        match parse(&bytes[offset.min(bytes.len())..]) {
            Parsed::Whole(payload, total) => {
                assert!(total as usize == payload.end && payload.start == 8);
                records.push(offset + payload.start..offset + payload.end);
                offset += total as usize;
                end = offset;
            }
            Parsed::Bad(total) => {
                assert!(total > 0, "damage always moves the walk on");
                offset += total as usize;
            }
            Parsed::Short => return (records, end),
        }
    }
}

fn check_record(bytes: &[u8], payload: std::ops::Range<usize>) {
    let start = payload.start - 8;
    let record = &bytes[start..payload.end];
    let len = u32::from_be_bytes(record[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(record[4..8].try_into().expect("4 bytes"));
    assert_eq!(len, payload.len());
    assert!(len > 0, "an empty record is never read");
    assert_eq!(
        crc32c::crc32c(&bytes[payload.clone()]),
        crc,
        "a kept record's checksum holds"
    );
    let mut again = Vec::new();
    encode_into(&mut again, &bytes[payload.clone()]);
    assert_eq!(again, record, "a record re-encodes to its bytes");
    let payload = &bytes[payload];
    match codec::decode(payload) {
        Some(message) => {
            let mut out = Vec::new();
            codec::encode_into(&mut out, &message);
            assert_eq!(out, payload, "a message re-encodes to its payload");
        }
        None => assert!(payload.len() < 38),
    }
}

/// Recovery of `bytes` as the last segment; returns the payloads kept.
fn check_scan(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let found = scan(bytes);
    assert_eq!(found.header, header::parse(bytes));
    assert!(found.end <= bytes.len());
    if found.fresh {
        assert_eq!(found.end, 0);
        assert!(found.last_payload.is_none());
        return Vec::new();
    }
    assert_eq!(found.data_start, found.header.data_start() as usize);
    let (records, end) = walk(bytes, found.data_start);
    assert_eq!(end, found.end, "the log ends after its last whole record");
    assert_eq!(found.last_payload, records.last().cloned());
    for payload in &records {
        check_record(bytes, payload.clone());
    }
    let (after, _) = walk(bytes, found.end);
    assert!(after.is_empty(), "no whole record after the end");
    records
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        check_scan(data);
        return;
    }
    // A valid log: records of 1..=64 bytes, their lengths from the input, then garbage.
    let headered = mode & 2 != 0;
    let count = usize::from(mode >> 2) % 8;
    let mut file = Vec::new();
    if headered {
        file.extend_from_slice(b"RNSQLOG\0");
        file.extend_from_slice(&1u32.to_be_bytes());
        let crc = crc32c::crc32c(&file);
        file.extend_from_slice(&crc.to_be_bytes());
    }
    let mut rest = data;
    let mut payloads = Vec::new();
    for _ in 0..count {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let len = (usize::from(len) % 64 + 1).min(tail.len());
        if len == 0 {
            break;
        }
        payloads.push(tail[..len].to_vec());
        encode_into(&mut file, &tail[..len]);
        rest = &tail[len..];
    }
    if !headered && payloads.is_empty() {
        // Without a header or a record the file is only garbage: the first mode's case.
        return;
    }
    let prefix = file.len();
    file.extend_from_slice(rest);
    let kept = check_scan(&file);
    assert!(kept.len() >= payloads.len(), "the valid prefix survives");
    for (range, payload) in kept.iter().zip(&payloads) {
        assert_eq!(&file[range.clone()], &payload[..]);
    }
    let found = scan(&file);
    assert_eq!(
        found.header,
        if headered {
            Header::Current
        } else {
            Header::Legacy
        }
    );
    let (in_garbage, _) = walk(&file, prefix);
    if in_garbage.is_empty() {
        let start = if headered { SEGMENT_HEADER as usize } else { 0 };
        assert_eq!(
            found.end,
            prefix.max(start),
            "exactly the valid prefix is kept"
        );
        assert_eq!(kept.len(), payloads.len());
    } else {
        assert!(found.end > prefix);
    }
});
