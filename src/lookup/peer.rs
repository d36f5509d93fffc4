//! One lookupd peer: a small state machine (disconnected → connecting → connected) on its own
//! task, so that a slow or dead lookupd never holds up the others, the broker or persistence.
//!
//! Connecting dials (1 s), writes the magic, IDENTIFYs, remembers lookupd's HTTP address, then
//! announces every topic and channel from one snapshot, pipelined in windows. While connected
//! it forwards REGISTER/UNREGISTER commands, PINGs every 15 s, and watches the socket: when
//! lookupd closes it (a restart), it reconnects at once and then with a backoff capped at the
//! ping interval; the reconnect re-announces everything.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::LookupContext;
use crate::lookup_wire::{Command, LookupdInfo, MAGIC_V1, OK};

/// Dial, read and write deadline, as Go's.
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a connected peer is PINGed.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// The first reconnect delay after a failure; doubled up to [`PING_INTERVAL`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Commands written before their responses are read while announcing.
const WINDOW: usize = 512;

/// What the loop sends a peer.
#[derive(Debug)]
pub enum PeerMessage {
    Command(Command),
    /// Reconnect and announce everything (the loop missed events).
    Resync,
}

/// Why an exchange with lookupd failed. The connection is dropped after any of them.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("response of {0} bytes exceeds --max-body-size")]
    TooLarge(u32),
    #[error("lookupd answered {0:?}")]
    Refused(String),
    #[error("bad IDENTIFY response: {0}")]
    BadIdentify(String),
    #[error("lookupd closed the connection")]
    Closed,
    #[error("resynchronising")]
    Resync,
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

async fn timed<T>(
    future: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, PeerError> {
    tokio::time::timeout(IO_TIMEOUT, future)
        .await
        .map_err(|_| PeerError::Timeout)?
        .map_err(PeerError::from)
}

impl Connection {
    async fn read_response(&mut self, max_body_size: usize) -> Result<Vec<u8>, PeerError> {
        let size = timed(self.reader.read_u32()).await?;
        if size as usize > max_body_size {
            return Err(PeerError::TooLarge(size));
        }
        let mut body = vec![0; size as usize];
        timed(self.reader.read_exact(&mut body)).await?;
        Ok(body)
    }

    /// Writes `commands`, then reads one response each; any error response fails.
    async fn exchange(
        &mut self,
        commands: &[Command],
        max_body_size: usize,
    ) -> Result<(), PeerError> {
        let mut bytes = Vec::new();
        for command in commands {
            bytes.extend_from_slice(command.as_bytes());
        }
        timed(self.writer.write_all(&bytes)).await?;
        for _ in commands {
            let response = self.read_response(max_body_size).await?;
            if response != OK {
                return Err(PeerError::Refused(
                    String::from_utf8_lossy(&response).into_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Completes when lookupd closes the connection (or sends something unasked).
    async fn closed(&mut self) {
        // fill_buf is cancel-safe: bytes it reads stay buffered for the next response read.
        let _ = self.reader.fill_buf().await;
    }
}

async fn connect(address: &str, context: &LookupContext) -> Result<Connection, PeerError> {
    connect_with_window(address, context, WINDOW)
        .await
        .map(|(connection, _)| connection)
}

/// Connects, IDENTIFYs and announces every registration, `window` commands in flight at a
/// time (1: one round trip per command, as Go does); returns the connection and how many
/// registrations were announced.
async fn connect_with_window(
    address: &str,
    context: &LookupContext,
    window: usize,
) -> Result<(Connection, usize), PeerError> {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| PeerError::Timeout)??;
    let _ = stream.set_nodelay(true);
    let (read_half, writer) = stream.into_split();
    let mut connection = Connection {
        reader: BufReader::new(read_half),
        writer,
    };
    timed(connection.writer.write_all(MAGIC_V1)).await?;
    timed(
        connection
            .writer
            .write_all(Command::identify(&context.identity).as_bytes()),
    )
    .await?;
    let response = connection.read_response(context.max_body_size).await?;
    let info: LookupdInfo = serde_json::from_slice(&response)
        .map_err(|_| PeerError::BadIdentify(String::from_utf8_lossy(&response).into_owned()))?;
    context.learn_http_address(address, &info);

    // One consistent snapshot of what to announce, then windows of pipelined REGISTERs.
    let commands = context.registrations();
    for chunk in commands.chunks(window.max(1)) {
        connection.exchange(chunk, context.max_body_size).await?;
    }
    tracing::info!(
        lookupd = address,
        registrations = commands.len(),
        "LOOKUP: connected and announced"
    );
    Ok((connection, commands.len()))
}

/// For `rnsq bench lookup`: one connect-and-announce to `address` with `window` commands in
/// flight; returns how many registrations were announced. The connection is then closed.
pub async fn announce_once(
    address: &str,
    context: &LookupContext,
    window: usize,
) -> Result<usize, PeerError> {
    connect_with_window(address, context, window)
        .await
        .map(|(_, count)| count)
}

enum Wake {
    Stop,
    Connect,
    Message(Option<PeerMessage>),
    Ping,
    Closed,
}

/// Runs the peer for `address` until `stop` is cancelled or the loop drops its sender.
pub async fn run(
    address: String,
    context: Arc<LookupContext>,
    mut messages: mpsc::Receiver<PeerMessage>,
    stop: CancellationToken,
) {
    let mut connection: Option<Connection> = None;
    let mut retry_at = Some(Instant::now());
    let mut backoff = FIRST_BACKOFF;
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        let wake = {
            let retry_due = retry_at.filter(|_| connection.is_none());
            let retry = async {
                match retry_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let closed = async {
                match connection.as_mut() {
                    Some(c) => c.closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => Wake::Stop,
                _ = retry => Wake::Connect,
                message = messages.recv() => Wake::Message(message),
                _ = ping.tick() => Wake::Ping,
                _ = closed => Wake::Closed,
            }
        };
        let failure = match wake {
            Wake::Stop | Wake::Message(None) => break,
            Wake::Connect => match connect(&address, &context).await {
                Ok(c) => {
                    connection = Some(c);
                    backoff = FIRST_BACKOFF;
                    retry_at = None;
                    None
                }
                Err(e) => {
                    tracing::warn!(lookupd = %address, error = %e, "LOOKUP: cannot connect");
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(PING_INTERVAL);
                    None
                }
            },
            // Commands while disconnected are dropped: the next connect announces everything.
            Wake::Message(Some(PeerMessage::Command(command))) => match connection.as_mut() {
                Some(c) => c
                    .exchange(std::slice::from_ref(&command), context.max_body_size)
                    .await
                    .err(),
                None => None,
            },
            Wake::Message(Some(PeerMessage::Resync)) => Some(PeerError::Resync),
            Wake::Ping => match connection.as_mut() {
                Some(c) => c
                    .exchange(&[Command::ping()], context.max_body_size)
                    .await
                    .err(),
                None => None,
            },
            Wake::Closed => Some(PeerError::Closed),
        };
        if let Some(error) = failure {
            if connection.take().is_some() {
                tracing::info!(lookupd = %address, %error, "LOOKUP: connection dropped; reconnecting");
            }
            // A dropped connection is retried at once (lookupd restarts are quick); repeated
            // failures back off.
            retry_at = Some(Instant::now());
        }
    }
    context.forget_http_address(&address);
}
