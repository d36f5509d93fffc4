//! `POST /pub` (one message, optional `defer` in ms) and `POST /mpub` (newline-separated, or
//! `binary=true` for `[4-byte count]([4-byte size][bytes])*`), with Go nsqd's limits and codes.

use axum::body::{Body, Bytes};
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;

use super::params::{parse_bool, Params};
use super::response::{v1, ApiError, ApiResult, Reply};
use super::{broker_error, State};
use crate::cmd::split_messages;
use crate::message::Message;

fn content_length(headers: &HeaderMap) -> Option<i64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads at most `limit` bytes; `Err(())` when there were more (or the read failed).
async fn read_limited(body: Body, limit: i64) -> Result<Bytes, ()> {
    axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| ())
}

async fn put(state: &State, topic: &str, messages: Vec<Message>) -> ApiResult {
    let topic = state
        .broker
        .get_or_create_topic(topic)
        .await
        .map_err(|e| match e {
            crate::broker::BrokerError::Store(_) => broker_error(e),
            _ => ApiError::new(503, "EXITING"),
        })?;
    // Go answers 503 EXITING when a topic cannot take a message; the reason says why.
    topic.publish(messages).await.map_err(|e| ApiError {
        reason: Some(e.to_string()),
        ..ApiError::new(503, "EXITING")
    })?;
    Ok(Reply::Text("OK".into()))
}

/// One message.
pub async fn publish(
    state: State,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    v1(async {
        let max = state.options.get().max_msg_size;
        if content_length(&headers).is_some_and(|n| n > max) {
            return Err(ApiError::new(413, "MSG_TOO_BIG"));
        }
        let body = read_limited(body, max)
            .await
            .map_err(|()| ApiError::new(413, "MSG_TOO_BIG"))?;
        if body.is_empty() {
            return Err(ApiError::new(400, "MSG_EMPTY"));
        }
        let params = Params::parse(query.as_deref());
        let topic = params.valid_topic()?;
        let mut message = Message::new(state.broker.next_id(), body);
        if let Some(text) = params.get("defer") {
            let ms: i64 = text
                .parse()
                .map_err(|_| ApiError::new(400, "INVALID_DEFER"))?;
            let max_defer = state.options.get().max_req_timeout.as_millis() as i64;
            if !(0..=max_defer).contains(&ms) {
                return Err(ApiError::new(400, "INVALID_DEFER"));
            }
            message.deferred_ms =
                u32::try_from(ms).map_err(|_| ApiError::new(400, "INVALID_DEFER"))?;
        }
        put(&state, topic, vec![message]).await
    }
    .await)
}

/// Several messages, all or none.
pub async fn multi_publish(
    state: State,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    v1(async {
        let opts = state.options.get();
        if content_length(&headers).is_some_and(|n| n > opts.max_body_size) {
            return Err(ApiError::new(413, "BODY_TOO_BIG"));
        }
        let params = Params::parse(query.as_deref());
        let topic = params.valid_topic()?;
        // As in Go, an unrecognised value of `binary` counts as true.
        let binary = params
            .get("binary")
            .is_some_and(|v| parse_bool(v).unwrap_or(true));
        let body = read_limited(body, opts.max_body_size)
            .await
            .map_err(|()| ApiError::new(413, "BODY_TOO_BIG"))?;
        let bodies = if binary {
            split_messages(body, opts.max_msg_size)
                .map_err(|e| ApiError::new(413, e.code.trim_start_matches("E_")))?
        } else {
            let mut bodies = Vec::new();
            for line in body.split(|b| *b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                if line.len() as i64 > opts.max_msg_size {
                    return Err(ApiError::new(413, "MSG_TOO_BIG"));
                }
                bodies.push(body.slice_ref(line));
            }
            bodies
        };
        let messages = bodies
            .into_iter()
            .map(|b| Message::new(state.broker.next_id(), b))
            .collect();
        put(&state, topic, messages).await
    }
    .await)
}
