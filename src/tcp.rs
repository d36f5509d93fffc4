//! The TCP server for NSQ protocol V2: accepts connections and runs each on its own task until
//! it ends or the server stops.

mod connection;
mod pump;
mod upgrade;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::LiveOptions;

/// What every connection shares.
pub struct TcpContext {
    pub broker: Arc<Broker>,
    pub options: Arc<LiveOptions>,
    /// The TLS server configuration, when the broker has a certificate.
    pub tls: Option<Arc<crate::tls::TlsServer>>,
    /// The auth servers' client; `None`: AUTH is disabled.
    pub auth: Option<Arc<crate::auth::AuthClient>>,
    client_ids: AtomicU64,
}

impl TcpContext {
    pub fn new(broker: Arc<Broker>, options: Arc<LiveOptions>) -> Self {
        TcpContext {
            broker,
            options,
            tls: None,
            auth: None,
            client_ids: AtomicU64::new(0),
        }
    }

    /// Enables AUTH against `auth`'s servers (`None`: disabled).
    pub fn with_auth(mut self, auth: Option<Arc<crate::auth::AuthClient>>) -> Self {
        self.auth = auth;
        self
    }
}

/// Accepts connections until `shutdown`; then each connection finishes the command it is
/// running, its in-flight messages are requeued, and it closes. Returns when all have closed.
pub async fn serve(listener: TcpListener, context: Arc<TcpContext>, shutdown: CancellationToken) {
    let token = shutdown.clone();
    crate::accept::serve(listener, shutdown, move |stream, remote| {
        let id = context
            .client_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        connection::run(context.clone(), stream, remote, id, token.child_token())
    })
    .await
}
