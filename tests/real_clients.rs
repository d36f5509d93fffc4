//! Real NSQ client libraries, unmodified — nsqjs (npm), pynsq (PyPI) and tokio-nsq (crates.io)
//! — against the built `rnsq`: each case publishes and consumes bodies over one feature (TLS,
//! snappy, deflate, AUTH, a verified client certificate), checks every body arrived intact, and
//! checks on the server's side, in `/stats`, that the connections really negotiated that
//! feature, so a client that silently falls back fails the case.
//!
//! The clients are installed by `.ci/run` (`npm ci` in tests/clients/js; pynsq into
//! target/clients-venv); a case whose client is missing fails saying what to install.
//!
//! `RNSQ_CLIENTS_NSQD=/path/to/nsqd cargo test --release --test real_clients` runs the same
//! cases against another nsqd (Go's nsqd 1.3.0 is how the cases themselves were checked);
//! `RNSQ_CLIENTS_EXTRA_FLAGS="--snappy=false"` appends flags to every start, to watch a case
//! fail when the server does not offer what its client asks for.

#[path = "real_clients/auth_server.rs"]
mod auth_server;
mod common;
#[path = "real_clients/harness.rs"]
mod harness;
#[path = "real_clients/test_certs.rs"]
mod test_certs;

use std::future::Future;
use std::sync::Arc;

use auth_server::AuthServer;
use common::DEADLINE;
use harness::{
    assert_negotiated, assert_same_bodies, bodies, compressible_bodies, run_script,
    run_script_refused, ClientOptions, Expect, NsqdProcess, Script, Target, TOKIO_NSQ_FLUSH,
};
use test_certs::TestCerts;
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConfigSharedCompression, NSQConfigSharedTLS, NSQConsumerConfig,
    NSQConsumerConfigSources, NSQDeflateLevel, NSQEvent, NSQProducerConfig, NSQTopic,
};

/// What the server is started with.
#[derive(Debug, Clone, Copy, Default)]
struct Server {
    /// `--tls-cert`/`--tls-key` (and `--https-address 127.0.0.1:0`).
    tls: bool,
    /// `--tls-client-auth-policy require-verify --tls-root-ca-file` and
    /// `--tls-required=tcp-https`.
    require_verified_client: bool,
    snappy: bool,
    deflate: bool,
    /// `--auth-http-address` of an [`AuthServer`] started for the case.
    auth: bool,
}

impl Server {
    fn flags(&self, certs: &TestCerts, auth: Option<&AuthServer>) -> Vec<String> {
        let mut flags = Vec::new();
        let path = |p: &std::path::Path| p.display().to_string();
        if self.tls || self.require_verified_client {
            flags.extend([
                "--tls-cert".into(),
                path(&certs.server_cert),
                "--tls-key".into(),
                path(&certs.server_key),
                // With a certificate nsqd also serves HTTPS, by default on 0.0.0.0:4152: keep
                // parallel cases off that port.
                "--https-address".into(),
                "127.0.0.1:0".into(),
            ]);
        }
        if self.require_verified_client {
            flags.extend([
                "--tls-client-auth-policy".into(),
                "require-verify".into(),
                "--tls-root-ca-file".into(),
                path(&certs.ca),
                // TLS is required on TCP; HTTP stays plain (for /stats). Go's flag is a bool
                // flag taking a value only after `=`: `--tls-required tcp-https` means `true`.
                "--tls-required=tcp-https".into(),
            ]);
        }
        if self.snappy {
            flags.push("--snappy".into());
        }
        if self.deflate {
            flags.extend(["--deflate".into(), "--max-deflate-level".into(), "6".into()]);
        }
        if let Some(auth) = auth {
            flags.extend(["--auth-http-address".into(), auth.address.to_string()]);
        }
        flags
    }
}

/// A started case: its directory, certificates, auth server (if any) and nsqd.
struct Case {
    dir: tempfile::TempDir,
    certs: TestCerts,
    auth: Option<AuthServer>,
    nsqd: NsqdProcess,
}

impl Case {
    async fn start(server: Server) -> Case {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = TestCerts::write(dir.path());
        let auth = if server.auth {
            Some(AuthServer::start().await)
        } else {
            None
        };
        let flags = server.flags(&certs, auth.as_ref());
        let path = dir.path().to_path_buf();
        // Spawning polls with blocking sleeps: keep it off the runtime's threads.
        let nsqd = tokio::task::spawn_blocking(move || NsqdProcess::spawn(&path, &flags))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        Case {
            dir,
            certs,
            auth,
            nsqd,
        }
    }

    /// Asserts the auth server was asked, for every connection of the case, with the secret,
    /// the client's address and whether TLS was up (Go's `secret`, `remote_ip`, `tls`,
    /// `common_name` query).
    fn assert_auth_queries(&self, tls: bool, common_name: &str) {
        let auth = self.auth.as_ref().expect("the case has an auth server");
        let queries = auth.queries();
        assert!(
            queries.len() >= 2,
            "the producer and the consumer each asked the auth server: {queries:#?}"
        );
        for query in &queries {
            let get = |k: &str| query.get(k).map(String::as_str);
            assert_eq!(get("secret"), Some(auth_server::SECRET), "{query:?}");
            assert_eq!(get("remote_ip"), Some("127.0.0.1"), "{query:?}");
            assert_eq!(
                get("tls"),
                Some(if tls { "true" } else { "false" }),
                "{query:?}"
            );
            assert_eq!(get("common_name").unwrap_or(""), common_name, "{query:?}");
        }
    }
}

/// Runs `script` against a server started as `server`, with the client options `client` makes
/// from the case's certificates, and asserts the bodies and what `/stats` shows.
async fn script_case(
    script: Script,
    topic: &str,
    server: Server,
    client: impl FnOnce(&TestCerts) -> ClientOptions,
    expect: Expect,
) -> Case {
    let case = Case::start(server).await;
    let options = client(&case.certs);
    let sent = bodies();
    let target = Target {
        nsqd: &case.nsqd,
        dir: case.dir.path(),
        topic,
        channel: "real_client",
    };
    let holding = run_script(script, &target, &sent, &options).await;
    assert_same_bodies(&sent, &holding.received, &format!("{script:?} on {topic}"));
    assert_negotiated(&case.nsqd, topic, "real_client", expect).await;
    holding.release(&case.nsqd).await;
    case
}

fn tls_with_ca(certs: &TestCerts) -> ClientOptions {
    ClientOptions {
        tls: true,
        ca: Some(certs.ca.clone()),
        ..ClientOptions::default()
    }
}

const TLS: Expect = Expect {
    tls: true,
    tls_version: None,
    snappy: false,
    deflate: false,
    auth: None,
};

const AUTHED: Option<(&str, &str)> = Some((auth_server::IDENTITY, auth_server::IDENTITY_URL));

// ---- nsqjs: TLS, snappy, deflate, AUTH ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsqjs_plain() {
    let none = |_: &TestCerts| ClientOptions::default();
    script_case(
        Script::Nsqjs,
        "js_plain",
        Server::default(),
        none,
        Expect::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsqjs_tls_verifying_the_server_with_a_ca_file() {
    let server = Server {
        tls: true,
        ..Server::default()
    };
    script_case(Script::Nsqjs, "js_tls", server, tls_with_ca, TLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsqjs_tls_and_snappy() {
    let server = Server {
        tls: true,
        snappy: true,
        ..Server::default()
    };
    let client = |certs: &TestCerts| ClientOptions {
        snappy: true,
        ..tls_with_ca(certs)
    };
    let expect = Expect {
        snappy: true,
        ..TLS
    };
    script_case(Script::Nsqjs, "js_tls_snappy", server, client, expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsqjs_tls_and_deflate() {
    let server = Server {
        tls: true,
        deflate: true,
        ..Server::default()
    };
    let client = |certs: &TestCerts| ClientOptions {
        deflate: true,
        deflate_level: Some(4),
        ..tls_with_ca(certs)
    };
    let expect = Expect {
        deflate: true,
        ..TLS
    };
    script_case(Script::Nsqjs, "js_tls_deflate", server, client, expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsqjs_snappy() {
    let server = Server {
        snappy: true,
        ..Server::default()
    };
    let client = |_: &TestCerts| ClientOptions {
        snappy: true,
        ..ClientOptions::default()
    };
    let expect = Expect {
        snappy: true,
        ..Expect::default()
    };
    script_case(Script::Nsqjs, "js_snappy", server, client, expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsqjs_deflate() {
    let server = Server {
        deflate: true,
        ..Server::default()
    };
    let client = |_: &TestCerts| ClientOptions {
        deflate: true,
        ..ClientOptions::default()
    };
    let expect = Expect {
        deflate: true,
        ..Expect::default()
    };
    script_case(Script::Nsqjs, "js_deflate", server, client, expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsqjs_auth_secret() {
    let server = Server {
        auth: true,
        ..Server::default()
    };
    let client = |_: &TestCerts| ClientOptions {
        auth_secret: Some(auth_server::SECRET.into()),
        ..ClientOptions::default()
    };
    let expect = Expect {
        auth: AUTHED,
        ..Expect::default()
    };
    let case = script_case(Script::Nsqjs, "js_auth", server, client, expect).await;
    case.assert_auth_queries(false, "");
}

// ---- pynsq: TLS (CA-verified server; verified client certificate) and AUTH ----
// pynsq's snappy and deflate are broken on tornado 6 (nsqio/pynsq#258).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynsq_plain() {
    let none = |_: &TestCerts| ClientOptions::default();
    script_case(
        Script::Pynsq,
        "py_plain",
        Server::default(),
        none,
        Expect::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynsq_tls_verifying_the_server_with_a_ca_file() {
    let server = Server {
        tls: true,
        ..Server::default()
    };
    // pynsq pins TLS 1.2 (ssl.PROTOCOL_TLSv1_2), so this also covers the older version.
    let expect = Expect {
        tls_version: Some("TLS1.2"),
        ..TLS
    };
    script_case(Script::Pynsq, "py_tls", server, tls_with_ca, expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynsq_tls_with_a_verified_client_certificate() {
    let server = Server {
        require_verified_client: true,
        ..Server::default()
    };
    let client = |certs: &TestCerts| ClientOptions {
        cert: Some((certs.client_cert.clone(), certs.client_key.clone())),
        ..tls_with_ca(certs)
    };
    let expect = Expect {
        tls_version: Some("TLS1.2"),
        ..TLS
    };
    script_case(Script::Pynsq, "py_tls_client_cert", server, client, expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynsq_tls_with_a_self_signed_client_certificate_is_refused() {
    // The case above passes against a server that ignores its client policy; this one does not.
    let case = Case::start(Server {
        require_verified_client: true,
        ..Server::default()
    })
    .await;
    let options = ClientOptions {
        cert: Some((
            case.certs.self_signed_cert.clone(),
            case.certs.self_signed_key.clone(),
        )),
        ..tls_with_ca(&case.certs)
    };
    let target = Target {
        nsqd: &case.nsqd,
        dir: case.dir.path(),
        topic: "py_tls_self_signed",
        channel: "real_client",
    };
    let error = run_script_refused(Script::Pynsq, &target, &bodies(), &options).await;
    assert!(
        error.contains("TLS") || error.contains("SSL") || error.contains("closed"),
        "pynsq's error names the failed TLS upgrade: {error}"
    );
    let stats = common::stats(&case.nsqd.base()).await;
    assert!(
        common::find_topic(&stats, "py_tls_self_signed").is_none(),
        "nothing was published or subscribed without a verified certificate: {stats:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynsq_auth_secret() {
    let server = Server {
        auth: true,
        ..Server::default()
    };
    let client = |_: &TestCerts| ClientOptions {
        auth_secret: Some(auth_server::SECRET.into()),
        ..ClientOptions::default()
    };
    let expect = Expect {
        auth: AUTHED,
        ..Expect::default()
    };
    let case = script_case(Script::Pynsq, "py_auth", server, client, expect).await;
    case.assert_auth_queries(false, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynsq_auth_over_tls_sends_the_client_certificate_name() {
    let server = Server {
        require_verified_client: true,
        auth: true,
        ..Server::default()
    };
    let client = |certs: &TestCerts| ClientOptions {
        cert: Some((certs.client_cert.clone(), certs.client_key.clone())),
        auth_secret: Some(auth_server::SECRET.into()),
        ..tls_with_ca(certs)
    };
    let expect = Expect {
        auth: AUTHED,
        ..TLS
    };
    let case = script_case(Script::Pynsq, "py_tls_auth", server, client, expect).await;
    case.assert_auth_queries(true, test_certs::CLIENT_COMMON_NAME);
}

// ---- tokio-nsq: TLS and deflate ----

/// Runs `future`, or fails the test naming `what` (with nsqd's log) after [`DEADLINE`].
async fn within<T>(nsqd: &NsqdProcess, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!(
            "timed out after {DEADLINE:?} waiting for {what}; nsqd's log:\n{}",
            nsqd.log_text()
        ),
    }
}

/// Publishes `sent` with a tokio-nsq producer (half PUB, half MPUB), consumes them with a
/// tokio-nsq consumer, and asserts them and `/stats` while both stay connected.
async fn tokio_nsq_case(
    topic_name: &str,
    server: Server,
    shared: NSQConfigShared,
    sent: Vec<Vec<u8>>,
    expect: Expect,
) {
    let case = Case::start(server).await;
    let address = case.nsqd.tcp.to_string();
    let shared = shared.set_flush_interval(TOKIO_NSQ_FLUSH);
    let topic = NSQTopic::new(topic_name).expect("valid topic name");
    let channel = NSQChannel::new("real_client").expect("valid channel name");
    let nsqd_log = || case.nsqd.log_text();

    let mut producer = NSQProducerConfig::new(address.clone())
        .set_shared(shared.clone())
        .build();
    within(&case.nsqd, "the tokio-nsq producer's handshake", async {
        match producer.consume().await {
            Some(NSQEvent::Healthy()) => {}
            other => panic!(
                "producer: expected Healthy, got {other:?}; nsqd:\n{}",
                nsqd_log()
            ),
        }
    })
    .await;
    let half = sent.len() / 2;
    for body in &sent[..half] {
        producer
            .publish(&topic, body.clone())
            .await
            .expect("PUB queued");
    }
    producer
        .publish_multiple(&topic, sent[half..].to_vec())
        .await
        .expect("MPUB queued");
    within(&case.nsqd, "the producer's acknowledgements", async {
        for _ in 0..half + 1 {
            match producer.consume().await {
                Some(NSQEvent::Ok()) => {}
                other => panic!(
                    "producer: expected OK, got {other:?}; nsqd:\n{}",
                    nsqd_log()
                ),
            }
        }
    })
    .await;

    let mut consumer = NSQConsumerConfig::new(Arc::clone(&topic), channel)
        .set_max_in_flight(sent.len() as u32)
        .set_sources(NSQConsumerConfigSources::Daemons(vec![address]))
        .set_shared(shared)
        .build();
    let mut received = Vec::new();
    within(
        &case.nsqd,
        "the tokio-nsq consumer to get every body",
        async {
            while received.len() < sent.len() {
                match consumer.consume().await {
                    Some(NSQEvent::Message(message)) => {
                        received.push(message.body.clone());
                        message.finish().await;
                    }
                    Some(NSQEvent::Healthy()) | Some(NSQEvent::Ok()) => {}
                    other => panic!("consumer: got {other:?}; nsqd:\n{}", nsqd_log()),
                }
            }
        },
    )
    .await;
    assert_same_bodies(&sent, &received, &format!("tokio-nsq on {topic_name}"));
    assert_negotiated(&case.nsqd, topic_name, "real_client", expect).await;
    drop((producer, consumer));
}

/// tokio-nsq's TLS: without a rustls config of its own it skips verifying the server (its
/// rustls 0.19 types cannot be built from this crate's dependencies); `/stats` still proves
/// the connection is encrypted.
fn tls_config() -> NSQConfigSharedTLS {
    NSQConfigSharedTLS::new("localhost").set_required(true)
}

fn deflate_config() -> NSQConfigSharedCompression {
    NSQConfigSharedCompression::Deflate(NSQDeflateLevel::new(3).expect("a valid level"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_plain() {
    let shared = NSQConfigShared::new();
    tokio_nsq_case(
        "rs_plain",
        Server::default(),
        shared,
        bodies(),
        Expect::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_tls() {
    let server = Server {
        tls: true,
        ..Server::default()
    };
    let shared = NSQConfigShared::new().set_tls(tls_config());
    tokio_nsq_case("rs_tls", server, shared, bodies(), TLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_deflate() {
    let server = Server {
        deflate: true,
        ..Server::default()
    };
    let shared = NSQConfigShared::new().set_compression(deflate_config());
    let expect = Expect {
        deflate: true,
        ..Expect::default()
    };
    tokio_nsq_case("rs_deflate", server, shared, compressible_bodies(), expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_tls_and_deflate() {
    let server = Server {
        tls: true,
        deflate: true,
        ..Server::default()
    };
    let shared = NSQConfigShared::new()
        .set_tls(tls_config())
        .set_compression(deflate_config());
    let expect = Expect {
        deflate: true,
        ..TLS
    };
    tokio_nsq_case(
        "rs_tls_deflate",
        server,
        shared,
        compressible_bodies(),
        expect,
    )
    .await;
}
