//! `rnsq bench lookup --topics N --channels M`: how long a broker with N×M registrations takes
//! to announce them all to a lookupd when it connects — pipelined in windows, as rnsq does,
//! against one round trip per command, as Go nsqd does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::BenchError;
use crate::config::{LiveOptions, NsqdOptions};
use crate::console::say;
use crate::lookup::{announce_once, LookupContext};
use crate::lookup_wire::PeerInfo;
use crate::meta_store::{self, ImportMode, MetaStore};
use crate::metadata::{ChannelMeta, Metadata, TopicMeta};
use crate::nsqd::Nsqd;
use crate::nsqlookupd::config::NsqlookupdOptions;
use crate::nsqlookupd::Nsqlookupd;

/// The benchmark's parameters.
#[derive(Debug, Clone)]
struct LookupBench {
    topics: usize,
    channels: usize,
    /// The lookupd to announce to.
    lookupd_tcp_address: String,
}

fn metadata(topics: usize, channels: usize) -> Metadata {
    Metadata::from_topics((0..topics).map(|t| {
        TopicMeta {
            name: format!("topic-{t:07}"),
            paused: false,
            channels: (0..channels)
                .map(|c| ChannelMeta {
                    name: format!("channel-{c}"),
                    paused: false,
                })
                .collect(),
        }
    }))
}

/// Runs the benchmark against `lookupd_tcp_address`, or an rnsq nsqlookupd started here, and
/// prints its report.
pub async fn run(
    topics: usize,
    channels: usize,
    lookupd_tcp_address: Option<String>,
) -> Result<(), BenchError> {
    let (lookupd, address) = match lookupd_tcp_address {
        Some(address) => (None, address),
        None => {
            let options = NsqlookupdOptions {
                tcp_address: "127.0.0.1:0".into(),
                http_address: "127.0.0.1:0".into(),
                ..NsqlookupdOptions::default()
            };
            let lookupd = Nsqlookupd::start(options)
                .await
                .map_err(|e| BenchError::Task(e.to_string()))?;
            let address = lookupd.tcp_address().to_string();
            (Some(lookupd), address)
        }
    };
    let bench = LookupBench {
        topics,
        channels,
        lookupd_tcp_address: address,
    };
    let data_path = std::env::temp_dir().join(format!("rnsq-bench-lookup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_path);
    let result = measure(&bench, data_path.clone()).await;
    let _ = std::fs::remove_dir_all(&data_path);
    if let Some(lookupd) = lookupd {
        lookupd.shutdown().await;
    }
    result
}

async fn measure(bench: &LookupBench, data_path: PathBuf) -> Result<(), BenchError> {
    let prepared = Instant::now();
    let store_path = data_path.join(meta_store::STORE_DIR);
    let meta = metadata(bench.topics, bench.channels);
    tokio::task::spawn_blocking(move || -> Result<(), BenchError> {
        std::fs::create_dir_all(&store_path)?;
        let store = MetaStore::open(&store_path).map_err(|e| BenchError::Task(e.to_string()))?;
        store.import(&meta, ImportMode::Replace)?;
        Ok(())
    })
    .await??;
    let opts = NsqdOptions {
        data_path,
        tcp_address: "127.0.0.1:0".into(),
        http_address: "127.0.0.1:0".into(),
        ..NsqdOptions::default()
    };
    let nsqd = Nsqd::start(Arc::new(LiveOptions::new(opts, Box::new(|_| {})))).await?;
    let registrations = bench.topics * bench.channels.max(1);
    say(format!(
        "bench lookup: {} topics x {} channels = {registrations} registrations (prepared in {:.2?}), lookupd {}",
        bench.topics,
        bench.channels,
        prepared.elapsed(),
        bench.lookupd_tcp_address
    ));
    let context = LookupContext::new(
        nsqd.broker().clone(),
        PeerInfo {
            broadcast_address: "bench".into(),
            hostname: "bench".into(),
            tcp_port: nsqd.tcp_address().port(),
            http_port: nsqd.http_address().port(),
            version: crate::NSQ_VERSION.into(),
        },
        5 * 1024 * 1024,
    );
    let mut results = Vec::new();
    for (label, window) in [
        ("pipelined, 512 in flight", 512),
        ("one round trip per command (Go)", 1),
    ] {
        let started = Instant::now();
        let announced = announce_once(&bench.lookupd_tcp_address, &context, window)
            .await
            .map_err(|e| {
                BenchError::Task(format!("announce to {}: {e}", bench.lookupd_tcp_address))
            })?;
        let took = started.elapsed();
        say(format!(
            "{label}: {announced} registrations in {took:.2?} ({:.0} registrations/s)",
            announced as f64 / took.as_secs_f64().max(1e-9)
        ));
        results.push(took);
    }
    if let [pipelined, serial] = results[..] {
        say(format!(
            "pipelined is {:.1}x faster",
            serial.as_secs_f64() / pipelined.as_secs_f64().max(1e-9)
        ));
    }
    nsqd.shutdown().await;
    Ok(())
}
