//! The output-buffer timeout options a client's IDENTIFY is held to: the timeout a client gets
//! unless it asks otherwise (`--output-buffer-timeout`) and the smallest it may ask for
//! (`--min-output-buffer-timeout`). The largest (`--max-output-buffer-timeout`) and the buffer
//! size bound are nsqd's older options, beside the others in [`super::NsqdOptions`].

use std::time::Duration;

use clap::Args;

use crate::options::config_file::SetError;
use crate::options::value::{go_duration, positive_duration};
use crate::options::{duration, set_if_given, ConfigError};

/// The output-buffer timeout flags.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputBufferArgs {
    /// Time between flushes of buffered data to a client, unless it asks otherwise [default: 250ms]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub output_buffer_timeout: Option<Duration>,
    /// Smallest output buffer timeout a client may ask for [default: 25ms]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub min_output_buffer_timeout: Option<Duration>,
}

/// The output-buffer timeout options.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputBufferOptions {
    /// What a client gets until its IDENTIFY says otherwise. Never zero (Go 1.3.0 panics on
    /// the first connection when it is).
    pub timeout: Duration,
    /// The smallest timeout IDENTIFY accepts, in whole milliseconds as Go compares it.
    pub min_timeout: Duration,
}

impl Default for OutputBufferOptions {
    fn default() -> Self {
        OutputBufferOptions {
            timeout: Duration::from_millis(250),
            min_timeout: Duration::from_millis(25),
        }
    }
}

impl OutputBufferOptions {
    /// Overwrites each option whose flag was given in `a`.
    pub(super) fn apply_flags(&mut self, a: &OutputBufferArgs) {
        set_if_given(&mut self.timeout, &a.output_buffer_timeout);
        set_if_given(&mut self.min_timeout, &a.min_output_buffer_timeout);
    }

    /// Sets the option called `key` (its config-file name); `None` when the key is not one
    /// of these.
    pub(super) fn set_by_cfg_name(
        &mut self,
        key: &str,
        value: &toml::Value,
    ) -> Option<Result<(), SetError>> {
        let result = match key {
            "output_buffer_timeout" => positive_duration(value).map(|d| self.timeout = d),
            "min_output_buffer_timeout" => go_duration(value).map(|d| self.min_timeout = d),
            _ => return None,
        };
        Some(result)
    }

    /// The option called `name` (its config-file name), in nanoseconds as Go answers it.
    pub(super) fn get_by_cfg_name(&self, name: &str) -> Option<serde_json::Value> {
        let ns = |d: Duration| serde_json::json!(d.as_nanos() as u64);
        Some(match name {
            "output_buffer_timeout" => ns(self.timeout),
            "min_output_buffer_timeout" => ns(self.min_timeout),
            _ => return None,
        })
    }

    /// # Errors
    /// `output-buffer-timeout` of zero: Go accepts it and then panics on the first client.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::BadValue {
                origin: "option",
                key: "output-buffer-timeout".into(),
                message: "must be greater than 0s, got 0s".into(),
            });
        }
        Ok(())
    }
}
