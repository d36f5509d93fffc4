//! The nsqlookupd daemon: the registry nsqd nodes announce their topics and channels to (TCP,
//! protocol V1) and consumers discover producers from (HTTP). Everything is in memory; a
//! restart starts empty, and each nsqd re-announces itself when it reconnects.
//!
//! Shutdown order (see [`Nsqlookupd::shutdown`]), on SIGTERM or SIGINT:
//! 1. the TCP and HTTP listeners stop accepting;
//! 2. each TCP connection closes at its next wait for input or output (a command changes the
//!    registration DB without waiting, so none is left half done), and its peer leaves every
//!    registration; HTTP requests in progress finish.

pub(crate) mod cmd;
pub mod config;
mod http;
pub mod registration_db;
pub(crate) mod tcp;

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{NsqlookupdArgs, NsqlookupdOptions};
use registration_db::RegistrationDb;

/// Why the daemon could not start. Nothing it had started is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {what} address {address}: {reason}")]
    Listen {
        what: &'static str,
        address: String,
        reason: String,
    },
}

/// What the TCP and HTTP servers share.
pub struct LookupdState {
    db: RwLock<RegistrationDb>,
    pub options: NsqlookupdOptions,
    pub tcp_address: SocketAddr,
    pub http_address: SocketAddr,
    /// This machine's host name, reported in IDENTIFY replies.
    pub hostname: String,
}

impl LookupdState {
    /// State with an empty registration DB, for a daemon bound to these addresses.
    pub fn new(
        options: NsqlookupdOptions,
        tcp_address: SocketAddr,
        http_address: SocketAddr,
        hostname: String,
    ) -> Self {
        LookupdState {
            db: RwLock::new(RegistrationDb::new()),
            options,
            tcp_address,
            http_address,
            hostname,
        }
    }

    /// The registration DB, for reading. A panic while it was held leaves it usable: every
    /// change is a single map operation.
    pub fn db(&self) -> RwLockReadGuard<'_, RegistrationDb> {
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The registration DB, for changing.
    pub fn db_mut(&self) -> RwLockWriteGuard<'_, RegistrationDb> {
        self.db.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running nsqlookupd.
pub struct Nsqlookupd {
    state: Arc<LookupdState>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

async fn bind(what: &'static str, address: &str) -> Result<TcpListener, StartError> {
    let fail = |reason: String| StartError::Listen {
        what,
        address: address.into(),
        reason,
    };
    let socket_address = crate::options::listen_address(address).map_err(fail)?;
    crate::listen::bind(socket_address)
        .await
        .map_err(|e| fail(e.to_string()))
}

impl Nsqlookupd {
    /// Binds both listeners and starts serving; returns once it is serving.
    ///
    /// # Errors
    /// [`StartError::Listen`] when an address is invalid or cannot be bound.
    pub async fn start(options: NsqlookupdOptions) -> Result<Nsqlookupd, StartError> {
        if options.verbose_given {
            tracing::info!("--verbose is deprecated and has no effect (as in nsqlookupd 1.3.0); use --log-level");
        }
        let tcp_listener = bind("TCP", &options.tcp_address).await?;
        let http_listener = bind("HTTP", &options.http_address).await?;
        let local = |what, listener: &TcpListener, address: &str| {
            listener.local_addr().map_err(|e| StartError::Listen {
                what,
                address: address.into(),
                reason: e.to_string(),
            })
        };
        let tcp_address = local("TCP", &tcp_listener, &options.tcp_address)?;
        let http_address = local("HTTP", &http_listener, &options.http_address)?;

        let state = Arc::new(LookupdState::new(
            options,
            tcp_address,
            http_address,
            crate::options::hostname(),
        ));
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(tcp::serve(tcp_listener, state.clone(), shutdown.clone()));
        tasks.spawn(crate::http_serve::serve(
            http_listener,
            http::router(state.clone()),
            shutdown.clone(),
        ));
        tasks.close();
        tracing::info!(
            %tcp_address,
            %http_address,
            version = crate::NSQ_VERSION,
            "nsqlookupd started"
        );
        Ok(Nsqlookupd {
            state,
            shutdown,
            tasks,
        })
    }

    /// The bound TCP address.
    pub fn tcp_address(&self) -> SocketAddr {
        self.state.tcp_address
    }

    /// The bound HTTP address.
    pub fn http_address(&self) -> SocketAddr {
        self.state.http_address
    }

    /// The shared state (registration DB and options), for in-process callers.
    pub fn state(&self) -> &Arc<LookupdState> {
        &self.state
    }

    /// A token that stops the daemon when cancelled (then call [`Nsqlookupd::shutdown`]).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets each connection and request finish what it is doing, and
    /// returns once every task has ended.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.wait().await;
        tracing::info!("nsqlookupd stopped");
    }
}
