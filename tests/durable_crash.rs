//! A real crash test of message durability: the built `rnsq` binary is killed with SIGKILL in
//! the middle of publishing and consuming, restarted on the same data path, and finally both
//! channels are drained (the traffic and its checks are in `tests/common/publishing.rs`).
//!
//! With `--durable` every body answered `OK` must be delivered (and finished) at least once on
//! each channel. Without `--durable` the test counts what kill -9 lost and prints it,
//! asserting only what must hold anyway.
//!
//! `RNSQ_DURABLE_CRASH_CYCLES=100 cargo test --release --test durable_crash -- --nocapture`
//! runs a longer soak than the default 20 cycles (`RNSQ_CRASH_CYCLES_NONDURABLE` sets the
//! cycles of the non-durable test, 5 by default), printing what each cycle did.

mod common;
#[path = "common/publishing.rs"]
mod publishing;

use std::collections::{BTreeMap, HashSet};

use common::{env_cycles, BrokerProcess};
use publishing::{crash_cycles, origin, Run, CHANNELS};

fn kill9(_cycle: usize, broker: BrokerProcess) -> String {
    broker.kill9();
    String::new()
}

/// With `--durable`, every body answered OK across all kill -9 cycles is delivered and
/// finished at least once on each channel.
#[test]
fn durable_acked_messages_survive_kill_9() {
    let cycles = env_cycles("RNSQ_DURABLE_CRASH_CYCLES", 20);
    let mut run = Run::new("durable-crash");
    let outcome = crash_cycles(&mut run, true, cycles, "durable", kill9);
    for (channel, missing) in CHANNELS.iter().zip(&outcome.missing) {
        if !missing.is_empty() {
            let mut by_origin: BTreeMap<&str, usize> = BTreeMap::new();
            for body in missing {
                *by_origin.entry(origin(body)).or_default() += 1;
            }
            let shown: Vec<&str> = missing
                .iter()
                .take(20)
                .map(|b| &b[..b.len().min(24)])
                .collect();
            run.fail(format!(
                "durable: {} of {} acknowledged messages never delivered on channel {channel} \
                 (by cycle-producer: {by_origin:?}); first (truncated): {shown:?}",
                missing.len(),
                outcome.acked
            ));
        }
    }
    if cycles > 0 && outcome.acked < cycles {
        run.fail(format!(
            "durable: only {} messages acknowledged over {cycles} cycles: too few to mean anything",
            outcome.acked
        ));
    }
}

/// Without `--durable`, kill -9 may lose messages (the brief allows it); the test counts and
/// prints how many, and checks what must hold anyway.
#[test]
fn non_durable_kill_9_counts_lost_messages() {
    let cycles = env_cycles("RNSQ_CRASH_CYCLES_NONDURABLE", 5);
    let mut run = Run::new("nondurable-crash");
    let outcome = crash_cycles(&mut run, false, cycles, "non-durable", kill9);
    let lost: HashSet<&String> = outcome.missing.iter().flatten().collect();
    eprintln!(
        "non-durable: {} of {} acknowledged messages lost over {} kill -9 cycles \
         (missing on a: {}, on b: {})",
        lost.len(),
        outcome.acked,
        outcome.cycles,
        outcome.missing[0].len(),
        outcome.missing[1].len()
    );
    if cycles > 0 {
        if outcome.acked == 0 {
            run.fail("non-durable: no message was acknowledged".into());
        }
        for (channel, tally) in CHANNELS.iter().zip(&outcome.tallies) {
            if tally.finished.is_empty() {
                run.fail(format!(
                    "non-durable: nothing was delivered on channel {channel}"
                ));
            }
        }
    }
}
