//! AUTH against HTTP auth servers (`--auth-http-address`), as nsqd 1.3.0 does it: the client
//! that asks the servers ([`AuthClient`], in `auth/client.rs`), what a server granted
//! ([`AuthState`], in `auth/state.rs`), and one connection's grant, asked again once its TTL
//! has passed ([`ConnAuth`]).
//!
//! The commands decide what the client hears; nothing here speaks the wire protocol.

mod client;
mod state;

pub use client::{
    check_address, endpoint, query_string, AllFailed, AuthClient, ClientBuildError, Peer,
    QueryError,
};
pub use state::{AuthState, Authorization, ReplyError};

use std::time::Instant;

/// One connection's AUTH: the secret it sent and what the auth server last granted.
#[derive(Debug, Default)]
pub struct ConnAuth {
    secret: Vec<u8>,
    state: Option<AuthState>,
    /// Grants received so far: tells a caller whether a check replaced the grant.
    grants: u64,
}

impl ConnAuth {
    /// Whether a grant with at least one authorization is held (Go's `HasAuthorizations`):
    /// what decides `AUTH already set`, `E_AUTH_FIRST` and `/stats`' `authed`.
    pub fn has_authorizations(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| !s.authorizations.is_empty())
    }

    /// The grant held, if any.
    pub fn state(&self) -> Option<&AuthState> {
        self.state.as_ref()
    }

    /// How many grants the servers have given this connection (each AUTH and each renewal).
    pub fn grants(&self) -> u64 {
        self.grants
    }

    /// Keeps `secret` and asks the servers about it (Go's `Auth`).
    ///
    /// # Errors
    /// [`AllFailed`] when no server answered validly; the grant held before (if any) stays.
    pub async fn auth(
        &mut self,
        client: &AuthClient,
        peer: &Peer,
        secret: Vec<u8>,
    ) -> Result<&AuthState, AllFailed> {
        self.secret = secret;
        self.query(client, peer).await
    }

    /// Whether the grant covers `topic` and `channel` (empty: publish), asking the servers
    /// again first if its TTL has passed (Go's `IsAuthorized`). `false` without a grant.
    ///
    /// # Errors
    /// [`AllFailed`] when the grant had expired and no server answered validly; the expired
    /// grant stays.
    pub async fn is_authorized(
        &mut self,
        client: &AuthClient,
        peer: &Peer,
        topic: &str,
        channel: &str,
    ) -> Result<bool, AllFailed> {
        let expired = match &self.state {
            None => return Ok(false),
            Some(state) => state.is_expired(Instant::now()),
        };
        if expired {
            self.query(client, peer).await?;
        }
        Ok(self
            .state
            .as_ref()
            .is_some_and(|s| s.is_allowed(topic, channel)))
    }

    async fn query(&mut self, client: &AuthClient, peer: &Peer) -> Result<&AuthState, AllFailed> {
        let state = client.query_any(peer, &self.secret).await?;
        self.grants += 1;
        Ok(self.state.insert(state))
    }
}
