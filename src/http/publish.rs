//! `POST /pub` (one message, optional `defer` in ms) and `POST /mpub` (newline-separated, or
//! `binary=true` for `[4-byte count]([4-byte size][bytes])*`), with Go nsqd's limits and codes.
//!
//! A body is refused (413) by its `Content-Length` before any of it is read, or as soon as
//! more than the limit has come; one that has not all come within
//! [`BODY_READ_TIMEOUT`] is answered 500 `INTERNAL_ERROR`, Go's reply to a failed body read
//! (Go itself waits for ever).

use axum::body::{Body, Bytes};
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::BytesMut;
use futures_util::StreamExt;

use super::params::{parse_bool, Params};
use super::response::{v1, ApiError, ApiResult, Reply};
use super::{broker_error, State};
use crate::cmd::split_messages;
use crate::http_serve::BODY_READ_TIMEOUT;
use crate::message::Message;

fn content_length(headers: &HeaderMap) -> Option<i64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Why a request body could not be had.
#[derive(Debug)]
enum BodyError {
    /// More than the limit came: 413 with the route's code.
    TooBig,
    /// The body did not arrive within [`BODY_READ_TIMEOUT`], or its read failed: Go's answer
    /// to a failed body read, 500 `INTERNAL_ERROR`.
    Unread,
}

impl BodyError {
    fn reply(self, too_big: &'static str) -> ApiError {
        match self {
            BodyError::TooBig => ApiError::new(413, too_big),
            BodyError::Unread => ApiError::new(500, "INTERNAL_ERROR"),
        }
    }
}

/// Reads the body, at most `limit` bytes of it, within [`BODY_READ_TIMEOUT`] of the call.
/// Fails as soon as the limit is passed, so no more than `limit` (plus one chunk) is ever
/// buffered; a body in one chunk is not copied.
async fn read_limited(body: Body, limit: i64) -> Result<Bytes, BodyError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let read = async {
        let mut chunks = body.into_data_stream();
        let mut first: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| BodyError::Unread)?;
            let have = first.as_ref().map_or(0, Bytes::len) + joined.len();
            if have + chunk.len() > limit {
                return Err(BodyError::TooBig);
            }
            match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                held => {
                    if let Some(held) = held {
                        joined.extend_from_slice(&held);
                    }
                    joined.extend_from_slice(&chunk);
                }
            }
        }
        Ok(first.unwrap_or_else(|| joined.freeze()))
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .unwrap_or(Err(BodyError::Unread))
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
            .map_err(|e| e.reply("MSG_TOO_BIG"))?;
        let max_defer = state.options.get().max_req_timeout.as_millis() as i64;
        let (topic, deferred_ms) = pub_request(query.as_deref(), &body, max_defer)?;
        let mut message = Message::new(state.broker.next_id(), body);
        message.deferred_ms = deferred_ms;
        put(&state, &topic, vec![message]).await
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
        let binary = is_binary(&params);
        let body = read_limited(body, opts.max_body_size)
            .await
            .map_err(|e| e.reply("BODY_TOO_BIG"))?;
        let bodies = mpub_bodies(body, binary, opts.max_msg_size)?;
        let messages = bodies
            .into_iter()
            .map(|b| Message::new(state.broker.next_id(), b))
            .collect();
        put(&state, topic, messages).await
    }
    .await)
}

/// Reads `/pub`'s query and (size-checked) body as Go does: an empty body is 400
/// `MSG_EMPTY`, then the topic (400 `MISSING_ARG_TOPIC` / `INVALID_TOPIC`), then `defer` in
/// milliseconds, 0..=`max_defer_ms` (else 400 `INVALID_DEFER`). Returns the topic and the
/// delay (0 without `defer`).
pub fn pub_request(
    query: Option<&str>,
    body: &[u8],
    max_defer_ms: i64,
) -> Result<(String, u32), ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(400, "MSG_EMPTY"));
    }
    let params = Params::parse(query);
    let topic = params.valid_topic()?.to_string();
    let Some(text) = params.get("defer") else {
        return Ok((topic, 0));
    };
    let ms: i64 = text
        .parse()
        .map_err(|_| ApiError::new(400, "INVALID_DEFER"))?;
    if !(0..=max_defer_ms).contains(&ms) {
        return Err(ApiError::new(400, "INVALID_DEFER"));
    }
    let ms = u32::try_from(ms).map_err(|_| ApiError::new(400, "INVALID_DEFER"))?;
    Ok((topic, ms))
}

/// Whether `/mpub`'s body is binary: `binary` present and not `false`/`0` (as in Go, an
/// unrecognised value counts as true).
pub fn is_binary(params: &Params) -> bool {
    params
        .get("binary")
        .is_some_and(|v| parse_bool(v).unwrap_or(true))
}

/// Splits an (already size-checked) `/mpub` body into message bodies, shared with `body`:
/// binary as TCP's MPUB frames them (its `E_*` code becomes the 413 reason, `E_` trimmed), or
/// text, one message per non-empty line (a line over `max_msg_size` is 413 `MSG_TOO_BIG`).
pub fn mpub_bodies(body: Bytes, binary: bool, max_msg_size: i64) -> Result<Vec<Bytes>, ApiError> {
    if binary {
        return split_messages(body, max_msg_size)
            .map_err(|e| ApiError::new(413, e.code.trim_start_matches("E_")));
    }
    let mut bodies = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        if line.len() as i64 > max_msg_size {
            return Err(ApiError::new(413, "MSG_TOO_BIG"));
        }
        bodies.push(body.slice_ref(line));
    }
    Ok(bodies)
}
