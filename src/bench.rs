//! `rnsq bench …`: benchmarks that print figures for the closing notes. Not tests: they assert
//! nothing and run as long as they are told.
//!
//! `writer`, `reader` and `pump` speak NSQ protocol V2 directly (no client library), modelled
//! on Go NSQ's `bench/bench_writer` and `bench/bench_reader`, and print their result the way
//! those do: [`rate_line`]. `writer` and `reader` connect plain, or with TLS, snappy or
//! deflate ([`Transport`], negotiated in [`negotiate`]) over a [`Conn`] that counts the bytes
//! on the socket, and print them under the rate: [`bytes_line`].

pub mod conn;
pub mod connections;
pub mod lookup;
pub mod meta;
pub mod negotiate;
pub mod pump;
pub mod reader;
pub mod tls_client;
pub mod transport_args;
pub mod writer;

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use conn::{Conn, Traffic};
pub use negotiate::Transport;

use crate::broker::BrokerError;
use crate::meta_store::StoreError;
use crate::nsqd::StartError;
use crate::protocol::{FRAME_ERROR, FRAME_RESPONSE, HEARTBEAT, MAGIC_V2, OK};
use crate::transport::Compression;

/// Why a benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("benchmark task failed: {0}")]
    Task(String),
    #[error("cannot connect to nsqd at {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    /// nsqd sent an error frame, or something the protocol does not allow.
    #[error("{0}")]
    Protocol(String),
    /// A flag value the benchmark cannot run with.
    #[error("{0}")]
    Invalid(String),
    /// nsqd did not grant the TLS or compression the benchmark asked for.
    #[error("{0}")]
    Refused(String),
}

impl From<tokio::task::JoinError> for BenchError {
    fn from(e: tokio::task::JoinError) -> Self {
        BenchError::Task(e.to_string())
    }
}

impl From<tokio::sync::AcquireError> for BenchError {
    fn from(e: tokio::sync::AcquireError) -> Self {
        BenchError::Task(e.to_string())
    }
}

/// The largest frame a benchmark accepts (nsqd's default `--max-msg-size` is 1 MiB).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// How long a connect may take (Go's benchmarks dial with a one-second timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The result line, computed as Go's benchmarks compute theirs: MiB/s from the message count
/// times `size`, and microseconds per message from whole microseconds of the run.
pub fn rate_line(duration: Duration, messages: u64, size: usize) -> String {
    let seconds = duration.as_secs_f64().max(1e-9);
    let mib = messages as f64 * size as f64 / seconds / 1024.0 / 1024.0;
    let per_second = messages as f64 / seconds;
    let us_per_op = duration.as_micros() as f64 / messages as f64;
    format!(
        "duration: {duration:?}, {mib:.2} MiB/s, {per_second:.1} msg/s, {messages} ops, \
         {us_per_op:.3} us/op"
    )
}

/// What one worker counted: messages, their body bytes, and its connection's traffic.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    pub messages: u64,
    pub payload: u64,
    pub traffic: Traffic,
}

/// Which way a benchmark's payload flows, for the bytes line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Sent,
    Received,
}

/// `n` bytes in MiB, two decimals.
fn mib(n: u64) -> String {
    format!("{:.2} MiB", n as f64 / 1024.0 / 1024.0)
}

/// The bytes line printed under the rate: the message bodies moved, and what it took on the
/// socket (below compression and TLS) the way they flowed, with the ratio of the two.
pub(crate) fn bytes_line(tally: &Tally, direction: Direction) -> String {
    let t = &tally.traffic;
    let (label, protocol, wire) = match direction {
        Direction::Sent => ("sent", t.sent, t.wire_sent),
        Direction::Received => ("received", t.received, t.wire_received),
    };
    let ratio = wire as f64 / (tally.payload.max(1)) as f64;
    format!(
        "bytes {label}: payload {}, protocol {}, socket {} ({ratio:.3} socket bytes per payload \
         byte); other way: socket {}",
        mib(tally.payload),
        mib(protocol),
        mib(wire),
        mib(match direction {
            Direction::Sent => t.wire_received,
            Direction::Received => t.wire_sent,
        }),
    )
}

/// Waits for every worker, then prints the rate of the messages they counted and the bytes
/// line for `direction`.
pub(crate) async fn report_workers(
    workers: Vec<tokio::task::JoinHandle<Result<Tally, BenchError>>>,
    started: tokio::time::Instant,
    size: usize,
    direction: Direction,
) -> Result<(), BenchError> {
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await??;
        total.messages += tally.messages;
        total.payload += tally.payload;
        total.traffic += tally.traffic;
    }
    crate::console::say(rate_line(started.elapsed(), total.messages, size));
    crate::console::say(bytes_line(&total, direction));
    Ok(())
}

/// Connects to nsqd (with Nagle off, as Go's dialer does) and sends the V2 magic.
pub(crate) async fn connect(address: &str) -> Result<Conn, BenchError> {
    let connect_error = |source| BenchError::Connect {
        address: address.to_string(),
        source,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| {
            connect_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ))
        })?
        .map_err(connect_error)?;
    stream.set_nodelay(true).map_err(connect_error)?;
    let mut conn = Conn::new(stream);
    conn.write_all(MAGIC_V2).await?;
    Ok(conn)
}

/// Reads one frame: its type and data.
pub(crate) async fn read_frame(conn: &mut Conn) -> Result<(i32, Vec<u8>), BenchError> {
    let size = conn.read_u32().await? as usize;
    if !(4..=MAX_FRAME).contains(&size) {
        return Err(BenchError::Protocol(format!("bad frame size {size}")));
    }
    let frame_type = conn.read_i32().await?;
    let mut data = vec![0u8; size - 4];
    conn.read_exact(&mut data).await?;
    Ok((frame_type, data))
}

/// Connects worker `index` of `role` ("reader", "writer"), IDENTIFYs it and upgrades it to
/// `transport`. Fails with [`BenchError::Refused`] if nsqd does not grant `transport`.
pub(crate) async fn connect_worker(
    address: &str,
    role: &str,
    index: usize,
    transport: &Transport,
) -> Result<Conn, BenchError> {
    let mut conn = connect(address).await?;
    let user_agent = format!("rnsq-bench-{role}/{}", env!("CARGO_PKG_VERSION"));
    let identify = negotiate::identify_command(&format!("{role}-{index}"), &user_agent, transport);
    conn.write_all(&identify).await?;
    conn.flush().await?;
    let granted = negotiate::upgrade(&mut conn, address, transport).await?;
    if let (0, Some(Compression::Deflate(asked)), Some(level)) =
        (index, transport.compression, granted.deflate_level)
    {
        if level != asked {
            crate::console::say(format!(
                "nsqd lowered the deflate level from {asked} to {level}"
            ));
        }
    }
    Ok(conn)
}

/// Waits out `--deadline` before the workers start together.
pub(crate) async fn wait_for_start(deadline: std::time::Duration) {
    if !deadline.is_zero() {
        crate::console::say(format!("sleeping {deadline:?} before starting"));
        tokio::time::sleep(deadline).await;
    }
}

/// Reads the answer to `what`, which must be `OK`; heartbeats on the way are answered `NOP`.
pub(crate) async fn expect_ok(conn: &mut Conn, what: &str) -> Result<(), BenchError> {
    loop {
        let (frame_type, data) = read_frame(conn).await?;
        match frame_type {
            FRAME_RESPONSE if data == HEARTBEAT => {
                conn.write_all(b"NOP\n").await?;
                conn.flush().await?;
            }
            FRAME_RESPONSE if data == OK => return Ok(()),
            _ => return Err(unexpected(what, frame_type, &data)),
        }
    }
}

/// The error for a frame that should not have come: nsqd's own text for an error frame.
pub(crate) fn unexpected(what: &str, frame_type: i32, data: &[u8]) -> BenchError {
    let text = String::from_utf8_lossy(data);
    match frame_type {
        FRAME_ERROR => BenchError::Protocol(format!("nsqd refused {what}: {text}")),
        FRAME_RESPONSE => BenchError::Protocol(format!("nsqd answered {what} with {text:?}")),
        other => BenchError::Protocol(format!("nsqd answered {what} with a frame of type {other}")),
    }
}

/// Takes the next whole frame (type and data) off the front of `buf`, if one is there.
pub(crate) fn split_frame(buf: &mut BytesMut) -> Result<Option<(i32, Bytes)>, BenchError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(4..=MAX_FRAME).contains(&size) {
        return Err(BenchError::Protocol(format!("bad frame size {size}")));
    }
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let frame_type = buf.get_i32();
    Ok(Some((frame_type, buf.split_to(size - 4).freeze())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_line_computes_as_go_does() {
        let line = rate_line(Duration::from_secs(2), 1_048_576, 200);
        assert_eq!(
            line,
            "duration: 2s, 100.00 MiB/s, 524288.0 msg/s, 1048576 ops, 1.907 us/op"
        );
    }

    #[test]
    fn splits_whole_frames_only() {
        let mut buf = BytesMut::new();
        crate::protocol::put_frame(&mut buf, FRAME_RESPONSE, b"OK");
        crate::protocol::put_frame(&mut buf, FRAME_ERROR, b"E_INVALID x");
        buf.truncate(buf.len() - 1);
        let (frame_type, data) = split_frame(&mut buf).unwrap().unwrap();
        assert_eq!((frame_type, &data[..]), (FRAME_RESPONSE, &b"OK"[..]));
        assert!(split_frame(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"x");
        let (frame_type, data) = split_frame(&mut buf).unwrap().unwrap();
        assert_eq!((frame_type, &data[..]), (FRAME_ERROR, &b"E_INVALID x"[..]));
        assert!(buf.is_empty());
        buf.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(split_frame(&mut buf).is_err());
    }
}
