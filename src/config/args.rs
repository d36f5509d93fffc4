//! nsqd's command-line flags (Go nsqd's names) and how the ones given overwrite the options
//! read from the defaults and the config file.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CompatArgs, NsqdOptions, OutputBufferArgs, StatsdArgs};
use crate::options::{duration, set_if_given, LogLevel};

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
    /// Enable snappy feature negotiation (client compression) [default: true]
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = crate::options::go_flag::parse_bool
    )]
    pub snappy: Option<bool>,
    /// Enable deflate feature negotiation (client compression) [default: true]
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = crate::options::go_flag::parse_bool
    )]
    pub deflate: Option<bool>,
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
    #[command(flatten)]
    pub output_buffer: OutputBufferArgs,
    #[command(flatten)]
    pub statsd: StatsdArgs,
    #[command(flatten)]
    pub compat: CompatArgs,
    #[command(flatten)]
    pub auth: super::AuthArgs,
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

impl NsqdOptions {
    /// Overwrites each option whose flag was given in `a`; a list flag given at all replaces
    /// the whole list.
    pub(super) fn apply_flags(&mut self, a: &NsqdArgs) {
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
        set(&mut self.snappy, &a.snappy);
        set(&mut self.deflate, &a.deflate);
        set(&mut self.max_channel_consumers, &a.max_channel_consumers);
        if !a.e2e_processing_latency_percentile.is_empty() {
            self.e2e_processing_latency_percentiles = a.e2e_processing_latency_percentile.clone();
        }
        set(
            &mut self.e2e_processing_latency_window_time,
            &a.e2e_processing_latency_window_time,
        );
        set(&mut self.log_level, &a.log_level);
        self.output_buffer.apply_flags(&a.output_buffer);
        self.statsd.apply_flags(&a.statsd);
        self.compat.apply_flags(&a.compat);
        self.auth.apply_flags(&a.auth);
        self.tls.apply_flags(&a.tls);
    }
}
