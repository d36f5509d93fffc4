//! The client certificate verifier of `--tls-client-auth-policy=require-verify`: webpki's
//! chain check, plus Go's acceptance of a client certificate that is itself in the root CA
//! file.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{self, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// `--tls-client-auth-policy=require-verify`: the client certificate must chain to the root
/// CA file (webpki), or be one of that file's certificates itself and within its validity
/// period. The second is Go's rule (`x509.Verify` accepts a leaf found in the roots pool),
/// which deployments that pin a self-signed client certificate rely on; webpki alone refuses
/// it.
#[derive(Debug)]
pub(super) struct ChainOrPinned {
    pub(super) webpki: Arc<dyn ClientCertVerifier>,
    pub(super) pinned: Vec<CertificateDer<'static>>,
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
