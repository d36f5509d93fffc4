//! Certificates made at test time (rcgen), written to a temp dir: a CA, a server certificate
//! it signed (SAN 127.0.0.1 and localhost), a client certificate it signed and a self-signed
//! client certificate; and rustls client configurations presenting each.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rnsq::tls;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, SupportedProtocolVersion};

/// A certificate and its key, as PEM text and as files.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// What a test client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    None,
    /// Signed by the test CA (common name `rnsq-test-client`).
    CaSigned,
    /// Signed by itself (common name `rnsq-self-signed`).
    SelfSigned,
}

/// The test PKI; the files live as long as this value.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    /// The CA certificate's file, for `--tls-root-ca-file`.
    pub ca: PathBuf,
    ca_der: CertificateDer<'static>,
    pub server: Pair,
    pub client: Pair,
    pub self_signed: Pair,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a PEM file");
    path
}

fn pair(dir: &Path, name: &str, cert: rcgen::Certificate, key: KeyPair) -> Pair {
    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    Pair {
        cert: write(dir, &format!("{name}.pem"), &cert_pem),
        key: write(dir, &format!("{name}-key.pem"), &key_pem),
        cert_pem,
        key_pem,
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

fn params(common_name: &str, sans: Vec<String>) -> CertificateParams {
    let mut params = CertificateParams::new(sans).expect("certificate params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

/// Makes the certificates and writes them to a new temp dir.
pub fn generate() -> Certs {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = params("rnsq-test-ca", Vec::new());
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

    let server_key = KeyPair::generate().expect("server key");
    let server_cert = params(
        "rnsq-test-server",
        vec!["127.0.0.1".into(), "localhost".into()],
    )
    .signed_by(&server_key, &ca, &ca_key)
    .expect("server certificate");

    let client_key = KeyPair::generate().expect("client key");
    let client_cert = params("rnsq-test-client", Vec::new())
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client certificate");

    let self_key = KeyPair::generate().expect("self-signed key");
    let self_cert = params("rnsq-self-signed", Vec::new())
        .self_signed(&self_key)
        .expect("self-signed certificate");

    let ca_pem = ca.pem();
    Certs {
        ca: write(dir.path(), "ca.pem", &ca_pem),
        ca_pem,
        ca_der: ca.der().clone(),
        server: pair(dir.path(), "server", server_cert, server_key),
        client: pair(dir.path(), "client", client_cert, client_key),
        self_signed: pair(dir.path(), "self-signed", self_cert, self_key),
        dir,
    }
}

impl Certs {
    /// A client configuration trusting the test CA, presenting `cert`, speaking `versions`.
    pub fn client_config_with(
        &self,
        cert: ClientCert,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("trust the test CA");
        let builder = ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_root_certificates(roots);
        let pair = match cert {
            ClientCert::None => return Arc::new(builder.with_no_client_auth()),
            ClientCert::CaSigned => &self.client,
            ClientCert::SelfSigned => &self.self_signed,
        };
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(pair.key_der.clone()));
        Arc::new(
            builder
                .with_client_auth_cert(vec![pair.der.clone()], key)
                .expect("client certificate"),
        )
    }

    /// [`Certs::client_config_with`] TLS 1.2 and 1.3.
    pub fn client_config(&self, cert: ClientCert) -> Arc<ClientConfig> {
        self.client_config_with(cert, rustls::DEFAULT_VERSIONS)
    }
}
