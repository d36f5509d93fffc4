//! A consumer that never reads its socket cannot make the broker's memory grow without bound
//! (issue 11, item 2), against the built binary.
//!
//! One consumer SUBs with RDY 2500 (the maximum) and 10-minute heartbeats — so no deadline
//! drops it while the test runs — and then never reads, while a producer publishes `RNSQ_SLOW_MESSAGES` (200,000 by
//! default) messages of 10 KiB, 2 GB in all. The broker's resident memory (`VmRSS`) stays
//! under a bound made of what is held on purpose:
//!
//! - the topic's in-memory tail: `--mem-queue-size` messages (2,000 here);
//! - the slow consumer's in flight: at most RDY (2,500); in practice only what fits in the
//!   kernel's socket buffers before the broker's write blocks;
//! - each channel's read-ahead (128 messages) and the output buffer (16 KiB);
//! - the baseline measured before publishing, plus 32 MiB for the allocator's slack.
//!
//! Meanwhile a consumer on another channel receives every message. When the slow consumer's
//! connection closes, its in-flight messages are requeued and delivered (attempt 2) to a
//! healthy consumer of its channel. Finally, a consumer that keeps sending NOP but never reads
//! is dropped by the broker's write deadline (its heartbeat interval) with its messages
//! requeued — before, a write timing out ended only the message pump and left the connection
//! open, holding its in-flight messages until they timed out one by one.
//!
//! The figures are printed (`--nocapture` shows them).

mod common;

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rnsq::data_lock;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use common::v2::{identify_cmd, mpub_cmd, Client, Next, MESSAGE};
use common::{
    env_cycles, eventually, eventually_blocking, find_channel, post, stats, BrokerProcess,
};

const BODY: usize = 10 * 1024;
const RDY: u32 = 2500;
const MEM_QUEUE_SIZE: u64 = 2000;
const BATCH: usize = 100;
/// A channel's read-ahead from the log (`PREFETCH` in src/queue/channel_cursor.rs).
const PREFETCH: u64 = 128;
const OUTPUT_BUFFER: u64 = 16 * 1024;
/// What a message costs besides its body (struct, record framing, allocator rounding).
const PER_MESSAGE_OVERHEAD: u64 = 512;
const SLACK: u64 = 32 << 20;
const DEADLINE: Duration = Duration::from_secs(300);

/// Polls `check` every 20 ms until it holds, failing after [`DEADLINE`] (moving 2 GB through
/// a shared machine can take longer than the common 20 s).
async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rss_bytes(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kb * 1024
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn channel_stat(stats: &Value, channel: &str, key: &str) -> u64 {
    find_channel(stats, "slow_t", channel)
        .and_then(|c| c[key].as_u64())
        .unwrap_or_else(|| panic!("{key} of channel {channel} in /stats"))
}

/// A consumer of `slow_t/<channel>` that identified with `identify` and sent RDY.
async fn consumer(tcp: std::net::SocketAddr, channel: &str, identify: &str) -> Client {
    let mut client = Client::connect(tcp).await;
    client.send(&identify_cmd(identify)).await;
    // With feature negotiation off, IDENTIFY answers OK.
    client.expect_ok().await;
    client.line(&format!("SUB slow_t {channel}")).await;
    client.expect_ok().await;
    client.line(&format!("RDY {RDY}")).await;
    client
}

/// Receives and FINs messages until `stop` is set; counts them, and those delivered again.
async fn drain(
    mut client: Client,
    received: Arc<AtomicU64>,
    again: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        match client.next_within(Duration::from_millis(200)).await {
            Next::Quiet => {}
            Next::Closed(why) => panic!("a healthy consumer's connection closed: {why}"),
            Next::Frame(f) if f.kind == MESSAGE => {
                let msg = f.message();
                if msg.attempts > 1 {
                    again.fetch_add(1, Ordering::Relaxed);
                }
                client.fin(&msg.id).await;
                received.fetch_add(1, Ordering::Relaxed);
            }
            Next::Frame(f) if f.is_heartbeat() => client.line("NOP").await,
            Next::Frame(f) => panic!("unexpected frame {f:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_reads_holds_memory_bounded_and_its_messages_go_elsewhere() {
    let total = env_cycles("RNSQ_SLOW_MESSAGES", 200_000) as u64;
    let dir = tempfile::tempdir().unwrap();
    let mem = MEM_QUEUE_SIZE.to_string();
    let broker = BrokerProcess::spawn(
        dir.path(),
        &["--mem-queue-size", &mem, "--max-heartbeat-interval", "10m"],
    );
    let pid = broker.child.id();
    let tcp = eventually_blocking("the broker's TCP address", || {
        data_lock::read_holder(dir.path())
            .filter(|h| h.pid == pid)
            .and_then(|h| h.tcp_address)
    });
    let base = broker.base();
    let reply = post(&format!("{base}/topic/create?topic=slow_t")).await;
    assert_eq!(reply.status, 200, "create the topic: {reply:?}");
    for channel in ["slow", "fast", "stuck"] {
        let reply = post(&format!(
            "{base}/channel/create?topic=slow_t&channel={channel}"
        ))
        .await;
        assert_eq!(reply.status, 200, "create channel {channel}: {reply:?}");
    }

    // Heartbeats every 10 minutes (SUB refuses them off): no read or write deadline drops it
    // while the test runs.
    let slow = consumer(tcp, "slow", r#"{"heartbeat_interval":600000}"#).await;
    let stop = Arc::new(AtomicBool::new(false));
    let fast_received = Arc::new(AtomicU64::new(0));
    let fast = tokio::spawn(drain(
        consumer(tcp, "fast", "{}").await,
        fast_received.clone(),
        Arc::new(AtomicU64::new(0)),
        stop.clone(),
    ));

    let baseline = rss_bytes(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Acquire) {
                peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let started = Instant::now();
    let mut producer = Client::connect(tcp).await;
    let body = vec![b'x'; BODY];
    let bodies: Vec<&[u8]> = (0..BATCH).map(|_| body.as_slice()).collect();
    let command = mpub_cmd("slow_t", &bodies);
    for _ in 0..total / BATCH as u64 {
        producer.send(&command).await;
        producer.expect_ok().await;
    }
    let published = started.elapsed();

    wait_for("the healthy consumer to receive every message", || {
        fast_received.load(Ordering::Relaxed) >= total
    })
    .await;
    let fast_done = started.elapsed();
    let stats_now = stats(&base).await;
    let slow_in_flight = channel_stat(&stats_now, "slow", "in_flight_count");
    sampling.store(false, Ordering::Release);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);

    let held = MEM_QUEUE_SIZE + u64::from(RDY) + 3 * PREFETCH;
    let bound = baseline + held * (BODY as u64 + PER_MESSAGE_OVERHEAD) + OUTPUT_BUFFER + SLACK;
    println!(
        "slow consumer: {total} messages of {BODY} B published in {published:?}, all received by \
         the healthy consumer in {fast_done:?}; RSS baseline {}, peak {}, bound {}; the slow \
         consumer held {slow_in_flight} in flight (RDY {RDY})",
        mib(baseline),
        mib(peak),
        mib(bound),
    );
    assert!(
        slow_in_flight > 0 && slow_in_flight <= u64::from(RDY),
        "in flight to the slow consumer: {slow_in_flight}, RDY {RDY}"
    );
    assert!(
        peak <= bound,
        "RSS peaked at {} with a consumer that never reads (bound {})",
        mib(peak),
        mib(bound)
    );

    // Its connection closes: what it held goes to a healthy consumer of its channel.
    drop(slow);
    let again = Arc::new(AtomicU64::new(0));
    let heir_received = Arc::new(AtomicU64::new(0));
    let heir_stop = Arc::new(AtomicBool::new(false));
    let heir = tokio::spawn(drain(
        consumer(tcp, "slow", "{}").await,
        heir_received.clone(),
        again.clone(),
        heir_stop.clone(),
    ));
    wait_for(
        "the slow consumer's in-flight messages to be delivered again",
        || again.load(Ordering::Relaxed) >= slow_in_flight,
    )
    .await;
    // Read before the heir goes (it would requeue what it holds in flight).
    let stats_now = stats(&base).await;
    heir_stop.store(true, Ordering::Release);
    heir.await.unwrap();
    assert_eq!(
        channel_stat(&stats_now, "slow", "requeue_count"),
        slow_in_flight,
        "every message in flight to the closed consumer was requeued, and nothing else"
    );
    println!(
        "after the slow consumer closed: {} messages delivered again to its channel's heir",
        again.load(Ordering::Relaxed)
    );

    // Regression: a consumer that sends NOPs but never reads. Its writes stall; the write
    // deadline (its 1 s heartbeat interval) must close the connection, not only the pump.
    let stuck = consumer(tcp, "stuck", r#"{"heartbeat_interval":1000}"#).await;
    // The read half stays unread; NOPs on the write half keep the read deadline from firing.
    let (_reader, mut writer) = stuck.into_stream().into_split();
    let nops = tokio::spawn(async move {
        while writer.write_all(b"NOP\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let dropped_at = Instant::now();
    eventually("the broker to drop the consumer that never reads", || {
        let base = base.clone();
        async move {
            let stats = stats(&base).await;
            let channel = find_channel(&stats, "slow_t", "stuck")?;
            let gone = channel["clients"].as_array().is_some_and(|c| c.is_empty())
                && channel["requeue_count"].as_u64().unwrap_or(0) > 0;
            gone.then_some(())
        }
    })
    .await;
    println!(
        "the consumer that sends NOP but never reads was dropped {:?} after it subscribed",
        dropped_at.elapsed()
    );
    assert!(
        dropped_at.elapsed() < Duration::from_secs(30),
        "dropped only after {:?}",
        dropped_at.elapsed()
    );
    nops.abort();

    stop.store(true, Ordering::Release);
    fast.await.unwrap();
}
