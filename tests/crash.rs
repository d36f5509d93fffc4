//! A real crash test: the built `rnsq` binary is killed with SIGKILL while several HTTP
//! clients are changing topics and channels, then restarted on the same data path; what it
//! serves after the restart must agree with every change it answered 200 (the model is in
//! `tests/common/churn.rs`).
//!
//! `RNSQ_CRASH_CYCLES=100 cargo test --test crash -- --nocapture` runs a longer soak than the
//! default 20 cycles and prints what each cycle did.

mod common;

use common::churn;

/// Every change answered 200 survives `kill -9`, and no delete answered 200 comes back: the
/// topics, channels and paused flags served after each restart are exactly what the answered
/// requests imply (give or take each client's one request in flight at the kill), and so is
/// the `nsqd.dat` rewritten at start-up.
#[test]
fn changes_answered_200_survive_kill_9() {
    let cycles = common::env_cycles("RNSQ_CRASH_CYCLES", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    churn::run_cycles("kill -9", &data_path, &[], cycles, |_, broker| {
        broker.kill9();
        String::new()
    });
}
