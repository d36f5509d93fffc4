//! AUTH against a real HTTP auth server run by the test (axum on port 0), which records every
//! request it receives: what nsqd 1.3.0 sends it, what the client hears back (byte-exact
//! frames) for every outcome, the checks at PUB/MPUB/DPUB/SUB, the renewal once the TTL has
//! passed, several servers, and `/stats`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::v2::{dpub_cmd, identify_cmd, mpub_cmd, pub_cmd, with_body, Client};
use rnsq::nsqd::Nsqd;
use serde_json::{json, Value};

/// One request the auth server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// The raw query string, as sent.
    query: String,
    params: HashMap<String, String>,
    accept: String,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Reply per secret: status and body. A secret not listed gets 404.
    replies: Mutex<HashMap<String, (u16, String)>>,
}

/// An auth server on 127.0.0.1:0, answering every path.
struct AuthServer {
    address: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let query = uri.query().unwrap_or_default().to_string();
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let secret = params.get("secret").cloned().unwrap_or_default();
    shared.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        query,
        params,
        accept: headers
            .get("accept")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
    });
    let reply = shared.replies.lock().unwrap().get(&secret).cloned();
    match reply {
        Some((status, body)) => (StatusCode::from_u16(status).unwrap(), body),
        None => (StatusCode::NOT_FOUND, "no such secret".into()),
    }
}

impl AuthServer {
    async fn start() -> AuthServer {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        AuthServer {
            address,
            shared,
            task,
        }
    }

    /// `host:port`, which nsqd turns into `http://host:port/auth`.
    fn host_port(&self) -> String {
        self.address.to_string()
    }

    fn reply(&self, secret: &str, status: u16, body: &str) {
        self.shared
            .replies
            .lock()
            .unwrap()
            .insert(secret.into(), (status, body.into()));
    }

    fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }
}

/// A grant body: `(topic, channels, permissions)` per authorization.
fn grant(ttl: i64, identity: &str, url: &str, auths: &[(&str, &[&str], &[&str])]) -> String {
    let authorizations: Vec<Value> = auths
        .iter()
        .map(|(t, c, p)| json!({"topic": t, "channels": c, "permissions": p}))
        .collect();
    json!({"ttl": ttl, "identity": identity, "identity_url": url, "authorizations": authorizations})
        .to_string()
}

/// The usual grant: publish to `pub_.*`, subscribe to `sub_.*` channels `ok.*`.
fn usual(ttl: i64) -> String {
    grant(
        ttl,
        "alice",
        "http://id.example/?user=alice&v=1",
        &[
            ("^pub_", &[".*"], &["publish"]),
            ("^sub_", &["^ok"], &["subscribe"]),
        ],
    )
}

const USUAL_REPLY: &[u8] =
    br#"{"identity":"alice","identity_url":"http://id.example/?user=alice\u0026v=1","permission_count":2}"#;

async fn broker_with(addresses: Vec<String>) -> (tempfile::TempDir, Nsqd) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path());
    opts.auth.http_addresses = addresses;
    let nsqd = common::start_with(opts).await;
    (dir, nsqd)
}

async fn authed(nsqd: &Nsqd, secret: &str) -> Client {
    let mut client = Client::connect(nsqd).await;
    client.send(&with_body("AUTH", secret.as_bytes())).await;
    client.expect_response(USUAL_REPLY).await;
    client
}

#[tokio::test]
async fn identify_reports_auth_required() {
    let server = AuthServer::start().await;
    for (addresses, required) in [(vec![server.host_port()], true), (vec![], false)] {
        let (_dir, nsqd) = broker_with(addresses).await;
        let mut client = Client::connect(&nsqd).await;
        client
            .send(&identify_cmd(r#"{"feature_negotiation":true}"#))
            .await;
        let reply: Value = serde_json::from_slice(&client.frame().await.data).unwrap();
        assert_eq!(reply["auth_required"], json!(required), "{reply}");
        common::stop(nsqd).await;
    }
}

#[tokio::test]
async fn without_auth_servers_auth_is_disabled() {
    let (_dir, nsqd) = broker_with(vec![]).await;
    let mut client = Client::connect(&nsqd).await;
    client.send(&with_body("AUTH", b"secret")).await;
    client.expect_error("E_AUTH_DISABLED AUTH disabled").await;
    client.expect_closed().await;
    // And nothing is checked: PUB works without AUTH.
    let mut client = Client::connect(&nsqd).await;
    client.publish("pub_t", b"m").await;
    common::stop(nsqd).await;
}

#[tokio::test]
async fn every_checked_command_needs_auth_first() {
    let server = AuthServer::start().await;
    let (_dir, nsqd) = broker_with(vec![server.host_port()]).await;
    for (command, bytes) in [
        ("PUB", pub_cmd("pub_t", b"m")),
        ("MPUB", mpub_cmd("pub_t", &[b"a", b"b"])),
        ("DPUB", dpub_cmd("pub_t", 10, b"m")),
        ("SUB", b"SUB sub_t ok\n".to_vec()),
    ] {
        let mut client = Client::connect(&nsqd).await;
        client.send(&bytes).await;
        client
            .expect_error(&format!("E_AUTH_FIRST AUTH required before {command}"))
            .await;
        client.expect_closed().await;
    }
    assert!(server.received().is_empty(), "no AUTH, no query");
    common::stop(nsqd).await;
}

#[tokio::test]
async fn auth_sends_gos_request_and_answers_the_grant() {
    let server = AuthServer::start().await;
    server.reply("s3cret key+/~", 200, &usual(3600));
    let (_dir, nsqd) = broker_with(vec![server.host_port()]).await;
    let mut client = Client::connect(&nsqd).await;
    client.send(&with_body("AUTH", b"s3cret key+/~")).await;
    client.expect_response(USUAL_REPLY).await;

    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(request.path, "/auth");
    // Go's url.Values.Encode: keys sorted, QueryEscape values.
    assert_eq!(
        request.query,
        "common_name=&remote_ip=127.0.0.1&secret=s3cret+key%2B%2F~&tls=false"
    );
    assert_eq!(request.params["secret"], "s3cret key+/~");
    assert_eq!(
        request.params["remote_ip"],
        client.local_addr().ip().to_string()
    );
    assert_eq!(request.params["tls"], "false");
    assert_eq!(request.params["common_name"], "");
    assert_eq!(request.accept, "application/vnd.nsq; version=1.0");

    // A second AUTH is refused once a grant is held (after its body is read).
    client.send(&with_body("AUTH", b"s3cret key+/~")).await;
    client.expect_error("E_INVALID AUTH already set").await;
    client.expect_closed().await;
    assert_eq!(server.received().len(), 1);
    common::stop(nsqd).await;
}

#[tokio::test]
async fn grants_decide_publish_and_subscribe() {
    let server = AuthServer::start().await;
    server.reply("k", 200, &usual(3600));
    let (_dir, nsqd) = broker_with(vec![server.host_port()]).await;

    let mut client = authed(&nsqd, "k").await;
    client.publish("pub_orders", b"m").await;
    client.send(&mpub_cmd("pub_orders", &[b"a", b"b"])).await;
    client.expect_ok().await;
    client.send(&dpub_cmd("pub_orders", 5, b"m")).await;
    client.expect_ok().await;

    let denied = [
        (
            pub_cmd("secret_topic", b"m"),
            r#"E_UNAUTHORIZED AUTH failed for PUB on "secret_topic" """#,
        ),
        (
            mpub_cmd("secret_topic", &[b"a"]),
            r#"E_UNAUTHORIZED AUTH failed for MPUB on "secret_topic" """#,
        ),
        (
            dpub_cmd("secret_topic", 5, b"m"),
            r#"E_UNAUTHORIZED AUTH failed for DPUB on "secret_topic" """#,
        ),
        // Subscribe permission is not publish permission.
        (
            pub_cmd("sub_t", b"m"),
            r#"E_UNAUTHORIZED AUTH failed for PUB on "sub_t" """#,
        ),
        (
            b"SUB sub_t other\n".to_vec(),
            r#"E_UNAUTHORIZED AUTH failed for SUB on "sub_t" "other""#,
        ),
        (
            b"SUB pub_orders ok\n".to_vec(),
            r#"E_UNAUTHORIZED AUTH failed for SUB on "pub_orders" "ok""#,
        ),
    ];
    for (bytes, error) in denied {
        let mut client = authed(&nsqd, "k").await;
        client.send(&bytes).await;
        client.expect_error(error).await;
        client.expect_closed().await;
    }

    let mut consumer = authed(&nsqd, "k").await;
    consumer.line("SUB sub_t ok_channel").await;
    consumer.expect_ok().await;
    // The grant is cached for its TTL: one query per AUTH, none per command.
    assert_eq!(server.received().len(), 1 + 6 + 1);
    common::stop(nsqd).await;
}

#[tokio::test]
async fn bad_answers_fail_auth() {
    let server = AuthServer::start().await;
    let perms: &[&str] = &["publish"];
    server.reply("500", 500, "oops");
    server.reply("json", 200, "{\"ttl\": 60,");
    server.reply("ttl0", 200, &grant(0, "a", "", &[("t", &[".*"], perms)]));
    server.reply(
        "perm",
        200,
        &grant(60, "a", "", &[("t", &[".*"], &["publish", "admin"])]),
    );
    server.reply("regex", 200, &grant(60, "a", "", &[("(", &[".*"], perms)]));
    let (_dir, nsqd) = broker_with(vec![server.host_port()]).await;
    for secret in ["500", "json", "ttl0", "perm", "regex", "unknown"] {
        let mut client = Client::connect(&nsqd).await;
        client.send(&with_body("AUTH", secret.as_bytes())).await;
        client.expect_error("E_AUTH_FAILED AUTH failed").await;
        client.expect_closed().await;
    }
    assert_eq!(server.received().len(), 6);

    server.reply("empty", 200, &grant(60, "nobody", "", &[]));
    let mut client = Client::connect(&nsqd).await;
    client.send(&with_body("AUTH", b"empty")).await;
    client
        .expect_error("E_UNAUTHORIZED AUTH no authorizations found")
        .await;
    client.expect_closed().await;
    common::stop(nsqd).await;
}

#[tokio::test]
async fn an_expired_grant_is_asked_for_again_at_the_next_command() {
    let server = AuthServer::start().await;
    server.reply("k", 200, &usual(1));
    let (_dir, nsqd) = broker_with(vec![server.host_port()]).await;
    let mut client = authed(&nsqd, "k").await;
    // The broker's expiry is at most 1 s after this instant (it received the grant first).
    let granted = tokio::time::Instant::now();
    client.publish("pub_a", b"m").await;
    if granted.elapsed() < Duration::from_secs(1) {
        assert_eq!(
            server.received().len(),
            1,
            "within the TTL, no second query"
        );
    }
    // Waiting out a deadline on the clock (not synchronising with anything).
    tokio::time::sleep_until(granted + Duration::from_millis(1010)).await;
    client.publish("pub_a", b"m").await;
    let received = server.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(
        received[1].query, received[0].query,
        "same secret, same peer"
    );

    // The renewed grant is asked for again after its TTL, and now the answer denies.
    let renewed = tokio::time::Instant::now();
    server.reply(
        "k",
        200,
        &grant(60, "alice", "", &[("^other$", &[".*"], &["publish"])]),
    );
    tokio::time::sleep_until(renewed + Duration::from_millis(1010)).await;
    client.send(&pub_cmd("pub_a", b"m")).await;
    client
        .expect_error(r#"E_UNAUTHORIZED AUTH failed for PUB on "pub_a" """#)
        .await;
    client.expect_closed().await;

    // A renewal the server fails is E_AUTH_FAILED.
    server.reply("k", 200, &usual(1));
    let mut client = authed(&nsqd, "k").await;
    let granted = tokio::time::Instant::now();
    server.reply("k", 500, "down");
    tokio::time::sleep_until(granted + Duration::from_millis(1010)).await;
    client.line("SUB sub_t ok").await;
    client.expect_error("E_AUTH_FAILED AUTH failed").await;
    client.expect_closed().await;
    common::stop(nsqd).await;
}

/// A loopback address nothing listens on.
async fn unreachable() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address.to_string()
}

#[tokio::test]
async fn a_failing_server_is_skipped_for_the_next() {
    let server = AuthServer::start().await;
    server.reply("k", 200, &usual(3600));
    let dead = unreachable().await;
    let (_dir, nsqd) = broker_with(vec![dead.clone(), server.host_port()]).await;
    // The first server tried is random; every AUTH succeeds either way.
    for _ in 0..8 {
        let mut client = authed(&nsqd, "k").await;
        client.publish("pub_x", b"m").await;
    }
    assert_eq!(
        server.received().len(),
        8,
        "each AUTH asks the live server once"
    );
    common::stop(nsqd).await;

    // Every server failing is E_AUTH_FAILED, each tried once.
    let (_dir, nsqd) = broker_with(vec![dead, server.host_port()]).await;
    let mut client = Client::connect(&nsqd).await;
    client.send(&with_body("AUTH", b"not-listed")).await;
    client.expect_error("E_AUTH_FAILED AUTH failed").await;
    client.expect_closed().await;
    assert_eq!(server.received().len(), 9);
    common::stop(nsqd).await;
}

#[tokio::test]
async fn a_full_url_is_asked_as_given() {
    let server = AuthServer::start().await;
    server.reply("k", 200, &usual(3600));
    let url = format!("http://{}/v1/nsq-auth", server.address);
    let (_dir, nsqd) = broker_with(vec![url]).await;
    let mut client = authed(&nsqd, "k").await;
    client.publish("pub_x", b"m").await;
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/nsq-auth");
    assert_eq!(received[0].params["secret"], "k");
    common::stop(nsqd).await;
}

#[tokio::test]
async fn stats_show_who_authed() {
    let server = AuthServer::start().await;
    server.reply("k", 200, &usual(3600));
    let (_dir, nsqd) = broker_with(vec![server.host_port()]).await;
    let base = common::base(nsqd.http_address());

    let mut producer = authed(&nsqd, "k").await;
    producer.publish("pub_stats", b"m").await;
    let mut consumer = authed(&nsqd, "k").await;
    consumer.line("SUB sub_stats ok").await;
    consumer.expect_ok().await;

    let stats = common::get(&format!("{base}/stats?format=json&include_clients=true")).await;
    let stats: Value = serde_json::from_str(&stats.body).unwrap();
    let producers = stats["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1, "{stats}");
    let clients = common::find_channel(&stats, "sub_stats", "ok").unwrap()["clients"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(clients.len(), 1, "{stats}");
    for client in [&producers[0], &clients[0]] {
        assert_eq!(client["authed"], json!(true), "{client}");
        assert_eq!(client["auth_identity"], json!("alice"));
        assert_eq!(
            client["auth_identity_url"],
            json!("http://id.example/?user=alice&v=1")
        );
        // Go's field order: right after user_agent.
        let keys: Vec<&String> = client.as_object().unwrap().keys().collect();
        let at = keys.iter().position(|k| *k == "user_agent").unwrap();
        assert_eq!(
            keys[at + 1..at + 4],
            ["authed", "auth_identity", "auth_identity_url"]
        );
    }
    common::stop(nsqd).await;

    // Without AUTH the fields are omitted, as Go's omitempty.
    let (_dir, nsqd) = broker_with(vec![]).await;
    let base = common::base(nsqd.http_address());
    let mut producer = Client::connect(&nsqd).await;
    producer.publish("plain", b"m").await;
    let stats = common::get(&format!("{base}/stats?format=json&include_clients=true")).await;
    let stats: Value = serde_json::from_str(&stats.body).unwrap();
    let client = &stats["producers"][0];
    assert!(client.get("user_agent").is_some(), "{stats}");
    for key in ["authed", "auth_identity", "auth_identity_url"] {
        assert!(client.get(key).is_none(), "{key} in {client}");
    }
    common::stop(nsqd).await;
}

#[tokio::test]
async fn the_binary_takes_the_auth_flags() {
    let server = AuthServer::start().await;
    server.reply("k", 200, &usual(3600));
    let dir = tempfile::tempdir().unwrap();
    let address = server.host_port();
    let broker = tokio::task::spawn_blocking({
        let path = dir.path().to_path_buf();
        move || {
            common::BrokerProcess::spawn(
                &path,
                &[
                    "--auth-http-address",
                    &address,
                    "--http-client-connect-timeout=1s",
                    "--http-client-request-timeout",
                    "3s",
                ],
            )
        }
    })
    .await
    .unwrap();
    let tcp = rnsq::data_lock::read_holder(dir.path())
        .and_then(|h| h.tcp_address)
        .unwrap();
    let mut client = Client::connect(tcp).await;
    client.send(&with_body("AUTH", b"k")).await;
    client.expect_response(USUAL_REPLY).await;
    client.publish("pub_bin", b"m").await;
    let config = common::get(&format!(
        "{}/config/http_client_request_timeout",
        broker.base()
    ))
    .await;
    assert_eq!(config.body, "3000000000");
    drop(broker);

    // A bad value is refused naming the flag.
    let output = std::process::Command::new(common::rnsq_bin())
        .args(["nsqd", "--auth-http-address", "ftp://x/y", "--data-path"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth-http-address"), "{stderr}");
}

// Regression: an auth query hanging on a server that never answers (request timeout 0 means
// none, as in Go) must not hold up the broker's shutdown.
#[tokio::test]
async fn shutdown_does_not_wait_for_a_hung_auth_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hung = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path());
    opts.auth.http_addresses = vec![address.to_string()];
    opts.auth.http_client_request_timeout = Duration::ZERO;
    let nsqd = common::start_with(opts).await;
    let mut client = Client::connect(&nsqd).await;
    client.send(&with_body("AUTH", b"k")).await;
    common::eventually("the auth server to be asked", || {
        let accepted = accepted.clone();
        async move { (accepted.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(()) }
    })
    .await;
    common::stop(nsqd).await;
    hung.abort();
}
