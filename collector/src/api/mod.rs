//! The HTTP API: `GET /healthz` and every route under `/api/v1/`, registered in
//! [`router`] and nowhere else, on one [`AppState`].
//!
//! `/api/v1/*` requires `Authorization: Bearer <token>` ([`caller::Caller`], the one
//! authentication prologue): the operator token (from `<data_dir>/operator.token`) sees
//! every organisation, an organisation's token sees only that organisation. A missing
//! or unknown token gets `401`; every failure has a JSON body `{"error": "..."}`
//! ([`error::ApiError`]).
//!
//! - [`devices`]: `GET /api/v1/devices`.
//! - [`reports`]: `GET /api/v1/reports/{consumption,renewal,compliance,setpoint}`.
//! - [`policy`]: `GET|PUT /api/v1/policy`, `POST /api/v1/policy/replay`.
//! - [`rooms`]: `GET /api/v1/rooms`.
//! - [`metrics`]: `GET /metrics` (Prometheus, its own optional token), with
//!   [`prometheus`] for the text format.

pub mod caller;
pub mod devices;
pub mod error;
pub mod metrics;
pub mod policy;
pub mod prometheus;
pub mod reports;
pub mod rooms;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use veille_domain::energy::consumption::Context;
use veille_domain::renewal::report::RenewalContext;
use veille_proto::signing::SigningKey;

use crate::auth::Auth;
use crate::policy::cache::PolicyCache;
use crate::store::Store;

/// `GET /api/v1/devices`.
pub const DEVICES_PATH: &str = "/api/v1/devices";
/// `GET /api/v1/reports/consumption`.
pub const CONSUMPTION_PATH: &str = "/api/v1/reports/consumption";
/// `GET /api/v1/reports/renewal`.
pub const RENEWAL_PATH: &str = "/api/v1/reports/renewal";
/// `GET /api/v1/reports/setpoint`.
pub const SETPOINT_PATH: &str = "/api/v1/reports/setpoint";
/// `GET /api/v1/rooms`.
pub const ROOMS_PATH: &str = "/api/v1/rooms";

/// What every API handler may use: the store, who is who, and the report settings.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub auth: Arc<Auth>,
    /// Time zone, tariffs, grid factors and the power catalogue (per org).
    pub energy: Arc<Context>,
    /// Horizons and embodied figures.
    pub renewal: Arc<RenewalContext>,
    /// Signs the policies set over the API.
    pub policy_key: Arc<SigningKey>,
    /// The signed policies agents receive; updated when one is set.
    pub policies: Arc<PolicyCache>,
}

/// Every `/api/v1` route and `/healthz`, ready to merge into the HTTP app.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(DEVICES_PATH, get(devices::list))
        .route(CONSUMPTION_PATH, get(reports::consumption))
        .route(RENEWAL_PATH, get(reports::renewal))
        .route(crate::policy::COMPLIANCE_PATH, get(reports::compliance))
        .route(SETPOINT_PATH, get(reports::setpoint))
        .route(ROOMS_PATH, get(rooms::list))
        .route(
            crate::policy::API_PATH,
            get(policy::get_policy).put(policy::put_policy),
        )
        .route(crate::policy::REPLAY_PATH, post(policy::replay))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}
