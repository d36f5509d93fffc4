//! Slow and hostile peers against the built binaries, over real sockets (issue 11, item 5):
//! a client that sends a command line without its newline, a size and then nothing, trickles
//! bytes, or sends an endless line, is dropped by its read deadline (or at the line limit)
//! holding no more than a bounded buffer, and the daemon goes on serving everyone else. The
//! same for nsqlookupd's V1 port, and for the HTTP ports (header read timeout, body limits).
//!
//! The bug these guard against: before, only nsqd's command *line* had a deadline, so a PUB
//! size with no body, a silent connection that never sent the magic, any stalled nsqlookupd
//! connection and any trickled HTTP header each held a task for ever.
//!
//! The V2 cases identify with `heartbeat_interval` 1000, so their deadline is 2 s. The 60 s
//! bounds (the magic, nsqlookupd's deadline, the HTTP header timeout) are all exercised at
//! once in one test, so the file takes about a minute.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::certs::{self, ClientCert};
use common::v2::{identify_cmd, pub_cmd, with_size};
use common::{eventually_blocking, free_port, rnsq_bin, BrokerProcess};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsConnector;

/// The V2 deadline after `IDENTIFY {"heartbeat_interval":1000}`.
const V2_DEADLINE: Duration = Duration::from_secs(2);

/// The magic's, nsqlookupd's and the HTTP header's bound.
const LONG_DEADLINE: Duration = Duration::from_secs(60);

/// How late a close may come after its deadline on a loaded machine.
const SLACK: Duration = Duration::from_secs(3);

/// How early it may seem to come: the server arms its deadline a little before the test sends
/// the bytes it measures from.
const EARLY: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------------
// Daemons
// ---------------------------------------------------------------------------------------------

/// `rnsq nsqd` on port 0 with small body limits (1 KiB messages, 4 KiB bodies).
fn spawn_nsqd(dir: &Path) -> (BrokerProcess, SocketAddr) {
    let broker = BrokerProcess::spawn(dir, &["--max-msg-size", "1024", "--max-body-size", "4096"]);
    let tcp = tcp_address(&broker);
    (broker, tcp)
}

fn tcp_address(broker: &BrokerProcess) -> SocketAddr {
    rnsq::data_lock::read_holder(&broker.data_path)
        .and_then(|h| h.tcp_address)
        .expect("the broker records its TCP address")
}

/// `rnsq nsqd` serving HTTPS with `certs`' server certificate on a port of its own.
fn spawn_nsqd_https(dir: &Path, certs: &certs::Certs) -> (BrokerProcess, SocketAddr) {
    let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new(rnsq_bin())
        .arg("nsqd")
        .arg("--data-path")
        .arg(dir)
        .args([
            "--tcp-address",
            "127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
        ])
        .arg(format!("--https-address={https}"))
        .arg("--tls-cert")
        .arg(&certs.server.cert)
        .arg("--tls-key")
        .arg(&certs.server.key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rnsq nsqd");
    let pid = child.id();
    let http = eventually_blocking("the HTTPS broker to record its HTTP address", || {
        rnsq::data_lock::read_holder(dir)
            .filter(|h| h.pid == pid)
            .and_then(|h| h.http_address)
    });
    let broker = BrokerProcess {
        child,
        http,
        data_path: dir.into(),
    };
    eventually_blocking("the broker to serve HTTPS", || {
        std::net::TcpStream::connect(https).ok()
    });
    (broker, https)
}

/// `rnsq nsqlookupd` as the built binary; killed on drop.
struct Lookupd {
    child: Child,
    tcp: SocketAddr,
    http: SocketAddr,
}

impl Lookupd {
    fn spawn() -> Lookupd {
        let tcp = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(rnsq_bin())
            .arg("nsqlookupd")
            .arg(format!("--tcp-address={tcp}"))
            .arg(format!("--http-address={http}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rnsq nsqlookupd");
        let lookupd = Lookupd { child, tcp, http };
        eventually_blocking("nsqlookupd to listen", || {
            std::net::TcpStream::connect(lookupd.tcp).ok()?;
            std::net::TcpStream::connect(lookupd.http).ok()
        });
        lookupd
    }
}

impl Drop for Lookupd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process's resident set, in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

// ---------------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------------

async fn connect(address: SocketAddr) -> TcpStream {
    let stream = tokio::time::timeout(common::v2::WAIT, TcpStream::connect(address))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads whatever comes until the peer closes (EOF or a reset); answers how long after
/// `from` that was, and the bytes that came. Fails the test if the peer is still open at
/// `from + bound`.
async fn closed_by<S: AsyncRead + Unpin>(
    stream: &mut S,
    from: Instant,
    bound: Duration,
    what: &str,
) -> (Duration, Vec<u8>) {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match timeout_at(from + bound, stream.read(&mut chunk)).await {
            Err(_) => panic!("{what}: still open {bound:?} on"),
            Ok(Ok(0)) | Ok(Err(_)) => return (from.elapsed(), got),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Asserts that a close `elapsed` after the hostile bytes came at `deadline`, give or take.
fn assert_at_deadline(what: &str, elapsed: Duration, deadline: Duration) {
    assert!(
        elapsed + EARLY >= deadline && elapsed <= deadline + SLACK,
        "{what}: closed after {elapsed:?}, the deadline is {deadline:?}"
    );
}

/// Writes one byte of `byte` every 200 ms until the peer is gone.
fn trickle<W: AsyncWrite + Unpin + Send + 'static>(mut writer: W, byte: u8) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(200));
        loop {
            pace.tick().await;
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });
    tasks
}

/// V2 frames in `bytes`, heartbeats left out: `(type, data)`.
fn v2_frames(bytes: &[u8]) -> Vec<(u32, String)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let data = &bytes[at + 8..(at + 4 + size).min(bytes.len())];
        if !(kind == 0 && data == b"_heartbeat_") {
            frames.push((kind, String::from_utf8_lossy(data).into_owned()));
        }
        at += 4 + size;
    }
    frames
}

/// A V2 connection identified with a 1 s heartbeat, its `OK` read.
async fn identified(tcp: SocketAddr) -> TcpStream {
    let mut stream = connect(tcp).await;
    let mut hello = b"  V2".to_vec();
    hello.extend_from_slice(&identify_cmd(r#"{"heartbeat_interval":1000}"#));
    stream.write_all(&hello).await.unwrap();
    let mut ok = [0u8; 10];
    tokio::time::timeout(common::v2::WAIT, stream.read_exact(&mut ok))
        .await
        .expect("IDENTIFY answered in time")
        .expect("IDENTIFY answered");
    assert_eq!(ok, *b"\0\0\0\x06\0\0\0\0OK");
    stream
}

/// A normal V2 client still gets its PUB answered `OK`.
async fn v2_still_serves(tcp: SocketAddr) {
    let mut stream = connect(tcp).await;
    let mut publish = b"  V2".to_vec();
    publish.extend_from_slice(&pub_cmd("normal", b"hello"));
    stream.write_all(&publish).await.unwrap();
    let mut ok = [0u8; 10];
    tokio::time::timeout(common::v2::WAIT, stream.read_exact(&mut ok))
        .await
        .expect("PUB answered in time")
        .expect("PUB answered");
    assert_eq!(ok, *b"\0\0\0\x06\0\0\0\0OK");
}

/// A normal nsqlookupd peer still gets `PING` answered `OK`.
async fn lookupd_still_serves(tcp: SocketAddr) {
    let mut stream = connect(tcp).await;
    stream.write_all(b"  V1PING\n").await.unwrap();
    let mut ok = [0u8; 6];
    tokio::time::timeout(common::v2::WAIT, stream.read_exact(&mut ok))
        .await
        .expect("PING answered in time")
        .expect("PING answered");
    assert_eq!(ok, *b"\0\0\0\x02OK");
}

/// One HTTP/1.1 exchange on a fresh connection: sends `request` whole, answers the response
/// head and as much body as came within a second of the head.
async fn http_status(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect(address).await;
    stream.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let until = Instant::now() + common::v2::WAIT;
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        match timeout_at(until, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            other => panic!("no HTTP response head ({other:?}): {got:?}"),
        }
    }
    let more = Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(n)) = timeout_at(more, stream.read(&mut chunk)).await {
        if n == 0 || String::from_utf8_lossy(&got).contains("\"}") {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

// ---------------------------------------------------------------------------------------------
// nsqd V2: the 2 s deadline and the line limit
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_stalled_and_trickling_clients_are_dropped_by_their_command_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, tcp) = spawn_nsqd(dir.path());
    let mut cases = JoinSet::new();

    // A command line without its newline: closed, with nothing said (as Go).
    cases.spawn(async move {
        let mut stream = identified(tcp).await;
        stream.write_all(b"PUB t").await.unwrap();
        let (elapsed, got) =
            closed_by(&mut stream, Instant::now(), V2_DEADLINE + SLACK, "line").await;
        assert_at_deadline("a line without newline", elapsed, V2_DEADLINE);
        assert_eq!(v2_frames(&got), []);
    });
    // PUB's size, then no body: Go's error for a body that did not come, then closed.
    cases.spawn(async move {
        let mut stream = identified(tcp).await;
        stream.write_all(&with_size("PUB t", 100)).await.unwrap();
        let (elapsed, got) =
            closed_by(&mut stream, Instant::now(), V2_DEADLINE + SLACK, "PUB").await;
        assert_at_deadline("a PUB size and no body", elapsed, V2_DEADLINE);
        assert_eq!(
            v2_frames(&got),
            [(
                1,
                "E_BAD_MESSAGE PUB failed to read message body".to_string()
            )]
        );
    });
    // MPUB's size and message count, then nothing: the error Go's streaming reader gives.
    cases.spawn(async move {
        let mut stream = identified(tcp).await;
        let mut mpub = with_size("MPUB t", 100);
        mpub.extend_from_slice(&2u32.to_be_bytes());
        stream.write_all(&mpub).await.unwrap();
        let (elapsed, got) =
            closed_by(&mut stream, Instant::now(), V2_DEADLINE + SLACK, "MPUB").await;
        assert_at_deadline("an MPUB count and nothing", elapsed, V2_DEADLINE);
        assert_eq!(
            v2_frames(&got),
            [(
                1,
                "E_BAD_MESSAGE MPUB failed to read message(0) body size".to_string()
            )]
        );
    });
    // A line trickled a byte every 200 ms: the deadline is the command's, not per read.
    cases.spawn(async move {
        let stream = identified(tcp).await;
        let (mut reader, writer) = stream.into_split();
        let from = Instant::now();
        let mut writer = trickle(writer, b'a');
        let (elapsed, got) = closed_by(&mut reader, from, V2_DEADLINE + SLACK, "trickle").await;
        writer.abort_all();
        assert_at_deadline("a trickled line", elapsed, V2_DEADLINE);
        assert_eq!(v2_frames(&got), []);
    });
    // A PUB body trickled a byte every 200 ms: the same deadline covers the body.
    cases.spawn(async move {
        let mut stream = identified(tcp).await;
        stream.write_all(&with_size("PUB t", 1000)).await.unwrap();
        let (mut reader, writer) = stream.into_split();
        let from = Instant::now();
        let mut writer = trickle(writer, b'b');
        let (elapsed, got) = closed_by(&mut reader, from, V2_DEADLINE + SLACK, "body").await;
        writer.abort_all();
        assert_at_deadline("a trickled body", elapsed, V2_DEADLINE);
        assert_eq!(
            v2_frames(&got),
            [(
                1,
                "E_BAD_MESSAGE PUB failed to read message body".to_string()
            )]
        );
    });
    // A slow but live client is not dropped: a NOP every 500 ms for 5 s, two and a half
    // deadlines, then a PUB answered OK.
    cases.spawn(async move {
        let mut stream = identified(tcp).await;
        let mut pace = tokio::time::interval(Duration::from_millis(500));
        for _ in 0..10 {
            pace.tick().await;
            stream.write_all(b"NOP\n").await.unwrap();
        }
        stream.write_all(&pub_cmd("t", b"late")).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        let until = Instant::now() + common::v2::WAIT;
        while v2_frames(&got).is_empty() {
            match timeout_at(until, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
                other => panic!("a live client was dropped ({other:?}): {got:?}"),
            }
        }
        assert_eq!(v2_frames(&got), [(0, "OK".to_string())]);
    });
    while let Some(case) = cases.join_next().await {
        case.expect("case");
    }
    v2_still_serves(tcp).await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_endless_lines_are_cut_at_the_line_limit_and_not_held() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, tcp) = spawn_nsqd(dir.path());
    let pid = broker.child.id();
    // Warm up: the first connections allocate what every connection shares.
    v2_still_serves(tcp).await;
    v2_still_serves(tcp).await;

    // Eight clients, magic only (so their deadline is 60 s: a close now is the line limit),
    // each sending 1 MiB without a newline.
    const CLIENTS: usize = 8;
    const LINE: usize = 1024 * 1024;
    let mut streams = Vec::new();
    for _ in 0..CLIENTS {
        let mut stream = connect(tcp).await;
        stream.write_all(b"  V2").await.unwrap();
        streams.push(stream);
    }
    v2_still_serves(tcp).await;
    let before = vm_rss_kib(pid);
    let mut cases = JoinSet::new();
    for stream in streams {
        cases.spawn(async move {
            let (mut reader, mut writer) = stream.into_split();
            let from = Instant::now();
            let blast = tokio::spawn(async move {
                // The server closes part way; the rest of the write fails.
                let _ = writer.write_all(&vec![b'x'; LINE]).await;
                writer
            });
            let (elapsed, got) =
                closed_by(&mut reader, from, Duration::from_secs(10), "1 MiB line").await;
            blast.abort();
            assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
            assert_eq!(v2_frames(&got), []);
        });
    }
    while let Some(case) = cases.join_next().await {
        case.expect("case");
    }
    let after = vm_rss_kib(pid);
    eprintln!("nsqd RSS {before} KiB before {CLIENTS} endless 1 MiB lines, {after} KiB after");
    // Held whole, the lines would be 8 MiB; the line limit keeps each to 64 KiB.
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB for {CLIENTS} endless lines"
    );
    v2_still_serves(tcp).await;
    drop(broker);
}

// ---------------------------------------------------------------------------------------------
// Body limits: refused before they are read
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limits_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, tcp) = spawn_nsqd(dir.path());
    let http = broker.http;

    // V2: a size over the limit is refused with Go's error as soon as the size arrives.
    for (command, error) in [
        (
            with_size("PUB t", 1025),
            "E_BAD_MESSAGE PUB message too big 1025 > 1024",
        ),
        (
            with_size("MPUB t", 4097),
            "E_BAD_BODY MPUB body too big 4097 > 4096",
        ),
        (
            with_size("DPUB t 0", 1025),
            "E_BAD_MESSAGE DPUB message too big 1025 > 1024",
        ),
        (
            with_size("IDENTIFY", 4097),
            "E_BAD_BODY IDENTIFY body too big 4097 > 4096",
        ),
    ] {
        let mut stream = connect(tcp).await;
        stream.write_all(b"  V2").await.unwrap();
        stream.write_all(&command).await.unwrap();
        let (_, got) = closed_by(&mut stream, Instant::now(), common::v2::WAIT, error).await;
        assert_eq!(v2_frames(&got), [(1, error.to_string())]);
    }

    // HTTP: a Content-Length over the limit is answered 413 with none of the body sent.
    let head = |path: &str, length: usize| {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n").into_bytes()
    };
    let reply = http_status(http, &head("/pub?topic=t", 100 * 1024 * 1024)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains(r#"{"message":"MSG_TOO_BIG"}"#), "{reply}");
    let reply = http_status(http, &head("/mpub?topic=t", 100 * 1024 * 1024)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains(r#"{"message":"BODY_TOO_BIG"}"#), "{reply}");
    // Chunked, so no length to judge by: 413 once the limit is passed, though the body has
    // not ended (its last chunk never comes).
    let mut chunked =
        b"POST /pub?topic=t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(format!("{:x}\r\n", 2048).as_bytes());
    chunked.extend_from_slice(&[b'c'; 2048]);
    chunked.extend_from_slice(b"\r\n");
    let reply = http_status(http, &chunked).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains(r#"{"message":"MSG_TOO_BIG"}"#), "{reply}");

    // nsqlookupd's HTTP API reads no body: a huge Content-Length is answered without
    // waiting for it, and the connection closes rather than drain it.
    let lookupd = Lookupd::spawn();
    let mut stream = connect(lookupd.http).await;
    stream
        .write_all(&head("/topic/create?topic=t", 100 * 1024 * 1024))
        .await
        .unwrap();
    let (_, got) = closed_by(
        &mut stream,
        Instant::now(),
        common::v2::WAIT,
        "lookupd body",
    )
    .await;
    let reply = String::from_utf8_lossy(&got);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    drop(lookupd);

    v2_still_serves(tcp).await;
    let reply = http_status(http, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    drop(broker);
}

// ---------------------------------------------------------------------------------------------
// nsqlookupd V1: the line limit and the IDENTIFY bound
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookupd_endless_lines_and_huge_identify_bodies_are_cut_short() {
    let lookupd = Lookupd::spawn();
    let pid = lookupd.child.id();
    let tcp = lookupd.tcp;
    lookupd_still_serves(tcp).await;

    // An IDENTIFY size over 64 KiB: refused at once, nothing allocated for it.
    let mut stream = connect(tcp).await;
    stream
        .write_all(&with_size("  V1IDENTIFY", 1 << 30))
        .await
        .unwrap();
    let (_, got) = closed_by(&mut stream, Instant::now(), common::v2::WAIT, "IDENTIFY").await;
    let error = b"E_BAD_BODY IDENTIFY body too big 1073741824 > 65536";
    assert_eq!(&got[4..], error);
    assert_eq!(got[..4], (error.len() as u32).to_be_bytes());

    // Eight 1 MiB lines: each cut at the line limit long before the 60 s deadline.
    const CLIENTS: usize = 8;
    let mut streams = Vec::new();
    for _ in 0..CLIENTS {
        let mut stream = connect(tcp).await;
        stream.write_all(b"  V1").await.unwrap();
        streams.push(stream);
    }
    lookupd_still_serves(tcp).await;
    let before = vm_rss_kib(pid);
    let mut cases = JoinSet::new();
    for stream in streams {
        cases.spawn(async move {
            let (mut reader, mut writer) = stream.into_split();
            let from = Instant::now();
            let blast = tokio::spawn(async move {
                let _ = writer.write_all(&vec![b'x'; 1024 * 1024]).await;
                writer
            });
            closed_by(&mut reader, from, Duration::from_secs(10), "1 MiB line").await;
            blast.abort();
        });
    }
    while let Some(case) = cases.join_next().await {
        case.expect("case");
    }
    let after = vm_rss_kib(pid);
    eprintln!(
        "nsqlookupd RSS {before} KiB before {CLIENTS} endless 1 MiB lines, {after} KiB after"
    );
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB for {CLIENTS} endless lines"
    );
    lookupd_still_serves(tcp).await;
}

// ---------------------------------------------------------------------------------------------
// The 60 s bounds, all at once
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixty_second_bounds_drop_silent_and_trickling_peers_on_every_port() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, tcp) = spawn_nsqd(dir.path());
    let https_dir = tempfile::tempdir().unwrap();
    let certs = certs::generate();
    let (https_broker, https) = spawn_nsqd_https(https_dir.path(), &certs);
    let lookupd = Lookupd::spawn();
    let (nsqd_http, lookupd_tcp, lookupd_http) = (broker.http, lookupd.tcp, lookupd.http);
    let mut cases = JoinSet::new();

    // Silent, or a partial magic: the magic has 60 s (Go has no bound).
    for (address, magic, what) in [
        (tcp, &b""[..], "nsqd: no magic"),
        (tcp, &b"  V"[..], "nsqd: part of the magic"),
        (lookupd_tcp, &b""[..], "nsqlookupd: no magic"),
    ] {
        cases.spawn(async move {
            let mut stream = connect(address).await;
            stream.write_all(magic).await.unwrap();
            let (elapsed, got) =
                closed_by(&mut stream, Instant::now(), LONG_DEADLINE + SLACK, what).await;
            assert_at_deadline(what, elapsed, LONG_DEADLINE);
            assert_eq!(got, b"", "{what}");
        });
    }
    // nsqlookupd: a line without its newline, and IDENTIFY's size with no body.
    cases.spawn(async move {
        let mut stream = connect(lookupd_tcp).await;
        stream.write_all(b"  V1PING").await.unwrap();
        let what = "nsqlookupd: a line without newline";
        let (elapsed, got) =
            closed_by(&mut stream, Instant::now(), LONG_DEADLINE + SLACK, what).await;
        assert_at_deadline(what, elapsed, LONG_DEADLINE);
        assert_eq!(got, b"");
    });
    cases.spawn(async move {
        let mut stream = connect(lookupd_tcp).await;
        stream
            .write_all(&with_size("  V1IDENTIFY", 200))
            .await
            .unwrap();
        let what = "nsqlookupd: an IDENTIFY size and no body";
        let (elapsed, got) =
            closed_by(&mut stream, Instant::now(), LONG_DEADLINE + SLACK, what).await;
        assert_at_deadline(what, elapsed, LONG_DEADLINE);
        let error = b"E_BAD_BODY IDENTIFY failed to read body";
        assert_eq!(got[..4], (error.len() as u32).to_be_bytes());
        assert_eq!(&got[4..], error);
    });
    // nsqlookupd: a trickled line.
    cases.spawn(async move {
        let mut stream = connect(lookupd_tcp).await;
        stream.write_all(b"  V1").await.unwrap();
        let (mut reader, writer) = stream.into_split();
        let from = Instant::now();
        let mut writer = trickle(writer, b'P');
        let what = "nsqlookupd: a trickled line";
        let (elapsed, got) = closed_by(&mut reader, from, LONG_DEADLINE + SLACK, what).await;
        writer.abort_all();
        assert_at_deadline(what, elapsed, LONG_DEADLINE);
        assert_eq!(got, b"");
    });
    // HTTP: a header trickled for ever, on nsqd's and nsqlookupd's ports.
    for (address, what) in [
        (nsqd_http, "nsqd HTTP: a trickled header"),
        (lookupd_http, "nsqlookupd HTTP: a trickled header"),
    ] {
        cases.spawn(async move {
            let mut stream = connect(address).await;
            stream
                .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
            let (mut reader, writer) = stream.into_split();
            let from = Instant::now();
            let mut writer = trickle(writer, b'a');
            let (elapsed, got) = closed_by(&mut reader, from, LONG_DEADLINE + SLACK, what).await;
            writer.abort_all();
            assert_at_deadline(what, elapsed, LONG_DEADLINE);
            let reply = String::from_utf8_lossy(&got);
            assert!(!reply.contains("200 OK"), "{what}: answered {reply}");
        });
    }
    // HTTP: a /pub whose Content-Length is within the limit but whose body never comes:
    // answered Go's 500 for a failed body read once the body timeout has passed.
    cases.spawn(async move {
        let what = "nsqd HTTP: a /pub body that never comes";
        let mut stream = connect(nsqd_http).await;
        let head = b"POST /pub?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfirst";
        stream.write_all(head).await.unwrap();
        let (elapsed, got) =
            closed_by(&mut stream, Instant::now(), LONG_DEADLINE + SLACK, what).await;
        assert_at_deadline(what, elapsed, LONG_DEADLINE);
        let reply = String::from_utf8_lossy(&got);
        assert!(reply.starts_with("HTTP/1.1 500"), "{what}: {reply}");
        assert!(
            reply.contains(r#"{"message":"INTERNAL_ERROR"}"#),
            "{what}: {reply}"
        );
    });
    // HTTP: a keep-alive connection left idle after its request is closed too.
    cases.spawn(async move {
        let what = "nsqd HTTP: an idle keep-alive connection";
        let mut stream = connect(nsqd_http).await;
        stream
            .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\nOK") {
            let n = tokio::time::timeout(common::v2::WAIT, stream.read(&mut chunk))
                .await
                .expect("the first response in time")
                .expect("the first response");
            assert!(n > 0, "closed before answering: {got:?}");
            got.extend_from_slice(&chunk[..n]);
        }
        let (elapsed, more) =
            closed_by(&mut stream, Instant::now(), LONG_DEADLINE + SLACK, what).await;
        assert_at_deadline(what, elapsed, LONG_DEADLINE);
        assert_eq!(more, b"");
    });
    // HTTPS: after the handshake, the same header timeout.
    let config = certs.client_config(ClientCert::None);
    cases.spawn(async move {
        let what = "nsqd HTTPS: a trickled header";
        let tcp = connect(https).await;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = TlsConnector::from(Arc::clone(&config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        tls.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        let (mut reader, writer) = tokio::io::split(tls);
        let from = Instant::now();
        let mut writer = trickle(writer, b'a');
        let (elapsed, _) = closed_by(&mut reader, from, LONG_DEADLINE + SLACK, what).await;
        writer.abort_all();
        assert_at_deadline(what, elapsed, LONG_DEADLINE);
    });

    while let Some(case) = cases.join_next().await {
        case.expect("case");
    }
    v2_still_serves(tcp).await;
    lookupd_still_serves(lookupd_tcp).await;
    let reply = http_status(nsqd_http, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let reply = http_status(lookupd_http, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    drop((broker, https_broker, lookupd));
}
