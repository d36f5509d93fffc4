//! nsqd's HTTP API over TLS (`--https-address`), with the certificate and client certificate
//! policy TCP upgrades use, and the plain-HTTP answer when `--tls-required=true` turns plain
//! HTTP away.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::response;
use crate::tls::TlsServer;

/// Serves `router` over TLS on `listener` until `shutdown` is cancelled, as [`super::serve`]
/// does over plain TCP: each connection on a task of its own; on shutdown, handshakes under
/// way are dropped, requests in progress finish, idle connections close; returns when every
/// connection has ended. A failed handshake (a refused client certificate, a timeout, a plain
/// HTTP request) closes that connection only. After the handshake, slow clients are bounded as
/// [`crate::http_serve`] says.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<TlsServer>,
    router: Router,
    shutdown: CancellationToken,
) {
    let token = shutdown.clone();
    crate::accept::serve(listener, shutdown, move |stream, remote| {
        let connection = connection(stream, tls.clone(), router.clone(), token.clone());
        async move {
            if let Err(reason) = connection.await {
                tracing::debug!(%remote, %reason, "HTTPS connection ended");
            }
        }
    })
    .await
}

async fn connection(
    stream: TcpStream,
    tls: Arc<TlsServer>,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let stream = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        accepted = tls.accept(stream) => accepted.map_err(|e| format!("TLS handshake: {e}"))?,
    };
    crate::http_serve::serve_connection(stream, router, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// The plain-HTTP API under `--tls-required=true`: every request, whatever its path or
/// method, answers 403 with Go's hand-written body `{"message": "TLS_REQUIRED", "https_port":
/// N}`, `N` being the HTTPS port bound (0 without HTTPS).
pub fn tls_required(https_port: u16) -> Router {
    let body = format!(r#"{{"message": "TLS_REQUIRED", "https_port": {https_port}}}"#);
    Router::new().fallback(move || {
        let body = body.clone();
        async move { response::raw_json(StatusCode::FORBIDDEN, body) }
    })
}
