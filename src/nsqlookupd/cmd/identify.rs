//! `IDENTIFY`: the nsqd says who it is; from then on it can register. The reply is this
//! lookupd's own identity.
//!
//! # Format
//! `IDENTIFY\n[4-byte BE size][JSON]` → JSON `{broadcast_address, hostname, http_port,
//! tcp_port, version}` (Go's key order). The body needs `broadcast_address`, `tcp_port`,
//! `http_port` and `version` (`hostname` is optional), else `E_BAD_BODY IDENTIFY missing
//! fields`; a second IDENTIFY is `E_INVALID cannot IDENTIFY again`; a size over
//! [`MAX_IDENTIFY_BODY`] is `E_BAD_BODY IDENTIFY body too big <size> > <max>` (rnsq's bound,
//! in nsqd's words; Go has none).

use std::collections::BTreeMap;
use std::time::Instant;

use tokio::io::AsyncReadExt;

use super::{ClientError, CmdResult, Cx, MAX_IDENTIFY_BODY};
use crate::lookup_wire::{LookupdInfo, OK};
use crate::nsqlookupd::registration_db::{Peer, PeerInfo, Registration};
use crate::NSQ_VERSION;

fn bad_body(description: &str) -> ClientError {
    ClientError::new("E_BAD_BODY", description)
}

pub async fn exec(cx: &mut Cx<'_>) -> CmdResult {
    if cx.session.peer.is_some() {
        return Err(ClientError::new("E_INVALID", "cannot IDENTIFY again"));
    }
    let size = cx
        .reader
        .read_i32()
        .await
        .map_err(|_| bad_body("IDENTIFY failed to read body size"))?;
    let size = u64::try_from(size).map_err(|_| bad_body("IDENTIFY failed to read body"))?;
    if size > MAX_IDENTIFY_BODY {
        return Err(bad_body(&format!(
            "IDENTIFY body too big {size} > {MAX_IDENTIFY_BODY}"
        )));
    }
    // Grown as the bytes arrive, so that a size alone reserves nothing.
    let mut body = Vec::new();
    let read = (&mut *cx.reader).take(size).read_to_end(&mut body).await;
    if read.is_err() || body.len() as u64 != size {
        return Err(bad_body("IDENTIFY failed to read body"));
    }

    let remote = cx.session.remote.to_string();
    let fields = decode(&body).ok_or_else(|| bad_body("IDENTIFY failed to decode JSON body"))?;
    if fields.broadcast_address.is_empty()
        || fields.tcp_port == 0
        || fields.http_port == 0
        || fields.version.is_empty()
    {
        return Err(bad_body("IDENTIFY missing fields"));
    }
    let info = PeerInfo {
        id: remote.clone(),
        remote_address: remote,
        hostname: fields.hostname,
        broadcast_address: fields.broadcast_address,
        tcp_port: fields.tcp_port,
        http_port: fields.http_port,
        version: fields.version,
    };
    tracing::info!(
        broadcast_address = %info.broadcast_address,
        tcp_port = info.tcp_port,
        http_port = info.http_port,
        version = %info.version,
        "IDENTIFY"
    );
    let peer = Peer::new(info, Instant::now());
    cx.state
        .db_mut()
        .add_producer(Registration::client(), &peer);
    cx.session.peer = Some(peer);

    let reply = LookupdInfo {
        tcp_port: cx.state.tcp_address.port(),
        http_port: cx.state.http_address.port(),
        version: NSQ_VERSION.into(),
        broadcast_address: cx.state.options.broadcast_address.clone(),
        hostname: cx.state.hostname.clone(),
    };
    // Go marshals a map, whose keys come out sorted.
    let sorted = serde_json::to_value(&reply)
        .ok()
        .and_then(|v| serde_json::from_value::<BTreeMap<String, serde_json::Value>>(v).ok());
    Ok(sorted
        .and_then(|map| serde_json::to_vec(&map).ok())
        .unwrap_or_else(|| OK.to_vec()))
}

/// The IDENTIFY body's fields; absent ones are empty or 0.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields {
    hostname: String,
    broadcast_address: String,
    tcp_port: i64,
    http_port: i64,
    version: String,
}

/// Decodes the body as Go's `encoding/json` decodes it into nsqlookupd's peer struct: an
/// object (or `null`), keys matched without regard to case, `null` values and unknown keys
/// ignored, and a value of the wrong type refused. `None` when Go's decoder would fail.
fn decode(body: &[u8]) -> Option<Fields> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut fields = Fields::default();
    let object = match value {
        serde_json::Value::Null => return Some(fields),
        serde_json::Value::Object(object) => object,
        _ => return None,
    };
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        let key = key.to_ascii_lowercase();
        let text = || value.as_str().map(str::to_string);
        match key.as_str() {
            "hostname" => fields.hostname = text()?,
            "broadcast_address" => fields.broadcast_address = text()?,
            "version" => fields.version = text()?,
            // Overwritten with the connection's address, but still typed.
            "remote_address" => {
                text()?;
            }
            "tcp_port" => fields.tcp_port = value.as_i64()?,
            "http_port" => fields.http_port = value.as_i64()?,
            _ => {}
        }
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let full = br#"{"broadcast_address":"b","hostname":"h","tcp_port":4150,"http_port":4151,"version":"1.3.0","extra":[1]}"#;
        assert_eq!(
            decode(full),
            Some(Fields {
                hostname: "h".into(),
                broadcast_address: "b".into(),
                tcp_port: 4150,
                http_port: 4151,
                version: "1.3.0".into(),
            })
        );
        assert_eq!(decode(b"null"), Some(Fields::default()));
        assert_eq!(decode(br#"{"hostname":null}"#), Some(Fields::default()));
        assert_eq!(decode(br#"{"TCP_Port":7}"#).map(|f| f.tcp_port), Some(7));
        for bad in [
            &b"[]"[..],
            b"\"x\"",
            b"{",
            b"",
            br#"{"tcp_port":"4150"}"#,
            br#"{"tcp_port":1.5}"#,
            br#"{"version":1}"#,
            br#"{"remote_address":1}"#,
        ] {
            assert_eq!(decode(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
