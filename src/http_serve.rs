//! Serving HTTP/1 connections with rnsq's bounds on slow and hostile clients; side-neutral,
//! shared by nsqd's HTTP and HTTPS APIs and nsqlookupd's HTTP API.
//!
//! Go serves these ports with a bare `http.Server`: no header timeout, no idle timeout, so a
//! client that opens a connection and trickles a header (or goes quiet between requests)
//! holds a goroutine for ever. Here a request's header must be complete within
//! [`HEADER_READ_TIMEOUT`] of the moment the connection starts waiting for it, which is both a
//! header read timeout and a bound on an idle keep-alive connection (hyper starts the timer as
//! soon as the previous response is written). A header is held in at most hyper's read buffer
//! (about 400 KiB, and at most 100 header fields; more is a 431). Bodies are the handlers':
//! nsqd's `/pub` and `/mpub` read at most their limit (`--max-msg-size`, `--max-body-size`),
//! refuse a larger `Content-Length` before reading any of it, and give a body
//! [`BODY_READ_TIMEOUT`] to arrive; every other route, and all of nsqlookupd's, never reads
//! a body (hyper takes what has already arrived of an unread body, then closes the
//! connection rather than wait for the rest).

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a request's header may take to arrive, counted from when the connection is ready
/// for it (accepted, or done with the previous response). Go's 60 s client timeout: long
/// enough for any client that means to send, and the longest a silent connection is kept.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a handler that reads a body waits for all of it, counted from when it starts
/// reading: the same 60 s, which is also what a V2 client that keeps the default heartbeat
/// has for a whole MPUB.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` is cancelled, each connection on a task the
/// accept loop owns; then requests in progress finish, idle connections close, and this
/// returns when every connection has ended. A connection's failure (a timeout, a malformed
/// request) ends that connection only.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let token = shutdown.clone();
    crate::accept::serve(listener, shutdown, move |stream, remote| {
        let served = serve_connection(stream, router.clone(), token.clone());
        async move {
            if let Err(error) = served.await {
                tracing::debug!(%remote, %error, "HTTP connection ended");
            }
        }
    })
    .await
}

/// Serves one established connection (plain TCP, or TLS after its handshake) with the bounds
/// above until the client closes it, a bound closes it, or `shutdown` is cancelled (then the
/// request in progress finishes first). Returns why hyper ended it, if not cleanly.
pub async fn serve_connection<I>(
    io: I,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => return served,
        _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    connection.await
}
