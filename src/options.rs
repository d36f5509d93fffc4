//! What both daemons' options are made of: the side-neutral pieces nsqd's `config` and
//! nsqlookupd's `config` share, so that neither daemon imports the other's options.
//!
//! Both resolve their options the same way, flag over file over default: start from the
//! defaults, apply the TOML file ([`config_file`], its values read by [`value`]), then overwrite
//! with each flag that was given ([`set_if_given`]), then validate. Every refusal on the way is
//! a [`ConfigError`]. The parts: `duration` (Go durations), `go_flag` (Go's flag spellings), `log_level`, `address` (listen
//! addresses, `host:port` peers, this machine's host name).

mod address;
pub(crate) mod config_file;
pub mod duration;
pub mod go_flag;
mod log_level;
pub(crate) mod value;

use std::path::PathBuf;

pub use address::{hostname, listen_address, validate_host_port};
pub use log_level::LogLevel;

/// A config or flag problem, naming the key or flag and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: unknown key `{key}`")]
    UnknownKey { path: PathBuf, key: String },
    #[error("{path}: key `{key}` is an {daemon} option rnsq does not support yet")]
    Unsupported {
        path: PathBuf,
        key: String,
        /// `nsqd` or `nsqlookupd`: whose option the key is.
        daemon: &'static str,
    },
    #[error("{origin} `{key}`: {message}")]
    BadValue {
        origin: &'static str,
        key: String,
        message: String,
    },
}

/// Overwrites `slot` with a flag's value when the flag was given.
pub(crate) fn set_if_given<T: Clone>(slot: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *slot = v.clone();
    }
}
