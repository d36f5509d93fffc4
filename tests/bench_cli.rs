//! Smoke test of `rnsq bench writer|reader|pump` as the built binary: against an in-process
//! broker the writer and then the reader run for a second each and print a positive rate, and
//! so does the pump. With `--snappy` and `--deflate`, against the built broker, the broker's
//! `/stats` shows each bench connection as compressed while it runs, and the bytes line shows
//! compressible bodies shrinking on the socket; `--tls` against a broker without TLS fails
//! with a message saying so. `bench connections` storms the V2 and HTTP ports and finds every
//! subscribed connection in `/stats`.

mod common;

use std::process::{Command, Stdio};

async fn bench(args: Vec<String>) -> String {
    common::rnsq_bench(args).await
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

/// The "socket bytes per payload byte" figure of the bytes line.
fn socket_ratio(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("bytes "))
        .unwrap_or_else(|| panic!("no bytes line in {stdout:?}"));
    line.split(" (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ratio in {line:?}"))
}

/// Runs `rnsq bench <args>` as a child, polling the broker's `/stats` at `base` until
/// `seen` finds what it looks for while the bench runs; returns the bench's standard output
/// once it exits 0.
async fn bench_seen_in_stats(
    args: Vec<String>,
    base: &str,
    what: &str,
    seen: impl Fn(&serde_json::Value) -> bool,
) -> String {
    let shown = args.join(" ");
    let child = Command::new(common::rnsq_bin())
        .arg("bench")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rnsq bench");
    common::eventually(what, || async {
        seen(&common::stats(base).await).then_some(())
    })
    .await;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
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

/// Whether `clients` holds one with `user_agent` starting `agent` and `flag` true.
fn has_client(clients: &serde_json::Value, agent: &str, flag: &str) -> bool {
    clients.as_array().is_some_and(|clients| {
        clients.iter().any(|c| {
            c["user_agent"]
                .as_str()
                .is_some_and(|ua| ua.starts_with(agent))
                && c[flag] == true
        })
    })
}

/// Writer then reader with `flag` (`snappy` or `deflate`) against the built broker: each
/// shows in `/stats` as `flag` while it runs, prints a positive rate, and sends (or receives)
/// the compressible bodies in far fewer socket bytes than payload bytes.
async fn compressed_writer_and_reader(flag: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = common::BrokerProcess::spawn(dir.path(), &[]);
    let base = broker.base();
    let address = common::eventually("the broker's TCP address in /stats", || async {
        let reply = common::get(&format!("{base}/info")).await;
        let info: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
        let port = info["tcp_port"].as_u64()?;
        Some(format!("127.0.0.1:{port}"))
    })
    .await;
    let topic = format!("bench_{flag}");
    let common_args = |role: &str| {
        args(&[
            role,
            "--nsqd-tcp-address",
            &address,
            "--topic",
            &topic,
            "--runfor",
            "3s",
            &format!("--{flag}"),
        ])
    };

    let out = bench_seen_in_stats(common_args("writer"), &base, "a writer in /stats", |s| {
        has_client(&s["producers"], "rnsq-bench-writer", flag)
    })
    .await;
    assert!(rate(&out) > 0.0, "writer rate in {out:?}");
    let ratio = socket_ratio(&out);
    assert!(
        ratio < 0.5,
        "{flag} writer: socket/payload {ratio} in {out:?}"
    );
    assert!(out.contains(if flag == "snappy" {
        ", snappy,"
    } else {
        ", deflate level 6,"
    }));

    let topic_for_stats = topic.clone();
    let out = bench_seen_in_stats(common_args("reader"), &base, "a reader in /stats", |s| {
        common::find_channel(s, &topic_for_stats, "ch")
            .is_some_and(|c| has_client(&c["clients"], "rnsq-bench-reader", flag))
    })
    .await;
    assert!(rate(&out) > 0.0, "reader rate in {out:?}");
    let ratio = socket_ratio(&out);
    assert!(
        ratio < 0.5,
        "{flag} reader: socket/payload {ratio} in {out:?}"
    );
    assert!(broker.terminate(), "the broker exits cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_writer_and_reader_are_compressed_on_the_broker() {
    compressed_writer_and_reader("snappy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_writer_and_reader_are_compressed_on_the_broker() {
    compressed_writer_and_reader("deflate").await;
}

#[tokio::test]
async fn tls_against_a_broker_without_tls_fails_saying_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(common::rnsq_bin())
            .args(["bench", "writer", "--nsqd-tcp-address", &address])
            .args(["--runfor", "1s", "--tls", "--tls-insecure-skip-verify"])
            .output()
            .expect("run rnsq bench")
    })
    .await
    .expect("bench task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "a plain run is not a TLS run: {stdout}"
    );
    assert!(!stdout.contains("duration: "), "no rate line: {stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("did not grant TLS") && stderr.contains("--tls-cert"),
        "stderr: {stderr}"
    );
    nsqd.shutdown().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_storms_v2_and_http_and_lists_every_client_in_stats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = common::BrokerProcess::spawn(dir.path(), &[]);
    let tcp = broker.tcp().to_string();
    let http = broker.http.to_string();
    let pid = broker.child.id().to_string();

    let out = bench(args(&[
        "connections",
        "--address",
        &tcp,
        "--connections",
        "300",
        "--subscribe",
        "storm/ch",
        "--server-pid",
        &pid,
        "--stats-address",
        &http,
        "--hold",
        "0s",
    ]))
    .await;
    assert!(out.contains("storm: 300 answered, 0 failed"), "{out}");
    assert!(out.contains("300 clients listed"), "{out}");
    assert!(out.contains("KiB a connection"), "{out}");

    let out = bench(args(&[
        "connections",
        "--greeting",
        "http",
        "--address",
        &http,
        "--connections",
        "200",
        "--hold",
        "0s",
    ]))
    .await;
    assert!(out.contains("storm: 200 answered, 0 failed"), "{out}");
}
