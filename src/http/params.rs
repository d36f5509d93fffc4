//! Query parameters read as Go's `url.ParseQuery` and nsqd's `ReqParams` read them: a key is
//! "missing" only when absent (`?topic=` is present and empty), and the first value wins.

use super::response::ApiError;
use crate::names;

/// The parsed query string of one request.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query (`None`: no query string).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Params(pairs)
    }

    /// The first value of `key`, or `None` when the key is absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `topic`, present (else 400 `MISSING_ARG_TOPIC`); not validated.
    pub fn topic(&self) -> Result<&str, ApiError> {
        self.get("topic")
            .ok_or_else(|| ApiError::new(400, "MISSING_ARG_TOPIC"))
    }

    /// `topic`, present and valid (else 400 `MISSING_ARG_TOPIC` / `INVALID_TOPIC`), as the
    /// topic endpoints read it.
    pub fn valid_topic(&self) -> Result<&str, ApiError> {
        let topic = self.topic()?;
        if !names::is_valid_topic_name(topic) {
            return Err(ApiError::new(400, "INVALID_TOPIC"));
        }
        Ok(topic)
    }

    /// `topic` and `channel`, present and valid, as the channel endpoints read them: 400
    /// `MISSING_ARG_TOPIC`, `INVALID_ARG_TOPIC`, `MISSING_ARG_CHANNEL`, `INVALID_ARG_CHANNEL`.
    pub fn topic_and_channel(&self) -> Result<(&str, &str), ApiError> {
        let topic = self.topic()?;
        if !names::is_valid_topic_name(topic) {
            return Err(ApiError::new(400, "INVALID_ARG_TOPIC"));
        }
        let channel = self
            .get("channel")
            .ok_or_else(|| ApiError::new(400, "MISSING_ARG_CHANNEL"))?;
        if !names::is_valid_channel_name(channel) {
            return Err(ApiError::new(400, "INVALID_ARG_CHANNEL"));
        }
        Ok((topic, channel))
    }
}

/// Reads an nsqd bool parameter: `true|1|false|0`; anything else is `None`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}
