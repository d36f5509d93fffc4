//! TLS on the V2 socket, byte for byte against Go nsqd 1.3.0 (`nsqd/protocol_v2.go` IDENTIFY
//! and `enforceTLSPolicy`, `nsqd/client_v2.go` UpgradeTLS): IDENTIFY's JSON in plain text, the
//! handshake, `OK` inside TLS, then snappy or deflate stacked on it; `--tls-required`; the
//! client-certificate policies with CA-signed, self-signed and no certificates; /stats.
//!
//! Certificates are made at test time (`common::certs`, rcgen). The broker runs in this
//! process on port 0; the client side (rustls, snap, flate2) is blocking code run off the
//! async threads.

mod common;
#[path = "common/layered.rs"]
mod layered;

use std::net::SocketAddr;

use common::certs::{self, Certs, ClientCert};
use layered::{client, client_stats, negotiate, round_trip, Layered, ERROR, OK_FRAME, RESPONSE};
use rnsq::config::{ClientAuthPolicy, NsqdOptions, TlsRequired};

/// A broker with the test certificate (and `policy`, with the CA as root).
fn tls_options(
    dir: &std::path::Path,
    certs: &Certs,
    policy: Option<ClientAuthPolicy>,
) -> NsqdOptions {
    let mut opts = common::options(dir);
    opts.tls.cert = Some(certs.server.cert.clone());
    opts.tls.key = Some(certs.server.key.clone());
    opts.tls.https_address = String::new();
    if let Some(policy) = policy {
        opts.tls.root_ca_file = Some(certs.ca.clone());
        opts.tls.client_auth_policy = Some(policy);
        // Go's rule: a policy turns TLS-required on.
        opts.tls.required = TlsRequired::Required;
    }
    opts
}

/// Connects, negotiates `json` (which asks for TLS), handshakes with `cert` and checks the
/// first bytes inside TLS are exactly the OK frame.
fn bodies() -> Vec<Vec<u8>> {
    vec![b"tls".to_vec(), b"0123456789".repeat(20_000)]
}

fn tls_client(address: SocketAddr, certs: &Certs, cert: ClientCert, json: &str) -> Layered {
    let mut c = Layered::connect(address);
    let reply = negotiate(&mut c, json);
    assert_eq!(reply["tls_v1"], true, "{reply}");
    c.tls(certs.client_config(cert));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_then_ok_inside_it_then_commands_and_stats_say_so() {
    let certs = certs::generate();
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start_with(tls_options(dir.path(), &certs, None)).await;
    let address = nsqd.tcp_address();
    let base = common::base(nsqd.http_address());
    let (c, local) = client(move || {
        let mut c = tls_client(
            address,
            &certs,
            ClientCert::None,
            r#"{"feature_negotiation":true,"tls_v1":true}"#,
        );
        assert_eq!(c.read_raw(OK_FRAME.len()), OK_FRAME, "OK, inside TLS");
        round_trip(&mut c, "tls_t", &bodies());
        let local = c.local_addr();
        (c, local)
    })
    .await;
    let seen = client_stats(&base, local).await;
    assert_eq!(seen["tls"], true, "{seen}");
    assert!(
        ["TLS1.2", "TLS1.3"].contains(&seen["tls_version"].as_str().unwrap_or("")),
        "{seen}"
    );
    assert_ne!(seen["tls_cipher_suite"], "", "{seen}");
    assert_eq!(seen["snappy"], false, "{seen}");
    drop(c);
    common::stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_and_deflate_stack_on_tls_each_with_its_own_ok() {
    let certs = std::sync::Arc::new(certs::generate());
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start_with(tls_options(dir.path(), &certs, None)).await;
    let address = nsqd.tcp_address();
    let base = common::base(nsqd.http_address());
    for compression in ["snappy", "deflate"] {
        let certs = certs.clone();
        let (c, local) = client(move || {
            let mut c = tls_client(
                address,
                &certs,
                ClientCert::None,
                &format!(r#"{{"feature_negotiation":true,"tls_v1":true,"{compression}":true}}"#),
            );
            // First the OK inside TLS, uncompressed; then the compression's OK.
            assert_eq!(
                c.read_raw(OK_FRAME.len()),
                OK_FRAME,
                "{compression}: TLS OK"
            );
            match compression {
                "snappy" => c.snappy(false),
                _ => c.deflate(6),
            }
            assert_eq!(
                c.frame(),
                (RESPONSE, b"OK".to_vec()),
                "{compression}: its OK"
            );
            round_trip(&mut c, &format!("tls_{compression}"), &bodies());
            let local = c.local_addr();
            (c, local)
        })
        .await;
        let seen = client_stats(&base, local).await;
        assert_eq!(seen["tls"], true, "{seen}");
        assert_eq!(seen[compression], true, "{seen}");
        drop(c);
    }
    common::stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_required_every_command_but_identify_waits_for_tls() {
    let certs = certs::generate();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = tls_options(dir.path(), &certs, None);
    opts.tls.required = TlsRequired::ExceptHttp;
    let nsqd = common::start_with(opts).await;
    let address = nsqd.tcp_address();
    client(move || {
        for (line, name) in [
            (b"PUB t\n\x00\x00\x00\x01x".to_vec(), "PUB"),
            (b"SUB t c\n".to_vec(), "SUB"),
            (b"NOP\n".to_vec(), "NOP"),
            (b"FOO\n".to_vec(), "FOO"),
        ] {
            let mut c = Layered::connect(address);
            c.send(&line);
            assert_eq!(
                c.frame(),
                (
                    ERROR,
                    format!("E_INVALID cannot {name} in current state (TLS required)").into_bytes()
                )
            );
            assert!(c.closed(), "{name}: the error is fatal");
        }
        // IDENTIFY without TLS is allowed, but the next command is still refused.
        let mut c = Layered::connect(address);
        negotiate(&mut c, r#"{"feature_negotiation":true}"#);
        c.send(b"NOP\n");
        assert_eq!(
            c.frame(),
            (
                ERROR,
                b"E_INVALID cannot NOP in current state (TLS required)".to_vec()
            )
        );
        // With TLS up, everything works.
        let mut c = tls_client(
            address,
            &certs,
            ClientCert::None,
            r#"{"feature_negotiation":true,"tls_v1":true}"#,
        );
        assert_eq!(c.frame(), (RESPONSE, b"OK".to_vec()));
        round_trip(&mut c, "required_t", &bodies());
    })
    .await;
    common::stop(nsqd).await;
}

/// Whether a TLS client presenting `cert` gets through to its `OK`.
fn admitted(address: SocketAddr, certs: &Certs, cert: ClientCert) -> bool {
    let mut c = Layered::connect(address);
    let reply = negotiate(&mut c, r#"{"feature_negotiation":true,"tls_v1":true}"#);
    assert_eq!(reply["tls_v1"], true, "{reply}");
    if c.try_tls(certs.client_config(cert)).is_err() {
        return false;
    }
    match c.try_frame() {
        Ok(frame) => {
            assert_eq!(frame, (RESPONSE, b"OK".to_vec()));
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_policies_admit_exactly_what_go_admits() {
    let certs = std::sync::Arc::new(certs::generate());
    for (policy, ca_signed, self_signed, none) in [
        // require: any certificate, unverified; none is refused.
        (ClientAuthPolicy::Require, true, true, false),
        // require-verify: only one chaining to the root CA file.
        (ClientAuthPolicy::RequireVerify, true, false, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let nsqd = common::start_with(tls_options(dir.path(), &certs, Some(policy))).await;
        let address = nsqd.tcp_address();
        let certs = certs.clone();
        client(move || {
            assert_eq!(
                admitted(address, &certs, ClientCert::CaSigned),
                ca_signed,
                "{policy:?}: CA-signed"
            );
            assert_eq!(
                admitted(address, &certs, ClientCert::SelfSigned),
                self_signed,
                "{policy:?}: self-signed"
            );
            assert_eq!(
                admitted(address, &certs, ClientCert::None),
                none,
                "{policy:?}: no certificate"
            );
            // And the policy made TLS required on TCP.
            let mut plain = Layered::connect(address);
            plain.send(b"NOP\n");
            assert_eq!(plain.frame().0, ERROR, "{policy:?}: plain TCP refused");
        })
        .await;
        common::stop(nsqd).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_tls_is_answered_false_and_the_stream_stays_plain() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address();
    client(move || {
        let mut c = Layered::connect(address);
        let reply = negotiate(&mut c, r#"{"feature_negotiation":true,"tls_v1":true}"#);
        assert_eq!(reply["tls_v1"], false, "{reply}");
        round_trip(&mut c, "no_tls_t", &bodies());
    })
    .await;
    common::stop(nsqd).await;
}
