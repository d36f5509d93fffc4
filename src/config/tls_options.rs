//! nsqd's TLS options (`--tls-*`, `--https-address`): their config-file keys, and Go's rules
//! that tie them together (a client auth policy turns TLS-required on; requiring TLS needs a
//! certificate and a key). The values' own types and spellings are in `tls_values`.
//!
//! The files themselves are read at start-up by [`crate::tls::TlsServer`], not here: a bad
//! file is a start-up error, a bad value a config error.

use std::path::PathBuf;

use crate::options::config_file::SetError;
use crate::options::value::{bad, string};
use crate::options::{listen_address, ConfigError};

use super::tls_values::{ClientAuthPolicy, TlsMinVersion, TlsRequired};

/// The TLS options. An empty path or policy in a flag or the file means "not set", as in Go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub root_ca_file: Option<PathBuf>,
    pub client_auth_policy: Option<ClientAuthPolicy>,
    /// After [`TlsOptions::resolve`]: `Required` whenever a client auth policy is set and
    /// `--tls-required` was not (Go's rule).
    pub required: TlsRequired,
    /// As given; `None` is Go's default (`tls1.0`). What is negotiated is never below TLS 1.2:
    /// see [`TlsOptions::effective_min_version`].
    pub min_version: Option<TlsMinVersion>,
    /// Where HTTPS listens when a certificate and key are set; empty: no HTTPS.
    pub https_address: String,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            cert: None,
            key: None,
            root_ca_file: None,
            client_auth_policy: None,
            required: TlsRequired::NotRequired,
            min_version: None,
            // Go listens on 0.0.0.0:4152; rnsq's listeners default to loopback.
            https_address: "127.0.0.1:4152".into(),
        }
    }
}

impl TlsOptions {
    /// Whether a certificate and key are configured, i.e. whether TLS can be offered.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }

    /// The lowest version negotiated: the one asked for, raised to TLS 1.2 (rustls speaks
    /// nothing older), and whether it was raised.
    pub fn effective_min_version(&self) -> (TlsMinVersion, bool) {
        match self.min_version {
            Some(v) if v >= TlsMinVersion::TLS1_2 => (v, false),
            Some(_) => (TlsMinVersion::TLS1_2, true),
            // Go's default is tls1.0; raising a default nobody asked for is not worth a warning.
            None => (TlsMinVersion::TLS1_2, false),
        }
    }

    /// Applies Go's rules and checks the options against each other.
    ///
    /// # Errors
    /// A [`ConfigError::BadValue`] naming the flag at fault: TLS required (or a client auth
    /// policy) without a certificate and key, only one of the two, `require-verify` without a
    /// root CA file, or a bad `--https-address`. The options are then to be discarded.
    pub fn resolve(&mut self) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| {
            Err(ConfigError::BadValue {
                origin: "option",
                key: key.into(),
                message,
            })
        };
        if self.client_auth_policy.is_some() && self.required == TlsRequired::NotRequired {
            self.required = TlsRequired::Required;
        }
        if !self.enabled() && self.required != TlsRequired::NotRequired {
            let key = match self.client_auth_policy {
                Some(_) => "tls-client-auth-policy",
                None => "tls-required",
            };
            return fail(
                key,
                "cannot require TLS client connections without --tls-cert and --tls-key".into(),
            );
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => return fail("tls-key", "must be given with --tls-cert".into()),
            (None, Some(_)) => return fail("tls-cert", "must be given with --tls-key".into()),
            _ => {}
        }
        if self.client_auth_policy == Some(ClientAuthPolicy::RequireVerify)
            && self.root_ca_file.is_none()
        {
            return fail(
                "tls-client-auth-policy",
                "require-verify needs --tls-root-ca-file to verify client certificates against"
                    .into(),
            );
        }
        if !self.https_address.is_empty() {
            if let Err(message) = listen_address(&self.https_address) {
                return fail("https-address", message);
            }
        }
        Ok(())
    }

    /// Sets one option by its config-file name; [`SetError::Unknown`] for a key that is not
    /// one of these.
    pub(crate) fn set_by_cfg_name(
        &mut self,
        key: &str,
        value: &toml::Value,
    ) -> Result<(), SetError> {
        let path = |value: &toml::Value| string(value).map(|s| (!s.is_empty()).then(|| s.into()));
        match key {
            "tls_cert" => self.cert = path(value)?,
            "tls_key" => self.key = path(value)?,
            "tls_root_ca_file" => self.root_ca_file = path(value)?,
            "tls_client_auth_policy" => {
                self.client_auth_policy = match string(value)?.as_str() {
                    "" => None,
                    s => Some(s.parse().map_err(SetError::Bad)?),
                }
            }
            // Go formats whatever the file holds (a bool, a string, 0 or 1) and parses that.
            "tls_required" => {
                let text = match value {
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::String(s) => s.clone(),
                    _ => return Err(bad("true, false or \"tcp-https\"")),
                };
                self.required = text.parse().map_err(SetError::Bad)?;
            }
            "tls_min_version" => {
                self.min_version = match string(value)?.as_str() {
                    "" => None,
                    s => Some(s.parse().map_err(SetError::Bad)?),
                }
            }
            "https_address" => self.https_address = string(value)?,
            _ => return Err(SetError::Unknown),
        }
        Ok(())
    }

    /// The option called `name` as Go's `GET /config/:opt` answers it: paths and the policy as
    /// strings (empty when unset), `tls_required` and `tls_min_version` as Go's numbers.
    pub fn get_by_cfg_name(&self, name: &str) -> Option<serde_json::Value> {
        use serde_json::json;
        let path = |p: &Option<PathBuf>| {
            json!(p
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default())
        };
        Some(match name {
            "tls_cert" => path(&self.cert),
            "tls_key" => path(&self.key),
            "tls_root_ca_file" => path(&self.root_ca_file),
            "tls_client_auth_policy" => json!(self.client_auth_policy.map_or("", |p| p.name())),
            "tls_required" => json!(self.required as i64),
            "tls_min_version" => json!(self.min_version.unwrap_or(TlsMinVersion::TLS1_0).0),
            "https_address" => json!(self.https_address),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_version_is_raised_to_tls1_2() {
        let raised = |v| {
            TlsOptions {
                min_version: v,
                ..TlsOptions::default()
            }
            .effective_min_version()
        };
        assert_eq!(raised(None), (TlsMinVersion::TLS1_2, false));
        assert_eq!(
            raised(Some(TlsMinVersion::TLS1_1)),
            (TlsMinVersion::TLS1_2, true)
        );
        assert_eq!(
            raised(Some(TlsMinVersion::TLS1_3)),
            (TlsMinVersion::TLS1_3, false)
        );
    }

    fn with_cert() -> TlsOptions {
        TlsOptions {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ..TlsOptions::default()
        }
    }

    #[test]
    fn a_policy_turns_tls_required_on_unless_set() {
        let mut opts = TlsOptions {
            client_auth_policy: Some(ClientAuthPolicy::Require),
            ..with_cert()
        };
        opts.resolve().unwrap();
        assert_eq!(opts.required, TlsRequired::Required);
        assert_eq!(opts.get_by_cfg_name("tls_required"), Some(2.into()));

        let mut opts = TlsOptions {
            client_auth_policy: Some(ClientAuthPolicy::Require),
            required: TlsRequired::ExceptHttp,
            ..with_cert()
        };
        opts.resolve().unwrap();
        assert_eq!(opts.required, TlsRequired::ExceptHttp);
    }

    #[test]
    fn refuses_what_go_refuses_naming_the_flag() {
        let cases = [
            (
                TlsOptions {
                    required: TlsRequired::Required,
                    ..TlsOptions::default()
                },
                "option `tls-required`: cannot require TLS",
            ),
            (
                TlsOptions {
                    client_auth_policy: Some(ClientAuthPolicy::Require),
                    ..TlsOptions::default()
                },
                "option `tls-client-auth-policy`: cannot require TLS",
            ),
            (
                TlsOptions {
                    key: None,
                    ..with_cert()
                },
                "option `tls-key`: must be given with --tls-cert",
            ),
            (
                TlsOptions {
                    client_auth_policy: Some(ClientAuthPolicy::RequireVerify),
                    ..with_cert()
                },
                "needs --tls-root-ca-file",
            ),
            (
                TlsOptions {
                    https_address: "nowhere".into(),
                    ..with_cert()
                },
                "option `https-address`",
            ),
        ];
        for (mut opts, want) in cases {
            let message = opts.resolve().unwrap_err().to_string();
            assert!(message.contains(want), "{want}: {message}");
        }
    }

    #[test]
    fn config_keys_and_their_values_read_back() {
        let mut opts = TlsOptions::default();
        let set = |o: &mut TlsOptions, key, text: &str| {
            let value: toml::Table = format!("v = {text}").parse().unwrap();
            o.set_by_cfg_name(key, &value["v"])
        };
        set(&mut opts, "tls_cert", "\"/c.pem\"").ok().unwrap();
        set(&mut opts, "tls_required", "true").ok().unwrap();
        assert_eq!(opts.required, TlsRequired::Required);
        set(&mut opts, "tls_required", "\"tcp-https\"")
            .ok()
            .unwrap();
        assert_eq!(opts.required, TlsRequired::ExceptHttp);
        set(&mut opts, "tls_required", "0").ok().unwrap();
        assert_eq!(opts.required, TlsRequired::NotRequired);
        assert!(set(&mut opts, "tls_required", "2").is_err());
        set(&mut opts, "tls_min_version", "\"tls1.3\"")
            .ok()
            .unwrap();
        assert!(set(&mut opts, "tls_min_version", "771").is_err());
        set(&mut opts, "tls_client_auth_policy", "\"require\"")
            .ok()
            .unwrap();
        assert!(set(&mut opts, "tls_client_auth_policy", "\"verify\"").is_err());
        assert!(matches!(
            set(&mut opts, "tls_bogus", "1"),
            Err(SetError::Unknown)
        ));

        assert_eq!(opts.get_by_cfg_name("tls_cert"), Some("/c.pem".into()));
        assert_eq!(opts.get_by_cfg_name("tls_key"), Some("".into()));
        assert_eq!(opts.get_by_cfg_name("tls_min_version"), Some(0x0304.into()));
        assert_eq!(
            TlsOptions::default().get_by_cfg_name("tls_min_version"),
            Some(769.into())
        );
        assert_eq!(
            opts.get_by_cfg_name("tls_client_auth_policy"),
            Some("require".into())
        );
        assert_eq!(
            opts.get_by_cfg_name("https_address"),
            Some("127.0.0.1:4152".into())
        );
    }
}
