//! The nsqd daemon: takes the data-path lock, opens (and if needed bootstraps) the metadata
//! store, replays it into the broker, then serves.
//!
//! Start-up order: the AUTH client and the TLS configuration (their files read, so that a bad
//! one fails before anything else) → lock → store → first-boot import → loader → `nsqd.dat` rewrite → listeners and
//! background tasks.
//! The first-boot import is in `first_boot`, the `nsqd.dat` rewrites in `dat_keeper`.
//!
//! Shutdown order (see [`Nsqd::shutdown`]), on SIGTERM or SIGINT:
//! 1. the TCP, HTTP and HTTPS listeners stop accepting;
//! 2. the broker refuses new metadata changes (they fail with `Exiting`: HTTP 503 `EXITING`,
//!    on TCP the command's `E_*_FAILED`) and waits for the changes already running to finish
//!    (persisted and applied, or failed), including any whose caller hung up;
//! 3. each TCP connection finishes the command it is running, then closes; its in-flight
//!    messages go back to their channel's queue; HTTP requests in progress finish;
//! 4. the lookup loop closes its lookupd connections; the statsd push (when configured) sends
//!    what it was sending and stops; the `nsqd.dat` keeper writes the file a last time (every
//!    change is in it: none runs any more) and stops;
//! 5. every topic log is fsynced and every channel's cursor saved exactly (queued, in-flight
//!    and deferred messages, deferred ones with their due time), then every topic flusher and
//!    channel timer stops;
//! 6. the store is flushed and closed, and the data-path lock released.

mod dat_keeper;
mod first_boot;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::AuthClient;
use crate::broker::{Broker, BrokerConfig};
use crate::config::{LiveOptions, NsqdOptions, TlsRequired};
use crate::data_lock::{DataLock, Holder, LockError};
use crate::guid::{self, GuidFactory};
use crate::http::{self, HttpState};
use crate::loader::{self, LoadError, LoadReport};
use crate::lookup::{self, LookupChannelSource, LookupContext};
use crate::lookup_wire::PeerInfo;
use crate::meta_store::{self, MetaStore, OpenError, StoreError};
use crate::nsqd_dat::{self, DatError};
use crate::options;
use crate::queue::LogSettings;
use crate::statsd;
use crate::tcp::{self, TcpContext};
use crate::tls::{TlsError, TlsServer};

/// Why the daemon could not start. Nothing it had started is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot import Go nsqd metadata: {0} (fix or remove the file; rnsq never starts without the metadata it was given)")]
    Import(#[from] DatError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {what} address {address}: {reason}")]
    Listen {
        what: &'static str,
        address: String,
        reason: String,
    },
    #[error("start-up task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Auth(#[from] crate::auth::ClientBuildError),
}

/// A running daemon.
pub struct Nsqd {
    broker: Arc<Broker>,
    http_address: SocketAddr,
    https_address: Option<SocketAddr>,
    tcp_address: SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    lock: DataLock,
    load_report: LoadReport,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StartError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StartError::Task(e.to_string()))
}

/// The auth servers' client when `--auth-http-address` is given (built off the async threads:
/// it reads the root certificates).
async fn auth_client(opts: &NsqdOptions) -> Result<Option<Arc<AuthClient>>, StartError> {
    let auth = opts.auth.clone();
    if auth.http_addresses.is_empty() {
        return Ok(None);
    }
    // An https auth server is checked against --tls-root-ca-file when given (Go's
    // buildClientTLSConfig), else against the system's roots.
    let root_ca: Option<std::path::PathBuf> = opts.tls.root_ca_file.clone();
    let client = blocking(move || {
        AuthClient::new(
            &auth.http_addresses,
            auth.http_client_connect_timeout,
            auth.http_client_request_timeout,
            root_ca.as_deref(),
        )
    })
    .await??;
    Ok(Some(Arc::new(client)))
}

async fn bind(what: &'static str, address: &str) -> Result<TcpListener, StartError> {
    let fail = |reason: String| StartError::Listen {
        what,
        address: address.into(),
        reason,
    };
    let socket_address = options::listen_address(address).map_err(fail)?;
    crate::listen::bind(socket_address)
        .await
        .map_err(|e| fail(e.to_string()))
}

fn nonzero_or(port: u16, bound: u16) -> u16 {
    if port == 0 {
        bound
    } else {
        port
    }
}

impl Nsqd {
    /// Starts the daemon with `options`; returns once it is serving.
    ///
    /// # Errors
    /// A [`StartError`] saying which step failed and why.
    pub async fn start(options: Arc<LiveOptions>) -> Result<Nsqd, StartError> {
        let opts: Arc<NsqdOptions> = options.get();
        for note in opts.compat.no_effect() {
            tracing::info!("{note}");
        }
        let data_path = opts.data_path.clone();
        let auth = auth_client(&opts).await?;
        let tls = blocking({
            let tls = opts.tls.clone();
            move || TlsServer::from_options(&tls)
        })
        .await??
        .map(Arc::new);
        let lock = blocking({
            let data_path = data_path.clone();
            move || DataLock::acquire(&data_path)
        })
        .await??;

        let (store, guids) = blocking({
            let data_path = data_path.clone();
            let node_id = opts.node_id;
            move || -> Result<(MetaStore, GuidFactory), StartError> {
                let removed = nsqd_dat::remove_stray_temps(&data_path).unwrap_or(0);
                if removed > 0 {
                    tracing::info!(removed, "removed stray nsqd.dat temp files");
                }
                let store = MetaStore::open(&data_path.join(meta_store::STORE_DIR))?;
                first_boot::bootstrap(&store, &data_path, node_id)?;
                let guids = GuidFactory::resume(node_id, &data_path.join(guid::lease::LEASE_FILE));
                Ok((store, guids))
            }
        })
        .await??;
        let broker = Broker::with_guids(
            Arc::new(store),
            BrokerConfig {
                queue_root: Some(data_path.join(crate::queue::QUEUES_DIR)),
                log: LogSettings {
                    mem_queue_size: usize::try_from(opts.mem_queue_size).unwrap_or(0),
                    max_bytes_per_file: u64::try_from(opts.max_bytes_per_file).unwrap_or(1),
                    sync_every: u64::try_from(opts.sync_every).unwrap_or(1),
                    sync_timeout: opts.sync_timeout,
                    durable: opts.durable,
                    sync_on_open: lock.after_crash(),
                },
                node_id: opts.node_id,
                e2e_percentiles: opts.e2e_processing_latency_percentiles.clone(),
                e2e_window: opts.e2e_processing_latency_window_time,
                max_defer: opts.max_req_timeout,
            },
            guids,
        );
        let load_report = loader::load(&broker).await?;
        // The store is the truth: whatever nsqd.dat held (stale, corrupt, Go's) is replaced.
        if let Err(e) = dat_keeper::write_now(broker.store().clone(), data_path.clone()).await {
            tracing::error!(error = %e, "cannot write nsqd.dat");
        }

        let tcp_listener = bind("TCP", &opts.tcp_address).await?;
        let http_listener = bind("HTTP", &opts.http_address).await?;
        let tcp_address = tcp_listener
            .local_addr()
            .map_err(|e| StartError::Task(e.to_string()))?;
        let http_address = http_listener
            .local_addr()
            .map_err(|e| StartError::Task(e.to_string()))?;
        // Go listens for HTTPS whenever it has a certificate and an HTTPS address.
        let https_listener = match &tls {
            Some(tls) if !opts.tls.https_address.is_empty() => {
                let listener = bind("HTTPS", &opts.tls.https_address).await?;
                let address = listener
                    .local_addr()
                    .map_err(|e| StartError::Task(e.to_string()))?;
                Some((listener, address, tls.clone()))
            }
            _ => None,
        };
        let https_address = https_listener.as_ref().map(|(_, address, _)| *address);
        let holder = Holder {
            pid: std::process::id(),
            http_address: Some(http_address),
            tcp_address: Some(tcp_address),
        };
        if let Err(e) = lock.set_holder(&holder) {
            tracing::warn!(error = %e, "cannot record the data-path holder");
        }

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let state = Arc::new(HttpState {
            broker: broker.clone(),
            options,
            start_time: http::StartTime::now(),
            tcp_address,
            http_address,
        });
        // Boot replay is over: the lookup loop's first connects announce everything.
        let lookup_context = LookupContext::new(
            broker.clone(),
            PeerInfo {
                broadcast_address: opts.broadcast_address.clone(),
                hostname: options::hostname(),
                tcp_port: nonzero_or(opts.broadcast_tcp_port, tcp_address.port()),
                http_port: nonzero_or(opts.broadcast_http_port, http_address.port()),
                version: crate::NSQ_VERSION.into(),
            },
            usize::try_from(opts.max_body_size).unwrap_or(usize::MAX),
        );
        broker.set_channel_source(Arc::new(LookupChannelSource::new(lookup_context.clone())));
        if let Some(config) = statsd::StatsdConfig::from_options(
            &opts.statsd,
            &opts.broadcast_address,
            nonzero_or(opts.broadcast_http_port, http_address.port()),
        ) {
            tracing::info!(address = %config.address, prefix = %config.prefix, "pushing stats to statsd");
            tasks.spawn(statsd::run(broker.clone(), config, shutdown.clone()));
        }
        tasks.spawn(lookup::run(
            lookup_context,
            state.options.clone(),
            shutdown.clone(),
        ));
        let mut tcp_context =
            TcpContext::new(broker.clone(), state.options.clone()).with_auth(auth);
        tcp_context.tls = tls;
        let tcp_context = Arc::new(tcp_context);
        tasks.spawn(tcp::serve(tcp_listener, tcp_context, shutdown.clone()));
        tasks.spawn(dat_keeper::run(
            broker.clone(),
            data_path.clone(),
            shutdown.clone(),
        ));
        let router = http::router(state);
        if let Some((listener, address, tls)) = https_listener {
            tracing::info!(%address, "HTTPS listening");
            tasks.spawn(http::https::serve(
                listener,
                tls,
                router.clone(),
                shutdown.clone(),
            ));
        }
        let plain_router = match opts.tls.required {
            TlsRequired::Required => {
                http::https::tls_required(https_address.map_or(0, |a| a.port()))
            }
            TlsRequired::NotRequired | TlsRequired::ExceptHttp => router,
        };
        tasks.spawn(http::serve(http_listener, plain_router, shutdown.clone()));

        tasks.close();
        // Serving: the topic logs boot left closed now open in the background.
        broker.warm_up_queues();
        tracing::info!(%tcp_address, %http_address, data_path = %data_path.display(), "nsqd started");
        Ok(Nsqd {
            broker,
            http_address,
            https_address,
            tcp_address,
            shutdown,
            tasks,
            lock,
            load_report,
        })
    }

    /// The bound HTTP address.
    pub fn http_address(&self) -> SocketAddr {
        self.http_address
    }

    /// The bound HTTPS address; `None` when HTTPS is not served (no certificate, or an empty
    /// `--https-address`).
    pub fn https_address(&self) -> Option<SocketAddr> {
        self.https_address
    }

    /// The bound TCP address.
    pub fn tcp_address(&self) -> SocketAddr {
        self.tcp_address
    }

    /// What boot replay restored, and how long it took.
    pub fn load_report(&self) -> &LoadReport {
        &self.load_report
    }

    /// The broker, for in-process callers.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// A token that stops the daemon when cancelled (then call [`Nsqd::shutdown`]).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the daemon in the order the module docs give: listeners, metadata changes (new
    /// ones refused, running ones waited for), connections and requests, background tasks
    /// (with a last `nsqd.dat` write), queues saved; then the store is flushed and the
    /// data-path lock released.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.broker.stop_changes().await;
        self.tasks.wait().await;
        // No client is left: every in-flight message is back in its channel.
        self.broker.save_queues().await;
        self.broker.close().await;
        let store = self.broker.store().clone();
        drop(self.broker);
        match tokio::task::spawn_blocking(move || store.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot flush the metadata store"),
            Err(e) => tracing::error!(error = %e, "store close task failed"),
        }
        tracing::info!(data_path = %self.lock.path().display(), "nsqd stopped");
        drop(self.lock);
    }
}
