//! `GET /ping` (health) and `GET /info` (identity and limits).

use std::time::UNIX_EPOCH;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::response::{plain, v1, Reply};
use super::State;
use crate::{options, NSQ_VERSION};

/// `OK` while healthy; 500 `NOK - <reason>` after a metadata change failed to persist (until
/// one succeeds), as Go nsqd answers after a disk error.
pub async fn ping(state: State) -> Response {
    match state.broker.health_problem() {
        None => plain(StatusCode::OK, "OK".into()),
        Some(reason) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("NOK - {reason}")),
    }
}

/// Go nsqd 1.3.0's `/info` object; durations in nanoseconds.
pub async fn info(state: State) -> Response {
    let opts = state.options.get();
    let start = state
        .start_time
        .wall
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    v1(Ok(Reply::Json(json!({
        "version": NSQ_VERSION,
        "broadcast_address": opts.broadcast_address,
        "hostname": options::hostname(),
        "http_port": state.http_address.port(),
        "tcp_port": state.tcp_address.port(),
        "start_time": start,
        "max_heartbeat_interval": opts.max_heartbeat_interval.as_nanos() as u64,
        "max_output_buffer_size": opts.max_output_buffer_size,
        "max_output_buffer_timeout": opts.max_output_buffer_timeout.as_nanos() as u64,
        "max_deflate_level": opts.max_deflate_level,
    }))))
}
