//! Shared test helpers: a broker in-process on port 0 or as the built binary, an HTTP client,
//! and polling with a deadline (never sleeps as synchronisation).

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rnsq::config::{LiveOptions, NsqdOptions};
use rnsq::data_lock;
use rnsq::nsqd::Nsqd;

pub mod certs;
pub mod churn;
pub mod v2;
pub mod v2_cases;

/// How long any wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Options for a broker on `data_path` listening on loopback port 0 (HTTPS too, once a test
/// gives it a certificate).
pub fn options(data_path: &Path) -> NsqdOptions {
    NsqdOptions {
        data_path: data_path.into(),
        tcp_address: "127.0.0.1:0".into(),
        http_address: "127.0.0.1:0".into(),
        tls: rnsq::config::TlsOptions {
            https_address: "127.0.0.1:0".into(),
            ..Default::default()
        },
        ..NsqdOptions::default()
    }
}

/// Starts a broker in this process.
pub async fn start(data_path: &Path) -> Nsqd {
    start_with(options(data_path)).await
}

/// Starts a broker in this process with `opts`.
pub async fn start_with(opts: NsqdOptions) -> Nsqd {
    let live = Arc::new(LiveOptions::new(opts, Box::new(|_| {})));
    Nsqd::start(live).await.expect("broker starts")
}

/// `http://<address>`.
pub fn base(address: SocketAddr) -> String {
    format!("http://{address}")
}

/// A reply: status, body text, and the `X-NSQ-Content-Type` header.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub nsq_header: Option<String>,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let nsq_header = response
        .headers()
        .get("X-NSQ-Content-Type")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let body = response.text().await.expect("HTTP body");
    Reply {
        status,
        body,
        nsq_header,
    }
}

/// POST `url` with `body`.
pub async fn post_body(url: &str, body: Vec<u8>) -> Reply {
    send(reqwest::Client::new().post(url).body(body)).await
}

/// POST `url` with no body.
pub async fn post(url: &str) -> Reply {
    send(reqwest::Client::new().post(url)).await
}

/// GET `url`.
pub async fn get(url: &str) -> Reply {
    send(reqwest::Client::new().get(url)).await
}

/// PUT `body` to `url`.
pub async fn put(url: &str, body: &str) -> Reply {
    send(reqwest::Client::new().put(url).body(body.to_string())).await
}

/// GET `/stats?format=json` as JSON.
pub async fn stats(base: &str) -> serde_json::Value {
    let reply = get(&format!("{base}/stats?format=json")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).expect("stats JSON")
}

/// Shuts a broker in this process down, failing the test after 10 s.
pub async fn stop(nsqd: Nsqd) {
    tokio::time::timeout(Duration::from_secs(10), nsqd.shutdown())
        .await
        .expect("broker shuts down within 10 s");
}

/// Topic `topic` in /stats JSON.
pub fn find_topic<'a>(stats: &'a serde_json::Value, topic: &str) -> Option<&'a serde_json::Value> {
    stats["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic_name"] == topic)
}

/// Channel `topic/channel` in /stats JSON.
pub fn find_channel<'a>(
    stats: &'a serde_json::Value,
    topic: &str,
    channel: &str,
) -> Option<&'a serde_json::Value> {
    find_topic(stats, topic)?["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel_name"] == channel)
}

/// Waits until channel `topic/channel` shows `key == want` in /stats.
pub async fn wait_channel_stat(base: &str, topic: &str, channel: &str, key: &str, want: u64) {
    let what = format!("/stats {topic}/{channel} {key} == {want}");
    eventually(&what, move || async move {
        let stats = stats(base).await;
        (find_channel(&stats, topic, channel)?[key].as_u64() == Some(want)).then_some(())
    })
    .await;
}

/// Waits until topic `topic` shows `message_count == want` in /stats.
pub async fn wait_topic_count(base: &str, topic: &str, want: u64) {
    let what = format!("/stats topic {topic} message_count == {want}");
    eventually(&what, move || async move {
        let stats = stats(base).await;
        (find_topic(&stats, topic)?["message_count"].as_u64() == Some(want)).then_some(())
    })
    .await;
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Blocking version of [`eventually`].
pub fn eventually_blocking<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number in environment variable `name`, or `default` when it is unset.
pub fn env_cycles(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// The built `rnsq` binary.
pub fn rnsq_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rnsq"))
}

/// A loopback port that was free a moment ago (for daemons that cannot listen on port 0 and
/// say where they landed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `rnsq bench <args>` as the built binary and returns its standard output, failing the
/// test (with both outputs) unless it exits 0.
pub async fn rnsq_bench(args: Vec<String>) -> String {
    let shown = args.join(" ");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(rnsq_bin())
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

/// A broker running as the built binary.
pub struct BrokerProcess {
    pub child: Child,
    pub http: SocketAddr,
    pub data_path: PathBuf,
}

impl BrokerProcess {
    /// Spawns `rnsq nsqd --data-path <data_path>` on loopback port 0 (TCP, HTTP and HTTPS)
    /// with `extra` flags, and waits until it serves HTTP.
    pub fn spawn(data_path: &Path, extra: &[&str]) -> BrokerProcess {
        Self::spawn_with_env(data_path, extra, &[])
    }

    /// [`BrokerProcess::spawn`] with `env` added to the broker's environment.
    pub fn spawn_with_env(
        data_path: &Path,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> BrokerProcess {
        let child = Command::new(rnsq_bin())
            .envs(env.iter().copied())
            .arg("nsqd")
            .arg("--data-path")
            .arg(data_path)
            .args([
                "--tcp-address",
                "127.0.0.1:0",
                "--http-address",
                "127.0.0.1:0",
                "--https-address",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rnsq");
        let pid = child.id();
        let http = eventually_blocking("the broker to record its HTTP address", || {
            data_lock::read_holder(data_path)
                .filter(|h| h.pid == pid)
                .and_then(|h| h.http_address)
        });
        BrokerProcess {
            child,
            http,
            data_path: data_path.into(),
        }
    }

    /// `http://<address>`.
    pub fn base(&self) -> String {
        base(self.http)
    }

    /// Its TCP (protocol V2) address, as its data lock records it.
    pub fn tcp(&self) -> SocketAddr {
        data_lock::read_holder(&self.data_path)
            .and_then(|h| h.tcp_address)
            .expect("the broker's TCP address")
    }

    /// `kill -9`, then reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns whether it exited with status 0.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a sled database directly (to craft or inspect a store), waiting while a store that
/// was just closed in this process still holds sled's file lock (sled releases it from a
/// background thread).
pub fn open_sled(path: impl AsRef<Path>) -> sled::Db {
    let path = path.as_ref();
    eventually_blocking("sled's file lock", || match sled::open(path) {
        Ok(db) => Some(db),
        Err(e) if e.to_string().contains("could not acquire lock") => None,
        Err(e) => panic!("sled cannot open {}: {e}", path.display()),
    })
}
