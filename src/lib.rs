//! rnsq: an NSQ-compatible message broker whose topic and channel metadata is crash-safe in
//! sled. See README.md for how to run it.

pub mod accept;
pub mod auth;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod console;
pub mod data_lock;
pub mod durable_dir;
pub mod fd_limit;
pub mod fuzzing;
pub mod guid;
pub mod http;
pub mod http_serve;
pub mod listen;
pub mod loader;
pub mod log_prefix;
pub mod lookup;
pub mod lookup_wire;
pub mod message;
pub mod meta_cli;
pub mod meta_store;
pub mod metadata;
pub mod names;
pub mod nsqd;
pub mod nsqd_dat;
pub mod nsqlookupd;
pub mod options;
pub mod protocol;
pub mod queue;
pub mod read_deadline;
pub mod resident;
pub mod session;
pub mod statsd;
pub mod tcp;
pub mod tls;
pub mod transport;

/// The Go NSQ release whose protocols and formats rnsq speaks; reported wherever nsqd reports
/// its version (`/info`, `/stats`, `nsqd.dat`).
pub const NSQ_VERSION: &str = "1.3.0";
