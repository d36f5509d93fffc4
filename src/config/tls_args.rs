//! nsqd's TLS flags (`--tls-*`, `--https-address`, Go nsqd's names) and how the ones given
//! overwrite the TLS options read from the defaults and the config file.

use std::path::PathBuf;

use clap::Args;

use super::{ClientAuthPolicy, TlsMinVersion, TlsOptions, TlsRequired};
use crate::options::set_if_given;

/// The TLS flags; each optional so that one not given leaves the config file's value.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Path to the server's certificate (PEM, the chain after it), offered on TCP upgrade and
    /// HTTPS
    #[arg(long, value_name = "FILE", value_parser = any_path)]
    pub tls_cert: Option<PathBuf>,
    /// Path to the private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", value_parser = any_path)]
    pub tls_key: Option<PathBuf>,
    /// Path to the certificate authorities (PEM) that client certificates are verified against
    #[arg(long, value_name = "FILE", value_parser = any_path)]
    pub tls_root_ca_file: Option<PathBuf>,
    /// Client certificates: 'require' (any, unverified) or 'require-verify' (signed by
    /// --tls-root-ca-file); either turns --tls-required on
    #[arg(long, value_name = "POLICY", value_parser = policy)]
    pub tls_client_auth_policy: Option<::std::option::Option<ClientAuthPolicy>>,
    /// Whether clients must use TLS: true, false, or tcp-https (required on TCP only, plain
    /// HTTP still served) [default: false]
    #[arg(
        long,
        value_name = "BOOL|tcp-https",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub tls_required: Option<TlsRequired>,
    /// Lowest TLS version accepted: tls1.0, tls1.1, tls1.2 or tls1.3; below tls1.2 is raised
    /// to tls1.2 (with a warning) [default: tls1.0, i.e. tls1.2]
    #[arg(long, value_name = "VERSION", value_parser = min_version)]
    pub tls_min_version: Option<::std::option::Option<TlsMinVersion>>,
    /// <addr>:<port> to listen on for HTTPS clients, when --tls-cert is set; empty for none
    /// [default: 127.0.0.1:4152]
    #[arg(long, value_name = "ADDR")]
    pub https_address: Option<String>,
}

/// A path, empty allowed (clap's own path parser refuses it; Go reads it as "not set").
fn any_path(text: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(text))
}

/// An empty policy is no policy, as in Go.
fn policy(text: &str) -> Result<Option<ClientAuthPolicy>, String> {
    match text {
        "" => Ok(None),
        text => text.parse().map(Some),
    }
}

/// An empty version is Go's default.
fn min_version(text: &str) -> Result<Option<TlsMinVersion>, String> {
    match text {
        "" => Ok(None),
        text => text.parse().map(Some),
    }
}

/// An empty path is no path, as in Go.
fn path(given: &Option<PathBuf>) -> Option<Option<PathBuf>> {
    given
        .as_ref()
        .map(|p| (!p.as_os_str().is_empty()).then(|| p.clone()))
}

impl TlsOptions {
    /// Overwrites each option whose flag was given in `a`.
    pub(super) fn apply_flags(&mut self, a: &TlsArgs) {
        set_if_given(&mut self.cert, &path(&a.tls_cert));
        set_if_given(&mut self.key, &path(&a.tls_key));
        set_if_given(&mut self.root_ca_file, &path(&a.tls_root_ca_file));
        set_if_given(&mut self.client_auth_policy, &a.tls_client_auth_policy);
        set_if_given(&mut self.required, &a.tls_required);
        set_if_given(&mut self.min_version, &a.tls_min_version);
        set_if_given(&mut self.https_address, &a.https_address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tls: TlsArgs,
    }

    fn parse(args: &[&str]) -> Result<TlsOptions, String> {
        let cli = Cli::try_parse_from(std::iter::once("nsqd").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let mut opts = TlsOptions::default();
        opts.apply_flags(&cli.tls);
        Ok(opts)
    }

    #[test]
    fn flags_take_gos_values() {
        assert_eq!(
            parse(&["--tls-required"]).unwrap().required,
            TlsRequired::Required
        );
        assert_eq!(
            parse(&["--tls-required=tcp-https"]).unwrap().required,
            TlsRequired::ExceptHttp
        );
        assert_eq!(
            parse(&["--tls-required=false"]).unwrap().required,
            TlsRequired::NotRequired
        );
        let opts = parse(&[
            "--tls-cert=/c.pem",
            "--tls-key",
            "/k.pem",
            "--tls-min-version=tls1.3",
            "--tls-client-auth-policy=require-verify",
            "--https-address=",
        ])
        .unwrap();
        assert_eq!(opts.cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(opts.key, Some(PathBuf::from("/k.pem")));
        assert_eq!(opts.min_version, Some(TlsMinVersion::TLS1_3));
        assert_eq!(
            opts.client_auth_policy,
            Some(ClientAuthPolicy::RequireVerify)
        );
        assert_eq!(opts.https_address, "");
        // Empty values are Go's "not set".
        let opts = parse(&[
            "--tls-cert=",
            "--tls-min-version=",
            "--tls-client-auth-policy=",
        ]);
        assert_eq!(opts.unwrap(), TlsOptions::default());

        for bad in [
            "--tls-required=maybe",
            "--tls-min-version=ssl3.0",
            "--tls-client-auth-policy=verify",
        ] {
            let message = parse(&[bad]).unwrap_err();
            let flag = bad.split('=').next().unwrap();
            assert!(message.contains(flag), "{bad}: {message}");
        }
    }
}
