//! `GET /stats`: topics, channels and their figures, as Go nsqd's text (the default) or JSON
//! (`format=json`). Filters: `topic`, `channel`; `include_clients`, `include_mem` (default
//! true). Queue figures are zero until message delivery exists.

mod client;

use std::fmt::Write;
use std::time::UNIX_EPOCH;

use super::StartTime;

use axum::extract::RawQuery;
use axum::response::Response;
use serde_json::{json, Value};

use super::params::{parse_bool, Params};
use super::response::{v1, Reply};
use super::State;
use client::client_json;
use std::sync::atomic::Ordering;

use crate::broker::{latency, Channel, ClientInfo, Topic};
use crate::options::duration;
use crate::NSQ_VERSION;

fn health(state: &State) -> String {
    match state.broker.health_problem() {
        None => "OK".into(),
        Some(reason) => format!("NOK - {reason}"),
    }
}

struct Filter {
    topic: Option<String>,
    channel: Option<String>,
    include_clients: bool,
    include_mem: bool,
}

/// The stats reply.
pub async fn stats(state: State, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.as_deref());
    let non_empty = |key: &str| {
        params
            .get(key)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let flag = |key: &str| params.get(key).and_then(parse_bool).unwrap_or(true);
    let filter = Filter {
        topic: non_empty("topic"),
        channel: non_empty("channel"),
        include_clients: flag("include_clients"),
        include_mem: flag("include_mem"),
    };
    let topics: Vec<_> = state
        .broker
        .topics()
        .into_iter()
        .filter(|t| filter.topic.as_deref().is_none_or(|name| t.name() == name))
        .collect();
    let start = state.start_time;
    let health = health(&state);
    // Producers: connected clients that published, filtered to the topic asked about.
    let producers: Vec<_> = if filter.include_clients {
        state
            .broker
            .clients()
            .into_iter()
            .filter(|c| {
                let counts = c.pub_counts();
                match &filter.topic {
                    Some(topic) => counts.iter().any(|(t, _)| t == topic),
                    None => !counts.is_empty(),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let render = if params.get("format") == Some("json") {
        |t, p, e, f, s, h| Reply::Json(as_json(t, p, e, f, s, h))
    } else {
        |t, p, e, f, s, h| Reply::Text(as_text(t, p, e, f, s, h))
    };
    let percentiles = state.broker.e2e_percentiles();
    v1(Ok(render(
        &topics,
        &producers,
        percentiles,
        &filter,
        start,
        &health,
    )))
}

fn channels_of(topic: &Topic, filter: &Filter) -> Vec<std::sync::Arc<Channel>> {
    let channels = topic.channels();
    match &filter.channel {
        Some(name) if channels.iter().any(|c| c.name() == name) => {
            channels.into_iter().filter(|c| c.name() == name).collect()
        }
        _ => channels,
    }
}

/// The end-to-end latency result over `channels`.
fn latency(percentiles: &[f64], channels: &[std::sync::Arc<Channel>]) -> Value {
    let (mut samples, mut count) = (Vec::new(), 0);
    for channel in channels {
        channel.collect_latency(&mut samples, &mut count);
    }
    latency::result(percentiles, samples, count)
}

/// The topic log's recovery counters and fsync figures (rnsq's own; Go has none).
fn disk_json(topic: &Topic) -> Value {
    let log = topic.log();
    let c = &log.counters;
    let n = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    json!({
        "durable": log.is_durable(),
        "on_disk": log.dir().is_some(),
        "truncated_bytes": n(&c.truncated_bytes),
        "damaged_records": n(&c.damaged_records),
        "damaged_bytes": n(&c.damaged_bytes),
        "temp_files_removed": n(&c.temp_files_removed),
        "dropped_messages": n(&c.dropped),
        "fsyncs": n(&c.fsyncs),
        "fsynced_messages": n(&c.fsynced_messages),
    })
}

fn as_json(
    topics: &[std::sync::Arc<Topic>],
    producers: &[std::sync::Arc<ClientInfo>],
    percentiles: &[f64],
    filter: &Filter,
    start: StartTime,
    health: &str,
) -> Value {
    let topics: Vec<Value> = topics
        .iter()
        .map(|topic| {
            let channels: Vec<Value> = channels_of(topic, filter)
                .iter()
                .map(|c| {
                    let (in_flight, deferred) = c.flight_counts();
                    let consumers = c.clients();
                    json!({
                        "channel_name": c.name(),
                        "depth": c.depth(),
                        "backend_depth": c.backend_depth(),
                        "in_flight_count": in_flight,
                        "deferred_count": deferred,
                        "message_count": c.message_count(),
                        "requeue_count": c.requeue_count.load(Ordering::Relaxed),
                        "timeout_count": c.timeout_count.load(Ordering::Relaxed),
                        "client_count": consumers.len(),
                        "clients": if filter.include_clients {
                            Value::Array(consumers.iter().map(|c| client_json(c)).collect())
                        } else {
                            Value::Null
                        },
                        "paused": c.is_paused(),
                        "e2e_processing_latency": latency(percentiles, std::slice::from_ref(c)),
                    })
                })
                .collect();
            json!({
                "topic_name": topic.name(),
                "channels": channels,
                "depth": topic.depth(),
                "backend_depth": topic.backend_depth(),
                "message_count": topic.message_count.load(Ordering::Relaxed),
                "message_bytes": topic.message_bytes.load(Ordering::Relaxed),
                "paused": topic.is_paused(),
                "e2e_processing_latency": latency(percentiles, &topic.channels()),
                "disk": disk_json(topic),
            })
        })
        .collect();
    let mut body = json!({
        "version": NSQ_VERSION,
        "health": health,
        "start_time": start.wall.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "topics": topics,
        "producers": if filter.include_clients {
            Value::Array(producers.iter().map(|c| client_json(c)).collect())
        } else {
            Value::Null
        },
    });
    if filter.include_mem {
        body["memory"] = memory();
    }
    body
}

/// Go reports its heap; rnsq reports the process's resident set in the same keys.
fn memory() -> Value {
    let rss = resident_bytes();
    json!({
        "heap_objects": 0,
        "heap_idle_bytes": 0,
        "heap_in_use_bytes": rss,
        "heap_released_bytes": 0,
        "gc_pause_usec_100": 0,
        "gc_pause_usec_99": 0,
        "gc_pause_usec_95": 0,
        "next_gc_bytes": 0,
        "gc_total_runs": 0,
    })
}

/// `/proc/self/statm` is served from memory by the kernel: reading it does not block.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| crate::resident::parse_statm(&s))
        .unwrap_or(0)
}

fn as_text(
    topics: &[std::sync::Arc<Topic>],
    producers: &[std::sync::Arc<ClientInfo>],
    percentiles: &[f64],
    filter: &Filter,
    start: StartTime,
    health: &str,
) -> String {
    let mut w = String::new();
    let uptime = start.uptime();
    let start_secs = start
        .wall
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Writing to a String cannot fail.
    let _ = writeln!(
        w,
        "nsqd v{NSQ_VERSION} (rnsq {})",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(w, "start_time {}", rfc3339(start_secs));
    let _ = writeln!(w, "uptime {}", duration::format(uptime));
    let _ = writeln!(w, "\nHealth: {health}");
    if filter.include_mem {
        let _ = writeln!(w, "\nMemory:");
        if let Value::Object(memory) = memory() {
            for key in [
                "heap_objects",
                "heap_idle_bytes",
                "heap_in_use_bytes",
                "heap_released_bytes",
                "gc_pause_usec_100",
                "gc_pause_usec_99",
                "gc_pause_usec_95",
                "next_gc_bytes",
                "gc_total_runs",
            ] {
                let _ = writeln!(
                    w,
                    "   {key:<25}\t{}",
                    memory.get(key).unwrap_or(&Value::Null)
                );
            }
        }
    }
    if topics.is_empty() {
        let _ = writeln!(w, "\nTopics: None");
    } else {
        let _ = write!(w, "\nTopics:");
    }
    let now_secs = crate::message::now_ns() / 1_000_000_000;
    for topic in topics {
        let prefix = if topic.is_paused() { "*P " } else { "   " };
        let _ = writeln!(
            w,
            "\n{prefix}[{:<15}] depth: {:<5} be-depth: {:<5} msgs: {:<8} e2e%: {}",
            topic.name(),
            topic.depth(),
            topic.backend_depth(),
            topic.message_count.load(Ordering::Relaxed),
            latency::text(&latency(percentiles, &topic.channels())),
        );
        for channel in channels_of(topic, filter) {
            let prefix = if channel.is_paused() {
                "   *P "
            } else {
                "      "
            };
            let (in_flight, deferred) = channel.flight_counts();
            let _ = writeln!(
                w,
                "{prefix}[{:<25}] depth: {:<5} be-depth: {:<5} inflt: {:<4} def: {:<4} re-q: {:<5} timeout: {:<5} msgs: {:<8} e2e%: {}",
                channel.name(),
                channel.depth(),
                channel.backend_depth(),
                in_flight,
                deferred,
                channel.requeue_count.load(Ordering::Relaxed),
                channel.timeout_count.load(Ordering::Relaxed),
                channel.message_count(),
                latency::text(&latency(percentiles, std::slice::from_ref(&channel))),
            );
            if !filter.include_clients {
                continue;
            }
            for client in channel.clients() {
                let connected =
                    std::time::Duration::from_secs((now_secs - client.connect_ts).max(0) as u64);
                let _ = writeln!(
                    w,
                    "        [V2 {:<21}] state: {} inflt: {:<4} rdy: {:<4} fin: {:<8} re-q: {:<8} msgs: {:<8} connected: {}",
                    client.identity().client_id,
                    client.state.load(Ordering::Relaxed),
                    client.in_flight_count.load(Ordering::Relaxed),
                    client.ready_count.load(Ordering::Relaxed),
                    client.finish_count.load(Ordering::Relaxed),
                    client.requeue_count.load(Ordering::Relaxed),
                    client.message_count.load(Ordering::Relaxed),
                    duration::format(connected),
                );
            }
        }
    }
    if producers.is_empty() {
        let _ = writeln!(w, "\nProducers: None");
    } else {
        let _ = write!(w, "\nProducers:");
        for client in producers {
            let connected =
                std::time::Duration::from_secs((now_secs - client.connect_ts).max(0) as u64);
            let counts = client.pub_counts();
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            let _ = writeln!(
                w,
                "\n   [V2 {:<21}] msgs: {:<8} connected: {}",
                client.identity().client_id,
                total,
                duration::format(connected),
            );
            for (topic, count) in counts {
                let _ = writeln!(w, "      [{topic:<15}] msgs: {count:<8}");
            }
        }
    }
    w
}

/// Seconds since the epoch as an RFC 3339 UTC time.
fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_866_061), "2026-11-28T11:41:01Z");
    }
}
