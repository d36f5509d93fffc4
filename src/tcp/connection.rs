//! One client connection: the magic, then the command loop, the message pump beside it, and
//! the cleanup when either ends.
//!
//! # What a slow or hostile client can hold
//! Every read goes through one [`ReadDeadline`] for the connection's life. The magic must
//! arrive within [`MAGIC_DEADLINE`]; then each command (its line and every body read after it)
//! within two heartbeat intervals of the start of its line, as Go's `SetReadDeadline` before
//! each command (60 s until IDENTIFY changes the interval; none when the client turns
//! heartbeats off with `-1`, as in Go). A line is at most [`MAX_LINE`] bytes; a body's size
//! is checked against `--max-msg-size` / `--max-body-size` before anything is read, and its
//! buffer grows only as its bytes arrive ([`crate::protocol::read_body`]). So a client that
//! stalls, trickles, or sends an endless line is dropped by its deadline (or at the line
//! limit) holding at most the 16 KiB read buffer plus one line or one bounded body.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{pump, upgrade, TcpContext};
use crate::broker::{ClientInfo, Identity};
use crate::cmd::{self, Cx, Negotiated, Reply};
use crate::protocol::{put_frame, read_line, split_params, FRAME_ERROR, MAGIC_V2};
use crate::read_deadline::{ReadDeadline, Timed};
use crate::session::{Session, Settings};
use crate::transport::{self, Inbound, Sink, Source};

/// How long a new connection may take to send its 4-byte magic. Go nsqd has no deadline
/// here (a silent connection holds a goroutine for ever); this is the allowance a connected
/// client has for its first command anyway, two default heartbeat intervals (Go's 60 s client
/// timeout), so no client Go serves is turned away.
const MAGIC_DEADLINE: Duration = Duration::from_secs(60);

/// Go's default heartbeat interval: half its fixed 60 s client timeout.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// Runs one connection to its end.
pub async fn run(
    context: Arc<TcpContext>,
    stream: TcpStream,
    remote: SocketAddr,
    id: u64,
    exit: CancellationToken,
) {
    let span = tracing::info_span!("client", client = id, remote = %remote);
    async move {
        if let Err(e) = serve(context, stream, remote, id, exit).await {
            tracing::debug!(error = %e, "connection ended");
        }
    }
    .instrument(span)
    .await
}

async fn serve(
    context: Arc<TcpContext>,
    stream: TcpStream,
    remote: SocketAddr,
    id: u64,
    exit: CancellationToken,
) -> std::io::Result<()> {
    let mut deadline = ReadDeadline::new();
    deadline.arm(Some(MAGIC_DEADLINE));
    let mut timed = deadline.wrap(stream);
    let mut magic = [0u8; 4];
    tokio::select! {
        _ = exit.cancelled() => return Ok(()),
        read = timed.read_exact(&mut magic) => read?,
    };
    let (mut stream, deadline) = timed.into_parts();
    if &magic != MAGIC_V2 {
        let mut frame = Vec::new();
        put_frame(&mut frame, FRAME_ERROR, b"E_BAD_PROTOCOL");
        stream.write_all(&frame).await?;
        tracing::info!(magic = %String::from_utf8_lossy(&magic), "bad protocol magic");
        return Ok(());
    }

    let opts = context.options.get();
    // Go's client defaults: heartbeats at half its fixed 60 s client timeout, a 16 KiB
    // buffer, and the buffer timeout of `--output-buffer-timeout`.
    let settings = Settings {
        heartbeat_interval: Some(DEFAULT_HEARTBEAT),
        output_buffer_size: 16 * 1024,
        output_buffer_timeout: Some(opts.output_buffer.timeout),
        msg_timeout: opts.msg_timeout,
        sample_rate: 0,
    };
    // Until IDENTIFY, Go names a client by its remote host.
    let host = remote.ip().to_string();
    let identity = Identity {
        client_id: host.clone(),
        hostname: host,
        ..Identity::default()
    };
    let info = Arc::new(ClientInfo::new(id, remote.to_string(), identity));
    let (read_half, write_half) = stream.into_split();
    let session = Arc::new(Session::new(
        info.clone(),
        settings,
        Sink::Plain(write_half),
        exit.clone(),
    ));
    context.broker.add_client(info.clone());
    // The pump ending ends the connection: a write that failed or missed its deadline (a
    // consumer that does not read) must close it, not leave it open with its messages in
    // flight until each times out.
    let pump = tokio::spawn({
        let session = session.clone();
        async move {
            let result = pump::run(session.clone()).await;
            session.exit.cancel();
            result
        }
    });

    let reader = deadline.wrap(transport::inbound(Source::Plain(read_half)));
    let result = command_loop(&context, &session, reader).await;

    session.exit.cancel();
    if let Ok(Err(e)) = pump.await {
        tracing::debug!(error = %e, "message pump stopped");
    }
    if let Some((topic, channel)) = session.subscription.get() {
        context.broker.remove_consumer(topic, channel, id).await;
    }
    info.in_flight_count.store(0, Ordering::Release);
    context.broker.remove_client(id);
    session.output.lock().await.shutdown().await;
    result
}

async fn command_loop(
    context: &Arc<TcpContext>,
    session: &Arc<Session>,
    mut reader: Timed<Inbound>,
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(128);
    let mut negotiated = Negotiated::default();
    // The options in force, refreshed only when they change (PUT /config), not per command.
    let mut options_changes = context.options.watch();
    let mut options = options_changes.borrow_and_update().clone();
    loop {
        if options_changes.has_changed().unwrap_or(false) {
            options = options_changes.borrow_and_update().clone();
        }
        // One deadline for the whole command: the line here, and every body read the
        // command makes through `reader`.
        let limit = session.settings().heartbeat_interval.map(|i| i * 2);
        reader.deadline_mut().arm(limit);
        let read = tokio::select! {
            _ = session.exit.cancelled() => return Ok(()),
            read = read_line(&mut reader, &mut line) => read,
        };
        match read {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            // The client closed mid-line; Go drops the partial line the same way.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let params = split_params(&line);
        let mut cx = Cx {
            broker: &context.broker,
            options: &options,
            session,
            reader: &mut reader,
            tls_available: context.tls.is_some(),
            transport: negotiated,
            auth: context.auth.as_deref(),
        };
        match cmd::exec(&mut cx, &params).await {
            Ok(Reply::Response(response)) => session.respond(&response).await?,
            Ok(Reply::Nothing) => {}
            Ok(Reply::Upgrade {
                response,
                tls,
                compression,
            }) => {
                let (inbound, deadline) = reader.into_parts();
                let upgraded = upgrade::upgrade(
                    context,
                    session,
                    inbound,
                    &mut negotiated,
                    &response,
                    tls,
                    compression,
                )
                .await;
                reader = match upgraded {
                    Ok(upgraded) => deadline.wrap(upgraded),
                    Err(error) => {
                        tracing::info!(%error, "transport upgrade failed; closing");
                        return Ok(());
                    }
                };
            }
            Err(error) => {
                tracing::debug!(%error, "command failed");
                session.send_error(&error.frame_data()).await?;
                if error.fatal {
                    return Ok(());
                }
            }
        }
    }
}
