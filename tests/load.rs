//! Load: 20 producers and 10 consumers across 3 channels of one topic, through the real
//! `tokio-nsq` client. Every message must reach every channel, unaltered; duplicates are allowed
//! only as far as the channel's requeue and timeout counts explain them (with a generous
//! msg_timeout and consumers that FIN everything, none are expected).
//!
//! `RNSQ_LOAD_MESSAGES` sets the number of messages (default 1,000,000). The producers MPUB in
//! batches of `RNSQ_LOAD_BATCH` (default 500) with a few batches unacknowledged each;
//! `RNSQ_LOAD_BATCH=1` makes them PUB one message per command instead.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{base, eventually, stats};
use serde_json::Value;
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumer, NSQConsumerConfig, NSQConsumerConfigSources,
    NSQEvent, NSQProducerConfig, NSQTopic,
};

const TOPIC: &str = "load";
const CHANNELS: [&str; 3] = ["alpha", "beta", "gamma"];
const PRODUCERS: usize = 20;
const CONSUMERS: usize = 10;
/// Per consumer (tokio-nsq caps it at the broker's max_rdy_count, 2500 by default).
const MAX_IN_FLIGHT: u32 = 2000;
/// Messages a producer may have unacknowledged (at least 4 commands).
const WINDOW_MESSAGES: usize = 2000;
/// Generous: no message should time out in flight during the run.
const MSG_TIMEOUT: Duration = Duration::from_secs(600);
/// A run with no new message for this long has failed.
const STALL: Duration = Duration::from_secs(20);
/// Deadline for setting up and tearing down, and for each MPUB acknowledgement.
const SETUP_DEADLINE: Duration = Duration::from_secs(30);

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a count")),
        Err(_) => default,
    }
}

async fn within<T>(deadline: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(deadline, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {deadline:?} waiting for {what}"),
    }
}

fn shared() -> NSQConfigShared {
    NSQConfigShared::new().set_flush_interval(Duration::from_millis(5))
}

/// A check word over (producer, sequence), so a body altered in transit is caught.
fn check(producer: u32, seq: u32) -> u64 {
    let mut x = ((producer as u64) << 32 | seq as u64) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `[producer u32][seq u32][check u64]`, big-endian.
fn body(producer: u32, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&producer.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&check(producer, seq).to_be_bytes());
    b
}

fn parse(body: &[u8]) -> Option<(u32, u32)> {
    let body: &[u8; 16] = body.try_into().ok()?;
    let producer = u32::from_be_bytes(body[0..4].try_into().unwrap());
    let seq = u32::from_be_bytes(body[4..8].try_into().unwrap());
    let word = u64::from_be_bytes(body[8..16].try_into().unwrap());
    (word == check(producer, seq)).then_some((producer, seq))
}

/// How many messages each producer sends, and where its sequence numbers start in the global
/// index.
struct Plan {
    counts: Vec<usize>,
    offsets: Vec<usize>,
}

impl Plan {
    fn new(total: usize) -> Plan {
        let counts: Vec<usize> = (0..PRODUCERS)
            .map(|p| total / PRODUCERS + usize::from(p < total % PRODUCERS))
            .collect();
        let offsets = counts
            .iter()
            .scan(0, |next, c| {
                let start = *next;
                *next += c;
                Some(start)
            })
            .collect();
        Plan { counts, offsets }
    }

    /// The (producer, seq) of global index `i`.
    fn locate(&self, i: usize) -> (u32, u32) {
        let p = self.offsets.partition_point(|&o| o <= i) - 1;
        (p as u32, (i - self.offsets[p]) as u32)
    }

    fn index(&self, producer: u32, seq: u32) -> Option<usize> {
        let p = producer as usize;
        (p < PRODUCERS && (seq as usize) < self.counts[p]).then(|| self.offsets[p] + seq as usize)
    }
}

/// What one channel's consumers saw.
struct Seen {
    /// Deliveries per message (saturating).
    times: Vec<AtomicU8>,
    distinct: AtomicU64,
    deliveries: AtomicU64,
    redeliveries: AtomicU64,
    bad_bodies: AtomicU64,
}

impl Seen {
    fn new(total: usize) -> Seen {
        Seen {
            times: (0..total).map(|_| AtomicU8::new(0)).collect(),
            distinct: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            redeliveries: AtomicU64::new(0),
            bad_bodies: AtomicU64::new(0),
        }
    }

    fn record(&self, plan: &Plan, body: &[u8], attempt: u16) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        if attempt > 1 {
            self.redeliveries.fetch_add(1, Ordering::Relaxed);
        }
        let Some(i) = parse(body).and_then(|(p, s)| plan.index(p, s)) else {
            self.bad_bodies.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let before = self.times[i]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            })
            .unwrap();
        if before == 0 {
            self.distinct.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Consumes and FINs until aborted; counts connection failures in `unhealthy`.
async fn consume(
    mut consumer: NSQConsumer,
    plan: Arc<Plan>,
    seen: Arc<Seen>,
    unhealthy: Arc<AtomicU64>,
) {
    while let Some(event) = consumer.consume().await {
        match event {
            NSQEvent::Message(message) => {
                seen.record(&plan, &message.body, message.attempt);
                message.finish().await;
            }
            NSQEvent::Unhealthy() => {
                unhealthy.fetch_add(1, Ordering::Relaxed);
            }
            NSQEvent::Healthy() | NSQEvent::Ok() => {}
        }
    }
}

/// Publishes producer `p`'s share in MPUB batches (PUBs if `batch` is 1), keeping about
/// [`WINDOW_MESSAGES`] unacknowledged.
async fn produce(address: String, p: u32, count: usize, batch: usize) {
    let topic = NSQTopic::new(TOPIC).unwrap();
    let mut producer = NSQProducerConfig::new(address).set_shared(shared()).build();
    within(SETUP_DEADLINE, "a producer to connect", async {
        match producer.consume().await {
            Some(NSQEvent::Healthy()) => {}
            other => panic!("producer {p}: expected Healthy, got {other:?}"),
        }
    })
    .await;
    let window = (WINDOW_MESSAGES / batch).max(4);
    let mut outstanding = 0;
    let mut seq = 0;
    while seq < count {
        let end = (seq + batch).min(count);
        let queued = if batch == 1 {
            producer.publish(&topic, body(p, seq as u32)).await
        } else {
            let bodies = (seq..end).map(|s| body(p, s as u32)).collect();
            producer.publish_multiple(&topic, bodies).await
        };
        queued.unwrap_or_else(|e| panic!("producer {p}: PUB/MPUB not queued: {e}"));
        seq = end;
        outstanding += 1;
        while outstanding >= window || (seq >= count && outstanding > 0) {
            match within(
                SETUP_DEADLINE,
                "a publish acknowledgement",
                producer.consume(),
            )
            .await
            {
                Some(NSQEvent::Ok()) => outstanding -= 1,
                other => panic!("producer {p}: expected OK, got {other:?} (messages lost)"),
            }
        }
    }
}

fn channel_stats(stats: &Value, channel: &str) -> Option<Value> {
    stats["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic_name"] == TOPIC)?["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel_name"] == channel)
        .cloned()
}

fn count(stats: &Value, field: &str) -> u64 {
    stats[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing or not a count in {stats}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn million_messages_three_channels() {
    let total = env_usize("RNSQ_LOAD_MESSAGES", 1_000_000);
    let batch = env_usize("RNSQ_LOAD_BATCH", 500).max(1);
    assert!(
        total >= PRODUCERS,
        "RNSQ_LOAD_MESSAGES must be at least {PRODUCERS}"
    );
    // Generous: a quarter of a millisecond per message, at least two minutes.
    let deadline = Duration::from_secs(120).max(Duration::from_micros(250 * total as u64));

    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path());
    opts.msg_timeout = MSG_TIMEOUT;
    let nsqd = common::start_with(opts).await;
    let h = base(nsqd.http_address());
    let address = nsqd.tcp_address().to_string();
    let plan = Arc::new(Plan::new(total));
    let seen: Vec<Arc<Seen>> = CHANNELS
        .iter()
        .map(|_| Arc::new(Seen::new(total)))
        .collect();
    let unhealthy = Arc::new(AtomicU64::new(0));

    // Consumers first, so all three channels exist before the first message.
    let topic = NSQTopic::new(TOPIC).unwrap();
    let mut consumer_tasks = Vec::new();
    for i in 0..CONSUMERS {
        let c = i % CHANNELS.len();
        let mut consumer =
            NSQConsumerConfig::new(topic.clone(), NSQChannel::new(CHANNELS[c]).unwrap())
                .set_max_in_flight(MAX_IN_FLIGHT)
                .set_sources(NSQConsumerConfigSources::Daemons(vec![address.clone()]))
                .set_shared(shared())
                .build();
        within(SETUP_DEADLINE, "a consumer to subscribe", async {
            match consumer.consume().await {
                Some(NSQEvent::Healthy()) => {}
                other => panic!("consumer {i}: expected Healthy, got {other:?}"),
            }
        })
        .await;
        consumer_tasks.push(tokio::spawn(consume(
            consumer,
            plan.clone(),
            seen[c].clone(),
            unhealthy.clone(),
        )));
    }

    let started = Instant::now();
    let producer_tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(address.clone(), p as u32, plan.counts[p], batch)))
        .collect();
    let published = async {
        for task in producer_tasks {
            task.await.expect("producer task");
        }
        started.elapsed()
    };
    let publish_time = within(deadline, "the producers", published).await;

    // Progress is polled; consumers run on their own. tokio-nsq 0.14 never delivers its
    // Unhealthy event (the send is not awaited) and panics in `finish` once a connection is gone,
    // so a failed consumer connection shows up as a finished consumer task, or as a stall.
    let mut last_report = Instant::now();
    let mut last_progress = (0, Instant::now());
    let stopped_early = loop {
        let distinct: Vec<u64> = seen
            .iter()
            .map(|s| s.distinct.load(Ordering::Relaxed))
            .collect();
        if distinct.iter().all(|&d| d == total as u64) {
            break None;
        }
        if let Some(i) = consumer_tasks.iter().position(|t| t.is_finished()) {
            break Some(format!(
                "consumer {i} stopped: its connection failed (the broker closed it or sent a \
                 fatal error such as E_FIN_FAILED)"
            ));
        }
        if unhealthy.load(Ordering::Relaxed) != 0 {
            break Some("a consumer connection failed".to_string());
        }
        let sum: u64 = distinct.iter().sum();
        if sum != last_progress.0 {
            last_progress = (sum, Instant::now());
        } else if last_progress.1.elapsed() > STALL {
            break Some(format!("no new message for {STALL:?}"));
        }
        if started.elapsed() > deadline {
            break Some(format!("not done after {deadline:?}"));
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            println!(
                "{:>6.1?}: distinct per channel {distinct:?}",
                started.elapsed()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let consume_time = started.elapsed();

    // FINs go out asynchronously: wait until nothing is in flight, queued or deferred (unless
    // the run already failed: then report what the broker has now).
    let channel_stats_now = |s: &Value| -> Option<Vec<Value>> {
        CHANNELS.iter().map(|c| channel_stats(s, c)).collect()
    };
    let channel_stats_final: Vec<Value> = if stopped_early.is_some() {
        channel_stats_now(&stats(&h).await).expect("every channel in /stats")
    } else {
        eventually("every channel to settle", || {
            let h = h.clone();
            async move {
                let cs = channel_stats_now(&stats(&h).await)?;
                cs.iter()
                    .all(|c| {
                        count(c, "depth") == 0
                            && count(c, "in_flight_count") == 0
                            && count(c, "deferred_count") == 0
                    })
                    .then_some(cs)
            }
        })
        .await
    };

    let deliveries: u64 = seen
        .iter()
        .map(|s| s.deliveries.load(Ordering::Relaxed))
        .sum();
    let mode = if batch == 1 {
        "PUB".to_string()
    } else {
        format!("MPUB x{batch}")
    };
    println!(
        "load: {total} messages, {PRODUCERS} producers ({mode}), {CONSUMERS} consumers on {} \
         channels",
        CHANNELS.len()
    );
    println!(
        "  published in {publish_time:.2?}: {:.0} msgs/s",
        total as f64 / publish_time.as_secs_f64()
    );
    println!(
        "  delivered in {consume_time:.2?}: {:.0} deliveries/s, {:.0} msgs/s end to end",
        deliveries as f64 / consume_time.as_secs_f64(),
        total as f64 / consume_time.as_secs_f64()
    );
    let mut failures: Vec<String> = stopped_early.into_iter().collect();
    for ((name, s), c) in CHANNELS.iter().zip(&seen).zip(&channel_stats_final) {
        let distinct = s.distinct.load(Ordering::Relaxed);
        let delivered = s.deliveries.load(Ordering::Relaxed);
        let bad = s.bad_bodies.load(Ordering::Relaxed);
        let duplicates = delivered - distinct - bad;
        let requeues = count(c, "requeue_count");
        let timeouts = count(c, "timeout_count");
        let missing: Vec<usize> = s
            .times
            .iter()
            .enumerate()
            .filter(|(_, t)| t.load(Ordering::Relaxed) == 0)
            .map(|(i, _)| i)
            .collect();
        println!(
            "  channel {name}: delivered {delivered}, distinct {distinct}, duplicates \
             {duplicates}, attempts>1 {}, requeue_count {requeues}, timeout_count {timeouts}, \
             message_count {}, depth {}, in_flight_count {}, bad bodies {bad}",
            s.redeliveries.load(Ordering::Relaxed),
            count(c, "message_count"),
            count(c, "depth"),
            count(c, "in_flight_count"),
        );
        if bad != 0 {
            failures.push(format!("{name}: {bad} bodies altered or unknown"));
        }
        if !missing.is_empty() {
            let first: Vec<(u32, u32)> = missing.iter().take(5).map(|&i| plan.locate(i)).collect();
            failures.push(format!(
                "{name}: {} messages never delivered, first (producer, seq): {first:?}",
                missing.len()
            ));
        }
        if duplicates > requeues + timeouts {
            failures.push(format!(
                "{name}: {duplicates} duplicates, but only {requeues} requeues and {timeouts} \
                 timeouts"
            ));
        }
        if timeouts != 0 {
            failures.push(format!(
                "{name}: {timeouts} timeouts with msg_timeout {MSG_TIMEOUT:?}"
            ));
        }
        if requeues != 0 {
            failures.push(format!(
                "{name}: {requeues} requeues, and the consumers never REQ"
            ));
        }
        if count(c, "message_count") != total as u64 {
            failures.push(format!(
                "{name}: message_count {} != {total}",
                count(c, "message_count")
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    for task in &consumer_tasks {
        task.abort();
    }
    for task in consumer_tasks {
        let _ = task.await;
    }
    within(SETUP_DEADLINE, "the broker to shut down", nsqd.shutdown()).await;
}
