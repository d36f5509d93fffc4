//! nsqd's options: their defaults, the TOML config file (`--config`, with the keys of Go
//! nsqd's config file) and the command-line flags (nsqd's names), merged in that order of
//! precedence: flag over file over default.

mod live;

pub use live::{LiveOptions, LogLevelHook};

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::options::config_file::{apply_config_file, SetError};
use crate::options::value::{
    bad, boolean, go_duration, int, port, positive_duration, positive_int, string,
};
use crate::options::{
    duration, hostname, listen_address, set_if_given, validate_host_port, ConfigError, LogLevel,
};

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
    /// Consumers allowed per channel; 0 is no limit.
    pub max_channel_consumers: i64,
    /// End-to-end latency percentiles to report per topic and channel, each in (0, 1].
    pub e2e_processing_latency_percentiles: Vec<f64>,
    pub e2e_processing_latency_window_time: Duration,
    pub log_level: LogLevel,
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
            max_channel_consumers: 0,
            e2e_processing_latency_percentiles: Vec::new(),
            e2e_processing_latency_window_time: Duration::from_secs(600),
            log_level: LogLevel::Info,
        }
    }
}

/// Go nsqd's default `--node-id`: CRC-32 (IEEE) of the MD5 of the host name, modulo 1024.
pub fn default_node_id(hostname: &str) -> i64 {
    use md5::Digest;
    let digest = md5::Md5::digest(hostname.as_bytes());
    i64::from(crc32fast::hash(&digest) % 1024)
}

/// nsqd's flags. Every one is optional here so that a flag that was not given leaves the
/// config file's value in place.
#[derive(Debug, Clone, Default, Args)]
pub struct NsqdArgs {
    /// Path to a TOML config file with the keys of nsqd's config file (e.g. data_path)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Path to store metadata and messages [default: ./data]
    #[arg(long, value_name = "PATH")]
    pub data_path: Option<PathBuf>,
    /// <addr>:<port> to listen on for TCP clients [default: 127.0.0.1:4150]
    #[arg(long, value_name = "ADDR")]
    pub tcp_address: Option<String>,
    /// <addr>:<port> to listen on for HTTP clients [default: 127.0.0.1:4151]
    #[arg(long, value_name = "ADDR")]
    pub http_address: Option<String>,
    /// Address this node is registered with in lookupd [default: the host name]
    #[arg(long, value_name = "ADDR")]
    pub broadcast_address: Option<String>,
    /// TCP port registered with lookupd [default: the TCP port bound]
    #[arg(long, value_name = "PORT")]
    pub broadcast_tcp_port: Option<u16>,
    /// HTTP port registered with lookupd [default: the HTTP port bound]
    #[arg(long, value_name = "PORT")]
    pub broadcast_http_port: Option<u16>,
    /// lookupd TCP address (may be given multiple times)
    #[arg(long = "lookupd-tcp-address", value_name = "ADDR")]
    pub lookupd_tcp_address: Vec<String>,
    /// Unique part for message IDs, [0,1024) [default: from the host name]
    #[arg(long, value_name = "ID")]
    pub node_id: Option<i64>,
    /// Maximum size of a single message in bytes [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    pub max_msg_size: Option<i64>,
    /// Maximum size of a single command body [default: 5242880]
    #[arg(long, value_name = "BYTES")]
    pub max_body_size: Option<i64>,
    /// Number of messages to keep in memory, per topic and channel [default: 10000]
    #[arg(long, value_name = "N")]
    pub mem_queue_size: Option<i64>,
    /// Number of bytes per diskqueue file before rolling [default: 104857600]
    #[arg(long, value_name = "BYTES")]
    pub max_bytes_per_file: Option<i64>,
    /// Number of messages per diskqueue fsync [default: 2500]
    #[arg(long, value_name = "N")]
    pub sync_every: Option<i64>,
    /// Duration of time per diskqueue fsync [default: 2s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub sync_timeout: Option<Duration>,
    /// Answer PUB/MPUB/DPUB only after the message is fsynced (group commit). Off: messages
    /// are written to the OS page cache at once and fsynced every --sync-every messages or
    /// --sync-timeout [default: false]
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub durable: Option<bool>,
    /// Default time to wait before auto-requeuing a message [default: 1m0s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub msg_timeout: Option<Duration>,
    /// Maximum client-configurable message timeout [default: 15m0s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub max_msg_timeout: Option<Duration>,
    /// Maximum requeue timeout [default: 1h0m0s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub max_req_timeout: Option<Duration>,
    /// Maximum RDY count for a client [default: 2500]
    #[arg(long, value_name = "N")]
    pub max_rdy_count: Option<i64>,
    /// Maximum client-configurable heartbeat interval [default: 1m0s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub max_heartbeat_interval: Option<Duration>,
    /// Maximum client-configurable output buffer size in bytes [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub max_output_buffer_size: Option<i64>,
    /// Maximum client-configurable output buffer timeout [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub max_output_buffer_timeout: Option<Duration>,
    /// Maximum deflate compression level a client can negotiate [default: 6]
    #[arg(long, value_name = "LEVEL")]
    pub max_deflate_level: Option<i64>,
    /// Consumers allowed per channel, 0 for no limit [default: 0]
    #[arg(long, value_name = "N")]
    pub max_channel_consumers: Option<i64>,
    /// Message processing time percentile to track, in (0, 1.0] (repeatable, or comma separated)
    #[arg(
        long = "e2e-processing-latency-percentile",
        value_name = "P",
        value_delimiter = ','
    )]
    pub e2e_processing_latency_percentile: Vec<f64>,
    /// Window over which the percentiles are computed [default: 10m0s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub e2e_processing_latency_window_time: Option<Duration>,
    /// Log level: debug, info, warn, error, fatal [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
}

/// Keys of Go nsqd's config file that rnsq does not implement yet: refused with their own
/// message, so an operator knows the key is right but the feature is missing.
const GO_ONLY_KEYS: &[&str] = &[
    "https_address",
    "auth_http_addresses",
    "http_client_connect_timeout",
    "http_client_request_timeout",
    "statsd_address",
    "statsd_prefix",
    "statsd_interval",
    "statsd_mem_stats",
    "statsd_udp_packet_size",
    "tls_cert",
    "tls_key",
    "tls_client_auth_policy",
    "tls_root_ca_file",
    "tls_required",
    "tls_min_version",
    "deflate",
    "snappy",
    "min_output_buffer_timeout",
    "output_buffer_timeout",
    "log_prefix",
    "verbose",
];

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
        opts.validate()?;
        Ok(opts)
    }

    fn apply_flags(&mut self, a: &NsqdArgs) {
        use set_if_given as set;
        set(&mut self.data_path, &a.data_path);
        set(&mut self.tcp_address, &a.tcp_address);
        set(&mut self.http_address, &a.http_address);
        set(&mut self.broadcast_address, &a.broadcast_address);
        set(&mut self.broadcast_tcp_port, &a.broadcast_tcp_port);
        set(&mut self.broadcast_http_port, &a.broadcast_http_port);
        if !a.lookupd_tcp_address.is_empty() {
            self.nsqlookupd_tcp_addresses = a.lookupd_tcp_address.clone();
        }
        set(&mut self.node_id, &a.node_id);
        set(&mut self.max_msg_size, &a.max_msg_size);
        set(&mut self.max_body_size, &a.max_body_size);
        set(&mut self.mem_queue_size, &a.mem_queue_size);
        set(&mut self.max_bytes_per_file, &a.max_bytes_per_file);
        set(&mut self.sync_every, &a.sync_every);
        set(&mut self.sync_timeout, &a.sync_timeout);
        set(&mut self.durable, &a.durable);
        set(&mut self.msg_timeout, &a.msg_timeout);
        set(&mut self.max_msg_timeout, &a.max_msg_timeout);
        set(&mut self.max_req_timeout, &a.max_req_timeout);
        set(&mut self.max_rdy_count, &a.max_rdy_count);
        set(&mut self.max_heartbeat_interval, &a.max_heartbeat_interval);
        set(&mut self.max_output_buffer_size, &a.max_output_buffer_size);
        set(
            &mut self.max_output_buffer_timeout,
            &a.max_output_buffer_timeout,
        );
        set(&mut self.max_deflate_level, &a.max_deflate_level);
        set(&mut self.max_channel_consumers, &a.max_channel_consumers);
        if !a.e2e_processing_latency_percentile.is_empty() {
            self.e2e_processing_latency_percentiles = a.e2e_processing_latency_percentile.clone();
        }
        set(
            &mut self.e2e_processing_latency_window_time,
            &a.e2e_processing_latency_window_time,
        );
        set(&mut self.log_level, &a.log_level);
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        apply_config_file(path, GO_ONLY_KEYS, |key, value| {
            self.set_by_cfg_name(key, value)
        })
    }

    /// Sets one option by its config-file name (Go's `cfg` name) from a TOML value.
    fn set_by_cfg_name(&mut self, key: &str, value: &toml::Value) -> Result<(), SetError> {
        match key {
            "data_path" => self.data_path = PathBuf::from(string(value)?),
            "tcp_address" => self.tcp_address = string(value)?,
            "http_address" => self.http_address = string(value)?,
            "broadcast_address" => self.broadcast_address = string(value)?,
            "broadcast_tcp_port" => self.broadcast_tcp_port = port(value)?,
            "broadcast_http_port" => self.broadcast_http_port = port(value)?,
            "nsqlookupd_tcp_addresses" => {
                let list = value
                    .as_array()
                    .ok_or_else(|| bad("a list of \"host:port\" strings"))?;
                self.nsqlookupd_tcp_addresses =
                    list.iter().map(string).collect::<Result<_, _>>()?;
            }
            "id" | "node_id" => self.node_id = int(value)?,
            "max_msg_size" | "max_message_size" => self.max_msg_size = int(value)?,
            "max_body_size" => self.max_body_size = int(value)?,
            "mem_queue_size" => self.mem_queue_size = int(value)?,
            "max_bytes_per_file" => self.max_bytes_per_file = positive_int(value)?,
            "sync_every" => self.sync_every = positive_int(value)?,
            "sync_timeout" => self.sync_timeout = positive_duration(value)?,
            "durable" => self.durable = boolean(value)?,
            "msg_timeout" => self.msg_timeout = go_duration(value)?,
            "max_msg_timeout" => self.max_msg_timeout = go_duration(value)?,
            "max_req_timeout" => self.max_req_timeout = go_duration(value)?,
            "max_rdy_count" => self.max_rdy_count = int(value)?,
            "max_heartbeat_interval" => self.max_heartbeat_interval = go_duration(value)?,
            "max_output_buffer_size" => self.max_output_buffer_size = int(value)?,
            "max_output_buffer_timeout" => self.max_output_buffer_timeout = go_duration(value)?,
            "max_deflate_level" => self.max_deflate_level = int(value)?,
            "max_channel_consumers" => self.max_channel_consumers = int(value)?,
            "e2e_processing_latency_percentiles" => {
                let list = value
                    .as_array()
                    .ok_or_else(|| bad("a list of numbers in (0, 1]"))?;
                self.e2e_processing_latency_percentiles = list
                    .iter()
                    .map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad("a list of numbers in (0, 1]"))?;
            }
            "e2e_processing_latency_window_time" => {
                self.e2e_processing_latency_window_time = go_duration(value)?
            }
            "log_level" => self.log_level = string(value)?.parse().map_err(SetError::Bad)?,
            _ => return Err(SetError::Unknown),
        }
        Ok(())
    }

    /// The option called `name` (its config-file name) as JSON, as Go's `GET /config/:opt`
    /// answers it: durations in nanoseconds, the log level as Go's number.
    pub fn get_by_cfg_name(&self, name: &str) -> Option<serde_json::Value> {
        use serde_json::json;
        let ns = |d: &Duration| json!(d.as_nanos() as u64);
        Some(match name {
            "data_path" => json!(self.data_path.display().to_string()),
            "tcp_address" => json!(self.tcp_address),
            "http_address" => json!(self.http_address),
            "broadcast_address" => json!(self.broadcast_address),
            "broadcast_tcp_port" => json!(self.broadcast_tcp_port),
            "broadcast_http_port" => json!(self.broadcast_http_port),
            "nsqlookupd_tcp_addresses" => json!(self.nsqlookupd_tcp_addresses),
            "id" | "node_id" => json!(self.node_id),
            "max_msg_size" => json!(self.max_msg_size),
            "max_body_size" => json!(self.max_body_size),
            "mem_queue_size" => json!(self.mem_queue_size),
            "max_bytes_per_file" => json!(self.max_bytes_per_file),
            "sync_every" => json!(self.sync_every),
            "sync_timeout" => ns(&self.sync_timeout),
            "durable" => json!(self.durable),
            "msg_timeout" => ns(&self.msg_timeout),
            "max_msg_timeout" => ns(&self.max_msg_timeout),
            "max_req_timeout" => ns(&self.max_req_timeout),
            "max_rdy_count" => json!(self.max_rdy_count),
            "max_heartbeat_interval" => ns(&self.max_heartbeat_interval),
            "max_output_buffer_size" => json!(self.max_output_buffer_size),
            "max_output_buffer_timeout" => ns(&self.max_output_buffer_timeout),
            "max_deflate_level" => json!(self.max_deflate_level),
            "max_channel_consumers" => json!(self.max_channel_consumers),
            "e2e_processing_latency_percentiles" => json!(self.e2e_processing_latency_percentiles),
            "e2e_processing_latency_window_time" => ns(&self.e2e_processing_latency_window_time),
            "log_level" => json!(self.log_level as i64),
            _ => return None,
        })
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
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
    fn refuses_unknown_unsupported_and_bad_keys() {
        let cases = [
            ("bogus = 1\n", "unknown key `bogus`"),
            (
                "tls_cert = \"x\"\n",
                "`tls_cert` is an nsqd option rnsq does not support yet",
            ),
            ("max_rdy_count = \"lots\"\n", "max_rdy_count"),
            ("msg_timeout = \"soon\"\n", "invalid duration"),
            ("id = 5000\n", "node-id"),
            ("sync_every = 0\n", "`sync_every`"),
            ("max_bytes_per_file = -5\n", "`max_bytes_per_file`"),
            ("sync_timeout = \"0s\"\n", "`sync_timeout`"),
            ("sync_timeout = \"often\"\n", "invalid duration"),
            ("durable = \"yes\"\n", "`durable`"),
            ("data_path = \n", "not valid TOML"),
        ];
        for (text, expected) in cases {
            let (_dir, path) = write(text);
            let args = NsqdArgs {
                config: Some(path),
                ..Default::default()
            };
            let message = NsqdOptions::resolve(&args).unwrap_err().to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn default_node_id_is_gos() {
        // Values of crc32.ChecksumIEEE(md5(hostname)) % 1024, computed outside Rust.
        assert_eq!(default_node_id("localhost"), 16);
        assert_eq!(default_node_id("nsq-host-1"), 250);
    }

    #[test]
    fn reads_options_by_cfg_name() {
        let opts = NsqdOptions::default();
        assert_eq!(
            opts.get_by_cfg_name("msg_timeout"),
            Some(serde_json::json!(60_000_000_000u64))
        );
        assert_eq!(
            opts.get_by_cfg_name("log_level"),
            Some(serde_json::json!(2))
        );
        assert_eq!(opts.get_by_cfg_name("nope"), None);
    }
}
