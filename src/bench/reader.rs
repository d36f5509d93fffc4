//! `rnsq bench reader`: consume throughput, as Go NSQ's `bench/bench_reader` measures it.
//!
//! Each worker opens its own connection, IDENTIFYs and SUBscribes; once every worker is
//! subscribed they all send `RDY` together and read until `runfor` has passed, finishing every
//! message. The FINs for everything one read brought are written together, so the reader is
//! not bound by one syscall per message; heartbeats are answered with `NOP`.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{
    connect_worker, expect_ok, report_workers, split_frame, unexpected, wait_for_start, BenchError,
    Conn, Direction, Tally, Transport,
};
use crate::console::say;
use crate::message::HEADER_LEN;
use crate::protocol::{FRAME_MESSAGE, FRAME_RESPONSE, HEARTBEAT};

/// Bytes read at a time.
const READ_CHUNK: usize = 256 * 1024;

/// The benchmark's parameters.
#[derive(Debug, Clone)]
pub struct ReaderBench {
    /// nsqd's TCP address.
    pub address: String,
    pub topic: String,
    pub channel: String,
    /// Bytes per message, for MiB/s (as in Go, not measured).
    pub size: usize,
    pub runfor: Duration,
    /// How long to wait, once subscribed, before starting.
    pub deadline: Duration,
    /// RDY count each connection sends.
    pub rdy: u64,
    /// Connections reading at once.
    pub workers: usize,
    pub transport: Transport,
}

/// Runs the benchmark and prints its result line.
pub async fn run(bench: ReaderBench) -> Result<(), BenchError> {
    if bench.workers == 0 {
        return Err(BenchError::Invalid("--workers must be at least 1".into()));
    }
    say(format!(
        "bench reader: {} workers, RDY {}, from {:?}/{:?} at {}, {}, for {:?}",
        bench.workers,
        bench.rdy,
        bench.topic,
        bench.channel,
        bench.address,
        bench.transport.describe(),
        bench.runfor
    ));
    let mut conns = Vec::with_capacity(bench.workers);
    for i in 0..bench.workers {
        let mut conn = connect_worker(&bench.address, "reader", i, &bench.transport).await?;
        conn.write_all(format!("SUB {} {}\n", bench.topic, bench.channel).as_bytes())
            .await?;
        conn.flush().await?;
        expect_ok(&mut conn, "SUB").await?;
        conns.push(conn);
    }
    wait_for_start(bench.deadline).await;
    let started = Instant::now();
    let end = started + bench.runfor;
    let workers: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(consume(conn, bench.rdy, end)))
        .collect();
    report_workers(workers, started, bench.size, Direction::Received).await
}

/// Sends RDY, then reads and finishes messages until `end`; returns how many it finished,
/// their body bytes and the connection's traffic.
/// Every counted message's FIN has been written when it returns; whatever is still in flight
/// is requeued by nsqd when the connection closes.
async fn consume(mut conn: Conn, rdy: u64, end: Instant) -> Result<Tally, BenchError> {
    conn.write_all(format!("RDY {rdy}\n").as_bytes()).await?;
    conn.flush().await?;
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = Vec::with_capacity(64 * 1024);
    let mut messages = 0;
    let mut payload = 0;
    while Instant::now() < end {
        input.reserve(READ_CHUNK);
        let read = match tokio::time::timeout_at(end, conn.read_buf(&mut input)).await {
            Ok(read) => read?,
            Err(_) => break,
        };
        if read == 0 {
            return Err(BenchError::Protocol(
                "nsqd closed the connection mid-run".into(),
            ));
        }
        while let Some((frame_type, data)) = split_frame(&mut input)? {
            match frame_type {
                FRAME_MESSAGE if data.len() >= HEADER_LEN => {
                    output.extend_from_slice(b"FIN ");
                    output.extend_from_slice(&data[10..HEADER_LEN]);
                    output.push(b'\n');
                    messages += 1;
                    payload += (data.len() - HEADER_LEN) as u64;
                }
                FRAME_RESPONSE if data == HEARTBEAT => output.extend_from_slice(b"NOP\n"),
                FRAME_MESSAGE => {
                    return Err(BenchError::Protocol(format!(
                        "message frame of {} bytes is shorter than its header",
                        data.len()
                    )))
                }
                other => return Err(unexpected("FIN", other, &data)),
            }
        }
        if !output.is_empty() {
            conn.write_all(&output).await?;
            conn.flush().await?;
            output.clear();
        }
    }
    Ok(Tally {
        messages,
        payload,
        traffic: conn.traffic(),
    })
}
