//! `GET /meta/export` (rnsq only): the store's metadata as `nsqd.dat` JSON, from one
//! consistent snapshot. `rnsq meta export` calls it when a broker holds the data path.

use axum::response::Response;

use super::response::{v1, ApiError, Reply};
use super::State;
use crate::nsqd_dat;

/// The snapshot, rendered exactly as `nsqd.dat`.
pub async fn export(state: State) -> Response {
    let store = state.broker.store().clone();
    let result = tokio::task::spawn_blocking(move || store.snapshot()).await;
    v1(match result {
        Ok(Ok(metadata)) => Ok(Reply::Text(
            String::from_utf8_lossy(&nsqd_dat::render(&metadata)).into_owned(),
        )),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::internal(e)),
    })
}
