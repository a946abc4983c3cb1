//! The HTTP server: `GET /healthz` and the read API under `/api/v1/`.
//!
//! `/api/v1/*` requires `Authorization: Bearer <token>`: the operator token (from
//! `<data_dir>/operator.token`) sees every organisation, an organisation's token sees
//! only that organisation. A missing or unknown token gets `401` with a JSON body
//! `{"error": "..."}`.
//!
//! - `GET /api/v1/devices[?format=json|csv|table]`: the device registry (JSON array of
//!   [`DeviceRecord`](veille_domain::devices::DeviceRecord) by default).
//! - `GET /api/v1/reports/consumption?from=&to=[&by=][&format=][&csv_dialect=]`: the
//!   consumption report (see [`veille_domain::energy::consumption`]).
//! - `GET /api/v1/reports/renewal[?format=json|csv|table]`: the renewal report (see
//!   [`veille_domain::renewal::report`]), served by [`renewal_router`].

pub mod metrics;
pub mod prometheus;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::auth::{Auth, Principal, bearer_token};
use crate::reports::{self, ConsumptionQuery, OutputFormat, ReportError};
use crate::store::Store;
use veille_domain::devices::{self, Format};
use veille_domain::energy::consumption::{Context, GroupBy};
use veille_domain::renewal::report::RenewalContext;

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    auth: Arc<Auth>,
    reports: Arc<Context>,
}

/// The HTTP routes, ready for `axum::serve`.
pub fn router(store: Arc<Store>, auth: Arc<Auth>, reports: Arc<Context>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/reports/consumption", get(consumption))
        .with_state(AppState {
            store,
            auth,
            reports,
        })
}

#[derive(Debug, Deserialize)]
struct ConsumptionParams {
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
    format: Option<String>,
    csv_dialect: Option<String>,
}

/// `GET /api/v1/reports/consumption?from=YYYY-MM-DD&to=YYYY-MM-DD[&by=..][&format=..]
/// [&csv_dialect=plain|excel-fr]`: the same output as `veille-collector report
/// consumption`, for the token's organisation (all of them for the operator).
async fn consumption(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ConsumptionParams>,
) -> Response {
    let principal = match authenticate(&state, &headers) {
        Ok(p) => p,
        Err(reason) => return error(StatusCode::UNAUTHORIZED, reason),
    };
    let (Some(from), Some(to)) = (p.from, p.to) else {
        return error(
            StatusCode::BAD_REQUEST,
            "from and to (YYYY-MM-DD) are required",
        );
    };
    let parsed = (|| -> Result<ConsumptionQuery, ReportError> {
        Ok(ConsumptionQuery {
            from,
            to,
            by: p.by.as_deref().unwrap_or("org").parse::<GroupBy>()?,
            format: OutputFormat::parse(p.format.as_deref().unwrap_or("json"))?,
            dialect: reports::parse_dialect(p.csv_dialect.as_deref().unwrap_or("plain"))?,
        })
    })();
    let query = match parsed {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let org = match principal {
        Principal::Operator => None,
        Principal::Org(id) => Some(id),
    };
    let (store, ctx) = (state.store.clone(), state.reports.clone());
    let format = query.format;
    let done = tokio::task::spawn_blocking(move || {
        reports::consumption_output(&store, &ctx, org.as_deref(), &query, crate::clock::now_ms())
    })
    .await;
    match done {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Ok(Err(ReportError::Consumption(e))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "consumption report failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "consumption report task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

#[derive(Clone)]
struct RenewalState {
    store: Arc<Store>,
    auth: Arc<Auth>,
    ctx: Arc<RenewalContext>,
}

/// `GET /api/v1/reports/renewal`, merged into [`router`]'s app by the server. Kept
/// apart so the renewal context does not widen `router`'s signature.
pub fn renewal_router(store: Arc<Store>, auth: Arc<Auth>, ctx: Arc<RenewalContext>) -> Router {
    Router::new()
        .route("/api/v1/reports/renewal", get(renewal))
        .with_state(RenewalState { store, auth, ctx })
}

#[derive(Debug, Deserialize)]
struct RenewalParams {
    format: Option<String>,
}

/// `GET /api/v1/reports/renewal[?format=json|csv|table]` (JSON by default): the same
/// output as `veille-collector report renewal`, for the token's organisation (all of
/// them for the operator).
async fn renewal(
    State(state): State<RenewalState>,
    headers: HeaderMap,
    Query(p): Query<RenewalParams>,
) -> Response {
    let principal = match principal_of(&state.auth, &headers) {
        Ok(p) => p,
        Err(reason) => return error(StatusCode::UNAUTHORIZED, reason),
    };
    let format = match OutputFormat::parse(p.format.as_deref().unwrap_or("json")) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let org = match principal {
        Principal::Operator => None,
        Principal::Org(id) => Some(id),
    };
    let (store, ctx) = (state.store.clone(), state.ctx.clone());
    let done = tokio::task::spawn_blocking(move || {
        crate::reports::renewal::output(&store, &ctx, org.as_deref(), format, crate::clock::now_ms())
    })
    .await;
    match done {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "renewal report failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "renewal report task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
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
    principal_of(&state.auth, headers)
}

fn principal_of(auth: &Auth, headers: &HeaderMap) -> Result<Principal, &'static str> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match token.map(|t| auth.principal(t)) {
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
