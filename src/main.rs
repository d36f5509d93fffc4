//! The `rnsq` binary: parses the command line, sets up logging, and runs the chosen command.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use rnsq::cli::{normalize_args, BenchCommand, Cli, Command, MetaCommand};
use rnsq::config::{LiveOptions, NsqdArgs, NsqdOptions};
use rnsq::log_prefix::PrefixedStderr;
use rnsq::nsqd::Nsqd;
use rnsq::nsqlookupd::{Nsqlookupd, NsqlookupdArgs, NsqlookupdOptions};
use rnsq::options::LogLevel;

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Fatal => LevelFilter::ERROR,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    let result = match cli.command {
        None => run_nsqd(&cli.nsqd),
        Some(Command::Nsqd(args)) => run_nsqd(&args),
        Some(Command::Nsqlookupd(args)) => run_nsqlookupd(&args),
        Some(Command::Meta(command)) => {
            init_plain_logging();
            run_meta(command)
        }
        Some(Command::Bench(command)) => {
            init_plain_logging();
            run_bench(command)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rnsq: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the message before it
/// already includes (most of rnsq's errors quote their cause).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn init_plain_logging() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::WARN)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run_meta(command: MetaCommand) -> anyhow::Result<()> {
    match command {
        MetaCommand::Export { data_path, output } => {
            rnsq::meta_cli::export(&data_path, output.as_deref())?
        }
        MetaCommand::Import {
            file,
            data_path,
            replace,
        } => rnsq::meta_cli::import(&data_path, &file, replace)?,
        MetaCommand::Check { data_path } => rnsq::meta_cli::check(&data_path)?,
    }
    Ok(())
}

fn run_bench(command: BenchCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match command {
        BenchCommand::Lookup {
            topics,
            channels,
            lookupd_tcp_address,
        } => {
            runtime.block_on(rnsq::bench::lookup::run(
                topics,
                channels,
                lookupd_tcp_address,
            ))?;
        }
        BenchCommand::Meta {
            topics,
            channels,
            concurrency,
            data_path,
        } => {
            runtime.block_on(rnsq::bench::meta::run(rnsq::bench::meta::MetaBench {
                topics,
                channels,
                concurrency,
                data_path,
            }))?;
        }
        BenchCommand::Writer {
            nsqd_tcp_address,
            topic,
            size,
            batch_size,
            runfor,
            deadline,
            workers,
            body,
            transport,
        } => {
            let transport = transport.transport()?;
            runtime.block_on(rnsq::bench::writer::run(rnsq::bench::writer::WriterBench {
                address: nsqd_tcp_address,
                topic,
                size,
                batch_size,
                runfor,
                deadline,
                workers,
                body,
                transport,
            }))?;
        }
        BenchCommand::Reader {
            nsqd_tcp_address,
            topic,
            channel,
            size,
            runfor,
            deadline,
            rdy,
            workers,
            transport,
        } => {
            let transport = transport.transport()?;
            runtime.block_on(rnsq::bench::reader::run(rnsq::bench::reader::ReaderBench {
                address: nsqd_tcp_address,
                topic,
                channel,
                size,
                runfor,
                deadline,
                rdy,
                workers,
                transport,
            }))?;
        }
        BenchCommand::Connections {
            address,
            greeting,
            connections,
            server_pid,
            stats_address,
            subscribe,
            hold,
        } => {
            runtime.block_on(rnsq::bench::connections::run(
                rnsq::bench::connections::ConnectionsBench {
                    address,
                    greeting,
                    connections,
                    server_pid,
                    stats_address,
                    hold,
                    subscribe,
                },
            ))?;
        }
        BenchCommand::Pump {
            size,
            runfor,
            buffer_size,
        } => {
            runtime.block_on(rnsq::bench::pump::run(rnsq::bench::pump::PumpBench {
                size,
                runfor,
                buffer_size,
            }))?;
        }
    }
    Ok(())
}

fn run_nsqd(args: &NsqdArgs) -> anyhow::Result<()> {
    let options = NsqdOptions::resolve(args)?;
    let (filter, reload_handle) = reload::Layer::new(level_filter(options.log_level));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(PrefixedStderr::new(options.compat.log_prefix.clone()))
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .try_init()
        .context("cannot set up logging")?;
    raise_descriptor_limit();
    let hook = Box::new(move |level: LogLevel| {
        if let Err(e) = reload_handle.modify(|f| *f = level_filter(level)) {
            tracing::error!(error = %e, "cannot change the log level");
        }
    });
    let options = Arc::new(LiveOptions::new(options, hook));
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let nsqd = Nsqd::start(options).await?;
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        nsqd.shutdown().await;
        Ok(())
    })
}

fn run_nsqlookupd(args: &NsqlookupdArgs) -> anyhow::Result<()> {
    let options = NsqlookupdOptions::resolve(args)?;
    tracing_subscriber::registry()
        .with(level_filter(options.log_level))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(PrefixedStderr::new(options.log_prefix.clone()))
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .try_init()
        .context("cannot set up logging")?;
    raise_descriptor_limit();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let nsqlookupd = Nsqlookupd::start(options).await?;
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        nsqlookupd.shutdown().await;
        Ok(())
    })
}

/// Takes every descriptor the hard limit allows, as a Go daemon does at start-up, so rnsq
/// serves as many connections as Go nsqd would under the same limits.
fn raise_descriptor_limit() {
    match rnsq::fd_limit::raise_to_hard() {
        Ok(limits) => tracing::debug!(soft = limits.soft, hard = limits.hard, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
