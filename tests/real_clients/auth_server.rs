//! A real HTTP auth server (nsqd's `--auth-http-address` protocol) on `127.0.0.1:0`: it grants
//! publish and subscribe on every topic and channel to one secret, refuses any other with 403,
//! and records every query it received.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The secret the server grants.
pub const SECRET: &str = "real-client-secret";
/// The identity it answers for [`SECRET`]; `/stats` shows it as `auth_identity`.
pub const IDENTITY: &str = "real-client-identity";
/// The identity URL it answers; `/stats` shows it as `auth_identity_url`.
pub const IDENTITY_URL: &str = "http://auth.example/real-client";

type Queries = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// The running server; it stops when dropped.
pub struct AuthServer {
    pub address: SocketAddr,
    queries: Queries,
    stop: CancellationToken,
}

impl AuthServer {
    /// Binds `127.0.0.1:0` and serves `GET /auth` on a task that lives until the server is
    /// dropped.
    pub async fn start() -> AuthServer {
        let queries = Queries::default();
        let app = Router::new()
            .route("/auth", get(auth))
            .with_state(queries.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the auth server");
        let address = listener.local_addr().expect("auth server address");
        let stop = CancellationToken::new();
        tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        AuthServer {
            address,
            queries,
            stop,
        }
    }

    /// Every query string received so far, in order.
    pub fn queries(&self) -> Vec<HashMap<String, String>> {
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn auth(
    State(queries): State<Queries>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, StatusCode> {
    let granted = query.get("secret").map(String::as_str) == Some(SECRET);
    queries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(query);
    if !granted {
        return Err(StatusCode::FORBIDDEN);
    }
    Ok(Json(json!({
        "ttl": 3600,
        "identity": IDENTITY,
        "identity_url": IDENTITY_URL,
        "authorizations": [
            {"topic": ".*", "channels": [".*"], "permissions": ["subscribe", "publish"]}
        ],
    })))
}
