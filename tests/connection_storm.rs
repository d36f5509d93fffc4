//! Reconnect storms (issue 11) against the built binaries, driven by `rnsq bench connections`:
//! 10,000 connections opened at once on nsqd's TCP port (each IDENTIFYs and SUBs), on its HTTP
//! port, and on nsqlookupd's TCP and HTTP ports, are all answered; held idle, they cost the
//! broker a bounded amount of memory each; and `/stats` lists every one of them. The figures
//! themselves (times, memory, beside Go's) belong to the benchmark, not to this test: the
//! only bounds here are generous ones that catch a listener, a leak or a quadratic `/stats`,
//! not a slow machine.

mod common;

use std::process::{Child, Command, Stdio};

use common::{eventually, free_port, rnsq_bench, rnsq_bin, BrokerProcess};

/// The storm's size, as the issue asks.
const STORM: usize = 10_000;

/// The most resident memory one idle identified (and subscribed) connection may cost the
/// broker. Measured: about 22 KiB (Go nsqd 1.3.0: about 29 KiB).
const MAX_KIB_PER_CONNECTION: f64 = 64.0;

/// Runs `rnsq bench connections --hold 0s <args>`; returns its standard output (a
/// connection not answered within the bench's 120 s, or answered wrongly, fails it).
async fn storm(args: &[&str]) -> String {
    let mut all: Vec<String> = ["connections", "--hold", "0s"].map(String::from).to_vec();
    all.extend(args.iter().map(|s| s.to_string()));
    rnsq_bench(all).await
}

/// The number just before `suffix` in `text`.
fn number_before(text: &str, suffix: &str) -> f64 {
    let at = text
        .find(suffix)
        .unwrap_or_else(|| panic!("no {suffix:?} in {text:?}"));
    let digits: String = text[..at]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {suffix:?} in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_at_once_on_nsqd_are_answered_held_cheaply_and_listed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path(), &[]);
    let tcp = broker.tcp().to_string();
    let http = broker.http.to_string();
    let pid = broker.child.id().to_string();

    let out = storm(&[
        "--address",
        &tcp,
        "--connections",
        &STORM.to_string(),
        "--subscribe",
        "storm/ch",
        "--server-pid",
        &pid,
        "--stats-address",
        &http,
    ])
    .await;
    assert!(
        out.contains(&format!("storm: {STORM} answered, 0 failed")),
        "{out}"
    );
    assert!(out.contains(&format!("{STORM} clients listed")), "{out}");
    let per = number_before(&out, "KiB a connection");
    assert!(
        per <= MAX_KIB_PER_CONNECTION,
        "{per} KiB a connection (bound {MAX_KIB_PER_CONNECTION}):\n{out}"
    );
    // `/stats` answered with all of them held; a generous bound, far above the ~0.2–0.9 s
    // measured, that only a quadratic or blocking /stats would break.
    let stats_ms = number_before(&out, "ms, ");
    assert!(stats_ms < 30_000.0, "/stats took {stats_ms} ms:\n{out}");

    let out = storm(&[
        "--greeting",
        "http",
        "--address",
        &http,
        "--connections",
        &STORM.to_string(),
    ])
    .await;
    assert!(
        out.contains(&format!("storm: {STORM} answered, 0 failed")),
        "{out}"
    );
    assert!(broker.terminate(), "clean exit after the storms");
}

struct Lookupd(Child);

impl Drop for Lookupd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_at_once_on_nsqlookupd_are_answered() {
    let (tcp, http) = (free_port(), free_port());
    let child = Command::new(rnsq_bin())
        .arg("nsqlookupd")
        .arg(format!("--tcp-address=127.0.0.1:{tcp}"))
        .arg(format!("--http-address=127.0.0.1:{http}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rnsq nsqlookupd");
    let _lookupd = Lookupd(child);
    eventually("nsqlookupd to answer /ping", || async {
        let reply = reqwest::get(format!("http://127.0.0.1:{http}/ping"))
            .await
            .ok()?;
        (reply.text().await.ok()? == "OK").then_some(())
    })
    .await;

    for (greeting, port) in [("v1", tcp), ("http", http)] {
        let address = format!("127.0.0.1:{port}");
        let out = storm(&[
            "--greeting",
            greeting,
            "--address",
            &address,
            "--connections",
            &STORM.to_string(),
        ])
        .await;
        assert!(
            out.contains(&format!("storm: {STORM} answered, 0 failed")),
            "{greeting}: {out}"
        );
    }
}
