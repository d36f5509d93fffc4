//! Cursor files (a channel's `<channel>.state`, a topic's `topic.state`): the bytes a power
//! cut or bit rot could leave, and the cursors a save writes.
//!
//! Asserts: bytes that load are exactly what saving the loaded cursor writes (so nothing
//! torn, padded or foreign loads); a refusal says why in one of the documented words; a
//! cursor built from the input round-trips, and every strict prefix of its file and every
//! one-bit change of it is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnsq::queue::cursor_file::{decode, encode, Cursor, Pending, SavedCursor};
use rnsq::queue::segment_log::Position;

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, slot) in b.iter_mut().enumerate() {
        *slot = bytes.get(at + i).copied().unwrap_or(0);
    }
    u64::from_be_bytes(b)
}

fn cursor_from(bytes: &[u8]) -> SavedCursor {
    let cursor = |at| Cursor {
        seq: u64_at(bytes, at),
        pos: Position {
            segment: u64_at(bytes, at + 8),
            offset: u64_at(bytes, at + 16),
        },
    };
    let pending = bytes
        .get(48..)
        .unwrap_or_default()
        .chunks(18)
        .take(64)
        .map(|c| Pending {
            seq: u64_at(c, 0),
            attempts: u16::from_be_bytes([c[0], *c.get(8).unwrap_or(&0)]),
            due_ms: u64_at(c, 10) as i64,
        })
        .collect();
    SavedCursor {
        read: cursor(0),
        watermark: cursor(24),
        pending,
    }
}

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(saved) => assert_eq!(encode(&saved), data, "only what a save writes loads"),
        Err(why) => assert!(
            [
                "too short",
                "checksum mismatch",
                "not a cursor file",
                "truncated or malformed"
            ]
            .contains(&why),
            "{why}"
        ),
    }

    let saved = cursor_from(data);
    let file = encode(&saved);
    assert_eq!(decode(&file), Ok(saved));
    for cut in 0..file.len() {
        assert!(
            decode(&file[..cut]).is_err(),
            "a file cut at {cut} is refused"
        );
    }
    let bit = data.first().map_or(0, |b| usize::from(*b)) * 8 % (file.len() * 8);
    let mut flipped = file.clone();
    flipped[bit / 8] ^= 1 << (bit % 8);
    assert!(decode(&flipped).is_err(), "a flipped bit {bit} is refused");
});
