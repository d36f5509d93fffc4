//! The statsd options (`--statsd-*`, Go nsqd's names and config keys): where to push, how
//! often, under which prefix, packed how, and what to leave out. [`crate::statsd`] pushes.

use std::time::Duration;

use clap::Args;

use crate::options::config_file::SetError;
use crate::options::value::{boolean, positive_duration, positive_int, string};
use crate::options::{duration, go_flag, set_if_given, ConfigError};

/// The statsd flags. Every one is optional, so that a flag not given leaves the config file's
/// value in place.
#[derive(Debug, Clone, Default, Args)]
pub struct StatsdArgs {
    /// UDP <addr>:<port> of a statsd daemon to push stats to [default: none, no pushing]
    #[arg(long, value_name = "ADDR")]
    pub statsd_address: Option<String>,
    /// Time between pushes [default: 1m0s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub statsd_interval: Option<Duration>,
    /// Push the process's memory figures too [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_flag::parse_bool)]
    pub statsd_mem_stats: Option<bool>,
    /// Prefix of every key pushed; %s becomes <broadcast-address>_<broadcast-http-port> with
    /// dots and colons as underscores [default: nsq.%s]
    #[arg(long, value_name = "TEXT")]
    pub statsd_prefix: Option<String>,
    /// Most bytes in one UDP packet (a longer line goes alone) [default: 508]
    #[arg(long, value_name = "BYTES")]
    pub statsd_udp_packet_size: Option<i64>,
    /// Leave ephemeral topics and channels out of the push [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_flag::parse_bool)]
    pub statsd_exclude_ephemeral: Option<bool>,
}

/// The statsd options.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdOptions {
    /// `host:port`; empty: no pushing.
    pub address: String,
    /// The prefix as given, `%s` not yet replaced (see [`StatsdOptions::key_prefix`]).
    pub prefix: String,
    pub interval: Duration,
    pub mem_stats: bool,
    pub udp_packet_size: i64,
    pub exclude_ephemeral: bool,
}

impl Default for StatsdOptions {
    fn default() -> Self {
        StatsdOptions {
            address: String::new(),
            prefix: "nsq.%s".into(),
            interval: Duration::from_secs(60),
            mem_stats: true,
            udp_packet_size: 508,
            exclude_ephemeral: false,
        }
    }
}

impl StatsdOptions {
    /// Overwrites each option whose flag was given in `a`.
    pub(super) fn apply_flags(&mut self, a: &StatsdArgs) {
        set_if_given(&mut self.address, &a.statsd_address);
        set_if_given(&mut self.interval, &a.statsd_interval);
        set_if_given(&mut self.mem_stats, &a.statsd_mem_stats);
        set_if_given(&mut self.prefix, &a.statsd_prefix);
        set_if_given(&mut self.udp_packet_size, &a.statsd_udp_packet_size);
        set_if_given(&mut self.exclude_ephemeral, &a.statsd_exclude_ephemeral);
    }

    /// Sets the option called `key` (its config-file name); `None` when the key is not one
    /// of these.
    pub(super) fn set_by_cfg_name(
        &mut self,
        key: &str,
        value: &toml::Value,
    ) -> Option<Result<(), SetError>> {
        let result = match key {
            "statsd_address" => string(value).map(|v| self.address = v),
            "statsd_prefix" => string(value).map(|v| self.prefix = v),
            "statsd_interval" => positive_duration(value).map(|v| self.interval = v),
            "statsd_mem_stats" => boolean(value).map(|v| self.mem_stats = v),
            "statsd_udp_packet_size" => positive_int(value).map(|v| self.udp_packet_size = v),
            "statsd_exclude_ephemeral" => boolean(value).map(|v| self.exclude_ephemeral = v),
            _ => return None,
        };
        Some(result)
    }

    /// The option called `name` (its config-file name) as `GET /config/:opt` answers it.
    pub(super) fn get_by_cfg_name(&self, name: &str) -> Option<serde_json::Value> {
        use serde_json::json;
        Some(match name {
            "statsd_address" => json!(self.address),
            "statsd_prefix" => json!(self.prefix),
            "statsd_interval" => json!(self.interval.as_nanos() as u64),
            "statsd_mem_stats" => json!(self.mem_stats),
            "statsd_udp_packet_size" => json!(self.udp_packet_size),
            "statsd_exclude_ephemeral" => json!(self.exclude_ephemeral),
            _ => return None,
        })
    }

    /// The prefix every key is sent under, as Go nsqd builds it: each `%s` replaced by the
    /// host key (`broadcast_address:http_port`, joined as Go's `net.JoinHostPort` does, with
    /// every `.` and `:` made `_`), then a `.` added unless it ends in one. An empty prefix
    /// stays empty.
    pub fn key_prefix(&self, broadcast_address: &str, http_port: u16) -> String {
        if self.prefix.is_empty() {
            return String::new();
        }
        let joined = if broadcast_address.contains(':') {
            format!("[{broadcast_address}]:{http_port}")
        } else {
            format!("{broadcast_address}:{http_port}")
        };
        let host_key = joined.replace(['.', ':'], "_");
        let mut prefix = self.prefix.replace("%s", &host_key);
        if !prefix.ends_with('.') {
            prefix.push('.');
        }
        prefix
    }

    /// # Errors
    /// A [`ConfigError`] naming the statsd flag whose value cannot work: an address that is
    /// not `host:port` (an empty host is this machine, as Go dials it), a zero interval (Go's
    /// ticker panics on it) or a packet size under 1.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| {
            Err(ConfigError::BadValue {
                origin: "option",
                key: key.into(),
                message,
            })
        };
        if !self.address.is_empty() {
            let port = self.address.rsplit_once(':').map(|(_, port)| port);
            if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                return fail(
                    "statsd-address",
                    format!("invalid address {:?}: expected host:port", self.address),
                );
            }
        }
        if self.interval.is_zero() {
            return fail("statsd-interval", "must be greater than 0s, got 0s".into());
        }
        if self.udp_packet_size <= 0 {
            return fail(
                "statsd-udp-packet-size",
                format!("must be greater than 0, got {}", self.udp_packet_size),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefix_is_gos() {
        let opts = StatsdOptions::default();
        assert_eq!(opts.key_prefix("10.0.0.1", 4151), "nsq.10_0_0_1_4151.");
        assert_eq!(
            opts.key_prefix("nsq-1.example", 80),
            "nsq.nsq-1_example_80."
        );
        assert_eq!(opts.key_prefix("::1", 4151), "nsq.[__1]_4151.");
        let custom = |prefix: &str| StatsdOptions {
            prefix: prefix.into(),
            ..StatsdOptions::default()
        };
        assert_eq!(custom("").key_prefix("h", 1), "");
        assert_eq!(custom("app.").key_prefix("h", 1), "app.");
        assert_eq!(custom("a.%s.b.%s").key_prefix("h", 1), "a.h_1.b.h_1.");
    }

    #[test]
    fn refuses_values_that_cannot_work() {
        let check = |edit: fn(&mut StatsdOptions), flag: &str| {
            let mut opts = StatsdOptions::default();
            edit(&mut opts);
            let message = opts.validate().unwrap_err().to_string();
            assert!(message.contains(flag), "{flag}: {message}");
        };
        check(|o| o.address = "statsd".into(), "statsd-address");
        check(|o| o.address = "statsd:port".into(), "statsd-address");
        check(|o| o.interval = Duration::ZERO, "statsd-interval");
        check(|o| o.udp_packet_size = 0, "statsd-udp-packet-size");
        let ok = StatsdOptions {
            address: ":8125".into(),
            ..StatsdOptions::default()
        };
        assert!(ok.validate().is_ok());
    }
}
