//! Publishing over a real V2 socket, byte for byte against Go nsqd 1.3.0
//! (`nsqd/protocol_v2.go` PUB/MPUB/DPUB, `nsqd/guid.go`, `nsqd/topic.go`): PUB's exact `OK`
//! and the message frame a consumer then gets, message IDs in Go's GUID layout, MPUB all or
//! nothing, DPUB deferring delivery (and counting as deferred), and messages beyond
//! --mem-queue-size still delivered whole. The error texts of malformed publishes are in
//! `protocol_v2_errors.rs`.
//!
//! Each test starts the broker in this process on port 0 and talks raw TCP through
//! `common::v2`. Sleeps appear only where the assertion is about time itself.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::v2::{dpub_cmd, mpub_cmd, pub_cmd, subscribe, with_body, Client, QUIET};
use common::{find_topic, stop, wait_channel_stat, wait_topic_count};
use tokio::time::Instant;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

// ---------------------------------------------------------------------------------------------
// PUB, the message frame, message IDs
// ---------------------------------------------------------------------------------------------

/// PUB → exactly `[0 0 0 6][0 0 0 0]OK`; a consumer that subscribes later gets the message
/// frame `[size][0 0 0 2][8-byte ts ns][2-byte attempts=1][16-byte hex id][body]`; FIN sends
/// nothing back; a second FIN of the same ID is the non-fatal
/// `E_FIN_FAILED FIN <id> failed ID not in flight`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_then_sub_gets_exact_message_frame_and_fin() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut producer = Client::connect(&nsqd).await;
    let before = now_ns();
    producer.send(&pub_cmd("orders", b"hello")).await;
    let ok = producer.frame().await;
    assert_eq!(ok.raw, [0, 0, 0, 6, 0, 0, 0, 0, b'O', b'K'], "got {ok:?}");
    wait_topic_count(&h, "orders", 1).await;

    let mut consumer = subscribe(&nsqd, "orders", "c", 1).await;
    let frame = consumer.frame().await;
    let after = now_ns();
    let size = 4 + 8 + 2 + 16 + 5u32;
    assert_eq!(
        frame.raw[..8],
        [size.to_be_bytes(), 2u32.to_be_bytes()].concat()[..]
    );
    let msg = frame.message();
    assert_eq!(msg.attempts, 1);
    assert_eq!(msg.body, b"hello");
    let slack = 1_000_000_000;
    assert!(
        msg.timestamp >= before - slack && msg.timestamp <= after + slack,
        "timestamp {} not nanoseconds near publication ({before}..{after})",
        msg.timestamp
    );

    wait_channel_stat(&h, "orders", "c", "in_flight_count", 1).await;
    consumer.line(&format!("FIN {}", msg.id)).await;
    // FIN answers nothing: the next frame is the probe's OK.
    consumer.expect_open().await;
    wait_channel_stat(&h, "orders", "c", "in_flight_count", 0).await;

    consumer.line(&format!("FIN {}", msg.id)).await;
    consumer
        .expect_error(&format!(
            "E_FIN_FAILED FIN {} failed ID not in flight",
            msg.id
        ))
        .await;
    consumer.expect_open().await;
    consumer.line("NOP").await;
    consumer.expect_open().await;
    stop(nsqd).await;
}

/// guid.go: an ID is the hex of `(ts - twepoch) << 22 | node_id << 12 | sequence`, where
/// `ts = UnixNano >> 20` (pseudo-milliseconds) and `twepoch = 1288834974288`. IDs of messages
/// published one after another are unique and increasing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_ids_follow_gos_guid_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.node_id = 777;
    let nsqd = common::start_with(options).await;

    let mut consumer = subscribe(&nsqd, "ids", "c", 100).await;
    let mut producer = Client::connect(&nsqd).await;
    let before = now_ns() >> 20;
    for i in 0..50u32 {
        producer.publish("ids", &i.to_be_bytes()).await;
    }
    let after = now_ns() >> 20;
    let mut by_order = vec![String::new(); 50];
    for _ in 0..50 {
        let msg = consumer.expect_message().await;
        let i = u32::from_be_bytes(msg.body[..4].try_into().unwrap()) as usize;
        by_order[i] = msg.id;
    }
    for pair in by_order.windows(2) {
        assert!(
            pair[0] < pair[1],
            "IDs not increasing: {} then {}",
            pair[0],
            pair[1]
        );
    }
    let mut problems = Vec::new();
    for id in [&by_order[0], &by_order[49]] {
        let value = u64::from_str_radix(id, 16).unwrap();
        let node = (value >> 12) & 0x3ff;
        if node != 777 {
            problems.push(format!("{id}: node bits {node}, want 777"));
        }
        let ts = (value >> 22) as i64 + 1_288_834_974_288;
        if ts < before - 1 || ts > after + 1 {
            problems.push(format!(
                "{id}: time part {ts} is not UnixNano>>20 at publication ({before}..{after})"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// MPUB
// ---------------------------------------------------------------------------------------------

/// MPUB → `OK` and every message delivered; a failing MPUB queues none of its messages, even
/// those before the bad one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpub_delivers_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.max_msg_size = 10;
    options.max_body_size = 100;
    let nsqd = common::start_with(options).await;
    let h = common::base(nsqd.http_address());

    let mut producer = Client::connect(&nsqd).await;
    producer
        .send(&mpub_cmd("batch", &[b"one", b"two", b"three"]))
        .await;
    producer.expect_ok().await;
    wait_topic_count(&h, "batch", 3).await;

    let failing: Vec<(Vec<u8>, &str)> = vec![
        (
            mpub_cmd("batch", &[b"good", b"0123456789a"]),
            "E_BAD_MESSAGE MPUB message too big 11 > 10",
        ),
        (
            mpub_cmd("batch", &[b"good", b"also good", b""]),
            "E_BAD_MESSAGE MPUB invalid message(2) body size 0",
        ),
        (
            with_body("MPUB batch", &0u32.to_be_bytes()),
            "E_BAD_BODY MPUB invalid message count 0",
        ),
    ];
    for (command, error) in failing {
        let mut client = Client::connect(&nsqd).await;
        client.send(&command).await;
        client.expect_error(error).await;
        client.expect_closed().await;
    }
    // The same checks on a topic that did not exist: no messages appear there either.
    let mut client = Client::connect(&nsqd).await;
    client
        .send(&mpub_cmd("batch_new", &[b"good", b"0123456789a"]))
        .await;
    client
        .expect_error("E_BAD_MESSAGE MPUB message too big 11 > 10")
        .await;
    client.expect_closed().await;

    let stats = common::stats(&h).await;
    assert_eq!(
        find_topic(&stats, "batch").expect("topic batch")["message_count"],
        3,
        "{stats}"
    );
    if let Some(topic) = find_topic(&stats, "batch_new") {
        assert_eq!(topic["message_count"], 0, "{stats}");
        assert_eq!(topic["depth"], 0, "{stats}");
    }

    let mut consumer = subscribe(&nsqd, "batch", "c", 10).await;
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let msg = consumer.expect_message().await;
        assert_eq!(msg.attempts, 1);
        consumer.line(&format!("FIN {}", msg.id)).await;
        bodies.push(String::from_utf8(msg.body).unwrap());
    }
    bodies.sort();
    assert_eq!(bodies, ["one", "three", "two"]);
    consumer.expect_quiet(QUIET).await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// DPUB
// ---------------------------------------------------------------------------------------------

/// DPUB 200 ms: not delivered before 200 ms, delivered after. The maximum (max-req-timeout)
/// is inclusive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpub_defers_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut consumer = subscribe(&nsqd, "later", "c", 1).await;
    let mut producer = Client::connect(&nsqd).await;

    let sent = Instant::now();
    producer.send(&dpub_cmd("later", 200, b"deferred")).await;
    producer.expect_ok().await;
    let msg = consumer.expect_message().await;
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200),
        "DPUB 200 delivered after only {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "DPUB 200 took {elapsed:?}"
    );
    assert_eq!((msg.attempts, msg.body.as_slice()), (1, &b"deferred"[..]));

    producer.send(&dpub_cmd("far", 3_600_000, b"x")).await;
    producer.expect_ok().await;
    producer.send(&dpub_cmd("now", 0, b"x")).await;
    producer.expect_ok().await;
    stop(nsqd).await;
}

/// A DPUB message waits in the channel's deferred queue (deferred_count) until due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpub_counts_as_deferred_in_stats() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "deferred", "c", 1).await;
    let sent = Instant::now();
    let mut producer = Client::connect(&nsqd).await;
    producer.send(&dpub_cmd("deferred", 1500, b"d")).await;
    producer.expect_ok().await;
    wait_channel_stat(&h, "deferred", "c", "deferred_count", 1).await;
    let msg = consumer.expect_message().await;
    assert!(sent.elapsed() >= Duration::from_millis(1500));
    assert_eq!(msg.body, b"d");
    wait_channel_stat(&h, "deferred", "c", "deferred_count", 0).await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Beyond the memory queue
// ---------------------------------------------------------------------------------------------

/// Beyond --mem-queue-size, messages go to the backend (backend_depth) and are still
/// delivered whole, each once, with attempts 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_beyond_mem_queue_size_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.mem_queue_size = 5;
    let nsqd = common::start_with(options).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "overflow", "c", 0).await;
    let mut producer = Client::connect(&nsqd).await;
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        let body = format!("single-{i}");
        producer.publish("overflow", body.as_bytes()).await;
        expected.insert(body);
    }
    let batch: Vec<String> = (0..20).map(|i| format!("batch-{i}")).collect();
    let batch_refs: Vec<&[u8]> = batch.iter().map(|b| b.as_bytes()).collect();
    producer.send(&mpub_cmd("overflow", &batch_refs)).await;
    producer.expect_ok().await;
    expected.extend(batch.iter().cloned());

    wait_channel_stat(&h, "overflow", "c", "depth", 40).await;
    wait_channel_stat(&h, "overflow", "c", "backend_depth", 35).await;

    consumer.line("RDY 100").await;
    let mut got = BTreeSet::new();
    for _ in 0..40 {
        let msg = consumer.expect_message().await;
        assert_eq!(msg.attempts, 1);
        consumer.line(&format!("FIN {}", msg.id)).await;
        assert!(
            got.insert(String::from_utf8(msg.body).unwrap()),
            "duplicate"
        );
    }
    assert_eq!(got, expected);
    consumer.expect_quiet(QUIET).await;
    wait_channel_stat(&h, "overflow", "c", "depth", 0).await;
    stop(nsqd).await;
}
