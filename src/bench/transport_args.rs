//! The flags `rnsq bench writer` and `reader` share for the connection's transport: TLS (with
//! how to trust the server and an optional client certificate), snappy, deflate.

use std::path::PathBuf;

use super::negotiate::Transport;
use super::tls_client::TlsClient;
use super::BenchError;

/// How a benchmark connection is secured and compressed (nsqd's IDENTIFY features).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TransportArgs {
    /// Upgrade each connection to TLS after IDENTIFY (nsqd must run with --tls-cert/--tls-key)
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the certificate authorities the server's certificate must chain to
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_root_ca_file: Option<PathBuf>,
    /// Accept any server certificate (for self-signed test brokers; measures the same cost)
    #[arg(long, requires = "tls", conflicts_with = "tls_root_ca_file")]
    pub tls_insecure_skip_verify: bool,
    /// PEM file of a client certificate to present (with --tls-key)
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (with --tls-cert)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of --nsqd-tcp-address)
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_server_name: Option<String>,
    /// Compress the connection with snappy after IDENTIFY
    #[arg(long, conflicts_with = "deflate")]
    pub snappy: bool,
    /// Compress the connection with raw DEFLATE after IDENTIFY
    #[arg(long)]
    pub deflate: bool,
    /// DEFLATE level to ask for, 1 (fastest) to 9 (smallest); nsqd may lower it
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub deflate_level: u32,
}

impl TransportArgs {
    /// The transport these flags ask for. Fails (naming the flag) when a TLS flag needs a
    /// trust choice that is missing, or a PEM file cannot be read.
    pub fn transport(&self) -> Result<Transport, BenchError> {
        let tls = if self.tls {
            if self.tls_root_ca_file.is_none() && !self.tls_insecure_skip_verify {
                return Err(BenchError::Invalid(
                    "--tls needs --tls-root-ca-file FILE (to verify the server) or \
                     --tls-insecure-skip-verify"
                        .into(),
                ));
            }
            Some(TlsClient::load(
                self.tls_root_ca_file.as_deref(),
                self.tls_cert.as_deref().zip(self.tls_key.as_deref()),
                self.tls_server_name.clone(),
            )?)
        } else {
            None
        };
        let compression = if self.snappy {
            Some(crate::transport::Compression::Snappy)
        } else if self.deflate {
            Some(crate::transport::Compression::Deflate(self.deflate_level))
        } else {
            None
        };
        Ok(Transport { tls, compression })
    }
}
