//! nsqd's HTTP API over a real socket: Go's paths, methods, status codes, messages, headers
//! and JSON shapes, and that every change is visible in /stats, the store and nsqd.dat.

mod common;

use common::{base, eventually, get, post, put, stats};
use serde_json::{json, Value};

fn topic_names(stats: &Value) -> Vec<String> {
    stats["topics"]
        .as_array()
        .expect("topics list")
        .iter()
        .map(|t| t["topic_name"].as_str().expect("topic_name").to_string())
        .collect()
}

fn topic<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["topic_name"] == name))
        .unwrap_or_else(|| panic!("topic {name} missing from {stats}"))
}

fn channel<'a>(stats: &'a Value, topic_name: &str, name: &str) -> &'a Value {
    topic(stats, topic_name)["channels"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["channel_name"] == name))
        .unwrap_or_else(|| panic!("channel {topic_name}/{name} missing from {stats}"))
}

fn assert_error(reply: &common::Reply, status: u16, message: &str) {
    assert_eq!(reply.status, status, "body {}", reply.body);
    let body: Value = serde_json::from_str(&reply.body).expect("error body is JSON");
    assert_eq!(body["message"], message);
    assert_eq!(reply.nsq_header.as_deref(), Some("nsq; version=1.0"));
}

fn assert_ok_empty(reply: &common::Reply) {
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    assert_eq!(reply.nsq_header.as_deref(), Some("nsq; version=1.0"));
}

#[tokio::test]
async fn ping_info_and_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());

    let ping = get(&format!("{h}/ping")).await;
    assert_eq!((ping.status, ping.body.as_str()), (200, "OK"));

    let info: Value = serde_json::from_str(&get(&format!("{h}/info")).await.body).unwrap();
    assert_eq!(info["version"], "1.3.0");
    assert_eq!(info["http_port"], nsqd.http_address().port());
    assert_eq!(info["tcp_port"], nsqd.tcp_address().port());
    assert_eq!(info["max_heartbeat_interval"], 60_000_000_000u64);
    for key in [
        "broadcast_address",
        "hostname",
        "start_time",
        "max_output_buffer_size",
        "max_output_buffer_timeout",
        "max_deflate_level",
    ] {
        assert!(info.get(key).is_some(), "/info lacks {key}: {info}");
    }

    assert_error(&get(&format!("{h}/no/such/path")).await, 404, "NOT_FOUND");
    assert_error(
        &get(&format!("{h}/topic/create?topic=t")).await,
        405,
        "METHOD_NOT_ALLOWED",
    );
    assert_error(
        &post(&format!("{h}/stats")).await,
        405,
        "METHOD_NOT_ALLOWED",
    );
    nsqd.shutdown().await;
}

#[tokio::test]
async fn topic_endpoints_answer_like_nsqd() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());

    assert_error(
        &post(&format!("{h}/topic/create")).await,
        400,
        "MISSING_ARG_TOPIC",
    );
    assert_error(
        &post(&format!("{h}/topic/create?topic=a%20b")).await,
        400,
        "INVALID_TOPIC",
    );
    assert_error(
        &post(&format!("{h}/topic/create?topic=")).await,
        400,
        "INVALID_TOPIC",
    );
    assert_error(
        &post(&format!("{h}/topic/create?topic={}", "x".repeat(65))).await,
        400,
        "INVALID_TOPIC",
    );
    assert_ok_empty(&post(&format!("{h}/topic/create?topic=orders")).await);
    assert_ok_empty(&post(&format!("{h}/topic/create?topic=orders")).await);
    assert_eq!(topic_names(&stats(&h).await), ["orders"]);

    assert_error(
        &post(&format!("{h}/topic/pause")).await,
        400,
        "MISSING_ARG_TOPIC",
    );
    assert_error(
        &post(&format!("{h}/topic/pause?topic=nope")).await,
        404,
        "TOPIC_NOT_FOUND",
    );
    assert_ok_empty(&post(&format!("{h}/topic/pause?topic=orders")).await);
    assert_eq!(topic(&stats(&h).await, "orders")["paused"], true);
    assert_ok_empty(&post(&format!("{h}/topic/unpause?topic=orders")).await);
    assert_eq!(topic(&stats(&h).await, "orders")["paused"], false);
    assert_error(
        &post(&format!("{h}/topic/unpause?topic=nope")).await,
        404,
        "TOPIC_NOT_FOUND",
    );

    assert_error(
        &post(&format!("{h}/topic/delete")).await,
        400,
        "MISSING_ARG_TOPIC",
    );
    assert_error(
        &post(&format!("{h}/topic/delete?topic=nope")).await,
        404,
        "TOPIC_NOT_FOUND",
    );
    // Go does not validate the name here: an invalid name is simply not found.
    assert_error(
        &post(&format!("{h}/topic/delete?topic=a%20b")).await,
        404,
        "TOPIC_NOT_FOUND",
    );
    assert_ok_empty(&post(&format!("{h}/channel/create?topic=orders&channel=c")).await);
    assert_ok_empty(&post(&format!("{h}/topic/delete?topic=orders")).await);
    assert!(topic_names(&stats(&h).await).is_empty());
    assert_error(
        &post(&format!("{h}/topic/delete?topic=orders")).await,
        404,
        "TOPIC_NOT_FOUND",
    );
    // Re-created, it has no channels left over.
    assert_ok_empty(&post(&format!("{h}/topic/create?topic=orders")).await);
    assert_eq!(topic(&stats(&h).await, "orders")["channels"], json!([]));
    nsqd.shutdown().await;
}

#[tokio::test]
async fn channel_endpoints_answer_like_nsqd() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());

    let create = |q: &str| format!("{h}/channel/create?{q}");
    assert_error(&post(&create("")).await, 400, "MISSING_ARG_TOPIC");
    assert_error(
        &post(&create("topic=a%20b&channel=c")).await,
        400,
        "INVALID_ARG_TOPIC",
    );
    assert_error(&post(&create("topic=t")).await, 400, "MISSING_ARG_CHANNEL");
    assert_error(
        &post(&create("topic=t&channel=c%2Fd")).await,
        400,
        "INVALID_ARG_CHANNEL",
    );
    assert_error(
        &post(&create("topic=t&channel=c")).await,
        404,
        "TOPIC_NOT_FOUND",
    );
    assert!(
        topic_names(&stats(&h).await).is_empty(),
        "a failed channel create made a topic"
    );

    assert_ok_empty(&post(&format!("{h}/topic/create?topic=t")).await);
    assert_ok_empty(&post(&create("topic=t&channel=c")).await);
    assert_ok_empty(&post(&create("topic=t&channel=c")).await);
    assert_ok_empty(&post(&create("topic=t&channel=d")).await);
    let s = stats(&h).await;
    assert_eq!(channel(&s, "t", "c")["paused"], false);
    assert_eq!(topic(&s, "t")["channels"].as_array().map(Vec::len), Some(2));

    assert_error(
        &post(&format!("{h}/channel/pause?topic=t&channel=zz")).await,
        404,
        "CHANNEL_NOT_FOUND",
    );
    assert_error(
        &post(&format!("{h}/channel/pause?topic=zz&channel=c")).await,
        404,
        "TOPIC_NOT_FOUND",
    );
    assert_ok_empty(&post(&format!("{h}/channel/pause?topic=t&channel=c")).await);
    assert_eq!(channel(&stats(&h).await, "t", "c")["paused"], true);
    assert_eq!(channel(&stats(&h).await, "t", "d")["paused"], false);
    assert_ok_empty(&post(&format!("{h}/channel/unpause?topic=t&channel=c")).await);
    assert_eq!(channel(&stats(&h).await, "t", "c")["paused"], false);

    assert_error(
        &post(&format!("{h}/channel/delete?topic=t")).await,
        400,
        "MISSING_ARG_CHANNEL",
    );
    assert_error(
        &post(&format!("{h}/channel/delete?topic=t&channel=zz")).await,
        404,
        "CHANNEL_NOT_FOUND",
    );
    assert_ok_empty(&post(&format!("{h}/channel/delete?topic=t&channel=c")).await);
    let s = stats(&h).await;
    let names: Vec<_> = topic(&s, "t")["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel_name"].clone())
        .collect();
    assert_eq!(names, [json!("d")]);
    nsqd.shutdown().await;
}

#[tokio::test]
async fn stats_json_text_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    for q in [
        "topic/create?topic=a",
        "topic/create?topic=b",
        "channel/create?topic=a&channel=x",
        "channel/create?topic=a&channel=y",
        "channel/pause?topic=a&channel=y",
        "topic/pause?topic=b",
    ] {
        assert_ok_empty(&post(&format!("{h}/{q}")).await);
    }

    let s = stats(&h).await;
    assert_eq!(s["version"], "1.3.0");
    assert_eq!(s["health"], "OK");
    assert!(s["start_time"].as_u64().unwrap() > 0);
    assert!(s["memory"].is_object());
    assert_eq!(s["producers"], json!([]));
    let a = topic(&s, "a");
    for key in ["depth", "backend_depth", "message_count", "message_bytes"] {
        assert_eq!(a[key], 0, "{key}");
    }
    assert_eq!(a["e2e_processing_latency"]["count"], 0);
    let y = channel(&s, "a", "y");
    for key in [
        "depth",
        "backend_depth",
        "in_flight_count",
        "deferred_count",
        "message_count",
        "requeue_count",
        "timeout_count",
        "client_count",
    ] {
        assert_eq!(y[key], 0, "{key}");
    }
    assert_eq!(y["clients"], json!([]));
    assert_eq!(y["paused"], true);
    assert_eq!(topic(&s, "b")["paused"], true);

    let filtered: Value = serde_json::from_str(
        &get(&format!(
            "{h}/stats?format=json&topic=a&channel=x&include_mem=false&include_clients=false"
        ))
        .await
        .body,
    )
    .unwrap();
    assert_eq!(topic_names(&filtered), ["a"]);
    assert_eq!(
        topic(&filtered, "a")["channels"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(channel(&filtered, "a", "x")["clients"], Value::Null);
    assert!(filtered.get("memory").is_none());
    let none: Value =
        serde_json::from_str(&get(&format!("{h}/stats?format=json&topic=zzz")).await.body).unwrap();
    assert!(topic_names(&none).is_empty());

    let text = get(&format!("{h}/stats")).await;
    assert_eq!(text.status, 200);
    assert!(text.body.starts_with("nsqd v1.3.0"), "{}", text.body);
    assert!(text.body.contains("\nHealth: OK\n"));
    assert!(
        text.body.contains(
            "\n   [a              ] depth: 0     be-depth: 0     msgs: 0        e2e%: \n"
        ),
        "{}",
        text.body
    );
    assert!(
        text.body.contains("\n*P [b              ] depth: 0"),
        "{}",
        text.body
    );
    assert!(text.body.contains("\n   *P [y                        ] depth: 0     be-depth: 0     inflt: 0    def: 0    re-q: 0     timeout: 0     msgs: 0        e2e%: \n"), "{}", text.body);
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = common::start(empty_dir.path()).await;
    assert!(get(&format!(
        "{}/stats?include_mem=0",
        base(empty.http_address())
    ))
    .await
    .body
    .contains("\nTopics: None\n"));
    empty.shutdown().await;
    nsqd.shutdown().await;
}

#[tokio::test]
async fn config_endpoint_gets_and_sets_runtime_options() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    let url = format!("{h}/config/nsqlookupd_tcp_addresses");

    assert_eq!(get(&url).await.body, "[]");
    let set = put(&url, r#"["127.0.0.1:4160","lookupd-2:4160"]"#).await;
    assert_eq!(
        (set.status, set.body.as_str()),
        (200, r#"["127.0.0.1:4160","lookupd-2:4160"]"#)
    );
    assert_eq!(
        get(&url).await.body,
        r#"["127.0.0.1:4160","lookupd-2:4160"]"#
    );
    assert_error(&put(&url, "not json").await, 400, "INVALID_VALUE");
    assert_error(&put(&url, r#"["no-port"]"#).await, 400, "INVALID_VALUE");
    assert_error(&put(&url, "").await, 413, "INVALID_VALUE");
    assert_eq!(
        get(&url).await.body,
        r#"["127.0.0.1:4160","lookupd-2:4160"]"#,
        "a refused PUT changed the value"
    );

    let level = format!("{h}/config/log_level");
    assert_eq!(get(&level).await.body, "2");
    assert_eq!(put(&level, "debug").await.body, "1");
    assert_eq!(get(&level).await.body, "1");
    assert_error(&put(&level, "loud").await, 400, "INVALID_VALUE");

    assert_eq!(
        get(&format!("{h}/config/msg_timeout")).await.body,
        "60000000000"
    );
    assert_eq!(
        get(&format!("{h}/config/mem_queue_size")).await.body,
        "10000"
    );
    assert_error(
        &get(&format!("{h}/config/no_such_option")).await,
        400,
        "INVALID_OPTION",
    );
    assert_error(
        &put(&format!("{h}/config/mem_queue_size"), "5").await,
        400,
        "INVALID_OPTION",
    );
    nsqd.shutdown().await;
}

#[tokio::test]
async fn ephemeral_names_are_served_but_never_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    assert_ok_empty(&post(&format!("{h}/topic/create?topic=e%23ephemeral")).await);
    assert_ok_empty(&post(&format!("{h}/topic/create?topic=t")).await);
    assert_ok_empty(&post(&format!("{h}/channel/create?topic=t&channel=c%23ephemeral")).await);
    assert_ok_empty(&post(&format!("{h}/channel/create?topic=t&channel=kept")).await);
    assert_ok_empty(&post(&format!("{h}/channel/pause?topic=t&channel=c%23ephemeral")).await);
    let s = stats(&h).await;
    assert_eq!(topic_names(&s), ["e#ephemeral", "t"]);
    assert_eq!(channel(&s, "t", "c#ephemeral")["paused"], true);

    let expected = r#"{"topics":[{"name":"t","paused":false,"channels":[{"name":"kept","paused":false}]}],"version":"1.3.0"}"#;
    assert_eq!(get(&format!("{h}/meta/export")).await.body, expected);
    let dat = dir.path().join("nsqd.dat");
    eventually("nsqd.dat to hold the persisted topics", || {
        let dat = dat.clone();
        async move { (std::fs::read_to_string(&dat).ok()? == expected).then_some(()) }
    })
    .await;
    assert_eq!(nsqd.broker().store().snapshot().unwrap().topics.len(), 1);
    nsqd.shutdown().await;
}

#[tokio::test]
async fn nsqd_dat_follows_every_change_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    let dat = dir.path().join("nsqd.dat");
    for i in 0..50 {
        assert_ok_empty(&post(&format!("{h}/topic/create?topic=t{i}")).await);
    }
    assert_ok_empty(&post(&format!("{h}/channel/create?topic=t7&channel=c")).await);
    assert_ok_empty(&post(&format!("{h}/channel/pause?topic=t7&channel=c")).await);
    assert_ok_empty(&post(&format!("{h}/topic/delete?topic=t3")).await);
    let changed_at = std::time::Instant::now();
    let export = get(&format!("{h}/meta/export")).await.body;
    eventually("nsqd.dat to match the store", || {
        let (dat, export) = (dat.clone(), export.clone());
        async move { (std::fs::read_to_string(&dat).ok()? == export).then_some(()) }
    })
    .await;
    assert!(
        changed_at.elapsed() < std::time::Duration::from_secs(1),
        "nsqd.dat took {:?}",
        changed_at.elapsed()
    );
    let parsed: Value = serde_json::from_str(&export).unwrap();
    assert_eq!(parsed["topics"].as_array().map(Vec::len), Some(49));
    assert_eq!(
        parsed["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "t7")
            .unwrap()["channels"],
        json!([{"name":"c","paused":true}])
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dat).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    nsqd.shutdown().await;
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_one_topic() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    let mut tasks = Vec::new();
    for i in 0..32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let topic = post(&format!("{h}/topic/create?topic=same")).await.status;
            let channel = post(&format!("{h}/channel/create?topic=same&channel=c{}", i % 4))
                .await
                .status;
            (topic, channel)
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (200, 200));
    }
    let s = stats(&h).await;
    assert_eq!(topic_names(&s), ["same"]);
    assert_eq!(
        topic(&s, "same")["channels"].as_array().map(Vec::len),
        Some(4)
    );
    let stored = nsqd.broker().store().snapshot().unwrap();
    assert_eq!(stored.topics.len(), 1);
    assert_eq!(stored.topics[0].channels.len(), 4);
    nsqd.shutdown().await;
}

async fn post_body(url: &str, body: Vec<u8>) -> common::Reply {
    let response = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .expect("HTTP request");
    let status = response.status().as_u16();
    let nsq_header = response
        .headers()
        .get("X-NSQ-Content-Type")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    common::Reply {
        status,
        body: response.text().await.expect("body"),
        nsq_header,
    }
}

#[tokio::test]
async fn pub_and_mpub_queue_messages_with_gos_limits_and_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path());
    opts.max_msg_size = 10;
    opts.max_body_size = 100;
    let nsqd = common::start_with(opts).await;
    let h = base(nsqd.http_address());

    let ok = post_body(&format!("{h}/pub?topic=t"), b"hello".to_vec()).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "OK"));
    assert_error(
        &post_body(&format!("{h}/pub?topic=t"), Vec::new()).await,
        400,
        "MSG_EMPTY",
    );
    assert_error(
        &post_body(&format!("{h}/pub?topic=t"), vec![b'x'; 11]).await,
        413,
        "MSG_TOO_BIG",
    );
    assert_error(
        &post_body(&format!("{h}/pub"), b"x".to_vec()).await,
        400,
        "MISSING_ARG_TOPIC",
    );
    assert_error(
        &post_body(&format!("{h}/pub?topic=a%20b"), b"x".to_vec()).await,
        400,
        "INVALID_TOPIC",
    );
    assert_error(
        &post_body(&format!("{h}/pub?topic=t&defer=soon"), b"x".to_vec()).await,
        400,
        "INVALID_DEFER",
    );
    assert_error(
        &post_body(&format!("{h}/pub?topic=t&defer=-1"), b"x".to_vec()).await,
        400,
        "INVALID_DEFER",
    );
    assert_error(
        &post_body(&format!("{h}/pub?topic=t&defer=3600001"), b"x".to_vec()).await,
        400,
        "INVALID_DEFER",
    );
    assert_eq!(
        post_body(&format!("{h}/pub?topic=t&defer=60000"), b"later".to_vec())
            .await
            .status,
        200
    );

    // Text MPUB: one message per line, empty lines dropped.
    let ok = post_body(&format!("{h}/mpub?topic=t"), b"a\n\nbb\nccc\n".to_vec()).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "OK"));
    assert_error(
        &post_body(&format!("{h}/mpub?topic=t"), b"a\n0123456789x\n".to_vec()).await,
        413,
        "MSG_TOO_BIG",
    );
    assert_error(
        &post_body(&format!("{h}/mpub?topic=t"), vec![b'a'; 101]).await,
        413,
        "BODY_TOO_BIG",
    );
    // Binary MPUB: [count]([size][bytes])*.
    let mut binary = 2i32.to_be_bytes().to_vec();
    for m in [&b"xy"[..], b"z"] {
        binary.extend_from_slice(&(m.len() as i32).to_be_bytes());
        binary.extend_from_slice(m);
    }
    assert_eq!(
        post_body(&format!("{h}/mpub?topic=t&binary=true"), binary)
            .await
            .status,
        200
    );
    assert_error(
        &post_body(
            &format!("{h}/mpub?topic=t&binary=1"),
            0i32.to_be_bytes().to_vec(),
        )
        .await,
        413,
        "BAD_BODY",
    );
    let mut bad = 1i32.to_be_bytes().to_vec();
    bad.extend_from_slice(&0i32.to_be_bytes());
    assert_error(
        &post_body(&format!("{h}/mpub?topic=t&binary=true"), bad).await,
        413,
        "BAD_MESSAGE",
    );

    // 1 + 1 deferred + 3 + 2 messages reached the topic; nothing from the refused requests.
    let s = stats(&h).await;
    assert_eq!(topic(&s, "t")["message_count"], 7);
    assert_eq!(topic(&s, "t")["message_bytes"], 5 + 5 + 6 + 3);
    // A channel created now receives what the topic held (it had no channel until now). It
    // reads the topic's log as consumers ask, so until then all 7 count as its depth
    // (Go has already sorted the deferred one out: depth 6, deferred 1).
    assert_eq!(topic(&s, "t")["depth"], 7);
    assert_ok_empty(&post(&format!("{h}/channel/create?topic=t&channel=c")).await);
    let s = stats(&h).await;
    assert_eq!(channel(&s, "t", "c")["depth"], 7);
    assert_eq!(topic(&s, "t")["depth"], 0);

    assert_error(
        &post(&format!("{h}/channel/empty?topic=t&channel=zz")).await,
        404,
        "CHANNEL_NOT_FOUND",
    );
    assert_ok_empty(&post(&format!("{h}/channel/empty?topic=t&channel=c")).await);
    let s = stats(&h).await;
    assert_eq!(
        (
            channel(&s, "t", "c")["depth"].clone(),
            channel(&s, "t", "c")["deferred_count"].clone()
        ),
        (json!(0), json!(0))
    );

    // A paused topic keeps what is published; empty drops it.
    assert_ok_empty(&post(&format!("{h}/topic/pause?topic=t")).await);
    assert_eq!(
        post_body(&format!("{h}/pub?topic=t"), b"held".to_vec())
            .await
            .status,
        200
    );
    assert_eq!(topic(&stats(&h).await, "t")["depth"], 1);
    assert_error(
        &post(&format!("{h}/topic/empty?topic=zz")).await,
        404,
        "TOPIC_NOT_FOUND",
    );
    assert_error(
        &post(&format!("{h}/topic/empty")).await,
        400,
        "MISSING_ARG_TOPIC",
    );
    assert_ok_empty(&post(&format!("{h}/topic/empty?topic=t")).await);
    assert_eq!(topic(&stats(&h).await, "t")["depth"], 0);
    nsqd.shutdown().await;
}
