//! The renewal, compliance and server-room pages: the same reports as `report
//! renewal`, `report compliance`, `report setpoint` and their API routes (one function
//! computes each), shown as tables whose cells carry the unrounded figure in
//! `data-value`.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use veille_domain::policy::compliance::{ComplianceRow, ReplayRow};
use veille_domain::policy::file::{PolicyFile, SAMPLE_POLICY_TOML};
use veille_domain::renewal::report::{DeviceRow, RenewalReport};
use veille_domain::rooms::setpoint::{Comparison, SetpointOptions};

use super::html::{Nav, esc, page};
use super::i18n::{Key, Lang};
use super::views::{OrgPicker, device_link, month_form, org_select};
use super::{
    PageParams, WebState, blocking, data, error_page, html_response, lang_of, principal,
    report_error, scope, to_login,
};
use crate::auth::Principal;
use crate::reports::setpoint::{RoomError, RoomReport};
use crate::reports::{self, ReportError};

/// `GET /renewal`: [`reports::renewal::report`], as `report renewal` computes it.
pub(super) async fn renewal(
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
    let s = state.clone();
    let done = blocking(move || {
        reports::renewal::report(&s.store, &s.renewal, org.as_deref(), now)
            .map_err(ReportError::from)
    })
    .await;
    match done {
        Ok(r) => html_response(
            StatusCode::OK,
            renewal_view(lang, &r, &picker),
            &set.into_iter().collect::<Vec<_>>(),
        ),
        Err(e) => report_error(lang, e),
    }
}

/// `GET /compliance?month=`: [`reports::compliance::compliance_rows`] over the month,
/// as `report compliance --from <first> --to <last>` computes them.
pub(super) async fn compliance(
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
    let (first, last) = match data::month_range(&month) {
        Ok(r) => r,
        Err(e) => return report_error(lang, e),
    };
    let s = state.clone();
    let done = tokio::task::spawn_blocking(move || {
        reports::compliance::compliance_rows(&s.store, &s.ctx, org.as_deref(), &first, &last)
    })
    .await;
    match done {
        Ok(Ok(rows)) => html_response(
            StatusCode::OK,
            compliance_view(lang, &month, &rows, &picker),
            &set.into_iter().collect::<Vec<_>>(),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "compliance page failed");
            error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, e)
        }
        Err(e) => report_error(lang, ReportError::Task(e.to_string())),
    }
}

/// `GET /rooms`: every room with a setpoint change, each change as
/// [`reports::setpoint::room_report`] computes it (`report setpoint --room R` with the
/// default options).
pub(super) async fn rooms(
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
    let done = tokio::task::spawn_blocking(
        move || -> Result<Vec<Result<RoomReport, String>>, RoomError> {
            let opts = SetpointOptions::default();
            let rooms = crate::store::rooms::rooms_of(&s.store, org.as_deref())?;
            Ok(rooms
                .into_iter()
                .filter(|r| !r.setpoints.is_empty())
                .map(|r| {
                    // A room whose report fails (no meter yet…) shows why, not a 500.
                    reports::setpoint::room_report(&s.store, &s.ctx, Some(&r.org), &r.name, &opts)
                        .map_err(|e| format!("{}: {e}", r.name))
                })
                .collect())
        },
    )
    .await;
    match done {
        Ok(Ok(rooms)) => html_response(
            StatusCode::OK,
            rooms_view(lang, &rooms),
            &set.into_iter().collect::<Vec<_>>(),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "rooms page failed");
            error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, e)
        }
        Err(e) => report_error(lang, ReportError::Task(e.to_string())),
    }
}

/// Before and after bars of one metric with the after bar's 95 % interval as a
/// whisker (before + the difference's interval), scaled to the larger end.
fn change_chart(id: &str, label: &str, before: f64, after: f64, low: f64, high: f64) -> String {
    let top = [before, after, before + high]
        .into_iter()
        .fold(0.0_f64, f64::max);
    if !(top.is_finite() && top > 0.0) {
        return String::new();
    }
    let (w, h, base) = (240.0, 120.0, 110.0);
    let y = |v: f64| base - 100.0 * (v.max(0.0) / top);
    let bar = |x: f64, v: f64, class: &str| {
        format!(
            "<rect class=\"{class}\" x=\"{x}\" y=\"{:.1}\" width=\"60\" height=\"{:.1}\"/>",
            y(v),
            base - y(v)
        )
    };
    format!(
        "<svg class=\"change\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-labelledby=\"{id}\"><title id=\"{id}\">{}</title>{}{}<line class=\"whisker\" x1=\"170\" x2=\"170\" y1=\"{:.1}\" y2=\"{:.1}\"/></svg>",
        esc(label),
        bar(40.0, before, "before"),
        bar(140.0, after, "after"),
        y(before + low),
        y(before + high),
    )
}

/// The server-room page.
pub fn rooms_view(lang: Lang, rooms: &[Result<RoomReport, String>]) -> String {
    let t = |k| lang.t(k);
    let mut b = format!(
        "<h1>{}</h1><p class=\"muted\">{}</p>",
        t(Key::Rooms),
        t(Key::RoomsIntro)
    );
    if rooms.is_empty() {
        b.push_str(&format!("<p>{}</p>", t(Key::NoRooms)));
    }
    for (i, room) in rooms.iter().enumerate() {
        let r = match room {
            Ok(r) => r,
            Err(e) => {
                b.push_str(&format!("<p class=\"error\">{}</p>", esc(e)));
                continue;
            }
        };
        b.push_str(&format!(
            "<section class=\"room\" id=\"room-{i}\"><h2>{} <span class=\"muted\">({}, {})</span></h2>",
            esc(&r.room),
            esc(&r.org),
            esc(&r.site)
        ));
        for (j, c) in r.changes.iter().enumerate() {
            b.push_str(&format!(
                "<h3>{} {} : {} → {} °C {}</h3>",
                t(Key::SetpointChange),
                esc(&c.at),
                lang.num(c.from_c, 1),
                lang.num(c.to_c, 1),
                esc(&c.note)
            ));
            let rep = &c.report;
            let metrics: [(&str, &Comparison); 5] = [
                ("cooling_power", &rep.cooling_power),
                ("total_power", &rep.total_power),
                ("it_power", &rep.it_power),
                ("inlet", &rep.inlet),
                ("pue", &rep.pue),
            ];
            if let Some(e) = rep.cooling_power.estimate() {
                let w = &e.welch;
                b.push_str(&change_chart(
                    &format!("chart-{i}-{j}"),
                    &e.verdict,
                    w.mean_before,
                    w.mean_after,
                    w.low,
                    w.high,
                ));
            }
            b.push_str(&format!(
                "<div class=\"scroll\"><table class=\"setpoint\" id=\"setpoint-{i}-{j}\"><thead><tr>{}{}{}{}{}{}</tr></thead><tbody>",
                th(t(Key::Metric), false),
                th(t(Key::Before), true),
                th(t(Key::After), true),
                th(t(Key::Difference), true),
                th(t(Key::Interval95), true),
                th(t(Key::Verdict), false),
            ));
            for (name, cmp) in metrics {
                match cmp {
                    Comparison::Estimate(e) => {
                        let w = &e.welch;
                        let decimals = if name == "pue" { 3 } else { 1 };
                        b.push_str(&format!(
                            "<tr data-metric=\"{name}\"><td>{}</td>{}{}{}<td class=\"n\">{} – {}</td><td>{}</td></tr>",
                            esc(e.metric.name()),
                            num_cell(lang, w.mean_before, decimals),
                            num_cell(lang, w.mean_after, decimals),
                            num_cell(lang, w.diff, decimals),
                            lang.num(w.low, decimals),
                            lang.num(w.high, decimals),
                            esc(&e.verdict),
                        ));
                    }
                    Comparison::Insufficient { reason } => b.push_str(&format!(
                        "<tr data-metric=\"{name}\"><td>{}</td><td colspan=\"5\">{}</td></tr>",
                        esc(name),
                        esc(reason)
                    )),
                    Comparison::NotMetered => {}
                }
            }
            b.push_str("</tbody></table></div>");
        }
        b.push_str("</section>");
    }
    page(lang, t(Key::Rooms), Nav::Rooms, true, "/rooms", &b)
}

/// The replay form as submitted.
#[derive(Debug, Deserialize, Default)]
pub(super) struct ReplayForm {
    draft: String,
    from: String,
    to: String,
    lang: Option<String>,
}

/// The draft the form starts from: the shipped sample, for the session's org.
fn sample_draft(org: &str) -> String {
    SAMPLE_POLICY_TOML
        .lines()
        .map(|l| {
            if l.starts_with("org = ") {
                format!("org = \"{org}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `GET /replay`: the form, with the sample draft and this month so far.
pub(super) async fn replay_form(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<PageParams>,
) -> Response {
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, set) = lang_of(&headers, q.lang.as_deref());
    let org = match &p {
        Principal::Org(o) => o.clone(),
        Principal::Operator => state
            .auth
            .org_ids()
            .next()
            .unwrap_or(crate::tokens::DEFAULT_ORG_ID)
            .to_owned(),
    };
    let month = data::month_or_current(None, &state.ctx, crate::clock::now_ms());
    let (from, to) = data::month_range(&month).unwrap_or_default();
    let form = ReplayForm {
        draft: sample_draft(&org),
        from,
        to,
        lang: None,
    };
    html_response(
        StatusCode::OK,
        replay_view(lang, &form, None),
        &set.into_iter().collect::<Vec<_>>(),
    )
}

/// `POST /replay`: [`reports::compliance::replay_rows`] on the submitted draft, as
/// `policy replay` and `POST /api/v1/policy/replay` compute it. An org session may
/// replay only its own org's draft. Nothing is stored.
pub(super) async fn replay_run(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<ReplayForm>,
) -> Response {
    let Some(p) = principal(&state, &headers) else {
        return to_login();
    };
    let (lang, _) = lang_of(&headers, form.lang.as_deref());
    let draft = match PolicyFile::parse(&form.draft) {
        Ok(d) => d,
        Err(e) => {
            let msg = format!("draft: {e}");
            return html_response(
                StatusCode::BAD_REQUEST,
                replay_view(lang, &form, Some(Err(msg))),
                &[],
            );
        }
    };
    if let Principal::Org(o) = &p
        && *o != draft.org
    {
        let msg = format!(
            "draft of org {:?}: this session may replay only {o:?}'s",
            draft.org
        );
        return html_response(
            StatusCode::FORBIDDEN,
            replay_view(lang, &form, Some(Err(msg))),
            &[],
        );
    }
    let s = state.clone();
    let (from, to) = (form.from.clone(), form.to.clone());
    let done = tokio::task::spawn_blocking(move || {
        reports::compliance::replay_rows(&s.store, &s.ctx, &draft, &from, &to)
    })
    .await;
    match done {
        Ok(Ok(rows)) => html_response(
            StatusCode::OK,
            replay_view(lang, &form, Some(Ok(&rows))),
            &[],
        ),
        Ok(Err(e)) if e.is_usage() => html_response(
            StatusCode::BAD_REQUEST,
            replay_view(lang, &form, Some(Err(e.to_string()))),
            &[],
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "replay page failed");
            error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, e)
        }
        Err(e) => report_error(lang, ReportError::Task(e.to_string())),
    }
}

/// The replay page: the form (kept as submitted), then the rows or why there are none.
fn replay_view(
    lang: Lang,
    form: &ReplayForm,
    outcome: Option<Result<&[ReplayRow], String>>,
) -> String {
    let t = |k| lang.t(k);
    let mut b = format!(
        "<h1>{}</h1><p class=\"muted\">{}</p>",
        t(Key::Replay),
        t(Key::ReplayIntro)
    );
    b.push_str(&format!(
        "<form method=\"post\" action=\"/replay\"><div><label for=\"draft\">{}</label><textarea id=\"draft\" name=\"draft\" rows=\"18\" spellcheck=\"false\">{}</textarea></div>\
<div class=\"inline\"><div><label for=\"from\">{}</label><input type=\"date\" id=\"from\" name=\"from\" value=\"{}\" required></div>\
<div><label for=\"to\">{}</label><input type=\"date\" id=\"to\" name=\"to\" value=\"{}\" required></div>\
<input type=\"hidden\" name=\"lang\" value=\"{}\"><button class=\"primary\" type=\"submit\" id=\"run-replay\">{}</button></div></form>",
        t(Key::Draft),
        esc(&form.draft),
        t(Key::DateFrom),
        esc(&form.from),
        t(Key::DateTo),
        esc(&form.to),
        lang.code(),
        t(Key::RunReplay),
    ));
    match outcome {
        None => {}
        Some(Err(e)) => b.push_str(&format!(
            "<p class=\"error\" id=\"replay-error\">{}</p>",
            esc(&e)
        )),
        Some(Ok([])) => b.push_str(&format!("<p id=\"replay-none\">{}</p>", t(Key::NoneListed))),
        Some(Ok(rows)) => {
            b.push_str("<div class=\"scroll\"><table id=\"replay\"><thead><tr>");
            for (k, numeric) in [
                (Key::Organisation, false),
                (Key::SiteTitle, false),
                (Key::Devices, true),
                (Key::Excluded, true),
                (Key::Affected, true),
                (Key::SavedKwh, true),
                (Key::SavedEur, true),
                (Key::SavedKg, true),
                (Key::InterruptedHours, true),
                (Key::InterruptedSessions, true),
            ] {
                b.push_str(&th(t(k), numeric));
            }
            b.push_str("</tr></thead><tbody>");
            for r in rows {
                b.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}</tr>",
                    esc(&r.org),
                    esc(&r.site),
                    num_cell(lang, f64::from(r.devices), 0),
                    num_cell(lang, f64::from(r.excluded), 0),
                    num_cell(lang, f64::from(r.affected), 0),
                    num_cell(lang, r.saved_kwh, 2),
                    num_cell(lang, r.saved_eur, 2),
                    num_cell(lang, r.saved_kg_co2e, 3),
                    num_cell(lang, r.interrupted_active_h, 1),
                    num_cell(lang, f64::from(r.interrupted_sessions), 0),
                ));
            }
            b.push_str("</tbody></table></div>");
        }
    }
    page(lang, t(Key::Replay), Nav::Replay, true, "/replay", &b)
}

fn th(label: &str, numeric: bool) -> String {
    let class = if numeric { " class=\"n\"" } else { "" };
    format!("<th scope=\"col\"{class}>{}</th>", esc(label))
}

/// A numeric cell: shown in the page's language, the raw value in `data-value`.
fn num_cell(lang: Lang, v: f64, decimals: usize) -> String {
    format!(
        "<td class=\"n\" data-value=\"{v}\">{}</td>",
        lang.num(v, decimals)
    )
}

fn device_table(
    lang: Lang,
    id: &str,
    title: &str,
    help: Option<&str>,
    rows: &[DeviceRow],
) -> String {
    let t = |k| lang.t(k);
    let mut b = format!("<h2 id=\"{id}-t\">{} ({})</h2>", esc(title), rows.len());
    if let Some(h) = help {
        b.push_str(&format!("<p class=\"muted\">{}</p>", esc(h)));
    }
    if rows.is_empty() {
        b.push_str(&format!("<p>{}</p>", t(Key::NoneListed)));
        return b;
    }
    b.push_str(&format!(
        "<table id=\"{id}\" aria-labelledby=\"{id}-t\"><thead><tr>{}{}{}{}{}{}</tr></thead><tbody>",
        th(t(Key::Hostname), false),
        th(t(Key::SiteTitle), false),
        th(t(Key::Class), false),
        th(t(Key::Age), true),
        th(t(Key::AgeSource), false),
        th(t(Key::Horizon), false),
    ));
    for d in rows {
        // A computer with an agent has its page; an asset only GLPI knows has none.
        let name = if d.kind == "computer" && d.has_agent {
            device_link(&d.org, &d.device_id, &d.hostname)
        } else if d.attached_to.is_empty() {
            esc(&d.hostname)
        } else {
            // A monitor: named after itself, attached to its computer.
            format!("{} ({})", esc(&d.hostname), esc(&d.attached_to))
        };
        let lower = if d.age_is_lower_bound { "≥ " } else { "" };
        b.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td class=\"n\" data-value=\"{}\">{lower}{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.site),
            esc(d.class),
            d.age_years,
            lang.num(d.age_years, 1),
            esc(d.age_source_label),
            esc(&d.horizon_date),
        ));
    }
    b.push_str("</tbody></table>");
    b
}

/// The renewal page.
pub fn renewal_view(lang: Lang, r: &RenewalReport, picker: &Option<OrgPicker>) -> String {
    let t = |k| lang.t(k);
    let mut b = format!("<h1>{}</h1>", t(Key::Renewal));
    if let Some(form) = org_form(lang, "/renewal", picker) {
        b.push_str(&form);
    }
    b.push_str(&format!("<p class=\"muted\">{}</p>", t(Key::RenewalIntro)));
    b.push_str(&format!(
        "<h2 id=\"renewal-groups-t\">{}</h2><table id=\"renewal-groups\" aria-labelledby=\"renewal-groups-t\"><thead><tr>{}{}{}{}{}{}{}{}{}</tr></thead><tbody>",
        t(Key::BySiteClass),
        th(t(Key::SiteTitle), false),
        th(t(Key::Class), false),
        th(t(Key::Total), true),
        th(t(Key::StatusOk), true),
        th(t(Key::Approaching), true),
        th(t(Key::PastHorizon), true),
        th(t(Key::ReuseList), true),
        th(t(Key::RecyclingList), true),
        th(t(Key::NoAgent), true),
    ));
    for g in &r.groups {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>{}{}{}{}{}{}{}</tr>",
            esc(&g.site),
            esc(&g.class),
            num_cell(lang, f64::from(g.total), 0),
            num_cell(lang, f64::from(g.ok), 0),
            num_cell(lang, f64::from(g.approaching), 0),
            num_cell(lang, f64::from(g.past), 0),
            num_cell(lang, f64::from(g.reuse), 0),
            num_cell(lang, f64::from(g.recycle), 0),
            num_cell(lang, f64::from(g.without_agent), 0),
        ));
    }
    b.push_str("</tbody></table>");
    b.push_str(&device_table(
        lang,
        "past-horizon",
        t(Key::PastHorizon),
        None,
        &r.past_horizon,
    ));
    b.push_str(&device_table(
        lang,
        "reuse",
        t(Key::ReuseList),
        Some(t(Key::ReuseHelp)),
        &r.reuse,
    ));
    b.push_str(&device_table(
        lang,
        "recycling",
        t(Key::RecyclingList),
        None,
        &r.recycling,
    ));
    page(lang, t(Key::Renewal), Nav::Renewal, true, "/renewal", &b)
}

/// The operator's org picker alone (the renewal report has no period).
fn org_form(lang: Lang, action: &str, picker: &Option<OrgPicker>) -> Option<String> {
    picker.as_ref()?;
    Some(format!(
        "<form class=\"inline\" method=\"get\" action=\"{action}\">{}<button class=\"primary\" type=\"submit\">{}</button></form>",
        org_select(lang, picker),
        lang.t(Key::Show)
    ))
}

/// The compliance page.
pub fn compliance_view(
    lang: Lang,
    month: &str,
    rows: &[ComplianceRow],
    picker: &Option<OrgPicker>,
) -> String {
    let t = |k| lang.t(k);
    let mut b = format!("<h1>{}</h1>", t(Key::Compliance));
    b.push_str(&month_form(lang, "/compliance", month, picker, ""));
    b.push_str(&format!(
        "<p class=\"muted\">{}</p>",
        t(Key::ComplianceIntro)
    ));
    if rows.is_empty() {
        b.push_str(&format!("<p>{}</p>", t(Key::NoneListed)));
    } else {
        // Fourteen columns: the table scrolls sideways on a narrow screen, not the page.
        b.push_str("<div class=\"scroll\"><table id=\"compliance\"><thead><tr>");
        for (k, numeric) in [
            (Key::Organisation, false),
            (Key::SiteTitle, false),
            (Key::Policy, false),
            (Key::Devices, true),
            (Key::LeftOn, true),
            (Key::LeftOnHours, true),
            (Key::WastedKwh, true),
            (Key::Warned, true),
            (Key::Shutdowns, true),
            (Key::Postponed, true),
            (Key::Skipped, true),
            (Key::NotRestarted7, true),
            (Key::WakesArmed, true),
            (Key::AwakeForMaintenance, true),
        ] {
            b.push_str(&th(t(k), numeric));
        }
        b.push_str("</tr></thead><tbody>");
        for r in rows {
            let policy = if r.policy_version == 0 {
                "—".to_owned()
            } else {
                format!("v{} ({})", r.policy_version, esc(&r.policy_mode))
            };
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{policy}</td>{}{}{}{}{}{}{}{}{}{}{}</tr>",
                esc(&r.org),
                esc(&r.site),
                num_cell(lang, f64::from(r.devices), 0),
                num_cell(lang, f64::from(r.left_on), 0),
                num_cell(lang, r.left_on_hours, 1),
                num_cell(lang, r.wasted_kwh, 2),
                num_cell(lang, f64::from(r.warned), 0),
                num_cell(lang, f64::from(r.shutdowns), 0),
                num_cell(lang, f64::from(r.postponed), 0),
                num_cell(lang, f64::from(r.skipped), 0),
                num_cell(lang, f64::from(r.not_restarted_7_days), 0),
                num_cell(lang, f64::from(r.wakes_armed), 0),
                num_cell(lang, f64::from(r.awake_for_maintenance), 0),
            ));
        }
        b.push_str("</tbody></table></div>");
    }
    let path = format!("/compliance?month={month}");
    page(lang, t(Key::Compliance), Nav::Compliance, true, &path, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_escape_agent_text_and_carry_raw_figures() {
        let row = ComplianceRow {
            org: "acme".into(),
            site: "<b>Lyon</b>".into(),
            policy_version: 3,
            policy_mode: "enforce".into(),
            devices: 4,
            left_on: 1,
            wasted_kwh: 1.23456,
            ..Default::default()
        };
        let html = compliance_view(Lang::En, "2026-11", &[row], &None);
        assert!(html.contains("&lt;b&gt;Lyon&lt;/b&gt;") && !html.contains("<b>Lyon"));
        assert!(html.contains("data-value=\"1.23456\">1.23<"), "{html}");
        assert!(html.contains("v3 (enforce)"));
        assert!(html.contains("aria-current=\"page\">Compliance</a>"));
        let empty = RenewalReport {
            today: "2026-11-30".into(),
            approaching_months: 6,
            recycle_after_years: 10,
            working_within_days: 30,
            without_agent: 0,
            groups: vec![],
            devices: vec![],
            past_horizon: vec![],
            reuse: vec![],
            recycling: vec![],
        };
        let html = renewal_view(Lang::Fr, &empty, &None);
        assert!(html.contains("Au-delà de l’horizon (0)") && html.contains("Aucun."));
    }
}
