//! Message traffic against the built broker with a crash in the middle, for the kill -9 and
//! power-loss tests: on one data path with topic `t` and channels `a` and `b`, several
//! producers publish (TCP PUB, MPUB and DPUB, HTTP /pub and /mpub) and consumers on both
//! channels take, finish and now and then requeue messages; at a random moment the broker is
//! crashed (the caller says how), restarted on the same data path, and the next cycle begins.
//! After the last cycle the broker is restarted once more and both channels are drained.
//!
//! The caller judges the outcome: with `--durable` every body answered `OK` must be delivered
//! (and finished) at least once on each channel; redeliveries of messages finished after the
//! last saved cursor are allowed (at-least-once) and counted. In both modes every body
//! delivered must be one a producer sent (checked here): nothing is invented or mangled.
//!
//! Sleeps pick the moment of each crash and pace polls; every wait is bounded by a deadline.
//! On failure the data directory is kept (when it is a temp dir) and its path printed.
//!
//! Included with `#[path]` by the test files that use it, so the others don't compile it.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use crate::common::{v2, BrokerProcess};

const TOPIC: &str = "t";
pub const CHANNELS: [&str; 2] = ["a", "b"];
/// TCP consumers per channel and cycle.
const CONSUMERS_PER_CHANNEL: usize = 2;
/// The producers of every cycle, one thread each.
const PRODUCERS: [Kind; 6] = [
    Kind::TcpPub,
    Kind::TcpPub,
    Kind::TcpMpub,
    Kind::TcpDpub,
    Kind::HttpPub,
    Kind::HttpMpub,
];
/// How long after the producers start the broker is killed, in milliseconds.
const KILL_AFTER_MS: RangeInclusive<u64> = 100..=600;
/// How long an answer the broker owes (to a publish, SUB, a connect) may take: longer is a hang.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle consumer looks at its stop flag.
const CONSUMER_POLL: Duration = Duration::from_millis(50);
/// Consumers' RDY.
const RDY: u32 = 32;
/// Percent of deliveries a consumer requeues instead of finishing.
const REQ_PERCENT: u32 = 3;
/// The longest DPUB defer and REQ timeout used, in milliseconds.
const MAX_DEFER_MS: u64 = 300;
/// The final drain ends at the latest after this long.
const DRAIN_DEADLINE: Duration = Duration::from_secs(40);
/// The final drain also ends when /stats has shown both channels empty for this long (what
/// is still missing then is lost, not late).
const DRAINED_QUIET: Duration = Duration::from_secs(2);

/// The brokers' `--sync-timeout`: without `--durable`, what a power cut may lose is at most
/// what was answered in about this long before it (and at most `--sync-every` messages).
pub const SYNC_TIMEOUT: Duration = Duration::from_millis(100);
const SYNC_TIMEOUT_FLAG: &str = "100ms";
/// The brokers' `--sync-every` (nsqd's default).
pub const SYNC_EVERY: usize = 2500;

/// Broker flags besides `--durable`: cursors saved often, small segments that roll and get
/// deleted, and a small memory window so channels also read the log from disk.
const BROKER_FLAGS: [&str; 6] = [
    "--sync-timeout",
    SYNC_TIMEOUT_FLAG,
    "--max-bytes-per-file",
    "65536",
    "--mem-queue-size",
    "100",
];

// ---------------------------------------------------------------------------------------------
// A raw protocol V2 connection over std::net
// ---------------------------------------------------------------------------------------------

const FRAME_RESPONSE: u32 = 0;
const FRAME_ERROR: u32 = 1;
const FRAME_MESSAGE: u32 = 2;

/// What the next read brought.
enum Next {
    /// `(frame type, data)`.
    Frame(u32, Vec<u8>),
    /// Nothing within the read timeout.
    Quiet,
    /// EOF or a reset (a partial frame at that point is the kill's doing).
    Closed,
    /// Bytes that are no frame.
    Bad(String),
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    chunk: Vec<u8>,
}

impl Conn {
    /// Connects and sends the magic `"  V2"`; reads give up after `read_timeout`.
    fn open(addr: SocketAddr, read_timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            chunk: vec![0; 64 * 1024],
        };
        conn.send(b"  V2")?;
        Ok(conn)
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    fn next(&mut self) -> Next {
        loop {
            if self.buf.len() >= 4 {
                let size = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if size < 4 {
                    return Next::Bad(format!("frame size {size} < 4"));
                }
                if self.buf.len() >= 4 + size {
                    let frame: Vec<u8> = self.buf.drain(..4 + size).collect();
                    let kind = u32::from_be_bytes(frame[4..8].try_into().unwrap());
                    return Next::Frame(kind, frame[8..].to_vec());
                }
            }
            match self.stream.read(&mut self.chunk) {
                Ok(0) => return Next::Closed,
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Next::Quiet
                }
                Err(_) => return Next::Closed,
            }
        }
    }

    /// Waits for the response to a command: `Ok(true)` for `OK`, `Ok(false)` when the
    /// connection closed first (the broker died), `Err` for anything else (an error frame,
    /// garbage, no answer in time). Heartbeats are answered on the way.
    fn expect_ok(&mut self) -> Result<bool, String> {
        loop {
            match self.next() {
                Next::Frame(FRAME_RESPONSE, data) if data == b"OK" => return Ok(true),
                Next::Frame(FRAME_RESPONSE, data) if data == b"_heartbeat_" => {
                    if self.send(b"NOP\n").is_err() {
                        return Ok(false);
                    }
                }
                Next::Frame(kind, data) => {
                    return Err(format!(
                        "expected OK, got frame type {kind}: {:?}",
                        String::from_utf8_lossy(&data)
                    ))
                }
                Next::Quiet => return Err("no answer within the timeout".into()),
                Next::Closed => return Ok(false),
                Next::Bad(why) => return Err(why),
            }
        }
    }
}

/// `MPUB topic\n[4-byte size][4-byte count]([4-byte size][bytes])*`.
fn mpub_cmd(bodies: &[String]) -> Vec<u8> {
    let bodies: Vec<&[u8]> = bodies.iter().map(String::as_bytes).collect();
    v2::mpub_cmd(TOPIC, &bodies)
}

// ---------------------------------------------------------------------------------------------
// Producers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Kind {
    TcpPub,
    TcpMpub,
    TcpDpub,
    HttpPub,
    HttpMpub,
}

/// What one producer did in one cycle.
#[derive(Debug, Default)]
struct ProducerLog {
    /// Bodies answered OK, with when the answer came.
    acked: Vec<(String, Instant)>,
    /// Bodies sent whose answer never came (the broker died): they may or may not be kept.
    unanswered: Vec<String>,
    /// Something that must not happen (an error answer, no answer from a live broker).
    failure: Option<String>,
}

/// `batch`'s bodies, answered now.
fn answered(batch: Vec<String>) -> impl Iterator<Item = (String, Instant)> {
    let now = Instant::now();
    batch.into_iter().map(move |body| (body, now))
}

/// A unique body: `c{cycle}-p{producer}-{n}-` and a padding of 40 to 240 bytes that depends
/// on `n` (larger records make the segments roll more often).
fn body(cycle: usize, producer: usize, n: usize) -> String {
    let pad = char::from(b'a' + (n % 26) as u8);
    let len = 40 + (n * 37) % 200;
    format!("c{cycle}-p{producer}-{n}-{}", pad.to_string().repeat(len))
}

/// Publishes until the broker dies (or something goes wrong), one request at a time.
fn run_producer(
    kind: Kind,
    cycle: usize,
    producer: usize,
    tcp: SocketAddr,
    base: String,
) -> ProducerLog {
    let mut log = ProducerLog::default();
    let mut rng = rand::thread_rng();
    let mut n = 0;
    let mut next_batch = |rng: &mut rand::rngs::ThreadRng, multi: bool| {
        let count = if multi { rng.gen_range(2..=20) } else { 1 };
        (0..count)
            .map(|_| {
                n += 1;
                body(cycle, producer, n)
            })
            .collect::<Vec<String>>()
    };
    match kind {
        Kind::TcpPub | Kind::TcpMpub | Kind::TcpDpub => {
            let Ok(mut conn) = Conn::open(tcp, IO_TIMEOUT) else {
                return log; // the broker was killed before this thread got going
            };
            loop {
                let batch = next_batch(&mut rng, matches!(kind, Kind::TcpMpub));
                let command = match kind {
                    Kind::TcpPub => v2::pub_cmd(TOPIC, batch[0].as_bytes()),
                    Kind::TcpMpub => mpub_cmd(&batch),
                    _ => v2::dpub_cmd(TOPIC, rng.gen_range(0..=MAX_DEFER_MS), batch[0].as_bytes()),
                };
                let answer = match conn.send(&command) {
                    Ok(()) => conn.expect_ok(),
                    Err(_) => Ok(false),
                };
                match answer {
                    Ok(true) => log.acked.extend(answered(batch)),
                    Ok(false) => {
                        log.unanswered.extend(batch);
                        return log;
                    }
                    Err(why) => {
                        log.failure = Some(format!("{kind:?} of {batch:?}: {why}"));
                        log.unanswered.extend(batch);
                        return log;
                    }
                }
            }
        }
        Kind::HttpPub | Kind::HttpMpub => {
            let http = reqwest::blocking::Client::builder()
                .timeout(IO_TIMEOUT)
                .build()
                .expect("HTTP client");
            loop {
                let multi = matches!(kind, Kind::HttpMpub);
                let batch = next_batch(&mut rng, multi);
                let url = if multi {
                    format!("{base}/mpub?topic={TOPIC}")
                } else {
                    format!("{base}/pub?topic={TOPIC}")
                };
                let answer = http.post(url).body(batch.join("\n")).send().map(|r| {
                    let status = r.status().as_u16();
                    (status, r.text())
                });
                match answer {
                    // The status line is the answer; a body cut off by the kill does not undo it.
                    Ok((200, text)) if text.as_deref().map_or(true, |t| t == "OK") => {
                        log.acked.extend(answered(batch))
                    }
                    Ok((status, text)) => {
                        log.failure =
                            Some(format!("{kind:?} of {batch:?}: answered {status} {text:?}"));
                        log.unanswered.extend(batch);
                        return log;
                    }
                    Err(e) if e.is_timeout() => {
                        log.failure = Some(format!("{kind:?} of {batch:?}: no answer: {e}"));
                        log.unanswered.extend(batch);
                        return log;
                    }
                    Err(_) => {
                        log.unanswered.extend(batch);
                        return log;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consumers
// ---------------------------------------------------------------------------------------------

/// What one consumer received, in order.
#[derive(Debug, Default)]
struct ConsumerLog {
    /// Each delivery: the body and whether it was finished (FIN sent) rather than requeued or
    /// cut off by the crash.
    deliveries: Vec<(String, bool)>,
    failure: Option<String>,
}

/// Subscribes to `channel` and finishes (now and then requeues) what it gets, until the
/// connection closes or `stop` is set. Finished bodies are removed from `remaining`.
fn run_consumer(
    tcp: SocketAddr,
    channel: &str,
    stop: Arc<AtomicBool>,
    remaining: Arc<Mutex<HashSet<String>>>,
) -> ConsumerLog {
    let mut log = ConsumerLog::default();
    let mut rng = rand::thread_rng();
    let Ok(mut conn) = Conn::open(tcp, IO_TIMEOUT) else {
        return log;
    };
    if conn
        .send(format!("SUB {TOPIC} {channel}\n").as_bytes())
        .is_err()
    {
        return log;
    }
    match conn.expect_ok() {
        Ok(true) => {}
        Ok(false) => return log,
        Err(why) => {
            log.failure = Some(format!("SUB {TOPIC} {channel}: {why}"));
            return log;
        }
    }
    if conn.send(format!("RDY {RDY}\n").as_bytes()).is_err() {
        return log;
    }
    let _ = conn.stream.set_read_timeout(Some(CONSUMER_POLL));
    while !stop.load(Ordering::Relaxed) {
        match conn.next() {
            Next::Frame(FRAME_MESSAGE, data) => {
                if data.len() < 26 {
                    log.failure = Some(format!("message frame of {} bytes", data.len()));
                    return log;
                }
                let id = String::from_utf8_lossy(&data[10..26]).into_owned();
                let body = String::from_utf8_lossy(&data[26..]).into_owned();
                let finish = rng.gen_range(0..100) >= REQ_PERCENT;
                let command = if finish {
                    format!("FIN {id}\n")
                } else {
                    format!("REQ {id} {}\n", rng.gen_range(0..=MAX_DEFER_MS))
                };
                let sent = conn.send(command.as_bytes()).is_ok();
                if sent && finish {
                    remaining.lock().unwrap().remove(&body);
                }
                log.deliveries.push((body, sent && finish));
                if !sent {
                    return log;
                }
            }
            Next::Frame(FRAME_RESPONSE, data) if data == b"_heartbeat_" => {
                if conn.send(b"NOP\n").is_err() {
                    return log;
                }
            }
            Next::Frame(FRAME_ERROR, data) => {
                log.failure = Some(format!(
                    "consumer of {channel}: error frame {:?}",
                    String::from_utf8_lossy(&data)
                ));
                return log;
            }
            Next::Frame(kind, data) => {
                log.failure = Some(format!(
                    "consumer of {channel}: unexpected frame type {kind}: {:?}",
                    String::from_utf8_lossy(&data)
                ));
                return log;
            }
            Next::Quiet => {}
            Next::Closed => return log,
            Next::Bad(why) => {
                log.failure = Some(format!("consumer of {channel}: {why}"));
                return log;
            }
        }
    }
    log
}

// ---------------------------------------------------------------------------------------------
// The broker and its stats
// ---------------------------------------------------------------------------------------------

fn broker_flags(durable: bool) -> Vec<&'static str> {
    let mut flags = BROKER_FLAGS.to_vec();
    if durable {
        flags.push("--durable");
    }
    flags
}

fn tcp_address(broker: &BrokerProcess) -> SocketAddr {
    let holder = rnsq::data_lock::read_holder(&broker.data_path).expect("the data path holder");
    assert_eq!(holder.pid, broker.child.id(), "the holder is this broker");
    holder
        .tcp_address
        .expect("the broker recorded its TCP address")
}

/// Per channel of topic `t`: `(depth, in_flight_count, deferred_count)`.
fn channel_stats(base: &str) -> Result<BTreeMap<String, (u64, u64, u64)>, String> {
    let response = reqwest::blocking::Client::builder()
        .timeout(IO_TIMEOUT)
        .build()
        .expect("HTTP client")
        .get(format!("{base}/stats?format=json&topic={TOPIC}"))
        .send()
        .map_err(|e| format!("GET /stats: {e}"))?;
    let text = response.text().map_err(|e| format!("GET /stats: {e}"))?;
    let stats: Value = serde_json::from_str(&text).map_err(|e| format!("stats JSON: {e}"))?;
    let topic = stats["topics"]
        .as_array()
        .and_then(|topics| topics.iter().find(|t| t["topic_name"] == TOPIC))
        .ok_or_else(|| format!("no topic {TOPIC} in /stats: {text}"))?;
    let mut out = BTreeMap::new();
    for channel in topic["channels"].as_array().into_iter().flatten() {
        let count = |field: &str| channel[field].as_u64().unwrap_or(u64::MAX);
        out.insert(
            channel["channel_name"].as_str().unwrap_or("?").to_string(),
            (
                count("depth"),
                count("in_flight_count"),
                count("deferred_count"),
            ),
        );
    }
    Ok(out)
}

/// Both channels exist and hold nothing (nothing queued, in flight or deferred).
fn drained(stats: &BTreeMap<String, (u64, u64, u64)>) -> bool {
    CHANNELS.iter().all(|c| stats.get(*c) == Some(&(0, 0, 0)))
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// A data directory kept (not deleted) when the test fails.
pub struct Run {
    dir: Option<tempfile::TempDir>,
    data_path: PathBuf,
}

impl Run {
    pub fn new(name: &str) -> Run {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rnsq-{name}-"))
            .tempdir()
            .expect("tempdir");
        let data_path = dir.path().join("data");
        Run {
            dir: Some(dir),
            data_path,
        }
    }

    /// A run on `data_path`, which the caller owns (a power-loss filesystem, say).
    pub fn at(data_path: PathBuf) -> Run {
        Run {
            dir: None,
            data_path,
        }
    }

    /// Fails the test, keeping the data directory for inspection.
    pub fn fail(&mut self, message: String) -> ! {
        let kept = self.dir.take().map(|d| d.keep());
        panic!("{message}\n(data directory kept at {kept:?})");
    }
}

/// What a channel got over all cycles.
#[derive(Default)]
pub struct ChannelTally {
    /// Bodies finished at least once.
    pub finished: HashSet<String>,
    deliveries: usize,
}

/// Everything the producers sent, over all cycles.
#[derive(Default)]
struct Sent {
    acked: HashSet<String>,
    /// Acked or unanswered: every body a delivery may carry.
    sent: HashSet<String>,
}

/// What one broker lifetime's consumers did to one channel.
struct Merged {
    deliveries: usize,
    /// Deliveries of bodies finished on this channel in an earlier lifetime.
    redelivered: usize,
    /// Bodies finished more than once in this lifetime (extra FINs).
    refinished: usize,
}

/// Adds one lifetime's consumer logs of `channel` to its tally; checks that every body
/// delivered is one a producer sent.
fn merge(
    run: &mut Run,
    what: &str,
    channel: &str,
    logs: &[ConsumerLog],
    tally: &mut ChannelTally,
    sent: &Sent,
) -> Merged {
    let mut merged = Merged {
        deliveries: 0,
        redelivered: 0,
        refinished: 0,
    };
    let mut fins: HashMap<&str, usize> = HashMap::new();
    for log in logs {
        if let Some(failure) = &log.failure {
            run.fail(format!(
                "{what}: a consumer of channel {channel} failed: {failure}"
            ));
        }
        for (body, finished) in &log.deliveries {
            if !sent.sent.contains(body) {
                run.fail(format!(
                    "{what}: channel {channel} delivered a body no producer sent: {body:?}"
                ));
            }
            merged.deliveries += 1;
            if tally.finished.contains(body) {
                merged.redelivered += 1;
            }
            if *finished {
                *fins.entry(body).or_default() += 1;
            }
        }
    }
    merged.refinished = fins.values().map(|n| n - 1).sum();
    tally.deliveries += merged.deliveries;
    tally.finished.extend(fins.into_keys().map(str::to_string));
    merged
}

/// [`merge`]s every channel's consumer logs into its tally, failing if a channel delivered a
/// finished message again; what each channel got, for the cycle's log line.
fn merge_channels(
    run: &mut Run,
    what: &str,
    logs: &[Vec<ConsumerLog>],
    tallies: &mut [ChannelTally],
    sent: &Sent,
) -> String {
    let mut line = String::new();
    for ((channel, logs), tally) in CHANNELS.iter().zip(logs).zip(tallies) {
        let merged = merge(run, what, channel, logs, tally, sent);
        if merged.refinished > 0 {
            run.fail(format!(
                "{what}: channel {channel} delivered {} messages again after they were \
                 finished, with no crash in between",
                merged.refinished
            ));
        }
        line += &format!(
            " {channel}: {:5} delivered, {:4} duplicates redelivered;",
            merged.deliveries, merged.redelivered
        );
    }
    line
}

/// Consumers (for every channel) started on a broker.
struct Consumers {
    stop: Arc<AtomicBool>,
    /// Per channel: acked bodies not finished yet on it.
    remaining: Vec<Arc<Mutex<HashSet<String>>>>,
    threads: Vec<Vec<thread::JoinHandle<ConsumerLog>>>,
}

impl Consumers {
    fn start(tcp: SocketAddr, remaining: Vec<HashSet<String>>) -> Consumers {
        let stop = Arc::new(AtomicBool::new(false));
        let remaining: Vec<_> = remaining
            .into_iter()
            .map(|r| Arc::new(Mutex::new(r)))
            .collect();
        let threads = CHANNELS
            .iter()
            .zip(&remaining)
            .map(|(channel, remaining)| {
                (0..CONSUMERS_PER_CHANNEL)
                    .map(|_| {
                        let (stop, remaining) = (stop.clone(), remaining.clone());
                        thread::spawn(move || run_consumer(tcp, channel, stop, remaining))
                    })
                    .collect()
            })
            .collect();
        Consumers {
            stop,
            remaining,
            threads,
        }
    }

    fn remaining(&self) -> usize {
        self.remaining.iter().map(|r| r.lock().unwrap().len()).sum()
    }

    /// Stops them (if the broker still lives) and returns their logs, per channel.
    fn join(self, run: &mut Run) -> Vec<Vec<ConsumerLog>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        for threads in self.threads {
            let mut logs = Vec::new();
            for thread in threads {
                match thread.join() {
                    Ok(log) => logs.push(log),
                    Err(_) => run.fail("a consumer thread panicked".into()),
                }
            }
            out.push(logs);
        }
        out
    }
}

/// Totals of a run.
pub struct Outcome {
    pub cycles: usize,
    pub acked: usize,
    /// Per channel: acked bodies never finished on it.
    pub missing: Vec<Vec<String>>,
    /// Every acked body: how long before the crash of its cycle it was answered.
    pub acked_age: HashMap<String, Duration>,
    pub tallies: Vec<ChannelTally>,
}

/// Runs `cycles` crash cycles and the final drain; fails on anything that must hold in either
/// mode (a hang, an error answer, a body nobody sent, a channel left non-empty). `crash` gets
/// the broker and the cycle number mid-traffic; it must leave the broker dead and reaped (and
/// may cut power), and returns a note for the cycle's line.
pub fn crash_cycles(
    run: &mut Run,
    durable: bool,
    cycles: usize,
    label: &str,
    mut crash: impl FnMut(usize, BrokerProcess) -> String,
) -> Outcome {
    let started = Instant::now();
    let flags = broker_flags(durable);
    let mut rng = rand::thread_rng();
    let mut sent = Sent::default();
    let mut tallies: Vec<ChannelTally> = CHANNELS.iter().map(|_| ChannelTally::default()).collect();
    let mut acked_age = HashMap::new();

    let mut broker = BrokerProcess::spawn(&run.data_path, &flags);
    let http = reqwest::blocking::Client::new();
    let base = broker.base();
    for path in [
        format!("/topic/create?topic={TOPIC}"),
        format!("/channel/create?topic={TOPIC}&channel={}", CHANNELS[0]),
        format!("/channel/create?topic={TOPIC}&channel={}", CHANNELS[1]),
    ] {
        let response = http.post(format!("{base}{path}")).send().expect(&path);
        assert_eq!(response.status().as_u16(), 200, "POST {path}");
    }

    for cycle in 0..cycles {
        let cycle_started = Instant::now();
        let tcp = tcp_address(&broker);
        let base = broker.base();
        let consumers = Consumers::start(tcp, CHANNELS.iter().map(|_| HashSet::new()).collect());
        let producers: Vec<_> = PRODUCERS
            .iter()
            .enumerate()
            .map(|(p, &kind)| {
                let base = base.clone();
                thread::spawn(move || run_producer(kind, cycle, p, tcp, base))
            })
            .collect();
        let kill_after = Duration::from_millis(rng.gen_range(KILL_AFTER_MS));
        // Not synchronisation: this picks a random moment for the crash, mid-traffic.
        thread::sleep(kill_after);
        let crashed_at = Instant::now();
        let note = crash(cycle, broker);

        let mut acked = 0;
        let mut unanswered = 0;
        for producer in producers {
            let Ok(log) = producer.join() else {
                run.fail(format!("{label} cycle {cycle}: a producer thread panicked"));
            };
            if let Some(failure) = log.failure {
                run.fail(format!(
                    "{label} cycle {cycle}: a producer failed: {failure}"
                ));
            }
            acked += log.acked.len();
            unanswered += log.unanswered.len();
            for (body, at) in log.acked {
                acked_age.insert(body.clone(), crashed_at.saturating_duration_since(at));
                sent.sent.insert(body.clone());
                sent.acked.insert(body);
            }
            sent.sent.extend(log.unanswered);
        }
        let logs = consumers.join(run);

        let restart = Instant::now();
        broker = BrokerProcess::spawn(&run.data_path, &flags);
        let restart_ms = restart.elapsed().as_millis();

        let mut line = format!(
            "{label} cycle {cycle:3}: crashed after {:3} ms{note}; acked {acked:5}, unanswered {unanswered:2};",
            kill_after.as_millis()
        );
        line += &merge_channels(
            run,
            &format!("{label} cycle {cycle}"),
            &logs,
            &mut tallies,
            &sent,
        );
        eprintln!(
            "{line} restart {restart_ms} ms; elapsed {} ms",
            cycle_started.elapsed().as_millis()
        );
    }

    // The final drain: every acked body not yet finished on a channel must come.
    let drain_started = Instant::now();
    let tcp = tcp_address(&broker);
    let base = broker.base();
    let remaining: Vec<HashSet<String>> = tallies
        .iter()
        .map(|t| sent.acked.difference(&t.finished).cloned().collect())
        .collect();
    let to_drain: Vec<usize> = remaining.iter().map(HashSet::len).collect();
    let consumers = Consumers::start(tcp, remaining);
    let mut quiet_since: Option<Instant> = None;
    let mut last_stats;
    loop {
        last_stats = channel_stats(&base);
        let empty = matches!(&last_stats, Ok(stats) if drained(stats));
        if empty && consumers.remaining() == 0 {
            break;
        }
        if empty {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= DRAINED_QUIET {
                break;
            }
        } else {
            quiet_since = None;
        }
        if drain_started.elapsed() >= DRAIN_DEADLINE {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let logs = consumers.join(run);
    let mut line = format!("{label} drain: to drain {to_drain:?};");
    line += &merge_channels(
        run,
        &format!("{label} final drain"),
        &logs,
        &mut tallies,
        &sent,
    );
    eprintln!(
        "{line} elapsed {} ms; stats {last_stats:?}",
        drain_started.elapsed().as_millis()
    );
    match &last_stats {
        Ok(stats) if drained(stats) => {}
        other => run.fail(format!(
            "{label}: after draining for {:?} the channels are not empty: {other:?}",
            drain_started.elapsed()
        )),
    }

    if !broker.terminate() {
        run.fail(format!(
            "{label}: after the drain, SIGTERM: the broker did not exit 0"
        ));
    }

    let missing = tallies
        .iter()
        .map(|t| {
            let mut missing: Vec<String> = sent.acked.difference(&t.finished).cloned().collect();
            missing.sort();
            missing
        })
        .collect();
    eprintln!(
        "{label}: {cycles} cycles in {:.1} s: acked {}, sent {}, deliveries {:?}",
        started.elapsed().as_secs_f64(),
        sent.acked.len(),
        sent.sent.len(),
        tallies.iter().map(|t| t.deliveries).collect::<Vec<_>>()
    );
    Outcome {
        cycles,
        acked: sent.acked.len(),
        missing,
        acked_age,
        tallies,
    }
}

/// `body`'s cycle and producer: the `c{cycle}-p{producer}` prefix.
pub fn origin(body: &str) -> &str {
    let mut parts = body.splitn(3, '-');
    let (cycle, producer) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    &body[..(cycle.len() + 1 + producer.len()).min(body.len())]
}
