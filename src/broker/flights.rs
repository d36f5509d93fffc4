//! A channel's messages held outside its cursor: those in flight (delivered, not yet finished)
//! with their deadlines, and those deferred with their due times. Pure bookkeeping: times are
//! passed in, nothing here wakes anyone.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use crate::message::{Message, MessageId};

/// Why FIN, REQ or TOUCH failed; the text is Go's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlightError {
    #[error("ID not in flight")]
    NotInFlight,
    #[error("client does not own message")]
    NotOwner,
}

/// A message delivered to a client and not yet finished.
pub(super) struct InFlight {
    pub message: Message,
    pub client: u64,
    deadline: Instant,
    delivered: Instant,
}

/// Hashes message IDs: they are unique by construction (time, node, sequence), so folding
/// their bytes together and finishing with a full avalanche mix (MurmurHash3's `fmix64`)
/// spreads them well; SipHash's flood resistance buys nothing here and costs time on every
/// delivery and FIN. The finish matters: the bytes that vary most (the sequence) come last.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }

    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// What fell due at an instant (see [`Flights::expire`]).
pub(super) struct Expired {
    /// In flight past their deadline.
    pub timed_out: Vec<InFlight>,
    /// Deferred and now due.
    pub due: Vec<Message>,
    /// When the next thing falls due, if anything is left.
    pub next: Option<Instant>,
}

/// The in-flight and deferred messages of one channel.
#[derive(Default)]
pub(super) struct Flights {
    in_flight: HashMap<MessageId, InFlight, BuildHasherDefault<IdHasher>>,
    /// Deadlines, earliest first. FIN and TOUCH leave entries behind (stale: the ID is gone or
    /// has another deadline); they are skipped when popped, and swept out when they outnumber
    /// the live ones, so the heap stays within a small multiple of the messages in flight.
    timeouts: BinaryHeap<Reverse<(Instant, MessageId)>>,
    /// Deferred messages with their due time in milliseconds since the epoch (saved, so a
    /// restart keeps it).
    deferred: BTreeMap<(Instant, u64), (Message, i64)>,
    sequence: u64,
}

impl Flights {
    fn is_live(&self, deadline: Instant, id: &MessageId) -> bool {
        self.in_flight
            .get(id)
            .is_some_and(|e| e.deadline == deadline)
    }

    fn sweep_if_stale(&mut self) {
        if self.timeouts.len() > 2 * self.in_flight.len() + 1024 {
            let in_flight = &self.in_flight;
            self.timeouts
                .retain(|Reverse((d, id))| in_flight.get(id).is_some_and(|e| e.deadline == *d));
        }
    }

    /// (in flight, deferred) counts.
    pub fn counts(&self) -> (usize, usize) {
        (self.in_flight.len(), self.deferred.len())
    }

    /// Adds to `notes` the (attempts, due ms) of every message held here (in flight: due 0).
    pub fn note(&self, notes: &mut HashMap<u64, (u16, i64)>) {
        for entry in self.in_flight.values() {
            notes.insert(entry.message.seq, (entry.message.attempts, 0));
        }
        for (message, due_ms) in self.deferred.values() {
            notes.insert(message.seq, (message.attempts, *due_ms));
        }
    }

    /// Holds `message` until `due` (`due_ms`, ms since the epoch, is what a save keeps).
    pub fn defer(&mut self, message: Message, due: Instant, due_ms: i64) {
        self.sequence += 1;
        let sequence = self.sequence;
        self.deferred.insert((due, sequence), (message, due_ms));
    }

    /// Records `messages` as delivered to `client` at `now`, due back by `deadline`; returns
    /// whether that deadline is now the earliest (the timer must look again).
    pub fn start(
        &mut self,
        messages: impl IntoIterator<Item = Message>,
        client: u64,
        now: Instant,
        deadline: Instant,
    ) -> bool {
        let earliest = self
            .timeouts
            .peek()
            .is_none_or(|Reverse((d, _))| deadline < *d);
        for message in messages {
            let id = message.id;
            self.in_flight.insert(
                id,
                InFlight {
                    message,
                    client,
                    deadline,
                    delivered: now,
                },
            );
            self.timeouts.push(Reverse((deadline, id)));
        }
        earliest
    }

    /// Takes message `id` out of flight, if `client` holds it.
    pub fn take(&mut self, client: u64, id: &MessageId) -> Result<InFlight, FlightError> {
        let entry = match self.in_flight.entry(*id) {
            std::collections::hash_map::Entry::Vacant(_) => return Err(FlightError::NotInFlight),
            std::collections::hash_map::Entry::Occupied(entry) if entry.get().client != client => {
                return Err(FlightError::NotOwner)
            }
            std::collections::hash_map::Entry::Occupied(entry) => entry.remove(),
        };
        self.sweep_if_stale();
        Ok(entry)
    }

    /// Moves message `id`'s deadline to `timeout` after `now`, but never past its delivery
    /// plus `max_timeout`.
    pub fn touch(
        &mut self,
        client: u64,
        id: &MessageId,
        now: Instant,
        timeout: Duration,
        max_timeout: Duration,
    ) -> Result<(), FlightError> {
        let entry = self.in_flight.get_mut(id).ok_or(FlightError::NotInFlight)?;
        if entry.client != client {
            return Err(FlightError::NotOwner);
        }
        let new = (now + timeout).min(entry.delivered + max_timeout);
        entry.deadline = new;
        self.timeouts.push(Reverse((new, *id)));
        self.sweep_if_stale();
        Ok(())
    }

    /// Takes every message in flight to `client` out of flight.
    pub fn take_client(&mut self, client: u64) -> Vec<InFlight> {
        let ids: Vec<MessageId> = self
            .in_flight
            .iter()
            .filter(|(_, e)| e.client == client)
            .map(|(id, _)| *id)
            .collect();
        let taken = ids
            .iter()
            .filter_map(|id| self.in_flight.remove(id))
            .collect();
        self.sweep_if_stale();
        taken
    }

    /// Forgets everything held.
    pub fn clear(&mut self) {
        self.in_flight.clear();
        self.timeouts.clear();
        self.deferred.clear();
    }

    /// Takes out everything due at `now`.
    pub fn expire(&mut self, now: Instant) -> Expired {
        let mut timed_out = Vec::new();
        let mut due = Vec::new();
        while let Some(&Reverse((deadline, id))) = self.timeouts.peek() {
            if deadline > now {
                break;
            }
            self.timeouts.pop();
            if self.is_live(deadline, &id) {
                if let Some(entry) = self.in_flight.remove(&id) {
                    timed_out.push(entry);
                }
            }
        }
        while let Some(entry) = self.deferred.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove().0);
        }
        let next_flight = self.timeouts.peek().map(|Reverse((d, _))| *d);
        let next_deferred = self.deferred.first_key_value().map(|((d, _), _)| *d);
        let next = match (next_flight, next_deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Expired {
            timed_out,
            due,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::IdHasher;
    use crate::guid::GuidFactory;

    #[test]
    fn id_hashes_spread_over_low_and_high_bits() {
        let guids = GuidFactory::new(7);
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0..4096).map(|_| build.hash_one(guids.next())).collect();
        // hashbrown picks buckets from the low bits and tags from the top seven.
        let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
        let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(
            low.len() > 2000,
            "only {} distinct low-bit buckets",
            low.len()
        );
        assert_eq!(top.len(), 128);
    }
}
