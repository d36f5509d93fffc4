//! nsqd's HTTP API, with Go nsqd's paths, methods, status codes and messages.
//!
//! Unknown paths answer 404 `NOT_FOUND`, known paths with the wrong method 405
//! `METHOD_NOT_ALLOWED`. `GET /meta/export` is rnsq's own: `rnsq meta export` uses it to read
//! a consistent snapshot from a running broker. [`https`] serves the same routes over TLS.

mod channel;
pub(crate) mod config;
pub mod https;
mod info;
mod meta;
pub(crate) mod params;
pub(crate) mod publish;
pub(crate) mod response;
mod stats;
mod topic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerError};
use crate::config::LiveOptions;
use response::ApiError;

/// What every handler can see.
pub struct HttpState {
    pub broker: Arc<Broker>,
    pub options: Arc<LiveOptions>,
    pub start_time: StartTime,
    pub tcp_address: SocketAddr,
    pub http_address: SocketAddr,
}

/// When the daemon started: the wall-clock time it reports, and the monotonic instant its
/// uptime counts from (so that a wall clock stepping back or forward leaves uptime true).
#[derive(Debug, Clone, Copy)]
pub struct StartTime {
    pub wall: SystemTime,
    pub at: Instant,
}

impl StartTime {
    /// Now.
    pub fn now() -> Self {
        StartTime {
            wall: SystemTime::now(),
            at: Instant::now(),
        }
    }

    /// Time since the start, on the monotonic clock.
    pub fn uptime(&self) -> Duration {
        self.at.elapsed()
    }
}

type State = axum::extract::State<Arc<HttpState>>;

/// The API's routes.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/ping", get(info::ping))
        .route("/info", get(info::info))
        .route("/stats", get(stats::stats))
        .route("/pub", post(publish::publish))
        .route("/mpub", post(publish::multi_publish))
        .route("/topic/create", post(topic::create))
        .route("/topic/empty", post(topic::empty))
        .route("/channel/empty", post(channel::empty))
        .route("/topic/delete", post(topic::delete))
        .route("/topic/pause", post(topic::pause))
        .route("/topic/unpause", post(topic::unpause))
        .route("/channel/create", post(channel::create))
        .route("/channel/delete", post(channel::delete))
        .route("/channel/pause", post(channel::pause))
        .route("/channel/unpause", post(channel::unpause))
        .route(
            "/config/{opt}",
            get(config::get_option).put(config::put_option),
        )
        .route("/meta/export", get(meta::export))
        .fallback(|| async { response::v1(Err(ApiError::new(404, "NOT_FOUND"))) })
        .method_not_allowed_fallback(|| async {
            response::v1(Err(ApiError::new(405, "METHOD_NOT_ALLOWED")))
        })
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled; requests in progress finish.
/// Slow clients are bounded as [`crate::http_serve`] says.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    crate::http_serve::serve(listener, router, shutdown).await
}

/// Maps a broker failure to Go's reply for it.
fn broker_error(error: BrokerError) -> ApiError {
    match error {
        BrokerError::InvalidTopic(_) => ApiError::new(400, "INVALID_TOPIC"),
        BrokerError::InvalidChannel(_) => ApiError::new(400, "INVALID_ARG_CHANNEL"),
        BrokerError::TopicNotFound(_) => ApiError::new(404, "TOPIC_NOT_FOUND"),
        BrokerError::ChannelNotFound(_) => ApiError::new(404, "CHANNEL_NOT_FOUND"),
        BrokerError::Exiting => ApiError::new(503, "EXITING"),
        other @ (BrokerError::Store(_) | BrokerError::NotLoading) => ApiError::internal(other),
    }
}
