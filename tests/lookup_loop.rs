//! The nsqd → lookupd loop against a real TCP peer that speaks lookupd's V1 protocol and
//! records what it hears: announce on connect (and nothing before IDENTIFY), REGISTER and
//! UNREGISTER on changes, prompt re-announce after a lookupd restart, runtime address changes,
//! and lookupds that hang or answer garbage.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{base, eventually, post, put};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answers like nsqlookupd.
    Normal,
    /// Accepts connections and never answers.
    Silent,
    /// Answers every command with a 4 GiB size prefix.
    Garbage,
}

/// A lookupd stand-in on a real socket: records each request line, and "CLOSED" when a
/// connection ends.
struct FakeLookupd {
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl FakeLookupd {
    async fn start(address: &str, mode: Mode) -> FakeLookupd {
        let listener = TcpListener::bind(address).await.expect("bind fake lookupd");
        let address = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    connections.spawn(serve(stream, mode, log.clone()));
                }
            }
        });
        FakeLookupd { address, log, task }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        eventually(what, || {
            let lines = self.lines();
            let ok = check(&lines);
            async move { ok.then_some(lines) }
        })
        .await
    }

    /// Stops listening and drops every connection, like a lookupd that exits.
    fn kill(self) {
        self.task.abort();
    }
}

async fn serve(stream: tokio::net::TcpStream, mode: Mode, log: Arc<Mutex<Vec<String>>>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut magic = [0u8; 4];
    if reader.read_exact(&mut magic).await.is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            log.lock().unwrap().push("CLOSED".into());
            return;
        }
        let line = line.trim_end().to_string();
        if line == "IDENTIFY" {
            let size = reader.read_u32().await.unwrap_or(0);
            let mut body = vec![0; size as usize];
            let _ = reader.read_exact(&mut body).await;
        }
        log.lock().unwrap().push(line.clone());
        let reply: Vec<u8> = match mode {
            Mode::Silent => continue,
            Mode::Garbage => vec![0xff, 0xff, 0xff, 0xff, b'x'],
            Mode::Normal if line == "IDENTIFY" => {
                let body = br#"{"tcp_port":4160,"http_port":1,"version":"1.3.0","broadcast_address":"127.0.0.1","hostname":"fake"}"#;
                [&(body.len() as u32).to_be_bytes()[..], body].concat()
            }
            Mode::Normal => b"\0\0\0\x02OK".to_vec(),
        };
        if write.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn registers(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("REGISTER") || l.starts_with("UNREGISTER"))
        .collect()
}

async fn start_with_lookupd(dir: &std::path::Path, lookupds: &[SocketAddr]) -> rnsq::nsqd::Nsqd {
    let mut opts = common::options(dir);
    opts.nsqlookupd_tcp_addresses = lookupds.iter().map(|a| a.to_string()).collect();
    common::start_with(opts).await
}

#[tokio::test]
async fn boot_announces_everything_after_identify_and_nothing_during_replay() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    assert_eq!(
        post(&format!("{h}/topic/create?topic=lonely")).await.status,
        200
    );
    assert_eq!(post(&format!("{h}/topic/create?topic=t")).await.status, 200);
    assert_eq!(
        post(&format!("{h}/channel/create?topic=t&channel=a"))
            .await
            .status,
        200
    );
    assert_eq!(
        post(&format!("{h}/channel/create?topic=t&channel=b"))
            .await
            .status,
        200
    );
    nsqd.shutdown().await;

    let lookupd = FakeLookupd::start("127.0.0.1:0", Mode::Normal).await;
    let nsqd = start_with_lookupd(dir.path(), &[lookupd.address]).await;
    let lines = lookupd
        .wait_for("the announce", |l| registers(l).len() >= 3)
        .await;
    assert_eq!(
        lines[0], "IDENTIFY",
        "the first thing lookupd hears is IDENTIFY: {lines:?}"
    );
    let mut announced = registers(&lines);
    announced.sort();
    assert_eq!(
        announced,
        ["REGISTER lonely", "REGISTER t a", "REGISTER t b"]
    );
    nsqd.shutdown().await;
    lookupd.kill();
}

#[tokio::test]
async fn changes_are_registered_and_unregistered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let lookupd = FakeLookupd::start("127.0.0.1:0", Mode::Normal).await;
    let nsqd = start_with_lookupd(dir.path(), &[lookupd.address]).await;
    let h = base(nsqd.http_address());
    lookupd
        .wait_for("IDENTIFY", |l| l.first().is_some_and(|f| f == "IDENTIFY"))
        .await;

    let started = Instant::now();
    assert_eq!(
        post(&format!("{h}/topic/create?topic=orders")).await.status,
        200
    );
    lookupd
        .wait_for("REGISTER orders", |l| registers(l) == ["REGISTER orders"])
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "registered after {:?}",
        started.elapsed()
    );
    for q in [
        "channel/create?topic=orders&channel=billing",
        "channel/create?topic=orders&channel=tmp%23ephemeral",
        "channel/delete?topic=orders&channel=tmp%23ephemeral",
        "topic/delete?topic=orders",
    ] {
        assert_eq!(post(&format!("{h}/{q}")).await.status, 200, "{q}");
    }
    let lines = lookupd
        .wait_for("UNREGISTER orders", |l| {
            registers(l).last() == Some(&"UNREGISTER orders")
        })
        .await;
    assert_eq!(
        registers(&lines),
        [
            "REGISTER orders",
            "REGISTER orders billing",
            "REGISTER orders tmp#ephemeral",
            "UNREGISTER orders tmp#ephemeral",
            "UNREGISTER orders billing",
            "UNREGISTER orders",
        ]
    );
    nsqd.shutdown().await;
    lookupd.kill();
}

#[tokio::test]
async fn a_restarted_lookupd_has_everything_back_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let lookupd = FakeLookupd::start("127.0.0.1:0", Mode::Normal).await;
    let address = lookupd.address;
    let nsqd = start_with_lookupd(dir.path(), &[address]).await;
    let h = base(nsqd.http_address());
    assert_eq!(
        post(&format!("{h}/channel/create?topic=x&channel=y"))
            .await
            .status,
        404
    );
    assert_eq!(post(&format!("{h}/topic/create?topic=x")).await.status, 200);
    assert_eq!(
        post(&format!("{h}/channel/create?topic=x&channel=y"))
            .await
            .status,
        200
    );
    lookupd
        .wait_for("the channel", |l| registers(l).contains(&"REGISTER x y"))
        .await;

    lookupd.kill();
    let restarted_at = Instant::now();
    // The same address, as a restarted lookupd has (the old listener may take a moment to go).
    let lookupd = loop {
        match TcpListener::bind(address).await {
            Ok(probe) => {
                drop(probe);
                break FakeLookupd::start(&address.to_string(), Mode::Normal).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let lines = lookupd
        .wait_for("the re-announce", |l| {
            registers(l).contains(&"REGISTER x y")
        })
        .await;
    let healed = restarted_at.elapsed();
    assert_eq!(lines[0], "IDENTIFY");
    assert!(
        healed < Duration::from_secs(2),
        "re-announced after {healed:?}"
    );
    eprintln!("lookupd restart healed in {healed:?}");
    nsqd.shutdown().await;
    lookupd.kill();
}

#[tokio::test]
async fn put_config_moves_the_broker_to_another_lookupd() {
    let dir = tempfile::tempdir().unwrap();
    let a = FakeLookupd::start("127.0.0.1:0", Mode::Normal).await;
    let b = FakeLookupd::start("127.0.0.1:0", Mode::Normal).await;
    let nsqd = start_with_lookupd(dir.path(), &[a.address]).await;
    let h = base(nsqd.http_address());
    assert_eq!(
        post(&format!("{h}/topic/create?topic=moving")).await.status,
        200
    );
    a.wait_for("REGISTER on A", |l| {
        registers(l).contains(&"REGISTER moving")
    })
    .await;

    let reply = put(
        &format!("{h}/config/nsqlookupd_tcp_addresses"),
        &format!(r#"["{}"]"#, b.address),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let lines = b
        .wait_for("B to learn everything", |l| {
            registers(l).contains(&"REGISTER moving")
        })
        .await;
    assert_eq!(lines[0], "IDENTIFY");
    a.wait_for("A's connection to close", |l| {
        l.last().is_some_and(|x| x == "CLOSED")
    })
    .await;
    assert_eq!(
        post(&format!("{h}/topic/create?topic=later")).await.status,
        200
    );
    b.wait_for("B to hear of new topics", |l| {
        registers(l).contains(&"REGISTER later")
    })
    .await;
    assert!(
        !registers(&a.lines()).contains(&"REGISTER later"),
        "A still hears changes"
    );
    nsqd.shutdown().await;
    a.kill();
    b.kill();
}

#[tokio::test]
async fn a_silent_or_garbage_lookupd_stalls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let silent = FakeLookupd::start("127.0.0.1:0", Mode::Silent).await;
    let garbage = FakeLookupd::start("127.0.0.1:0", Mode::Garbage).await;
    let good = FakeLookupd::start("127.0.0.1:0", Mode::Normal).await;
    let nsqd =
        start_with_lookupd(dir.path(), &[silent.address, garbage.address, good.address]).await;
    let h = base(nsqd.http_address());
    silent
        .wait_for("the silent lookupd to be sent IDENTIFY", |l| !l.is_empty())
        .await;
    garbage
        .wait_for("the garbage lookupd to be sent IDENTIFY", |l| !l.is_empty())
        .await;

    let started = Instant::now();
    assert_eq!(
        post(&format!("{h}/topic/create?topic=fast")).await.status,
        200
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "topic creation took {:?}",
        started.elapsed()
    );
    good.wait_for("the good lookupd to hear", |l| {
        registers(l).contains(&"REGISTER fast")
    })
    .await;
    // The garbage peer is dropped and retried, not crashed: it keeps being sent IDENTIFY.
    garbage
        .wait_for("a reconnect after garbage", |l| {
            l.iter().filter(|x| *x == "IDENTIFY").count() >= 2
        })
        .await;
    assert_eq!(common::get(&format!("{h}/ping")).await.body, "OK");

    let shutdown_started = Instant::now();
    nsqd.shutdown().await;
    assert!(
        shutdown_started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        shutdown_started.elapsed()
    );
    silent.kill();
    garbage.kill();
    good.kill();
}
