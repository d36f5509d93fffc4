//! The lookup protocol V1 commands, one file each, and the dispatch from a command line to its
//! handler.
//!
//! A handler reads any body it needs from the connection, does its work in the registration
//! DB, and returns the response's data or a [`ClientError`]. Every V1 error closes the
//! connection, as in Go nsqlookupd.

mod identify;
mod ping;
mod register;
mod unregister;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncBufRead;

use super::registration_db::Peer;
use super::LookupdState;
use crate::names;

/// A command's failure as the nsqd sees it: `"<code> <description>"` as the response, after
/// which the connection closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {description}")]
pub struct ClientError {
    pub code: &'static str,
    pub description: String,
}

impl ClientError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        ClientError {
            code,
            description: description.into(),
        }
    }

    /// The response's data.
    pub fn response_data(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    pub remote: SocketAddr,
    /// Set by IDENTIFY; the peer this connection registers as.
    pub peer: Option<Arc<Peer>>,
}

impl Session {
    pub fn new(remote: SocketAddr) -> Self {
        Session { remote, peer: None }
    }

    /// The identified peer, or `E_INVALID client must IDENTIFY`.
    fn identified(&self) -> Result<Arc<Peer>, ClientError> {
        self.peer
            .clone()
            .ok_or_else(|| ClientError::new("E_INVALID", "client must IDENTIFY"))
    }
}

/// What a command may use.
pub struct Cx<'a> {
    pub state: &'a Arc<LookupdState>,
    pub session: &'a mut Session,
    /// The connection's buffered bytes after the command line.
    pub reader: &'a mut (dyn AsyncBufRead + Unpin + Send),
}

/// The largest IDENTIFY body accepted: an nsqd's is a couple of hundred bytes of JSON. (Go
/// allocates whatever size the peer announces, up to 2 GiB.)
pub const MAX_IDENTIFY_BODY: u64 = 64 * 1024;

/// A command's outcome: the response's data.
pub type CmdResult = Result<Vec<u8>, ClientError>;

/// Runs the command named by `params[0]`; `params` is the command line, trimmed and split on
/// single spaces.
pub async fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    let name = params.first().copied().unwrap_or_default();
    let args = params.get(1..).unwrap_or_default();
    match name {
        b"PING" => Ok(ping::exec(cx)),
        b"IDENTIFY" => identify::exec(cx).await,
        b"REGISTER" => register::exec(cx, args),
        b"UNREGISTER" => unregister::exec(cx, args),
        _ => Err(ClientError::new(
            "E_INVALID",
            format!("invalid command {}", String::from_utf8_lossy(name)),
        )),
    }
}

/// REGISTER's and UNREGISTER's arguments: `<topic> [<channel>]`, validated (an empty channel
/// is none). Extra arguments are ignored, as Go does.
fn topic_and_channel<'p>(
    command: &str,
    args: &[&'p [u8]],
) -> Result<(&'p str, Option<&'p str>), ClientError> {
    let Some(topic) = args.first() else {
        return Err(ClientError::new(
            "E_INVALID",
            format!("{command} insufficient number of params"),
        ));
    };
    let channel = args.get(1).copied().unwrap_or_default();
    let topic = std::str::from_utf8(topic)
        .ok()
        .filter(|t| names::is_valid_topic_name(t))
        .ok_or_else(|| {
            ClientError::new(
                "E_BAD_TOPIC",
                format!(
                    "{command} topic name '{}' is not valid",
                    String::from_utf8_lossy(topic)
                ),
            )
        })?;
    if channel.is_empty() {
        return Ok((topic, None));
    }
    let channel = std::str::from_utf8(channel)
        .ok()
        .filter(|c| names::is_valid_channel_name(c))
        .ok_or_else(|| {
            ClientError::new(
                "E_BAD_CHANNEL",
                format!(
                    "{command} channel name '{}' is not valid",
                    String::from_utf8_lossy(channel)
                ),
            )
        })?;
    Ok((topic, Some(channel)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topic_and_channel_as_go() {
        assert_eq!(topic_and_channel("REGISTER", &[b"t"]), Ok(("t", None)));
        assert_eq!(
            topic_and_channel("REGISTER", &[b"t", b"c", b"extra"]),
            Ok(("t", Some("c")))
        );
        assert_eq!(topic_and_channel("REGISTER", &[b"t", b""]), Ok(("t", None)));
        assert_eq!(
            topic_and_channel("UNREGISTER", &[])
                .unwrap_err()
                .to_string(),
            "E_INVALID UNREGISTER insufficient number of params"
        );
        assert_eq!(
            topic_and_channel("REGISTER", &[b"a b!"])
                .unwrap_err()
                .to_string(),
            "E_BAD_TOPIC REGISTER topic name 'a b!' is not valid"
        );
        assert_eq!(
            topic_and_channel("REGISTER", &[b"", b"c"])
                .unwrap_err()
                .to_string(),
            "E_BAD_TOPIC REGISTER topic name '' is not valid"
        );
        assert_eq!(
            topic_and_channel("REGISTER", &[b"t", b"c*"])
                .unwrap_err()
                .to_string(),
            "E_BAD_CHANNEL REGISTER channel name 'c*' is not valid"
        );
    }
}
