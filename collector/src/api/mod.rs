//! The HTTP API: `GET /healthz` and every route under `/api/v1/`, registered in
//! [`router`] and nowhere else, on one [`AppState`].
//!
//! `/api/v1/*` requires `Authorization: Bearer <token>` ([`caller::Caller`], the one
//! authentication prologue): the operator token (from `<data_dir>/operator.token`) sees
//! every organisation, an organisation's token sees only that organisation. A missing
//! or unknown token gets `401`; every failure has a JSON body `{"error": "..."}`
//! ([`error::ApiError`]).
//!
//! - [`devices`]: `GET /api/v1/devices`, `POST /api/v1/devices/{id}/wake`.
//! - [`reports`]: `GET /api/v1/reports/{consumption,renewal,compliance,setpoint,savings,
//!   compare,trajectory}`.
//! - [`policy`]: `GET|PUT /api/v1/policy`, `POST /api/v1/policy/replay`.
//! - [`rooms`]: `GET /api/v1/rooms`.
//! - [`openapi`]: `GET /api/v1/openapi.json`, the OpenAPI 3 description of every route.
//! - [`metrics`]: `GET /metrics` (Prometheus, its own optional token), with
//!   [`prometheus`] for the text format.

pub mod caller;
pub mod devices;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod params;
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
/// `GET /api/v1/reports/compare`.
pub const COMPARE_PATH: &str = "/api/v1/reports/compare";

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
    /// Every configured org's kind, size and headcount (the comparison between bodies).
    pub orgs: Arc<Vec<veille_domain::compare::OrgProfile>>,
}

/// `GET /api/v1/reports/trajectory`.
pub const TRAJECTORY_PATH: &str = "/api/v1/reports/trajectory";
/// `GET /api/v1/openapi.json`.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The routes, each registered through [`Routes::add`], which also writes down its
/// method and path: the one list [`registered`] returns and the OpenAPI document is
/// checked against, so a route cannot be added without the test seeing it.
struct Routes {
    router: Router<AppState>,
    list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    /// Registers `handler` for `verb` on `path` (several methods on one path merge).
    fn add<H, T>(mut self, verb: Verb, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        let route = match verb {
            Verb::Get => get(handler),
            Verb::Put => axum::routing::put(handler),
            Verb::Post => post(handler),
        };
        self.router = self.router.route(path, route);
        self.list.push((verb.as_str(), path));
        self
    }
}

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Get,
    Put,
    Post,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Put => "PUT",
            Verb::Post => "POST",
        }
    }
}

fn build() -> Routes {
    Routes {
        router: Router::new().route("/healthz", get(healthz)),
        list: Vec::new(),
    }
    .add(Verb::Get, DEVICES_PATH, devices::list)
    .add(Verb::Get, CONSUMPTION_PATH, reports::consumption)
    .add(Verb::Get, RENEWAL_PATH, reports::renewal)
    .add(
        Verb::Get,
        crate::policy::COMPLIANCE_PATH,
        reports::compliance,
    )
    .add(Verb::Get, SETPOINT_PATH, reports::setpoint)
    .add(Verb::Get, ROOMS_PATH, rooms::list)
    .add(Verb::Get, COMPARE_PATH, reports::compare)
    .add(Verb::Get, TRAJECTORY_PATH, reports::trajectory)
    .add(Verb::Get, crate::policy::API_PATH, policy::get_policy)
    .add(Verb::Put, crate::policy::API_PATH, policy::put_policy)
    .add(Verb::Post, crate::policy::REPLAY_PATH, policy::replay)
    .add(Verb::Post, crate::policy::wake::API_PATH, devices::wake)
    .add(
        Verb::Get,
        crate::reports::savings::SAVINGS_PATH,
        reports::savings,
    )
    .add(Verb::Get, OPENAPI_PATH, openapi::document)
}

/// Every `/api/v1` route as (path, the methods it answers), in registration order:
/// what a test walking every door (the cross-org isolation test,
/// `tests/tests/cross_org.rs`) iterates, from the same list the router is built from.
pub fn routes() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (method, path) in registered() {
        match out.iter_mut().find(|(p, _)| *p == path) {
            Some((_, methods)) => methods.push(method),
            None => out.push((path, vec![method])),
        }
    }
    out
}

/// Every `/api/v1` route and `/healthz`, ready to merge into the HTTP app.
pub fn router(state: AppState) -> Router {
    build().router.with_state(state)
}

/// (method, path) of every `/api/v1` route the router registers, in registration order.
pub fn registered() -> Vec<(&'static str, &'static str)> {
    build().list
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
            ("GET", format!("{COMPARE_PATH}{period}"), ""),
            ("GET", TRAJECTORY_PATH.to_owned(), ""),
            ("GET", crate::policy::API_PATH.to_owned(), ""),
            ("PUT", crate::policy::API_PATH.to_owned(), draft),
            (
                "POST",
                format!("{}{period}", crate::policy::REPLAY_PATH),
                draft,
            ),
            (
                "POST",
                crate::policy::wake::API_PATH.replace("{id}", "pc-1"),
                "",
            ),
            (
                "GET",
                format!("{}?policy_version=1", crate::reports::savings::SAVINGS_PATH),
                "",
            ),
            ("GET", OPENAPI_PATH.to_owned(), ""),
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
            orgs: Arc::new(Vec::new()),
        };
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, router(state)).await });

        // This list covers every route the router registers.
        let listed: Vec<(&str, String)> = cases()
            .into_iter()
            .map(|(m, p, _)| (m, p.split('?').next().unwrap_or_default().to_owned()))
            .collect();
        // A `{param}` segment of a registered path matches any segment of a listed one.
        let matches = |template: &str, path: &str| {
            let (t, p): (Vec<&str>, Vec<&str>) =
                (template.split('/').collect(), path.split('/').collect());
            t.len() == p.len()
                && t.iter()
                    .zip(&p)
                    .all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}')))
        };
        for (m, p) in registered() {
            assert!(
                listed.iter().any(|(lm, lp)| *lm == m && matches(p, lp)),
                "{m} {p} is registered but not tested here"
            );
        }
        for (method, path, body) in cases() {
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
