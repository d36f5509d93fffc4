//! The root certificate authorities of `--tls-root-ca-file`: what the `require-verify` client
//! certificate policy checks against, and the hints sent under `require`.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use tokio_rustls::rustls::RootCertStore;

use super::pem::read_certs;
use super::TlsError;

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
pub(super) fn read_roots(
    path: &Path,
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), TlsError> {
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
