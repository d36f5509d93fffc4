//! The statsd push from the built binary, received on a real UDP socket: Go nsqd 1.3.0's
//! metric names and types (`nsqd/statsd.go`) under Go's prefix, counters as deltas (all N
//! messages once, then 0), packets no larger than `--statsd-udp-packet-size` holding whole
//! lines, `--statsd-exclude-ephemeral` and `--statsd-mem-stats=false`.
//!
//! Every wait polls the socket with a deadline; `--statsd-interval=1s` keeps them short.

mod common;

use common::{post, post_body, stats, BrokerProcess, DEADLINE};
use std::collections::BTreeMap;
use tokio::net::UdpSocket;
use tokio::time::Instant;

const PACKET_SIZE: usize = 200;

/// One statsd line: `name:value|type`.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    name: String,
    value: i64,
    kind: String,
}

fn parse(line: &str) -> Line {
    let (name, rest) = line
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no ':' in {line:?}"));
    let (value, kind) = rest
        .split_once('|')
        .unwrap_or_else(|| panic!("no '|' in {line:?}"));
    Line {
        name: name.into(),
        value: value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        kind: kind.into(),
    }
}

/// Receives one packet (within the test deadline), checking its size and that it holds whole
/// lines, and returns its lines.
async fn packet(socket: &UdpSocket, started: Instant) -> Vec<Line> {
    let mut buffer = vec![0u8; 65536];
    let left = DEADLINE.saturating_sub(started.elapsed());
    let n = tokio::time::timeout(left, socket.recv(&mut buffer))
        .await
        .expect("a statsd packet before the deadline")
        .expect("recv");
    let text = std::str::from_utf8(&buffer[..n]).expect("UTF-8 packet");
    assert!(
        n <= PACKET_SIZE,
        "packet of {n} bytes > --statsd-udp-packet-size {PACKET_SIZE}: {text:?}"
    );
    assert!(text.ends_with('\n'), "packet splits a line: {text:?}");
    text.lines().map(parse).collect()
}

/// Every line of one push: packets until the push's last line, `mem.gc_runs` (sent last when
/// memory stats are on).
async fn push(socket: &UdpSocket, started: Instant) -> Vec<Line> {
    let mut lines = Vec::new();
    loop {
        let got = packet(socket, started).await;
        let last = got.last().is_some_and(|l| l.name.ends_with("mem.gc_runs"));
        lines.extend(got);
        if last {
            return lines;
        }
    }
}

async fn statsd_socket() -> (UdpSocket, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
    let address = socket.local_addr().expect("local address").to_string();
    (socket, address)
}

/// Go's names and types, counters as deltas, whole lines within the packet size, Go's
/// default prefix with the broadcast address and HTTP port, latency and memory gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_gos_names_and_counter_deltas() {
    let (socket, address) = statsd_socket().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::spawn(
        dir.path(),
        &[
            &format!("--statsd-address={address}"),
            "--statsd-interval=1s",
            &format!("--statsd-udp-packet-size={PACKET_SIZE}"),
            "--broadcast-address=10.0.0.1",
            "--broadcast-http-port=4151",
            "--e2e-processing-latency-percentile=0.99",
        ],
    );
    let base = broker.base();
    assert_eq!(
        post(&format!("{base}/topic/create?topic=t")).await.status,
        200
    );
    assert_eq!(
        post(&format!("{base}/channel/create?topic=t&channel=c"))
            .await
            .status,
        200
    );
    assert_eq!(
        post(&format!("{base}/topic/create?topic=e%23ephemeral"))
            .await
            .status,
        200
    );
    const N: i64 = 25;
    let body: Vec<u8> = (0..N)
        .map(|i| format!("message-{i:02}"))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes();
    assert_eq!(
        post_body(&format!("{base}/mpub?topic=t"), body)
            .await
            .status,
        200
    );

    let prefix = "nsq.10_0_0_1_4151.";
    let started = Instant::now();
    let (mut counted, mut bytes) = (0, 0);
    // Pushes until the N messages are counted, then one more, which must count none.
    let last = loop {
        let lines = push(&socket, started).await;
        let value = |name: &str| {
            lines
                .iter()
                .find(|l| l.name == format!("{prefix}{name}"))
                .map(|l| l.value)
        };
        let done = counted == N;
        counted += value("topic.t.message_count").unwrap_or(0);
        bytes += value("topic.t.message_bytes").unwrap_or(0);
        if done {
            break lines;
        }
        assert!(
            counted <= N,
            "counted {counted} of {N}: counters must be deltas"
        );
    };
    assert_eq!(counted, N);
    assert_eq!(bytes, N * "message-00".len() as i64);

    let by_name: BTreeMap<String, Line> =
        last.iter().map(|l| (l.name.clone(), l.clone())).collect();
    for line in &last {
        assert!(
            line.name.starts_with(prefix),
            "{line:?} lacks the prefix {prefix}"
        );
    }
    let expected = [
        ("topic.t.message_count", "c"),
        ("topic.t.message_bytes", "c"),
        ("topic.t.depth", "g"),
        ("topic.t.backend_depth", "g"),
        ("topic.t.e2e_processing_latency_99", "g"),
        ("topic.t.channel.c.message_count", "c"),
        ("topic.t.channel.c.depth", "g"),
        ("topic.t.channel.c.backend_depth", "g"),
        ("topic.t.channel.c.in_flight_count", "g"),
        ("topic.t.channel.c.deferred_count", "g"),
        ("topic.t.channel.c.requeue_count", "c"),
        ("topic.t.channel.c.timeout_count", "c"),
        ("topic.t.channel.c.clients", "g"),
        ("topic.t.channel.c.e2e_processing_latency_99", "g"),
        ("topic.e#ephemeral.message_count", "c"),
        ("mem.heap_in_use_bytes", "g"),
        ("mem.gc_pause_usec_100", "g"),
        ("mem.gc_runs", "c"),
    ];
    let mut problems = Vec::new();
    for (name, kind) in expected {
        match by_name.get(&format!("{prefix}{name}")) {
            Some(line) if line.kind == kind => {}
            Some(line) => problems.push(format!("{name} is |{}, Go sends |{kind}", line.kind)),
            None => problems.push(format!("{name} missing")),
        }
    }
    assert!(problems.is_empty(), "{problems:?} in {last:#?}");
    let value = |name: &str| by_name[&format!("{prefix}{name}")].value;
    assert_eq!(
        value("topic.t.message_count"),
        0,
        "nothing new since the last push"
    );
    assert_eq!(value("topic.t.channel.c.depth"), N, "no consumer took them");
    assert_eq!(value("topic.t.channel.c.clients"), 0);
    assert!(value("mem.heap_in_use_bytes") > 0);
    assert!(
        !by_name
            .keys()
            .any(|n| n.contains("heap_objects") || n.contains("next_gc")),
        "rnsq has no Go heap to report: {last:#?}"
    );
    assert!(
        broker.terminate(),
        "clean exit with the statsd push running"
    );
}

/// `--statsd-exclude-ephemeral` leaves ephemeral topics and channels out (while /stats shows
/// they exist), `--statsd-mem-stats=false` the memory lines; a custom prefix's `%s` is
/// replaced and a dot added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excludes_ephemeral_and_memory_when_asked() {
    let (socket, address) = statsd_socket().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::spawn(
        dir.path(),
        &[
            &format!("--statsd-address={address}"),
            "--statsd-interval=1s",
            &format!("--statsd-udp-packet-size={PACKET_SIZE}"),
            "--statsd-exclude-ephemeral",
            "--statsd-mem-stats=false",
            "--statsd-prefix=app.%s.x",
            "--broadcast-address=nsq-host.local",
            "--broadcast-http-port=4151",
        ],
    );
    let base = broker.base();
    for path in [
        "topic/create?topic=t",
        "channel/create?topic=t&channel=c",
        "channel/create?topic=t&channel=c%23ephemeral",
        "topic/create?topic=e%23ephemeral",
    ] {
        assert_eq!(post(&format!("{base}/{path}")).await.status, 200, "{path}");
    }

    // Two pushes: the second whole one comes after the first's last channel line.
    let started = Instant::now();
    let marker = "app.nsq-host_local_4151.x.topic.t.channel.c.clients";
    let mut seen = Vec::new();
    let mut markers = 0;
    while markers < 2 {
        for line in packet(&socket, started).await {
            markers += usize::from(line.name == marker);
            seen.push(line);
        }
    }
    let offending: Vec<&Line> = seen
        .iter()
        .filter(|l| l.name.contains("#ephemeral") || l.name.contains(".mem."))
        .collect();
    assert!(offending.is_empty(), "{offending:#?}");
    assert!(
        seen.iter()
            .all(|l| l.name.starts_with("app.nsq-host_local_4151.x.")),
        "{seen:#?}"
    );
    // The ephemeral topic and channel do exist: exclusion, not absence, kept them out.
    let stats = stats(&base).await;
    assert!(
        common::find_topic(&stats, "e#ephemeral").is_some(),
        "{stats}"
    );
    assert!(
        common::find_channel(&stats, "t", "c#ephemeral").is_some(),
        "{stats}"
    );
    assert!(broker.terminate(), "clean exit");
}
