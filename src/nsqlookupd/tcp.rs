//! The TCP server for lookup protocol V1: accepts nsqd connections and runs each on its own
//! task until it ends or the server stops. When a connection ends, its peer leaves every
//! registration (the registrations themselves stay).
//!
//! # What a slow or hostile peer can hold
//! Go nsqlookupd reads with no deadline and no limit. Here every read of a connection goes
//! through one [`ReadDeadline`]: the magic, and then each command (its line and IDENTIFY's
//! body) must arrive within [`READ_DEADLINE`] of the command's start; a line is at most
//! [`MAX_LINE`] bytes and IDENTIFY's body at most
//! [`MAX_IDENTIFY_BODY`](super::cmd::MAX_IDENTIFY_BODY), its buffer growing only as the
//! bytes arrive. A peer that stalls, trickles or sends an endless line is dropped, holding at
//! most the 8 KiB read buffer plus one line or one bounded body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::cmd::{self, Cx, Session};
use super::LookupdState;
use crate::lookup_wire::{put_response, MAGIC_V1};
use crate::read_deadline::{ReadDeadline, Timed};

/// The longest command line accepted; longer ones close the connection. (Go has no limit;
/// the longest valid line is under 200 bytes.)
const MAX_LINE: u64 = 64 * 1024;

/// How long a peer has for the magic and then for each command. An nsqd PINGs every 15 s
/// ([`crate::lookup::PING_INTERVAL`], as Go's), so a live one is never near this: four
/// missed pings, Go nsqd's own 60 s client timeout.
pub const READ_DEADLINE: Duration = Duration::from_secs(60);

/// Accepts connections until `shutdown`; then each connection closes at its next wait for
/// input or output. Returns when all have closed.
pub async fn serve(listener: TcpListener, state: Arc<LookupdState>, shutdown: CancellationToken) {
    let token = shutdown.clone();
    crate::accept::serve(listener, shutdown, move |stream, remote| {
        run(state.clone(), stream, remote, token.clone())
    })
    .await
}

/// Runs one connection to its end, then removes its peer from the registrations.
async fn run(
    state: Arc<LookupdState>,
    stream: TcpStream,
    remote: SocketAddr,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("lookup_client", remote = %remote);
    async move {
        tracing::info!("new client");
        let mut session = Session::new(remote);
        let ended = tokio::select! {
            ended = serve_connection(&state, stream, &mut session) => ended,
            _ = shutdown.cancelled() => Ok(()),
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "connection ended");
        }
        leave(&state, &session);
        tracing::info!("client closed");
    }
    .instrument(span)
    .await
}

async fn serve_connection(
    state: &Arc<LookupdState>,
    stream: TcpStream,
    session: &mut Session,
) -> std::io::Result<()> {
    let mut deadline = ReadDeadline::new();
    deadline.arm(Some(READ_DEADLINE));
    let mut timed = deadline.wrap(stream);
    let mut magic = [0u8; 4];
    timed.read_exact(&mut magic).await?;
    let (mut stream, deadline) = timed.into_parts();
    if &magic != MAGIC_V1 {
        tracing::warn!(magic = %String::from_utf8_lossy(&magic), "bad protocol magic");
        let mut out = Vec::new();
        put_response(&mut out, b"E_BAD_PROTOCOL");
        stream.write_all(&out).await?;
        return Ok(());
    }

    let (read_half, mut write_half) = stream.into_split();
    let mut reader = deadline.wrap(BufReader::new(read_half));
    // One deadline for each command's line and any body the command reads.
    let arm = |reader: &mut Timed<_>| reader.deadline_mut().arm(Some(READ_DEADLINE));
    serve_commands(state, &mut reader, &mut write_half, session, arm).await
}

/// Runs the command loop over a connection's bytes after the magic: each line (at most
/// [`MAX_LINE`] bytes; a longer one, or the end of the stream, ends the loop) is trimmed, split
/// on single spaces and run, and its response written; `arm` runs before each command's line
/// is read (the server arms the command's read deadline there). A command's error is written
/// as the last response, then the loop ends. `Err` only when reading or writing fails (a
/// missed deadline is a `TimedOut` read).
pub(crate) async fn serve_commands<R: AsyncBufRead + Unpin + Send>(
    state: &Arc<LookupdState>,
    reader: &mut R,
    writer: &mut (impl AsyncWrite + Unpin),
    session: &mut Session,
    mut arm: impl FnMut(&mut R),
) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        arm(reader);
        (&mut *reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if line.last() != Some(&b'\n') {
            // The end of the stream (Go drops a last line without its newline), or a line too
            // long to be a command.
            if line.len() as u64 >= MAX_LINE {
                tracing::warn!("command line too long; closing");
            }
            return Ok(());
        }
        let params: Vec<&[u8]> = trim_space(&line).split(|b| *b == b' ').collect();
        let mut cx = Cx {
            state,
            session: &mut *session,
            reader: &mut *reader,
        };
        let mut out = Vec::new();
        match cmd::exec(&mut cx, &params).await {
            Ok(data) => {
                put_response(&mut out, &data);
                writer.write_all(&out).await?;
            }
            Err(error) => {
                tracing::warn!(%error, "client error; closing");
                put_response(&mut out, &error.response_data());
                writer.write_all(&out).await?;
                return Ok(());
            }
        }
    }
}

/// A connection has ended: its peer, if it identified, leaves every registration (the
/// registrations themselves stay).
pub(crate) fn leave(state: &LookupdState, session: &Session) {
    if let Some(peer) = &session.peer {
        for registration in state.db_mut().remove_peer(&peer.info.id) {
            tracing::info!(
                category = registration.category.as_str(),
                key = %registration.key,
                subkey = %registration.subkey,
                "DB: UNREGISTER on disconnect"
            );
        }
    }
}

/// `line` without leading and trailing white space, as Go's `strings.TrimSpace` cuts it.
fn trim_space(line: &[u8]) -> &[u8] {
    match std::str::from_utf8(line) {
        Ok(text) => text.trim().as_bytes(),
        Err(_) => line.trim_ascii(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_as_go() {
        assert_eq!(trim_space(b"  PING \r\n"), b"PING");
        assert_eq!(trim_space("\u{a0}PING\u{85}\n".as_bytes()), b"PING");
        assert_eq!(trim_space(b"\tREGISTER t\xff \n"), b"REGISTER t\xff");
        assert_eq!(trim_space(b"\n"), b"");
    }
}
