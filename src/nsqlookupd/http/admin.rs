//! Administration: `POST /topic/create`, `/topic/delete`, `/channel/create`,
//! `/channel/delete`, `/topic/tombstone`. Each answers 200 with an empty body.

use std::time::Instant;

use axum::extract::RawQuery;
use axum::response::Response;

use super::params::Params;
use super::response::{v1, ApiError, ApiResult, Reply};
use super::State;
use crate::names;
use crate::nsqlookupd::registration_db::{Category, Registration, WILDCARD};

fn handle(query: Option<String>, f: impl FnOnce(&Params) -> ApiResult) -> Response {
    v1(Params::parse(query.as_deref()).and_then(|params| f(&params)))
}

/// Registers the topic, with no producers (400 `MISSING_ARG_TOPIC`, `INVALID_ARG_TOPIC`).
pub async fn create_topic(state: State, RawQuery(query): RawQuery) -> Response {
    handle(query, |params| {
        let topic = params.require("topic", "MISSING_ARG_TOPIC")?;
        if !names::is_valid_topic_name(topic) {
            return Err(ApiError::new(400, "INVALID_ARG_TOPIC"));
        }
        tracing::info!(topic, "DB: adding topic");
        state.db_mut().add_registration(Registration::topic(topic));
        Ok(Reply::Empty)
    })
}

/// Removes the topic's registration and its channels', producers and all
/// (400 `MISSING_ARG_TOPIC`; an unknown topic is no error; `*` removes every topic).
pub async fn delete_topic(state: State, RawQuery(query): RawQuery) -> Response {
    handle(query, |params| {
        let topic = params.require("topic", "MISSING_ARG_TOPIC")?;
        let mut db = state.db_mut();
        for registration in db.find_registrations(Category::Channel, topic, WILDCARD) {
            tracing::info!(
                topic = %registration.key,
                channel = %registration.subkey,
                "DB: removing channel"
            );
            db.remove_registration(&registration);
        }
        for registration in db.find_registrations(Category::Topic, topic, "") {
            tracing::info!(topic = %registration.key, "DB: removing topic");
            db.remove_registration(&registration);
        }
        Ok(Reply::Empty)
    })
}

/// Registers the channel and its topic, with no producers (400 `MISSING_ARG_TOPIC`,
/// `INVALID_ARG_TOPIC`, `MISSING_ARG_CHANNEL`, `INVALID_ARG_CHANNEL`).
pub async fn create_channel(state: State, RawQuery(query): RawQuery) -> Response {
    handle(query, |params| {
        let (topic, channel) = params.topic_and_channel()?;
        tracing::info!(topic, channel, "DB: adding channel");
        let mut db = state.db_mut();
        db.add_registration(Registration::channel(topic, channel));
        db.add_registration(Registration::topic(topic));
        Ok(Reply::Empty)
    })
}

/// Removes the channel's registration (400 as `/channel/create`; 404 `CHANNEL_NOT_FOUND`).
pub async fn delete_channel(state: State, RawQuery(query): RawQuery) -> Response {
    handle(query, |params| {
        let (topic, channel) = params.topic_and_channel()?;
        let mut db = state.db_mut();
        let registrations = db.find_registrations(Category::Channel, topic, channel);
        if registrations.is_empty() {
            return Err(ApiError::new(404, "CHANNEL_NOT_FOUND"));
        }
        tracing::info!(topic, channel, "DB: removing channel");
        for registration in &registrations {
            db.remove_registration(registration);
        }
        Ok(Reply::Empty)
    })
}

/// Hides the producer `node` (`<broadcast_address>:<http_port>`) of the topic from `/lookup`
/// for `--tombstone-lifetime` (400 `MISSING_ARG_TOPIC`, `MISSING_ARG_NODE`; an unknown topic or
/// node is no error).
pub async fn tombstone_topic_producer(state: State, RawQuery(query): RawQuery) -> Response {
    handle(query, |params| {
        let topic = params.require("topic", "MISSING_ARG_TOPIC")?;
        let node = params.require("node", "MISSING_ARG_NODE")?;
        tracing::info!(topic, node, "DB: setting tombstone");
        state
            .db_mut()
            .tombstone_topic_producer(topic, node, Instant::now());
        Ok(Reply::Empty)
    })
}
