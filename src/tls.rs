//! The server's TLS configuration: built once at start-up from the `--tls-*` options (the
//! certificate and key, the client certificate policy, the lowest version), then used by every
//! TLS handshake nsqd serves, on TCP (after IDENTIFY) and on HTTPS, the same way Go nsqd uses
//! one `tls.Config` for both.
//!
//! Go's choices kept: no ALPN is offered; without a client auth policy no client certificate
//! is requested, even with `--tls-root-ca-file` (Go sets the pool but `NoClientCert`); a
//! handshake must finish within 5 s; under `require-verify` a client certificate that is itself
//! in the root CA file is accepted, as Go's `x509.Verify` does. rustls speaks only TLS 1.2 and 1.3, so a lower
//! `--tls-min-version` is raised to TLS 1.2 with one warning at start-up.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    self, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, ServerConnection,
    SignatureScheme, SupportedProtocolVersion,
};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::broker::TlsInfo;
use crate::config::{ClientAuthPolicy, TlsMinVersion, TlsOptions};

/// How long a client has to finish the handshake (Go's deadline in `UpgradeTLS`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the TLS configuration could not be built; each names the flag and the file at fault.
/// Nothing is left behind: the daemon does not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--{flag} {}: cannot read: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("--{flag} {}: not valid PEM: {message}", path.display())]
    Pem {
        flag: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("--{flag} {}: holds no PEM {what}", path.display())]
    Empty {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("--tls-key {}: does not match the certificate in --tls-cert {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("--tls-key {}: cannot use the key with --tls-cert {}: {source}", key.display(), cert.display())]
    Key {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("--tls-root-ca-file {}: {message}", path.display())]
    RootCa { path: PathBuf, message: String },
}

/// The TLS side of nsqd: its rustls configuration, shared by every handshake.
pub struct TlsServer {
    acceptor: TlsAcceptor,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("config", &self.config)
            .finish()
    }
}

impl TlsServer {
    /// The TLS configuration `options` ask for, or `None` when no certificate and key are
    /// configured (TLS not offered). Logs one warning when `--tls-min-version` is raised to
    /// TLS 1.2. Reads files: call it off the async threads. `options` must have been
    /// resolved ([`TlsOptions::resolve`]: a key with every certificate, a root CA file for
    /// `require-verify`).
    ///
    /// # Errors
    /// A [`TlsError`] naming the flag and the file: unreadable, not PEM, holding no
    /// certificate or key, a key not matching the certificate, or a root CA file with no
    /// usable certificate.
    pub fn from_options(options: &TlsOptions) -> Result<Option<TlsServer>, TlsError> {
        let (min_version, raised) = options.effective_min_version();
        if raised {
            let asked = options.min_version.unwrap_or(TlsMinVersion::TLS1_0).name();
            tracing::warn!(
                "--tls-min-version={asked} raised to tls1.2: rnsq does not speak TLS below 1.2"
            );
        }
        let (Some(cert_path), Some(key_path)) = (&options.cert, &options.key) else {
            return Ok(None);
        };
        let provider = provider();
        let chain = read_certs("tls-cert", cert_path)?;
        let key = read_key(key_path)?;
        let roots = match &options.root_ca_file {
            Some(path) => Some(read_roots(path)?),
            None => None,
        };
        let verifier: Option<Arc<dyn ClientCertVerifier>> =
            match (options.client_auth_policy, roots) {
                (None, _) => None,
                (Some(ClientAuthPolicy::Require), roots) => Some(Arc::new(AnyClientCert {
                    hints: roots.map(|(store, _)| store.subjects()).unwrap_or_default(),
                    algorithms: provider.signature_verification_algorithms,
                })),
                (Some(ClientAuthPolicy::RequireVerify), roots) => {
                    let path = options.root_ca_file.clone().unwrap_or_default();
                    let (store, pinned) = roots.ok_or_else(|| TlsError::RootCa {
                        path: path.clone(),
                        message: "needed by --tls-client-auth-policy=require-verify".into(),
                    })?;
                    let webpki = WebPkiClientVerifier::builder_with_provider(
                        Arc::new(store),
                        provider.clone(),
                    )
                    .build()
                    .map_err(|e| TlsError::RootCa {
                        path,
                        message: e.to_string(),
                    })?;
                    Some(Arc::new(ChainOrPinned { webpki, pinned }))
                }
            };
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(protocol_versions(min_version))
            .map_err(|source| key_error(cert_path, key_path, source))?;
        let builder = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|source| key_error(cert_path, key_path, source))?;
        let config = Arc::new(config);
        Ok(Some(TlsServer {
            acceptor: TlsAcceptor::from(config.clone()),
            config,
        }))
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs the server side of a TLS handshake on `stream` and answers the encrypted stream.
    /// Bytes the client sent before the handshake must still be unread in `stream`.
    ///
    /// # Errors
    /// The handshake failed (the peer's alert, a refused client certificate, a protocol
    /// error) or did not finish within [`HANDSHAKE_TIMEOUT`] (`ErrorKind::TimedOut`); the
    /// stream is dropped and the connection is to be closed.
    pub async fn accept<S>(&self, stream: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TLS handshake not done within {HANDSHAKE_TIMEOUT:?}"),
            )),
        }
    }
}

/// The rustls versions spoken from `min` up.
pub fn protocol_versions(min: TlsMinVersion) -> &'static [&'static SupportedProtocolVersion] {
    static BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    if min >= TlsMinVersion::TLS1_3 {
        TLS13_ONLY
    } else {
        BOTH
    }
}

fn key_error(cert: &Path, key: &Path, source: rustls::Error) -> TlsError {
    match source {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                cert: cert.into(),
                key: key.into(),
            }
        }
        source => TlsError::Key {
            cert: cert.into(),
            key: key.into(),
            source,
        },
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        flag,
        path: path.into(),
        source,
    })
}

/// Every certificate in the PEM file at `path`, in order.
fn read_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            flag,
            path: path.into(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            flag,
            path: path.into(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let flag = "tls-key";
    let bytes = read(flag, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            flag,
            path: path.into(),
            what: "private key",
        },
        e => TlsError::Pem {
            flag,
            path: path.into(),
            message: e.to_string(),
        },
    })
}

/// The certificate authorities of `--tls-root-ca-file` at `path`, for a TLS client that must
/// trust them (Go's AUTH client does). Reads the file: call it off the async threads.
///
/// # Errors
/// [`TlsError`] naming `--tls-root-ca-file` and `path`: unreadable, not PEM, or no usable
/// certificate in it.
pub fn root_ca_store(path: &Path) -> Result<RootCertStore, TlsError> {
    read_roots(path).map(|(store, _)| store)
}

/// The certificate authorities in the PEM file at `path`, as a store and as the certificates
/// read. Like Go's `AppendCertsFromPEM`, a file must add at least one.
fn read_roots(path: &Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), TlsError> {
    let certs = read_certs("tls-root-ca-file", path)?;
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(TlsError::RootCa {
            path: path.into(),
            message: "no usable CA certificate".into(),
        });
    }
    Ok((store, certs))
}

/// `--tls-client-auth-policy=require`, Go's `RequireAnyClientCert`: a client certificate must
/// be presented, and the client must prove it holds its key (the handshake signature is
/// checked), but the certificate itself is not verified against anything.
#[derive(Debug)]
struct AnyClientCert {
    /// The root CA file's subjects, sent as hints as Go does when the file is given.
    hints: Vec<DistinguishedName>,
    algorithms: crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `--tls-client-auth-policy=require-verify`: the client certificate must chain to the root
/// CA file (webpki), or be one of that file's certificates itself and within its validity
/// period. The second is Go's rule (`x509.Verify` accepts a leaf found in the roots pool),
/// which deployments that pin a self-signed client certificate rely on; webpki alone refuses
/// it.
#[derive(Debug)]
struct ChainOrPinned {
    webpki: Arc<dyn ClientCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ChainOrPinned {
    fn is_pinned(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> bool {
        if !self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return false;
        }
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity.as_ref()) else {
            return false;
        };
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        x509_parser::time::ASN1Time::from_timestamp(now)
            .map(|now| cert.validity().is_valid_at(now))
            .unwrap_or(false)
    }
}

impl ClientCertVerifier for ChainOrPinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.is_pinned(end_entity, now) {
            return Ok(ClientCertVerified::assertion());
        }
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The crypto provider every TLS configuration in rnsq uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// What a completed handshake negotiated, in the words Go nsqd 1.3.0's `/stats` prints:
/// `TLS1.2`/`TLS1.3`, the cipher suite by Go's constant name for the suites Go's `/stats`
/// names and `Unknown <number>` for the others (Go names only 13, none of TLS 1.3's), ALPN,
/// and the client certificate's subject, issuer, serial and common name (empty without one).
pub fn describe(conn: &ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3".to_string(),
        Some(other) => format!("Unknown {}", u16::from(other)),
        None => "Unknown 0".to_string(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map_or(0, |s| u16::from(s.suite()));
    let mut info = TlsInfo {
        version,
        cipher_suite: go_cipher_suite_name(cipher_suite),
        negotiated_protocol: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
        // Go documents this field as always true.
        negotiated_protocol_is_mutual: true,
        ..TlsInfo::default()
    };
    if let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) {
        fill_client_cert(&mut info, cert);
    }
    info
}

/// Go 1.3.0's `prettyConnectionState.GetCipherSuite`: names for the suites it lists, by their
/// IANA numbers, `Unknown <number>` otherwise.
pub fn go_cipher_suite_name(suite: u16) -> String {
    let name = match suite {
        0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0xc007 => "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc011 => "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        other => return format!("Unknown {other}"),
    };
    name.to_string()
}

/// The client certificate's names into `info`. A certificate that does not parse leaves them
/// empty: under `require` it was never checked, and a name is not worth refusing a client.
fn fill_client_cert(info: &mut TlsInfo, der: &CertificateDer<'_>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return;
    };
    // Go's pkix.Name keeps the last CN it meets.
    info.client_common_name = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()
        .unwrap_or_default()
        .to_string();
    info.client_subject = go_name(cert.subject());
    info.client_issuer = go_name(cert.issuer());
    info.client_serial = cert.tbs_certificate.serial.to_string();
}

/// A distinguished name as Go's `pkix.Name.String()` writes it: RDNs last first, joined by
/// `,`, multi-valued ones by `+`, Go's short attribute names, RFC 4514 escaping.
fn go_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let key = match oid.as_str() {
                        "2.5.4.6" => "C",
                        "2.5.4.10" => "O",
                        "2.5.4.11" => "OU",
                        "2.5.4.3" => "CN",
                        "2.5.4.5" => "SERIALNUMBER",
                        "2.5.4.7" => "L",
                        "2.5.4.8" => "ST",
                        "2.5.4.9" => "STREET",
                        "2.5.4.17" => "POSTALCODE",
                        other => other,
                    };
                    let value = match attr.as_str() {
                        Ok(text) => escape_dn_value(text),
                        Err(_) => format!("#{}", hex(attr.attr_value().data)),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape_dn_value(text: &str) -> String {
    let last = text.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => i == 0 || i == last,
            '#' => i == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_have_gos_names_or_gos_unknown() {
        assert_eq!(
            go_cipher_suite_name(0xc02f),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(
            go_cipher_suite_name(0xc02b),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(go_cipher_suite_name(0x002f), "TLS_RSA_WITH_AES_128_CBC_SHA");
        // TLS_AES_128_GCM_SHA256: Go 1.3.0's /stats has no name for any TLS 1.3 suite.
        assert_eq!(go_cipher_suite_name(0x1301), "Unknown 4865");
        assert_eq!(go_cipher_suite_name(0xc030), "Unknown 49200");
    }

    #[test]
    fn dn_values_are_escaped_as_go_does() {
        assert_eq!(escape_dn_value("a,b"), "a\\,b");
        assert_eq!(escape_dn_value(" lead"), "\\ lead");
        assert_eq!(escape_dn_value("trail "), "trail\\ ");
        assert_eq!(escape_dn_value("#x#"), "\\#x#");
        assert_eq!(escape_dn_value("plain name"), "plain name");
    }

    /// A handshake over an in-memory pipe between `server` and a client presenting
    /// `client_cert` (if any) and offering only `suite`; answers the server's view.
    async fn handshake(
        server: &TlsServer,
        ca: &rcgen::Certificate,
        client_cert: Option<(&rcgen::Certificate, &rcgen::KeyPair)>,
        suite: rustls::SupportedCipherSuite,
    ) -> TlsInfo {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let provider = CryptoProvider {
            cipher_suites: vec![suite],
            ..crypto::ring::default_provider()
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client_cert {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![cert.der().clone()],
                    rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let (client, accepted) =
            tokio::join!(connector.connect(name, client_io), server.accept(server_io));
        client.unwrap();
        describe(accepted.unwrap().get_ref().1)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn describe_names_the_version_suite_and_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test ca");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&server_key, &ca, &ca_key)
            .unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen's default name holds a CN already; start empty so that O comes first.
        client_params.distinguished_name = rcgen::DistinguishedName::new();
        client_params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc");
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "worker-1");
        client_params.serial_number = Some(rcgen::SerialNumber::from(vec![0x01, 0x00]));
        let client_cert = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

        let options = TlsOptions {
            cert: Some(write(dir.path(), "cert.pem", &server_cert.pem())),
            key: Some(write(dir.path(), "key.pem", &server_key.serialize_pem())),
            root_ca_file: Some(write(dir.path(), "ca.pem", &ca.pem())),
            client_auth_policy: Some(ClientAuthPolicy::RequireVerify),
            ..TlsOptions::default()
        };
        let server = TlsServer::from_options(&options).unwrap().unwrap();

        let tls13 = handshake(
            &server,
            &ca,
            Some((&client_cert, &client_key)),
            crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        )
        .await;
        assert_eq!(tls13.version, "TLS1.3");
        assert_eq!(tls13.cipher_suite, "Unknown 4865");
        assert_eq!(tls13.negotiated_protocol, "");
        assert!(tls13.negotiated_protocol_is_mutual);
        assert_eq!(tls13.client_common_name, "worker-1");
        assert_eq!(tls13.client_subject, "CN=worker-1,O=Acme\\, Inc");
        assert_eq!(tls13.client_issuer, "CN=test ca");
        assert_eq!(tls13.client_serial, "256");

        // rcgen's default keys are ECDSA P-256, hence an ECDHE-ECDSA suite.
        let tls12 = handshake(
            &server,
            &ca,
            Some((&client_cert, &client_key)),
            crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        )
        .await;
        assert_eq!(tls12.version, "TLS1.2");
        assert_eq!(
            tls12.cipher_suite,
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(tls12.client_common_name, "worker-1");
    }
}
