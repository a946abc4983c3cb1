//! `GET /api/v1/devices[?format=json|csv|table]`: the device registry (JSON array of
//! [`DeviceRecord`](veille_domain::devices::DeviceRecord) by default), for the token's
//! organisation (every organisation for the operator).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use veille_domain::devices::{self, Format};

use crate::api::AppState;
use crate::api::caller::Caller;
use crate::api::error::{ApiError, blocking};

#[derive(Debug, Deserialize)]
pub struct DevicesQuery {
    format: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DevicesQuery>,
) -> Result<Response, ApiError> {
    let format = match query.format {
        None => Format::Json,
        Some(f) => f
            .parse::<Format>()
            .map_err(|e| ApiError::bad_request(format!("format: {e}")))?,
    };
    let store = state.store.clone();
    let org = caller.own_org();
    let mut records = blocking("device listing", move || store.devices(org.as_deref()))
        .await?
        .map_err(|e| ApiError::internal("listing devices", e))?;
    devices::sort(&mut records);
    Ok(match format {
        Format::Json => Json(records).into_response(),
        Format::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            devices::render_csv(&records),
        )
            .into_response(),
        Format::Table => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            devices::render_table(&records),
        )
            .into_response(),
    })
}
