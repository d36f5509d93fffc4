//! The statsd push (`--statsd-address`): every `--statsd-interval`, the figures `/stats`
//! shows go to a statsd daemon over UDP as Go nsqd 1.3.0 sends them (`nsqd/statsd.go`).
//!
//! # What is sent
//! Lines `<prefix><stat>:<value>|c` (a counter: the change since the last push) or `|g` (a
//! gauge: the value now), the prefix built by
//! [`StatsdOptions::key_prefix`](crate::config::StatsdOptions::key_prefix). Per topic `T`:
//! `topic.T.message_count|c`, `.message_bytes|c`, `.depth|g`, `.backend_depth|g`, and
//! `.e2e_processing_latency_<P>|g` (nanoseconds, `P` the percentile ×100 rounded) for each
//! `--e2e-processing-latency-percentile`. Per channel `C`: `topic.T.channel.C.message_count|c`,
//! `.depth|g`, `.backend_depth|g`, `.in_flight_count|g`, `.deferred_count|g`,
//! `.requeue_count|c`, `.timeout_count|c`, `.clients|g` and the same latency gauges. The
//! first push counts from zero, as Go's does. With `--statsd-exclude-ephemeral`, topics and
//! channels named `…#ephemeral` are left out.
//!
//! # Memory (`--statsd-mem-stats`)
//! Go sends its garbage-collected heap's figures. rnsq has no such heap, so it sends only
//! what it can say truthfully under Go's names: `mem.heap_in_use_bytes|g` is the process's
//! resident set (`/proc/self/statm`, as `/stats` reports it under the same key),
//! `mem.gc_pause_usec_100|g`, `_99|g`, `_95|g` are 0 and `mem.gc_runs|c` is 0 (there is no
//! collector, so no pause and no run). `mem.heap_objects`, `mem.heap_idle_bytes`,
//! `mem.heap_released_bytes` and `mem.next_gc_bytes` have no counterpart and are not sent.
//!
//! # Packets
//! Lines are packed into UDP packets of at most `--statsd-udp-packet-size` bytes without
//! splitting a line; a single longer line goes alone in its own packet (Go's buffered writer
//! does the same). As in Go, a push's packets are spread over the interval less one second;
//! with an interval of a second or less they go at once (Go's ticker would panic there). A
//! fresh socket is used per push, so an address whose name resolves anew is followed; a push
//! that cannot open one is logged and skipped, and send errors (nobody listening) are ignored
//! as Go ignores them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::broker::{latency, Broker, Channel};
use crate::config::StatsdOptions;
use crate::names::is_ephemeral;

/// What one statsd loop needs, resolved at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    /// `host:port` of the statsd daemon (an empty host is this machine).
    pub address: String,
    /// The prefix with `%s` already replaced; empty or ending in `.`.
    pub prefix: String,
    pub interval: Duration,
    pub mem_stats: bool,
    pub packet_size: usize,
    pub exclude_ephemeral: bool,
}

impl StatsdConfig {
    /// The loop's settings from the options, `broadcast_address` and the HTTP port lookupd
    /// is told; `None` when no statsd address is set (no loop runs).
    pub fn from_options(
        options: &StatsdOptions,
        broadcast_address: &str,
        http_port: u16,
    ) -> Option<StatsdConfig> {
        if options.address.is_empty() {
            return None;
        }
        Some(StatsdConfig {
            address: options.address.clone(),
            prefix: options.key_prefix(broadcast_address, http_port),
            interval: options.interval,
            mem_stats: options.mem_stats,
            packet_size: usize::try_from(options.udp_packet_size).unwrap_or(1).max(1),
            exclude_ephemeral: options.exclude_ephemeral,
        })
    }
}

/// A channel's counters at the last push.
#[derive(Debug, Default, Clone, Copy)]
struct ChannelCounts {
    message_count: u64,
    requeue_count: u64,
    timeout_count: u64,
}

/// A topic's counters at the last push.
#[derive(Debug, Default)]
struct TopicCounts {
    message_count: u64,
    message_bytes: u64,
    channels: HashMap<String, ChannelCounts>,
}

/// Lines of one push.
struct Lines<'a> {
    prefix: &'a str,
    out: Vec<String>,
}

impl Lines<'_> {
    fn counter(&mut self, stat: &str, delta: i64) {
        self.out.push(format!("{}{stat}:{delta}|c\n", self.prefix));
    }

    fn gauge(&mut self, stat: &str, value: i64) {
        self.out.push(format!("{}{stat}:{value}|g\n", self.prefix));
    }

    /// The latency gauges of `stat` (`topic.T` or `topic.T.channel.C`) over `channels`.
    fn latency(&mut self, stat: &str, percentiles: &[f64], channels: &[Arc<Channel>]) {
        if percentiles.is_empty() {
            return;
        }
        let (mut samples, mut count) = (Vec::new(), 0);
        for channel in channels {
            channel.collect_latency(&mut samples, &mut count);
        }
        let result = latency::result(percentiles, samples, count);
        for item in result["percentiles"].as_array().into_iter().flatten() {
            let quantile = item["quantile"].as_f64().unwrap_or(0.0);
            // Go casts the nanoseconds to an integer: truncation.
            let value = item["value"].as_f64().unwrap_or(0.0) as i64;
            self.gauge(
                &format!("{stat}.e2e_processing_latency_{:.0}", quantile * 100.0),
                value,
            );
        }
    }
}

/// A counter's change since the last push, as Go computes it on unsigned counters (a topic
/// deleted and re-created in between gives a negative change).
fn delta(now: u64, before: u64) -> i64 {
    now.wrapping_sub(before) as i64
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The topic and channel lines of one push; `previous` becomes this push's counters.
fn topic_lines(
    broker: &Broker,
    config: &StatsdConfig,
    previous: &mut HashMap<String, TopicCounts>,
    lines: &mut Lines<'_>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let percentiles = broker.e2e_percentiles();
    let mut now = HashMap::new();
    for topic in broker.topics() {
        let name = topic.name();
        let channels = topic.channels();
        let mut counts = TopicCounts {
            message_count: topic.message_count.load(Relaxed),
            message_bytes: topic.message_bytes.load(Relaxed),
            channels: HashMap::new(),
        };
        let last = previous.remove(name).unwrap_or_default();
        let skip_topic = config.exclude_ephemeral && is_ephemeral(name);
        if !skip_topic {
            let t = format!("topic.{name}");
            lines.counter(
                &format!("{t}.message_count"),
                delta(counts.message_count, last.message_count),
            );
            lines.counter(
                &format!("{t}.message_bytes"),
                delta(counts.message_bytes, last.message_bytes),
            );
            lines.gauge(&format!("{t}.depth"), gauge_value(topic.depth()));
            lines.gauge(
                &format!("{t}.backend_depth"),
                gauge_value(topic.backend_depth()),
            );
            lines.latency(&t, percentiles, &channels);
        }
        for channel in &channels {
            let c_name = channel.name();
            let c_counts = ChannelCounts {
                message_count: channel.message_count(),
                requeue_count: channel.requeue_count.load(Relaxed),
                timeout_count: channel.timeout_count.load(Relaxed),
            };
            counts.channels.insert(c_name.to_string(), c_counts);
            if skip_topic || (config.exclude_ephemeral && is_ephemeral(c_name)) {
                continue;
            }
            let c_last = last.channels.get(c_name).copied().unwrap_or_default();
            let c = format!("topic.{name}.channel.{c_name}");
            let (in_flight, deferred) = channel.flight_counts();
            lines.counter(
                &format!("{c}.message_count"),
                delta(c_counts.message_count, c_last.message_count),
            );
            lines.gauge(&format!("{c}.depth"), gauge_value(channel.depth()));
            lines.gauge(
                &format!("{c}.backend_depth"),
                gauge_value(channel.backend_depth()),
            );
            lines.gauge(&format!("{c}.in_flight_count"), gauge_value(in_flight));
            lines.gauge(&format!("{c}.deferred_count"), gauge_value(deferred));
            lines.counter(
                &format!("{c}.requeue_count"),
                delta(c_counts.requeue_count, c_last.requeue_count),
            );
            lines.counter(
                &format!("{c}.timeout_count"),
                delta(c_counts.timeout_count, c_last.timeout_count),
            );
            lines.gauge(
                &format!("{c}.clients"),
                gauge_value(channel.clients().len()),
            );
            lines.latency(&c, percentiles, std::slice::from_ref(channel));
        }
        now.insert(name.to_string(), counts);
    }
    *previous = now;
}

/// The memory lines (see the module docs for why only these).
fn mem_lines(resident_bytes: Option<u64>, lines: &mut Lines<'_>) {
    if let Some(bytes) = resident_bytes {
        lines.gauge(
            "mem.heap_in_use_bytes",
            i64::try_from(bytes).unwrap_or(i64::MAX),
        );
    }
    for p in ["100", "99", "95"] {
        lines.gauge(&format!("mem.gc_pause_usec_{p}"), 0);
    }
    lines.counter("mem.gc_runs", 0);
}

/// Packs whole `lines` into packets of at most `size` bytes, in order; a line longer than
/// `size` goes alone in a packet of its own.
pub fn pack(lines: &[String], size: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(size);
    for line in lines {
        if !current.is_empty() && current.len() + line.len() > size {
            packets.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(line.as_bytes());
        if current.len() >= size {
            packets.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        packets.push(current);
    }
    packets
}

/// Sends `packets` to `address` on a fresh socket, spread over `spread` (nothing when zero).
/// Once `shutdown` is cancelled the rest goes out without waiting.
async fn send(
    address: &str,
    packets: &[Vec<u8>],
    spread: Duration,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    // An empty host is this machine, as Go's dialer reads it.
    let target = if address.starts_with(':') {
        format!("127.0.0.1{address}")
    } else {
        address.to_string()
    };
    let peer = tokio::net::lookup_host(&target)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("resolves to no address"))?;
    let local = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(peer).await?;
    let gap = spread / u32::try_from(packets.len().max(1)).unwrap_or(u32::MAX);
    for packet in packets {
        if let Err(e) = socket.send(packet).await {
            tracing::debug!(error = %e, "statsd packet not sent");
        }
        if !gap.is_zero() && !shutdown.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep(gap) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
    Ok(())
}

/// Pushes to statsd every `config.interval` (the first push one interval after start) until
/// `shutdown` is cancelled; a push under way when it is finishes its sends at once. Never
/// fails: a push that cannot reach the daemon is logged and the next one tried.
pub async fn run(broker: Arc<Broker>, config: StatsdConfig, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + config.interval,
        config.interval,
    );
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let spread = config.interval.saturating_sub(Duration::from_secs(1));
    let mut previous = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let mut lines = Lines {
            prefix: &config.prefix,
            out: Vec::new(),
        };
        topic_lines(&broker, &config, &mut previous, &mut lines);
        if config.mem_stats {
            mem_lines(crate::resident::of_self().await, &mut lines);
        }
        let packets = pack(&lines.out, config.packet_size);
        tracing::debug!(address = %config.address, lines = lines.out.len(), packets = packets.len(), "pushing stats to statsd");
        if let Err(e) = send(&config.address, &packets, spread, &shutdown).await {
            tracing::error!(address = %config.address, error = %e, "cannot send to statsd");
        }
    }
    tracing::info!("statsd push stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn packs_whole_lines_up_to_the_size() {
        let input = lines(&["aaaa\n", "bbbb\n", "cc\n", "dddddddddddd\n", "e\n"]);
        let packets = pack(&input, 10);
        let text: Vec<&str> = packets
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect();
        assert_eq!(text, ["aaaa\nbbbb\n", "cc\n", "dddddddddddd\n", "e\n"]);
        assert!(pack(&[], 10).is_empty());
        assert_eq!(pack(&lines(&["a\n", "b\n"]), 508), vec![b"a\nb\n".to_vec()]);
    }

    #[test]
    fn counters_are_deltas_as_go_computes_them() {
        assert_eq!(delta(10, 3), 7);
        assert_eq!(delta(5, 5), 0);
        assert_eq!(delta(2, 5), -3);
    }

    #[test]
    fn latency_names_round_the_percentile_as_go() {
        let mut out = Lines {
            prefix: "p.",
            out: Vec::new(),
        };
        out.latency("topic.t", &[0.99, 0.5, 1.0, 0.999], &[]);
        assert_eq!(
            out.out,
            [
                "p.topic.t.e2e_processing_latency_99:0|g\n",
                "p.topic.t.e2e_processing_latency_50:0|g\n",
                "p.topic.t.e2e_processing_latency_100:0|g\n",
                "p.topic.t.e2e_processing_latency_100:0|g\n",
            ]
        );
    }

    #[test]
    fn memory_lines_are_only_the_honest_ones() {
        let mut out = Lines {
            prefix: "",
            out: Vec::new(),
        };
        mem_lines(Some(4096), &mut out);
        assert_eq!(
            out.out,
            [
                "mem.heap_in_use_bytes:4096|g\n",
                "mem.gc_pause_usec_100:0|g\n",
                "mem.gc_pause_usec_99:0|g\n",
                "mem.gc_pause_usec_95:0|g\n",
                "mem.gc_runs:0|c\n",
            ]
        );
    }
}
