//! `GET /api/v1/rooms[?org=]`: the server rooms the caller may see (its own org's for an
//! org token; the org asked, or all, for the operator).

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::caller::Caller;
use crate::api::error::{ApiError, blocking};
use crate::api::params::ListParams;

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let org = caller.scope(p.org, "rooms")?;
    let store = state.store.clone();
    let rooms = blocking("room listing", move || {
        crate::store::rooms::rooms_of(&store, org.as_deref())
    })
    .await?
    .map_err(|e| ApiError::internal("listing rooms", e))?;
    Ok(Json(rooms).into_response())
}
