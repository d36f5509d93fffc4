//! The `rnsq` command line: `rnsq [nsqd] [FLAGS]`, `rnsq nsqlookupd [FLAGS]`,
//! `rnsq meta export|import|check`, `rnsq bench meta|writer|reader|pump`.
//!
//! Go's flag package also accepts single-dash long flags (`-data-path=x`), and nsqd deployment
//! scripts use them; [`normalize_args`] rewrites those to the double-dash form before parsing.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::bench::connections::Greeting;
use crate::bench::transport_args::TransportArgs;
use crate::bench::writer::Body;
use crate::config::NsqdArgs;
use crate::nsqlookupd::NsqlookupdArgs;
use crate::options::duration;

/// An NSQ-compatible message broker with crash-safe metadata.
#[derive(Debug, Parser)]
#[command(name = "rnsq", version = version_text(), args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no subcommand, rnsq runs nsqd with these flags.
    #[command(flatten)]
    pub nsqd: NsqdArgs,
}

fn version_text() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), " (NSQ protocol v1.3.0)")
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (the default)
    #[command(version = version_text())]
    Nsqd(Box<NsqdArgs>),
    /// Run the lookup daemon (a drop-in for Go's nsqlookupd)
    #[command(version = version_text())]
    Nsqlookupd(Box<NsqlookupdArgs>),
    /// Export, import or check topic and channel metadata
    #[command(version = version_text(), subcommand)]
    Meta(MetaCommand),
    /// Benchmarks that print figures
    #[command(version = version_text(), subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Lookup: announcing every registration to a lookupd on connect, pipelined vs one round trip each
    #[command(version = version_text())]
    Lookup {
        /// Topics to register
        #[arg(long, default_value_t = 100_000)]
        topics: usize,
        /// Channels per topic (0: the topics register alone)
        #[arg(long, default_value_t = 1)]
        channels: usize,
        /// The lookupd to announce to (default: an rnsq nsqlookupd started in this process)
        #[arg(long, value_name = "ADDR")]
        lookupd_tcp_address: Option<String>,
    },
    /// Metadata: create throughput across the run, boot replay time, export time
    #[command(version = version_text())]
    Meta {
        /// Topics to create
        #[arg(long, default_value_t = 10_000)]
        topics: usize,
        /// Channels per topic
        #[arg(long, default_value_t = 2)]
        channels: usize,
        /// Creates in flight at once
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Data path to use (default: a fresh temp directory, removed afterwards)
        #[arg(long, value_name = "PATH")]
        data_path: Option<PathBuf>,
    },
    /// Publish throughput over TCP (Go NSQ's bench_writer): MPUB, or PUB with --batch-size 1
    #[command(version = version_text())]
    Writer {
        /// <addr>:<port> of nsqd's TCP listener
        #[arg(long, default_value = "127.0.0.1:4150", value_name = "ADDR")]
        nsqd_tcp_address: String,
        /// Topic to publish to
        #[arg(long, default_value = "sub_bench")]
        topic: String,
        /// Bytes per message
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// Messages per MPUB (1: PUB)
        #[arg(long, default_value_t = 200)]
        batch_size: usize,
        /// How long to run (Go duration)
        #[arg(long, default_value = "10s", value_parser = duration::parse)]
        runfor: Duration,
        /// How long to wait after connecting before starting (Go duration)
        #[arg(long, default_value = "0", value_parser = duration::parse)]
        deadline: Duration,
        /// Concurrent connections
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// What message bodies hold: compressible (every byte `a`) or random
        #[arg(long, value_enum, default_value_t = Body::Compressible)]
        body: Body,
        #[command(flatten)]
        transport: TransportArgs,
    },
    /// Consume throughput over TCP (Go NSQ's bench_reader): SUB, RDY, FIN each message
    #[command(version = version_text())]
    Reader {
        /// <addr>:<port> of nsqd's TCP listener
        #[arg(long, default_value = "127.0.0.1:4150", value_name = "ADDR")]
        nsqd_tcp_address: String,
        /// Topic to read from
        #[arg(long, default_value = "sub_bench")]
        topic: String,
        /// Channel to read from
        #[arg(long, default_value = "ch")]
        channel: String,
        /// Bytes per message (for MiB/s)
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// How long to run (Go duration)
        #[arg(long, default_value = "10s", value_parser = duration::parse)]
        runfor: Duration,
        /// How long to wait after subscribing before starting (Go duration)
        #[arg(long, default_value = "0", value_parser = duration::parse)]
        deadline: Duration,
        /// RDY count per connection
        #[arg(long, default_value_t = 2500)]
        rdy: u64,
        /// Concurrent connections
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[command(flatten)]
        transport: TransportArgs,
    },
    /// A reconnect storm: every connection at once, answered; then held idle (memory, /stats)
    #[command(version = version_text())]
    Connections {
        /// <addr>:<port> of the port to storm
        #[arg(long, default_value = "127.0.0.1:4150", value_name = "ADDR")]
        address: String,
        /// What each connection sends: v2 (nsqd TCP), v1 (nsqlookupd TCP) or http
        #[arg(long, value_enum, default_value_t = Greeting::V2)]
        greeting: Greeting,
        /// Connections opened at once
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// The server's pid, to report its resident memory per idle connection
        #[arg(long, value_name = "PID")]
        server_pid: Option<u32>,
        /// nsqd's HTTP address, to time GET /stats while every connection is held
        #[arg(long, value_name = "ADDR")]
        stats_address: Option<String>,
        /// v2: subscribe every connection to TOPIC/CHANNEL after IDENTIFY (RDY 0)
        #[arg(long, value_name = "TOPIC/CHANNEL", value_parser = topic_channel)]
        subscribe: Option<(String, String)>,
        /// How long to hold the idle connections before reading the memory (Go duration)
        #[arg(long, default_value = "2s", value_parser = duration::parse)]
        hold: Duration,
    },
    /// The loopback ceiling: message frames one way over one 127.0.0.1 socket, no broker
    #[command(version = version_text())]
    Pump {
        /// Body bytes per message frame
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// How long to run (Go duration)
        #[arg(long, default_value = "10s", value_parser = duration::parse)]
        runfor: Duration,
        /// Bytes gathered per write (nsqd's default output buffer is 16 KiB)
        #[arg(long, default_value_t = 16 * 1024)]
        buffer_size: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum MetaCommand {
    /// Print the metadata as nsqd.dat JSON (asks the running broker when one holds the data path)
    #[command(version = version_text())]
    Export {
        /// Data path of the broker
        #[arg(long, default_value = "./data", value_name = "PATH")]
        data_path: PathBuf,
        /// Write to FILE instead of standard output
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Apply an nsqd.dat file (Go nsqd's or rnsq's) to the store, in one transaction
    #[command(version = version_text())]
    Import {
        /// The nsqd.dat file to import
        file: PathBuf,
        /// Data path of the broker (which must not be running)
        #[arg(long, default_value = "./data", value_name = "PATH")]
        data_path: PathBuf,
        /// Also remove topics and channels the file lacks
        #[arg(long)]
        replace: bool,
    },
    /// Verify the store and print its counts
    #[command(version = version_text())]
    Check {
        /// Data path of the broker (which must not be running)
        #[arg(long, default_value = "./data", value_name = "PATH")]
        data_path: PathBuf,
    },
}

/// `TOPIC/CHANNEL`, for `bench connections --subscribe`.
fn topic_channel(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((topic, channel)) if !topic.is_empty() && !channel.is_empty() => {
            Ok((topic.to_string(), channel.to_string()))
        }
        _ => Err(format!("{text:?} is not TOPIC/CHANNEL")),
    }
}

/// Rewrites Go-style single-dash long flags (`-data-path=x`, `-mem-queue-size 5`) as
/// `--data-path=x`; leaves short flags (`-o`), values and everything after `--` alone.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (index, arg) in args.into_iter().enumerate() {
        if index == 0 || passthrough {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let name = arg.strip_prefix('-').unwrap_or("");
        let flag = name.split('=').next().unwrap_or("");
        let go_style = !name.starts_with('-')
            && flag.len() > 1
            && flag.starts_with(|c: char| c.is_ascii_lowercase())
            && flag
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        out.push(if go_style { format!("-{arg}") } else { arg });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn go_style_flags_become_long_flags() {
        assert_eq!(
            norm(&[
                "rnsq",
                "-data-path=/x",
                "-mem-queue-size",
                "5",
                "--tcp-address",
                "a:1",
                "-o",
                "f"
            ]),
            [
                "rnsq",
                "--data-path=/x",
                "--mem-queue-size",
                "5",
                "--tcp-address",
                "a:1",
                "-o",
                "f"
            ]
        );
        assert_eq!(
            norm(&["rnsq", "--", "-data-path"]),
            ["rnsq", "--", "-data-path"]
        );
        assert_eq!(norm(&["rnsq", "-1s"]), ["rnsq", "-1s"]);
    }

    #[test]
    fn parses_subcommands_and_default() {
        let cli = Cli::try_parse_from(norm(&["rnsq", "-data-path=/x"])).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.nsqd.data_path, Some(PathBuf::from("/x")));
        let cli = Cli::try_parse_from(["rnsq", "meta", "import", "f.dat", "--replace"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Meta(MetaCommand::Import { replace: true, .. }))
        ));
        let cli = Cli::try_parse_from([
            "rnsq",
            "nsqd",
            "--lookupd-tcp-address",
            "a:1",
            "--lookupd-tcp-address",
            "b:2",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Nsqd(args)) => assert_eq!(args.lookupd_tcp_address, ["a:1", "b:2"]),
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from(norm(&[
            "rnsq",
            "bench",
            "writer",
            "-runfor=1m30s",
            "--batch-size",
            "1",
        ]))
        .unwrap();
        match cli.command {
            Some(Command::Bench(BenchCommand::Writer {
                runfor,
                batch_size,
                deadline,
                ref topic,
                ..
            })) => {
                assert_eq!(runfor, Duration::from_secs(90));
                assert_eq!(batch_size, 1);
                assert_eq!(deadline, Duration::ZERO);
                assert_eq!(topic, "sub_bench");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["rnsq", "bench", "pump", "--runfor", "10"]).is_err());
        let cli = Cli::try_parse_from(norm(&[
            "rnsq",
            "-max-bytes-per-file=4096",
            "-sync-every",
            "10",
            "-sync-timeout=250ms",
            "-durable",
        ]))
        .unwrap();
        assert_eq!(cli.nsqd.max_bytes_per_file, Some(4096));
        assert_eq!(cli.nsqd.sync_every, Some(10));
        assert_eq!(cli.nsqd.sync_timeout, Some(Duration::from_millis(250)));
        assert_eq!(cli.nsqd.durable, Some(true));
        // Go's bool flags take an explicit value after `=`; the next word is not one.
        let cli = Cli::try_parse_from(norm(&["rnsq", "-durable=false"])).unwrap();
        assert_eq!(cli.nsqd.durable, Some(false));
        let cli =
            Cli::try_parse_from(norm(&["rnsq", "nsqd", "--durable", "--sync-every", "3"])).unwrap();
        match cli.command {
            Some(Command::Nsqd(args)) => {
                assert_eq!(args.durable, Some(true));
                assert_eq!(args.sync_every, Some(3));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(Cli::try_parse_from(["rnsq"]).unwrap().nsqd.durable, None);
        assert!(Cli::try_parse_from(["rnsq", "--sync-timeout", "abc"]).is_err());
        let cli = Cli::try_parse_from(norm(&[
            "rnsq",
            "nsqlookupd",
            "-tcp-address=127.0.0.1:5160",
            "-tombstone-lifetime",
            "1m",
        ]))
        .unwrap();
        match cli.command {
            Some(Command::Nsqlookupd(args)) => {
                assert_eq!(args.tcp_address.as_deref(), Some("127.0.0.1:5160"));
                assert_eq!(args.tombstone_lifetime, Some(Duration::from_secs(60)));
                assert_eq!(args.inactive_producer_timeout, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
