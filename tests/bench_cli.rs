//! Smoke test of `rnsq bench writer|reader|pump` as the built binary: against an in-process
//! broker the writer and then the reader run for a second each and print a positive rate, and
//! so does the pump.

mod common;

use std::process::Command;

/// Runs `rnsq bench <args>` and returns its standard output, failing unless it exits 0.
async fn bench(args: Vec<String>) -> String {
    let shown = args.join(" ");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(common::rnsq_bin())
            .arg("bench")
            .args(args)
            .output()
            .expect("run rnsq bench")
    })
    .await
    .expect("bench task");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "rnsq bench {shown} failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The msg/s figure of the result line.
fn rate(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("duration: ") && l.contains(" msg/s"))
        .unwrap_or_else(|| panic!("no result line in {stdout:?}"));
    line.split(", ")
        .find_map(|part| part.strip_suffix(" msg/s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no msg/s figure in {line:?}"))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_then_reader_then_pump_print_positive_rates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address().to_string();

    let out = bench(args(&[
        "writer",
        "--nsqd-tcp-address",
        &address,
        "--runfor",
        "1s",
    ]))
    .await;
    let written = rate(&out);
    assert!(written > 0.0, "writer rate {written} in {out:?}");

    let out = bench(args(&[
        "reader",
        "--nsqd-tcp-address",
        &address,
        "--runfor",
        "1s",
    ]))
    .await;
    let read = rate(&out);
    assert!(read > 0.0, "reader rate {read} in {out:?}");

    let out = bench(args(&["pump", "--runfor", "1s"])).await;
    let pumped = rate(&out);
    assert!(pumped > 0.0, "pump rate {pumped} in {out:?}");

    nsqd.shutdown().await;
}

#[tokio::test]
async fn writer_reports_a_refused_publish() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(common::rnsq_bin())
            .args(["bench", "writer", "--nsqd-tcp-address", &address])
            .args(["--topic", "bad!topic", "--runfor", "1s"])
            .output()
            .expect("run rnsq bench")
    })
    .await
    .expect("bench task");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("E_BAD_TOPIC"), "stderr: {stderr}");
    nsqd.shutdown().await;
}
