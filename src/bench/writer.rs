//! `rnsq bench writer`: publish throughput, as Go NSQ's `bench/bench_writer` measures it.
//!
//! Each worker opens its own connection, sends the magic and an IDENTIFY, and once every
//! worker is connected they all start together: `MPUB <topic>` with `batch_size` messages of
//! `size` bytes (`PUB` when the batch is one message), waiting for each `OK` before sending
//! the next, until `runfor` has passed.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::{connect_worker, expect_ok, report_workers, wait_for_start, BenchError, Conn};
use crate::console::say;

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
}

impl WriterBench {
    /// The command each worker sends over and over: `PUB` or `MPUB` with its body.
    fn command(&self) -> Vec<u8> {
        let message = vec![b'a'; self.size];
        if self.batch_size == 1 {
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
        "bench writer: {} workers, {verb} {} x {} bytes to {:?} at {}, for {:?}",
        bench.workers, bench.batch_size, bench.size, bench.topic, bench.address, bench.runfor
    ));
    let mut conns = Vec::with_capacity(bench.workers);
    for i in 0..bench.workers {
        conns.push(connect_worker(&bench.address, "writer", i).await?);
    }
    wait_for_start(bench.deadline).await;
    let command = std::sync::Arc::new(bench.command());
    let started = Instant::now();
    let end = started + bench.runfor;
    let workers: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let command = command.clone();
            let batch = bench.batch_size as u64;
            tokio::spawn(async move { publish(conn, &command, batch, end, verb).await })
        })
        .collect();
    report_workers(workers, started, bench.size).await
}

/// Sends `command` and waits for its `OK` until `end`; returns the messages published.
async fn publish(
    mut conn: Conn,
    command: &[u8],
    batch: u64,
    end: Instant,
    verb: &str,
) -> Result<u64, BenchError> {
    let mut messages = 0;
    loop {
        conn.write_all(command).await?;
        expect_ok(&mut conn, verb).await?;
        messages += batch;
        if Instant::now() >= end {
            return Ok(messages);
        }
    }
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
        }
    }

    #[test]
    fn pub_and_mpub_commands() {
        assert_eq!(bench(1).command(), b"PUB t\n\0\0\0\x03aaa");
        assert_eq!(
            bench(2).command(),
            b"MPUB t\n\0\0\0\x12\0\0\0\x02\0\0\0\x03aaa\0\0\0\x03aaa"
        );
        assert!(bench(0).check().is_err());
    }
}
