//! nsqlookupd's HTTP API, with Go nsqlookupd 1.3.0's paths, methods, status codes, JSON shapes
//! and messages: discovery (`/lookup`, `/topics`, `/channels`, `/nodes`), administration
//! (`/topic/create|delete|tombstone`, `/channel/create|delete`), `/ping`, `/info`, `/debug`.
//!
//! Unknown paths answer 404 `NOT_FOUND`, known paths with the wrong method 405
//! `METHOD_NOT_ALLOWED`. Go's `/debug/pprof` endpoints are not offered.

mod admin;
mod discovery;
mod info;
mod params;
// nsqd's reply conventions serve lookupd's API too.
use crate::http::response;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use super::LookupdState;
use response::ApiError;

type State = axum::extract::State<Arc<LookupdState>>;

/// The API's routes.
pub fn router(state: Arc<LookupdState>) -> Router {
    Router::new()
        .route("/ping", get(info::ping))
        .route("/info", get(info::info))
        .route("/debug", get(info::debug))
        .route("/lookup", get(discovery::lookup))
        .route("/topics", get(discovery::topics))
        .route("/channels", get(discovery::channels))
        .route("/nodes", get(discovery::nodes))
        .route("/topic/create", post(admin::create_topic))
        .route("/topic/delete", post(admin::delete_topic))
        .route("/channel/create", post(admin::create_channel))
        .route("/channel/delete", post(admin::delete_channel))
        .route("/topic/tombstone", post(admin::tombstone_topic_producer))
        .fallback(|| async { response::v1(Err(ApiError::new(404, "NOT_FOUND"))) })
        .method_not_allowed_fallback(|| async {
            response::v1(Err(ApiError::new(405, "METHOD_NOT_ALLOWED")))
        })
        .with_state(state)
}
