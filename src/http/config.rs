//! `GET /config/:opt` (any option, by its config-file name) and `PUT /config/:opt` for the two
//! options nsqd lets change at runtime: `nsqlookupd_tcp_addresses` (a JSON array of
//! `host:port`) and `log_level` (a bare level name).

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::Response;

use super::response::{v1, ApiError, ApiResult, Reply};
use super::State;
use crate::options::{validate_host_port, LogLevel};

/// The option's current value, as JSON (400 `INVALID_OPTION` for an unknown name).
pub async fn get_option(state: State, Path(opt): Path<String>) -> Response {
    v1(current(&state, &opt))
}

fn current(state: &State, opt: &str) -> ApiResult {
    state
        .options
        .get()
        .get_by_cfg_name(opt)
        .map(Reply::Json)
        .ok_or_else(|| ApiError::new(400, "INVALID_OPTION"))
}

/// Sets the option and answers its new value. An empty or oversized body is 413
/// `INVALID_VALUE` (as in Go), a bad value 400 `INVALID_VALUE`, another option 400
/// `INVALID_OPTION`.
pub async fn put_option(state: State, Path(opt): Path<String>, body: Bytes) -> Response {
    v1(set(&state, &opt, &body))
}

fn set(state: &State, opt: &str, body: &[u8]) -> ApiResult {
    let limit = state.options.get().max_msg_size;
    match parse_value(opt, body, limit)? {
        OptionChange::LookupdTcpAddresses(addresses) => {
            state
                .options
                .update(|o| o.nsqlookupd_tcp_addresses = addresses);
        }
        OptionChange::LogLevel(level) => {
            state.options.update(|o| o.log_level = level);
        }
    }
    current(state, opt)
}

/// A change `PUT /config/:opt` may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionChange {
    /// `nsqlookupd_tcp_addresses`: each a valid `host:port`.
    LookupdTcpAddresses(Vec<String>),
    LogLevel(LogLevel),
}

/// Reads a `PUT /config/:opt` body for `opt`, as Go does: an empty body or one over `limit`
/// bytes is 413 `INVALID_VALUE`, a bad value 400 `INVALID_VALUE`, an option that cannot be
/// changed at runtime 400 `INVALID_OPTION`.
pub fn parse_value(opt: &str, body: &[u8], limit: i64) -> Result<OptionChange, ApiError> {
    if body.is_empty() || body.len() as i64 > limit {
        return Err(ApiError::new(413, "INVALID_VALUE"));
    }
    let invalid = || ApiError::new(400, "INVALID_VALUE");
    match opt {
        "nsqlookupd_tcp_addresses" => {
            let addresses: Vec<String> = serde_json::from_slice(body).map_err(|_| invalid())?;
            if addresses.iter().any(|a| validate_host_port(a).is_err()) {
                return Err(invalid());
            }
            Ok(OptionChange::LookupdTcpAddresses(addresses))
        }
        "log_level" => {
            let text = std::str::from_utf8(body).map_err(|_| invalid())?;
            let level: LogLevel = text.parse().map_err(|_| invalid())?;
            Ok(OptionChange::LogLevel(level))
        }
        _ => Err(ApiError::new(400, "INVALID_OPTION")),
    }
}
