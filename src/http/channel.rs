//! `POST /channel/create`, `/channel/delete`, `/channel/pause`, `/channel/unpause`. Each takes
//! `topic` and `channel`; the topic must exist (404 `TOPIC_NOT_FOUND`).

use std::sync::Arc;

use axum::extract::RawQuery;
use axum::response::Response;

use super::params::Params;
use super::response::{v1, ApiError, ApiResult, Reply};
use super::{broker_error, State};
use crate::broker::Topic;

fn existing_topic(state: &State, params: &Params) -> Result<(Arc<Topic>, String), ApiError> {
    let (topic, channel) = params.topic_and_channel()?;
    let topic = state
        .broker
        .get_existing_topic(topic)
        .ok_or_else(|| ApiError::new(404, "TOPIC_NOT_FOUND"))?;
    Ok((topic, channel.to_string()))
}

/// Creates the channel on an existing topic.
pub async fn create(state: State, RawQuery(query): RawQuery) -> Response {
    v1(async {
        let (topic, channel) = existing_topic(&state, &Params::parse(query.as_deref()))?;
        state
            .broker
            .get_or_create_channel(&topic, &channel)
            .await
            .map_err(broker_error)?;
        Ok(Reply::Empty)
    }
    .await)
}

/// Deletes the channel (`CHANNEL_NOT_FOUND`).
pub async fn delete(state: State, RawQuery(query): RawQuery) -> Response {
    v1(async {
        let (topic, channel) = existing_topic(&state, &Params::parse(query.as_deref()))?;
        state
            .broker
            .delete_channel(&topic, &channel)
            .await
            .map_err(broker_error)?;
        Ok(Reply::Empty)
    }
    .await)
}

/// Drops the channel's queued, in-flight and deferred messages (`CHANNEL_NOT_FOUND`).
pub async fn empty(state: State, RawQuery(query): RawQuery) -> Response {
    v1(async {
        let (topic, channel) = existing_topic(&state, &Params::parse(query.as_deref()))?;
        let channel = topic
            .get_existing_channel(&channel)
            .ok_or_else(|| ApiError::new(404, "CHANNEL_NOT_FOUND"))?;
        channel.empty();
        Ok(Reply::Empty)
    }
    .await)
}

/// Pauses delivery from the channel.
pub async fn pause(state: State, RawQuery(query): RawQuery) -> Response {
    v1(set_paused(state, query, true).await)
}

/// Resumes delivery from the channel.
pub async fn unpause(state: State, RawQuery(query): RawQuery) -> Response {
    v1(set_paused(state, query, false).await)
}

async fn set_paused(state: State, query: Option<String>, paused: bool) -> ApiResult {
    let (topic, channel) = existing_topic(&state, &Params::parse(query.as_deref()))?;
    let channel = topic
        .get_existing_channel(&channel)
        .ok_or_else(|| ApiError::new(404, "CHANNEL_NOT_FOUND"))?;
    state
        .broker
        .set_channel_paused(&topic, &channel, paused)
        .await
        .map_err(broker_error)?;
    Ok(Reply::Empty)
}
