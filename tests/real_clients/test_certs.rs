//! A throw-away PKI written to a directory at test time: a CA, a server certificate for
//! `localhost` and `127.0.0.1`, a CA-signed client certificate and a self-signed one, all PEM
//! files. Kept local to
//! this test so it is easy to replace with a shared `tests/common/certs.rs`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// The client certificate's subject common name (what AUTH sends as `common_name`).
pub const CLIENT_COMMON_NAME: &str = "rnsq-real-client";

/// Paths of the PEM files [`TestCerts::write`] made.
pub struct TestCerts {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Signed by nobody the server trusts (same common name as the CA-signed one).
    pub self_signed_cert: PathBuf,
    pub self_signed_key: PathBuf,
}

impl TestCerts {
    /// Generates the CA and both leaves and writes them into `dir`; panics on any failure.
    pub fn write(dir: &Path) -> TestCerts {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rnsq real-clients test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

        let leaf = |names: Vec<String>, common_name: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("leaf key");
            let mut params = CertificateParams::new(names).expect("leaf params");
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![usage];
            // Strict verifiers (Python 3.13's default flags) want it on CA-signed leaves.
            params.use_authority_key_identifier_extension = true;
            let cert = params
                .signed_by(&key, &ca, &ca_key)
                .expect("leaf certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key_pem) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_pem, client_key_pem) = leaf(
            vec![],
            CLIENT_COMMON_NAME,
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let self_signed_key = KeyPair::generate().expect("self-signed key");
        let mut self_signed = CertificateParams::new(Vec::<String>::new()).expect("params");
        self_signed
            .distinguished_name
            .push(DnType::CommonName, CLIENT_COMMON_NAME);
        self_signed.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let self_signed = self_signed
            .self_signed(&self_signed_key)
            .expect("self-signed certificate");

        let put = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        TestCerts {
            ca: put("ca.pem", &ca.pem()),
            server_cert: put("server.pem", &server_pem),
            server_key: put("server.key", &server_key_pem),
            client_cert: put("client.pem", &client_pem),
            client_key: put("client.key", &client_key_pem),
            self_signed_cert: put("self-signed.pem", &self_signed.pem()),
            self_signed_key: put("self-signed.key", &self_signed_key.serialize_pem()),
        }
    }
}
