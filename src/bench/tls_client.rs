//! The benchmark's TLS client: which server certificates it trusts (a root CA file, or any
//! with `--tls-insecure-skip-verify`), the client certificate it presents, and the name it
//! checks the server's certificate against.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsConnector;

use super::BenchError;

/// A TLS client configuration, ready to connect.
#[derive(Clone)]
pub struct TlsClient {
    pub(crate) connector: TlsConnector,
    /// The name to verify the server against instead of the address's host.
    server_name: Option<String>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn invalid(what: String) -> BenchError {
    BenchError::Invalid(what)
}

impl TlsClient {
    /// Reads the PEM files (blocking: call it before the benchmark's runtime starts). Trusts
    /// the certificates in `root_ca_file`, or any certificate when it is `None`. Fails, naming
    /// the file, when one cannot be read or holds no certificate or key.
    pub fn load(
        root_ca_file: Option<&Path>,
        client_cert: Option<(&Path, &Path)>,
        server_name: Option<String>,
    ) -> Result<TlsClient, BenchError> {
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS setup failed: {e}")))?;
        let builder = match root_ca_file {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(path)? {
                    roots.add(cert).map_err(|e| {
                        invalid(format!("--tls-root-ca-file {}: {e}", path.display()))
                    })?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider))),
        };
        let config = match client_cert {
            Some((cert, key)) => {
                let chain = certificates(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| invalid(format!("--tls-key {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid(format!("--tls-cert/--tls-key: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The name the server's certificate is checked against: `--tls-server-name`, or the host
    /// part of `address` (a DNS name or an IP address).
    pub fn server_name(&self, address: &str) -> Result<ServerName<'static>, BenchError> {
        let host = match &self.server_name {
            Some(name) => name.as_str(),
            None => {
                let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
                host.trim_start_matches('[').trim_end_matches(']')
            }
        };
        ServerName::try_from(host.to_string())
            .map_err(|e| invalid(format!("{host:?} is not a TLS server name: {e}")))
    }
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, BenchError> {
    let read_error = |e: rustls::pki_types::pem::Error| invalid(format!("{}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    if certs.is_empty() {
        return Err(invalid(format!("{} holds no certificate", path.display())));
    }
    Ok(certs)
}

/// `--tls-insecure-skip-verify`: any certificate is accepted, but the handshake's signatures
/// are still checked, so the benchmark pays the same cryptography as a verifying client.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
