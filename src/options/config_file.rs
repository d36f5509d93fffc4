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
/// refused as unknown, or as an option of `daemon` (`nsqd`, `nsqlookupd`) not supported yet
/// when it is one of `go_only_keys`.
pub(crate) fn apply_config_file(
    path: &Path,
    daemon: &'static str,
    go_only_keys: &[&str],
    set: impl FnMut(&str, &toml::Value) -> Result<(), SetError>,
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    apply_config_text(&text, path, daemon, go_only_keys, set)
}

/// [`apply_config_file`] on a file's `text`; `path` only names the file in errors.
pub(crate) fn apply_config_text(
    text: &str,
    path: &Path,
    daemon: &'static str,
    go_only_keys: &[&str],
    mut set: impl FnMut(&str, &toml::Value) -> Result<(), SetError>,
) -> Result<(), ConfigError> {
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
                daemon,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::value::int;

    /// Reads `text` as a config file whose only option is `known`, with `go_only` as the one
    /// key Go has and rnsq lacks; answers the value set or the refusal's message.
    fn read(text: &str) -> Result<Option<i64>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.cfg");
        std::fs::write(&path, text).unwrap();
        let mut known = None;
        apply_config_file(&path, "nsqlookupd", &["go_only"], |key, value| match key {
            "known" => {
                known = Some(int(value)?);
                Ok(())
            }
            _ => Err(SetError::Unknown),
        })
        .map(|()| known)
        .map_err(|e| e.to_string().replace(&path.display().to_string(), "FILE"))
    }

    #[test]
    fn hands_each_key_to_the_setter_and_names_file_and_key_in_refusals() {
        assert_eq!(read("known = 3\n"), Ok(Some(3)));
        assert_eq!(read(""), Ok(None));
        assert_eq!(read("other = 1\n"), Err("FILE: unknown key `other`".into()));
        assert_eq!(
            read("go_only = 1\n"),
            Err("FILE: key `go_only` is an nsqlookupd option rnsq does not support yet".into())
        );
        assert_eq!(
            read("known = \"x\"\n"),
            Err("config key `known` in `FILE`: expected an integer".into())
        );
        assert!(read("known = \n")
            .unwrap_err()
            .starts_with("FILE: not valid TOML: "));
    }

    #[test]
    fn an_unreadable_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.cfg");
        let error = apply_config_file(&path, "nsqd", &[], |_, _| Ok(())).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
        assert!(error
            .to_string()
            .starts_with(&format!("{}: cannot read config file: ", path.display())));
    }
}
