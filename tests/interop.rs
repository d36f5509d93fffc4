//! Interop with a real NSQ client library, `tokio-nsq` (used unmodified), over the TCP protocol
//! V2: PUB/MPUB/DPUB, SUB/RDY/FIN/REQ/TOUCH, fan-out to channels, sharing a channel, deferred
//! delivery, and in-flight timeouts, each checked against the client's view and `/stats`.
//!
//! Every test runs its own broker on its own data directory. Every wait has a deadline; the only
//! sleeps are where the assertion is about time (a touch cadence).

mod common;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{base, eventually, stats, DEADLINE};
use rnsq::nsqd::Nsqd;
use serde_json::Value;
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumer, NSQConsumerConfig, NSQConsumerConfigSources,
    NSQEvent, NSQMessage, NSQProducer, NSQProducerConfig, NSQRequeueDelay, NSQTopic,
};

/// Runs `future`, failing the test with `what` if it takes longer than [`DEADLINE`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Client options: commands (FIN, REQ, TOUCH, PUB) are flushed every 5 ms instead of tokio-nsq's
/// default 250 ms, so that timing assertions measure the broker, not the client's write buffer.
fn shared() -> NSQConfigShared {
    NSQConfigShared::new().set_flush_interval(Duration::from_millis(5))
}

fn topic(name: &str) -> Arc<NSQTopic> {
    NSQTopic::new(name).expect("valid topic name")
}

/// A producer connected to `nsqd` (its handshake done).
async fn producer(nsqd: &Nsqd) -> NSQProducer {
    let mut producer = NSQProducerConfig::new(nsqd.tcp_address().to_string())
        .set_shared(shared())
        .build();
    within("the producer to connect", async {
        match producer.consume().await {
            Some(NSQEvent::Healthy()) => {}
            other => panic!("producer: expected Healthy, got {other:?}"),
        }
    })
    .await;
    producer
}

/// Waits for `count` `OK` acknowledgements on `producer`.
async fn acks(producer: &mut NSQProducer, count: usize) {
    within(&format!("{count} publish acknowledgements"), async {
        for _ in 0..count {
            match producer.consume().await {
                Some(NSQEvent::Ok()) => {}
                other => panic!("producer: expected OK, got {other:?}"),
            }
        }
    })
    .await;
}

/// PUBs every body, one command each, and waits for every acknowledgement.
async fn publish_all(producer: &mut NSQProducer, topic: &Arc<NSQTopic>, bodies: &[Vec<u8>]) {
    for body in bodies {
        producer
            .publish(topic, body.clone())
            .await
            .expect("PUB queued");
    }
    acks(producer, bodies.len()).await;
}

/// A consumer of `topic`/`channel` on `nsqd` whose SUB has been answered `OK` (so the channel
/// exists). tokio-nsq then sends `RDY max_in_flight` on its own.
async fn consumer(
    nsqd: &Nsqd,
    topic: &Arc<NSQTopic>,
    channel: &str,
    max_in_flight: u32,
) -> NSQConsumer {
    let mut consumer = NSQConsumerConfig::new(
        topic.clone(),
        NSQChannel::new(channel).expect("valid channel name"),
    )
    .set_max_in_flight(max_in_flight)
    .set_sources(NSQConsumerConfigSources::Daemons(vec![nsqd
        .tcp_address()
        .to_string()]))
    .set_shared(shared())
    .build();
    within(&format!("consumer on {channel} to subscribe"), async {
        match consumer.consume().await {
            Some(NSQEvent::Healthy()) => {}
            other => panic!("consumer: expected Healthy, got {other:?}"),
        }
    })
    .await;
    consumer
}

/// The next message on `consumer`, without a deadline. tokio-nsq 0.14 builds its `Unhealthy`
/// event but never sends it (the send is not awaited), and reconnects quietly after a fatal error
/// frame, so a connection the broker closed shows up as a missed deadline, not here.
async fn next_message(consumer: &mut NSQConsumer) -> NSQMessage {
    loop {
        match consumer.consume().await {
            Some(NSQEvent::Message(message)) => return message,
            Some(NSQEvent::Healthy()) | Some(NSQEvent::Ok()) => continue,
            Some(NSQEvent::Unhealthy()) => {
                panic!("consumer connection failed (the broker closed it or sent a fatal error)")
            }
            None => panic!("consumer stream ended"),
        }
    }
}

/// The next message on `consumer`, failing the test after [`DEADLINE`].
async fn expect_message(consumer: &mut NSQConsumer, what: &str) -> NSQMessage {
    within(what, next_message(consumer)).await
}

/// The stats of `topic_name`/`channel_name`, if both exist.
fn channel_stats(stats: &Value, topic_name: &str, channel_name: &str) -> Option<Value> {
    stats["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic_name"] == topic_name)?["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel_name"] == channel_name)
        .cloned()
}

fn topic_stats(stats: &Value, topic_name: &str) -> Option<Value> {
    stats["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic_name"] == topic_name)
        .cloned()
}

fn count(stats: &Value, field: &str) -> u64 {
    stats[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing or not a count in {stats}"))
}

/// Waits until the channel has nothing queued, in flight or deferred; returns its stats.
async fn settled(nsqd: &Nsqd, topic_name: &str, channel_name: &str) -> Value {
    let h = base(nsqd.http_address());
    eventually(
        &format!("{topic_name}/{channel_name} to have nothing queued, in flight or deferred"),
        || {
            let h = h.clone();
            async move {
                let c = channel_stats(&stats(&h).await, topic_name, channel_name)?;
                (count(&c, "depth") == 0
                    && count(&c, "in_flight_count") == 0
                    && count(&c, "deferred_count") == 0)
                    .then_some(c)
            }
        },
    )
    .await
}

/// Asserts the channel's lifetime counters.
fn assert_counters(c: &Value, message_count: u64, requeue_count: u64, timeout_count: u64) {
    assert_eq!(
        (
            count(c, "message_count"),
            count(c, "requeue_count"),
            count(c, "timeout_count")
        ),
        (message_count, requeue_count, timeout_count),
        "(message_count, requeue_count, timeout_count) in {c}"
    );
}

/// Message IDs are 16 bytes of lowercase hex.
fn assert_id_format(message: &NSQMessage) {
    assert!(
        message
            .id
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)),
        "message ID is not 16 lowercase hex digits: {:?}",
        String::from_utf8_lossy(&message.id)
    );
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

async fn stop(nsqd: Nsqd) {
    within("the broker to shut down", nsqd.shutdown()).await;
}

/// Body `i` of a test: sizes vary, one is large (256 KiB, under the 1 MiB default limit).
fn body(i: usize) -> Vec<u8> {
    if i == 7 {
        return (0..256 * 1024).map(|n| (n % 251) as u8).collect();
    }
    format!("message {i};").repeat(i % 5 + 1).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_consume() {
    const N: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let topic = topic("interop_pub");

    let mut consumer = consumer(&nsqd, &topic, "c", 10).await;
    let mut producer = producer(&nsqd).await;
    let bodies: Vec<Vec<u8>> = (0..N).map(body).collect();
    let before_ns = now_ns();
    publish_all(&mut producer, &topic, &bodies).await;

    let mut received: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut ids = HashSet::new();
    within(&format!("{N} messages"), async {
        for _ in 0..N {
            let message = next_message(&mut consumer).await;
            assert_eq!(message.attempt, 1, "first delivery has attempts 1");
            assert_id_format(&message);
            assert!(ids.insert(message.id), "message ID delivered twice");
            assert!(
                message.timestamp >= before_ns - 1_000_000_000
                    && message.timestamp <= now_ns() + 1_000_000_000,
                "timestamp {} is not the publish time in ns (published at ~{before_ns})",
                message.timestamp
            );
            *received.entry(message.body.clone()).or_default() += 1;
            message.finish().await;
        }
    })
    .await;
    let expected: HashMap<Vec<u8>, usize> = bodies.iter().map(|b| (b.clone(), 1)).collect();
    assert_eq!(received.len(), expected.len(), "distinct bodies received");
    assert!(received == expected, "every body exactly once, unaltered");

    let c = settled(&nsqd, "interop_pub", "c").await;
    assert_counters(&c, N as u64, 0, 0);
    let t = topic_stats(&stats(&base(nsqd.http_address())).await, "interop_pub").unwrap();
    assert_eq!(count(&t, "message_count"), N as u64, "topic stats {t}");
    assert_eq!(count(&t, "depth"), 0, "topic stats {t}");

    drop((consumer, producer));
    stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_two_channels() {
    const N: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let topic = topic("interop_fan");

    let mut consumers = [
        consumer(&nsqd, &topic, "a", 10).await,
        consumer(&nsqd, &topic, "b", 10).await,
    ];
    let mut producer = producer(&nsqd).await;
    let bodies: Vec<Vec<u8>> = (0..N).map(|i| format!("fan {i}").into_bytes()).collect();
    // Half one PUB each, half in one MPUB (one acknowledgement).
    publish_all(&mut producer, &topic, &bodies[..N / 2]).await;
    producer
        .publish_multiple(&topic, bodies[N / 2..].to_vec())
        .await
        .expect("MPUB queued");
    acks(&mut producer, 1).await;

    let mut received: [HashMap<Vec<u8>, usize>; 2] = Default::default();
    within("every message on both channels", async {
        let mut total = 0;
        while total < 2 * N {
            let [a, b] = &mut consumers;
            let (which, message) = tokio::select! {
                m = next_message(a) => (0, m),
                m = next_message(b) => (1, m),
            };
            assert_eq!(message.attempt, 1);
            *received[which].entry(message.body.clone()).or_default() += 1;
            total += 1;
            message.finish().await;
        }
    })
    .await;
    let expected: HashMap<Vec<u8>, usize> = bodies.iter().map(|b| (b.clone(), 1)).collect();
    for (name, got) in ["a", "b"].iter().zip(&received) {
        assert!(
            *got == expected,
            "channel {name}: every message exactly once (got {} distinct)",
            got.len()
        );
        let c = settled(&nsqd, "interop_fan", name).await;
        assert_counters(&c, N as u64, 0, 0);
    }

    drop((consumers, producer));
    stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_share_a_channel() {
    const N: usize = 200;
    const MAX_IN_FLIGHT: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let topic = topic("interop_share");

    let mut consumers = [
        consumer(&nsqd, &topic, "shared", MAX_IN_FLIGHT as u32).await,
        consumer(&nsqd, &topic, "shared", MAX_IN_FLIGHT as u32).await,
    ];
    let mut producer = producer(&nsqd).await;
    let bodies: Vec<Vec<u8>> = (0..N).map(|i| format!("share {i}").into_bytes()).collect();
    publish_all(&mut producer, &topic, &bodies).await;

    // Each consumer holds (does not FIN) what it gets until both have had a message: the first
    // one to be ready stops at RDY messages in flight, so the broker must feed the other one.
    let mut received: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut got = [0usize; 2];
    let mut unfinished = [0usize; 2];
    let mut held: Vec<(usize, NSQMessage)> = Vec::new();
    within("every message across both consumers", async {
        while received.values().sum::<usize>() < N {
            let [a, b] = &mut consumers;
            let (which, message) = tokio::select! {
                m = next_message(a) => (0, m),
                m = next_message(b) => (1, m),
            };
            assert_eq!(message.attempt, 1);
            *received.entry(message.body.clone()).or_default() += 1;
            got[which] += 1;
            unfinished[which] += 1;
            assert!(
                unfinished[which] <= MAX_IN_FLIGHT,
                "consumer {which} has {} messages unfinished with RDY {MAX_IN_FLIGHT}",
                unfinished[which]
            );
            held.push((which, message));
            if got[0] > 0 && got[1] > 0 {
                for (which, message) in held.drain(..) {
                    unfinished[which] -= 1;
                    message.finish().await;
                }
            }
        }
    })
    .await;
    let expected: HashMap<Vec<u8>, usize> = bodies.iter().map(|b| (b.clone(), 1)).collect();
    assert!(
        received == expected,
        "every message exactly once across both consumers"
    );
    assert!(got[0] > 0 && got[1] > 0, "both consumers got work: {got:?}");
    println!("consumer split: {got:?}");
    let c = settled(&nsqd, "interop_share", "shared").await;
    assert_counters(&c, N as u64, 0, 0);

    drop((consumers, producer));
    stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_publish_then_deferred_requeue() {
    const DEFER: Duration = Duration::from_millis(1500);
    const REQUEUE: Duration = Duration::from_millis(500);
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    let topic = topic("interop_dpub");

    let mut consumer = consumer(&nsqd, &topic, "c", 1).await;
    let mut producer = producer(&nsqd).await;
    let published = Instant::now();
    producer
        .publish_deferred(&topic, b"later".to_vec(), DEFER.as_millis() as u32)
        .await
        .expect("DPUB queued");
    acks(&mut producer, 1).await;
    let c = eventually("the DPUB message to be deferred on the channel", || {
        let h = h.clone();
        async move {
            let c = channel_stats(&stats(&h).await, "interop_dpub", "c")?;
            (count(&c, "deferred_count") == 1).then_some(c)
        }
    })
    .await;
    assert_eq!(
        (count(&c, "depth"), count(&c, "in_flight_count")),
        (0, 0),
        "{c}"
    );

    let message = expect_message(&mut consumer, "the deferred message").await;
    let waited = published.elapsed();
    assert!(
        waited >= DEFER,
        "DPUB {DEFER:?} delivered after only {waited:?}"
    );
    assert_eq!(message.body, b"later");
    assert_eq!(message.attempt, 1, "a deferred publish is a first delivery");
    let id = message.id;

    let requeued = Instant::now();
    message.requeue(NSQRequeueDelay::CustomDelay(REQUEUE)).await;
    let again = expect_message(&mut consumer, "the requeued message").await;
    let waited = requeued.elapsed();
    assert!(
        waited >= REQUEUE,
        "REQ {REQUEUE:?} redelivered after only {waited:?}"
    );
    assert_eq!(again.id, id, "the same message comes back");
    assert_eq!(again.body, b"later");
    assert_eq!(again.attempt, 2);
    again.finish().await;

    let c = settled(&nsqd, "interop_dpub", "c").await;
    assert_counters(&c, 1, 1, 0);

    drop((consumer, producer));
    stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_with_delay_and_without() {
    const REQUEUE: Duration = Duration::from_millis(500);
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let topic = topic("interop_req");

    let mut consumer = consumer(&nsqd, &topic, "c", 1).await;
    let mut producer = producer(&nsqd).await;
    publish_all(&mut producer, &topic, &[b"again".to_vec()]).await;

    let first = expect_message(&mut consumer, "the message").await;
    assert_eq!(first.attempt, 1);
    let id = first.id;
    let requeued = Instant::now();
    first.requeue(NSQRequeueDelay::CustomDelay(REQUEUE)).await;

    let second = expect_message(&mut consumer, "the delayed redelivery").await;
    let waited = requeued.elapsed();
    assert!(
        waited >= REQUEUE,
        "REQ {REQUEUE:?} redelivered after only {waited:?}"
    );
    assert_eq!((second.id, second.attempt), (id, 2));
    assert_eq!(second.body, b"again");

    // REQ 0: straight back to the queue.
    second.requeue(NSQRequeueDelay::NoDelay).await;
    let third = expect_message(&mut consumer, "the immediate redelivery").await;
    assert_eq!((third.id, third.attempt), (id, 3));
    assert_eq!(third.body, b"again");
    third.finish().await;

    let c = settled(&nsqd, "interop_req", "c").await;
    assert_counters(&c, 1, 2, 0);

    drop((consumer, producer));
    stop(nsqd).await;
}

/// A broker whose messages time out after 1 s in flight.
async fn start_with_1s_timeout(dir: &std::path::Path) -> Nsqd {
    let mut opts = common::options(dir);
    opts.msg_timeout = Duration::from_secs(1);
    common::start_with(opts).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_keeps_a_message_past_its_timeout() {
    const HOLD: Duration = Duration::from_millis(2500);
    const TOUCH_EVERY: Duration = Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let nsqd = start_with_1s_timeout(dir.path()).await;
    let topic = topic("interop_touch");

    let mut consumer = consumer(&nsqd, &topic, "c", 1).await;
    let mut producer = producer(&nsqd).await;
    publish_all(&mut producer, &topic, &[b"slow".to_vec()]).await;

    let message = expect_message(&mut consumer, "the message").await;
    assert_eq!(message.attempt, 1);
    let received = Instant::now();
    let mut touches = 0;
    loop {
        let elapsed = received.elapsed();
        if elapsed >= HOLD {
            break;
        }
        let pause = (TOUCH_EVERY * (touches + 1))
            .min(HOLD)
            .saturating_sub(elapsed);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {
                if received.elapsed() < HOLD {
                    message.touch().await;
                    touches += 1;
                }
            }
            again = next_message(&mut consumer) => panic!(
                "message redelivered (attempts {}) after {:?} despite TOUCH every {TOUCH_EVERY:?}",
                again.attempt,
                received.elapsed()
            ),
        }
    }
    assert!(touches >= 6, "touched {touches} times");
    message.finish().await;

    let c = settled(&nsqd, "interop_touch", "c").await;
    assert_counters(&c, 1, 0, 0);

    drop((consumer, producer));
    stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_message_is_redelivered_after_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = start_with_1s_timeout(dir.path()).await;
    let topic = topic("interop_timeout");

    let mut consumer = consumer(&nsqd, &topic, "c", 1).await;
    let mut producer = producer(&nsqd).await;
    publish_all(&mut producer, &topic, &[b"forgotten".to_vec()]).await;

    // Held, never finished: tokio-nsq sends nothing for it.
    let first = expect_message(&mut consumer, "the message").await;
    let received = Instant::now();
    assert_eq!(first.attempt, 1);
    let again = expect_message(&mut consumer, "the redelivery after msg_timeout").await;
    let waited = received.elapsed();
    // The broker's clock starts when it writes the message, a little before we read it.
    assert!(
        waited >= Duration::from_millis(950),
        "redelivered {waited:?} after the first delivery, msg_timeout is 1s"
    );
    assert_eq!((again.id, again.attempt), (first.id, 2));
    assert_eq!(again.body, b"forgotten");
    again.finish().await;
    drop(first);

    // Go counts a timeout, not a requeue (processInFlightQueue puts the message back directly).
    let c = settled(&nsqd, "interop_timeout", "c").await;
    assert_counters(&c, 1, 0, 1);

    drop((consumer, producer));
    stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_before_any_channel_wait_for_the_first() {
    const N: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    let topic = topic("interop_early");

    let mut producer = producer(&nsqd).await;
    let bodies: Vec<Vec<u8>> = (0..N).map(|i| format!("early {i}").into_bytes()).collect();
    publish_all(&mut producer, &topic, &bodies).await;
    let t = topic_stats(&stats(&h).await, "interop_early").expect("topic created by PUB");
    assert_eq!(count(&t, "message_count"), N as u64, "{t}");

    let mut consumer = consumer(&nsqd, &topic, "late", 5).await;
    let mut received = HashSet::new();
    within("the messages held by the topic", async {
        for _ in 0..N {
            let message = next_message(&mut consumer).await;
            assert_eq!(message.attempt, 1);
            assert!(received.insert(message.body.clone()), "delivered twice");
            message.finish().await;
        }
    })
    .await;
    assert_eq!(received, bodies.into_iter().collect::<HashSet<_>>());
    let c = settled(&nsqd, "interop_early", "late").await;
    assert_counters(&c, N as u64, 0, 0);
    let t = topic_stats(&stats(&h).await, "interop_early").unwrap();
    assert_eq!(count(&t, "depth"), 0, "{t}");

    drop((consumer, producer));
    stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_message_of_a_closed_consumer_goes_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = start_with_1s_timeout(dir.path()).await;
    let topic = topic("interop_close");

    let mut first = consumer(&nsqd, &topic, "c", 1).await;
    let mut producer = producer(&nsqd).await;
    publish_all(&mut producer, &topic, &[b"orphan".to_vec()]).await;
    let message = expect_message(&mut first, "the message on the first consumer").await;
    assert_eq!(message.attempt, 1);
    let id = message.id;

    // A second consumer is ready; the first disconnects without FIN or REQ. Go 1.3.0 leaves the
    // message in flight until msg_timeout (timeout_count 1); rnsq requeues it at once
    // (requeue_count 1). Either way it comes back exactly once, with attempts 2.
    let mut second = consumer(&nsqd, &topic, "c", 1).await;
    let closed = Instant::now();
    drop(message);
    drop(first);
    let again = expect_message(&mut second, "the orphaned message on the second consumer").await;
    println!(
        "redelivered {:?} after the first consumer closed",
        closed.elapsed()
    );
    assert_eq!(
        (again.id, again.attempt, again.body.as_slice()),
        (id, 2, &b"orphan"[..])
    );
    again.finish().await;

    let c = settled(&nsqd, "interop_close", "c").await;
    println!(
        "requeue_count {}, timeout_count {}",
        count(&c, "requeue_count"),
        count(&c, "timeout_count")
    );
    assert_eq!(count(&c, "message_count"), 1, "{c}");
    assert_eq!(
        count(&c, "requeue_count") + count(&c, "timeout_count"),
        1,
        "one requeue or timeout explains the redelivery: {c}"
    );

    drop((second, producer));
    stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_cannot_extend_past_max_msg_timeout() {
    const TOUCH_EVERY: Duration = Duration::from_millis(200);
    const TOUCH_UNTIL: Duration = Duration::from_millis(1000);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path());
    opts.msg_timeout = Duration::from_secs(1);
    opts.max_msg_timeout = Duration::from_millis(1200);
    let nsqd = common::start_with(opts).await;
    let topic = topic("interop_touch_cap");

    let mut consumer = consumer(&nsqd, &topic, "c", 1).await;
    let mut producer = producer(&nsqd).await;
    publish_all(&mut producer, &topic, &[b"capped".to_vec()]).await;

    // Touched every 200 ms until 1 s: uncapped it would time out at 2 s; capped, at 1.2 s after
    // delivery. Touching stops well before the cap so that no TOUCH meets a message that is not
    // in flight (tokio-nsq treats E_TOUCH_FAILED as fatal).
    let message = expect_message(&mut consumer, "the message").await;
    let received = Instant::now();
    let mut touches = 1;
    let again = within("the redelivery at max_msg_timeout", async {
        loop {
            let next_touch = received + TOUCH_EVERY * touches;
            let touching = next_touch - received <= TOUCH_UNTIL;
            tokio::select! {
                _ = tokio::time::sleep_until(next_touch.into()), if touching => {
                    message.touch().await;
                    touches += 1;
                }
                again = next_message(&mut consumer) => break again,
            }
        }
    })
    .await;
    let waited = received.elapsed();
    assert!(
        waited >= Duration::from_millis(1150) && waited < Duration::from_millis(1600),
        "redelivered {waited:?} after delivery; TOUCH must be capped at max_msg_timeout 1.2s"
    );
    assert_eq!((again.id, again.attempt), (message.id, 2));
    again.finish().await;
    drop(message);

    let c = settled(&nsqd, "interop_touch_cap", "c").await;
    assert_counters(&c, 1, 0, 1);

    drop((consumer, producer));
    stop(nsqd).await;
}
