//! Tables of V2 error cases: each case runs on a fresh connection and must get one exact
//! error frame, then EOF when the error is fatal, or a connection that still answers PUB when
//! it is not. Every case of a table runs, and the failures are listed together.

use rnsq::nsqd::Nsqd;

use super::v2::{frame_bytes, pub_cmd, Client, Next, ERROR, RESPONSE, WAIT};

/// What a case does before its trigger.
#[derive(Clone, Copy, Debug)]
pub enum Before {
    Nothing,
    /// `SUB errors c` → `OK`.
    Sub,
}

/// One case: after `before`, sending `send` gets exactly the error frame `error`, and the
/// connection closes if `fatal`.
pub struct Case {
    before: Before,
    send: Vec<u8>,
    error: String,
    fatal: bool,
}

pub fn case(before: Before, send: impl Into<Vec<u8>>, error: &str, fatal: bool) -> Case {
    Case {
        before,
        send: send.into(),
        error: error.into(),
        fatal,
    }
}

/// Runs each case on a fresh connection: the exact error frame, then EOF when fatal, or a
/// connection that still answers PUB when not. Every case runs; the failures are listed
/// together at the end.
pub async fn run_cases(nsqd: &Nsqd, cases: Vec<Case>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        if let Err(why) = run_case(nsqd, &case).await {
            failures.push(format!(
                "after {:?} sending {:?}: {why}",
                case.before,
                String::from_utf8_lossy(&case.send[..case.send.len().min(60)])
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn run_case(nsqd: &Nsqd, case: &Case) -> Result<(), String> {
    let mut client = Client::connect(nsqd).await;
    if let Before::Sub = case.before {
        client.line("SUB errors c").await;
        client.expect_ok().await;
    }
    client.send(&case.send).await;
    match client.next_within(WAIT).await {
        Next::Frame(frame) if frame.raw == frame_bytes(ERROR, case.error.as_bytes()) => {}
        Next::Frame(frame) => return Err(format!("expected {:?}, got {frame:?}", case.error)),
        Next::Quiet => return Err(format!("expected {:?}, got nothing", case.error)),
        Next::Closed(why) => return Err(format!("expected {:?}, got a close ({why})", case.error)),
    }
    if case.fatal {
        match client.next_within(WAIT).await {
            Next::Closed(_) => Ok(()),
            Next::Frame(frame) => Err(format!("fatal error followed by {frame:?}, not a close")),
            Next::Quiet => Err(format!(
                "connection still open {WAIT:?} after a fatal error"
            )),
        }
    } else {
        client.send(&pub_cmd("probe", b"still open")).await;
        match client.next_within(WAIT).await {
            Next::Frame(frame) if frame.raw == frame_bytes(RESPONSE, b"OK") => Ok(()),
            Next::Frame(frame) => Err(format!("non-fatal error, then PUB got {frame:?}")),
            Next::Quiet => Err("non-fatal error, then PUB got no answer".into()),
            Next::Closed(why) => Err(format!("non-fatal error closed the connection ({why})")),
        }
    }
}
