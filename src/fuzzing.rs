//! The parsers' entry points for the fuzz targets under `fuzz/`: each is what a server runs on
//! a peer's bytes or a file's, reachable over bytes in memory instead of a socket or a file.
//! The daemons never call this module; everything it names, they do. (`fuzz/README.md` says
//! what each target asserts.)

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

pub use crate::cmd::dpub::delay_param;
pub use crate::cmd::identify::{
    negotiate_settings, negotiate_upgrades, read_identify_body, IdentifyData, Offer,
};
pub use crate::cmd::mpub::{read_mpub_body, split_messages};
pub use crate::cmd::publish::{read_message_body, topic_param};
pub use crate::http::config::{parse_value, OptionChange};
pub use crate::http::params::Params;
pub use crate::http::publish::{is_binary, mpub_bodies, pub_request};
pub use crate::http::response::ApiError;

use crate::nsqlookupd::cmd::Session;
use crate::nsqlookupd::tcp::{leave, serve_commands};
use crate::nsqlookupd::LookupdState;

/// The address a fuzzed lookupd connection comes from.
pub const LOOKUPD_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 4150);

/// Runs nsqlookupd's V1 command loop over `input` (the bytes after the magic) as one
/// connection from [`LOOKUPD_PEER`], then ends the connection as the server does (its peer
/// leaves every registration). Returns what the server wrote; the future never waits when
/// `input` is all there is (reads from a slice and writes to a `Vec` are always ready).
pub async fn lookupd_connection(state: &Arc<LookupdState>, input: &[u8]) -> Vec<u8> {
    let mut session = Session::new(LOOKUPD_PEER);
    let mut reader = input;
    let mut out = Vec::new();
    // Writes to a Vec and reads from a slice do not fail: the loop ends on its own terms.
    // No read deadline: the input is all there, and there is no timer outside a runtime.
    let _ = serve_commands(state, &mut reader, &mut out, &mut session, |_| {}).await;
    leave(state, &session);
    out
}
