//! TLS on nsqd's HTTP side: HTTPS (`--https-address`) with each client certificate policy,
//! plain HTTP under `--tls-required` (403 `TLS_REQUIRED`) and `tcp-https`, `--tls-min-version`,
//! and the start-up refusals of bad TLS options and files. Certificates are made at test time.

mod common;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::certs::{self, Certs, ClientCert};
use rnsq::config::{ClientAuthPolicy, NsqdOptions, TlsMinVersion, TlsRequired};
use rnsq::nsqd::Nsqd;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig};
use tokio_rustls::TlsConnector;

/// Options for a broker on `data` serving HTTPS with the test server certificate.
fn tls_options(data: &Path, certs: &Certs) -> NsqdOptions {
    let mut opts = common::options(data);
    opts.tls.cert = Some(certs.server.cert.clone());
    opts.tls.key = Some(certs.server.key.clone());
    opts
}

/// Starts a broker with `opts` after applying Go's option rules, as the binary does.
async fn start(mut opts: NsqdOptions) -> Nsqd {
    opts.tls.resolve().expect("TLS options are valid");
    common::start_with(opts).await
}

/// `GET path` over HTTPS with `config`; answers the whole response (status line, headers,
/// body), or the error that ended the connection before one arrived.
async fn https_get(
    address: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
) -> io::Result<String> {
    let exchange = async {
        let tcp = TcpStream::connect(address).await?;
        let name = ServerName::try_from("localhost").expect("server name");
        let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await?;
        tls.flush().await?;
        let mut response = Vec::new();
        match tls.read_to_end(&mut response).await {
            Ok(_) => {}
            // A server that closes without close_notify after a whole response is fine.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
            Err(e) => return Err(e),
        }
        if response.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no response"));
        }
        Ok(String::from_utf8_lossy(&response).into_owned())
    };
    tokio::time::timeout(common::DEADLINE, exchange)
        .await
        .expect("the HTTPS exchange ends within the deadline")
}

/// Asserts that `response` is a 200 whose body is `body`.
fn assert_ok(response: &str, body: &str) {
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with(&format!("\r\n\r\n{body}")), "{response}");
}

#[tokio::test]
async fn https_serves_the_api_with_the_ca_trusted() {
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    let nsqd = start(tls_options(data.path(), &certs)).await;
    let https = nsqd.https_address().expect("HTTPS is served");
    assert_ne!(https.port(), 0);

    let client = certs.client_config(ClientCert::None);
    assert_ok(
        &https_get(https, client.clone(), "/ping").await.unwrap(),
        "OK",
    );
    let info = https_get(https, client.clone(), "/info").await.unwrap();
    assert!(info.contains("\"tcp_port\":"), "{info}");
    // Without a policy no client certificate is asked for, but one offered does no harm.
    let with_cert = certs.client_config(ClientCert::SelfSigned);
    assert_ok(&https_get(https, with_cert, "/ping").await.unwrap(), "OK");
    // TLS not required: plain HTTP serves as before.
    let plain = common::get(&format!("{}/ping", common::base(nsqd.http_address()))).await;
    assert_eq!((plain.status, plain.body.as_str()), (200, "OK"));
    // A client that does not trust the server's CA is refused by its own side.
    let untrusting = ClientConfig::builder_with_provider(rnsq::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    assert!(https_get(https, Arc::new(untrusting), "/ping")
        .await
        .is_err());
    common::stop(nsqd).await;
}

/// Answers, for each kind of client certificate, whether `/ping` over HTTPS succeeded.
async fn ping_with_each_client_cert(policy: ClientAuthPolicy) -> Vec<(ClientCert, bool)> {
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    let mut opts = tls_options(data.path(), &certs);
    opts.tls.client_auth_policy = Some(policy);
    opts.tls.root_ca_file = Some(certs.ca.clone());
    let nsqd = start(opts).await;
    let https = nsqd.https_address().expect("HTTPS is served");
    let mut outcomes = Vec::new();
    for cert in [
        ClientCert::CaSigned,
        ClientCert::SelfSigned,
        ClientCert::None,
    ] {
        let result = https_get(https, certs.client_config(cert), "/ping").await;
        if let Ok(response) = &result {
            assert_ok(response, "OK");
        }
        outcomes.push((cert, result.is_ok()));
    }
    common::stop(nsqd).await;
    outcomes
}

#[tokio::test]
async fn require_accepts_any_client_certificate_and_refuses_none() {
    assert_eq!(
        ping_with_each_client_cert(ClientAuthPolicy::Require).await,
        [
            (ClientCert::CaSigned, true),
            (ClientCert::SelfSigned, true),
            (ClientCert::None, false),
        ]
    );
}

#[tokio::test]
async fn require_verify_accepts_only_ca_signed_client_certificates() {
    assert_eq!(
        ping_with_each_client_cert(ClientAuthPolicy::RequireVerify).await,
        [
            (ClientCert::CaSigned, true),
            (ClientCert::SelfSigned, false),
            (ClientCert::None, false),
        ]
    );
}

#[tokio::test]
async fn require_verify_accepts_a_self_signed_certificate_pinned_in_the_root_ca_file() {
    // As Go's x509.Verify: a leaf that is itself in the roots pool verifies, even when it is
    // marked CA:TRUE, as `openssl req -x509` makes it (webpki alone refuses that one).
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pinned = params.self_signed(&key).unwrap();
    let roots = data.path().join("roots.pem");
    std::fs::write(&roots, format!("{}{}", certs.ca_pem, pinned.pem())).unwrap();
    let mut opts = tls_options(&data.path().join("d"), &certs);
    opts.tls.client_auth_policy = Some(ClientAuthPolicy::RequireVerify);
    opts.tls.root_ca_file = Some(roots);
    let nsqd = start(opts).await;
    let https = nsqd.https_address().expect("HTTPS is served");

    let mut trusted = rustls::RootCertStore::empty();
    trusted.add_parsable_certificates(
        rustls_pki_types::CertificateDer::pem_slice_iter(certs.ca_pem.as_bytes())
            .map(Result::unwrap),
    );
    let pinned_client = ClientConfig::builder_with_provider(rnsq::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(trusted)
        .with_client_auth_cert(
            vec![pinned.der().clone()],
            rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    assert_ok(
        &https_get(https, Arc::new(pinned_client), "/ping")
            .await
            .unwrap(),
        "OK",
    );
    let ca_signed = certs.client_config(ClientCert::CaSigned);
    assert_ok(&https_get(https, ca_signed, "/ping").await.unwrap(), "OK");
    let refused = https_get(https, certs.client_config(ClientCert::None), "/ping").await;
    assert!(refused.is_err(), "{refused:?}");
    common::stop(nsqd).await;
}

#[tokio::test]
async fn tls_required_turns_plain_http_away_with_gos_reply() {
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    let mut opts = tls_options(data.path(), &certs);
    opts.tls.required = TlsRequired::Required;
    let nsqd = start(opts).await;
    let https = nsqd.https_address().expect("HTTPS is served");
    let plain = common::base(nsqd.http_address());
    let want = format!(
        r#"{{"message": "TLS_REQUIRED", "https_port": {}}}"#,
        https.port()
    );
    for reply in [
        common::get(&format!("{plain}/ping")).await,
        common::get(&format!("{plain}/stats?format=json")).await,
        common::post_body(&format!("{plain}/pub?topic=t"), b"body".to_vec()).await,
        common::get(&format!("{plain}/no/such/path")).await,
    ] {
        assert_eq!(reply.status, 403, "{reply:?}");
        assert_eq!(reply.body, want);
        assert_eq!(reply.nsq_header.as_deref(), Some("nsq; version=1.0"));
    }
    let response = reqwest::get(format!("{plain}/ping")).await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    // The message was refused, not published.
    let client = certs.client_config(ClientCert::None);
    let stats = https_get(https, client.clone(), "/stats?format=json")
        .await
        .unwrap();
    assert!(stats.contains("\"topics\":[]"), "{stats}");
    assert_ok(&https_get(https, client, "/ping").await.unwrap(), "OK");
    common::stop(nsqd).await;
}

#[tokio::test]
async fn tls_required_without_https_answers_port_zero() {
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    let mut opts = tls_options(data.path(), &certs);
    opts.tls.required = TlsRequired::Required;
    opts.tls.https_address = String::new();
    let nsqd = start(opts).await;
    assert_eq!(nsqd.https_address(), None);
    let reply = common::get(&format!("{}/ping", common::base(nsqd.http_address()))).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.body,
        r#"{"message": "TLS_REQUIRED", "https_port": 0}"#
    );
    common::stop(nsqd).await;
}

#[tokio::test]
async fn tcp_https_and_a_client_policy_alone_leave_plain_http_open_or_closed_as_go() {
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    // tcp-https through the config file, as an operator would write it.
    let config = data.path().join("nsqd.cfg");
    std::fs::write(
        &config,
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\ntls_required = \"tcp-https\"\nhttps_address = \"127.0.0.1:0\"\n",
            certs.server.cert, certs.server.key
        ),
    )
    .unwrap();
    let args = rnsq::config::NsqdArgs {
        config: Some(config),
        ..Default::default()
    };
    let mut opts = NsqdOptions::resolve(&args).unwrap();
    opts.data_path = data.path().join("a");
    opts.tcp_address = "127.0.0.1:0".into();
    opts.http_address = "127.0.0.1:0".into();
    let nsqd = common::start_with(opts).await;
    let plain = common::base(nsqd.http_address());
    let reply = common::get(&format!("{plain}/ping")).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "OK"));
    let reply = common::get(&format!("{plain}/config/tls_required")).await;
    assert_eq!(reply.body, "1");
    common::stop(nsqd).await;

    // A policy without --tls-required turns full TLS-required on: plain HTTP is refused.
    let mut opts = tls_options(&data.path().join("b"), &certs);
    opts.tls.client_auth_policy = Some(ClientAuthPolicy::Require);
    let nsqd = start(opts).await;
    let plain = common::base(nsqd.http_address());
    assert_eq!(common::get(&format!("{plain}/ping")).await.status, 403);
    common::stop(nsqd).await;
}

#[tokio::test]
async fn min_version_tls1_3_refuses_a_tls1_2_only_client() {
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    let mut opts = tls_options(data.path(), &certs);
    opts.tls.min_version = Some(TlsMinVersion::TLS1_3);
    let nsqd = start(opts).await;
    let https = nsqd.https_address().expect("HTTPS is served");
    let tls12 = certs.client_config_with(ClientCert::None, &[&rustls::version::TLS12]);
    let refused = https_get(https, tls12, "/ping").await.unwrap_err();
    assert!(refused.to_string().contains("ProtocolVersion"), "{refused}");
    let tls13 = certs.client_config_with(ClientCert::None, &[&rustls::version::TLS13]);
    assert_ok(&https_get(https, tls13, "/ping").await.unwrap(), "OK");
    common::stop(nsqd).await;

    // The default (Go's tls1.0, raised) still speaks TLS 1.2.
    let nsqd = start(tls_options(&data.path().join("b"), &certs)).await;
    let https = nsqd.https_address().expect("HTTPS is served");
    let tls12 = certs.client_config_with(ClientCert::None, &[&rustls::version::TLS12]);
    assert_ok(&https_get(https, tls12, "/ping").await.unwrap(), "OK");
    common::stop(nsqd).await;
}

/// Runs `rnsq nsqd` with `args` to its exit; answers whether it succeeded and its stderr.
fn run_to_exit(data: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(common::rnsq_bin())
        .arg("nsqd")
        .arg("--data-path")
        .arg(data)
        .args(["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"])
        .args(["--https-address=127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rnsq");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_tls_options_and_files_stop_start_up_naming_flag_and_file() {
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    let dir = certs.dir.path();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let missing = dir.join("missing-key.pem");
    let cert = certs.server.cert.to_str().unwrap().to_string();
    let key = certs.server.key.to_str().unwrap().to_string();
    let other_key = certs.client.key.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec![
                format!("--tls-cert={cert}"),
                format!("--tls-key={}", missing.display()),
            ],
            vec![
                "--tls-key".into(),
                missing.display().to_string(),
                "cannot read".into(),
            ],
        ),
        (
            vec![
                format!("--tls-cert={}", garbage.display()),
                format!("--tls-key={key}"),
            ],
            vec![
                "--tls-cert".into(),
                garbage.display().to_string(),
                "no PEM certificate".into(),
            ],
        ),
        (
            vec![
                format!("--tls-cert={cert}"),
                format!("--tls-key={}", garbage.display()),
            ],
            vec![
                "--tls-key".into(),
                garbage.display().to_string(),
                "no PEM private key".into(),
            ],
        ),
        (
            vec![
                format!("--tls-cert={cert}"),
                format!("--tls-key={other_key}"),
            ],
            vec![
                "--tls-key".into(),
                other_key.clone(),
                "does not match".into(),
                cert.clone(),
            ],
        ),
        (
            vec![
                format!("--tls-cert={cert}"),
                format!("--tls-key={key}"),
                format!("--tls-root-ca-file={}", garbage.display()),
            ],
            vec!["--tls-root-ca-file".into(), garbage.display().to_string()],
        ),
        (
            vec!["--tls-required".into()],
            vec![
                "tls-required".into(),
                "without --tls-cert and --tls-key".into(),
            ],
        ),
        (
            vec!["--tls-client-auth-policy=require".into()],
            vec!["tls-client-auth-policy".into(), "without --tls-cert".into()],
        ),
        (
            vec![format!("--tls-cert={cert}")],
            vec!["tls-key".into(), "must be given with --tls-cert".into()],
        ),
        (
            vec!["--tls-min-version=ssl3.0".into()],
            vec!["--tls-min-version".into(), "ssl3.0".into()],
        ),
    ];
    for (args, wants) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stderr) = run_to_exit(data.path(), &args);
        assert!(!ok, "{args:?} started: {stderr}");
        for want in wants {
            assert!(stderr.contains(&want), "{args:?}: {want:?} not in {stderr}");
        }
        // The TLS check runs before the data path is touched.
        assert!(
            !data.path().join(rnsq::meta_store::STORE_DIR).exists(),
            "{args:?}"
        );
    }
}

#[test]
fn a_min_version_below_tls1_2_starts_with_one_warning() {
    let certs = certs::generate();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("stderr.log");
    let mut child = Command::new(common::rnsq_bin())
        .arg("nsqd")
        .arg("--data-path")
        .arg(data.path().join("d"))
        .args(["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"])
        .args(["--https-address=127.0.0.1:0", "-tls-min-version=tls1.0"])
        .arg(format!("--tls-cert={}", certs.server.cert.display()))
        .arg(format!("--tls-key={}", certs.server.key.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn rnsq");
    let pid = child.id();
    let http = common::eventually_blocking("the broker to serve", || {
        rnsq::data_lock::read_holder(&data.path().join("d"))
            .filter(|h| h.pid == pid)
            .and_then(|h| h.http_address)
    });
    let ping = reqwest::blocking::get(format!("http://{http}/ping")).unwrap();
    assert_eq!(ping.text().unwrap(), "OK");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    assert!(child.wait().unwrap().success());
    let stderr = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("tls-min-version"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("--tls-min-version=tls1.0 raised to tls1.2"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTPS listening"), "{stderr}");
}
