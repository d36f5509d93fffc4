//! `rnsq bench connections`: a reconnect storm, then the same connections held idle. Every
//! connection is opened at once, as after a broker restart: each connects and sends its
//! protocol's greeting without waiting for the others, and the figure is the time until the
//! last one is answered. Then the connections stay open and idle, and the benchmark reports
//! the server's resident memory per connection (when given its pid) and how long `/stats`
//! takes with all of them listed (when given nsqd's HTTP address).
//!
//! Greetings: nsqd's V2 port gets the magic and an IDENTIFY (answered with its JSON), and
//! with `subscribe` a SUB (`OK`) so that `/stats` lists every connection;
//! nsqlookupd's V1 port gets the magic and a PING (`OK`); an HTTP port gets a keep-alive
//! `GET /ping` (`OK`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::BenchError;
use crate::console::say;
use crate::protocol::{FRAME_RESPONSE, MAGIC_V2, OK};

/// Which port is stormed, and so which greeting each connection sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Greeting {
    /// nsqd's TCP port: `  V2`, then IDENTIFY.
    V2,
    /// nsqlookupd's TCP port: `  V1`, then PING.
    V1,
    /// An HTTP port: `GET /ping`, kept alive.
    Http,
}

/// The benchmark's parameters.
#[derive(Debug, Clone)]
pub struct ConnectionsBench {
    pub address: String,
    pub greeting: Greeting,
    pub connections: usize,
    /// The server's process, for its resident memory before and after.
    pub server_pid: Option<u32>,
    /// nsqd's HTTP address, to time `/stats` while every connection is held.
    pub stats_address: Option<String>,
    /// How long the idle connections are held before the memory is read.
    pub hold: Duration,
    /// V2 only: after IDENTIFY, each connection subscribes to this topic and channel (so
    /// `/stats` lists it), with RDY 0.
    pub subscribe: Option<(String, String)>,
}

/// How long one connection may take to be answered before the benchmark calls it failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// One connection's outcome: its stream (kept open), and when it was connected and answered,
/// counted from the start of the storm.
struct Answered {
    /// Held open, never read, until the benchmark ends.
    _stream: TcpStream,
    connected: Duration,
    answered: Duration,
}

/// Runs the storm, holds the connections, prints the figures, then closes everything.
///
/// # Errors
/// [`BenchError::Invalid`] for zero connections; [`BenchError::Protocol`] when any connection
/// failed or was answered wrongly (the first failure is named, with how many failed).
pub async fn run(bench: ConnectionsBench) -> Result<(), BenchError> {
    if bench.connections == 0 {
        return Err(BenchError::Invalid(
            "--connections must be at least 1".into(),
        ));
    }
    // Two descriptors a connection would be the server's need; the client holds one each.
    let limits = crate::fd_limit::raise_to(bench.connections as u64 + 256)?;
    if limits.soft < bench.connections as u64 + 16 {
        return Err(BenchError::Invalid(format!(
            "this process may open {} descriptors (hard limit {}): too few for {} connections \
             (raise it with ulimit -n)",
            limits.soft, limits.hard, bench.connections
        )));
    }
    say(format!(
        "bench connections: {} connections to {} at once ({:?} greeting)",
        bench.connections, bench.address, bench.greeting
    ));
    let rss_before = server_resident(bench.server_pid).await;

    let started = Instant::now();
    let mut storm = JoinSet::new();
    for index in 0..bench.connections {
        let address = bench.address.clone();
        let greeting = bench.greeting;
        let subscribe = bench.subscribe.clone();
        storm.spawn(async move {
            let greet = connect_and_greet(address, greeting, subscribe, index, started);
            tokio::time::timeout(ANSWER_TIMEOUT, greet)
                .await
                .unwrap_or_else(|_| Err(BenchError::Protocol("not answered within 120 s".into())))
        });
    }
    let mut held = Vec::with_capacity(bench.connections);
    let mut failures = 0usize;
    let mut first_failure = None;
    while let Some(outcome) = storm.join_next().await {
        match outcome.map_err(BenchError::from).and_then(|r| r) {
            Ok(answered) => held.push(answered),
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert(e);
            }
        }
    }
    let storm_time = started.elapsed();
    report_storm(&held, storm_time, failures);
    if let Some(e) = first_failure {
        return Err(BenchError::Protocol(format!(
            "{failures} of {} connections failed; the first: {e}",
            bench.connections
        )));
    }

    tokio::time::sleep(bench.hold).await;
    let rss_after = server_resident(bench.server_pid).await;
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let per = after.saturating_sub(before) as f64 / held.len() as f64;
        say(format!(
            "server memory: {:.1} MiB resident before, {:.1} MiB with {} idle connections: \
             {:.1} KiB a connection",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            held.len(),
            per / 1024.0
        ));
    }
    if let Some(address) = &bench.stats_address {
        let (took, bytes, clients) = time_stats(address).await?;
        say(format!(
            "GET /stats?format=json with {} clients held: {:.1} ms, {bytes} bytes, {clients} \
             clients listed",
            held.len(),
            took.as_secs_f64() * 1000.0
        ));
    }
    drop(held);
    Ok(())
}

/// Prints the storm's figures: the time to the last answer, and the spread of connect and
/// answer times (a connect over a second is the signature of a dropped SYN retried).
fn report_storm(held: &[Answered], storm_time: Duration, failures: usize) {
    let mut connected: Vec<Duration> = held.iter().map(|a| a.connected).collect();
    let mut answered: Vec<Duration> = held.iter().map(|a| a.answered).collect();
    connected.sort_unstable();
    answered.sort_unstable();
    let slow = connected
        .iter()
        .filter(|d| **d >= Duration::from_secs(1))
        .count();
    say(format!(
        "storm: {} answered, {failures} failed, in {:.3} s (last answer at {:.3} s)",
        held.len(),
        storm_time.as_secs_f64(),
        answered.last().map_or(0.0, |d| d.as_secs_f64()),
    ));
    say(format!(
        "connected: p50 {} p99 {} max {}; answered: p50 {} p99 {} max {}; {slow} connects took \
         1 s or more",
        millis(percentile(&connected, 50.0)),
        millis(percentile(&connected, 99.0)),
        millis(connected.last().copied()),
        millis(percentile(&answered, 50.0)),
        millis(percentile(&answered, 99.0)),
        millis(answered.last().copied()),
    ));
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

fn millis(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0),
    )
}

async fn connect_and_greet(
    address: String,
    greeting: Greeting,
    subscribe: Option<(String, String)>,
    index: usize,
    started: Instant,
) -> Result<Answered, BenchError> {
    let mut stream = TcpStream::connect(&address)
        .await
        .map_err(|source| BenchError::Connect {
            address: address.clone(),
            source,
        })?;
    let connected = started.elapsed();
    let _ = stream.set_nodelay(true);
    match greeting {
        Greeting::V2 => {
            let body = format!(
                r#"{{"client_id":"storm-{index}","hostname":"bench","feature_negotiation":true,"user_agent":"rnsq-bench"}}"#
            );
            let mut hello = Vec::with_capacity(64 + body.len());
            hello.extend_from_slice(MAGIC_V2);
            hello.extend_from_slice(b"IDENTIFY\n");
            hello.extend_from_slice(&(body.len() as u32).to_be_bytes());
            hello.extend_from_slice(body.as_bytes());
            if let Some((topic, channel)) = &subscribe {
                hello.extend_from_slice(format!("SUB {topic} {channel}\n").as_bytes());
            }
            stream.write_all(&hello).await?;
            let (frame_type, data) = read_sized(&mut stream, true).await?;
            if frame_type != FRAME_RESPONSE || !data.starts_with(b"{") {
                return Err(super::unexpected("IDENTIFY", frame_type, &data));
            }
            if subscribe.is_some() {
                let (frame_type, data) = read_sized(&mut stream, true).await?;
                if frame_type != FRAME_RESPONSE || data != OK {
                    return Err(super::unexpected("SUB", frame_type, &data));
                }
            }
        }
        Greeting::V1 => {
            stream.write_all(b"  V1PING\n").await?;
            let (_, data) = read_sized(&mut stream, false).await?;
            if data != b"OK" {
                return Err(BenchError::Protocol(format!(
                    "nsqlookupd answered PING with {:?}",
                    String::from_utf8_lossy(&data)
                )));
            }
        }
        Greeting::Http => {
            stream
                .write_all(b"GET /ping HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n")
                .await?;
            read_http_ok(&mut stream).await?;
        }
    }
    Ok(Answered {
        _stream: stream,
        connected,
        answered: started.elapsed(),
    })
}

/// Reads one size-prefixed reply: V2's `[size][type][data]` when `typed`, else lookupd V1's
/// `[size][data]`.
async fn read_sized(stream: &mut TcpStream, typed: bool) -> Result<(i32, Vec<u8>), BenchError> {
    let size = stream.read_u32().await? as usize;
    if size > 1024 * 1024 || (typed && size < 4) {
        return Err(BenchError::Protocol(format!("bad reply size {size}")));
    }
    let mut data = vec![0u8; size];
    stream.read_exact(&mut data).await?;
    if typed {
        let frame_type = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        Ok((frame_type, data.split_off(4)))
    } else {
        Ok((0, data))
    }
}

/// Reads an HTTP response to `GET /ping` until its `OK` body, checking the status is 200.
async fn read_http_ok(stream: &mut TcpStream) -> Result<(), BenchError> {
    let mut response = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(BenchError::Protocol(
                "the HTTP server closed before answering".into(),
            ));
        }
        response.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&response, b"\r\n\r\n") {
            if !response.starts_with(b"HTTP/1.1 200") {
                let line = response.split(|b| *b == b'\r').next().unwrap_or_default();
                return Err(BenchError::Protocol(format!(
                    "GET /ping answered {:?}",
                    String::from_utf8_lossy(line)
                )));
            }
            if response.len() >= end + 4 + 2 {
                return Ok(());
            }
        }
        if response.len() > 64 * 1024 {
            return Err(BenchError::Protocol(
                "the HTTP response to /ping is over 64 KiB".into(),
            ));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Times one `GET /stats?format=json` on a fresh connection; returns the time, the body's
/// length and how many clients it lists.
async fn time_stats(address: &str) -> Result<(Duration, usize, usize), BenchError> {
    let url = format!("http://{address}/stats?format=json");
    let started = Instant::now();
    let body = tokio::task::spawn_blocking(move || {
        reqwest::blocking::get(&url)
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
    })
    .await?
    .map_err(|e| BenchError::Protocol(format!("GET /stats failed: {e}")))?;
    let took = started.elapsed();
    let clients = body.matches("\"client_id\"").count();
    Ok((took, body.len(), clients))
}

async fn server_resident(pid: Option<u32>) -> Option<u64> {
    crate::resident::of_process(pid?).await
}
