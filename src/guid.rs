//! Message IDs as Go nsqd makes them: a 64-bit time-ordered GUID — the time as
//! `UnixNano >> 20` (units of 1.048576 ms) since nsqd's epoch (41 bits), the node ID (10 bits),
//! a per-tick sequence (12 bits) — written as 16 lowercase hex digits.
//!
//! # When the wall clock jumps
//! IDs are unique and increasing for as long as one data path lives, whatever the wall clock
//! does. The time part is never below the last one given: when the clock steps back, the last
//! time is reused and its sequence counts on, moving to the next tick every 4096 IDs (Go's
//! factory refuses instead, and nsqd's publishers spin until the clock catches up:
//! nsqio/nsq#1124). When it steps forward, IDs simply jump ahead with it.
//!
//! Across a restart the factory resumes above a **lease** saved in the data path
//! ([`lease`]): before it gives an ID whose time passes the lease, it saves a new lease a
//! minute ahead ([`LEASE_TICKS`]), so every ID ever given lies at or below the lease on disk,
//! and [`GuidFactory::resume`] starts above it. Why a lease and not the newest ID in the
//! topic logs: the logs open lazily (a broker with 100,000 topics reads none of them at boot),
//! and a log whose messages were all consumed may have dropped the segment that held its
//! newest ID. The cost is one small durable write a minute, taken by whichever publisher
//! crosses the lease, and IDs after a restart that run up to a minute ahead of the clock.

pub mod lease;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::message::MessageId;

/// Go nsqd's epoch, in its time unit (`UnixNano >> 20`).
const EPOCH: i64 = 1_288_834_974_288;
const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const SEQUENCE_MASK: i64 = (1 << SEQUENCE_BITS) - 1;
/// How far ahead of the ID being given a new lease reaches: a minute, in ID time units.
pub const LEASE_TICKS: i64 = 60_000_000_000 >> 20;

/// Makes unique, time-ordered IDs for one node.
#[derive(Debug)]
pub struct GuidFactory {
    node_id: i64,
    state: Mutex<State>,
    /// Where the lease is saved; `None`: IDs are unique only within this process.
    lease_path: Option<PathBuf>,
}

#[derive(Debug)]
struct State {
    /// The time and sequence of the last ID given.
    last: i64,
    sequence: i64,
    /// IDs up to this time are covered by the lease on disk.
    leased: i64,
}

/// The wall clock in ID time units since nsqd's epoch.
fn wall_ticks() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_nanos() >> 20) as i64)
        .unwrap_or(EPOCH)
        - EPOCH
}

impl GuidFactory {
    /// A factory for `node_id` (0..1024) whose IDs are unique within this process only.
    pub fn new(node_id: i64) -> Self {
        Self::build(node_id, 0, i64::MAX, None)
    }

    /// A factory for `node_id` whose IDs are above every ID given by an earlier factory on the
    /// lease at `path` (see the module docs), and which keeps that lease. Blocking (it reads
    /// the lease). A missing lease starts from the wall clock; so does an unreadable or
    /// damaged one, logged as an error, since refusing to start would be worse than IDs that
    /// might repeat old ones if the clock has also gone back.
    pub fn resume(node_id: i64, path: &Path) -> Self {
        let floor = match lease::load(path) {
            Ok(floor) => floor.unwrap_or(0),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the message ID lease");
                0
            }
        };
        // The lease is spent: the next ID must be past it, and saving a new one comes first.
        Self::build(node_id, floor, floor, Some(path.into()))
    }

    fn build(node_id: i64, floor: i64, leased: i64, lease_path: Option<PathBuf>) -> Self {
        GuidFactory {
            node_id: node_id & ((1 << NODE_BITS) - 1),
            state: Mutex::new(State {
                last: floor,
                sequence: SEQUENCE_MASK,
                leased,
            }),
            lease_path,
        }
    }

    /// The next ID: above every one given before (see the module docs).
    pub fn next(&self) -> MessageId {
        self.next_at(wall_ticks())
    }

    /// The next ID with the wall clock at `now` (ID time units since nsqd's epoch).
    fn next_at(&self, now: i64) -> MessageId {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (time, sequence) = if now > state.last {
            (now, 0)
        } else if state.sequence < SEQUENCE_MASK {
            (state.last, state.sequence + 1)
        } else {
            (state.last + 1, 0)
        };
        if time > state.leased {
            let end = time + LEASE_TICKS;
            if let Some(path) = &self.lease_path {
                // Held under the lock: no ID past the old lease is given before the new one
                // is on disk. A failure is logged and the ID given anyway: only a restart
                // under a clock set back could then repeat IDs, and refusing every publish
                // would be worse. The next attempt comes a lease later, not on every ID.
                if let Err(e) = lease::save(path, end) {
                    tracing::error!(error = %e, "cannot save the message ID lease");
                }
            }
            state.leased = end;
        }
        state.last = time;
        state.sequence = sequence;
        let value =
            (time << (NODE_BITS + SEQUENCE_BITS)) | (self.node_id << SEQUENCE_BITS) | sequence;
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

    fn assert_increasing(ids: &[MessageId]) {
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{:?} !< {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn ids_are_unique_ordered_hex_and_carry_the_node() {
        let factory = GuidFactory::new(5);
        let ids: Vec<_> = (0..10_000).map(|_| factory.next()).collect();
        assert_increasing(&ids);
        for id in &ids {
            assert!(id
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            let value = u64::from_str_radix(std::str::from_utf8(id).unwrap(), 16).unwrap();
            assert_eq!((value >> SEQUENCE_BITS) & 0x3ff, 5);
        }
    }

    // nsqio/nsq#1124: a wall clock stepping back must not stop (or reorder) IDs.
    #[test]
    fn ids_keep_increasing_when_the_clock_steps_back_and_forward() {
        let factory = GuidFactory::new(1);
        let hour = 3_600_000_000_000_i64 >> 20;
        let now = 10 * hour;
        let mut ids = vec![factory.next_at(now)];
        // Back three hours, for more IDs than one tick holds.
        ids.extend((0..10_000).map(|_| factory.next_at(now - 3 * hour)));
        // Forward two days, then back again.
        ids.extend((0..10).map(|_| factory.next_at(now + 48 * hour)));
        ids.extend((0..10).map(|_| factory.next_at(now)));
        assert_increasing(&ids);
    }

    #[test]
    fn a_resumed_factory_starts_above_every_id_of_the_last_one_under_a_clock_set_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(lease::LEASE_FILE);
        let now = 1_000_000;
        let first = GuidFactory::resume(2, &path);
        let before: Vec<_> = (0..5000).map(|_| first.next_at(now)).collect();
        let saved = lease::load(&path).unwrap().unwrap();
        assert!(
            saved >= now + LEASE_TICKS,
            "lease {saved} not a minute ahead"
        );
        drop(first);

        let second = GuidFactory::resume(2, &path);
        let after: Vec<_> = (0..5000).map(|_| second.next_at(now - 100_000)).collect();
        assert!(before.last() < after.first());
        assert_increasing(&after);
        assert!(lease::load(&path).unwrap().unwrap() > saved);
    }

    #[test]
    fn a_lease_is_written_once_a_minute_not_on_every_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(lease::LEASE_FILE);
        let factory = GuidFactory::resume(0, &path);
        factory.next_at(1000);
        let first = lease::load(&path).unwrap().unwrap();
        factory.next_at(1000 + LEASE_TICKS / 2);
        assert_eq!(lease::load(&path).unwrap().unwrap(), first);
        factory.next_at(1001 + LEASE_TICKS);
        assert!(lease::load(&path).unwrap().unwrap() > first);
    }
}
