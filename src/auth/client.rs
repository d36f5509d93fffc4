//! The HTTP client that asks auth servers about a secret: nsqd 1.3.0's request (`GET` with
//! `common_name`, `remote_ip`, `secret`, `tls` in the query, encoded as Go's `url.Values`),
//! its timeouts, its trust (only `--tls-root-ca-file` when given, else the system's roots),
//! and its way of trying several servers (from a random one on, each once).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::state::{AuthState, ReplyError};

/// The most of a reply body read; an auth reply is a few kilobytes, and a server sending
/// more must not exhaust memory.
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// Why the auth client could not be built (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("auth-http-address {reason}")]
    Address { address: String, reason: String },
    #[error("cannot read tls-root-ca-file {path}: {source}")]
    RootCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tls-root-ca-file {path}: no certificate could be read from it: {reason}")]
    RootCaContent { path: PathBuf, reason: String },
    #[error("cannot build the auth HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// Why one auth server gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Request(#[source] reqwest::Error),
    #[error("got response {status} {body:?}")]
    Status {
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("response body over {MAX_REPLY_BYTES} bytes")]
    TooBig,
    #[error("cannot follow 403 to https: {0}")]
    HttpsRedirect(String),
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// Every server failed: each address with its error, in the order tried. Its `Display` is
/// Go's `failed to auth against A - e1; failed to auth against B - e2`.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct AllFailed(pub Vec<(String, QueryError)>);

impl AllFailed {
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(address, e)| format!("failed to auth against {address} - {e}"))
            .collect();
        parts.join("; ")
    }
}

/// What nsqd tells an auth server about the client, besides its secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The client's IP address, without port.
    pub remote_ip: String,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The client certificate's common name; empty without one.
    pub common_name: String,
}

/// The auth servers and the HTTP client to ask them with. Built once at start-up; cheap to
/// share (the connection pool is inside).
#[derive(Debug)]
pub struct AuthClient {
    addresses: Vec<String>,
    http: reqwest::Client,
}

impl AuthClient {
    /// A client for `addresses` (`host:port`, meaning `http://host:port/auth`, or a full URL
    /// containing `://`), with Go's timeouts: `connect` for the TCP connect, `request` for the
    /// whole request (either `Duration::ZERO`: none, as in Go). `root_ca`: a PEM file whose
    /// certificates are the only ones trusted for `https` servers; `None` trusts the system's
    /// roots. This reads files, so call it off the async threads.
    ///
    /// # Errors
    /// An address that could not be a working URL, an unreadable or empty root CA file.
    pub fn new(
        addresses: &[String],
        connect: Duration,
        request: Duration,
        root_ca: Option<&Path>,
    ) -> Result<Self, ClientBuildError> {
        for address in addresses {
            check_address(address).map_err(|reason| ClientBuildError::Address {
                address: address.clone(),
                reason,
            })?;
        }
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if !connect.is_zero() {
            builder = builder.connect_timeout(connect);
        }
        if !request.is_zero() {
            builder = builder.timeout(request);
        }
        if let Some(path) = root_ca {
            let pem = std::fs::read(path).map_err(|source| ClientBuildError::RootCa {
                path: path.to_path_buf(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientBuildError::RootCaContent {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(ClientBuildError::RootCaContent {
                    path: path.to_path_buf(),
                    reason: "no PEM certificate found".into(),
                });
            }
            // Go's client TLS config replaces the system pool with the file's certificates.
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(ClientBuildError::Http)?;
        Ok(AuthClient {
            addresses: addresses.to_vec(),
            http,
        })
    }

    /// The configured addresses, as given.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// Asks the servers, starting at a random one and trying each once, until one gives a
    /// valid reply (Go's `QueryAnyAuthd`).
    ///
    /// # Errors
    /// [`AllFailed`] with every server's error when none answered validly.
    pub async fn query_any(&self, peer: &Peer, secret: &[u8]) -> Result<AuthState, AllFailed> {
        let n = self.addresses.len();
        let start = if n == 0 { 0 } else { fastrand::usize(..n) };
        let mut failures = Vec::new();
        for i in 0..n {
            let address = &self.addresses[(start + i) % n];
            match self.query(address, peer, secret).await {
                Ok(state) => return Ok(state),
                Err(e) => failures.push((address.clone(), e)),
            }
        }
        Err(AllFailed(failures))
    }

    /// Asks one server (Go's `QueryAuthd`), following one 403 from a plain-HTTP server to the
    /// `https_port` its body names, as Go's `GETV1` does.
    ///
    /// # Errors
    /// A [`QueryError`]: transport failure or timeout, a non-200 status, a bad reply.
    pub async fn query(
        &self,
        address: &str,
        peer: &Peer,
        secret: &[u8],
    ) -> Result<AuthState, QueryError> {
        let mut endpoint = endpoint(address, peer, secret);
        loop {
            let response = self
                .http
                .get(&endpoint)
                .header("Accept", "application/vnd.nsq; version=1.0")
                .send()
                .await
                .map_err(QueryError::Request)?;
            let status = response.status();
            let body = read_limited(response).await?;
            if status == reqwest::StatusCode::OK {
                return Ok(AuthState::from_reply(&body, Instant::now())?);
            }
            if status == reqwest::StatusCode::FORBIDDEN && !endpoint.starts_with("https") {
                endpoint = https_endpoint(&endpoint, &body).map_err(QueryError::HttpsRedirect)?;
                continue;
            }
            return Err(QueryError::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
    }
}

/// Reads a response body, refusing one over [`MAX_REPLY_BYTES`].
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, QueryError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(QueryError::Request)? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(QueryError::TooBig);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Refuses an address no request could ever be sent to (Go would accept it and fail every
/// AUTH): the URL it makes must parse, be `http` or `https`, and name a host.
///
/// # Errors
/// What is wrong with it, as text.
pub fn check_address(address: &str) -> Result<(), String> {
    let url = endpoint(address, &Peer::default(), b"");
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("{address:?}: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => return Err(format!("{address:?}: unsupported scheme {other:?}")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{address:?}: no host"));
    }
    Ok(())
}

/// The URL nsqd asks: `address?query` for a full URL, else `http://address/auth?query`.
pub fn endpoint(address: &str, peer: &Peer, secret: &[u8]) -> String {
    let query = query_string(peer, secret);
    if address.contains("://") {
        format!("{address}?{query}")
    } else {
        format!("http://{address}/auth?{query}")
    }
}

/// Go's `url.Values.Encode` of the request: keys sorted, values escaped as `QueryEscape`.
pub fn query_string(peer: &Peer, secret: &[u8]) -> String {
    let tls: &[u8] = if peer.tls { b"true" } else { b"false" };
    let pairs: [(&str, &[u8]); 4] = [
        ("common_name", peer.common_name.as_bytes()),
        ("remote_ip", peer.remote_ip.as_bytes()),
        ("secret", secret),
        ("tls", tls),
    ];
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        query_escape(value, &mut out);
    }
    out
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` kept, space as `+`, every other byte
/// as `%XX` (upper-case hex).
fn query_escape(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
}

/// The https URL a 403 body `{"https_port":N}` points to: same host and path, scheme https,
/// port N (Go's `httpsEndpoint`).
fn https_endpoint(endpoint: &str, body: &[u8]) -> Result<String, String> {
    let reply: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let port = match reply.get("https_port") {
        None | Some(serde_json::Value::Null) => 0,
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("bad https_port {p}"))?,
    };
    let mut url = reqwest::Url::parse(endpoint).map_err(|e| e.to_string())?;
    url.set_scheme("https")
        .map_err(|()| "cannot switch to https".to_string())?;
    url.set_port(Some(port))
        .map_err(|()| "cannot set the port".to_string())?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_gos_url_values_encoding() {
        let peer = Peer {
            remote_ip: "::1".into(),
            tls: false,
            common_name: String::new(),
        };
        let secret = b"s3cr3t a+b/c~d*e\xff";
        assert_eq!(
            endpoint("127.0.0.1:4181", &peer, secret),
            "http://127.0.0.1:4181/auth?common_name=&remote_ip=%3A%3A1&secret=s3cr3t+a%2Bb%2Fc~d%2Ae%FF&tls=false"
        );
        let peer = Peer {
            tls: true,
            common_name: "client one".into(),
            ..peer
        };
        let url = endpoint("https://auth.example/v1/check", &peer, secret);
        assert!(
            url.starts_with("https://auth.example/v1/check?common_name=client+one&remote_ip="),
            "{url}"
        );
        assert!(url.ends_with("&tls=true"), "{url}");
    }

    #[test]
    fn refuses_addresses_that_cannot_work() {
        let build =
            |a: &str| AuthClient::new(&[a.to_string()], Duration::ZERO, Duration::ZERO, None);
        assert!(build("127.0.0.1:4181").is_ok());
        assert!(build("auth.local:80").is_ok());
        assert!(build("https://auth.local/x").is_ok());
        for bad in ["ftp://auth.local/x", "http://", "a b:1"] {
            let message = build(bad).unwrap_err().to_string();
            assert!(message.starts_with("auth-http-address"), "{bad}: {message}");
        }
    }

    #[test]
    fn a_403_points_to_the_https_port() {
        assert_eq!(
            https_endpoint(
                "http://h:4151/auth?a=b",
                br#"{"message":"TLS_REQUIRED","https_port":4152}"#
            )
            .unwrap(),
            "https://h:4152/auth?a=b"
        );
        assert!(https_endpoint("http://h:1/auth", b"nope").is_err());
    }

    #[test]
    fn all_failed_reads_as_go() {
        let e = AllFailed(vec![
            ("a:1".into(), QueryError::TooBig),
            ("b:2".into(), QueryError::Reply(ReplyError::Ttl(0))),
        ]);
        assert_eq!(
            e.to_string(),
            format!(
                "failed to auth against a:1 - response body over {MAX_REPLY_BYTES} bytes; failed to auth against b:2 - invalid TTL 0 (must be >0)"
            )
        );
    }
}
