//! The report routes: the same output as the CLI's `report …` verbs, for the token's
//! organisation (every organisation for the operator).
//!
//! - `GET /api/v1/reports/consumption?from=&to=[&by=][&format=][&csv_dialect=]`
//!   (see [`veille_domain::energy::consumption`]);
//! - `GET /api/v1/reports/renewal[?format=json|csv|table]` (see
//!   [`veille_domain::renewal::report`]);
//! - `GET /api/v1/reports/compliance?from=&to=[&format=]` (see
//!   [`veille_domain::policy::compliance`]);
//! - `GET /api/v1/reports/setpoint?room=[&org=][&window_days=][&adjust_outdoor=][&format=]`
//!   (see [`veille_domain::rooms::setpoint`]);
//! - `GET /api/v1/reports/compare?from=&to=[&org=][&format=]` (see
//!   [`veille_domain::compare`]): an org token gets its own line and its peers'
//!   quartiles, never another org's name; the operator gets every org ranked, or one
//!   org's view with `org=`;
//! - `GET /api/v1/reports/trajectory[?org=][&format=]` (see
//!   [`veille_domain::trajectory`]): each org's last twelve months against its kWh target.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use veille_domain::energy::consumption::GroupBy;
use veille_domain::rooms::setpoint::SetpointOptions;

use crate::api::AppState;
use crate::api::caller::Caller;
use crate::api::error::{ApiError, blocking};
use crate::api::params::{
    CompareParams, ConsumptionParams, FormatParams, PeriodParams, SavingsParams, SetpointParams,
    TrajectoryParams,
};
use crate::reports::{self, ConsumptionQuery, OutputFormat, ReportError};

/// `from` and `to`, both required.
fn period(from: Option<String>, to: Option<String>) -> Result<(String, String), ApiError> {
    match (from, to) {
        (Some(f), Some(t)) => Ok((f, t)),
        _ => Err(ApiError::bad_request(
            "from and to (YYYY-MM-DD) are required",
        )),
    }
}

pub async fn consumption(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ConsumptionParams>,
) -> Result<Response, ApiError> {
    let (from, to) = period(p.from, p.to)?;
    let query = (|| -> Result<ConsumptionQuery, ReportError> {
        Ok(ConsumptionQuery {
            from,
            to,
            by: p.by.as_deref().unwrap_or("org").parse::<GroupBy>()?,
            format: OutputFormat::parse(p.format.as_deref().unwrap_or("json"))?,
            dialect: reports::parse_dialect(p.csv_dialect.as_deref().unwrap_or("plain"))?,
        })
    })()
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let org = caller.own_org();
    let (store, ctx) = (state.store.clone(), state.energy.clone());
    let format = query.format;
    let body = blocking("consumption report", move || {
        reports::consumption_output(&store, &ctx, org.as_deref(), &query, crate::clock::now_ms())
    })
    .await?
    .map_err(|e| match e {
        ReportError::Consumption(e) => ApiError::bad_request(e.to_string()),
        e => ApiError::internal("consumption report", e),
    })?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

pub async fn renewal(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<FormatParams>,
) -> Result<Response, ApiError> {
    let format = OutputFormat::parse(p.format.as_deref().unwrap_or("json"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let org = caller.own_org();
    let (store, ctx) = (state.store.clone(), state.renewal.clone());
    let body = blocking("renewal report", move || {
        reports::renewal::output(&store, &ctx, org.as_deref(), format, crate::clock::now_ms())
    })
    .await?
    .map_err(|e| ApiError::internal("renewal report", e))?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

impl PeriodParams {
    /// `from`, `to` (required) and `format` (JSON by default; table, csv or json).
    pub fn checked(self) -> Result<(String, String, String), ApiError> {
        let (from, to) = period(self.from, self.to)?;
        let format = self.format.unwrap_or_else(|| "json".into());
        if !matches!(format.as_str(), "json" | "csv" | "table") {
            return Err(ApiError::bad_request("format: expected table, csv or json"));
        }
        Ok((from, to, format))
    }
}

/// The content type of a `table|csv|json` body.
pub fn content_type(format: &str) -> &'static str {
    match format {
        "csv" => "text/csv; charset=utf-8",
        "table" => "text/plain; charset=utf-8",
        _ => "application/json",
    }
}

pub async fn compliance(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<PeriodParams>,
) -> Result<Response, ApiError> {
    let (from, to, format) = p.checked()?;
    let org = caller.own_org();
    let (store, ctx) = (state.store.clone(), state.energy.clone());
    let f = format.clone();
    let body = blocking("compliance report", move || {
        reports::compliance::compliance_output(&store, &ctx, org.as_deref(), &from, &to, &f)
    })
    .await?
    .map_err(|e| {
        if e.is_usage() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::internal("compliance report", e)
        }
    })?;
    Ok(([(header::CONTENT_TYPE, content_type(&format))], body).into_response())
}

pub async fn setpoint(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<SetpointParams>,
) -> Result<Response, ApiError> {
    let org = caller.scope(p.org, "rooms")?;
    let format = match OutputFormat::parse(p.format.as_deref().unwrap_or("json")) {
        Ok(OutputFormat::Csv) => return Err(ApiError::bad_request("format: table or json")),
        Ok(f) => f,
        Err(e) => return Err(ApiError::bad_request(e.to_string())),
    };
    let opts = SetpointOptions {
        window_days: p.window_days.unwrap_or(14),
        adjust_outdoor: p.adjust_outdoor.unwrap_or(false),
        ..SetpointOptions::default()
    };
    let (store, ctx) = (state.store.clone(), state.energy.clone());
    let body = blocking("setpoint report", move || {
        reports::setpoint::setpoint_output(&store, &ctx, org.as_deref(), &p.room, &opts, format)
    })
    .await?
    .map_err(|e| match e {
        reports::setpoint::RoomError::NotFound(_) => {
            ApiError::new(axum::http::StatusCode::NOT_FOUND, e.to_string())
        }
        e if e.is_usage() => ApiError::bad_request(e.to_string()),
        e => ApiError::internal("setpoint report", e),
    })?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// `GET /api/v1/reports/savings?policy_version=N[&org=][&enforced_from=][&format=]`:
/// the proof of savings (`reports::savings`); an org token sees its own org.
pub async fn savings(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<SavingsParams>,
) -> Result<Response, ApiError> {
    use crate::reports::savings::{SavingsQuery, savings_output};
    let format = reports::OutputFormat::parse(p.format.as_deref().unwrap_or("json"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let enforced_from = match &p.enforced_from {
        None => None,
        Some(d) => Some(d.parse().map_err(|_| {
            ApiError::bad_request(format!("enforced_from {d:?}: expected YYYY-MM-DD"))
        })?),
    };
    let query = SavingsQuery {
        policy_version: p.policy_version,
        org: caller.scope(p.org, "policy")?,
        enforced_from,
        format,
    };
    let (store, ctx) = (state.store.clone(), state.energy.clone());
    let body = blocking("savings report", move || {
        savings_output(&store, &ctx, &query, crate::clock::now_ms())
    })
    .await?
    .map_err(|e| {
        if e.is_usage() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::internal("savings report", e)
        }
    })?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

pub async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<CompareParams>,
) -> Result<Response, ApiError> {
    let (from, to) = period(p.from, p.to)?;
    let format = OutputFormat::parse(p.format.as_deref().unwrap_or("json"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // An org token sees its own view only: the anonymity of its peers rests on this.
    let view = caller.scope(p.org, "comparison")?;
    let (store, energy, renewal, orgs) = (
        state.store.clone(),
        state.energy.clone(),
        state.renewal.clone(),
        state.orgs.clone(),
    );
    let body = blocking("comparison report", move || {
        reports::compare::compare_output(
            &store,
            &energy,
            &renewal,
            &orgs,
            &from,
            &to,
            view.as_deref(),
            format,
            crate::clock::now_ms(),
        )
    })
    .await?
    .map_err(|e| match e {
        ReportError::Consumption(e) => ApiError::bad_request(e.to_string()),
        e => ApiError::internal("comparison report", e),
    })?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

pub async fn trajectory(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<TrajectoryParams>,
) -> Result<Response, ApiError> {
    let format = OutputFormat::parse(p.format.as_deref().unwrap_or("json"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let view = caller.scope(p.org, "trajectory")?;
    let (store, energy, orgs) = (
        state.store.clone(),
        state.energy.clone(),
        state.orgs.clone(),
    );
    let body = blocking("trajectory report", move || {
        reports::trajectory::output(
            &store,
            &energy,
            &orgs,
            view.as_deref(),
            format,
            crate::clock::now_ms(),
        )
    })
    .await?
    .map_err(|e| ApiError::internal("trajectory report", e))?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}
