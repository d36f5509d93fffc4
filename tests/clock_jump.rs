//! Regression test for nsqio/nsq#1124 (Go nsqd stops delivering when the wall clock moves
//! backwards; issue 11, item 4): the built binary runs under libfaketime, which fakes only
//! `CLOCK_REALTIME` (`FAKETIME_DONT_FAKE_MONOTONIC=1`) and rereads its offset from a file on
//! every call (`FAKETIME_TIMESTAMP_FILE` + `FAKETIME_NO_CACHE=1`), so the test steps the
//! broker's wall clock while it runs: back three hours, forward two days, then back again and
//! a restart under that clock.
//!
//! Across each jump a message is in flight (it must time out after `--msg-timeout`), one is
//! requeued with a delay (REQ), one is deferred (DPUB), one is plainly published, and the
//! consumer's heartbeats must go on; every timer must fire on the monotonic clock, neither
//! days late nor early. Message IDs must increase in publish order across every jump and
//! across the restart. Across the restart, a deferral saved on disk (REQ'd before the stop)
//! and a DPUB never yet read are due on a wall clock that has since stepped back two days:
//! they must still come within `--max-req-timeout`.
//!
//! libfaketime missing, or not taking effect on the binary, fails the test (never a skip):
//! `.ci/run` installs Debian's `faketime`. The only waits are deadlines; the lower bounds on
//! arrival times are the assertion (a timer firing early), not synchronisation.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rnsq::data_lock;
use tokio::time::Instant;

use common::v2::{dpub_cmd, identify_cmd, pub_cmd, Client, Next, MESSAGE};
use common::{eventually_blocking, stats, BrokerProcess};

const MSG_TIMEOUT: Duration = Duration::from_millis(2000);
const REQ_DELAY: Duration = Duration::from_millis(1500);
const DPUB_DELAY: Duration = Duration::from_millis(2500);
const MAX_REQ_TIMEOUT: Duration = Duration::from_secs(5);
/// How much earlier than its time a timer may seem to fire (the broker's instant of
/// delivery precedes the test's receipt of it).
const EARLY_SLACK: Duration = Duration::from_millis(300);
/// How long a phase may take at most: every timer is due within a few seconds.
const PHASE_DEADLINE: Duration = Duration::from_secs(15);
const HOUR: i64 = 3600;

/// libfaketime, where Debian's `libfaketime` package puts it (or `RNSQ_LIBFAKETIME`).
fn libfaketime() -> PathBuf {
    if let Some(path) = std::env::var_os("RNSQ_LIBFAKETIME") {
        return PathBuf::from(path);
    }
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "libfaketime is not installed (looked in {candidates:?}): install Debian's \
                 `faketime` package (`.ci/run` does) or set RNSQ_LIBFAKETIME; this test cannot \
                 prove anything without it"
            )
        })
}

/// Sets the broker's wall clock to real time plus `offset` (libfaketime's `+2d`, `-3h`),
/// atomically: libfaketime rereads the file on every clock call and must never see it empty.
fn set_clock(file: &Path, offset: &str) {
    let temp = file.with_extension("tmp");
    fs::write(&temp, format!("{offset}\n")).unwrap();
    fs::rename(&temp, file).unwrap();
}

fn real_now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Fails loudly unless `seen_secs` (a wall-clock time the broker reported) is real time plus
/// `offset_secs`, give or take a minute: libfaketime must really be steering the binary.
fn assert_faked(what: &str, seen_secs: i64, offset_secs: i64) {
    let expected = real_now_secs() + offset_secs;
    assert!(
        (seen_secs - expected).abs() < 60,
        "libfaketime did not take effect on the broker: {what} is {seen_secs}, expected about \
         {expected} (real time {offset_secs:+} s)"
    );
}

struct Broker {
    process: BrokerProcess,
    tcp: std::net::SocketAddr,
}

fn start_broker(data: &Path, clock_file: &Path) -> Broker {
    let lib = libfaketime();
    let env: [(&str, &OsStr); 4] = [
        ("LD_PRELOAD", lib.as_os_str()),
        ("FAKETIME_TIMESTAMP_FILE", clock_file.as_os_str()),
        ("FAKETIME_NO_CACHE", OsStr::new("1")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", OsStr::new("1")),
    ];
    let msg_timeout = format!("{}ms", MSG_TIMEOUT.as_millis());
    let max_req = format!("{}s", MAX_REQ_TIMEOUT.as_secs());
    let process = BrokerProcess::spawn_with_env(
        data,
        &["--msg-timeout", &msg_timeout, "--max-req-timeout", &max_req],
        &env,
    );
    let pid = process.child.id();
    let tcp = eventually_blocking("the broker to record its TCP address", || {
        data_lock::read_holder(data)
            .filter(|h| h.pid == pid)
            .and_then(|h| h.tcp_address)
    });
    Broker { process, tcp }
}

/// A consumer of `clock/c` with 1 s heartbeats, answering each with NOP.
struct Consumer {
    client: Client,
    heartbeats: usize,
}

impl Consumer {
    async fn connect(broker: &Broker) -> Consumer {
        let mut client = Client::connect(broker.tcp).await;
        client
            .send(&identify_cmd(r#"{"heartbeat_interval":1000}"#))
            .await;
        client.expect_ok().await;
        client.line("SUB clock c").await;
        client.expect_ok().await;
        client.line("RDY 100").await;
        Consumer {
            client,
            heartbeats: 0,
        }
    }

    /// The next message by `deadline` (heartbeats answered and counted on the way); panics
    /// if the connection closes or anything else arrives.
    async fn message_until(&mut self, deadline: Instant) -> Option<common::v2::Msg> {
        loop {
            match self.client.next_until(deadline).await {
                Next::Quiet => return None,
                Next::Closed(why) => panic!("the consumer's connection closed: {why}"),
                Next::Frame(frame) if frame.is_heartbeat() => {
                    self.heartbeats += 1;
                    self.client.line("NOP").await;
                }
                Next::Frame(frame) if frame.kind == MESSAGE => return Some(frame.message()),
                Next::Frame(frame) => panic!("unexpected frame {frame:?}"),
            }
        }
    }

    async fn message(&mut self) -> common::v2::Msg {
        let deadline = Instant::now() + PHASE_DEADLINE;
        self.message_until(deadline)
            .await
            .expect("a message within the phase deadline")
    }
}

/// What the test saw: message IDs in publish order.
#[derive(Default)]
struct Seen {
    ids: Vec<(String, String)>,
}

impl Seen {
    fn record(&mut self, body: &str, id: &str) {
        self.ids.push((body.into(), id.into()));
    }

    fn assert_increasing(&self) {
        for pair in self.ids.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "message IDs went backwards: {:?} (published first) >= {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

/// An expected delivery: the earliest it may come, and with which attempt count.
struct Expect {
    earliest: Instant,
    attempts: u16,
}

/// Waits until every body in `expected` arrived with its attempt count, none early, FINing
/// each; returns their IDs by body. `when` names the phase in failures.
async fn collect(
    consumer: &mut Consumer,
    mut expected: HashMap<String, Expect>,
    when: &str,
) -> HashMap<String, String> {
    let deadline = Instant::now() + PHASE_DEADLINE;
    let mut ids = HashMap::new();
    while !expected.is_empty() {
        let Some(msg) = consumer.message_until(deadline).await else {
            let missing: Vec<_> = expected.keys().collect();
            panic!(
                "{when}: still waiting for {missing:?} after {PHASE_DEADLINE:?}: a timer stalled"
            );
        };
        let body = msg.text();
        let arrived = Instant::now();
        let want = expected
            .remove(&body)
            .unwrap_or_else(|| panic!("{when}: unexpected delivery {body:?}"));
        assert_eq!(msg.attempts, want.attempts, "{when}: attempts of {body:?}");
        assert!(
            arrived + EARLY_SLACK >= want.earliest,
            "{when}: {body:?} came {:?} early: its timer ran on the wall clock",
            want.earliest - arrived
        );
        consumer.client.fin(&msg.id).await;
        ids.insert(body, msg.id);
    }
    ids
}

/// One jump with every kind of timer running across it: a message in flight, one requeued
/// with a delay, one deferred by DPUB; then the clock jumps to `offset` and a plain message
/// is published. All must arrive on time, and heartbeats must go on.
async fn jump_with_timers_running(
    consumer: &mut Consumer,
    producer: &mut Client,
    seen: &mut Seen,
    clock_file: &Path,
    offset: &str,
    offset_secs: i64,
) {
    let tag = offset;
    let inflight = format!("inflight {tag}");
    let req = format!("req {tag}");
    let dpub = format!("dpub {tag}");
    let plain = format!("pub {tag}");

    producer.publish("clock", inflight.as_bytes()).await;
    let msg = consumer.message().await;
    assert_eq!(msg.text(), inflight);
    seen.record(&inflight, &msg.id);
    let inflight_due = Instant::now() + MSG_TIMEOUT;

    producer.publish("clock", req.as_bytes()).await;
    let msg = consumer.message().await;
    assert_eq!(msg.text(), req);
    seen.record(&req, &msg.id);
    consumer
        .client
        .line(&format!("REQ {} {}", msg.id, REQ_DELAY.as_millis()))
        .await;
    let req_due = Instant::now() + REQ_DELAY;

    producer
        .send(&dpub_cmd(
            "clock",
            DPUB_DELAY.as_millis() as u64,
            dpub.as_bytes(),
        ))
        .await;
    producer.expect_ok().await;
    let dpub_due = Instant::now() + DPUB_DELAY;

    set_clock(clock_file, offset);
    let jumped = Instant::now();
    let heartbeats_before = consumer.heartbeats;

    producer.publish("clock", plain.as_bytes()).await;
    let msg = consumer.message().await;
    assert_eq!(msg.text(), plain, "a plain message is delivered at once");
    assert_faked(
        &format!("the timestamp of a message published at {offset}"),
        msg.timestamp / 1_000_000_000,
        offset_secs,
    );
    consumer.client.fin(&msg.id).await;
    let plain_id = msg.id.clone();

    let expected = HashMap::from([
        (
            inflight,
            Expect {
                earliest: inflight_due,
                attempts: 2,
            },
        ),
        (
            req,
            Expect {
                earliest: req_due,
                attempts: 2,
            },
        ),
        (
            dpub.clone(),
            Expect {
                earliest: dpub_due,
                attempts: 1,
            },
        ),
    ]);
    let when = format!("across the jump to {offset}");
    let ids = collect(consumer, expected, &when).await;
    // The DPUB's ID is known only on delivery: recorded in publish order (before `plain`).
    seen.record(&dpub, &ids[&dpub]);
    seen.record(&plain, &plain_id);
    seen.assert_increasing();

    // Heartbeats go on after the jump: wait (answering them) until two more came.
    let deadline = Instant::now() + PHASE_DEADLINE;
    while consumer.heartbeats < heartbeats_before + 2 {
        if let Some(msg) = consumer.message_until(deadline).await {
            panic!("unexpected delivery {:?} at {offset}", msg.text());
        }
        assert!(
            Instant::now() < deadline,
            "at {offset}: {} heartbeats in {:?} since the jump",
            consumer.heartbeats - heartbeats_before,
            jumped.elapsed()
        );
    }
}

async fn start_time(broker: &Broker) -> i64 {
    let stats = stats(&broker.process.base()).await;
    stats["start_time"].as_i64().expect("start_time in /stats")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_timers_heartbeats_and_ids_survive_wall_clock_jumps_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let clock_file = dir.path().join("faketime");
    set_clock(&clock_file, "+0");

    let broker = start_broker(&data, &clock_file);
    assert_faked("/stats start_time at +0", start_time(&broker).await, 0);
    let mut producer = Client::connect(broker.tcp).await;
    let mut consumer = Consumer::connect(&broker).await;
    let mut seen = Seen::default();

    // Back three hours, then forward two days (from real time), every timer running across.
    jump_with_timers_running(
        &mut consumer,
        &mut producer,
        &mut seen,
        &clock_file,
        "-3h",
        -3 * HOUR,
    )
    .await;
    jump_with_timers_running(
        &mut consumer,
        &mut producer,
        &mut seen,
        &clock_file,
        "+2d",
        48 * HOUR,
    )
    .await;

    // Left for the restart: one message REQ'd with a delay (its due time saved on the +2d
    // wall clock) and one DPUB the channel has not read yet (stamped on the +2d clock).
    producer.publish("clock", b"saved req").await;
    let msg = consumer.message().await;
    assert_eq!(msg.text(), "saved req");
    seen.record("saved req", &msg.id);
    consumer
        .client
        .line(&format!("REQ {} {}", msg.id, REQ_DELAY.as_millis()))
        .await;
    // A PUB on the consumer's own connection answers after the REQ was handled.
    consumer.client.send(&pub_cmd("other", b"sync")).await;
    loop {
        match consumer.client.frame().await {
            f if f.is_heartbeat() => consumer.client.line("NOP").await,
            f if f.is_ok() => break,
            f => panic!("expected OK, got {f:?}"),
        }
    }
    drop(consumer);
    producer
        .send(&dpub_cmd(
            "clock",
            DPUB_DELAY.as_millis() as u64,
            b"saved dpub",
        ))
        .await;
    producer.expect_ok().await;
    drop(producer);

    // Back two days and three hours, and restart under that clock.
    set_clock(&clock_file, "-3h");
    assert!(broker.process.terminate(), "the broker stops cleanly");
    let broker = start_broker(&data, &clock_file);
    assert_faked(
        "/stats start_time after the restart at -3h",
        start_time(&broker).await,
        -3 * HOUR,
    );
    let restarted = Instant::now();
    let mut producer = Client::connect(broker.tcp).await;
    let mut consumer = Consumer::connect(&broker).await;

    // Their wall-clock due times lie two days ahead: they must come within max-req-timeout.
    let mut saved_dpub_id = None;
    let deadline = restarted + MAX_REQ_TIMEOUT + Duration::from_secs(5);
    let mut waiting = vec!["saved req", "saved dpub"];
    while !waiting.is_empty() {
        let Some(msg) = consumer.message_until(deadline).await else {
            panic!(
                "after a restart under a clock set back two days, {waiting:?} did not come \
                 within {:?}: a saved due time was taken on the wall clock",
                deadline - restarted
            );
        };
        let body = msg.text();
        waiting.retain(|w| *w != body);
        match body.as_str() {
            "saved req" => assert_eq!(msg.attempts, 2),
            "saved dpub" => {
                assert_eq!(msg.attempts, 1);
                saved_dpub_id = Some(msg.id.clone());
            }
            other => panic!("unexpected delivery {other:?}"),
        }
        consumer.client.fin(&msg.id).await;
    }
    seen.record("saved dpub", &saved_dpub_id.expect("saved dpub delivered"));

    // New IDs under the clock set back are above every ID given before the restart.
    producer.publish("clock", b"after restart").await;
    let msg = consumer.message().await;
    assert_eq!(msg.text(), "after restart");
    seen.record("after restart", &msg.id);
    consumer.client.fin(&msg.id).await;
    seen.assert_increasing();

    // And every timer still works under it, across one more jump (forward an hour).
    jump_with_timers_running(
        &mut consumer,
        &mut producer,
        &mut seen,
        &clock_file,
        "-2h",
        -2 * HOUR,
    )
    .await;
    seen.assert_increasing();
    assert!(broker.process.terminate(), "the broker stops cleanly");
}
