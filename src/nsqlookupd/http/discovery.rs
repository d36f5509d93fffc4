//! Discovery: `GET /lookup?topic=`, `/topics`, `/channels?topic=`, `/nodes`.
//!
//! As in Go, `topic` is not validated here, and `*` matches every topic.

use std::time::Instant;

use axum::extract::RawQuery;
use axum::response::Response;
use serde_json::{json, Value};

use super::params::Params;
use super::response::{v1, ApiError, Reply};
use super::State;
use crate::nsqlookupd::registration_db::{
    filter_by_active, keys, subkeys, Category, PeerInfo, Registration, WILDCARD,
};

/// A producer as `/lookup` lists it (Go's field order).
fn peer_json(info: &PeerInfo) -> Value {
    json!({
        "remote_address": info.remote_address,
        "hostname": info.hostname,
        "broadcast_address": info.broadcast_address,
        "tcp_port": info.tcp_port,
        "http_port": info.http_port,
        "version": info.version,
    })
}

/// The topic's channels and its active producers (not inactive, not tombstoned);
/// 400 `MISSING_ARG_TOPIC`, 404 `TOPIC_NOT_FOUND`.
pub async fn lookup(state: State, RawQuery(query): RawQuery) -> Response {
    v1((|| {
        let params = Params::parse(query.as_deref())?;
        let topic = params.require("topic", "MISSING_ARG_TOPIC")?;
        let options = &state.options;
        let db = state.db();
        if db.find_registrations(Category::Topic, topic, "").is_empty() {
            return Err(ApiError::new(404, "TOPIC_NOT_FOUND"));
        }
        let channels = subkeys(&db.find_registrations(Category::Channel, topic, WILDCARD));
        let producers = filter_by_active(
            db.find_producers(Category::Topic, topic, ""),
            Instant::now(),
            options.inactive_producer_timeout,
            options.tombstone_lifetime,
        );
        let producers: Vec<Value> = producers.iter().map(|p| peer_json(&p.peer.info)).collect();
        Ok(Reply::Json(json!({
            "channels": channels,
            "producers": producers,
        })))
    })())
}

/// Every registered topic.
pub async fn topics(state: State) -> Response {
    let topics = keys(&state.db().find_registrations(Category::Topic, WILDCARD, ""));
    v1(Ok(Reply::Json(json!({ "topics": topics }))))
}

/// The topic's registered channels (none for an unknown topic); 400 `MISSING_ARG_TOPIC`.
pub async fn channels(state: State, RawQuery(query): RawQuery) -> Response {
    v1((|| {
        let params = Params::parse(query.as_deref())?;
        let topic = params.require("topic", "MISSING_ARG_TOPIC")?;
        let channels = subkeys(
            &state
                .db()
                .find_registrations(Category::Channel, topic, WILDCARD),
        );
        Ok(Reply::Json(json!({ "channels": channels })))
    })())
}

/// Every active nsqd (tombstoned ones included) with its topics and, for each topic, whether
/// it is tombstoned there.
pub async fn nodes(state: State) -> Response {
    let now = Instant::now();
    let options = &state.options;
    let db = state.db();
    let producers = filter_by_active(
        db.find_producers(Category::Client, "", ""),
        now,
        options.inactive_producer_timeout,
        std::time::Duration::ZERO,
    );
    let nodes: Vec<Value> = producers
        .iter()
        .map(|producer| {
            let info = &producer.peer.info;
            let topics: Vec<Registration> = db
                .lookup_registrations(&info.id)
                .into_iter()
                .filter(|r| r.is_match(Category::Topic, WILDCARD, ""))
                .collect();
            let tombstones: Vec<bool> = topics
                .iter()
                .map(|topic| {
                    db.producer(topic, &info.id)
                        .is_some_and(|p| p.is_tombstoned(now, options.tombstone_lifetime))
                })
                .collect();
            let mut node = peer_json(info);
            node["tombstones"] = json!(tombstones);
            node["topics"] = json!(keys(&topics));
            node
        })
        .collect();
    drop(db);
    v1(Ok(Reply::Json(json!({ "producers": nodes }))))
}
