//! Query parameters read as Go's `url.ParseQuery` and `http_api.ReqParams` read them: a
//! malformed query (a bad `%` escape, a `;`) is 400 `INVALID_REQUEST`, a key is "missing" only
//! when absent (`?topic=` is present and empty), and the first value wins.

use super::response::ApiError;
use crate::names;

/// The parsed query string of one request.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query (`None`: no query string); 400 `INVALID_REQUEST` when Go's parser
    /// would fail.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let invalid = || ApiError::new(400, "INVALID_REQUEST");
        let mut pairs = Vec::new();
        for part in raw.unwrap_or_default().split('&') {
            if part.is_empty() {
                continue;
            }
            if part.contains(';') {
                return Err(invalid());
            }
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((
                unescape(key).ok_or_else(invalid)?,
                unescape(value).ok_or_else(invalid)?,
            ));
        }
        Ok(Params(pairs))
    }

    /// The first value of `key`, or `None` when the key is absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key`, present, else 400 with `missing` as the message.
    pub fn require(&self, key: &str, missing: &'static str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| ApiError::new(400, missing))
    }

    /// `topic` and `channel`, present and valid, as Go's `GetTopicChannelArgs` reads them: 400
    /// `MISSING_ARG_TOPIC`, `INVALID_ARG_TOPIC`, `MISSING_ARG_CHANNEL`, `INVALID_ARG_CHANNEL`.
    pub fn topic_and_channel(&self) -> Result<(&str, &str), ApiError> {
        let topic = self.require("topic", "MISSING_ARG_TOPIC")?;
        if !names::is_valid_topic_name(topic) {
            return Err(ApiError::new(400, "INVALID_ARG_TOPIC"));
        }
        let channel = self.require("channel", "MISSING_ARG_CHANNEL")?;
        if !names::is_valid_channel_name(channel) {
            return Err(ApiError::new(400, "INVALID_ARG_CHANNEL"));
        }
        Ok((topic, channel))
    }
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; `None` for a malformed escape.
fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_go() {
        let p = Params::parse(Some("topic=a%2Eb&topic=x&empty=&bare&sp=a+b")).unwrap();
        assert_eq!(p.get("topic"), Some("a.b"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.get("bare"), Some(""));
        assert_eq!(p.get("sp"), Some("a b"));
        assert_eq!(p.get("nope"), None);
        assert!(Params::parse(None).unwrap().get("topic").is_none());
        for bad in ["topic=%zz", "topic=%4", "a=1;b=2", "%=1"] {
            assert!(Params::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_and_channel_errors() {
        let message = |q: &str| {
            Params::parse(Some(q))
                .unwrap()
                .topic_and_channel()
                .unwrap_err()
                .message
        };
        assert_eq!(message("channel=c"), "MISSING_ARG_TOPIC");
        assert_eq!(message("topic=a!"), "INVALID_ARG_TOPIC");
        assert_eq!(message("topic=t"), "MISSING_ARG_CHANNEL");
        assert_eq!(message("topic=t&channel="), "INVALID_ARG_CHANNEL");
    }
}
