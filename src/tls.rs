//! Placeholder until the TLS configuration lands.

/// The server TLS configuration.
pub struct TlsServer;
