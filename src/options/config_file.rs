//! The TOML config file reader both daemons use (`--config`): read the file, hand each key to
//! the daemon's own setter, and turn each refusal into a [`ConfigError`] naming the file and
//! the key.

use std::path::Path;

use super::ConfigError;

/// Why one config-file key could not be set.
pub(crate) enum SetError {
    /// No option has this name.
    Unknown,
    /// The value is wrong; the text says what was expected.
    Bad(String),
}

/// Reads the TOML file at `path` and hands each key to `set`. A key `set` does not know is
/// refused as unknown, or as not supported yet when it is one of `go_only_keys`.
pub(crate) fn apply_config_file(
    path: &Path,
    go_only_keys: &[&str],
    mut set: impl FnMut(&str, &toml::Value) -> Result<(), SetError>,
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.into(),
            message: e.to_string(),
        })?;
    for (key, value) in &table {
        set(key, value).map_err(|e| match e {
            SetError::Unknown if go_only_keys.contains(&key.as_str()) => ConfigError::Unsupported {
                path: path.into(),
                key: key.clone(),
            },
            SetError::Unknown => ConfigError::UnknownKey {
                path: path.into(),
                key: key.clone(),
            },
            SetError::Bad(message) => ConfigError::BadValue {
                origin: "config key",
                key: format!("{key}` in `{}", path.display()),
                message,
            },
        })?;
    }
    Ok(())
}
