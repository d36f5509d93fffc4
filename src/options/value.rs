//! One config-file value read as the type an option wants; anything else is refused with a
//! [`SetError::Bad`] saying what was expected.

use std::time::Duration;

use super::config_file::SetError;
use super::duration;

/// The refusal of a value that is not `expected`.
pub(crate) fn bad(expected: &str) -> SetError {
    SetError::Bad(format!("expected {expected}"))
}

/// A config value that must be a string.
pub(crate) fn string(value: &toml::Value) -> Result<String, SetError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| bad("a string"))
}

/// A config value that must be an integer.
pub(crate) fn int(value: &toml::Value) -> Result<i64, SetError> {
    value.as_integer().ok_or_else(|| bad("an integer"))
}

/// A config integer that must be greater than 0 (checked here, too, so that the refusal names
/// the key and the file rather than the flag).
pub(crate) fn positive_int(value: &toml::Value) -> Result<i64, SetError> {
    match int(value)? {
        n if n > 0 => Ok(n),
        n => Err(SetError::Bad(format!("must be greater than 0, got {n}"))),
    }
}

/// A config duration that must be greater than 0.
pub(crate) fn positive_duration(value: &toml::Value) -> Result<Duration, SetError> {
    match go_duration(value)? {
        d if d.is_zero() => Err(SetError::Bad("must be greater than 0s, got 0s".into())),
        d => Ok(d),
    }
}

/// A config value that must be `true` or `false`.
pub(crate) fn boolean(value: &toml::Value) -> Result<bool, SetError> {
    value.as_bool().ok_or_else(|| bad("true or false"))
}

/// A config integer that must fit a port number.
pub(crate) fn port(value: &toml::Value) -> Result<u16, SetError> {
    u16::try_from(int(value)?).map_err(|_| bad("a port number 0..65535"))
}

/// A duration as Go's config loader takes it: a Go duration string, or an integer of
/// milliseconds.
pub(crate) fn go_duration(value: &toml::Value) -> Result<Duration, SetError> {
    match value {
        toml::Value::String(s) => duration::parse(s).map_err(SetError::Bad),
        toml::Value::Integer(ms) if *ms >= 0 => Ok(Duration::from_millis(*ms as u64)),
        _ => Err(bad("a duration such as \"60s\"")),
    }
}
