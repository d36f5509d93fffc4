//! Go nsqd's HTTP reply conventions: `X-NSQ-Content-Type: nsq; version=1.0` on every API
//! reply, data as text or JSON on 200, and errors as `{"message":"<CODE>"}` with their status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const NSQ_CONTENT_TYPE: &str = "nsq; version=1.0";
const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// A successful reply's body.
pub enum Reply {
    /// An empty body (Go's `nil`).
    Empty,
    Text(String),
    Json(serde_json::Value),
}

/// An error reply: the status, NSQ's code as the message, and for server-side failures the
/// reason, in a field of its own so that the message stays the exact code clients match.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: &'static str,
    pub reason: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, message: &'static str) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
            reason: None,
        }
    }

    /// 500 `INTERNAL_ERROR`, carrying what went wrong.
    pub fn internal(reason: impl ToString) -> Self {
        ApiError {
            reason: Some(reason.to_string()),
            ..ApiError::new(500, "INTERNAL_ERROR")
        }
    }
}

/// What an API handler returns.
pub type ApiResult = Result<Reply, ApiError>;

fn with_headers(status: StatusCode, content_type: Option<&'static str>, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "X-NSQ-Content-Type",
        HeaderValue::from_static(NSQ_CONTENT_TYPE),
    );
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    } else {
        headers.remove(header::CONTENT_TYPE);
    }
    response
}

/// A JSON body sent exactly as given, with Go's headers: for the replies Go formats by hand
/// (`TLS_REQUIRED`), whose spacing differs from its encoder's.
pub(crate) fn raw_json(status: StatusCode, body: String) -> Response {
    with_headers(status, Some(JSON), body.into_bytes())
}

/// Renders a handler's result as Go's `V1` decorator does.
pub fn v1(result: ApiResult) -> Response {
    match result {
        Ok(Reply::Empty) => with_headers(StatusCode::OK, None, Vec::new()),
        Ok(Reply::Text(text)) => with_headers(StatusCode::OK, Some(TEXT), text.into_bytes()),
        Ok(Reply::Json(value)) => with_headers(
            StatusCode::OK,
            Some(JSON),
            serde_json::to_vec(&value).unwrap_or_default(),
        ),
        Err(error) => {
            if let Some(reason) = &error.reason {
                tracing::error!(status = error.status.as_u16(), %reason, "HTTP request failed");
            }
            let mut body = serde_json::json!({ "message": error.message });
            if let Some(reason) = error.reason {
                body["reason"] = serde_json::Value::String(reason);
            }
            with_headers(
                error.status,
                Some(JSON),
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
    }
}

/// Renders as Go's `PlainText` decorator: the text with the status, nothing else.
pub fn plain(status: StatusCode, text: String) -> Response {
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}
