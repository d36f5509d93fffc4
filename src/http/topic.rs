//! `POST /topic/create`, `/topic/delete`, `/topic/pause`, `/topic/unpause`.

use axum::extract::RawQuery;
use axum::response::Response;

use super::params::Params;
use super::response::{v1, ApiError, ApiResult, Reply};
use super::{broker_error, State};

/// Creates the topic (`MISSING_ARG_TOPIC`, `INVALID_TOPIC`).
pub async fn create(state: State, RawQuery(query): RawQuery) -> Response {
    v1(async {
        let params = Params::parse(query.as_deref());
        let topic = params.valid_topic()?;
        state
            .broker
            .get_or_create_topic(topic)
            .await
            .map_err(broker_error)?;
        Ok(Reply::Empty)
    }
    .await)
}

/// Deletes the topic and its channels (`MISSING_ARG_TOPIC`, `TOPIC_NOT_FOUND`; as in Go, an
/// invalid name is simply not found).
pub async fn delete(state: State, RawQuery(query): RawQuery) -> Response {
    v1(async {
        let params = Params::parse(query.as_deref());
        let topic = params.topic()?;
        state
            .broker
            .delete_topic(topic)
            .await
            .map_err(broker_error)?;
        Ok(Reply::Empty)
    }
    .await)
}

/// Drops the topic's queued messages (`MISSING_ARG_TOPIC`, `INVALID_TOPIC`, `TOPIC_NOT_FOUND`).
pub async fn empty(state: State, RawQuery(query): RawQuery) -> Response {
    v1(async {
        let params = Params::parse(query.as_deref());
        let topic = params.valid_topic()?;
        let topic = state
            .broker
            .get_existing_topic(topic)
            .ok_or_else(|| ApiError::new(404, "TOPIC_NOT_FOUND"))?;
        topic.empty();
        Ok(Reply::Empty)
    }
    .await)
}

/// Pauses the topic: messages stay queued in it instead of reaching its channels.
pub async fn pause(state: State, RawQuery(query): RawQuery) -> Response {
    v1(set_paused(state, query, true).await)
}

/// Unpauses the topic.
pub async fn unpause(state: State, RawQuery(query): RawQuery) -> Response {
    v1(set_paused(state, query, false).await)
}

async fn set_paused(state: State, query: Option<String>, paused: bool) -> ApiResult {
    let params = Params::parse(query.as_deref());
    let name = params.topic()?;
    let topic = state
        .broker
        .get_existing_topic(name)
        .ok_or_else(|| ApiError::new(404, "TOPIC_NOT_FOUND"))?;
    state
        .broker
        .set_topic_paused(&topic, paused)
        .await
        .map_err(broker_error)?;
    Ok(Reply::Empty)
}
