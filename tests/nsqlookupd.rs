//! `rnsq nsqlookupd` from outside: lookup protocol V1 over real TCP and the HTTP API, against
//! Go nsqlookupd 1.3.0's bytes, codes and JSON shapes.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{eventually, free_port, get, post, DEADLINE};
use rnsq::lookup_wire::{Command, PeerInfo, MAGIC_V1};
use rnsq::nsqlookupd::{Nsqlookupd, NsqlookupdOptions};

fn options() -> NsqlookupdOptions {
    NsqlookupdOptions {
        tcp_address: "127.0.0.1:0".into(),
        http_address: "127.0.0.1:0".into(),
        broadcast_address: "lookupd.test".into(),
        ..NsqlookupdOptions::default()
    }
}

async fn start_with(opts: NsqlookupdOptions) -> (Nsqlookupd, String) {
    let lookupd = Nsqlookupd::start(opts).await.expect("nsqlookupd starts");
    let base = common::base(lookupd.http_address());
    (lookupd, base)
}

async fn start() -> (Nsqlookupd, String) {
    start_with(options()).await
}

/// What an nsqd says about itself; `name` makes the broadcast address unique.
fn peer_info(name: &str, http_port: u16) -> PeerInfo {
    PeerInfo {
        broadcast_address: name.into(),
        hostname: format!("{name}.host"),
        tcp_port: 4150,
        http_port,
        version: "1.3.0".into(),
    }
}

/// One V1 connection, as an nsqd holds it.
struct V1 {
    stream: TcpStream,
}

impl V1 {
    /// Connects and sends the magic.
    async fn connect(address: SocketAddr) -> V1 {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(MAGIC_V1).await.expect("magic");
        V1 { stream }
    }

    /// Connects and identifies as `info`.
    async fn identified(address: SocketAddr, info: &PeerInfo) -> V1 {
        let mut conn = V1::connect(address).await;
        let reply = conn.call(Command::identify(info).as_bytes()).await;
        assert!(
            reply.starts_with(b"{"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        conn
    }

    /// This end's address, which lookupd reports as the producer's `remote_address`.
    fn local_address(&self) -> String {
        self.stream.local_addr().expect("local address").to_string()
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads one `[4-byte size][data]` response.
    async fn response(&mut self) -> Vec<u8> {
        tokio::time::timeout(DEADLINE, async {
            let size = self.stream.read_u32().await.expect("response size");
            let mut data = vec![0; size as usize];
            self.stream
                .read_exact(&mut data)
                .await
                .expect("response data");
            data
        })
        .await
        .expect("a response in time")
    }

    async fn call(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.send(bytes).await;
        self.response().await
    }

    /// Sends `bytes`, expects `error` as the response, then the connection closed.
    async fn call_fails(mut self, bytes: &[u8], error: &str) {
        let reply = self.call(bytes).await;
        assert_eq!(String::from_utf8_lossy(&reply), error);
        self.assert_closed().await;
    }

    async fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(DEADLINE, self.stream.read_to_end(&mut rest))
            .await
            .expect("the connection closes in time");
        assert!(
            read.is_err() || rest.is_empty(),
            "unexpected bytes after the error: {rest:?}"
        );
    }
}

async fn json_get(url: &str) -> Value {
    let reply = get(url).await;
    assert_eq!(reply.status, 200, "{url}: {}", reply.body);
    serde_json::from_str(&reply.body).expect("JSON")
}

async fn lookup(base: &str, topic: &str) -> Value {
    json_get(&format!("{base}/lookup?topic={topic}")).await
}

/// The broadcast addresses `/lookup` lists for `topic`.
async fn lookup_names(base: &str, topic: &str) -> Vec<String> {
    lookup(base, topic).await["producers"]
        .as_array()
        .expect("producers")
        .iter()
        .map(|p| {
            p["broadcast_address"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn bad_magic_is_refused_and_closed() {
    let (lookupd, _) = start().await;
    let mut stream = TcpStream::connect(lookupd.tcp_address()).await.unwrap();
    stream.write_all(b"  V2").await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, b"\0\0\0\x0eE_BAD_PROTOCOL");
    lookupd.shutdown().await;
}

#[tokio::test]
async fn identify_answers_lookupd_identity_and_ping_says_ok() {
    let (lookupd, _) = start().await;
    let mut conn = V1::connect(lookupd.tcp_address()).await;
    assert_eq!(conn.call(Command::ping().as_bytes()).await, b"OK");
    let reply = conn
        .call(Command::identify(&peer_info("n1", 4151)).as_bytes())
        .await;
    // Go marshals a map: keys sorted.
    let expected = format!(
        r#"{{"broadcast_address":"lookupd.test","hostname":"{}","http_port":{},"tcp_port":{},"version":"1.3.0"}}"#,
        rnsq::options::hostname(),
        lookupd.http_address().port(),
        lookupd.tcp_address().port(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    assert_eq!(conn.call(Command::ping().as_bytes()).await, b"OK");
    // Trailing white space and \r\n are trimmed, as Go trims them.
    assert_eq!(conn.call(b"  PING \r\n").await, b"OK");
    conn.call_fails(
        Command::identify(&peer_info("n1", 4151)).as_bytes(),
        "E_INVALID cannot IDENTIFY again",
    )
    .await;
    lookupd.shutdown().await;
}

#[tokio::test]
async fn identify_body_errors_close_the_connection() {
    let (lookupd, base) = start().await;
    let address = lookupd.tcp_address();
    // A bystander that stays registered through all of it.
    let mut bystander = V1::identified(address, &peer_info("bystander", 4151)).await;
    assert_eq!(bystander.call(b"REGISTER t\n").await, b"OK");

    let with_body = |body: &[u8]| {
        let mut bytes = b"IDENTIFY\n".to_vec();
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    };
    for (body, error) in [
        (
            &br#"{"broadcast_address":"b","tcp_port":1,"http_port":2}"#[..],
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            br#"{"broadcast_address":"","tcp_port":1,"http_port":2,"version":"v"}"#,
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            br#"{"broadcast_address":"b","tcp_port":0,"http_port":2,"version":"v"}"#,
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            b"{not json",
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            br#"{"broadcast_address":"b","tcp_port":"1","http_port":2,"version":"v"}"#,
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
    ] {
        V1::connect(address)
            .await
            .call_fails(&with_body(body), error)
            .await;
    }

    // A body shorter than its size, then the end of the stream.
    let mut conn = V1::connect(address).await;
    conn.send(b"IDENTIFY\n\0\0\0\x64{\"a\"").await;
    conn.stream.shutdown().await.unwrap();
    assert_eq!(
        conn.response().await,
        b"E_BAD_BODY IDENTIFY failed to read body"
    );
    conn.assert_closed().await;
    // No size at all.
    let mut conn = V1::connect(address).await;
    conn.send(b"IDENTIFY\n\0\0").await;
    conn.stream.shutdown().await.unwrap();
    assert_eq!(
        conn.response().await,
        b"E_BAD_BODY IDENTIFY failed to read body size"
    );
    conn.assert_closed().await;

    assert_eq!(bystander.call(b"PING\n").await, b"OK");
    assert_eq!(lookup_names(&base, "t").await, ["bystander"]);
    lookupd.shutdown().await;
}

#[tokio::test]
async fn command_errors_are_gos_and_close_only_their_connection() {
    let (lookupd, base) = start().await;
    let address = lookupd.tcp_address();
    let mut bystander = V1::identified(address, &peer_info("bystander", 4151)).await;

    let cases: [(&[u8], &str); 4] = [
        (b"REGISTER t\n", "E_INVALID client must IDENTIFY"),
        (b"UNREGISTER t c\n", "E_INVALID client must IDENTIFY"),
        (b"FOO bar\n", "E_INVALID invalid command FOO"),
        (b"\n", "E_INVALID invalid command "),
    ];
    for (line, error) in cases {
        V1::connect(address).await.call_fails(line, error).await;
    }
    let identified_cases: [(&[u8], &str); 7] = [
        (
            b"REGISTER\n",
            "E_INVALID REGISTER insufficient number of params",
        ),
        (
            b"UNREGISTER \n",
            "E_INVALID UNREGISTER insufficient number of params",
        ),
        (
            b"REGISTER bad!topic\n",
            "E_BAD_TOPIC REGISTER topic name 'bad!topic' is not valid",
        ),
        (
            b"REGISTER  t\n",
            "E_BAD_TOPIC REGISTER topic name '' is not valid",
        ),
        (
            b"UNREGISTER t bad*channel\n",
            "E_BAD_CHANNEL UNREGISTER channel name 'bad*channel' is not valid",
        ),
        (
            b"REGISTER t c#ephemeral#ephemeral\n",
            "E_BAD_CHANNEL REGISTER channel name 'c#ephemeral#ephemeral' is not valid",
        ),
        (b"register t\n", "E_INVALID invalid command register"),
    ];
    for (i, (line, error)) in identified_cases.into_iter().enumerate() {
        let conn = V1::identified(address, &peer_info(&format!("p{i}"), 4151)).await;
        conn.call_fails(line, error).await;
    }

    assert_eq!(bystander.call(b"REGISTER t c\n").await, b"OK");
    assert_eq!(lookup_names(&base, "t").await, ["bystander"]);
    // Nothing was registered by the failed commands; their peers left with their connections.
    assert_eq!(
        json_get(&format!("{base}/topics")).await,
        json!({"topics": ["t"]})
    );
    let nodes = eventually("failed peers to leave /nodes", || async {
        let nodes = json_get(&format!("{base}/nodes")).await;
        (nodes["producers"].as_array().map(Vec::len) == Some(1)).then_some(nodes)
    })
    .await;
    assert_eq!(nodes["producers"][0]["broadcast_address"], "bystander");
    lookupd.shutdown().await;
}

#[tokio::test]
async fn registrations_show_in_lookup_topics_channels_and_nodes() {
    let (lookupd, base) = start().await;
    let address = lookupd.tcp_address();
    let mut a = V1::identified(address, &peer_info("a", 5151)).await;
    let mut b = V1::identified(address, &peer_info("b", 6151)).await;
    for line in [
        Command::register("t1", Some("c1")),
        Command::register("t1", Some("c2")),
        Command::register("t2", None),
    ] {
        assert_eq!(a.call(line.as_bytes()).await, b"OK");
    }
    assert_eq!(b.call(b"REGISTER t1\n").await, b"OK");
    // Registering twice is fine.
    assert_eq!(b.call(b"REGISTER t1\n").await, b"OK");

    let t1 = lookup(&base, "t1").await;
    assert_eq!(t1["channels"], json!(["c1", "c2"]));
    let mut producers = t1["producers"].as_array().unwrap().clone();
    producers.sort_by_key(|p| {
        p["broadcast_address"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(
        producers,
        [
            json!({
                "remote_address": a.local_address(),
                "hostname": "a.host",
                "broadcast_address": "a",
                "tcp_port": 4150,
                "http_port": 5151,
                "version": "1.3.0",
            }),
            json!({
                "remote_address": b.local_address(),
                "hostname": "b.host",
                "broadcast_address": "b",
                "tcp_port": 4150,
                "http_port": 6151,
                "version": "1.3.0",
            }),
        ]
    );
    // Go's key order within a producer.
    let raw = get(&format!("{base}/lookup?topic=t2")).await;
    assert_eq!(raw.nsq_header.as_deref(), Some("nsq; version=1.0"));
    assert_eq!(
        raw.body,
        format!(
            r#"{{"channels":[],"producers":[{{"remote_address":"{}","hostname":"a.host","broadcast_address":"a","tcp_port":4150,"http_port":5151,"version":"1.3.0"}}]}}"#,
            a.local_address()
        )
    );

    assert_eq!(
        json_get(&format!("{base}/topics")).await,
        json!({"topics": ["t1", "t2"]})
    );
    assert_eq!(
        json_get(&format!("{base}/channels?topic=t1")).await,
        json!({"channels": ["c1", "c2"]})
    );
    assert_eq!(
        json_get(&format!("{base}/channels?topic=unknown")).await,
        json!({"channels": []})
    );

    let nodes = json_get(&format!("{base}/nodes")).await;
    let mut nodes = nodes["producers"].as_array().unwrap().clone();
    nodes.sort_by_key(|p| {
        p["broadcast_address"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(
        nodes,
        [
            json!({
                "remote_address": a.local_address(),
                "hostname": "a.host",
                "broadcast_address": "a",
                "tcp_port": 4150,
                "http_port": 5151,
                "version": "1.3.0",
                "tombstones": [false, false],
                "topics": ["t1", "t2"],
            }),
            json!({
                "remote_address": b.local_address(),
                "hostname": "b.host",
                "broadcast_address": "b",
                "tcp_port": 4150,
                "http_port": 6151,
                "version": "1.3.0",
                "tombstones": [false],
                "topics": ["t1"],
            }),
        ]
    );

    // /debug: every registration with producers, by "category:key:subkey".
    let debug = json_get(&format!("{base}/debug")).await;
    let keys: Vec<&String> = debug.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "channel:t1:c1",
            "channel:t1:c2",
            "client::",
            "topic:t1:",
            "topic:t2:"
        ]
    );
    let entry = &debug["topic:t2:"][0];
    assert_eq!(entry["id"], a.local_address());
    assert_eq!(entry["tombstoned"], false);
    assert_eq!(
        entry["tombstoned_at"],
        json!(-6_795_364_578_871_345_152_i64)
    );
    assert!(entry["last_update"].as_i64().unwrap() > 0);
    lookupd.shutdown().await;
}

#[tokio::test]
async fn disconnect_removes_the_peer_but_keeps_the_registrations() {
    let (lookupd, base) = start().await;
    let address = lookupd.tcp_address();
    let mut a = V1::identified(address, &peer_info("a", 4151)).await;
    let mut b = V1::identified(address, &peer_info("b", 4151)).await;
    assert_eq!(a.call(b"REGISTER t c\n").await, b"OK");
    assert_eq!(b.call(b"REGISTER t\n").await, b"OK");
    assert_eq!(lookup_names(&base, "t").await.len(), 2);
    drop(a);
    eventually("the closed peer to leave /lookup", || async {
        (lookup_names(&base, "t").await == ["b"]).then_some(())
    })
    .await;
    // The topic and channel stay listed, as Go keeps them.
    assert_eq!(lookup(&base, "t").await["channels"], json!(["c"]));
    assert_eq!(
        json_get(&format!("{base}/topics")).await,
        json!({"topics": ["t"]})
    );
    let nodes = json_get(&format!("{base}/nodes")).await;
    assert_eq!(nodes["producers"].as_array().unwrap().len(), 1);
    drop(b);
    eventually("no producers left", || async {
        lookup_names(&base, "t").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        json_get(&format!("{base}/nodes")).await,
        json!({"producers": []})
    );
    lookupd.shutdown().await;
}

#[tokio::test]
async fn unregister_drops_ephemeral_registrations_with_their_last_producer() {
    let (lookupd, base) = start().await;
    let address = lookupd.tcp_address();
    let mut a = V1::identified(address, &peer_info("a", 4151)).await;
    let mut b = V1::identified(address, &peer_info("b", 4151)).await;
    for line in [
        &b"REGISTER t c#ephemeral\n"[..],
        b"REGISTER t durable\n",
        b"REGISTER e#ephemeral\n",
    ] {
        assert_eq!(a.call(line).await, b"OK");
    }
    assert_eq!(b.call(b"REGISTER t c#ephemeral\n").await, b"OK");
    let channels =
        || async { json_get(&format!("{base}/channels?topic=t")).await["channels"].clone() };
    assert_eq!(channels().await, json!(["c#ephemeral", "durable"]));

    assert_eq!(a.call(b"UNREGISTER t c#ephemeral\n").await, b"OK");
    assert_eq!(
        channels().await,
        json!(["c#ephemeral", "durable"]),
        "b still has it"
    );
    assert_eq!(b.call(b"UNREGISTER t c#ephemeral\n").await, b"OK");
    assert_eq!(channels().await, json!(["durable"]));
    // A durable channel stays without producers.
    assert_eq!(a.call(b"UNREGISTER t durable\n").await, b"OK");
    assert_eq!(channels().await, json!(["durable"]));
    // So does a durable topic; an ephemeral one goes.
    assert_eq!(a.call(b"UNREGISTER e#ephemeral\n").await, b"OK");
    assert_eq!(
        json_get(&format!("{base}/topics")).await,
        json!({"topics": ["t"]})
    );
    // Unregistering what was never registered is fine.
    assert_eq!(a.call(b"UNREGISTER nothing here\n").await, b"OK");

    // A topic UNREGISTER takes the peer off its channels too.
    assert_eq!(a.call(b"REGISTER u c\n").await, b"OK");
    assert_eq!(a.call(b"UNREGISTER u\n").await, b"OK");
    assert!(lookup_names(&base, "u").await.is_empty());
    let debug = json_get(&format!("{base}/debug")).await;
    assert!(debug.get("channel:u:c").is_none(), "{debug}");
    assert_eq!(lookup(&base, "u").await["channels"], json!(["c"]));
    lookupd.shutdown().await;
}

#[tokio::test]
async fn tombstone_hides_a_producer_for_its_lifetime() {
    let lifetime = Duration::from_secs(2);
    let (lookupd, base) = start_with(NsqlookupdOptions {
        tombstone_lifetime: lifetime,
        ..options()
    })
    .await;
    let address = lookupd.tcp_address();
    let mut a = V1::identified(address, &peer_info("a", 5151)).await;
    let mut b = V1::identified(address, &peer_info("b", 6151)).await;
    assert_eq!(a.call(b"REGISTER t\n").await, b"OK");
    assert_eq!(a.call(b"REGISTER other\n").await, b"OK");
    assert_eq!(b.call(b"REGISTER t\n").await, b"OK");

    let tombstoned = Instant::now();
    let reply = post(&format!("{base}/topic/tombstone?topic=t&node=a:5151")).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    assert_eq!(lookup_names(&base, "t").await, ["b"]);
    assert_eq!(lookup_names(&base, "other").await, ["a"], "only that topic");
    let nodes = json_get(&format!("{base}/nodes")).await;
    let node_a = nodes["producers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["broadcast_address"] == "a")
        .cloned()
        .unwrap();
    assert_eq!(node_a["topics"], json!(["other", "t"]));
    assert_eq!(node_a["tombstones"], json!([false, true]));
    assert_eq!(
        json_get(&format!("{base}/debug")).await["topic:t:"][0]["tombstoned"],
        true
    );

    // Unknown nodes and topics are no error.
    for query in ["topic=t&node=nobody:1", "topic=nothing&node=a:5151"] {
        let reply = post(&format!("{base}/topic/tombstone?{query}")).await;
        assert_eq!(reply.status, 200);
    }
    let reply = post(&format!("{base}/topic/tombstone?topic=t")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (400, r#"{"message":"MISSING_ARG_NODE"}"#)
    );

    eventually("the tombstone to expire", || async {
        (lookup_names(&base, "t").await.len() == 2).then_some(())
    })
    .await;
    assert!(tombstoned.elapsed() >= lifetime, "expired early");
    lookupd.shutdown().await;
}

#[tokio::test]
async fn producers_that_stop_pinging_are_hidden_until_they_ping() {
    let timeout = Duration::from_secs(2);
    let (lookupd, base) = start_with(NsqlookupdOptions {
        inactive_producer_timeout: timeout,
        ..options()
    })
    .await;
    let identified = Instant::now();
    let mut a = V1::identified(lookupd.tcp_address(), &peer_info("a", 4151)).await;
    assert_eq!(a.call(b"REGISTER t\n").await, b"OK");
    assert_eq!(lookup_names(&base, "t").await, ["a"]);
    eventually("the silent producer to be hidden", || async {
        lookup_names(&base, "t").await.is_empty().then_some(())
    })
    .await;
    assert!(identified.elapsed() > timeout, "hidden early");
    assert_eq!(
        json_get(&format!("{base}/nodes")).await,
        json!({"producers": []})
    );
    // Still registered, just inactive: a PING brings it back.
    assert_eq!(a.call(b"PING\n").await, b"OK");
    assert_eq!(lookup_names(&base, "t").await, ["a"]);
    assert_eq!(
        json_get(&format!("{base}/nodes")).await["producers"][0]["topics"],
        json!(["t"])
    );
    lookupd.shutdown().await;
}

#[tokio::test]
async fn http_create_and_delete() {
    let (lookupd, base) = start().await;
    let ok = |reply: common::Reply| {
        assert_eq!((reply.status, reply.body.as_str()), (200, ""), "{reply:?}");
        assert_eq!(reply.nsq_header.as_deref(), Some("nsq; version=1.0"));
    };
    let fails = |reply: common::Reply, status: u16, message: &str| {
        assert_eq!(reply.status, status, "{reply:?}");
        assert_eq!(reply.body, format!(r#"{{"message":"{message}"}}"#));
    };
    ok(post(&format!("{base}/topic/create?topic=t1")).await);
    ok(post(&format!("{base}/topic/create?topic=t1")).await);
    ok(post(&format!("{base}/channel/create?topic=t2&channel=c")).await);
    ok(post(&format!(
        "{base}/channel/create?topic=t2&channel=d%23ephemeral"
    ))
    .await);
    assert_eq!(
        json_get(&format!("{base}/topics")).await,
        json!({"topics": ["t1", "t2"]})
    );
    assert_eq!(
        lookup(&base, "t2").await,
        json!({"channels": ["c", "d#ephemeral"], "producers": []})
    );

    for (path, status, message) in [
        ("/topic/create", 400, "MISSING_ARG_TOPIC"),
        ("/topic/create?topic=a!", 400, "INVALID_ARG_TOPIC"),
        ("/channel/create?channel=c", 400, "MISSING_ARG_TOPIC"),
        ("/channel/create?topic=t", 400, "MISSING_ARG_CHANNEL"),
        (
            "/channel/create?topic=t&channel=a*",
            400,
            "INVALID_ARG_CHANNEL",
        ),
        (
            "/channel/delete?topic=t2&channel=nope",
            404,
            "CHANNEL_NOT_FOUND",
        ),
        ("/topic/delete", 400, "MISSING_ARG_TOPIC"),
        ("/topic/create?topic=%zz", 400, "INVALID_REQUEST"),
    ] {
        fails(post(&format!("{base}{path}")).await, status, message);
    }

    ok(post(&format!("{base}/channel/delete?topic=t2&channel=c")).await);
    assert_eq!(
        lookup(&base, "t2").await["channels"],
        json!(["d#ephemeral"])
    );
    ok(post(&format!("{base}/topic/delete?topic=t2")).await);
    ok(post(&format!("{base}/topic/delete?topic=never")).await);
    assert_eq!(
        json_get(&format!("{base}/topics")).await,
        json!({"topics": ["t1"]})
    );
    assert_eq!(
        json_get(&format!("{base}/channels?topic=t2")).await,
        json!({"channels": []})
    );
    fails(
        get(&format!("{base}/lookup?topic=t2")).await,
        404,
        "TOPIC_NOT_FOUND",
    );
    lookupd.shutdown().await;
}

#[tokio::test]
async fn http_basics_match_go() {
    let (lookupd, base) = start().await;
    let ping = get(&format!("{base}/ping")).await;
    assert_eq!((ping.status, ping.body.as_str()), (200, "OK"));
    let info = get(&format!("{base}/info")).await;
    assert_eq!(
        (info.status, info.body.as_str()),
        (200, r#"{"version":"1.3.0"}"#)
    );
    assert_eq!(info.nsq_header.as_deref(), Some("nsq; version=1.0"));
    assert_eq!(
        json_get(&format!("{base}/topics")).await,
        json!({"topics": []})
    );
    assert_eq!(
        json_get(&format!("{base}/nodes")).await,
        json!({"producers": []})
    );
    assert_eq!(json_get(&format!("{base}/debug")).await, json!({}));

    let reply = get(&format!("{base}/lookup")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (400, r#"{"message":"MISSING_ARG_TOPIC"}"#)
    );
    let reply = get(&format!("{base}/channels")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (400, r#"{"message":"MISSING_ARG_TOPIC"}"#)
    );
    let reply = get(&format!("{base}/nope")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (404, r#"{"message":"NOT_FOUND"}"#)
    );
    let reply = get(&format!("{base}/topic/create?topic=t")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (405, r#"{"message":"METHOD_NOT_ALLOWED"}"#)
    );
    let reply = post(&format!("{base}/lookup?topic=t")).await;
    assert_eq!(reply.status, 405);
    lookupd.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections() {
    let (lookupd, _) = start().await;
    let mut a = V1::identified(lookupd.tcp_address(), &peer_info("a", 4151)).await;
    let http = lookupd.http_address();
    tokio::time::timeout(DEADLINE, lookupd.shutdown())
        .await
        .expect("shutdown in time");
    a.assert_closed().await;
    assert!(
        TcpStream::connect(http).await.is_err(),
        "HTTP still listening"
    );
}

#[tokio::test]
async fn the_binary_serves_with_go_flags_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nsqlookupd.cfg");
    std::fs::write(&config, "broadcast_address = \"from-file\"\n").unwrap();
    let (tcp, http) = (free_port(), free_port());
    let mut child = std::process::Command::new(common::rnsq_bin())
        .arg("nsqlookupd")
        .arg(format!("-config={}", config.display()))
        .arg(format!("-tcp-address=127.0.0.1:{tcp}"))
        .arg(format!("-http-address=127.0.0.1:{http}"))
        .arg("-tombstone-lifetime=10s")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn rnsq nsqlookupd");
    let base = format!("http://127.0.0.1:{http}");
    eventually("the binary to serve HTTP", || async {
        let reply = reqwest::get(format!("{base}/ping")).await.ok()?;
        let text = reply.text().await.ok()?;
        (text == "OK").then_some(())
    })
    .await;
    assert_eq!(
        json_get(&format!("{base}/topics")).await,
        json!({"topics": []})
    );
    let mut conn = V1::connect(SocketAddr::from(([127, 0, 0, 1], tcp))).await;
    let reply = conn
        .call(Command::identify(&peer_info("a", 4151)).as_bytes())
        .await;
    let reply: Value = serde_json::from_slice(&reply).expect("IDENTIFY reply JSON");
    assert_eq!(reply["broadcast_address"], "from-file");
    assert_eq!(reply["tcp_port"], tcp);
    assert_eq!(conn.call(b"REGISTER t\n").await, b"OK");
    assert_eq!(lookup_names(&base, "t").await, ["a"]);
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill -TERM");
    let status = common::eventually_blocking("the binary to exit", || child.try_wait().ok()?);
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_binary_refuses_an_unknown_config_key_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nsqlookupd.cfg");
    std::fs::write(
        &config,
        "tcp_address = \"127.0.0.1:0\"\ndata_path = \"x\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(common::rnsq_bin())
        .args(["nsqlookupd", "--config"])
        .arg(&config)
        .output()
        .expect("run rnsq nsqlookupd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key `data_path`"), "{stderr}");
}

#[test]
fn help_lists_nsqlookupds_flags() {
    let output = std::process::Command::new(common::rnsq_bin())
        .args(["nsqlookupd", "--help"])
        .output()
        .expect("run rnsq nsqlookupd --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--tcp-address",
        "--http-address",
        "--broadcast-address",
        "--inactive-producer-timeout",
        "--tombstone-lifetime",
        "--log-level",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
