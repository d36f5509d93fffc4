//! `AUTH`: authenticate with a secret. No auth server can be configured yet, so after reading
//! the body it answers `E_AUTH_DISABLED`, as nsqd does without `--auth-http-address`.
//!
//! # Format
//! `AUTH\n[4-byte size][secret]`

use super::{state, wrong_state, CmdResult, Cx};
use crate::broker::client_state;
use crate::protocol::{read_body, read_size, ClientError};

pub async fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    if state(cx) != client_state::INIT {
        return Err(wrong_state("AUTH"));
    }
    if params.len() != 1 {
        return Err(ClientError::fatal(
            "E_INVALID",
            "AUTH invalid number of parameters",
        ));
    }
    let size = read_size(cx.reader)
        .await
        .map_err(|_| ClientError::fatal("E_BAD_BODY", "AUTH failed to read body size"))?;
    let max = cx.options.max_body_size;
    if i64::from(size) > max {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("AUTH body too big {size} > {max}"),
        ));
    }
    if size <= 0 {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("AUTH invalid body size {size}"),
        ));
    }
    read_body(cx.reader, size as usize)
        .await
        .map_err(|_| ClientError::fatal("E_BAD_BODY", "AUTH failed to read body"))?;
    Err(ClientError::fatal("E_AUTH_DISABLED", "AUTH disabled"))
}
