//! The renewal and compliance pages: the same reports as `report renewal`,
//! `report compliance` and their API routes (one function computes each), shown as
//! tables whose cells carry the unrounded figure in `data-value`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use veille_domain::policy::compliance::ComplianceRow;
use veille_domain::renewal::report::{DeviceRow, RenewalReport};

use super::html::{Nav, esc, page};
use super::i18n::{Key, Lang};
use super::views::{OrgPicker, device_link, month_form};
use super::{
    PageParams, WebState, blocking, data, error_page, html_response, lang_of, principal,
    report_error, scope, to_login,
};
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
        let name = if d.kind == "computer" {
            device_link(&d.org, &d.device_id, &d.hostname)
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
        "<h2 id=\"renewal-groups-t\">{}</h2><table id=\"renewal-groups\" aria-labelledby=\"renewal-groups-t\"><thead><tr>{}{}{}{}{}{}{}{}</tr></thead><tbody>",
        t(Key::BySiteClass),
        th(t(Key::SiteTitle), false),
        th(t(Key::Class), false),
        th(t(Key::Total), true),
        th(t(Key::StatusOk), true),
        th(t(Key::Approaching), true),
        th(t(Key::PastHorizon), true),
        th(t(Key::ReuseList), true),
        th(t(Key::RecyclingList), true),
    ));
    for g in &r.groups {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>{}{}{}{}{}{}</tr>",
            esc(&g.site),
            esc(&g.class),
            num_cell(lang, f64::from(g.total), 0),
            num_cell(lang, f64::from(g.ok), 0),
            num_cell(lang, f64::from(g.approaching), 0),
            num_cell(lang, f64::from(g.past), 0),
            num_cell(lang, f64::from(g.reuse), 0),
            num_cell(lang, f64::from(g.recycle), 0),
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
    let p = picker.as_ref()?;
    let mut s = format!(
        "<form class=\"inline\" method=\"get\" action=\"{action}\"><div><label for=\"org\">{}</label><select id=\"org\" name=\"org\"><option value=\"\">{}</option>",
        lang.t(Key::Organisation),
        lang.t(Key::AllOrgs)
    );
    for o in &p.orgs {
        let sel = if p.selected.as_deref() == Some(o) {
            " selected"
        } else {
            ""
        };
        s.push_str(&format!(
            "<option value=\"{}\"{sel}>{}</option>",
            esc(o),
            esc(o)
        ));
    }
    s.push_str(&format!(
        "</select></div><button class=\"primary\" type=\"submit\">{}</button></form>",
        lang.t(Key::Show)
    ));
    Some(s)
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
