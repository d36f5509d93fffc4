//! Message IDs as Go nsqd makes them: a 64-bit time-ordered GUID — the time as
//! `UnixNano >> 20` (units of 1.048576 ms) since nsqd's epoch (41 bits), the node ID (10 bits),
//! a per-tick sequence (12 bits) — written as 16 lowercase hex digits.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::message::MessageId;

/// Go nsqd's epoch, in its time unit (`UnixNano >> 20`).
const EPOCH: i64 = 1_288_834_974_288;
const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const SEQUENCE_MASK: i64 = (1 << SEQUENCE_BITS) - 1;

/// Makes unique, time-ordered IDs for one node.
#[derive(Debug)]
pub struct GuidFactory {
    node_id: i64,
    state: Mutex<(i64, i64)>,
}

impl GuidFactory {
    /// A factory for `node_id` (0..1024).
    pub fn new(node_id: i64) -> Self {
        GuidFactory {
            node_id: node_id & ((1 << NODE_BITS) - 1),
            state: Mutex::new((0, 0)),
        }
    }

    /// The next ID. If the clock steps back, the last time is reused (IDs stay unique and
    /// ordered); if 4096 IDs are taken within one tick, the next tick is used.
    pub fn next(&self) -> MessageId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_nanos() >> 20) as i64)
            .unwrap_or(EPOCH)
            - EPOCH;
        let value = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (last, sequence) = *state;
            let (time, sequence) = if now > last {
                (now, 0)
            } else if sequence < SEQUENCE_MASK {
                (last, sequence + 1)
            } else {
                (last + 1, 0)
            };
            *state = (time, sequence);
            (time << (NODE_BITS + SEQUENCE_BITS)) | (self.node_id << SEQUENCE_BITS) | sequence
        };
        hex(value as u64)
    }
}

fn hex(value: u64) -> MessageId {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_ordered_hex_and_carry_the_node() {
        let factory = GuidFactory::new(5);
        let ids: Vec<_> = (0..10_000).map(|_| factory.next()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{:?} !< {:?}", pair[0], pair[1]);
        }
        for id in &ids {
            assert!(id
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            let value = u64::from_str_radix(std::str::from_utf8(id).unwrap(), 16).unwrap();
            assert_eq!((value >> SEQUENCE_BITS) & 0x3ff, 5);
        }
    }
}
