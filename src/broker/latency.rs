//! End-to-end processing latency (publish to FIN) percentiles over a sliding window, as nsqd's
//! `--e2e-processing-latency-percentile` reports them in /stats.
//!
//! The window is two halves that take turns, as in Go: a sample lives between half a window
//! and a whole window. Each half keeps a uniform random sample of at most [`RESERVOIR`]
//! latencies, so memory and query cost are bounded however busy the channel is.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

/// The most latencies one half-window keeps.
pub const RESERVOIR: usize = 4096;

#[derive(Debug, Default)]
struct Half {
    samples: Vec<u64>,
    seen: u64,
}

impl Half {
    fn insert(&mut self, value: u64) {
        self.seen += 1;
        if self.samples.len() < RESERVOIR {
            self.samples.push(value);
        } else {
            let slot = fastrand::u64(0..self.seen) as usize;
            if slot < RESERVOIR {
                self.samples[slot] = value;
            }
        }
    }
}

/// Latency samples of one channel.
#[derive(Debug)]
pub struct LatencyWindow {
    halves: [Half; 2],
    current: usize,
    half_window: Duration,
    last_move: Instant,
}

impl LatencyWindow {
    /// A window of `window` (half of it per half).
    pub fn new(window: Duration) -> Self {
        LatencyWindow {
            halves: Default::default(),
            current: 0,
            half_window: (window / 2).max(Duration::from_millis(1)),
            last_move: Instant::now(),
        }
    }

    fn roll(&mut self) {
        let now = Instant::now();
        while now > self.last_move + self.half_window {
            self.current ^= 1;
            self.halves[self.current] = Half::default();
            self.last_move += self.half_window;
        }
    }

    /// Records one latency in nanoseconds.
    pub fn insert(&mut self, nanos: u64) {
        self.roll();
        self.halves[self.current].insert(nanos);
    }

    /// Appends this window's samples and count to `samples` and `count`.
    pub fn collect(&mut self, samples: &mut Vec<u64>, count: &mut u64) {
        self.roll();
        for half in &self.halves {
            samples.extend_from_slice(&half.samples);
            *count += half.seen;
        }
    }
}

/// Go's `Result` JSON for `percentiles` over `samples`: `{"count":N,"percentiles":[{"quantile":q,"value":ns}]}`,
/// or `{"count":0,"percentiles":null}` when no percentiles are tracked.
pub fn result(percentiles: &[f64], mut samples: Vec<u64>, count: u64) -> Value {
    if percentiles.is_empty() {
        return json!({ "count": 0, "percentiles": null });
    }
    samples.sort_unstable();
    let values: Vec<Value> = percentiles
        .iter()
        .map(|q| {
            let value = if samples.is_empty() {
                0.0
            } else {
                let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
                samples[rank - 1] as f64
            };
            json!({ "quantile": q, "value": value })
        })
        .collect();
    json!({ "count": count, "percentiles": values })
}

/// The text form Go prints after `e2e%:`: each value, human-readable, comma separated.
pub fn text(result: &Value) -> String {
    let Some(percentiles) = result["percentiles"].as_array() else {
        return String::new();
    };
    percentiles
        .iter()
        .map(|p| human(p["value"].as_f64().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn human(nanos: f64) -> String {
    if nanos > 1e9 {
        format!("{:.1}s", nanos / 1e9)
    } else if nanos > 1e6 {
        format!("{:.1}ms", nanos / 1e6)
    } else if nanos > 1e3 {
        format!("{:.1}us", nanos / 1e3)
    } else {
        format!("{nanos:.1}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_window() {
        let mut window = LatencyWindow::new(Duration::from_secs(600));
        for n in 1..=100 {
            window.insert(n * 1_000_000);
        }
        let (mut samples, mut count) = (Vec::new(), 0);
        window.collect(&mut samples, &mut count);
        let result = result(&[1.0, 0.99, 0.5], samples, count);
        assert_eq!(result["count"], 100);
        assert_eq!(result["percentiles"][0]["value"], 100_000_000.0);
        assert_eq!(result["percentiles"][1]["value"], 99_000_000.0);
        assert_eq!(result["percentiles"][2]["value"], 50_000_000.0);
        assert_eq!(text(&result), "100.0ms, 99.0ms, 50.0ms");
        assert_eq!(
            super::result(&[], vec![], 0),
            json!({"count": 0, "percentiles": null})
        );
    }

    #[test]
    fn reservoir_is_bounded() {
        let mut window = LatencyWindow::new(Duration::from_secs(600));
        for n in 0..(RESERVOIR as u64 * 3) {
            window.insert(n);
        }
        let (mut samples, mut count) = (Vec::new(), 0);
        window.collect(&mut samples, &mut count);
        assert_eq!(samples.len(), RESERVOIR);
        assert_eq!(count, RESERVOIR as u64 * 3);
    }
}
