//! The values of nsqd's TLS flags, as Go nsqd 1.3.0 spells and numbers them: `--tls-required`,
//! `--tls-min-version` and `--tls-client-auth-policy`, each with its parsing.

use std::str::FromStr;

/// `--tls-required`: whether clients must upgrade to TLS. The numbers are Go's
/// (`TLSNotRequired`, `TLSRequiredExceptHTTP`, `TLSRequired`), which `GET /config/tls_required`
/// answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsRequired {
    #[default]
    NotRequired = 0,
    /// `tcp-https`: TCP clients must upgrade; plain HTTP still serves.
    ExceptHttp = 1,
    /// TCP clients must upgrade and plain HTTP answers 403 `TLS_REQUIRED`.
    Required = 2,
}

impl FromStr for TlsRequired {
    type Err = String;

    /// Go's spellings: `tcp-https`, or anything Go's `strconv.ParseBool` takes (`1`, `t`,
    /// `true`, `0`, `f`, `false`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp-https" => Ok(TlsRequired::ExceptHttp),
            "1" | "t" | "true" => Ok(TlsRequired::Required),
            "0" | "f" | "false" => Ok(TlsRequired::NotRequired),
            _ => Err(format!("expected true, false or tcp-https, got {s:?}")),
        }
    }
}

/// `--tls-min-version`, as Go's `tls.Version*` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TlsMinVersion(pub u16);

impl TlsMinVersion {
    pub const TLS1_0: TlsMinVersion = TlsMinVersion(0x0301);
    pub const TLS1_1: TlsMinVersion = TlsMinVersion(0x0302);
    pub const TLS1_2: TlsMinVersion = TlsMinVersion(0x0303);
    pub const TLS1_3: TlsMinVersion = TlsMinVersion(0x0304);

    /// Go's name for it (`tls1.2`).
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0301 => "tls1.0",
            0x0302 => "tls1.1",
            0x0303 => "tls1.2",
            _ => "tls1.3",
        }
    }
}

impl FromStr for TlsMinVersion {
    type Err = String;

    /// Go's table: `tls1.0`, `tls1.1`, `tls1.2`, `tls1.3`, in any case. Go's help text also
    /// lists `ssl3.0`, but nsqd 1.3.0 refuses it at start-up, and so does rnsq.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tls1.0" => Ok(TlsMinVersion::TLS1_0),
            "tls1.1" => Ok(TlsMinVersion::TLS1_1),
            "tls1.2" => Ok(TlsMinVersion::TLS1_2),
            "tls1.3" => Ok(TlsMinVersion::TLS1_3),
            _ => Err(format!(
                "expected tls1.0, tls1.1, tls1.2 or tls1.3, got {s:?} (nsqd 1.3.0 refuses ssl3.0 too)"
            )),
        }
    }
}

/// `--tls-client-auth-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthPolicy {
    /// `require`: a client certificate must be presented; it is not verified (Go's
    /// `RequireAnyClientCert`).
    Require,
    /// `require-verify`: a client certificate must be presented and chain to
    /// `--tls-root-ca-file`.
    RequireVerify,
}

impl ClientAuthPolicy {
    /// Go's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ClientAuthPolicy::Require => "require",
            ClientAuthPolicy::RequireVerify => "require-verify",
        }
    }
}

impl FromStr for ClientAuthPolicy {
    type Err = String;

    /// `require` or `require-verify`. Go takes any other word silently and then requests no
    /// client certificate at all; rnsq refuses it, since a misspelt policy would quietly turn
    /// client verification off.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "require" => Ok(ClientAuthPolicy::Require),
            "require-verify" => Ok(ClientAuthPolicy::RequireVerify),
            _ => Err(format!("expected require or require-verify, got {s:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_required_takes_gos_spellings() {
        for (text, want) in [
            ("true", TlsRequired::Required),
            ("TRUE", TlsRequired::Required),
            ("t", TlsRequired::Required),
            ("1", TlsRequired::Required),
            ("false", TlsRequired::NotRequired),
            ("F", TlsRequired::NotRequired),
            ("0", TlsRequired::NotRequired),
            ("tcp-https", TlsRequired::ExceptHttp),
            ("TCP-HTTPS", TlsRequired::ExceptHttp),
        ] {
            assert_eq!(text.parse::<TlsRequired>(), Ok(want), "{text}");
        }
        for text in ["yes", "2", "", "https"] {
            assert!(text.parse::<TlsRequired>().is_err(), "{text}");
        }
    }

    #[test]
    fn min_version_takes_gos_table_and_refuses_ssl3() {
        assert_eq!("TLS1.3".parse(), Ok(TlsMinVersion::TLS1_3));
        assert_eq!("tls1.0".parse(), Ok(TlsMinVersion::TLS1_0));
        let refused = "ssl3.0".parse::<TlsMinVersion>().unwrap_err();
        assert!(refused.contains("ssl3.0"), "{refused}");
    }
}
