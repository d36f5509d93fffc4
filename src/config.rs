//! nsqd's options: their defaults, the TOML config file (`--config`, with the keys of Go
//! nsqd's config file) and the command-line flags (nsqd's names), merged in that order of
//! precedence: flag over file over default, then validated.
//!
//! The parts live beside it: `args` (the flags), `file_keys` (the options by their
//! config-file names, set from the file and read by `GET /config/:opt`), `live` (the options
//! while the broker runs), and groups of options with their own flags, keys and checks:
//! `statsd`, `output_buffer` (the output-buffer timeouts IDENTIFY is held to), `go_compat`
//! (Go's log prefix, deprecated flags and tuning knobs), `auth_options` (the AUTH servers),
//! `tls_values`, `tls_options` and `tls_args` (the TLS flags' values, the TLS options and
//! their flags). What nsqlookupd's options share with these is in [`crate::options`].

mod args;
mod auth_options;
mod file_keys;
mod go_compat;
mod live;
mod output_buffer;
mod statsd;
mod tls_args;
mod tls_options;
mod tls_values;

pub use args::NsqdArgs;
pub use auth_options::{AuthArgs, AuthOptions};
pub use go_compat::{CompatArgs, CompatOptions};
pub use live::{LiveOptions, LogLevelHook};
pub use output_buffer::{OutputBufferArgs, OutputBufferOptions};
pub use statsd::{StatsdArgs, StatsdOptions};
pub use tls_args::TlsArgs;
pub use tls_options::TlsOptions;
pub use tls_values::{ClientAuthPolicy, TlsMinVersion, TlsRequired};

use std::path::PathBuf;
use std::time::Duration;

use crate::options::{hostname, listen_address, validate_host_port, ConfigError, LogLevel};

/// The broker's resolved options.
#[derive(Debug, Clone, PartialEq)]
pub struct NsqdOptions {
    pub data_path: PathBuf,
    pub tcp_address: String,
    pub http_address: String,
    pub broadcast_address: String,
    /// 0: announce the port actually bound.
    pub broadcast_tcp_port: u16,
    /// 0: announce the port actually bound.
    pub broadcast_http_port: u16,
    pub nsqlookupd_tcp_addresses: Vec<String>,
    pub node_id: i64,
    pub max_msg_size: i64,
    pub max_body_size: i64,
    pub mem_queue_size: i64,
    /// Number of bytes per diskqueue file before rolling to a new one.
    pub max_bytes_per_file: i64,
    /// Number of messages per diskqueue fsync.
    pub sync_every: i64,
    /// Duration of time per diskqueue fsync.
    pub sync_timeout: Duration,
    /// Answer PUB/MPUB/DPUB only after the message is fsynced (group commit). Off: messages
    /// are written to the OS page cache at once and fsynced every --sync-every messages or
    /// --sync-timeout.
    pub durable: bool,
    pub msg_timeout: Duration,
    pub max_msg_timeout: Duration,
    pub max_req_timeout: Duration,
    pub max_rdy_count: i64,
    pub max_heartbeat_interval: Duration,
    pub max_output_buffer_size: i64,
    pub max_output_buffer_timeout: Duration,
    pub max_deflate_level: i64,
    /// Offer snappy compression to clients (IDENTIFY `snappy`).
    pub snappy: bool,
    /// Offer deflate compression to clients (IDENTIFY `deflate`).
    pub deflate: bool,
    /// Consumers allowed per channel; 0 is no limit.
    pub max_channel_consumers: i64,
    /// End-to-end latency percentiles to report per topic and channel, each in (0, 1].
    pub e2e_processing_latency_percentiles: Vec<f64>,
    pub e2e_processing_latency_window_time: Duration,
    pub log_level: LogLevel,
    pub output_buffer: OutputBufferOptions,
    pub statsd: StatsdOptions,
    pub compat: CompatOptions,
    /// AUTH: the auth servers and the HTTP client's timeouts.
    pub auth: AuthOptions,
    pub tls: TlsOptions,
}

impl Default for NsqdOptions {
    fn default() -> Self {
        let hostname = hostname();
        NsqdOptions {
            data_path: PathBuf::from("./data"),
            tcp_address: "127.0.0.1:4150".into(),
            http_address: "127.0.0.1:4151".into(),
            node_id: default_node_id(&hostname),
            broadcast_address: hostname,
            broadcast_tcp_port: 0,
            broadcast_http_port: 0,
            nsqlookupd_tcp_addresses: Vec::new(),
            max_msg_size: 1024 * 1024,
            max_body_size: 5 * 1024 * 1024,
            mem_queue_size: 10_000,
            max_bytes_per_file: 100 * 1024 * 1024,
            sync_every: 2500,
            sync_timeout: Duration::from_secs(2),
            durable: false,
            msg_timeout: Duration::from_secs(60),
            max_msg_timeout: Duration::from_secs(15 * 60),
            max_req_timeout: Duration::from_secs(3600),
            max_rdy_count: 2500,
            max_heartbeat_interval: Duration::from_secs(60),
            max_output_buffer_size: 64 * 1024,
            max_output_buffer_timeout: Duration::from_secs(30),
            max_deflate_level: 6,
            snappy: true,
            deflate: true,
            max_channel_consumers: 0,
            e2e_processing_latency_percentiles: Vec::new(),
            e2e_processing_latency_window_time: Duration::from_secs(600),
            log_level: LogLevel::Info,
            output_buffer: OutputBufferOptions::default(),
            statsd: StatsdOptions::default(),
            compat: CompatOptions::default(),
            auth: AuthOptions::default(),
            tls: TlsOptions::default(),
        }
    }
}

/// Go nsqd's default `--node-id`: CRC-32 (IEEE) of the MD5 of the host name, modulo 1024.
pub fn default_node_id(hostname: &str) -> i64 {
    use md5::Digest;
    let digest = md5::Md5::digest(hostname.as_bytes());
    i64::from(crc32fast::hash(&digest) % 1024)
}

impl NsqdOptions {
    /// Defaults, then `args.config`'s file, then the flags given in `args`; then validation.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, key or flag at fault.
    pub fn resolve(args: &NsqdArgs) -> Result<Self, ConfigError> {
        let mut opts = NsqdOptions::default();
        if let Some(path) = &args.config {
            opts.apply_file(path)?;
        }
        opts.apply_flags(args);
        opts.tls.resolve()?;
        opts.validate()?;
        Ok(opts)
    }

    /// Defaults, then a config file's `text` (`path` only names it in errors), then
    /// validation: [`NsqdOptions::resolve`] with no flags given, without reading a file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file and key, or the option, at fault.
    pub fn resolve_file_text(text: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        let mut opts = NsqdOptions::default();
        opts.apply_file_text(text, path)?;
        opts.tls.resolve()?;
        opts.validate()?;
        Ok(opts)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| {
            Err(ConfigError::BadValue {
                origin: "option",
                key: key.into(),
                message,
            })
        };
        if !(0..1024).contains(&self.node_id) {
            return fail(
                "node-id",
                format!("must be in [0,1024), got {}", self.node_id),
            );
        }
        for (key, value) in [
            ("max-msg-size", self.max_msg_size),
            ("max-body-size", self.max_body_size),
            ("max-rdy-count", self.max_rdy_count),
            ("max-output-buffer-size", self.max_output_buffer_size),
            ("max-bytes-per-file", self.max_bytes_per_file),
            ("sync-every", self.sync_every),
        ] {
            if value <= 0 {
                return fail(key, format!("must be greater than 0, got {value}"));
            }
        }
        if self.sync_timeout.is_zero() {
            return fail("sync-timeout", "must be greater than 0s, got 0s".into());
        }
        if let Some(p) = self
            .e2e_processing_latency_percentiles
            .iter()
            .find(|p| !(**p > 0.0 && **p <= 1.0))
        {
            return fail(
                "e2e-processing-latency-percentile",
                format!("must be in (0, 1.0], got {p}"),
            );
        }
        if self.max_channel_consumers < 0 {
            return fail(
                "max-channel-consumers",
                format!("must be 0 or more, got {}", self.max_channel_consumers),
            );
        }
        if self.mem_queue_size < 0 {
            return fail(
                "mem-queue-size",
                format!("must be 0 or more, got {}", self.mem_queue_size),
            );
        }
        if !(1..=9).contains(&self.max_deflate_level) {
            return fail(
                "max-deflate-level",
                format!("must be in [1,9], got {}", self.max_deflate_level),
            );
        }
        for (key, address) in [
            ("tcp-address", &self.tcp_address),
            ("http-address", &self.http_address),
        ] {
            if let Err(message) = listen_address(address) {
                return fail(key, message);
            }
        }
        for address in &self.nsqlookupd_tcp_addresses {
            if let Err(message) = validate_host_port(address) {
                return fail("lookupd-tcp-address", message);
            }
        }
        if self.data_path.as_os_str().is_empty() {
            return fail("data-path", "must not be empty".into());
        }
        self.output_buffer.validate()?;
        self.statsd.validate()?;
        self.auth.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file holding `text`, in a temp dir kept alive by the first value.
    pub(super) fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsqd.cfg");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_match_nsqd() {
        let opts = NsqdOptions::resolve(&NsqdArgs::default()).unwrap();
        assert_eq!(opts.data_path, PathBuf::from("./data"));
        assert_eq!(opts.tcp_address, "127.0.0.1:4150");
        assert_eq!(opts.http_address, "127.0.0.1:4151");
        assert_eq!(opts.msg_timeout, Duration::from_secs(60));
        assert_eq!(opts.max_req_timeout, Duration::from_secs(3600));
        assert_eq!(opts.max_rdy_count, 2500);
        assert!((0..1024).contains(&opts.node_id));
        assert_eq!(opts.max_bytes_per_file, 104_857_600);
        assert_eq!(opts.sync_every, 2500);
        assert_eq!(opts.sync_timeout, Duration::from_secs(2));
        assert!(!opts.durable);
    }

    #[test]
    fn diskqueue_options_from_file_and_flags() {
        let (_dir, path) = write(
            "max_bytes_per_file = 4096\nsync_every = 10\nsync_timeout = \"250ms\"\ndurable = true\n",
        );
        let args = NsqdArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let opts = NsqdOptions::resolve(&args).unwrap();
        assert_eq!(opts.max_bytes_per_file, 4096);
        assert_eq!(opts.sync_every, 10);
        assert_eq!(opts.sync_timeout, Duration::from_millis(250));
        assert!(opts.durable);
        assert_eq!(
            opts.get_by_cfg_name("sync_timeout"),
            Some(serde_json::json!(250_000_000u64))
        );
        assert_eq!(
            opts.get_by_cfg_name("durable"),
            Some(serde_json::json!(true))
        );

        let args = NsqdArgs {
            config: Some(path),
            sync_every: Some(1),
            sync_timeout: Some(Duration::from_secs(5)),
            durable: Some(false),
            ..Default::default()
        };
        let opts = NsqdOptions::resolve(&args).unwrap();
        assert_eq!(opts.max_bytes_per_file, 4096);
        assert_eq!(opts.sync_every, 1);
        assert_eq!(opts.sync_timeout, Duration::from_secs(5));
        assert!(!opts.durable);

        for (args, expected) in [
            (
                NsqdArgs {
                    sync_every: Some(0),
                    ..Default::default()
                },
                "sync-every",
            ),
            (
                NsqdArgs {
                    max_bytes_per_file: Some(-1),
                    ..Default::default()
                },
                "max-bytes-per-file",
            ),
            (
                NsqdArgs {
                    sync_timeout: Some(Duration::ZERO),
                    ..Default::default()
                },
                "sync-timeout",
            ),
        ] {
            let message = NsqdOptions::resolve(&args).unwrap_err().to_string();
            assert!(message.contains(expected), "{expected}: {message}");
        }
    }

    #[test]
    fn file_then_flags() {
        let (_dir, path) = write(
            "data_path = \"/tmp/x\"\nnsqlookupd_tcp_addresses = [\"a:4160\", \"b:4160\"]\nmsg_timeout = \"90s\"\nmax_rdy_count = 10\nid = 7\n",
        );
        let args = NsqdArgs {
            config: Some(path),
            max_rdy_count: Some(20),
            ..Default::default()
        };
        let opts = NsqdOptions::resolve(&args).unwrap();
        assert_eq!(opts.data_path, PathBuf::from("/tmp/x"));
        assert_eq!(opts.nsqlookupd_tcp_addresses, ["a:4160", "b:4160"]);
        assert_eq!(opts.msg_timeout, Duration::from_secs(90));
        assert_eq!(opts.max_rdy_count, 20);
        assert_eq!(opts.node_id, 7);
    }

    #[test]
    fn default_node_id_is_gos() {
        // Values of crc32.ChecksumIEEE(md5(hostname)) % 1024, computed outside Rust.
        assert_eq!(default_node_id("localhost"), 16);
        assert_eq!(default_node_id("nsq-host-1"), 250);
    }
}
