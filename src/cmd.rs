//! The V2 commands, one file each, and the dispatch from a command line to its handler.
//!
//! A handler reads any body it needs from the connection's [`Inbound`] bytes (behind the
//! command's read deadline, which a stalled body read fails as it fails the line), does its work
//! through the broker, and returns the response frame's data (`None`: no response) or a
//! [`ClientError`]. IDENTIFY may also ask the connection to upgrade its transport
//! ([`Reply::Upgrade`]); commands never see the socket.

mod auth;
mod cls;
pub(crate) mod dpub;
mod fin;
pub(crate) mod identify;
pub(crate) mod mpub;
mod nop;
pub(crate) mod publish;
mod rdy;
mod req;
mod sub;
mod touch;

pub use mpub::split_messages;

use std::sync::Arc;

use crate::broker::{Broker, Channel, Topic};
use crate::config::{NsqdOptions, TlsRequired};
use crate::protocol::ClientError;
use crate::read_deadline::Timed;
use crate::session::Session;
use crate::transport::{Compression, Inbound};

/// What a command may use.
pub struct Cx<'a> {
    pub broker: &'a Arc<Broker>,
    pub options: &'a NsqdOptions,
    pub session: &'a Arc<Session>,
    /// The command's bytes, under the deadline the connection armed for this command.
    pub reader: &'a mut Timed<Inbound>,
    /// Whether the broker can offer TLS (it has a certificate).
    pub tls_available: bool,
    /// What the transport has negotiated so far.
    pub transport: Negotiated,
    /// The auth servers' client; `None`: AUTH is disabled.
    pub auth: Option<&'a crate::auth::AuthClient>,
}

/// The connection's transport upgrades so far (IDENTIFY grants each at most once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negotiated {
    pub tls: bool,
    pub compressed: bool,
}

/// A command's outcome: the response frame's data, if any.
pub type CmdResult = Result<Option<Vec<u8>>, ClientError>;

/// What the connection does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Nothing,
    /// Send this response frame.
    Response(Vec<u8>),
    /// Send this response frame in the transport as it is, then upgrade: TLS first (then an
    /// `OK` inside it), then the compression (then an `OK`, compressed).
    Upgrade {
        response: Vec<u8>,
        tls: bool,
        compression: Option<Compression>,
    },
}

impl From<Option<Vec<u8>>> for Reply {
    fn from(response: Option<Vec<u8>>) -> Self {
        response.map_or(Reply::Nothing, Reply::Response)
    }
}

/// Runs the command named by `params[0]`.
pub async fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> Result<Reply, ClientError> {
    let name = params.first().copied().unwrap_or_default();
    if name == b"IDENTIFY" {
        return identify::exec(cx, params).await;
    }
    // Go checks this before it even knows the command, so an unknown one hears it too.
    if cx.options.tls.required != TlsRequired::NotRequired && !cx.transport.tls {
        return Err(ClientError::fatal(
            "E_INVALID",
            format!(
                "cannot {} in current state (TLS required)",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    run(cx, name, params).await.map(Reply::from)
}

async fn run(cx: &mut Cx<'_>, name: &[u8], params: &[&[u8]]) -> CmdResult {
    match name {
        b"FIN" => fin::exec(cx, params),
        b"RDY" => rdy::exec(cx, params),
        b"REQ" => req::exec(cx, params),
        b"PUB" => publish::exec(cx, params).await,
        b"MPUB" => mpub::exec(cx, params).await,
        b"DPUB" => dpub::exec(cx, params).await,
        b"NOP" => nop::exec(cx, params),
        b"TOUCH" => touch::exec(cx, params),
        b"SUB" => sub::exec(cx, params).await,
        b"CLS" => cls::exec(cx, params),
        b"AUTH" => auth::exec(cx, params).await,
        _ => Err(ClientError::fatal(
            "E_INVALID",
            format!("invalid command {}", String::from_utf8_lossy(name)),
        )),
    }
}

/// The client's state.
fn state(cx: &Cx<'_>) -> u8 {
    cx.session
        .info
        .state
        .load(std::sync::atomic::Ordering::Acquire)
}

/// `E_INVALID cannot <CMD> in current state`.
fn wrong_state(command: &str) -> ClientError {
    ClientError::fatal("E_INVALID", format!("cannot {command} in current state"))
}

/// The subscription FIN, REQ and TOUCH act on (they are only valid once subscribed).
fn subscription<'a>(cx: &'a Cx<'_>) -> Option<&'a (Arc<Topic>, Arc<Channel>)> {
    cx.session.subscription.get()
}

/// Reads a 16-byte message ID parameter (`E_INVALID Invalid Message ID` otherwise).
fn message_id(param: &[u8]) -> Result<crate::message::MessageId, ClientError> {
    param
        .try_into()
        .map_err(|_| ClientError::fatal("E_INVALID", "Invalid Message ID"))
}

/// The ID as text, for error descriptions.
fn id_text(id: &[u8]) -> String {
    String::from_utf8_lossy(id).into_owned()
}
