//! Every flag and config key of Go nsqd 1.3.0 and nsqlookupd 1.3.0 (`apps/nsqd/options.go`,
//! `nsqd/options.go`, `apps/nsqlookupd/options.go` at v1.3.0), given to the built binary in
//! one start: it serves `/ping`, `GET /config/:opt` answers what was given, `--log-prefix`
//! starts every log line, and each no-effect flag is named once. Then the same through a
//! config file holding every key, the same for nsqlookupd, and bad values of the newer flags
//! refused with a message naming the flag.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::certs::{self, Certs};
use common::{eventually, eventually_blocking, free_port, get, rnsq_bin};
use serde_json::{json, Value};

/// nsqd 1.3.0's flags, every one (`nsqd --help`). `--version` prints and exits, so it is
/// checked by `--help` only.
const GO_NSQD_FLAGS: &[&str] = &[
    "version",
    "config",
    "log-level",
    "log-prefix",
    "verbose",
    "node-id",
    "worker-id",
    "https-address",
    "http-address",
    "tcp-address",
    "auth-http-address",
    "broadcast-address",
    "broadcast-tcp-port",
    "broadcast-http-port",
    "lookupd-tcp-address",
    "http-client-connect-timeout",
    "http-client-request-timeout",
    "data-path",
    "mem-queue-size",
    "max-bytes-per-file",
    "sync-every",
    "sync-timeout",
    "queue-scan-worker-pool-max",
    "queue-scan-selection-count",
    "msg-timeout",
    "max-msg-timeout",
    "max-msg-size",
    "max-req-timeout",
    "max-body-size",
    "max-heartbeat-interval",
    "max-rdy-count",
    "max-output-buffer-size",
    "max-output-buffer-timeout",
    "min-output-buffer-timeout",
    "output-buffer-timeout",
    "max-channel-consumers",
    "statsd-address",
    "statsd-interval",
    "statsd-mem-stats",
    "statsd-prefix",
    "statsd-udp-packet-size",
    "statsd-exclude-ephemeral",
    "e2e-processing-latency-percentile",
    "e2e-processing-latency-window-time",
    "tls-cert",
    "tls-key",
    "tls-client-auth-policy",
    "tls-root-ca-file",
    "tls-required",
    "tls-min-version",
    "deflate",
    "max-deflate-level",
    "snappy",
];

/// The TLS, AUTH and compression flags, with certificates made at test time. The client
/// policy is `require-verify` with `--tls-required=tcp-https`, so plain HTTP still answers
/// the checks below.
fn secure_flags(certs: &Certs) -> Vec<String> {
    vec![
        "--https-address=127.0.0.1:0".into(),
        "--auth-http-address=127.0.0.1:1".into(),
        "--http-client-connect-timeout=3s".into(),
        "--http-client-request-timeout=6s".into(),
        format!("--tls-cert={}", certs.server.cert.display()),
        format!("--tls-key={}", certs.server.key.display()),
        "--tls-client-auth-policy=require-verify".into(),
        format!("--tls-root-ca-file={}", certs.ca.display()),
        "--tls-required=tcp-https".into(),
        "--tls-min-version=tls1.2".into(),
        "--deflate=true".into(),
        "--snappy".into(),
    ]
}

/// Their config keys, likewise (lines of TOML).
fn secure_keys(certs: &Certs) -> Vec<String> {
    vec![
        "https_address = \"127.0.0.1:0\"".into(),
        "auth_http_addresses = [\"127.0.0.1:1\"]".into(),
        "http_client_connect_timeout = \"3s\"".into(),
        "http_client_request_timeout = \"6s\"".into(),
        format!("tls_cert = {:?}", certs.server.cert.display().to_string()),
        format!("tls_key = {:?}", certs.server.key.display().to_string()),
        "tls_client_auth_policy = \"require-verify\"".into(),
        format!("tls_root_ca_file = {:?}", certs.ca.display().to_string()),
        "tls_required = \"tcp-https\"".into(),
        "tls_min_version = \"tls1.2\"".into(),
        "deflate = true".into(),
        "snappy = true".into(),
    ]
}

/// Every other nsqd flag with a value away from its default (data path and listen addresses
/// are added by [`start_logged`]).
fn nsqd_flags(config: &Path, certs: &Certs) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--log-level=debug",
        "--log-prefix=[flags-test] ",
        "--verbose",
        "--node-id=7",
        "--worker-id",
        "--broadcast-address=127.0.0.1",
        "--broadcast-tcp-port=4150",
        "--broadcast-http-port=4151",
        "--lookupd-tcp-address=127.0.0.1:1",
        "--lookupd-tcp-address=127.0.0.1:2",
        "--mem-queue-size=500",
        "--max-bytes-per-file=1048576",
        "--sync-every=100",
        "--sync-timeout=1s",
        "--queue-scan-worker-pool-max=8",
        "--queue-scan-selection-count=30",
        "--msg-timeout=30s",
        "--max-msg-timeout=10m",
        "--max-msg-size=2048000",
        "--max-req-timeout=30m",
        "--max-body-size=4096000",
        "--max-heartbeat-interval=50s",
        "--max-rdy-count=200",
        "--max-output-buffer-size=32768",
        "--max-output-buffer-timeout=10s",
        "--min-output-buffer-timeout=10ms",
        "--output-buffer-timeout=200ms",
        "--max-channel-consumers=5",
        "--statsd-address=127.0.0.1:9",
        "--statsd-interval=30s",
        "--statsd-mem-stats=false",
        "--statsd-prefix=test.%s",
        "--statsd-udp-packet-size=1400",
        "--statsd-exclude-ephemeral",
        "--e2e-processing-latency-percentile=0.99,0.95",
        "--e2e-processing-latency-percentile=0.5",
        "--e2e-processing-latency-window-time=5m",
        "--max-deflate-level=5",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    flags.push(format!("--config={}", config.display()));
    flags.extend(secure_flags(certs));
    flags
}

/// Every nsqd config key (Go's names) with the values of [`nsqd_flags`]; `verbose`, no key of
/// Go 1.3.0 (which ignores unknown keys) but in older nsqd files, is taken too.
fn nsqd_config(data_path: &Path, certs: &Certs) -> String {
    let mut lines: Vec<String> = [
        "log_level = \"debug\"",
        "log_prefix = \"[flags-test] \"",
        "verbose = true",
        "id = 7",
        "tcp_address = \"127.0.0.1:0\"",
        "http_address = \"127.0.0.1:0\"",
        "broadcast_address = \"127.0.0.1\"",
        "broadcast_tcp_port = 4150",
        "broadcast_http_port = 4151",
        "nsqlookupd_tcp_addresses = [\"127.0.0.1:1\", \"127.0.0.1:2\"]",
        "mem_queue_size = 500",
        "max_bytes_per_file = 1048576",
        "sync_every = 100",
        "sync_timeout = \"1s\"",
        "queue_scan_worker_pool_max = 8",
        "queue_scan_selection_count = 30",
        "msg_timeout = \"30s\"",
        "max_msg_timeout = \"10m\"",
        "max_msg_size = 2048000",
        "max_req_timeout = \"30m\"",
        "max_body_size = 4096000",
        "max_heartbeat_interval = \"50s\"",
        "max_rdy_count = 200",
        "max_output_buffer_size = 32768",
        "max_output_buffer_timeout = \"10s\"",
        "min_output_buffer_timeout = \"10ms\"",
        "output_buffer_timeout = 200",
        "max_channel_consumers = 5",
        "statsd_address = \"127.0.0.1:9\"",
        "statsd_interval = \"30s\"",
        "statsd_mem_stats = false",
        "statsd_prefix = \"test.%s\"",
        "statsd_udp_packet_size = 1400",
        "statsd_exclude_ephemeral = true",
        "e2e_processing_latency_percentiles = [0.99, 0.95, 0.5]",
        "e2e_processing_latency_window_time = \"5m\"",
        "max_deflate_level = 5",
    ]
    .iter()
    .map(|l| l.to_string())
    .collect();
    lines.push(format!("data_path = {:?}", data_path.display().to_string()));
    lines.extend(secure_keys(certs));
    lines.join("\n") + "\n"
}

/// What `GET /config/:opt` must answer after either start.
fn expected_config() -> Vec<(&'static str, Value)> {
    let ns = |s: f64| json!((s * 1e9) as u64);
    vec![
        ("log_level", json!(1)),
        ("log_prefix", json!("[flags-test] ")),
        ("id", json!(7)),
        ("broadcast_address", json!("127.0.0.1")),
        ("broadcast_tcp_port", json!(4150)),
        ("broadcast_http_port", json!(4151)),
        (
            "nsqlookupd_tcp_addresses",
            json!(["127.0.0.1:1", "127.0.0.1:2"]),
        ),
        ("mem_queue_size", json!(500)),
        ("max_bytes_per_file", json!(1_048_576)),
        ("sync_every", json!(100)),
        ("sync_timeout", ns(1.0)),
        ("queue_scan_worker_pool_max", json!(8)),
        ("queue_scan_selection_count", json!(30)),
        ("msg_timeout", ns(30.0)),
        ("max_msg_timeout", ns(600.0)),
        ("max_msg_size", json!(2_048_000)),
        ("max_req_timeout", ns(1800.0)),
        ("max_body_size", json!(4_096_000)),
        ("max_heartbeat_interval", ns(50.0)),
        ("max_rdy_count", json!(200)),
        ("max_output_buffer_size", json!(32768)),
        ("max_output_buffer_timeout", ns(10.0)),
        ("min_output_buffer_timeout", ns(0.01)),
        ("output_buffer_timeout", ns(0.2)),
        ("max_channel_consumers", json!(5)),
        ("statsd_address", json!("127.0.0.1:9")),
        ("statsd_interval", ns(30.0)),
        ("statsd_mem_stats", json!(false)),
        ("statsd_prefix", json!("test.%s")),
        ("statsd_udp_packet_size", json!(1400)),
        ("statsd_exclude_ephemeral", json!(true)),
        (
            "e2e_processing_latency_percentiles",
            json!([0.99, 0.95, 0.5]),
        ),
        ("e2e_processing_latency_window_time", ns(300.0)),
        ("max_deflate_level", json!(5)),
        ("snappy", json!(true)),
        ("deflate", json!(true)),
        ("auth_http_addresses", json!(["127.0.0.1:1"])),
        ("http_client_connect_timeout", ns(3.0)),
        ("http_client_request_timeout", ns(6.0)),
        // Go's numbers: tcp-https is 1, TLS 1.2 is 0x0303.
        ("tls_required", json!(1)),
        ("tls_min_version", json!(771)),
    ]
}

/// A running binary whose standard error goes to a file.
struct Logged {
    child: Child,
    log: PathBuf,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Logged {
    fn spawn(args: &[String], log_dir: &Path) -> Logged {
        let log = log_dir.join("stderr.log");
        let child = Command::new(rnsq_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn rnsq");
        Logged { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; whether it exited 0.
    fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

/// Starts `rnsq nsqd <args>` on `data_path`; waits until it records its HTTP address.
fn start_nsqd(data_path: &Path, log_dir: &Path, args: Vec<String>) -> (Logged, String) {
    let mut all = vec!["nsqd".to_string()];
    all.extend(args);
    let process = Logged::spawn(&all, log_dir);
    let pid = process.child.id();
    let http: SocketAddr = eventually_blocking("nsqd to record its HTTP address", || {
        rnsq::data_lock::read_holder(data_path)
            .filter(|h| h.pid == pid)
            .and_then(|h| h.http_address)
    });
    (process, format!("http://{http}"))
}

/// /ping answers OK, every option reads back as given, and the log shows the prefix and one
/// note per no-effect flag.
async fn check_nsqd(process: Logged, base: &str) {
    let ping = get(&format!("{base}/ping")).await;
    assert_eq!((ping.status, ping.body.as_str()), (200, "OK"));
    let mut wrong = Vec::new();
    for (key, want) in expected_config() {
        let reply = get(&format!("{base}/config/{key}")).await;
        let got: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        if reply.status != 200 || got != want {
            wrong.push(format!(
                "{key}: {} {}, want {want}",
                reply.status, reply.body
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let log = process.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in &lines {
        assert!(
            line.starts_with("[flags-test] "),
            "line without the prefix: {line:?}"
        );
    }
    for flag in [
        "--verbose",
        "--queue-scan-worker-pool-max",
        "--queue-scan-selection-count",
    ] {
        let notes = lines
            .iter()
            .filter(|l| l.contains(&format!("{flag} ")) && l.contains("no effect"))
            .count();
        assert_eq!(notes, 1, "{flag} named {notes} times:\n{log}");
    }
    assert!(process.terminate(), "clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nsqd_flag_in_one_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("data");
    std::fs::create_dir(&data_path).unwrap();
    // The file loses to the flags: its max_rdy_count must not win.
    let config = dir.path().join("nsqd.cfg");
    std::fs::write(&config, "max_rdy_count = 9\nstatsd_prefix = \"file.\"\n").unwrap();
    let mut args = vec![
        format!("--data-path={}", data_path.display()),
        "--tcp-address=127.0.0.1:0".into(),
        "--http-address=127.0.0.1:0".into(),
    ];
    let certs = certs::generate();
    args.extend(nsqd_flags(&config, &certs));
    let (process, base) = start_nsqd(&data_path, dir.path(), args);
    let log = process.log();
    assert!(
        log.lines()
            .filter(|l| l.contains("--worker-id ") && l.contains("no effect"))
            .count()
            == 1,
        "--worker-id named once:\n{log}"
    );
    check_nsqd(process, &base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nsqd_config_key_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("data");
    std::fs::create_dir(&data_path).unwrap();
    let config = dir.path().join("nsqd.cfg");
    let certs = certs::generate();
    std::fs::write(&config, nsqd_config(&data_path, &certs)).unwrap();
    let (process, base) = start_nsqd(
        &data_path,
        dir.path(),
        vec![format!("--config={}", config.display())],
    );
    check_nsqd(process, &base).await;
}

#[test]
fn help_names_every_nsqd_flag() {
    let output = Command::new(rnsq_bin())
        .args(["nsqd", "--help"])
        .output()
        .expect("rnsq nsqd --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&&str> = GO_NSQD_FLAGS
        .iter()
        .filter(|f| !help.contains(&format!("--{f}")))
        .collect();
    assert!(missing.is_empty(), "not in --help: {missing:?}");
}

/// nsqlookupd 1.3.0's flags: `config`, `log-level`, `log-prefix`, `verbose`, `tcp-address`,
/// `http-address`, `broadcast-address`, `inactive-producer-timeout`, `tombstone-lifetime`
/// (and `version`); then every key in a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nsqlookupd_flag_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nsqlookupd.cfg");
    std::fs::write(&config, "broadcast_address = \"from-file\"\n").unwrap();
    let (tcp, http) = (free_port(), free_port());
    let by_flags = vec![
        "nsqlookupd".to_string(),
        format!("--config={}", config.display()),
        "--log-level=debug".into(),
        "--log-prefix=[lk-test] ".into(),
        "--verbose".into(),
        format!("--tcp-address=127.0.0.1:{tcp}"),
        format!("--http-address=127.0.0.1:{http}"),
        "--broadcast-address=lookupd-1".into(),
        "--inactive-producer-timeout=1m".into(),
        "--tombstone-lifetime=10s".into(),
    ];
    let (tcp2, http2) = (free_port(), free_port());
    let file = dir.path().join("every-key.cfg");
    std::fs::write(
        &file,
        format!(
            "log_level = \"debug\"\nlog_prefix = \"[lk-test] \"\nverbose = true\n\
             tcp_address = \"127.0.0.1:{tcp2}\"\nhttp_address = \"127.0.0.1:{http2}\"\n\
             broadcast_address = \"lookupd-1\"\ninactive_producer_timeout = \"1m\"\n\
             tombstone_lifetime = \"10s\"\n"
        ),
    )
    .unwrap();
    let by_file = vec![
        "nsqlookupd".to_string(),
        format!("--config={}", file.display()),
    ];
    for (args, port, name) in [(by_flags, http, "flags"), (by_file, http2, "file")] {
        let log_dir = dir.path().join(name);
        std::fs::create_dir(&log_dir).unwrap();
        let process = Logged::spawn(&args, &log_dir);
        let base = format!("http://127.0.0.1:{port}");
        eventually(&format!("nsqlookupd ({name}) to answer /ping"), || async {
            let reply = reqwest::get(format!("{base}/ping")).await.ok()?;
            (reply.text().await.ok()? == "OK").then_some(())
        })
        .await;
        let log = process.log();
        assert!(!log.is_empty(), "{name}: nothing logged");
        for line in log.lines() {
            assert!(line.starts_with("[lk-test] "), "{name}: {line:?}");
        }
        let notes = log
            .lines()
            .filter(|l| l.contains("--verbose") && l.contains("no effect"))
            .count();
        assert_eq!(notes, 1, "{name}:\n{log}");
        assert!(process.terminate(), "{name}: clean exit");
    }
}

/// A bad value of a newer flag stops start-up with a message naming the flag.
#[test]
fn bad_values_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["nsqd", "--statsd-interval=0s"], "statsd-interval"),
        (
            &["nsqd", "--statsd-udp-packet-size=0"],
            "statsd-udp-packet-size",
        ),
        (&["nsqd", "--statsd-address=nohost"], "statsd-address"),
        (&["nsqd", "--statsd-mem-stats=yes"], "statsd-mem-stats"),
        (
            &["nsqd", "--statsd-exclude-ephemeral=2"],
            "statsd-exclude-ephemeral",
        ),
        (
            &["nsqd", "--output-buffer-timeout=soon"],
            "output-buffer-timeout",
        ),
        (
            &["nsqd", "--output-buffer-timeout=0"],
            "output-buffer-timeout",
        ),
        (
            &["nsqd", "--min-output-buffer-timeout=-1ms"],
            "min-output-buffer-timeout",
        ),
        (
            &["nsqd", "--queue-scan-selection-count=many"],
            "queue-scan-selection-count",
        ),
        (
            &["nsqd", "--queue-scan-worker-pool-max=1.5"],
            "queue-scan-worker-pool-max",
        ),
        (&["nsqd", "--verbose=maybe"], "verbose"),
        (&["nsqd", "--worker-id=7"], "worker-id"),
        (&["nsqlookupd", "--verbose=2"], "verbose"),
    ];
    for (args, flag) in cases {
        let mut command = Command::new(rnsq_bin());
        command.args(*args);
        if args[0] == "nsqd" {
            command.arg(format!("--data-path={data_path}"));
        }
        let output = command
            .args(["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"])
            .output()
            .expect("run rnsq");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started:\n{stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
