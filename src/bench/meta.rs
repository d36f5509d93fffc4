//! `rnsq bench meta --topics N --channels M`: metadata create throughput across the run
//! (first 10% against last 10%, which must be flat), boot replay time, export time, and what
//! Go nsqd's whole-file rewrite would cost per change at the final size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::BenchError;
use crate::broker::BrokerError;
use crate::config::{LiveOptions, NsqdOptions};
use crate::console::say;
use crate::nsqd::Nsqd;
use crate::nsqd_dat;

/// The benchmark's parameters.
#[derive(Debug, Clone)]
pub struct MetaBench {
    pub topics: usize,
    pub channels: usize,
    /// How many creates run at once (HTTP clients would; sled shares fsyncs between them).
    pub concurrency: usize,
    /// Where to put the data; a fresh directory under the system temp dir when `None`.
    pub data_path: Option<PathBuf>,
}

fn options(data_path: &std::path::Path) -> Arc<LiveOptions> {
    let opts = NsqdOptions {
        data_path: data_path.into(),
        tcp_address: "127.0.0.1:0".into(),
        http_address: "127.0.0.1:0".into(),
        ..NsqdOptions::default()
    };
    Arc::new(LiveOptions::new(opts, Box::new(|_| {})))
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Runs the benchmark and prints its report.
pub async fn run(bench: MetaBench) -> Result<(), BenchError> {
    let owned_dir = bench.data_path.is_none();
    let data_path = bench.data_path.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("rnsq-bench-meta-{}", std::process::id()))
    });
    if owned_dir {
        let _ = std::fs::remove_dir_all(&data_path);
    }
    let result = measure(&bench, &data_path).await;
    if owned_dir {
        let _ = std::fs::remove_dir_all(&data_path);
    }
    result
}

async fn measure(bench: &MetaBench, data_path: &std::path::Path) -> Result<(), BenchError> {
    say(format!(
        "bench meta: {} topics x {} channels, concurrency {}, data path {}",
        bench.topics,
        bench.channels,
        bench.concurrency,
        data_path.display()
    ));
    let nsqd = Nsqd::start(options(data_path)).await?;
    let broker = nsqd.broker().clone();
    let limit = Arc::new(Semaphore::new(bench.concurrency.max(1)));
    // Each entry: when the topic and its channels were done, and how long they took.
    let mut tasks = Vec::with_capacity(bench.topics);
    let started = Instant::now();
    for i in 0..bench.topics {
        let permit = limit.clone().acquire_owned().await?;
        let broker = broker.clone();
        let channels = bench.channels;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let began = Instant::now();
            let topic = broker.get_or_create_topic(&format!("topic-{i:07}")).await?;
            for c in 0..channels {
                broker
                    .get_or_create_channel(&topic, &format!("channel-{c}"))
                    .await?;
            }
            Ok::<_, BrokerError>((i, began.elapsed(), began))
        }));
    }
    let mut done = Vec::with_capacity(bench.topics);
    for task in tasks {
        done.push(task.await??);
    }
    let total = started.elapsed();
    done.sort_by_key(|(i, _, _)| *i);
    let tenth = (bench.topics / 10).max(1);
    let window = |slice: &[(usize, Duration, Instant)]| {
        let first = slice.iter().map(|(_, _, at)| *at).min().unwrap_or(started);
        let last = slice
            .iter()
            .map(|(_, took, at)| *at + *took)
            .max()
            .unwrap_or(started);
        let mean =
            slice.iter().map(|(_, took, _)| *took).sum::<Duration>() / slice.len().max(1) as u32;
        (rate(slice.len() * (1 + bench.channels), last - first), mean)
    };
    let (first_rate, first_latency) = window(&done[..tenth.min(done.len())]);
    let (last_rate, last_latency) = window(&done[done.len().saturating_sub(tenth)..]);
    let ops = bench.topics * (1 + bench.channels);
    say(format!(
        "create: {ops} changes in {total:.2?} = {:.0} changes/s, each flushed before it returned",
        rate(ops, total)
    ));
    say(format!(
        "  first 10%: {first_rate:.0} changes/s, {first_latency:.2?} per topic with its channels"
    ));
    say(format!(
        "  last 10%:  {last_rate:.0} changes/s, {last_latency:.2?} per topic with its channels"
    ));
    say(format!(
        "  last/first throughput ratio: {:.2}",
        last_rate / first_rate.max(1e-9)
    ));

    // One change at a time at the final size, against what Go nsqd pays per change there.
    let probes = 200;
    let probe_started = Instant::now();
    for i in 0..probes {
        broker.get_or_create_topic(&format!("probe-{i:04}")).await?;
    }
    let one_change = probe_started.elapsed() / probes;
    let store = broker.store().clone();
    let export_started = Instant::now();
    let metadata = tokio::task::spawn_blocking(move || store.snapshot()).await??;
    let rendered = nsqd_dat::render(&metadata);
    let export_time = export_started.elapsed();
    say(format!(
        "export: {} topics, {} bytes of nsqd.dat JSON in {export_time:.2?}",
        metadata.topics.len(),
        rendered.len()
    ));
    let scratch = data_path.join("bench-scratch");
    std::fs::create_dir_all(&scratch)?;
    let rewrite_started = Instant::now();
    nsqd_dat::write_atomic(&scratch, &metadata)?;
    let rewrite = rewrite_started.elapsed();
    say(format!(
        "one change at this size, alone: {one_change:.2?} (mean of {probes}); Go nsqd's per-change \
         whole-file rewrite here: {rewrite:.2?} ({:.1}x rnsq's)",
        rewrite.as_secs_f64() / one_change.as_secs_f64().max(1e-9)
    ));
    drop(broker);
    nsqd.shutdown().await;

    let boot_started = Instant::now();
    let nsqd = Nsqd::start(options(data_path)).await?;
    let boot = boot_started.elapsed();
    let report = nsqd.load_report().clone();
    say(format!(
        "boot: {boot:.2?} to serving (sled open + replay + nsqd.dat rewrite); replay alone {:.2?} \
         for {} topics and {} channels",
        report.elapsed, report.topics, report.channels
    ));
    nsqd.shutdown().await;
    Ok(())
}
