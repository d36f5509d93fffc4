//! `AUTH`: authenticate with a secret the auth servers (`--auth-http-address`) judge; and the
//! check PUB, MPUB, DPUB and SUB make before they act ([`check`], Go's `CheckAuth`). Every
//! failure closes the connection; why an auth server failed is only logged, never told to the
//! client (as Go).
//!
//! # Format
//! `AUTH\n[4-byte size][secret]` →
//! `{"identity":"…","identity_url":"…","permission_count":N}`

use std::net::SocketAddr;

use super::{state, wrong_state, CmdResult, Cx};
use crate::auth::Peer;
use crate::broker::{client_state, AuthInfo};
use crate::protocol::{go_quote, read_body, read_size, ClientError};

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
    let secret = read_body(cx.reader, size as usize)
        .await
        .map_err(|_| ClientError::fatal("E_BAD_BODY", "AUTH failed to read body"))?;

    let mut grant = cx.session.auth.lock().await;
    if grant.has_authorizations() {
        return Err(ClientError::fatal("E_INVALID", "AUTH already set"));
    }
    let Some(client) = cx.auth else {
        return Err(ClientError::fatal("E_AUTH_DISABLED", "AUTH disabled"));
    };
    let peer = peer(cx);
    let result = until_exit(cx, grant.auth(client, &peer, secret)).await?;
    let state = match result {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(error = %e, "AUTH failed");
            return Err(ClientError::fatal("E_AUTH_FAILED", "AUTH failed"));
        }
    };
    let reply = serde_json::json!({
        "identity": state.identity,
        "identity_url": state.identity_url,
        "permission_count": state.authorizations.len(),
    });
    let info = AuthInfo {
        authed: !state.authorizations.is_empty(),
        identity: state.identity.clone(),
        identity_url: state.identity_url.clone(),
    };
    let authed = info.authed;
    cx.session.info.set_auth(info);
    if !authed {
        return Err(ClientError::fatal(
            "E_UNAUTHORIZED",
            "AUTH no authorizations found",
        ));
    }
    Ok(Some(go_json_escape(&reply.to_string()).into_bytes()))
}

/// Go's `CheckAuth` for `command` on `topic` and `channel` (empty for the publishes): nothing
/// when AUTH is disabled; else the client must hold a grant (`E_AUTH_FIRST`), asked again once
/// its TTL has passed (`E_AUTH_FAILED` if that fails), covering them (`E_UNAUTHORIZED`).
pub(super) async fn check(
    cx: &Cx<'_>,
    command: &str,
    topic: &str,
    channel: &str,
) -> Result<(), ClientError> {
    let Some(client) = cx.auth else {
        return Ok(());
    };
    let mut grant = cx.session.auth.lock().await;
    if !grant.has_authorizations() {
        return Err(ClientError::fatal(
            "E_AUTH_FIRST",
            format!("AUTH required before {command}"),
        ));
    }
    let peer = peer(cx);
    let grants = grant.grants();
    let allowed = until_exit(cx, grant.is_authorized(client, &peer, topic, channel)).await?;
    // Only a renewal changes what /stats shows; every other PUB leaves it alone.
    if let Some(state) = grant.state().filter(|_| grant.grants() != grants) {
        cx.session.info.set_auth(AuthInfo {
            authed: grant.has_authorizations(),
            identity: state.identity.clone(),
            identity_url: state.identity_url.clone(),
        });
    }
    match allowed {
        Ok(true) => Ok(()),
        Ok(false) => Err(ClientError::fatal(
            "E_UNAUTHORIZED",
            format!(
                "AUTH failed for {command} on {} {}",
                go_quote(topic.as_bytes()),
                go_quote(channel.as_bytes())
            ),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "AUTH failed");
            Err(ClientError::fatal("E_AUTH_FAILED", "AUTH failed"))
        }
    }
}

/// Runs an auth query unless the connection is told to end first (shutdown): a query can
/// take the whole request timeout, or forever with `--http-client-request-timeout 0`, and
/// must not hold up the broker's stop. Ending it leaves the grant held before in place.
async fn until_exit<T>(
    cx: &Cx<'_>,
    query: impl std::future::Future<Output = T>,
) -> Result<T, ClientError> {
    tokio::select! {
        result = query => Ok(result),
        _ = cx.session.exit.cancelled() => {
            Err(ClientError::fatal("E_AUTH_FAILED", "AUTH failed"))
        }
    }
}

/// What the auth servers are told about this connection: its IP, whether it is TLS, and the
/// client certificate's common name.
fn peer(cx: &Cx<'_>) -> Peer {
    let info = &cx.session.info;
    let remote_ip = info
        .remote_address
        .parse::<SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let tls = info.transport().tls;
    Peer {
        remote_ip,
        tls: tls.is_some(),
        common_name: tls.map(|t| t.client_common_name).unwrap_or_default(),
    }
}

/// JSON as Go's `json.Marshal` writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped (they can
/// only occur inside strings, so replacing them in the whole text is safe).
fn go_json_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_as_go_json_marshal() {
        assert_eq!(
            super::go_json_escape(r#"{"identity_url":"http://x/?a=<b>&c"}"#),
            r#"{"identity_url":"http://x/?a=\u003cb\u003e\u0026c"}"#
        );
    }
}
