//! The HTTP server: `GET /healthz` and the read API under `/api/v1/`.
//!
//! `/api/v1/*` requires `Authorization: Bearer <token>`: the operator token (from
//! `<data_dir>/operator.token`) sees every organisation, an organisation's token sees
//! only that organisation. A missing or unknown token gets `401` with a JSON body
//! `{"error": "..."}`.
//!
//! - `GET /api/v1/devices[?format=json|csv|table]`: the device registry (JSON array of
//!   [`DeviceRecord`](crate::devices::DeviceRecord) by default).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::auth::{Auth, Principal, bearer_token};
use crate::devices::{self, Format};
use crate::store::Store;

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    auth: Arc<Auth>,
}

/// The HTTP routes, ready for `axum::serve`.
pub fn router(store: Arc<Store>, auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/devices", get(list_devices))
        .with_state(AppState { store, auth })
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Deserialize)]
struct DevicesQuery {
    format: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The principal behind the request's bearer token, or the reason for a 401.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, &'static str> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match token.map(|t| state.auth.principal(t)) {
        Some(Some(p)) => Ok(p),
        Some(None) => Err("unknown token"),
        None => Err("missing token: send `Authorization: Bearer <operator or organisation token>`"),
    }
}

async fn list_devices(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<DevicesQuery>,
) -> Response {
    let principal = match authenticate(&state, &headers) {
        Ok(p) => p,
        Err(reason) => return error(StatusCode::UNAUTHORIZED, reason),
    };
    let format = match query.format {
        None => Format::Json,
        Some(f) => match f.parse::<Format>() {
            Ok(f) => f,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("format: {e}")),
        },
    };
    let store = state.store.clone();
    let org = match principal {
        Principal::Operator => None,
        Principal::Org(id) => Some(id),
    };
    let listed = tokio::task::spawn_blocking(move || store.devices(org.as_deref())).await;
    let mut records = match listed {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot list devices");
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        Err(e) => {
            tracing::error!(error = %e, "device listing task failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    devices::sort(&mut records);
    match format {
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
    }
}
