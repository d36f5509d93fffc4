//! Consuming over a real V2 socket, against Go nsqd 1.3.0 (`nsqd/protocol_v2.go`
//! SUB/RDY/FIN/REQ/TOUCH/CLS, `nsqd/channel.go`): SUB's consumer limit, CLS and what still
//! works after it, RDY flow control, FIN/REQ/TOUCH on messages another client owns, REQ
//! now/deferred/clamped, in-flight timeouts and TOUCH extending them (up to max-msg-timeout),
//! fan-out across channels and sharing within one, paused, deleted and ephemeral topics and
//! channels, and a consumer that never reads not stalling the broker. The error texts of
//! malformed consumer commands are in `protocol_v2_errors.rs`.
//!
//! Each test starts the broker in this process on port 0 and talks raw TCP through
//! `common::v2`. Sleeps appear only where the assertion is about time itself.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::v2::{subscribe, Client, Next, QUIET, UNKNOWN_ID, WAIT};
use common::{find_channel, find_topic, stop, wait_channel_stat};
use tokio::time::{sleep_until, timeout, Instant};

// ---------------------------------------------------------------------------------------------
// SUB and CLS
// ---------------------------------------------------------------------------------------------

/// channel.go AddClient: beyond max-channel-consumers SUB fails with
/// `E_SUB_FAILED SUB failed consumers for <topic>:<channel> exceeds limit of <n>`, fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_beyond_max_channel_consumers_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.max_channel_consumers = 1;
    let nsqd = common::start_with(options).await;

    let mut first = subscribe(&nsqd, "crowd", "c", 0).await;
    let mut second = Client::connect(&nsqd).await;
    second.line("SUB crowd c").await;
    second
        .expect_error("E_SUB_FAILED SUB failed consumers for crowd:c exceeds limit of 1")
        .await;
    second.expect_closed().await;
    // Another channel of the same topic has its own limit.
    subscribe(&nsqd, "crowd", "d", 0).await.expect_open().await;
    first.expect_open().await;
    stop(nsqd).await;
}

/// CLS → `CLOSE_WAIT`; then RDY is ignored (no error, nothing delivered); FIN still allowed
/// (non-fatal E_FIN_FAILED for an unknown ID); a second CLS is fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cls_answers_close_wait_then_rdy_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut client = subscribe(&nsqd, "closing", "c", 0).await;
    client.line("CLS").await;
    client.expect_response(b"CLOSE_WAIT").await;
    client.line("RDY 5").await;
    client.expect_open().await;

    Client::connect(&nsqd)
        .await
        .publish("closing", b"not for you")
        .await;
    client.expect_quiet(QUIET).await;

    client.line(&format!("FIN {UNKNOWN_ID}")).await;
    client
        .expect_error("E_FIN_FAILED FIN 0123456789abcdef failed ID not in flight")
        .await;
    client.expect_open().await;

    client.line("CLS").await;
    client
        .expect_error("E_INVALID cannot CLS in current state")
        .await;
    client.expect_closed().await;

    // The message stays for the next consumer.
    let mut next = subscribe(&nsqd, "closing", "c", 1).await;
    assert_eq!(next.expect_message().await.body, b"not for you");
    stop(nsqd).await;
}

/// CLS with a message in flight: it can still be FINed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fin_after_cls_finishes_in_flight_message() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut client = subscribe(&nsqd, "drain", "c", 1).await;
    Client::connect(&nsqd).await.publish("drain", b"m").await;
    let msg = client.expect_message().await;
    client.line("CLS").await;
    client.expect_response(b"CLOSE_WAIT").await;
    client.line(&format!("FIN {}", msg.id)).await;
    client.expect_open().await;
    wait_channel_stat(&h, "drain", "c", "in_flight_count", 0).await;
    wait_channel_stat(&h, "drain", "c", "depth", 0).await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// RDY flow control
// ---------------------------------------------------------------------------------------------

/// RDY 2 with 5 published: exactly 2 arrive until one is FINed; RDY 0 stops delivery; RDY
/// with no count means 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdy_limits_messages_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "flow", "c", 0).await;
    let mut producer = Client::connect(&nsqd).await;
    for i in 0..5 {
        producer.publish("flow", format!("m{i}").as_bytes()).await;
    }
    // RDY 0 after SUB: nothing yet.
    consumer.expect_quiet(QUIET).await;

    consumer.line("RDY 2").await;
    let mut seen = BTreeSet::new();
    let a = consumer.expect_message().await;
    let b = consumer.expect_message().await;
    consumer.expect_quiet(QUIET).await;
    wait_channel_stat(&h, "flow", "c", "in_flight_count", 2).await;

    consumer.line(&format!("FIN {}", a.id)).await;
    let c = consumer.expect_message().await;
    consumer.expect_quiet(QUIET).await;
    for msg in [&a, &b, &c] {
        seen.insert(String::from_utf8(msg.body.clone()).unwrap());
    }

    consumer.line(&format!("FIN {}", b.id)).await;
    consumer.line(&format!("FIN {}", c.id)).await;
    let d = consumer.expect_message().await;
    let e = consumer.expect_message().await;
    for msg in [&d, &e] {
        seen.insert(String::from_utf8(msg.body.clone()).unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["m0", "m1", "m2", "m3", "m4"]
    );

    // RDY 0 stops delivery (the probe's OK proves RDY 0 was processed first).
    consumer.line("RDY 0").await;
    consumer.expect_open().await;
    consumer.line(&format!("FIN {}", d.id)).await;
    consumer.line(&format!("FIN {}", e.id)).await;
    producer.publish("flow", b"held").await;
    consumer.expect_quiet(QUIET).await;

    // RDY with no count is RDY 1.
    consumer.line("RDY").await;
    let held = consumer.expect_message().await;
    assert_eq!(held.body, b"held");
    producer.publish("flow", b"next").await;
    consumer.expect_quiet(QUIET).await;
    consumer.line(&format!("FIN {}", held.id)).await;
    assert_eq!(consumer.expect_message().await.body, b"next");
    stop(nsqd).await;
}

/// max-rdy-count comes from the options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdy_range_follows_max_rdy_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.max_rdy_count = 5;
    let nsqd = common::start_with(options).await;

    let mut ok = subscribe(&nsqd, "r", "c", 5).await;
    ok.expect_open().await;
    let mut bad = subscribe(&nsqd, "r", "c", 6).await;
    bad.expect_error("E_INVALID RDY count 6 out of range 0-5")
        .await;
    bad.expect_closed().await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// FIN, REQ, TOUCH, in-flight timeouts
// ---------------------------------------------------------------------------------------------

/// channel.go: a FIN for a message in flight to another client of the same channel fails with
/// `client does not own message`, not fatal; the owner's FIN still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fin_of_another_clients_message_fails_non_fatally() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut owner = subscribe(&nsqd, "owned", "c", 1).await;
    let mut other = subscribe(&nsqd, "owned", "c", 0).await;
    Client::connect(&nsqd).await.publish("owned", b"mine").await;
    let msg = owner.expect_message().await;

    other.line(&format!("FIN {}", msg.id)).await;
    other
        .expect_error(&format!(
            "E_FIN_FAILED FIN {} failed client does not own message",
            msg.id
        ))
        .await;
    other.expect_open().await;
    other.line(&format!("REQ {} 0", msg.id)).await;
    other
        .expect_error(&format!(
            "E_REQ_FAILED REQ {} failed client does not own message",
            msg.id
        ))
        .await;
    other.line(&format!("TOUCH {}", msg.id)).await;
    other
        .expect_error(&format!(
            "E_TOUCH_FAILED TOUCH {} failed client does not own message",
            msg.id
        ))
        .await;
    other.expect_open().await;

    owner.line(&format!("FIN {}", msg.id)).await;
    owner.expect_open().await;
    stop(nsqd).await;
}

/// REQ 0 → redelivered at once with attempts 2 (same ID, body, timestamp); REQ 800 → deferred
/// (deferred_count 1), redelivered no sooner; a REQ timeout over max-req-timeout is clamped to
/// it, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_requeues_now_or_deferred_and_clamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.max_req_timeout = Duration::from_secs(1);
    let nsqd = common::start_with(options).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "retry", "c", 1).await;
    Client::connect(&nsqd)
        .await
        .publish("retry", b"again")
        .await;
    let first = consumer.expect_message().await;
    assert_eq!(first.attempts, 1);

    let sent = Instant::now();
    consumer.line(&format!("REQ {} 0", first.id)).await;
    let second = consumer.expect_message().await;
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "REQ 0 redelivered only after {:?}",
        sent.elapsed()
    );
    assert_eq!(second.attempts, 2);
    assert_eq!(
        (&second.id, &second.body, second.timestamp),
        (&first.id, &first.body, first.timestamp)
    );

    let sent = Instant::now();
    consumer.line(&format!("REQ {} 800", second.id)).await;
    wait_channel_stat(&h, "retry", "c", "deferred_count", 1).await;
    let third = consumer.expect_message().await;
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800),
        "REQ 800 redelivered after {elapsed:?}"
    );
    assert_eq!((third.id.as_str(), third.attempts), (first.id.as_str(), 3));

    let sent = Instant::now();
    consumer.line(&format!("REQ {} 3600000", third.id)).await;
    // Clamped to max-req-timeout (1 s): no error...
    consumer.expect_open().await;
    // ...and redelivered after about 1 s, not an hour.
    let fourth = consumer.expect_message().await;
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1000),
        "clamped REQ redelivered after {elapsed:?}"
    );
    assert_eq!(
        (fourth.id.as_str(), fourth.attempts),
        (first.id.as_str(), 4)
    );

    consumer.line(&format!("FIN {}", fourth.id)).await;
    consumer.expect_open().await;
    wait_channel_stat(&h, "retry", "c", "requeue_count", 3).await;
    wait_channel_stat(&h, "retry", "c", "in_flight_count", 0).await;
    wait_channel_stat(&h, "retry", "c", "deferred_count", 0).await;
    stop(nsqd).await;
}

/// With msg-timeout 1 s, a message not FINed is redelivered after ~1 s with attempts 2 and
/// timeout_count 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_message_times_out_and_is_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.msg_timeout = Duration::from_secs(1);
    let nsqd = common::start_with(options).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "slow", "c", 1).await;
    Client::connect(&nsqd).await.publish("slow", b"work").await;
    let first = consumer.expect_message().await;
    let delivered = Instant::now();
    let again = consumer.expect_message().await;
    let elapsed = delivered.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "redelivered after {elapsed:?}, before msg-timeout"
    );
    assert_eq!((again.id.as_str(), again.attempts), (first.id.as_str(), 2));
    assert_eq!(again.body, b"work");
    wait_channel_stat(&h, "slow", "c", "timeout_count", 1).await;

    consumer.line(&format!("FIN {}", again.id)).await;
    consumer.expect_open().await;
    wait_channel_stat(&h, "slow", "c", "in_flight_count", 0).await;
    stop(nsqd).await;
}

/// TOUCH at ~600 ms of a 1 s timeout pushes the deadline to ~1.6 s: nothing is redelivered
/// before 1.2 s (the original deadline passed), and the redelivery comes after 1.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_extends_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.msg_timeout = Duration::from_secs(1);
    let nsqd = common::start_with(options).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "touchy", "c", 1).await;
    Client::connect(&nsqd).await.publish("touchy", b"t").await;
    let first = consumer.expect_message().await;
    let delivered = Instant::now();

    sleep_until(delivered + Duration::from_millis(600)).await;
    consumer.line(&format!("TOUCH {}", first.id)).await;
    consumer
        .expect_quiet_until(delivered + Duration::from_millis(1200))
        .await;

    let again = consumer.expect_message().await;
    let elapsed = delivered.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "redelivered after {elapsed:?} despite TOUCH at 600 ms"
    );
    assert_eq!((again.id.as_str(), again.attempts), (first.id.as_str(), 2));
    wait_channel_stat(&h, "touchy", "c", "timeout_count", 1).await;
    stop(nsqd).await;
}

/// channel.go TouchMessage: a TOUCH never pushes the deadline past delivery +
/// max-msg-timeout (here 1.2 s, while TOUCH at 0.7 s + msg-timeout 1 s would give 1.7 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_is_capped_at_max_msg_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.msg_timeout = Duration::from_secs(1);
    options.max_msg_timeout = Duration::from_millis(1200);
    let nsqd = common::start_with(options).await;

    let mut consumer = subscribe(&nsqd, "capped", "c", 1).await;
    Client::connect(&nsqd).await.publish("capped", b"t").await;
    let first = consumer.expect_message().await;
    let delivered = Instant::now();
    sleep_until(delivered + Duration::from_millis(700)).await;
    consumer.line(&format!("TOUCH {}", first.id)).await;
    let again = consumer.expect_message().await;
    let elapsed = delivered.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1100) && elapsed < Duration::from_millis(1550),
        "redelivered after {elapsed:?}; Go caps the TOUCHed deadline at delivery + 1.2 s"
    );
    assert_eq!((again.id.as_str(), again.attempts), (first.id.as_str(), 2));
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Fan-out and sharing
// ---------------------------------------------------------------------------------------------

/// Two channels each get every message; two consumers of one channel share its messages,
/// each delivered once in total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_fan_out_and_consumers_share() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut first = subscribe(&nsqd, "fan", "one", 20).await;
    let mut second = subscribe(&nsqd, "fan", "two", 20).await;
    let mut share_a = subscribe(&nsqd, "fan", "shared", 20).await;
    let mut share_b = subscribe(&nsqd, "fan", "shared", 20).await;

    let mut producer = Client::connect(&nsqd).await;
    let expected: BTreeSet<String> = (0..10).map(|i| format!("m{i}")).collect();
    for body in &expected {
        producer.publish("fan", body.as_bytes()).await;
    }

    // Each channel gets every message, with the topic's ID and timestamp (topic.go copies
    // the message per channel keeping both).
    let mut copies = Vec::new();
    for consumer in [&mut first, &mut second] {
        let mut got = std::collections::BTreeMap::new();
        for _ in 0..10 {
            let msg = consumer.expect_message().await;
            consumer.line(&format!("FIN {}", msg.id)).await;
            let body = String::from_utf8(msg.body).unwrap();
            assert!(got.insert(body, (msg.id, msg.timestamp)).is_none());
        }
        assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), expected);
        consumer.expect_quiet(QUIET).await;
        copies.push(got);
    }
    assert_eq!(
        copies[0], copies[1],
        "channels got different IDs or timestamps"
    );

    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 10 {
        assert!(
            Instant::now() < deadline,
            "shared channel delivered only {got:?}"
        );
        for consumer in [&mut share_a, &mut share_b] {
            if let Next::Frame(frame) = consumer.next_within(Duration::from_millis(20)).await {
                let msg = frame.message();
                assert_eq!(msg.attempts, 1);
                consumer.line(&format!("FIN {}", msg.id)).await;
                got.push(String::from_utf8(msg.body).unwrap());
            }
        }
    }
    share_a.expect_quiet(QUIET).await;
    share_b.expect_quiet(Duration::from_millis(50)).await;
    got.sort();
    assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Pause, delete, ephemeral topics and channels
// ---------------------------------------------------------------------------------------------

/// A paused channel delivers nothing until unpaused; a paused topic copies nothing to its
/// channels until unpaused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_topic_or_channel_holds_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());
    let mut producer = Client::connect(&nsqd).await;

    let mut consumer = subscribe(&nsqd, "pausing", "c", 10).await;
    let reply = common::post(&format!("{h}/channel/pause?topic=pausing&channel=c")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    producer.publish("pausing", b"held by channel").await;
    consumer.expect_quiet(QUIET).await;
    let reply = common::post(&format!("{h}/channel/unpause?topic=pausing&channel=c")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let msg = consumer.expect_message().await;
    assert_eq!(msg.body, b"held by channel");
    consumer.line(&format!("FIN {}", msg.id)).await;

    let reply = common::post(&format!("{h}/topic/pause?topic=pausing")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    producer.publish("pausing", b"held by topic").await;
    consumer.expect_quiet(QUIET).await;
    let reply = common::post(&format!("{h}/topic/unpause?topic=pausing")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(consumer.expect_message().await.body, b"held by topic");
    stop(nsqd).await;
}

/// channel.go exit: deleting a channel (or its topic) closes its consumers' connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_channel_or_topic_disconnects_its_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut on_channel = subscribe(&nsqd, "doomed", "c", 1).await;
    let mut on_other = subscribe(&nsqd, "doomed", "d", 1).await;
    let reply = common::post(&format!("{h}/channel/delete?topic=doomed&channel=c")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    on_channel.expect_closed().await;
    on_other.expect_open().await;

    let reply = common::post(&format!("{h}/topic/delete?topic=doomed")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    on_other.expect_closed().await;
    stop(nsqd).await;
}

/// An ephemeral channel goes when its last consumer leaves; an ephemeral topic goes with its
/// last channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_channel_and_topic_go_with_their_last_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let first = subscribe(&nsqd, "lasting", "c#ephemeral", 0).await;
    let second = subscribe(&nsqd, "lasting", "c#ephemeral", 0).await;
    let only = subscribe(&nsqd, "brief#ephemeral", "c#ephemeral", 0).await;
    let stats = common::stats(&h).await;
    assert!(
        find_channel(&stats, "lasting", "c#ephemeral").is_some(),
        "{stats}"
    );
    assert!(
        find_channel(&stats, "brief#ephemeral", "c#ephemeral").is_some(),
        "{stats}"
    );

    drop(first);
    // One consumer left: the channel stays (checked after the other topic is gone below).
    drop(only);
    let hh = h.as_str();
    common::eventually(
        "ephemeral topic brief#ephemeral removed",
        move || async move {
            find_topic(&common::stats(hh).await, "brief#ephemeral")
                .is_none()
                .then_some(())
        },
    )
    .await;
    let stats = common::stats(&h).await;
    assert!(
        find_channel(&stats, "lasting", "c#ephemeral").is_some(),
        "removed while a consumer remains: {stats}"
    );

    drop(second);
    common::eventually(
        "ephemeral channel lasting/c#ephemeral removed",
        move || async move {
            find_channel(&common::stats(hh).await, "lasting", "c#ephemeral")
                .is_none()
                .then_some(())
        },
    )
    .await;
    let stats = common::stats(&h).await;
    assert!(
        find_topic(&stats, "lasting").is_some(),
        "a normal topic stays: {stats}"
    );
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// A consumer that never reads
// ---------------------------------------------------------------------------------------------

/// A consumer with RDY 2500 that never reads its socket while 20 MB go to its channel does not
/// stall the broker: PUBs, HTTP /ping and other consumers keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_that_never_reads_does_not_stall_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let stuck = subscribe(&nsqd, "flood", "stuck", 2500).await;
    let mut reader = subscribe(&nsqd, "flood", "reader", 100).await;

    let started = Instant::now();
    let mut producer = Client::connect(&nsqd).await;
    let body = vec![b'x'; 1_000_000];
    for _ in 0..20 {
        producer.publish("flood", &body).await;
    }

    let ping = timeout(WAIT, common::get(&format!("{h}/ping")))
        .await
        .expect("/ping answers while a consumer is stuck");
    assert_eq!((ping.status, ping.body.as_str()), (200, "OK"));

    let mut other = Client::connect(&nsqd).await;
    other.publish("flood", b"after the flood").await;
    other.publish("elsewhere", b"unrelated").await;

    let mut big = 0;
    for _ in 0..21 {
        let msg = reader.expect_message().await;
        reader.line(&format!("FIN {}", msg.id)).await;
        if msg.body.len() == body.len() {
            assert!(msg.body == body, "a 1 MB body came back altered");
            big += 1;
        } else {
            assert_eq!(msg.body, b"after the flood");
        }
    }
    assert_eq!(big, 20);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    drop(stuck);
    stop(nsqd).await;
}
