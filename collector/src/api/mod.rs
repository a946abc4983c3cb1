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
use axum::routing::{MethodRouter, get, post};
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

/// Every `/api/v1` route: path, the methods it answers, handler. The one list
/// [`router`] registers and [`routes`] publishes, so a test walking [`routes`] (the
/// cross-org isolation test, `tests/tests/cross_org.rs`) cannot miss a new route.
fn table() -> Vec<(
    &'static str,
    &'static [&'static str],
    MethodRouter<AppState>,
)> {
    vec![
        (DEVICES_PATH, &["GET"], get(devices::list)),
        (CONSUMPTION_PATH, &["GET"], get(reports::consumption)),
        (RENEWAL_PATH, &["GET"], get(reports::renewal)),
        (
            crate::policy::COMPLIANCE_PATH,
            &["GET"],
            get(reports::compliance),
        ),
        (SETPOINT_PATH, &["GET"], get(reports::setpoint)),
        (ROOMS_PATH, &["GET"], get(rooms::list)),
        (
            crate::policy::API_PATH,
            &["GET", "PUT"],
            get(policy::get_policy).put(policy::put_policy),
        ),
        (crate::policy::REPLAY_PATH, &["POST"], post(policy::replay)),
    ]
}

/// Every `/api/v1` route as (path, methods), from the table the router is built from.
pub fn routes() -> Vec<(&'static str, &'static [&'static str])> {
    table().into_iter().map(|(p, m, _)| (p, m)).collect()
}

/// Every `/api/v1` route and `/healthz`, ready to merge into the HTTP app.
pub fn router(state: AppState) -> Router {
    table()
        .into_iter()
        .fold(
            Router::new().route("/healthz", get(healthz)),
            |r, (path, _, h)| r.route(path, h),
        )
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    const ORG_TOKEN: &str = "acme-token-0123456789";
    const OPERATOR_TOKEN: &str = "operator-token-0123456789";

    /// Every `/api/v1` route as (method, path with a valid query, body).
    fn cases() -> Vec<(&'static str, String, &'static str)> {
        let period = "?from=2026-01-01&to=2026-01-31";
        let draft = r#"{"org":"acme","mode":"dry-run","idle_threshold_s":600,"warning_s":300,
            "windows":[{"days":["weekdays"],"start":"20:00","end":"07:00","time_zone":"Europe/Paris"}]}"#;
        vec![
            ("GET", DEVICES_PATH.to_owned(), ""),
            ("GET", format!("{CONSUMPTION_PATH}{period}"), ""),
            ("GET", RENEWAL_PATH.to_owned(), ""),
            (
                "GET",
                format!("{}{period}", crate::policy::COMPLIANCE_PATH),
                "",
            ),
            ("GET", format!("{SETPOINT_PATH}?room=r1"), ""),
            ("GET", ROOMS_PATH.to_owned(), ""),
            ("GET", crate::policy::API_PATH.to_owned(), ""),
            ("PUT", crate::policy::API_PATH.to_owned(), draft),
            (
                "POST",
                format!("{}{period}", crate::policy::REPLAY_PATH),
                draft,
            ),
        ]
    }

    /// The status of one raw HTTP/1.1 request (no client library: the header goes on
    /// the wire exactly as written).
    fn status(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> u16 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn every_api_route_accepts_the_same_bearer_header_forms() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = crate::config::Config::defaults().unwrap();
        let store = Arc::new(Store::open(&dir.path().join(crate::store::STORE_DIR)).unwrap());
        let key = crate::policy::load_or_create_key(dir.path()).unwrap();
        let state = AppState {
            policies: Arc::new(PolicyCache::load(&store, &key).unwrap()),
            store,
            auth: Arc::new(Auth::new(
                vec![("acme".into(), crate::auth::TokenHash::of(ORG_TOKEN))],
                crate::auth::TokenHash::of(OPERATOR_TOKEN),
            )),
            energy: Arc::new(crate::reports::context(&config).unwrap()),
            renewal: Arc::new(crate::reports::renewal::context(&config.renewal).unwrap()),
            policy_key: Arc::new(key),
        };
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, router(state)).await });

        let cases = cases();
        for (path, methods) in routes() {
            for m in methods {
                assert!(
                    cases
                        .iter()
                        .any(|(cm, cp, _)| cm == m && cp.split('?').next() == Some(path)),
                    "{m} {path} has no case here"
                );
            }
        }
        for (method, path, body) in cases {
            // Setting a policy is the operator's; everything else an org token may do.
            let token = if method == "PUT" {
                OPERATOR_TOKEN
            } else {
                ORG_TOKEN
            };
            for form in ["Bearer", "bearer", "BEARER", "bEaReR"] {
                for spaced in [format!("{form} {token}"), format!("  {form}   {token}  ")] {
                    let got = status(addr, method, &path, Some(&spaced), body);
                    assert!(
                        got != 401 && (200..500).contains(&got),
                        "{method} {path} with {spaced:?}: {got}"
                    );
                }
            }
            for refused in [
                None,
                Some(format!("Basic {token}")),
                Some("Bearer nope".into()),
                Some(token.to_owned()),
            ] {
                let got = status(addr, method, &path, refused.as_deref(), body);
                assert_eq!(got, 401, "{method} {path} with {refused:?}");
            }
        }
    }
}
