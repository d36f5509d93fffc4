//! The server's TLS configuration: built once at start-up from the `--tls-*` options (the
//! certificate and key, the client certificate policy, the lowest version), then used by every
//! TLS handshake nsqd serves, on TCP (after IDENTIFY) and on HTTPS, the same way Go nsqd uses
//! one `tls.Config` for both.
//!
//! Go's choices kept: no ALPN is offered; without a client auth policy no client certificate
//! is requested, even with `--tls-root-ca-file` (Go sets the pool but `NoClientCert`); a
//! handshake must finish within 5 s; under `require-verify` a client certificate that is itself
//! in the root CA file is accepted, as Go's `x509.Verify` does. rustls speaks only TLS 1.2 and
//! 1.3, so a lower `--tls-min-version` is raised to TLS 1.2 with one warning at start-up.
//!
//! This file builds the [`TlsServer`]; its parts live beside it: `pem` reads the files,
//! `roots` the root CA file, `any_client_cert` and `chain_or_pinned` are the client
//! certificate verifiers of `require` and `require-verify`, and `describe` names what a
//! handshake negotiated as Go's `/stats` does.

mod any_client_cert;
mod chain_or_pinned;
mod describe;
mod pem;
mod roots;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ServerConfig, SupportedProtocolVersion};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientAuthPolicy, TlsMinVersion, TlsOptions};
use any_client_cert::AnyClientCert;
use chain_or_pinned::ChainOrPinned;
pub use describe::{describe, go_cipher_suite_name};
use pem::{read_certs, read_key};
use roots::read_roots;
pub use roots::root_ca_store;

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

/// The crypto provider every TLS configuration in rnsq uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}
