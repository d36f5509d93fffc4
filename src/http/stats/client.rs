//! One client in `GET /stats?format=json`, as Go nsqd's `ClientStats`: its identity, counters,
//! compression and TLS state, and the AUTH fields Go omits when empty.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::broker::ClientInfo;

/// A client as Go nsqd's `ClientStats` JSON.
pub(super) fn client_json(client: &ClientInfo) -> Value {
    let identity = client.identity();
    let transport = client.transport();
    let tls_up = transport.tls.is_some();
    let tls = transport.tls.unwrap_or_default();
    let pub_counts: Vec<Value> = client
        .pub_counts()
        .into_iter()
        .map(|(topic, count)| json!({"topic": topic, "count": count}))
        .collect();
    let mut value = json!({
        "client_id": identity.client_id,
        "hostname": identity.hostname,
        "version": "V2",
        "remote_address": client.remote_address,
        "state": client.state.load(Ordering::Relaxed),
        "ready_count": client.ready_count.load(Ordering::Relaxed),
        "in_flight_count": client.in_flight_count.load(Ordering::Relaxed),
        "message_count": client.message_count.load(Ordering::Relaxed),
        "finish_count": client.finish_count.load(Ordering::Relaxed),
        "requeue_count": client.requeue_count.load(Ordering::Relaxed),
        "connect_ts": client.connect_ts,
        "sample_rate": identity.sample_rate,
        "deflate": transport.deflate,
        "snappy": transport.snappy,
        "user_agent": identity.user_agent,
        "tls": tls_up,
        "tls_cipher_suite": tls.cipher_suite,
        "tls_version": tls.version,
        "tls_negotiated_protocol": tls.negotiated_protocol,
        "tls_negotiated_protocol_is_mutual": tls.negotiated_protocol_is_mutual,
    });
    // Go omits these when empty; they follow user_agent.
    let auth = client.auth();
    if let Some(fields) = value.as_object_mut() {
        let mut at = fields
            .keys()
            .position(|k| k == "user_agent")
            .map_or(fields.len(), |i| i + 1);
        for (key, field) in [
            ("authed", auth.authed.then(|| json!(true))),
            (
                "auth_identity",
                Some(json!(auth.identity)).filter(|_| !auth.identity.is_empty()),
            ),
            (
                "auth_identity_url",
                Some(json!(auth.identity_url)).filter(|_| !auth.identity_url.is_empty()),
            ),
        ] {
            if let Some(field) = field {
                fields.shift_insert(at, key.into(), field);
                at += 1;
            }
        }
    }
    if !pub_counts.is_empty() {
        value["pub_counts"] = Value::Array(pub_counts);
    }
    value
}
