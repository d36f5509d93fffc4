//! nsqlookupd's options: their defaults, the TOML config file (`--config`, with the keys of Go
//! nsqlookupd's config file) and the command-line flags (nsqlookupd's names), merged in that
//! order of precedence: flag over file over default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::options::config_file::{apply_config_file, apply_config_text, SetError};
use crate::options::value::{boolean, go_duration, string};
use crate::options::{
    self, duration, go_flag, listen_address, set_if_given, ConfigError, LogLevel,
};

/// nsqlookupd's resolved options.
#[derive(Debug, Clone, PartialEq)]
pub struct NsqlookupdOptions {
    pub tcp_address: String,
    pub http_address: String,
    /// The address this lookupd reports itself at (IDENTIFY replies).
    pub broadcast_address: String,
    /// How long a producer stays listed after its last PING (or IDENTIFY).
    pub inactive_producer_timeout: Duration,
    /// How long a tombstoned producer stays hidden from `/lookup`.
    pub tombstone_lifetime: Duration,
    pub log_level: LogLevel,
    /// Put before every log line, as Go's logger prefix.
    pub log_prefix: String,
    /// `--verbose` (or the key) was given: deprecated, no effect, named once at start-up.
    pub verbose_given: bool,
}

impl Default for NsqlookupdOptions {
    fn default() -> Self {
        NsqlookupdOptions {
            tcp_address: "127.0.0.1:4160".into(),
            http_address: "127.0.0.1:4161".into(),
            broadcast_address: options::hostname(),
            inactive_producer_timeout: Duration::from_secs(300),
            tombstone_lifetime: Duration::from_secs(45),
            log_level: LogLevel::Info,
            log_prefix: "[nsqlookupd] ".into(),
            verbose_given: false,
        }
    }
}

/// nsqlookupd's flags. Every one is optional here so that a flag that was not given leaves the
/// config file's value in place.
#[derive(Debug, Clone, Default, Args)]
pub struct NsqlookupdArgs {
    /// Path to a TOML config file with the keys of nsqlookupd's config file (e.g. tcp_address)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// <addr>:<port> to listen on for TCP clients [default: 127.0.0.1:4160]
    #[arg(long, value_name = "ADDR")]
    pub tcp_address: Option<String>,
    /// <addr>:<port> to listen on for HTTP clients [default: 127.0.0.1:4161]
    #[arg(long, value_name = "ADDR")]
    pub http_address: Option<String>,
    /// Address of this lookupd node [default: the host name]
    #[arg(long, value_name = "ADDR")]
    pub broadcast_address: Option<String>,
    /// How long a producer stays active after its last ping [default: 5m0s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub inactive_producer_timeout: Option<Duration>,
    /// How long a producer stays tombstoned if its registration remains [default: 45s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub tombstone_lifetime: Option<Duration>,
    /// Log level: debug, info, warn, error, fatal [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Text put before every log line [default: "[nsqlookupd] "]
    #[arg(long, value_name = "TEXT")]
    pub log_prefix: Option<String>,
    /// Deprecated in nsqlookupd, no effect: use --log-level
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_flag::parse_bool)]
    pub verbose: Option<bool>,
}

/// Keys of Go nsqlookupd's config file that rnsq does not implement: refused with their own
/// message, so an operator knows the key is right but the feature is missing. (None left.)
const GO_ONLY_KEYS: &[&str] = &[];

impl NsqlookupdOptions {
    /// Defaults, then `args.config`'s file, then the flags given in `args`; then validation.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, key or flag at fault.
    pub fn resolve(args: &NsqlookupdArgs) -> Result<Self, ConfigError> {
        let mut opts = NsqlookupdOptions::default();
        if let Some(path) = &args.config {
            opts.apply_file(path)?;
        }
        opts.apply_flags(args);
        opts.validate()?;
        Ok(opts)
    }

    fn apply_flags(&mut self, a: &NsqlookupdArgs) {
        use set_if_given as set;
        set(&mut self.tcp_address, &a.tcp_address);
        set(&mut self.http_address, &a.http_address);
        set(&mut self.broadcast_address, &a.broadcast_address);
        set(
            &mut self.inactive_producer_timeout,
            &a.inactive_producer_timeout,
        );
        set(&mut self.tombstone_lifetime, &a.tombstone_lifetime);
        set(&mut self.log_level, &a.log_level);
        set(&mut self.log_prefix, &a.log_prefix);
        self.verbose_given |= a.verbose.is_some();
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        apply_config_file(path, "nsqlookupd", GO_ONLY_KEYS, |key, value| {
            self.set_by_cfg_name(key, value)
        })
    }

    /// Defaults, then a config file's `text` (`path` only names it in errors), then
    /// validation: [`NsqlookupdOptions::resolve`] with no flags given, without reading a file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file and key, or the option, at fault.
    pub fn resolve_file_text(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut opts = NsqlookupdOptions::default();
        apply_config_text(text, path, "nsqlookupd", GO_ONLY_KEYS, |key, value| {
            opts.set_by_cfg_name(key, value)
        })?;
        opts.validate()?;
        Ok(opts)
    }

    /// Sets one option by its config-file name (Go's `cfg` name) from a TOML value.
    fn set_by_cfg_name(&mut self, key: &str, value: &toml::Value) -> Result<(), SetError> {
        match key {
            "tcp_address" => self.tcp_address = string(value)?,
            "http_address" => self.http_address = string(value)?,
            "broadcast_address" => self.broadcast_address = string(value)?,
            "inactive_producer_timeout" => self.inactive_producer_timeout = go_duration(value)?,
            "tombstone_lifetime" => self.tombstone_lifetime = go_duration(value)?,
            "log_level" => self.log_level = string(value)?.parse().map_err(SetError::Bad)?,
            "log_prefix" => self.log_prefix = string(value)?,
            // No config key of Go 1.3.0 (which ignores unknown keys), but older files carry it.
            "verbose" => self.verbose_given = boolean(value).map(|_| true)?,
            _ => return Err(SetError::Unknown),
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, address) in [
            ("tcp-address", &self.tcp_address),
            ("http-address", &self.http_address),
        ] {
            if let Err(message) = listen_address(address) {
                return Err(ConfigError::BadValue {
                    origin: "option",
                    key: key.into(),
                    message,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsqlookupd.cfg");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_match_nsqlookupd() {
        let opts = NsqlookupdOptions::resolve(&NsqlookupdArgs::default()).unwrap();
        assert_eq!(opts.tcp_address, "127.0.0.1:4160");
        assert_eq!(opts.http_address, "127.0.0.1:4161");
        assert_eq!(opts.broadcast_address, options::hostname());
        assert_eq!(opts.inactive_producer_timeout, Duration::from_secs(300));
        assert_eq!(opts.tombstone_lifetime, Duration::from_secs(45));
        assert_eq!(opts.log_level, LogLevel::Info);
    }

    #[test]
    fn file_then_flags() {
        let (_dir, path) = write(
            "tcp_address = \"127.0.0.1:5160\"\nhttp_address = \":5161\"\n\
             broadcast_address = \"lookupd-1\"\ninactive_producer_timeout = \"1m\"\n\
             tombstone_lifetime = 2000\nlog_level = \"warn\"\n",
        );
        let args = NsqlookupdArgs {
            config: Some(path),
            http_address: Some("127.0.0.1:6161".into()),
            ..NsqlookupdArgs::default()
        };
        let opts = NsqlookupdOptions::resolve(&args).unwrap();
        assert_eq!(opts.tcp_address, "127.0.0.1:5160");
        assert_eq!(opts.http_address, "127.0.0.1:6161");
        assert_eq!(opts.broadcast_address, "lookupd-1");
        assert_eq!(opts.inactive_producer_timeout, Duration::from_secs(60));
        assert_eq!(opts.tombstone_lifetime, Duration::from_secs(2));
        assert_eq!(opts.log_level, LogLevel::Warn);
        assert_eq!(opts.log_prefix, "[nsqlookupd] ");
        assert!(!opts.verbose_given);
    }

    #[test]
    fn log_prefix_and_verbose_from_file_and_flags() {
        let (_dir, path) = write("log_prefix = \"[lk] \"\nverbose = true\n");
        let opts = NsqlookupdOptions::resolve(&NsqlookupdArgs {
            config: Some(path),
            ..NsqlookupdArgs::default()
        })
        .unwrap();
        assert_eq!(opts.log_prefix, "[lk] ");
        assert!(opts.verbose_given);
        let opts = NsqlookupdOptions::resolve(&NsqlookupdArgs {
            log_prefix: Some(String::new()),
            verbose: Some(false),
            ..NsqlookupdArgs::default()
        })
        .unwrap();
        assert_eq!(opts.log_prefix, "");
        assert!(opts.verbose_given);
    }

    #[test]
    fn refuses_unknown_unsupported_and_bad_keys() {
        let resolve = |text: &str| {
            let (_dir, path) = write(text);
            NsqlookupdOptions::resolve(&NsqlookupdArgs {
                config: Some(path),
                ..NsqlookupdArgs::default()
            })
            .unwrap_err()
            .to_string()
        };
        assert!(resolve("data_path = \"x\"").contains("unknown key `data_path`"));
        assert!(resolve("log_prefix = 1").contains("`log_prefix`"));
        assert!(resolve("verbose = \"x\"").contains("`verbose`"));
        assert!(resolve("tombstone_lifetime = \"soon\"").contains("tombstone_lifetime"));
        assert!(resolve("tcp_address = 4160").contains("tcp_address"));
        assert!(resolve("tcp_address = \"nonsense\"").contains("tcp-address"));
    }
}
