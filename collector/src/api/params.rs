//! The query-string parameters of every API route, as axum's `Query` decodes them
//! (serde_urlencoded into these types; a field absent from a type is ignored).
//!
//! One file that names nothing else of the collector (serde alone): the fuzz target
//! `api_query` compiles it as a module of its own (`#[path]`), so that it decodes into
//! the very types the routes declare without linking the collector, whose SQLite,
//! Parquet and Postgres clients would multiply the fuzz build's time under
//! AddressSanitizer (fuzz/README.md). The fields are `pub(crate)` for the same reason:
//! visible to the route handlers here, and to the fuzz target there.

use serde::Deserialize;

/// `GET /api/v1/devices`.
#[derive(Debug, Deserialize)]
pub struct DevicesQuery {
    pub(crate) format: Option<String>,
}

/// `POST /api/v1/devices/{id}/wake`.
#[derive(Debug, Deserialize)]
pub struct WakeQuery {
    pub(crate) org: Option<String>,
}

/// `GET /api/v1/policy`.
#[derive(Debug, Deserialize)]
pub struct ShowParams {
    pub(crate) format: Option<String>,
}

/// `GET /api/v1/reports/consumption`.
#[derive(Debug, Deserialize)]
pub struct ConsumptionParams {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) by: Option<String>,
    pub(crate) format: Option<String>,
    pub(crate) csv_dialect: Option<String>,
}

/// `GET /api/v1/reports/renewal`.
#[derive(Debug, Deserialize)]
pub struct FormatParams {
    pub(crate) format: Option<String>,
}

/// `GET /api/v1/reports/compliance` and `POST /api/v1/policy/replay`.
#[derive(Debug, Deserialize)]
pub struct PeriodParams {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) format: Option<String>,
}

/// `GET /api/v1/reports/setpoint`.
#[derive(Debug, Deserialize)]
pub struct SetpointParams {
    pub(crate) room: String,
    pub(crate) org: Option<String>,
    pub(crate) window_days: Option<u32>,
    pub(crate) adjust_outdoor: Option<bool>,
    pub(crate) format: Option<String>,
}

/// `GET /api/v1/reports/savings`.
#[derive(Debug, Deserialize)]
pub struct SavingsParams {
    pub(crate) policy_version: u64,
    pub(crate) org: Option<String>,
    pub(crate) enforced_from: Option<String>,
    pub(crate) format: Option<String>,
}

/// `GET /api/v1/reports/compare`.
#[derive(Debug, Deserialize)]
pub struct CompareParams {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) org: Option<String>,
    pub(crate) format: Option<String>,
}

/// `GET /api/v1/reports/trajectory`.
#[derive(Debug, Deserialize)]
pub struct TrajectoryParams {
    pub(crate) org: Option<String>,
    pub(crate) format: Option<String>,
}

/// `GET /api/v1/rooms`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    pub(crate) org: Option<String>,
}
