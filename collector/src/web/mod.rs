//! The built-in web page: server-rendered HTML for energy managers and sysadmins,
//! served by the collector's HTTP server (no separate service, no script, nothing
//! fetched from elsewhere: it works inside a closed network).
//!
//! - `GET /login`, `POST /login` (form field `token`: an org token or the operator
//!   token), `POST /logout`. A good token opens a session cookie
//!   ([`session`]); a wrong one gets `401` and the form again with a message; too many
//!   wrong ones from one address get `429` for a while ([`throttle`]).
//! - `GET /static/veille.css`: the stylesheet, a file so that the Content-Security-Policy
//!   (`crate::security`, on every response) allows no inline style.
//! - `GET /[?month=YYYY-MM][&org=]`: the overview (kWh, €, kgCO2e and their coverage
//!   this month, the 12-month trend, devices left on at night and at weekends, devices
//!   past renewal, the latest setpoint verdicts; for one org with a kWh target, its
//!   last twelve months against the trajectory).
//! - `GET /consumption?month=&by=site|group|class[&org=]`: the consumption report;
//!   `GET /consumption.csv?...[&csv_dialect=plain|excel-fr]`: its CSV, produced by the
//!   very function behind `veille-collector report consumption --format csv`.
//! - `GET /devices`, `GET /device/{org}/{device_id}`: the registry, and one device's
//!   last 7 days as a strip chart with its inventory.
//! - `GET /compare?month=[&org=]`: the comparison between bodies for the month (the
//!   figures of `report compare`): an org session sees its own indicators and its
//!   peers' quartiles; the operator's every org ranked, or one org's view.
//!
//! Every page needs a session: without one, `303` to `/login`. An org session sees its
//! org only; the operator's sees all, with an org picker. `?lang=fr|en` switches the
//! language (remembered in a cookie); otherwise `Accept-Language` decides.

pub mod data;
pub mod html;
pub mod i18n;
mod report_pages;
pub mod session;
pub mod svg;
pub mod throttle;
pub mod views;

use crate::config::web::WebConfig;
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::Extensions;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::auth::{Auth, Principal};
use crate::reports::{self, ConsumptionQuery, OutputFormat, ReportError};
use crate::security::ClientAddr;
use crate::store::Store;
use veille_domain::energy::consumption::{Context, GroupBy};
use veille_domain::renewal::report::RenewalContext;

use i18n::{Key, Lang};
use session::Sessions;
use throttle::LoginThrottle;
use views::OrgPicker;

#[derive(Clone)]
struct WebState {
    store: Arc<Store>,
    auth: Arc<Auth>,
    ctx: Arc<Context>,
    renewal: Arc<RenewalContext>,
    /// Every configured org's kind and size (the comparison page).
    profiles: Arc<Vec<veille_domain::compare::OrgProfile>>,
    sessions: Arc<Sessions>,
    /// Refused logins per client address.
    throttle: Arc<LoginThrottle>,
    /// The collector serves TLS: session cookies get `Secure`.
    tls: bool,
}

/// The web page's routes, merged into the HTTP server's router. `tls`: the port
/// serves TLS, so cookies must never travel in plaintext.
pub fn router(
    config: &WebConfig,
    store: Arc<Store>,
    auth: Arc<Auth>,
    ctx: Arc<Context>,
    renewal: Arc<RenewalContext>,
    profiles: Arc<Vec<veille_domain::compare::OrgProfile>>,
    tls: bool,
) -> Router {
    if !config.enabled {
        return Router::new();
    }
    let sessions = Arc::new(Sessions::new(
        i64::from(config.session_minutes.max(1)) * 60_000,
    ));
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/consumption", get(consumption))
        .route("/consumption.csv", get(consumption_csv))
        .route("/devices", get(devices))
        .route("/savings", get(savings))
        .route("/compare", get(compare))
        .route("/device/{org}/{device_id}", get(device))
        .route("/renewal", get(report_pages::renewal))
        .route("/compliance", get(report_pages::compliance))
        .route("/rooms", get(report_pages::rooms))
        .route(
            "/replay",
            get(report_pages::replay_form).post(report_pages::replay_run),
        )
        .route(html::STYLESHEET_PATH, get(stylesheet))
        .with_state(WebState {
            store,
            auth,
            ctx,
            renewal,
            profiles,
            sessions,
            throttle: Arc::new(LoginThrottle::default()),
            tls,
        })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie_value(h, name))
}

/// The page language, and the cookie to set when `?lang=` chose it.
fn lang_of(headers: &HeaderMap, query: Option<&str>) -> (Lang, Option<String>) {
    let lang = Lang::choose(
        query,
        cookie(headers, i18n::COOKIE),
        header_str(headers, header::ACCEPT_LANGUAGE),
    );
    let set = query.and_then(Lang::parse).map(|l| {
        format!(
            "{}={}; Path=/; SameSite=Strict; Max-Age=31536000",
            i18n::COOKIE,
            l.code()
        )
    });
    (lang, set)
}

fn principal(state: &WebState, headers: &HeaderMap) -> Option<Principal> {
    let id = cookie(headers, session::COOKIE)?;
    state.sessions.get(id, crate::clock::now_ms())
}

/// Headers every page carries besides those of every response
/// (`crate::security`): a page holds an org's figures, so it is never cached.
fn html_response(status: StatusCode, body: String, set_cookies: &[String]) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in set_cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn redirect(to: &str, set_cookies: &[String]) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    for c in set_cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn to_login() -> Response {
    redirect("/login", &[])
}

#[derive(Debug, Deserialize, Default)]
struct LangParam {
    lang: Option<String>,
}

async fn login_form(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LangParam>,
) -> Response {
    let (lang, set) = lang_of(&headers, q.lang.as_deref());
    if principal(&state, &headers).is_some() {
        return redirect("/", &set.into_iter().collect::<Vec<_>>());
    }
    html_response(
        StatusCode::OK,
        views::login(lang, None),
        &set.into_iter().collect::<Vec<_>>(),
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    lang: Option<String>,
}

async fn login(
    State(state): State<WebState>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let (lang, _) = lang_of(&headers, form.lang.as_deref());
    let addr = extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0.0.ip());
    let now = crate::clock::now_ms();
    if let Some(wait_s) = state.throttle.blocked_for_s(addr, now) {
        tracing::warn!(client = ?addr, wait_s, "web login refused: too many attempts");
        let mut resp = html_response(
            StatusCode::TOO_MANY_REQUESTS,
            views::login(lang, Some(Key::TooManyLogins)),
            &[],
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait_s));
        return resp;
    }
    match state.auth.principal(form.token.trim()) {
        Some(p) => {
            state.throttle.succeeded(addr);
            let who = match &p {
                Principal::Operator => "operator".to_owned(),
                Principal::Org(o) => format!("org {o}"),
            };
            let id = state.sessions.open(p, crate::clock::now_ms());
            tracing::info!("web login: {who}");
            redirect(
                "/",
                &[session::set_cookie(
                    &id,
                    state.sessions.ttl_ms() / 1000,
                    state.tls,
                )],
            )
        }
        None => {
            state.throttle.failed(addr, now);
            tracing::warn!(client = ?addr, "web login refused: unknown token");
            html_response(
                StatusCode::UNAUTHORIZED,
                views::login(lang, Some(Key::WrongToken)),
                &[],
            )
        }
    }
}

/// The page's stylesheet; no session needed (the login page uses it, and it holds
/// nothing but styles). `no-cache`: revalidated, so an upgrade's new styles show.
async fn stylesheet() -> Response {
    let mut resp = html::stylesheet().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn logout(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, session::COOKIE) {
        state.sessions.close(id);
    }
    redirect("/login", &[session::clear_cookie(state.tls)])
}

/// What a session may see: `None` = every org. An org session is pinned to its org
/// whatever `?org=` says; the operator picks among the configured orgs.
fn scope(
    auth: &Auth,
    p: &Principal,
    requested: Option<&str>,
) -> (Option<String>, Option<OrgPicker>) {
    match p {
        Principal::Org(o) => (Some(o.clone()), None),
        Principal::Operator => {
            let orgs: Vec<String> = auth.org_ids().map(str::to_owned).collect();
            let selected = requested
                .filter(|r| !r.is_empty())
                .filter(|r| orgs.iter().any(|o| o == r))
                .map(str::to_owned);
            (selected.clone(), Some(OrgPicker { orgs, selected }))
        }
    }
}

#[derive(Debug, Deserialize, Default)]
struct PageParams {
    month: Option<String>,
    org: Option<String>,
    by: Option<String>,
    lang: Option<String>,
    csv_dialect: Option<String>,
}

fn error_page(lang: Lang, status: StatusCode, e: impl std::fmt::Display) -> Response {
    html_response(
        status,
        views::message(lang, lang.t(Key::NotFound), &e.to_string()),
        &[],
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReportError> + Send + 'static,
) -> Result<T, ReportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ReportError::Task(e.to_string()))?
}

fn report_error(lang: Lang, e: ReportError) -> Response {
    match e {
        ReportError::Consumption(e) => error_page(lang, StatusCode::BAD_REQUEST, e),
        e => {
            tracing::error!(error = %e, "web page failed");
            error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, e)
        }
    }
}

async fn overview(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<PageParams>,
) -> Response {
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, set) = lang_of(&headers, q.lang.as_deref());
    let (org, picker) = scope(&state.auth, &p, q.org.as_deref());
    let now = crate::clock::now_ms();
    let month = data::month_or_current(q.month, &state.ctx, now);
    let s = state.clone();
    // One org shown (an org session, or the operator's pick): its trajectory too.
    let one_org = org.clone().or_else(|| {
        let ids: Vec<&str> = state.auth.org_ids().collect();
        (ids.len() == 1).then(|| ids[0].to_owned())
    });
    let done = blocking(move || {
        let mut v = data::overview(&s.store, &s.ctx, &s.renewal, org.as_deref(), &month, now)?;
        if let Some(o) = one_org {
            v.trajectory =
                reports::trajectory::trajectories(&s.store, &s.ctx, &s.profiles, Some(&o), now)?
                    .into_iter()
                    .next();
        }
        Ok(v)
    })
    .await;
    match done {
        Ok(v) => html_response(
            StatusCode::OK,
            views::overview(lang, &v, &picker),
            &set.into_iter().collect::<Vec<_>>(),
        ),
        Err(e) => report_error(lang, e),
    }
}

/// The comparison between bodies for a month: [`reports::compare::compare_report`],
/// the function behind `report compare` and the API.
async fn compare(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<PageParams>,
) -> Response {
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, set) = lang_of(&headers, q.lang.as_deref());
    let (org, picker) = scope(&state.auth, &p, q.org.as_deref());
    let now = crate::clock::now_ms();
    let month = data::month_or_current(q.month, &state.ctx, now);
    let s = state.clone();
    let m = month.clone();
    let done = blocking(move || {
        let (first, last) = data::month_range(&m)?;
        reports::compare::compare_report(
            &s.store,
            &s.ctx,
            &s.renewal,
            &s.profiles,
            &first,
            &last,
            org.as_deref(),
            now,
        )
    })
    .await;
    match done {
        Ok(r) => html_response(
            StatusCode::OK,
            views::compare(lang, &month, &r, &picker),
            &set.into_iter().collect::<Vec<_>>(),
        ),
        Err(e) => report_error(lang, e),
    }
}

fn group_by(by: Option<&str>) -> Result<GroupBy, ReportError> {
    let g: GroupBy = by.filter(|b| !b.is_empty()).unwrap_or("site").parse()?;
    Ok(g)
}

async fn consumption(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<PageParams>,
) -> Response {
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, set) = lang_of(&headers, q.lang.as_deref());
    let (org, picker) = scope(&state.auth, &p, q.org.as_deref());
    let now = crate::clock::now_ms();
    let month = data::month_or_current(q.month, &state.ctx, now);
    let by = match group_by(q.by.as_deref()) {
        Ok(b) => b,
        Err(e) => return report_error(lang, e),
    };
    let s = state.clone();
    let m = month.clone();
    let done = blocking(move || {
        let (first, last) = data::month_range(&m)?;
        reports::consumption_report(&s.store, &s.ctx, org.as_deref(), &first, &last, by, now)
    })
    .await;
    match done {
        Ok(r) => html_response(
            StatusCode::OK,
            views::consumption(lang, &month, &r, &picker),
            &set.into_iter().collect::<Vec<_>>(),
        ),
        Err(e) => report_error(lang, e),
    }
}

/// The CSV of the consumption page: [`reports::consumption_output`], the function
/// behind `report consumption --format csv` and the API, byte for byte.
async fn consumption_csv(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<PageParams>,
) -> Response {
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, _) = lang_of(&headers, q.lang.as_deref());
    let (org, _) = scope(&state.auth, &p, q.org.as_deref());
    let now = crate::clock::now_ms();
    let month = data::month_or_current(q.month, &state.ctx, now);
    let parsed = (|| -> Result<ConsumptionQuery, ReportError> {
        let (from, to) = data::month_range(&month)?;
        Ok(ConsumptionQuery {
            from,
            to,
            by: group_by(q.by.as_deref())?,
            format: OutputFormat::Csv,
            dialect: reports::parse_dialect(q.csv_dialect.as_deref().unwrap_or("plain"))?,
        })
    })();
    let query = match parsed {
        Ok(q) => q,
        Err(e) => return report_error(lang, e),
    };
    let filename = format!(
        "veille-consumption-{}-{}{}.csv",
        month,
        query.by.as_str(),
        org.as_deref().map(|o| format!("-{o}")).unwrap_or_default()
    );
    let s = state.clone();
    let done = blocking(move || {
        reports::consumption_output(&s.store, &s.ctx, org.as_deref(), &query, now)
    })
    .await;
    match done {
        Ok(body) => {
            let mut resp = body.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            // The org id and month are `[A-Za-z0-9._-]` and digits: safe in the header.
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => report_error(lang, e),
    }
}

async fn devices(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<PageParams>,
) -> Response {
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, set) = lang_of(&headers, q.lang.as_deref());
    let (org, _) = scope(&state.auth, &p, q.org.as_deref());
    let s = state.clone();
    match blocking(move || data::device_lines(&s.store, &s.ctx, org.as_deref())).await {
        Ok(lines) => html_response(
            StatusCode::OK,
            views::devices(lang, &lines),
            &set.into_iter().collect::<Vec<_>>(),
        ),
        Err(e) => report_error(lang, e),
    }
}

async fn device(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path((org, device_id)): Path<(String, String)>,
    Query(q): Query<LangParam>,
) -> Response {
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, set) = lang_of(&headers, q.lang.as_deref());
    if let Principal::Org(own) = &p
        && own != &org
    {
        // Another org's device: answered like a missing one, so ids do not leak.
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Key::NotFound));
    }
    let s = state.clone();
    let now = crate::clock::now_ms();
    let done =
        blocking(move || data::device_page(&s.store, &s.ctx, lang, &org, &device_id, now)).await;
    match done {
        Ok(Some(d)) => html_response(
            StatusCode::OK,
            views::device(lang, &d),
            &set.into_iter().collect::<Vec<_>>(),
        ),
        Ok(None) => error_page(lang, StatusCode::NOT_FOUND, lang.t(Key::NotFound)),
        Err(e) => report_error(lang, e),
    }
}

#[derive(Debug, Deserialize, Default)]
struct SavingsParams {
    policy_version: Option<u64>,
    enforced_from: Option<String>,
    org: Option<String>,
    lang: Option<String>,
}

/// `/savings[?policy_version=N][&enforced_from=][&org=]`: `report savings` as a page.
async fn savings(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<SavingsParams>,
) -> Response {
    use crate::reports::savings::{SavingsQuery, savings_report};
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, set) = lang_of(&headers, q.lang.as_deref());
    let set: Vec<String> = set.into_iter().collect();
    let (org, _) = scope(&state.auth, &p, q.org.as_deref());
    let enforced_from = q.enforced_from.clone().unwrap_or_default();
    let asked = views::SavingsAsked {
        policy_version: q.policy_version,
        enforced_from: enforced_from.clone(),
        org: org.clone(),
    };
    let Some(version) = q.policy_version else {
        return html_response(StatusCode::OK, views::savings(lang, &asked, None), &set);
    };
    let from = match enforced_from.as_str() {
        "" => None,
        d => match d.parse() {
            Ok(d) => Some(d),
            Err(_) => {
                let why = format!("{d:?}: YYYY-MM-DD");
                let body = views::savings(lang, &asked, Some(Err(why)));
                return html_response(StatusCode::BAD_REQUEST, body, &set);
            }
        },
    };
    let query = SavingsQuery {
        policy_version: version,
        org,
        enforced_from: from,
        format: OutputFormat::Json,
    };
    let (store, ctx) = (state.store.clone(), state.ctx.clone());
    let now = crate::clock::now_ms();
    let done = tokio::task::spawn_blocking(move || savings_report(&store, &ctx, &query, now)).await;
    match done {
        Ok(Ok(r)) => html_response(
            StatusCode::OK,
            views::savings(lang, &asked, Some(Ok(&r))),
            &set,
        ),
        Ok(Err(e)) if e.is_usage() => html_response(
            StatusCode::BAD_REQUEST,
            views::savings(lang, &asked, Some(Err(e.to_string()))),
            &set,
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "savings page failed");
            error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, e)
        }
        Err(e) => error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
