//! A channel: one consumer group's reading of a topic's stream. It holds its cursor into the
//! topic's log (with the messages waiting outside the log's order), the messages in flight
//! (delivered, not yet finished) with their timeouts, the deferred messages with their due
//! times, and its consumers.
//!
//! A timer task per channel fires in-flight timeouts and deferred due times at their exact
//! instant (Go scans every 100 ms and can be seconds late).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::ClientInfo;
pub use super::flights::FlightError;
use super::flights::{Flights, InFlight};
use super::latency::LatencyWindow;
use super::lazy_task::{LazyTask, Spawner};
use crate::message::{Message, MessageId};
use crate::names;
use crate::queue::ChannelCursor;

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
    /// The longest deferral a due time read back from disk may still ask for.
    max_defer: Duration,
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
        max_defer: Duration,
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
            max_defer,
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
        self.flights().defer(message, due, due_ms);
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
    ///
    /// Messages read back with a due time (DPUB, or deferred when the cursor was saved) wait
    /// on the monotonic clock from here on, so a wall clock stepping later changes nothing.
    /// A due time is wall-clock milliseconds, though, the only time that spans a restart:
    /// one that lies more than `--max-req-timeout` ahead (the clock stepped back while the
    /// broker was down) waits `--max-req-timeout`, and one already past (stepped forward) is
    /// delivered at once.
    pub fn try_next_message(self: &Arc<Self>) -> Option<Message> {
        let mut deferred = Vec::new();
        let message = self.cursor.take(&mut deferred);
        if !deferred.is_empty() {
            let now_ms = crate::message::now_ns() / 1_000_000;
            let now = Instant::now();
            let max_ms = i64::try_from(self.max_defer.as_millis()).unwrap_or(i64::MAX);
            for (message, due_ms) in deferred {
                let wait_ms = due_ms.saturating_sub(now_ms).clamp(0, max_ms);
                let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
                self.defer_until(message, now + wait, now_ms.saturating_add(wait_ms));
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
        let mut notes = HashMap::new();
        self.flights().note(&mut notes);
        self.cursor.save(&mut notes);
    }

    /// (in flight, deferred) counts.
    pub fn flight_counts(&self) -> (usize, usize) {
        self.flights().counts()
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
        let earliest = self.flights().start(messages, client, now, deadline);
        if earliest {
            self.timer.notify_one();
        }
    }

    fn take_in_flight(&self, client: u64, id: &MessageId) -> Result<InFlight, FlightError> {
        self.flights().take(client, id)
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

    /// A consumer sampling the channel (IDENTIFY `sample_rate`) passes over `message`, just
    /// taken for it: the message is done for this channel, as in Go, where the sampler drops
    /// what it skips. It leaves the cursor's outstanding set exactly as FIN does, so the
    /// watermark moves on and a restart does not deliver it again; it was never in flight, so
    /// no latency is recorded and only the channel's `message_count` (counted when taken)
    /// knows it.
    pub fn pass_over(&self, message: &Message) {
        self.cursor.finish(message.seq);
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
        self.flights()
            .touch(client, id, Instant::now(), timeout, max_timeout)?;
        self.timer.notify_one();
        Ok(())
    }

    /// Requeues every message in flight to `client` (it disconnected); returns how many.
    pub fn requeue_client(&self, client: u64) -> usize {
        let taken = self.flights().take_client(client);
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
        flights.clear();
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
        let expired = self.flights().expire(Instant::now());
        let timed_out = expired.timed_out;
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
        for message in expired.due {
            self.requeue_internal(message);
        }
        expired.next
    }
}
