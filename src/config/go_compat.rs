//! The nsqd 1.3.0 flags and config keys that exist for compatibility: `--log-prefix` (it
//! prefixes every log line), the deprecated `--verbose` and `--worker-id` (no effect in Go
//! 1.3.0 either), and Go's internal tuning knobs `--queue-scan-worker-pool-max` and
//! `--queue-scan-selection-count`, which tune Go's scan for expired in-flight and deferred
//! messages; rnsq fires a timer at each message's own instant, so they have nothing to tune.
//! The knobs and the deprecated flags are accepted, their values checked as Go parses them,
//! and each one given is named once at start-up by [`CompatOptions::no_effect`].

use clap::Args;

use crate::options::config_file::SetError;
use crate::options::go_flag;
use crate::options::set_if_given;
use crate::options::value::{boolean, int, string};

/// The compatibility flags. Every one is optional, so that a flag not given leaves the config
/// file's value in place.
#[derive(Debug, Clone, Default, Args)]
pub struct CompatArgs {
    /// Text put before every log line [default: "[nsqd] "]
    #[arg(long, value_name = "TEXT")]
    pub log_prefix: Option<String>,
    /// Deprecated in nsqd, no effect: use --log-level
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_flag::parse_bool)]
    pub verbose: Option<bool>,
    /// Deprecated in nsqd, no effect: use --node-id
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_flag::parse_bool)]
    pub worker_id: Option<bool>,
    /// Go nsqd's concurrency for scanning in-flight and deferred timeouts; no effect in rnsq,
    /// which times each message itself [default: 4]
    #[arg(long, value_name = "N")]
    pub queue_scan_worker_pool_max: Option<i64>,
    /// Go nsqd's channels checked per timeout-scan cycle; no effect in rnsq, which times each
    /// message itself [default: 20]
    #[arg(long, value_name = "N")]
    pub queue_scan_selection_count: Option<i64>,
}

/// The compatibility options.
#[derive(Debug, Clone, PartialEq)]
pub struct CompatOptions {
    /// Put before every log line, as Go's logger prefix.
    pub log_prefix: String,
    pub queue_scan_worker_pool_max: i64,
    pub queue_scan_selection_count: i64,
    /// The flags and keys given that have no effect, by flag name, in the order first given.
    pub no_effect_given: Vec<&'static str>,
}

impl Default for CompatOptions {
    fn default() -> Self {
        CompatOptions {
            log_prefix: "[nsqd] ".into(),
            queue_scan_worker_pool_max: 4,
            queue_scan_selection_count: 20,
            no_effect_given: Vec::new(),
        }
    }
}

impl CompatOptions {
    fn note(&mut self, flag: &'static str) {
        if !self.no_effect_given.contains(&flag) {
            self.no_effect_given.push(flag);
        }
    }

    /// Overwrites each option whose flag was given in `a`, noting the no-effect ones.
    pub(super) fn apply_flags(&mut self, a: &CompatArgs) {
        set_if_given(&mut self.log_prefix, &a.log_prefix);
        set_if_given(
            &mut self.queue_scan_worker_pool_max,
            &a.queue_scan_worker_pool_max,
        );
        set_if_given(
            &mut self.queue_scan_selection_count,
            &a.queue_scan_selection_count,
        );
        for (given, flag) in [
            (a.verbose.is_some(), "verbose"),
            (a.worker_id.is_some(), "worker-id"),
            (
                a.queue_scan_worker_pool_max.is_some(),
                "queue-scan-worker-pool-max",
            ),
            (
                a.queue_scan_selection_count.is_some(),
                "queue-scan-selection-count",
            ),
        ] {
            if given {
                self.note(flag);
            }
        }
    }

    /// Sets the option called `key` (its config-file name); `None` when the key is not one
    /// of these. `verbose` is no config key of Go 1.3.0 (which ignores unknown keys), but older
    /// nsqd config files carry it, so it is taken and noted.
    pub(super) fn set_by_cfg_name(
        &mut self,
        key: &str,
        value: &toml::Value,
    ) -> Option<Result<(), SetError>> {
        let result = (|| {
            match key {
                "log_prefix" => self.log_prefix = string(value)?,
                "verbose" => {
                    boolean(value)?;
                    self.note("verbose");
                }
                "queue_scan_worker_pool_max" => {
                    self.queue_scan_worker_pool_max = int(value)?;
                    self.note("queue-scan-worker-pool-max");
                }
                "queue_scan_selection_count" => {
                    self.queue_scan_selection_count = int(value)?;
                    self.note("queue-scan-selection-count");
                }
                _ => return Err(SetError::Unknown),
            }
            Ok(())
        })();
        match result {
            Err(SetError::Unknown) => None,
            other => Some(other),
        }
    }

    /// The option called `name` (its config-file name) as `GET /config/:opt` answers it.
    pub(super) fn get_by_cfg_name(&self, name: &str) -> Option<serde_json::Value> {
        use serde_json::json;
        Some(match name {
            "log_prefix" => json!(self.log_prefix),
            "queue_scan_worker_pool_max" => json!(self.queue_scan_worker_pool_max),
            "queue_scan_selection_count" => json!(self.queue_scan_selection_count),
            _ => return None,
        })
    }

    /// One line per no-effect flag or key given, for the start-up log.
    pub fn no_effect(&self) -> Vec<String> {
        self.no_effect_given
            .iter()
            .map(|flag| match *flag {
                "verbose" => "--verbose is deprecated and has no effect (as in nsqd 1.3.0); use --log-level".to_string(),
                "worker-id" => "--worker-id is deprecated and has no effect (as in nsqd 1.3.0); use --node-id".to_string(),
                knob => format!("--{knob} has no effect: it tunes Go nsqd's timeout scan, and rnsq times each in-flight and deferred message itself"),
            })
            .collect()
    }
}
