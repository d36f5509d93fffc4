//! What an auth server granted: its reply parsed and validated as nsqd 1.3.0 does, and the
//! question every PUB, MPUB, DPUB and SUB asks of it (may this client use this topic and
//! channel?).

use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

/// Why an auth server's reply was refused. The client only ever hears `E_AUTH_FAILED`; this
/// text goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("invalid JSON reply: {0}")]
    Json(#[from] serde_json::Error),
    #[error("reply field `{field}` has the wrong type")]
    FieldType { field: &'static str },
    #[error("unknown permission {0}")]
    UnknownPermission(String),
    #[error("unable to compile {what} {pattern:?} {source}")]
    Regex {
        what: &'static str,
        pattern: String,
        source: Box<regex::Error>,
    },
    #[error("invalid TTL {0} (must be >0)")]
    Ttl(i64),
}

/// One grant: topics matching `topic`, channels matching one of `channels`, for the
/// permissions given. The patterns are unanchored, as Go's `MatchString`.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub topic: Regex,
    pub channels: Vec<Regex>,
    pub subscribe: bool,
    pub publish: bool,
}

impl Authorization {
    /// Whether this grant covers `topic` and `channel`. An empty `channel` asks for publish
    /// (and, as in Go, still needs a channel pattern that matches the empty string, e.g.
    /// `.*`); any other asks for subscribe.
    pub fn is_allowed(&self, topic: &str, channel: &str) -> bool {
        let permitted = if channel.is_empty() {
            self.publish
        } else {
            self.subscribe
        };
        permitted && self.topic.is_match(topic) && self.channels.iter().any(|c| c.is_match(channel))
    }
}

/// A validated auth server reply, with the instant it stops being valid.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub ttl: Duration,
    pub identity: String,
    pub identity_url: String,
    pub authorizations: Vec<Authorization>,
    /// `ttl` after the reply was received; `None` when that instant is beyond what the clock
    /// can represent (never expires).
    pub expires: Option<Instant>,
}

impl AuthState {
    /// Parses and validates a reply body received at `now`, as Go's `QueryAuthd` does: every
    /// permission is `subscribe` or `publish`, every pattern compiles, `ttl` is above 0.
    ///
    /// Like Go's `encoding/json`, keys match case-insensitively, unknown keys are ignored and
    /// `null` leaves a field empty; a missing `ttl` is 0 and so refused.
    ///
    /// # Errors
    /// A [`ReplyError`] naming the first problem found.
    pub fn from_reply(body: &[u8], now: Instant) -> Result<Self, ReplyError> {
        let reply: Value = serde_json::from_slice(body)?;
        let mut ttl: i64 = 0;
        let mut identity = String::new();
        let mut identity_url = String::new();
        let mut authorizations = Vec::new();
        match &reply {
            Value::Null => {}
            Value::Object(fields) => {
                for (key, value) in fields {
                    match key.to_ascii_lowercase().as_str() {
                        "ttl" => ttl = int_field(value, "ttl")?.unwrap_or(ttl),
                        "identity" => identity = string_field(value, "identity")?,
                        "identity_url" => identity_url = string_field(value, "identity_url")?,
                        "authorizations" => authorizations = parse_authorizations(value)?,
                        _ => {}
                    }
                }
            }
            _ => return Err(ReplyError::FieldType { field: "(reply)" }),
        }
        if ttl <= 0 {
            return Err(ReplyError::Ttl(ttl));
        }
        let ttl = Duration::from_secs(ttl.unsigned_abs());
        Ok(AuthState {
            ttl,
            identity,
            identity_url,
            authorizations,
            expires: now.checked_add(ttl),
        })
    }

    /// Whether the TTL has passed at `now` (Go: the expiry is before now).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| e < now)
    }

    /// Whether any grant covers `topic` and `channel` (see [`Authorization::is_allowed`]).
    pub fn is_allowed(&self, topic: &str, channel: &str) -> bool {
        self.authorizations
            .iter()
            .any(|a| a.is_allowed(topic, channel))
    }
}

/// An integer field; `null` is `None` (Go leaves the field as it was).
fn int_field(value: &Value, field: &'static str) -> Result<Option<i64>, ReplyError> {
    match value {
        Value::Null => Ok(None),
        v => v.as_i64().map(Some).ok_or(ReplyError::FieldType { field }),
    }
}

/// A string field; `null` is empty.
fn string_field(value: &Value, field: &'static str) -> Result<String, ReplyError> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        _ => Err(ReplyError::FieldType { field }),
    }
}

/// A list of strings; `null` is empty.
fn strings_field(value: &Value, field: &'static str) -> Result<Vec<String>, ReplyError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|i| string_field(i, field)).collect(),
        _ => Err(ReplyError::FieldType { field }),
    }
}

fn compile(what: &'static str, pattern: &str) -> Result<Regex, ReplyError> {
    Regex::new(pattern).map_err(|source| ReplyError::Regex {
        what,
        pattern: pattern.to_string(),
        source: Box::new(source),
    })
}

fn parse_authorizations(value: &Value) -> Result<Vec<Authorization>, ReplyError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(ReplyError::FieldType {
                field: "authorizations",
            })
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut topic = String::new();
        let mut channels = Vec::new();
        let mut permissions = Vec::new();
        match item {
            Value::Null => {}
            Value::Object(fields) => {
                for (key, value) in fields {
                    match key.to_ascii_lowercase().as_str() {
                        "topic" => topic = string_field(value, "topic")?,
                        "channels" => channels = strings_field(value, "channels")?,
                        "permissions" => permissions = strings_field(value, "permissions")?,
                        _ => {}
                    }
                }
            }
            _ => {
                return Err(ReplyError::FieldType {
                    field: "authorizations",
                })
            }
        }
        // Go checks the permissions first, then the topic, then the channels.
        let (mut subscribe, mut publish) = (false, false);
        for p in permissions {
            match p.as_str() {
                "subscribe" => subscribe = true,
                "publish" => publish = true,
                _ => return Err(ReplyError::UnknownPermission(p)),
            }
        }
        let topic = compile("topic", &topic)?;
        let channels = channels
            .iter()
            .map(|c| compile("channel", c))
            .collect::<Result<_, _>>()?;
        out.push(Authorization {
            topic,
            channels,
            subscribe,
            publish,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(body: &str) -> Result<AuthState, ReplyError> {
        AuthState::from_reply(body.as_bytes(), Instant::now())
    }

    #[test]
    fn publish_needs_a_channel_pattern_matching_empty() {
        let s = state(
            r#"{"ttl":60,"authorizations":[
                {"topic":"^pub$","channels":[".*"],"permissions":["publish"]},
                {"topic":"nochan","channels":[],"permissions":["publish"]},
                {"topic":"strict","channels":["^x$"],"permissions":["publish"]}]}"#,
        )
        .unwrap();
        assert!(s.is_allowed("pub", ""));
        assert!(!s.is_allowed("pub", "ch"), "publish grants no subscribe");
        assert!(
            !s.is_allowed("nochan", ""),
            "no channel pattern, no publish"
        );
        assert!(
            !s.is_allowed("strict", ""),
            "^x$ does not match the empty channel"
        );
    }

    #[test]
    fn patterns_are_unanchored() {
        let s = state(
            r#"{"ttl":1,"authorizations":[{"topic":"orders","channels":["arch"],"permissions":["subscribe"]}]}"#,
        )
        .unwrap();
        assert!(s.is_allowed("new_orders_v2", "archive"));
        assert!(!s.is_allowed("new_orders_v2", ""), "no publish permission");
        assert!(!s.is_allowed("order", "archive"));
        assert!(!s.is_allowed("orders", "other"));
    }

    #[test]
    fn empty_topic_pattern_matches_every_topic() {
        let s = state(
            r#"{"ttl":1,"authorizations":[{"channels":[""],"permissions":["subscribe","publish"]}]}"#,
        )
        .unwrap();
        assert!(s.is_allowed("anything", ""));
        assert!(s.is_allowed("anything", "c"));
    }

    #[test]
    fn refuses_what_go_refuses() {
        let cases = [
            ("", "invalid JSON"),
            ("{\"ttl\":", "invalid JSON"),
            ("[]", "wrong type"),
            ("{\"ttl\":0}", "invalid TTL 0 (must be >0)"),
            ("{\"ttl\":-5}", "invalid TTL -5"),
            ("{}", "invalid TTL 0"),
            ("null", "invalid TTL 0"),
            ("{\"ttl\":1.5}", "`ttl`"),
            ("{\"ttl\":\"60\"}", "`ttl`"),
            (
                r#"{"ttl":1,"authorizations":[{"topic":"t","channels":[".*"],"permissions":["admin"]}]}"#,
                "unknown permission admin",
            ),
            (
                r#"{"ttl":1,"authorizations":[{"topic":"(","channels":[],"permissions":[]}]}"#,
                "unable to compile topic \"(\"",
            ),
            (
                r#"{"ttl":1,"authorizations":[{"topic":"t","channels":["["],"permissions":[]}]}"#,
                "unable to compile channel \"[\"",
            ),
        ];
        for (body, expected) in cases {
            let message = state(body).unwrap_err().to_string();
            assert!(message.contains(expected), "{body:?}: {message}");
        }
    }

    #[test]
    fn reads_fields_as_go_json_does() {
        let s = state(
            r#"{"TTL":30,"Identity":"me","identity_url":null,"extra":[1],
                "authorizations":null}"#,
        )
        .unwrap();
        assert_eq!(s.ttl, Duration::from_secs(30));
        assert_eq!(s.identity, "me");
        assert_eq!(s.identity_url, "");
        assert!(s.authorizations.is_empty());
        assert!(!s.is_allowed("t", ""));
    }

    #[test]
    fn expires_after_the_ttl() {
        let now = Instant::now();
        let s = AuthState::from_reply(b"{\"ttl\":2}", now).unwrap();
        assert!(!s.is_expired(now));
        assert!(
            !s.is_expired(now + Duration::from_secs(2)),
            "Go: expired only after"
        );
        assert!(s.is_expired(now + Duration::from_millis(2001)));
        let forever = AuthState::from_reply(b"{\"ttl\":9223372036854775807}", now).unwrap();
        assert!(!forever.is_expired(now + Duration::from_secs(1 << 40)));
    }
}
