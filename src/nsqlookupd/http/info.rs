//! `GET /ping` (health), `GET /info` (version) and `GET /debug` (the whole registration DB).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::response::{plain, v1, Reply};
use super::State;
use crate::nsqlookupd::registration_db::unix_nanos;
use crate::NSQ_VERSION;

/// What Go reports as the Unix nanoseconds of a time never set (its zero time, year 1,
/// overflows int64 nanoseconds and wraps to this).
const GO_ZERO_TIME_UNIX_NANOS: i64 = (-62_135_596_800_i64).wrapping_mul(1_000_000_000);

/// Always `OK`: nsqlookupd keeps nothing that can fail.
pub async fn ping() -> Response {
    plain(StatusCode::OK, "OK".into())
}

/// `{"version": "1.3.0"}`.
pub async fn info() -> Response {
    v1(Ok(Reply::Json(json!({ "version": NSQ_VERSION }))))
}

/// Every registration that has producers, as `"<category>:<key>:<subkey>"` → its producers
/// with their last update and tombstone (Unix nanoseconds).
pub async fn debug(state: State) -> Response {
    let mut data: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    {
        let db = state.db();
        for (registration, producers) in db.iter() {
            let key = format!(
                "{}:{}:{}",
                registration.category.as_str(),
                registration.key,
                registration.subkey
            );
            for producer in producers {
                let info = &producer.peer.info;
                // Go's keys, sorted as Go writes a map.
                data.entry(key.clone()).or_default().push(json!({
                    "broadcast_address": info.broadcast_address,
                    "hostname": info.hostname,
                    "http_port": info.http_port,
                    "id": info.id,
                    "last_update": unix_nanos(producer.peer.last_update()),
                    "tcp_port": info.tcp_port,
                    "tombstoned": producer.tombstoned_at().is_some(),
                    "tombstoned_at": producer
                        .tombstoned_at()
                        .map_or(GO_ZERO_TIME_UNIX_NANOS, unix_nanos),
                    "version": info.version,
                }));
            }
        }
    }
    v1(Ok(Reply::Json(json!(data))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_zero_time() {
        assert_eq!(GO_ZERO_TIME_UNIX_NANOS, -6_795_364_578_871_345_152);
    }
}
