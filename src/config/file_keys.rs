//! nsqd's options by their config-file names (Go nsqd's `cfg` names): set from the TOML file
//! (`--config`), and read back for `GET /config/:opt`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::NsqdOptions;
use crate::options::config_file::{apply_config_file, apply_config_text, SetError};
use crate::options::value::{
    bad, boolean, go_duration, int, port, positive_duration, positive_int, string,
};
use crate::options::ConfigError;

impl NsqdOptions {
    /// Applies every key of the TOML file at `path`. On an error some keys may already be
    /// applied; [`NsqdOptions::resolve`] then discards the options.
    pub(super) fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        apply_config_file(path, "nsqd", &[], |key, value| {
            self.set_by_cfg_name(key, value)
        })
    }

    /// [`NsqdOptions::apply_file`] on a file's `text`; `path` only names it in errors.
    pub(super) fn apply_file_text(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        apply_config_text(text, path, "nsqd", &[], |key, value| {
            self.set_by_cfg_name(key, value)
        })
    }

    /// Sets one option by its config-file name (Go's `cfg` name) from a TOML value.
    fn set_by_cfg_name(&mut self, key: &str, value: &toml::Value) -> Result<(), SetError> {
        if let Some(result) = self.auth.set_by_cfg_name(key, value) {
            return result;
        }
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
            "snappy" => self.snappy = boolean(value)?,
            "deflate" => self.deflate = boolean(value)?,
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
            _ => {
                return (self.output_buffer.set_by_cfg_name(key, value))
                    .or_else(|| self.statsd.set_by_cfg_name(key, value))
                    .or_else(|| self.compat.set_by_cfg_name(key, value))
                    .unwrap_or_else(|| self.tls.set_by_cfg_name(key, value))
            }
        }
        Ok(())
    }

    /// The option called `name` (its config-file name) as JSON, as Go's `GET /config/:opt`
    /// answers it: durations in nanoseconds, the log level as Go's number.
    pub fn get_by_cfg_name(&self, name: &str) -> Option<serde_json::Value> {
        use serde_json::json;
        if let Some(value) = self.auth.get_by_cfg_name(name) {
            return Some(value);
        }
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
            "snappy" => json!(self.snappy),
            "deflate" => json!(self.deflate),
            "max_channel_consumers" => json!(self.max_channel_consumers),
            "e2e_processing_latency_percentiles" => json!(self.e2e_processing_latency_percentiles),
            "e2e_processing_latency_window_time" => ns(&self.e2e_processing_latency_window_time),
            "log_level" => json!(self.log_level as i64),
            _ => {
                return (self.output_buffer.get_by_cfg_name(name))
                    .or_else(|| self.statsd.get_by_cfg_name(name))
                    .or_else(|| self.compat.get_by_cfg_name(name))
                    .or_else(|| self.tls.get_by_cfg_name(name))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::write;
    use crate::config::NsqdArgs;

    #[test]
    fn refuses_unknown_unsupported_and_bad_keys() {
        let cases = [
            ("bogus = 1\n", "unknown key `bogus`"),
            ("statsd_address = \"x\"\n", "statsd-address"),
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
    fn go_compat_output_buffer_and_statsd_keys() {
        let (_dir, path) = write(
            "log_prefix = \"[x] \"\nverbose = true\nqueue_scan_worker_pool_max = 8\n\
             queue_scan_selection_count = 40\noutput_buffer_timeout = \"100ms\"\n\
             min_output_buffer_timeout = 10\nstatsd_address = \"127.0.0.1:8125\"\n\
             statsd_prefix = \"app\"\nstatsd_interval = \"10s\"\nstatsd_mem_stats = false\n\
             statsd_udp_packet_size = 1400\nstatsd_exclude_ephemeral = true\n",
        );
        let opts = NsqdOptions::resolve(&NsqdArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        let get = |name: &str| opts.get_by_cfg_name(name).unwrap();
        use serde_json::json;
        assert_eq!(get("log_prefix"), json!("[x] "));
        assert_eq!(get("queue_scan_worker_pool_max"), json!(8));
        assert_eq!(get("queue_scan_selection_count"), json!(40));
        assert_eq!(get("output_buffer_timeout"), json!(100_000_000u64));
        assert_eq!(get("min_output_buffer_timeout"), json!(10_000_000u64));
        assert_eq!(get("statsd_address"), json!("127.0.0.1:8125"));
        assert_eq!(get("statsd_prefix"), json!("app"));
        assert_eq!(get("statsd_interval"), json!(10_000_000_000u64));
        assert_eq!(get("statsd_mem_stats"), json!(false));
        assert_eq!(get("statsd_udp_packet_size"), json!(1400));
        assert_eq!(get("statsd_exclude_ephemeral"), json!(true));
        // The TOML reader hands keys over in name order.
        assert_eq!(
            opts.compat.no_effect_given,
            [
                "queue-scan-selection-count",
                "queue-scan-worker-pool-max",
                "verbose"
            ]
        );

        let defaults = NsqdOptions::default();
        assert_eq!(
            defaults.get_by_cfg_name("output_buffer_timeout"),
            Some(json!(250_000_000u64))
        );
        assert_eq!(
            defaults.get_by_cfg_name("statsd_prefix"),
            Some(json!("nsq.%s"))
        );
        assert_eq!(
            defaults.get_by_cfg_name("log_prefix"),
            Some(json!("[nsqd] "))
        );
        assert!(defaults.compat.no_effect().is_empty());

        for (text, expected) in [
            (
                "output_buffer_timeout = \"0s\"\n",
                "`output_buffer_timeout`",
            ),
            ("statsd_udp_packet_size = 0\n", "`statsd_udp_packet_size`"),
            ("statsd_interval = \"0s\"\n", "`statsd_interval`"),
            ("statsd_address = \"nohost\"\n", "statsd-address"),
            ("statsd_mem_stats = \"yes\"\n", "`statsd_mem_stats`"),
            (
                "queue_scan_selection_count = \"x\"\n",
                "`queue_scan_selection_count`",
            ),
            ("verbose = 3\n", "`verbose`"),
            ("log_prefix = 3\n", "`log_prefix`"),
        ] {
            let (_dir, path) = write(text);
            let message = NsqdOptions::resolve(&NsqdArgs {
                config: Some(path),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
        }
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
