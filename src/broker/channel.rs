//! A channel: one consumer group's reading of a topic's stream. It holds its cursor into the
//! topic's log (with the messages waiting outside the log's order), the messages in flight
//! (delivered, not yet finished) with their timeouts, the deferred messages with their due
//! times, and its consumers.
//!
//! A timer task per channel fires in-flight timeouts and deferred due times at their exact
//! instant (Go scans every 100 ms and can be seconds late).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::ClientInfo;
use super::latency::LatencyWindow;
use super::lazy_task::{LazyTask, Spawner};
use crate::message::{Message, MessageId};
use crate::names;
use crate::queue::ChannelCursor;

/// Why FIN, REQ or TOUCH failed; the text is Go's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlightError {
    #[error("ID not in flight")]
    NotInFlight,
    #[error("client does not own message")]
    NotOwner,
}

struct InFlight {
    message: Message,
    client: u64,
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

#[derive(Default)]
struct Flights {
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
}

/// A channel of a topic. Shared behind an `Arc`; its flags change only through the broker.
pub struct Channel {
    name: String,
    ephemeral: bool,
    paused: AtomicBool,
    deleted: AtomicBool,
    cursor: ChannelCursor,
    flights: Mutex<Flights>,
    timer: Notify,
    pub requeue_count: AtomicU64,
    pub timeout_count: AtomicU64,
    clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    /// Bumped on pause and unpause so that consumers look again.
    changes: watch::Sender<u64>,
    exit: CancellationToken,
    latency: Option<Mutex<LatencyWindow>>,
    timer_task: LazyTask,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub(crate) fn new(
        name: &str,
        paused: bool,
        cursor: ChannelCursor,
        latency_window: Option<Duration>,
        spawner: Spawner,
    ) -> Self {
        Channel {
            name: name.into(),
            ephemeral: names::is_ephemeral(name),
            paused: AtomicBool::new(paused),
            deleted: AtomicBool::new(false),
            cursor,
            flights: Mutex::new(Flights::default()),
            timer: Notify::new(),
            requeue_count: AtomicU64::new(0),
            timeout_count: AtomicU64::new(0),
            clients: Mutex::new(HashMap::new()),
            changes: watch::channel(0).0,
            exit: CancellationToken::new(),
            latency: latency_window.map(|w| Mutex::new(LatencyWindow::new(w))),
            timer_task: LazyTask::new(spawner),
        }
    }

    /// Adds this channel's latency samples (and their count) to `samples` and `count`.
    pub fn collect_latency(&self, samples: &mut Vec<u64>, count: &mut u64) {
        if let Some(window) = &self.latency {
            window
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .collect(samples, count);
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the name ends in `#ephemeral`: never persisted, deleted with its last consumer.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Whether delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        self.changes.send_modify(|v| *v += 1);
    }

    /// A receiver that changes on pause and unpause.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether the channel has been deleted; a holder of a deleted channel must let go of it.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Cancelled when the channel is deleted or the broker stops.
    pub fn exit_token(&self) -> &CancellationToken {
        &self.exit
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        self.exit.cancel();
    }

    fn flights(&self) -> MutexGuard<'_, Flights> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Messages this channel has taken from its topic.
    pub fn message_count(&self) -> u64 {
        self.cursor.taken.load(Ordering::Relaxed)
    }

    /// The channel's place in the topic's log.
    pub fn cursor(&self) -> &ChannelCursor {
        &self.cursor
    }

    fn requeue_internal(&self, message: Message) {
        self.cursor.requeue(message);
    }

    fn defer(self: &Arc<Self>, message: Message, delay: Duration) {
        let due_ms = crate::message::now_ns() / 1_000_000
            + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        self.defer_until(message, Instant::now() + delay, due_ms);
    }

    fn defer_until(self: &Arc<Self>, message: Message, due: Instant, due_ms: i64) {
        self.ensure_timer();
        {
            let mut flights = self.flights();
            flights.sequence += 1;
            let sequence = flights.sequence;
            flights.deferred.insert((due, sequence), (message, due_ms));
        }
        self.timer.notify_one();
    }

    /// The next message to deliver, waiting for one. Cancel-safe: a message is taken only
    /// when the future completes.
    pub async fn next_message(self: &Arc<Self>) -> Option<Message> {
        loop {
            let requeued = self.cursor.readable().notified();
            let appended = self.cursor.log().appended().notified();
            tokio::pin!(requeued, appended);
            // Registered before looking, so a message arriving meanwhile is not missed.
            requeued.as_mut().enable();
            appended.as_mut().enable();
            if let Some(message) = self.try_next_message() {
                return Some(message);
            }
            tokio::select! {
                _ = requeued => {}
                _ = appended => {}
            }
        }
    }

    /// The next message to deliver, if one is waiting now.
    pub fn try_next_message(self: &Arc<Self>) -> Option<Message> {
        let mut deferred = Vec::new();
        let message = self.cursor.take(&mut deferred);
        if !deferred.is_empty() {
            let now_ms = crate::message::now_ns() / 1_000_000;
            let now = Instant::now();
            for (message, due_ms) in deferred {
                let wait = Duration::from_millis(u64::try_from(due_ms - now_ms).unwrap_or(0));
                self.defer_until(message, now + wait, due_ms);
            }
        }
        message
    }

    /// Messages waiting for a consumer.
    pub fn depth(&self) -> usize {
        self.cursor.depth()
    }

    /// Of [`Channel::depth`], those only on disk (beyond `--mem-queue-size`).
    pub fn backend_depth(&self) -> usize {
        self.cursor.backend_depth()
    }

    /// Saves the channel's place if it changed since the last save.
    pub(crate) fn save_cursor(&self) {
        let mut notes = std::collections::HashMap::new();
        {
            let flights = self.flights();
            for entry in flights.in_flight.values() {
                notes.insert(entry.message.seq, (entry.message.attempts, 0));
            }
            for (message, due_ms) in flights.deferred.values() {
                notes.insert(message.seq, (message.attempts, *due_ms));
            }
        }
        self.cursor.save(&mut notes);
    }

    /// (in flight, deferred) counts.
    pub fn flight_counts(&self) -> (usize, usize) {
        let flights = self.flights();
        (flights.in_flight.len(), flights.deferred.len())
    }

    /// Records `messages` as delivered to `client`, each timing out after `timeout`.
    pub fn start_in_flight(
        self: &Arc<Self>,
        messages: impl IntoIterator<Item = Message>,
        client: u64,
        timeout: Duration,
    ) {
        self.ensure_timer();
        let now = Instant::now();
        let deadline = now + timeout;
        let earliest = {
            let mut flights = self.flights();
            let earliest = flights
                .timeouts
                .peek()
                .is_none_or(|Reverse((d, _))| deadline < *d);
            for message in messages {
                let id = message.id;
                flights.in_flight.insert(
                    id,
                    InFlight {
                        message,
                        client,
                        deadline,
                        delivered: now,
                    },
                );
                flights.timeouts.push(Reverse((deadline, id)));
            }
            earliest
        };
        if earliest {
            self.timer.notify_one();
        }
    }

    fn take_in_flight(&self, client: u64, id: &MessageId) -> Result<InFlight, FlightError> {
        let mut flights = self.flights();
        let entry = match flights.in_flight.entry(*id) {
            std::collections::hash_map::Entry::Vacant(_) => return Err(FlightError::NotInFlight),
            std::collections::hash_map::Entry::Occupied(entry) if entry.get().client != client => {
                return Err(FlightError::NotOwner)
            }
            std::collections::hash_map::Entry::Occupied(entry) => entry.remove(),
        };
        flights.sweep_if_stale();
        Ok(entry)
    }

    /// FIN: the message is done.
    pub fn finish(&self, client: u64, id: &MessageId) -> Result<(), FlightError> {
        let entry = self.take_in_flight(client, id)?;
        self.cursor.finish(entry.message.seq);
        if let Some(window) = &self.latency {
            let nanos = crate::message::now_ns()
                .saturating_sub(entry.message.timestamp)
                .max(0);
            window
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(nanos as u64);
        }
        Ok(())
    }

    /// REQ: back to the queue now (`delay` zero) or after `delay`.
    pub fn requeue(
        self: &Arc<Self>,
        client: u64,
        id: &MessageId,
        delay: Duration,
    ) -> Result<(), FlightError> {
        let entry = self.take_in_flight(client, id)?;
        self.requeue_count.fetch_add(1, Ordering::Relaxed);
        if delay.is_zero() {
            self.requeue_internal(entry.message);
        } else {
            self.defer(entry.message, delay);
        }
        Ok(())
    }

    /// TOUCH: the timeout restarts at `timeout` from now, but never past delivery plus
    /// `max_timeout`.
    pub fn touch(
        &self,
        client: u64,
        id: &MessageId,
        timeout: Duration,
        max_timeout: Duration,
    ) -> Result<(), FlightError> {
        let mut flights = self.flights();
        let entry = flights
            .in_flight
            .get_mut(id)
            .ok_or(FlightError::NotInFlight)?;
        if entry.client != client {
            return Err(FlightError::NotOwner);
        }
        let new = (Instant::now() + timeout).min(entry.delivered + max_timeout);
        entry.deadline = new;
        flights.timeouts.push(Reverse((new, *id)));
        flights.sweep_if_stale();
        self.timer.notify_one();
        Ok(())
    }

    /// Requeues every message in flight to `client` (it disconnected); returns how many.
    pub fn requeue_client(&self, client: u64) -> usize {
        let taken: Vec<InFlight> = {
            let mut flights = self.flights();
            let ids: Vec<MessageId> = flights
                .in_flight
                .iter()
                .filter(|(_, e)| e.client == client)
                .map(|(id, _)| *id)
                .collect();
            let taken = ids
                .iter()
                .filter_map(|id| flights.in_flight.remove(id))
                .collect();
            flights.sweep_if_stale();
            taken
        };
        let count = taken.len();
        for entry in taken {
            self.requeue_count.fetch_add(1, Ordering::Relaxed);
            self.requeue_internal(entry.message);
        }
        count
    }

    /// Drops every queued, in-flight and deferred message.
    pub fn empty(&self) {
        self.cursor.empty();
        let clients = self.clients();
        let mut flights = self.flights();
        flights.in_flight.clear();
        flights.timeouts.clear();
        flights.deferred.clear();
        for client in clients {
            client.in_flight_count.store(0, Ordering::Release);
            client.wake.notify_one();
        }
    }

    /// Adds a consumer.
    pub fn add_client(&self, client: Arc<ClientInfo>) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client.id, client);
    }

    /// Removes a consumer; returns how many remain.
    pub fn remove_client(&self, client: u64) -> usize {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.remove(&client);
        clients.len()
    }

    /// The consumers, in connection order.
    pub fn clients(&self) -> Vec<Arc<ClientInfo>> {
        super::client::sorted(&self.clients)
    }

    /// How many consumers there are.
    pub fn client_count(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Fires in-flight timeouts and deferred due times on time, until the channel is deleted
    /// or `shutdown` is cancelled.
    /// Starts the timer task unless it runs: only channels that ever hold a message in flight
    /// or deferred need one.
    fn ensure_timer(self: &Arc<Self>) {
        let channel = self.clone();
        self.timer_task
            .ensure(move |shutdown| channel.run_timer(shutdown));
    }

    async fn run_timer(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let next = self.fire_due();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.exit.cancelled() => return,
                _ = self.timer.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// Handles everything due now; returns when the next thing falls due.
    fn fire_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut timed_out = Vec::new();
        let mut due = Vec::new();
        let next = {
            let mut flights = self.flights();
            while let Some(&Reverse((deadline, id))) = flights.timeouts.peek() {
                if deadline > now {
                    break;
                }
                flights.timeouts.pop();
                if flights.is_live(deadline, &id) {
                    if let Some(entry) = flights.in_flight.remove(&id) {
                        timed_out.push(entry);
                    }
                }
            }
            while let Some(entry) = flights.deferred.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove().0);
            }
            let next_flight = flights.timeouts.peek().map(|Reverse((d, _))| *d);
            let next_deferred = flights.deferred.first_key_value().map(|((d, _), _)| *d);
            match (next_flight, next_deferred) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        if !timed_out.is_empty() {
            let clients = self
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for entry in timed_out {
                self.timeout_count.fetch_add(1, Ordering::Relaxed);
                if let Some(client) = clients.get(&entry.client) {
                    client.left_flight();
                }
                self.requeue_internal(entry.message);
            }
        }
        for message in due {
            self.requeue_internal(message);
        }
        next
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
