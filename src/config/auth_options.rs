//! nsqd's AUTH options: the auth servers (`--auth-http-address`, config key
//! `auth_http_addresses`) and the HTTP client's timeouts (`--http-client-connect-timeout`,
//! `--http-client-request-timeout`), as flags, as config-file keys, and validated.
//!
//! nsqd 1.3.0 has no `--auth-http-request-method`: the request is always a GET.

use std::time::Duration;

use clap::Args;

use crate::options::config_file::SetError;
use crate::options::value::{bad, go_duration, string};
use crate::options::{duration, set_if_given, ConfigError};

/// The AUTH flags (flattened into [`super::NsqdArgs`]).
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// Auth server to ask about AUTH secrets: <addr>:<port> (meaning
    /// http://<addr>:<port>/auth) or a full URL (may be given multiple times; enables AUTH)
    #[arg(long = "auth-http-address", value_name = "ADDR")]
    pub auth_http_address: Vec<String>,
    /// Longest wait to connect to an auth server, 0 for none [default: 2s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub http_client_connect_timeout: Option<Duration>,
    /// Longest wait for an auth server's whole answer, 0 for none [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub http_client_request_timeout: Option<Duration>,
}

/// The resolved AUTH options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOptions {
    /// Empty: AUTH is disabled.
    pub http_addresses: Vec<String>,
    pub http_client_connect_timeout: Duration,
    pub http_client_request_timeout: Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            http_addresses: Vec::new(),
            http_client_connect_timeout: Duration::from_secs(2),
            http_client_request_timeout: Duration::from_secs(5),
        }
    }
}

impl AuthOptions {
    /// Overwrites each option whose flag was given; `--auth-http-address` given at all
    /// replaces the file's list.
    pub(super) fn apply_flags(&mut self, a: &AuthArgs) {
        if !a.auth_http_address.is_empty() {
            self.http_addresses = a.auth_http_address.clone();
        }
        set_if_given(
            &mut self.http_client_connect_timeout,
            &a.http_client_connect_timeout,
        );
        set_if_given(
            &mut self.http_client_request_timeout,
            &a.http_client_request_timeout,
        );
    }

    /// Sets the option called `key` (its config-file name); `None` when `key` is not one of
    /// these.
    pub(super) fn set_by_cfg_name(
        &mut self,
        key: &str,
        value: &toml::Value,
    ) -> Option<Result<(), SetError>> {
        let result = match key {
            "auth_http_addresses" => value
                .as_array()
                .ok_or_else(|| bad("a list of \"host:port\" or URL strings"))
                .and_then(|list| list.iter().map(string).collect())
                .map(|list| self.http_addresses = list),
            "http_client_connect_timeout" => {
                go_duration(value).map(|d| self.http_client_connect_timeout = d)
            }
            "http_client_request_timeout" => {
                go_duration(value).map(|d| self.http_client_request_timeout = d)
            }
            _ => return None,
        };
        Some(result)
    }

    /// The option called `name` as `GET /config/:opt` answers it (durations in nanoseconds);
    /// `None` when `name` is not one of these.
    pub(super) fn get_by_cfg_name(&self, name: &str) -> Option<serde_json::Value> {
        use serde_json::json;
        Some(match name {
            "auth_http_addresses" => json!(self.http_addresses),
            "http_client_connect_timeout" => {
                json!(self.http_client_connect_timeout.as_nanos() as u64)
            }
            "http_client_request_timeout" => {
                json!(self.http_client_request_timeout.as_nanos() as u64)
            }
            _ => return None,
        })
    }

    /// Refuses an auth address no request could ever be sent to (Go starts and then fails
    /// every AUTH).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for address in &self.http_addresses {
            crate::auth::check_address(address).map_err(|message| ConfigError::BadValue {
                origin: "option",
                key: "auth-http-address".into(),
                message,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::write;
    use crate::config::{NsqdArgs, NsqdOptions};
    use std::time::Duration;

    #[test]
    fn defaults_file_and_flags() {
        let opts = NsqdOptions::resolve(&NsqdArgs::default()).unwrap();
        assert!(opts.auth.http_addresses.is_empty());
        assert_eq!(
            opts.auth.http_client_connect_timeout,
            Duration::from_secs(2)
        );
        assert_eq!(
            opts.auth.http_client_request_timeout,
            Duration::from_secs(5)
        );

        let (_dir, path) = write(
            "auth_http_addresses = [\"a:4181\", \"https://b/auth\"]\nhttp_client_connect_timeout = \"1s\"\nhttp_client_request_timeout = 250\n",
        );
        let mut args = NsqdArgs {
            config: Some(path),
            ..Default::default()
        };
        let opts = NsqdOptions::resolve(&args).unwrap();
        assert_eq!(opts.auth.http_addresses, ["a:4181", "https://b/auth"]);
        assert_eq!(
            opts.auth.http_client_connect_timeout,
            Duration::from_secs(1)
        );
        assert_eq!(
            opts.auth.http_client_request_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(
            opts.get_by_cfg_name("http_client_request_timeout"),
            Some(serde_json::json!(250_000_000u64))
        );
        assert_eq!(
            opts.get_by_cfg_name("auth_http_addresses"),
            Some(serde_json::json!(["a:4181", "https://b/auth"]))
        );

        args.auth.auth_http_address = vec!["c:1".into()];
        args.auth.http_client_connect_timeout = Some(Duration::ZERO);
        let opts = NsqdOptions::resolve(&args).unwrap();
        assert_eq!(opts.auth.http_addresses, ["c:1"]);
        assert_eq!(opts.auth.http_client_connect_timeout, Duration::ZERO);
    }

    #[test]
    fn refuses_bad_values_naming_them() {
        for (text, expected) in [
            ("auth_http_addresses = \"a:1\"\n", "`auth_http_addresses`"),
            (
                "auth_http_addresses = [\"ftp://x/y\"]\n",
                "auth-http-address",
            ),
            (
                "http_client_connect_timeout = \"soon\"\n",
                "invalid duration",
            ),
            (
                "http_client_request_timeout = true\n",
                "`http_client_request_timeout`",
            ),
        ] {
            let (_dir, path) = write(text);
            let args = NsqdArgs {
                config: Some(path),
                ..Default::default()
            };
            let message = NsqdOptions::resolve(&args).unwrap_err().to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }
}
