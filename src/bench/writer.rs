//! `rnsq bench writer`: publish throughput, as Go NSQ's `bench/bench_writer` measures it.
//!
//! Each worker opens its own connection, sends the magic and an IDENTIFY, and once every
//! worker is connected they all start together: `MPUB <topic>` with `batch_size` messages of
//! `size` bytes (`PUB` when the batch is one message), waiting for each `OK` before sending
//! the next, until `runfor` has passed.
//!
//! Bodies are all `a` (`--body compressible`, the default and what Go's bench_writer sends) or
//! random bytes (`--body random`), different in every message of a run's first MiB of
//! commands, so that a compressor finds no repeats within its window.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::{
    connect_worker, expect_ok, report_workers, wait_for_start, BenchError, Conn, Direction, Tally,
    Transport,
};
use crate::console::say;

/// What message bodies hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Body {
    /// Every byte `a` (as Go's bench_writer): compresses to almost nothing.
    #[default]
    Compressible,
    /// Random bytes: incompressible.
    Random,
}

/// How many distinct random-bodied commands a run cycles through: enough to cover 1 MiB.
const RANDOM_SPAN: usize = 1024 * 1024;

/// The benchmark's parameters.
#[derive(Debug, Clone)]
pub struct WriterBench {
    /// nsqd's TCP address.
    pub address: String,
    pub topic: String,
    /// Bytes per message.
    pub size: usize,
    /// Messages per MPUB; 1 sends PUB.
    pub batch_size: usize,
    pub runfor: Duration,
    /// How long to wait, once connected, before starting.
    pub deadline: Duration,
    /// Connections publishing at once.
    pub workers: usize,
    pub body: Body,
    pub transport: Transport,
}

impl WriterBench {
    /// The commands each worker sends in turn, over and over: `PUB` or `MPUB` with bodies.
    /// One command for compressible bodies; for random ones, as many as cover 1 MiB.
    fn commands(&self) -> Vec<Vec<u8>> {
        match self.body {
            Body::Compressible => vec![self.command(|message| message.fill(b'a'))],
            Body::Random => {
                let len = self.batch_size * (4 + self.size);
                let mut rng = fastrand::Rng::new();
                (0..RANDOM_SPAN.div_ceil(len).max(1))
                    .map(|_| self.command(|message| rng.fill(message)))
                    .collect()
            }
        }
    }

    /// One `PUB` or `MPUB` command, each body filled by `fill`.
    fn command(&self, mut fill: impl FnMut(&mut [u8])) -> Vec<u8> {
        let mut message = vec![0u8; self.size];
        if self.batch_size == 1 {
            fill(&mut message);
            let mut command = format!("PUB {}\n", self.topic).into_bytes();
            command.extend_from_slice(&(self.size as u32).to_be_bytes());
            command.extend_from_slice(&message);
            return command;
        }
        let body_len = 4 + self.batch_size * (4 + self.size);
        let mut command = format!("MPUB {}\n", self.topic).into_bytes();
        command.reserve(4 + body_len);
        command.extend_from_slice(&(body_len as u32).to_be_bytes());
        command.extend_from_slice(&(self.batch_size as u32).to_be_bytes());
        for _ in 0..self.batch_size {
            fill(&mut message);
            command.extend_from_slice(&(self.size as u32).to_be_bytes());
            command.extend_from_slice(&message);
        }
        command
    }

    fn check(&self) -> Result<(), BenchError> {
        if self.size == 0 || self.size > i32::MAX as usize {
            return Err(BenchError::Invalid(format!(
                "--size {} is out of range (nsqd refuses empty messages)",
                self.size
            )));
        }
        if self.batch_size == 0 || self.batch_size > 1_000_000 {
            return Err(BenchError::Invalid(format!(
                "--batch-size {} is out of range (1 to 1000000)",
                self.batch_size
            )));
        }
        if (4 + self.batch_size * (4 + self.size)) > i32::MAX as usize {
            return Err(BenchError::Invalid(
                "--batch-size times --size is too big for one MPUB".into(),
            ));
        }
        if self.workers == 0 {
            return Err(BenchError::Invalid("--workers must be at least 1".into()));
        }
        Ok(())
    }
}

/// Runs the benchmark and prints its result line.
pub async fn run(bench: WriterBench) -> Result<(), BenchError> {
    bench.check()?;
    let verb = if bench.batch_size == 1 { "PUB" } else { "MPUB" };
    say(format!(
        "bench writer: {} workers, {verb} {} x {} bytes ({:?} bodies) to {:?} at {}, {}, for {:?}",
        bench.workers,
        bench.batch_size,
        bench.size,
        bench.body,
        bench.topic,
        bench.address,
        bench.transport.describe(),
        bench.runfor
    ));
    let mut conns = Vec::with_capacity(bench.workers);
    for i in 0..bench.workers {
        conns.push(connect_worker(&bench.address, "writer", i, &bench.transport).await?);
    }
    wait_for_start(bench.deadline).await;
    let commands = std::sync::Arc::new(bench.commands());
    let started = Instant::now();
    let end = started + bench.runfor;
    let workers: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let commands = commands.clone();
            let batch = bench.batch_size as u64;
            let size = bench.size as u64;
            tokio::spawn(async move { publish(conn, &commands, batch, size, end, verb).await })
        })
        .collect();
    report_workers(workers, started, bench.size, Direction::Sent).await
}

/// Sends the `commands` in turn, waiting for each `OK`, until `end`; returns the messages
/// published, their body bytes and the connection's traffic.
async fn publish(
    mut conn: Conn,
    commands: &[Vec<u8>],
    batch: u64,
    size: u64,
    end: Instant,
    verb: &str,
) -> Result<Tally, BenchError> {
    let mut messages = 0;
    for command in commands.iter().cycle() {
        conn.write_all(command).await?;
        conn.flush().await?;
        expect_ok(&mut conn, verb).await?;
        messages += batch;
        if Instant::now() >= end {
            break;
        }
    }
    Ok(Tally {
        messages,
        payload: messages * size,
        traffic: conn.traffic(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(batch_size: usize) -> WriterBench {
        WriterBench {
            address: String::new(),
            topic: "t".into(),
            size: 3,
            batch_size,
            runfor: Duration::ZERO,
            deadline: Duration::ZERO,
            workers: 1,
            body: Body::Compressible,
            transport: Transport::default(),
        }
    }

    #[test]
    fn pub_and_mpub_commands() {
        assert_eq!(bench(1).commands(), [b"PUB t\n\0\0\0\x03aaa"]);
        assert_eq!(
            bench(2).commands(),
            [b"MPUB t\n\0\0\0\x12\0\0\0\x02\0\0\0\x03aaa\0\0\0\x03aaa"]
        );
        assert!(bench(0).check().is_err());
    }

    #[test]
    fn random_bodies_differ_and_cover_a_mib() {
        let mut random = bench(200);
        random.size = 200;
        random.body = Body::Random;
        let commands = random.commands();
        let total: usize = commands.iter().map(Vec::len).sum();
        assert!(total >= RANDOM_SPAN, "{total}");
        let first = &commands[0];
        let header = "MPUB t\n".len() + 8;
        let (one, two) = (
            &first[header + 4..header + 204],
            &first[header + 208..header + 408],
        );
        assert_ne!(one, two, "two messages of one batch");
        assert_ne!(commands[0], commands[1]);
        assert_eq!(first.len(), header + 200 * 204);
    }
}
