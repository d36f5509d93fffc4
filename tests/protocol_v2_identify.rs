//! IDENTIFY over a real V2 socket, byte for byte against Go nsqd 1.3.0
//! (`nsqd/protocol_v2.go` IDENTIFY, `nsqd/client_v2.go`, `nsqd/stats.go`): the plain `OK` and
//! the feature-negotiation JSON (Go's keys, order and defaults, no TLS/snappy/deflate yet),
//! every bound and its fatal error text, the client's msg_timeout applied to deliveries,
//! heartbeats (sent, answered, missed, disabled), and how what a client says of itself shows
//! in /stats.
//!
//! Each test starts the broker in this process on port 0 and talks raw TCP through
//! `common::v2`. Sleeps appear only where the assertion is about time itself.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::v2::{
    frame_bytes, identify_cmd, mpub_cmd, subscribe, with_size, Client, Next, RESPONSE,
};
use common::v2_cases::{case, run_cases, Before};
use common::{find_channel, stop};
use serde_json::Value;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// IDENTIFY
// ---------------------------------------------------------------------------------------------

/// Plain IDENTIFY → `OK`; with feature_negotiation → one JSON response frame with Go's 13 keys
/// in Go's order, the defaults, and no TLS when asked for without a certificate (so the stream
/// stays plain and SUB works). Compression is tests/protocol_v2_upgrade.rs's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_ok_and_feature_negotiation() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut plain = Client::connect(&nsqd).await;
    plain
        .send(&identify_cmd(
            r#"{"client_id":"c1","hostname":"h","user_agent":"test/1.0","unknown_field":1}"#,
        ))
        .await;
    plain.expect_ok().await;
    plain.line("SUB ident c").await;
    plain.expect_ok().await;

    let mut negotiated = Client::connect(&nsqd).await;
    negotiated
        .send(&identify_cmd(
            r#"{"feature_negotiation":true,"tls_v1":true,"deflate_level":3}"#,
        ))
        .await;
    let frame = negotiated.frame().await;
    assert_eq!(frame.kind, RESPONSE, "got {frame:?}");
    let reply: Value = serde_json::from_slice(&frame.data).expect("negotiation reply is JSON");
    let keys: Vec<&str> = reply
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "max_rdy_count",
            "version",
            "max_msg_timeout",
            "msg_timeout",
            "tls_v1",
            "deflate",
            "deflate_level",
            "max_deflate_level",
            "snappy",
            "sample_rate",
            "auth_required",
            "output_buffer_size",
            "output_buffer_timeout",
        ],
        "keys (in Go's order) of {reply}"
    );
    assert!(reply["version"].is_string(), "{reply}");
    let expected = [
        ("max_rdy_count", Value::from(2500)),
        ("max_msg_timeout", Value::from(900_000)),
        ("msg_timeout", Value::from(60_000)),
        ("tls_v1", Value::from(false)),
        ("deflate", Value::from(false)),
        // Go 1.3.0 reports 6 unless deflate is negotiated.
        ("deflate_level", Value::from(6)),
        ("max_deflate_level", Value::from(6)),
        ("snappy", Value::from(false)),
        ("sample_rate", Value::from(0)),
        ("auth_required", Value::from(false)),
        ("output_buffer_size", Value::from(16_384)),
        ("output_buffer_timeout", Value::from(250)),
    ];
    // Value mismatches are collected so one run lists them all.
    let mut mismatches = Vec::new();
    let mut check = |label: &str, reply: &Value, key: &str, want: Value| {
        if reply[key] != want {
            mismatches.push(format!("{label}: {key} = {}, Go sends {want}", reply[key]));
        }
    };
    for (key, value) in expected {
        check("defaults", &reply, key, value);
    }
    // Nothing else follows (no TLS/snappy/deflate OK frames), and the stream is still plain.
    negotiated.line("SUB ident c").await;
    negotiated.expect_ok().await;

    // The client's own settings come back in the reply.
    let mut custom = Client::connect(&nsqd).await;
    custom
        .send(&identify_cmd(
            r#"{"feature_negotiation":true,"msg_timeout":5000,"sample_rate":10,"output_buffer_size":1024,"output_buffer_timeout":100,"heartbeat_interval":2000}"#,
        ))
        .await;
    let reply: Value = serde_json::from_slice(&custom.frame().await.data).unwrap();
    check("client settings", &reply, "msg_timeout", Value::from(5000));
    check("client settings", &reply, "sample_rate", Value::from(10));
    check(
        "client settings",
        &reply,
        "output_buffer_size",
        Value::from(1024),
    );
    check(
        "client settings",
        &reply,
        "output_buffer_timeout",
        Value::from(100),
    );
    custom.expect_open().await;

    // client_v2.go SetOutputBuffer: size -1 means a 1-byte buffer and no flush timeout.
    let mut unbuffered = Client::connect(&nsqd).await;
    unbuffered
        .send(&identify_cmd(
            r#"{"feature_negotiation":true,"output_buffer_size":-1}"#,
        ))
        .await;
    let reply: Value = serde_json::from_slice(&unbuffered.frame().await.data).unwrap();
    check(
        "output_buffer_size -1",
        &reply,
        "output_buffer_size",
        Value::from(1),
    );
    check(
        "output_buffer_size -1",
        &reply,
        "output_buffer_timeout",
        Value::from(0),
    );
    unbuffered.expect_open().await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    stop(nsqd).await;
}

/// client_v2.go bounds: each field out of range is a fatal
/// `E_BAD_BODY IDENTIFY <field> (<v>) is invalid`; bad JSON, size 0, negative and too-big
/// sizes have their own texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_errors() {
    use Before::Nothing;
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let bad = |json: &str, text: &str| case(Nothing, identify_cmd(json), text, true);
    let cases = vec![
        bad(
            r#"{"heartbeat_interval":999}"#,
            "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid",
        ),
        bad(
            r#"{"heartbeat_interval":60001}"#,
            "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid",
        ),
        bad(
            r#"{"heartbeat_interval":-2}"#,
            "E_BAD_BODY IDENTIFY heartbeat interval (-2) is invalid",
        ),
        bad(
            r#"{"output_buffer_size":63}"#,
            "E_BAD_BODY IDENTIFY output buffer size (63) is invalid",
        ),
        bad(
            r#"{"output_buffer_size":65537}"#,
            "E_BAD_BODY IDENTIFY output buffer size (65537) is invalid",
        ),
        bad(
            r#"{"output_buffer_timeout":24}"#,
            "E_BAD_BODY IDENTIFY output buffer timeout (24) is invalid",
        ),
        bad(
            r#"{"output_buffer_timeout":30001}"#,
            "E_BAD_BODY IDENTIFY output buffer timeout (30001) is invalid",
        ),
        bad(
            r#"{"sample_rate":100}"#,
            "E_BAD_BODY IDENTIFY sample rate (100) is invalid",
        ),
        bad(
            r#"{"sample_rate":-1}"#,
            "E_BAD_BODY IDENTIFY sample rate (-1) is invalid",
        ),
        bad(
            r#"{"msg_timeout":999}"#,
            "E_BAD_BODY IDENTIFY msg timeout (999) is invalid",
        ),
        bad(
            r#"{"msg_timeout":900001}"#,
            "E_BAD_BODY IDENTIFY msg timeout (900001) is invalid",
        ),
        bad("{", "E_BAD_BODY IDENTIFY failed to decode JSON body"),
        bad("not json", "E_BAD_BODY IDENTIFY failed to decode JSON body"),
        bad(
            r#"{"heartbeat_interval":"1000"}"#,
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        bad(
            r#"{"heartbeat_interval":1000.5}"#,
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        // Go decodes into a struct with these fields too, so a wrong type fails even though
        // the feature is not offered.
        bad(
            r#"{"tls_v1":"yes"}"#,
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        bad(
            r#"{"deflate_level":"max"}"#,
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        case(
            Nothing,
            with_size("IDENTIFY", 0),
            "E_BAD_BODY IDENTIFY invalid body size 0",
            true,
        ),
        case(
            Nothing,
            with_size("IDENTIFY", 0x8000_0000),
            "E_BAD_BODY IDENTIFY invalid body size -2147483648",
            true,
        ),
        case(
            Nothing,
            with_size("IDENTIFY", 5_242_881),
            "E_BAD_BODY IDENTIFY body too big 5242881 > 5242880",
            true,
        ),
    ];
    run_cases(&nsqd, cases).await;

    // The bounds themselves are accepted.
    for json in [
        r#"{"heartbeat_interval":1000}"#,
        r#"{"heartbeat_interval":60000}"#,
        r#"{"heartbeat_interval":-1}"#,
        r#"{"output_buffer_size":64,"output_buffer_timeout":25}"#,
        r#"{"output_buffer_size":65536,"output_buffer_timeout":30000}"#,
        r#"{"output_buffer_size":-1,"output_buffer_timeout":-1}"#,
        r#"{"sample_rate":0}"#,
        r#"{"sample_rate":99}"#,
        r#"{"msg_timeout":1000}"#,
        r#"{"msg_timeout":900000}"#,
        // Go's json.Unmarshal of null (the body, or a field) is a no-op, not an error.
        "null",
        r#"{"sample_rate":null,"heartbeat_interval":null,"client_id":null}"#,
    ] {
        let mut client = Client::connect(&nsqd).await;
        client.send(&identify_cmd(json)).await;
        let frame = client.frame().await;
        assert_eq!(frame.raw, frame_bytes(RESPONSE, b"OK"), "{json}: {frame:?}");
    }
    stop(nsqd).await;
}

/// IDENTIFY msg_timeout sets this client's in-flight timeout (1 s instead of the default 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_msg_timeout_applies_to_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut client = Client::connect(&nsqd).await;
    client.send(&identify_cmd(r#"{"msg_timeout":1000}"#)).await;
    client.expect_ok().await;
    client.line("SUB short c").await;
    client.expect_ok().await;
    client.line("RDY 1").await;
    Client::connect(&nsqd).await.publish("short", b"m").await;
    let first = client.expect_message().await;
    let delivered = Instant::now();
    let again = client.expect_message().await;
    assert!(
        delivered.elapsed() >= Duration::from_millis(950),
        "redelivered after {:?}, before the 1 s msg_timeout",
        delivered.elapsed()
    );
    assert_eq!((again.id.as_str(), again.attempts), (first.id.as_str(), 2));
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Heartbeats
// ---------------------------------------------------------------------------------------------

/// IDENTIFY heartbeat_interval 1000: a `_heartbeat_` response frame within 1.5 s; a client
/// that never answers is dropped after 2 intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_gets_heartbeats_then_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut client = Client::connect(&nsqd).await;
    let sent = Instant::now();
    client
        .send(&identify_cmd(r#"{"heartbeat_interval":1000}"#))
        .await;
    client.expect_ok().await;
    let beat = client.frame_within(Duration::from_millis(1500)).await;
    assert_eq!(
        beat.raw,
        [&[0, 0, 0, 15, 0, 0, 0, 0][..], b"_heartbeat_"].concat(),
        "got {beat:?}"
    );

    let deadline = sent + Duration::from_millis(3500);
    loop {
        match client.next_until(deadline).await {
            Next::Frame(frame) => assert_eq!(frame.raw, beat.raw, "got {frame:?}"),
            Next::Closed(_) => break,
            Next::Quiet => panic!("silent client still connected 3.5 s after IDENTIFY"),
        }
    }
    let closed_after = sent.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1800),
        "dropped after {closed_after:?}, before 2 heartbeat intervals"
    );
    stop(nsqd).await;
}

/// A client that answers heartbeats with NOP stays connected well past 2 intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_answering_heartbeats_stays_connected() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut client = Client::connect(&nsqd).await;
    client
        .send(&identify_cmd(r#"{"heartbeat_interval":1000}"#))
        .await;
    client.expect_ok().await;
    client.line("SUB beats c").await;
    client.expect_ok().await;
    for _ in 0..3 {
        client.expect_response(b"_heartbeat_").await;
        client.line("NOP").await;
    }
    client.expect_open().await;
    stop(nsqd).await;
}

/// heartbeat_interval -1 disables heartbeats, and SUB is then refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_refused_with_heartbeats_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut client = Client::connect(&nsqd).await;
    client
        .send(&identify_cmd(r#"{"heartbeat_interval":-1}"#))
        .await;
    client.expect_ok().await;
    client.line("SUB t c").await;
    client
        .expect_error("E_INVALID cannot SUB with heartbeats disabled")
        .await;
    client.expect_closed().await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Clients in /stats
// ---------------------------------------------------------------------------------------------

/// A consumer's IDENTIFY data and counters show in its channel's `clients`; state is Go's
/// number (3 subscribed, 4 closing); a producer's pub_counts show under `producers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_tcp_clients() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = Client::connect(&nsqd).await;
    let local = consumer.local_addr().to_string();
    consumer
        .send(&identify_cmd(
            r#"{"client_id":"cid","hostname":"host.example","user_agent":"proto-test/1.0"}"#,
        ))
        .await;
    consumer.expect_ok().await;
    consumer.line("SUB statsy c").await;
    consumer.expect_ok().await;
    consumer.line("RDY 3").await;

    let mut producer = Client::connect(&nsqd).await;
    let producer_local = producer.local_addr().to_string();
    producer.publish("statsy", b"a").await;
    producer.send(&mpub_cmd("statsy", &[b"b", b"c"])).await;
    producer.expect_ok().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(consumer.expect_message().await.id);
    }
    consumer.line(&format!("FIN {}", ids[0])).await;
    consumer.line(&format!("REQ {} 60000", ids[1])).await;
    consumer.expect_open().await;

    let stats = common::stats(&h).await;
    let channel = find_channel(&stats, "statsy", "c").expect("channel statsy/c");
    assert_eq!(channel["client_count"], 1, "{channel}");
    let clients = channel["clients"].as_array().expect("clients list");
    assert_eq!(clients.len(), 1, "{channel}");
    let client = &clients[0];
    let expected = [
        ("client_id", Value::from("cid")),
        ("hostname", Value::from("host.example")),
        ("user_agent", Value::from("proto-test/1.0")),
        ("version", Value::from("V2")),
        ("remote_address", Value::from(local.as_str())),
        ("state", Value::from(3)),
        ("ready_count", Value::from(3)),
        ("in_flight_count", Value::from(1)),
        ("message_count", Value::from(3)),
        ("finish_count", Value::from(1)),
        ("requeue_count", Value::from(1)),
        ("sample_rate", Value::from(0)),
        ("deflate", Value::from(false)),
        ("snappy", Value::from(false)),
        ("tls", Value::from(false)),
    ];
    let mismatches: Vec<String> = expected
        .iter()
        .filter(|(key, want)| client[*key] != *want)
        .map(|(key, want)| format!("{key} = {}, want {want}", client[*key]))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{}\nin {client}",
        mismatches.join("\n")
    );
    assert!(client["connect_ts"].is_u64(), "{client}");

    let producers = stats["producers"].as_array().expect("producers list");
    let entry = producers
        .iter()
        .find(|p| p["remote_address"] == producer_local.as_str())
        .unwrap_or_else(|| panic!("producer {producer_local} missing from {stats}"));
    assert_eq!(
        entry["pub_counts"],
        serde_json::json!([{"topic": "statsy", "count": 3}]),
        "{entry}"
    );

    consumer.line("CLS").await;
    consumer.expect_response(b"CLOSE_WAIT").await;
    let hh = h.as_str();
    common::eventually(
        "client state 4 (closing), ready_count 0",
        move || async move {
            let stats = common::stats(hh).await;
            let client = &find_channel(&stats, "statsy", "c")?["clients"][0];
            (client["state"] == 4 && client["ready_count"] == 0).then_some(())
        },
    )
    .await;
    stop(nsqd).await;
}

/// stats.go ClientV2Stats: a plain consumer's entry has exactly Go's keys (`authed`,
/// `auth_identity`, `auth_identity_url` and `pub_counts` are omitempty, so absent here), and
/// before any IDENTIFY its client_id and hostname are its remote host (client_v2.go
/// newClientV2: `net.SplitHostPort(conn.RemoteAddr())`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_client_entry_matches_go() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let _consumer = subscribe(&nsqd, "keys", "c", 1).await;
    let stats = common::stats(&h).await;
    let client = &find_channel(&stats, "keys", "c").expect("channel")["clients"][0];
    let keys: BTreeSet<&str> = client
        .as_object()
        .unwrap_or_else(|| panic!("no client entry in {stats}"))
        .keys()
        .map(String::as_str)
        .collect();
    let go: BTreeSet<&str> = [
        "client_id",
        "hostname",
        "version",
        "remote_address",
        "state",
        "ready_count",
        "in_flight_count",
        "message_count",
        "finish_count",
        "requeue_count",
        "connect_ts",
        "sample_rate",
        "deflate",
        "snappy",
        "user_agent",
        "tls",
        "tls_cipher_suite",
        "tls_version",
        "tls_negotiated_protocol",
        "tls_negotiated_protocol_is_mutual",
    ]
    .into_iter()
    .collect();
    let mut problems = Vec::new();
    let extra: Vec<_> = keys.difference(&go).collect();
    if !extra.is_empty() {
        problems.push(format!("keys Go does not send: {extra:?}"));
    }
    let missing: Vec<_> = go.difference(&keys).collect();
    if !missing.is_empty() {
        problems.push(format!("keys missing: {missing:?}"));
    }
    for key in ["client_id", "hostname"] {
        if client[key] != "127.0.0.1" {
            problems.push(format!(
                "{key} = {} before IDENTIFY, Go sends the remote host \"127.0.0.1\"",
                client[key]
            ));
        }
    }
    assert!(problems.is_empty(), "{}\nin {client}", problems.join("\n"));
    stop(nsqd).await;
}
