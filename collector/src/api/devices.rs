//! `GET /api/v1/devices[?format=json|csv|table]`: the device registry (JSON array of
//! [`DeviceRecord`](veille_domain::devices::DeviceRecord) by default), for the token's
//! organisation (every organisation for the operator).
//!
//! `POST /api/v1/devices/{id}/wake[?org=O]`: queue a Wake-on-LAN request through an
//! awake relay agent of the device's subnet (`policy::wake`). An org token wakes its own
//! devices; the operator names the org (`?org=`, or the only org holding that id).
//! 200 with the queued request as JSON; 404 unknown device; 409 when no relay is awake
//! on its subnets or it reported no MAC/subnet.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use veille_domain::devices::{self, Format};

use crate::api::AppState;
use crate::api::caller::Caller;
use crate::api::error::{ApiError, blocking};
use crate::api::params::{DevicesQuery, WakeQuery};

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

pub async fn wake(
    State(state): State<AppState>,
    caller: Caller,
    Path(device): Path<String>,
    Query(q): Query<WakeQuery>,
) -> Result<Response, ApiError> {
    use crate::policy::wake::{WakeError, enqueue};
    let org = caller.scope(q.org, "device")?;
    let (store, policies) = (state.store.clone(), state.policies.clone());
    let queued = blocking("wake", move || {
        let org = match org {
            Some(o) => o,
            None => {
                let orgs: Vec<String> = store
                    .devices(None)?
                    .into_iter()
                    .filter(|d| d.device_id == device)
                    .map(|d| d.org)
                    .collect();
                match orgs.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        return Ok(Err(ApiError::bad_request(format!(
                            "{} orgs hold a device {device:?}: name one with ?org=",
                            orgs.len()
                        ))));
                    }
                }
            }
        };
        let now = crate::clock::now_ms();
        let q = enqueue(&store, &org, &device, now, "api");
        if q.is_ok() {
            // This collector's relays get it at their next Ack, not at the next refresh.
            policies.wakes.refresh(&store, now)?;
        }
        Ok::<_, WakeError>(q.map_err(|e| {
            if e.is_not_found() {
                ApiError::new(axum::http::StatusCode::NOT_FOUND, e.to_string())
            } else if e.is_usage() {
                ApiError::new(axum::http::StatusCode::CONFLICT, e.to_string())
            } else {
                ApiError::internal("wake", e)
            }
        }))
    })
    .await?
    .map_err(|e| ApiError::internal("wake", e))??;
    Ok(Json(queued).into_response())
}
