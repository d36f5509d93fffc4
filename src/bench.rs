//! `rnsq bench …`: benchmarks that print figures for the closing notes. Not tests: they assert
//! nothing and run as long as they are told.
//!
//! `writer`, `reader` and `pump` speak NSQ protocol V2 directly over a `TcpStream` (no client
//! library), modelled on Go NSQ's `bench/bench_writer` and `bench/bench_reader`, and print
//! their result the way those do: [`rate_line`].

pub mod lookup;
pub mod meta;
pub mod pump;
pub mod reader;
pub mod writer;

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::broker::BrokerError;
use crate::meta_store::StoreError;
use crate::nsqd::StartError;
use crate::protocol::{FRAME_ERROR, FRAME_RESPONSE, HEARTBEAT, MAGIC_V2, OK};

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

/// A connection to nsqd that has sent the V2 magic.
/// Waits for every worker, then prints the rate of the messages they counted.
pub(crate) async fn report_workers(
    workers: Vec<tokio::task::JoinHandle<Result<u64, BenchError>>>,
    started: tokio::time::Instant,
    size: usize,
) -> Result<(), BenchError> {
    let mut messages = 0;
    for worker in workers {
        messages += worker.await??;
    }
    crate::console::say(rate_line(started.elapsed(), messages, size));
    Ok(())
}

pub(crate) type Conn = BufReader<TcpStream>;

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
    let mut conn = BufReader::with_capacity(64 * 1024, stream);
    conn.write_all(MAGIC_V2).await?;
    Ok(conn)
}

/// `IDENTIFY\n[size][json]` without feature negotiation (so the answer is `OK`).
pub(crate) fn identify_command(client_id: &str, user_agent: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "client_id": client_id,
        "hostname": client_id,
        "user_agent": user_agent,
        "feature_negotiation": false,
    })
    .to_string();
    let mut command = b"IDENTIFY\n".to_vec();
    command.extend_from_slice(&(body.len() as u32).to_be_bytes());
    command.extend_from_slice(body.as_bytes());
    command
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

/// Reads the answer to `what`, which must be `OK`; heartbeats on the way are answered `NOP`.
/// Connects worker `index` of `role` ("reader", "writer") and IDENTIFYs it.
pub(crate) async fn connect_worker(
    address: &str,
    role: &str,
    index: usize,
) -> Result<Conn, BenchError> {
    let mut conn = connect(address).await?;
    let user_agent = format!("rnsq-bench-{role}/{}", env!("CARGO_PKG_VERSION"));
    conn.write_all(&identify_command(&format!("{role}-{index}"), &user_agent))
        .await?;
    expect_ok(&mut conn, "IDENTIFY").await?;
    Ok(conn)
}

/// Waits out `--deadline` before the workers start together.
pub(crate) async fn wait_for_start(deadline: std::time::Duration) {
    if !deadline.is_zero() {
        crate::console::say(format!("sleeping {deadline:?} before starting"));
        tokio::time::sleep(deadline).await;
    }
}

pub(crate) async fn expect_ok(conn: &mut Conn, what: &str) -> Result<(), BenchError> {
    loop {
        let (frame_type, data) = read_frame(conn).await?;
        match frame_type {
            FRAME_RESPONSE if data == HEARTBEAT => conn.write_all(b"NOP\n").await?,
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
