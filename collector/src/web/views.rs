//! The pages, rendered from plain values (the view models below) into HTML strings.
//! Pure: [`super::data`] loads the values; every string from the fleet is escaped here.

use veille_domain::compare::CompareReport;
use veille_domain::devices::DeviceRecord;
use veille_domain::energy::consumption::{Figures, GroupBy, Report};

use super::html::{Nav, esc, page, url_component};
use super::i18n::{Key, Lang};
use super::svg::{self, Bar, HourStates};

/// What the overview shows.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// `YYYY-MM`.
    pub month: String,
    /// This month's figures (the same as `report consumption` for the month).
    pub month_figures: Figures,
    /// kWh per month, the 12 months ending with `month`.
    pub trend: Vec<Bar>,
    /// Devices with data this month, and of them those left on at night / weekends.
    pub devices: u64,
    pub left_on_nights: u64,
    pub left_on_weekends: u64,
    pub past_renewal_count: usize,
    pub past_renewal: Vec<PastDevice>,
    pub verdicts: Vec<Verdict>,
    /// The org's last twelve months against its kWh target, when it has one (and one
    /// org is shown): what `report trajectory` gives.
    pub trajectory: Option<veille_domain::trajectory::Trajectory>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PastDevice {
    pub org: String,
    pub device_id: String,
    pub hostname: String,
    pub site: String,
    pub class: String,
    pub age_years: f64,
}

/// The latest setpoint change of one room and its verdicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub room: String,
    pub at: String,
    pub lines: Vec<String>,
}

/// The org picker of an operator session: `None` for an org session.
#[derive(Debug, Clone, Default)]
pub struct OrgPicker {
    pub orgs: Vec<String>,
    pub selected: Option<String>,
}

fn org_query(picker: &Option<OrgPicker>) -> String {
    match picker.as_ref().and_then(|p| p.selected.as_deref()) {
        Some(o) => format!("&org={}", url_component(o)),
        None => String::new(),
    }
}

pub(super) fn org_select(lang: Lang, picker: &Option<OrgPicker>) -> String {
    let Some(p) = picker else {
        return String::new();
    };
    let mut s = format!(
        "<div><label for=\"org\">{}</label><select id=\"org\" name=\"org\"><option value=\"\">{}</option>",
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
    s.push_str("</select></div>");
    s
}

pub(super) fn month_form(
    lang: Lang,
    action: &str,
    month: &str,
    picker: &Option<OrgPicker>,
    extra: &str,
) -> String {
    format!(
        "<form class=\"inline\" method=\"get\" action=\"{action}\"><div><label for=\"month\">{}</label><input type=\"month\" id=\"month\" name=\"month\" value=\"{}\" required></div>{}{extra}<button class=\"primary\" type=\"submit\">{}</button></form>",
        lang.t(Key::Month),
        esc(month),
        org_select(lang, picker),
        lang.t(Key::Show)
    )
}

/// A figure card; `raw` goes in `data-value` so tools (and the browser test) read the
/// unrounded number.
fn card(id: &str, label: &str, shown: &str, unit: &str, raw: f64) -> String {
    format!(
        "<div class=\"card\"><div class=\"label\" id=\"{id}-l\">{}</div><div class=\"big\" id=\"{id}\" data-value=\"{raw}\" aria-labelledby=\"{id}-l\">{} {}</div></div>",
        esc(label),
        esc(shown),
        esc(unit)
    )
}

fn coverage_table(lang: Lang, f: &Figures) -> String {
    let t = |k| lang.t(k);
    format!(
        "<table id=\"coverage\"><caption>{}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"n\">%</th><th scope=\"col\" class=\"n\">kWh</th></tr></thead><tbody>\
<tr><th scope=\"row\">{}</th><td class=\"n\" data-value=\"{}\">{}</td><td class=\"n\">{}</td></tr>\
<tr><th scope=\"row\">{}</th><td class=\"n\" data-value=\"{}\">{}</td><td class=\"n\">{}</td></tr>\
<tr><th scope=\"row\">{}</th><td class=\"n\" data-value=\"{}\">{}</td><td class=\"n\">{}</td></tr>\
<tr><th scope=\"row\" class=\"sub\">{}</th><td class=\"n\" data-value=\"{}\">{}</td><td class=\"n\">—</td></tr>\
<tr><th scope=\"row\">{}</th><td class=\"n\" data-value=\"{}\">{}</td><td class=\"n\">—</td></tr>\
</tbody></table><p class=\"muted\">{}</p>",
        t(Key::Coverage),
        t(Key::Coverage),
        t(Key::Measured),
        f.measured_pct,
        lang.pct(f.measured_pct),
        lang.num(f.measured_kwh, 2),
        t(Key::Modelled),
        f.modelled_pct,
        lang.pct(f.modelled_pct),
        lang.num(f.modelled_kwh, 2),
        t(Key::InferredOff),
        f.inferred_off_pct,
        lang.pct(f.inferred_off_pct),
        lang.num(f.inferred_off_kwh, 2),
        t(Key::InferredOffReboot),
        f.inferred_off_reboot_pct,
        lang.pct(f.inferred_off_reboot_pct),
        t(Key::Unknown),
        f.unknown_pct,
        lang.pct(f.unknown_pct),
        t(Key::Estimated),
    )
}

fn share(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

/// The overview page.
pub fn overview(lang: Lang, v: &Overview, picker: &Option<OrgPicker>) -> String {
    let t = |k| lang.t(k);
    let f = &v.month_figures;
    let mut b = format!("<h1>{} — {}</h1>", t(Key::Overview), esc(&v.month));
    b.push_str(&month_form(lang, "/", &v.month, picker, ""));
    b.push_str("<div class=\"cards\">");
    b.push_str(&card(
        "kwh",
        t(Key::Energy),
        &lang.num(f.kwh, 1),
        "kWh",
        f.kwh,
    ));
    b.push_str(&card("eur", t(Key::Cost), &lang.num(f.eur, 2), "€", f.eur));
    b.push_str(&card(
        "kgco2e",
        t(Key::Carbon),
        &lang.amount(f.kg_co2e),
        "kgCO2e",
        f.kg_co2e,
    ));
    b.push_str(&card(
        "nights",
        t(Key::LeftOnNights),
        &format!("{} / {}", v.left_on_nights, v.devices),
        &format!("({})", lang.pct(share(v.left_on_nights, v.devices))),
        share(v.left_on_nights, v.devices),
    ));
    b.push_str(&card(
        "weekends",
        t(Key::LeftOnWeekends),
        &format!("{} / {}", v.left_on_weekends, v.devices),
        &format!("({})", lang.pct(share(v.left_on_weekends, v.devices))),
        share(v.left_on_weekends, v.devices),
    ));
    b.push_str("</div>");
    b.push_str(&format!(
        "<p class=\"muted\">{}: {}.</p>",
        t(Key::LeftOnNights),
        t(Key::LeftOnHelp)
    ));
    b.push_str(&coverage_table(lang, f));

    b.push_str(&format!("<h2 id=\"trend-h\">{}</h2>", t(Key::Trend12)));
    b.push_str(&svg::bar_chart(
        lang,
        "trend",
        t(Key::Trend12),
        "kWh",
        &v.trend,
    ));
    b.push_str(&format!(
        "<details><summary>{} ({})</summary><table id=\"trend-table\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"n\">kWh</th></tr></thead><tbody>",
        t(Key::Trend12),
        t(Key::Value),
        t(Key::Month)
    ));
    for bar in &v.trend {
        b.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td class=\"n\" data-value=\"{}\">{}</td></tr>",
            esc(&bar.label),
            bar.value,
            lang.num(bar.value, 1)
        ));
    }
    b.push_str("</tbody></table></details>");
    if let Some(tr) = &v.trajectory {
        b.push_str(&trajectory_table(lang, tr));
    }

    b.push_str(&format!(
        "<h2>{} (<span id=\"past-count\">{}</span>)</h2>",
        t(Key::PastRenewal),
        v.past_renewal_count
    ));
    if v.past_renewal.is_empty() {
        b.push_str(&format!("<p>{}</p>", t(Key::NonePast)));
    } else {
        b.push_str(&format!(
            "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\" class=\"n\">{}</th></tr></thead><tbody>",
            t(Key::Hostname),
            t(Key::SiteTitle),
            t(Key::Class),
            t(Key::Age)
        ));
        for d in &v.past_renewal {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                device_link(&d.org, &d.device_id, &d.hostname),
                esc(&d.site),
                esc(&d.class),
                lang.num(d.age_years, 1)
            ));
        }
        b.push_str("</tbody></table>");
    }

    b.push_str(&format!("<h2>{}</h2>", t(Key::SetpointVerdicts)));
    if v.verdicts.is_empty() {
        b.push_str(&format!("<p>{}</p>", t(Key::NoSetpoint)));
    } else {
        b.push_str(&format!(
            "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            t(Key::Room),
            t(Key::Change),
            t(Key::Verdict)
        ));
        for r in &v.verdicts {
            let lines: Vec<String> = r.lines.iter().map(|l| esc(l)).collect();
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.room),
                esc(&r.at),
                lines.join("<br>")
            ));
        }
        b.push_str("</tbody></table>");
    }
    let path = format!("/?month={}{}", url_component(&v.month), org_query(picker));
    page(lang, t(Key::Overview), Nav::Overview, true, &path, &b)
}

/// The consumption page: the report grouped by `report.by`, with its CSV link.
pub fn consumption(lang: Lang, month: &str, report: &Report, picker: &Option<OrgPicker>) -> String {
    let t = |k| lang.t(k);
    let by = report.by;
    let mut extra = format!(
        "<div><label for=\"by\">{}</label><select id=\"by\" name=\"by\">",
        t(Key::GroupBy)
    );
    for (g, k) in [
        (GroupBy::Site, Key::Site),
        (GroupBy::Group, Key::Group),
        (GroupBy::Class, Key::Class),
    ] {
        let sel = if g == by { " selected" } else { "" };
        extra.push_str(&format!(
            "<option value=\"{}\"{sel}>{}</option>",
            g.as_str(),
            t(k)
        ));
    }
    extra.push_str("</select></div>");
    let mut b = format!("<h1>{} — {}</h1>", t(Key::Consumption), esc(month));
    b.push_str(&month_form(lang, "/consumption", month, picker, &extra));
    let q = format!(
        "month={}&by={}{}",
        url_component(month),
        by.as_str(),
        org_query(picker)
    );
    b.push_str(&format!(
        "<p><a class=\"button\" id=\"csv\" href=\"/consumption.csv?{}\" download>{}</a> <a href=\"/consumption.csv?{}&csv_dialect=excel-fr\" download>{} (Excel FR)</a></p>",
        esc(&q),
        t(Key::DownloadCsv),
        esc(&q),
        t(Key::DownloadCsv)
    ));
    b.push_str(&format!(
        "<table id=\"report\"><caption>{} {} → {} ({})</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"n\">{}</th><th scope=\"col\" class=\"n\">kWh</th><th scope=\"col\" class=\"n\">€</th><th scope=\"col\" class=\"n\">kgCO2e</th><th scope=\"col\" class=\"n\">{}</th><th scope=\"col\" class=\"n\">{}</th><th scope=\"col\" class=\"n\">{} %</th><th scope=\"col\" class=\"n\">{} %</th><th scope=\"col\" class=\"n\">{} %</th><th scope=\"col\" class=\"n\">{} %</th></tr></thead><tbody>",
        t(Key::Period),
        esc(&report.from),
        esc(&report.to),
        esc(&report.timezone),
        esc(by.as_str()),
        t(Key::DeviceCount),
        t(Key::HoursOn),
        t(Key::HoursOnOutside),
        t(Key::Measured),
        t(Key::Modelled),
        t(Key::InferredOff),
        t(Key::Unknown),
    ));
    let row = |key: &str, f: &Figures, total: bool| {
        let (o, c) = if total {
            ("<strong>", "</strong>")
        } else {
            ("", "")
        };
        format!(
            "<tr><th scope=\"row\">{o}{}{c}</th><td class=\"n\">{}</td><td class=\"n\" data-value=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(key),
            f.devices,
            f.kwh,
            lang.num(f.kwh, 2),
            lang.num(f.eur, 2),
            lang.num(f.kg_co2e, 2),
            lang.num(f.hours_on, 1),
            lang.num(f.hours_on_outside_working_hours, 1),
            lang.num(f.measured_pct, 1),
            lang.num(f.modelled_pct, 1),
            lang.num(f.inferred_off_pct, 1),
            lang.num(f.unknown_pct, 1),
        )
    };
    for r in &report.rows {
        b.push_str(&row(&r.key, &r.figures, false));
    }
    b.push_str(&row(t(Key::Total), &report.total, true));
    b.push_str("</tbody></table>");
    if !report.assets_without_agent.is_empty() {
        b.push_str(&format!(
            "<h2 id=\"without-agent-t\">{}</h2><ul id=\"without-agent\" aria-labelledby=\"without-agent-t\">",
            t(Key::WithoutAgent)
        ));
        for a in &report.assets_without_agent {
            b.push_str(&format!(
                "<li data-assets=\"{}\">{} / {} — {} × {}</li>",
                a.assets,
                esc(&a.org),
                esc(&a.site),
                a.assets,
                esc(&a.kind)
            ));
        }
        b.push_str("</ul>");
    }
    b.push_str(&format!("<p class=\"muted\">{}</p>", t(Key::Estimated)));
    page(
        lang,
        t(Key::Consumption),
        Nav::Consumption,
        true,
        &format!("/consumption?{q}"),
        &b,
    )
}

/// The target's line and the last twelve months against it.
fn trajectory_table(lang: Lang, tr: &veille_domain::trajectory::Trajectory) -> String {
    let t = |k| lang.t(k);
    let verdict = match (tr.on_track, tr.gap_pct) {
        (Some(true), Some(g)) => format!("{} ({:+.1} %)", t(Key::OnTrack), g),
        (Some(false), Some(g)) => format!("{} ({:+.1} %)", t(Key::OffTrack), g),
        _ => t(Key::NoBaseline).to_owned(),
    };
    let mut b = format!(
        "<h2 id=\"trajectory-h\">{} : −{} % kWh {} → {}</h2><p id=\"trajectory-verdict\" data-on-track=\"{}\">{}</p>",
        t(Key::Trajectory),
        lang.num(tr.kwh_reduction_pct, 0),
        tr.baseline_year,
        tr.target_year,
        tr.on_track
            .map_or("unknown", |b| if b { "true" } else { "false" }),
        esc(&verdict)
    );
    b.push_str(&format!(
        "<table id=\"trajectory\" aria-labelledby=\"trajectory-h\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"n\">kWh</th><th scope=\"col\" class=\"n\">{}</th></tr></thead><tbody>",
        t(Key::Month),
        t(Key::Allowed)
    ));
    for m in &tr.trend {
        b.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td class=\"n\" data-value=\"{}\">{}</td><td class=\"n\" data-value=\"{}\">{}</td></tr>",
            esc(&m.month),
            m.kwh,
            lang.num(m.kwh, 1),
            m.allowed_kwh,
            lang.num(m.allowed_kwh, 1)
        ));
    }
    b.push_str("</tbody></table>");
    b
}

/// The comparison between bodies: one table per org shown, each indicator beside its
/// peers' quartiles. `data-value` holds the unrounded figure (what the API gives).
pub fn compare(
    lang: Lang,
    month: &str,
    report: &CompareReport,
    picker: &Option<OrgPicker>,
) -> String {
    let t = |k| lang.t(k);
    let mut b = format!("<h1>{} — {}</h1>", t(Key::Compare), esc(month));
    b.push_str(&month_form(lang, "/compare", month, picker, ""));
    b.push_str(&format!("<p class=\"muted\">{}</p>", t(Key::PeersHelp)));
    let cell = |v: Option<f64>, attrs: String| match v {
        Some(v) => format!(
            "<td class=\"n\" {attrs} data-value=\"{v}\">{}</td>",
            lang.num(v, 2)
        ),
        None => format!("<td class=\"n\" {attrs}>—</td>"),
    };
    for p in &report.orgs {
        let rank = p.rank.map(|r| format!("#{r} ")).unwrap_or_default();
        b.push_str(&format!(
            "<table class=\"compare\" data-org=\"{}\"><caption>{rank}{} ({}{}) — {} {}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"n\">{}</th><th scope=\"col\" class=\"n\">Q1</th><th scope=\"col\" class=\"n\">Q2</th><th scope=\"col\" class=\"n\">Q3</th></tr></thead><tbody>",
            esc(&p.org),
            esc(&p.org),
            esc(&p.kind),
            if p.population_band.is_empty() {
                String::new()
            } else {
                format!(", {}", esc(&p.population_band))
            },
            p.devices,
            t(Key::Devices),
            t(Key::Indicator),
            t(Key::Value),
        ));
        for (name, v) in p.indicators.named() {
            let q = p.peers.quartiles.iter().find(|q| q.indicator == name);
            b.push_str(&format!(
                "<tr><th scope=\"row\">{}</th>{}{}{}{}</tr>",
                esc(name),
                cell(v, format!("data-indicator=\"{name}\"")),
                cell(q.map(|q| q.q1), String::new()),
                cell(q.map(|q| q.median), format!("data-median=\"{name}\"")),
                cell(q.map(|q| q.q3), String::new()),
            ));
        }
        b.push_str("</tbody></table>");
    }
    let q = format!("month={}{}", url_component(month), org_query(picker));
    page(
        lang,
        t(Key::Compare),
        Nav::Compare,
        true,
        &format!("/compare?{q}"),
        &b,
    )
}

pub(super) fn device_link(org: &str, device_id: &str, hostname: &str) -> String {
    let name = if hostname.is_empty() {
        device_id
    } else {
        hostname
    };
    format!(
        "<a href=\"/device/{}/{}\">{}</a>",
        url_component(org),
        url_component(device_id),
        esc(name)
    )
}

/// One line of the device list.
#[derive(Debug, Clone)]
pub struct DeviceLine {
    pub record: DeviceRecord,
    pub site: String,
    pub last_seen: String,
}

/// The device list.
pub fn devices(lang: Lang, lines: &[DeviceLine]) -> String {
    let t = |k| lang.t(k);
    let mut b = format!("<h1>{}</h1>", t(Key::Devices));
    if lines.is_empty() {
        b.push_str(&format!("<p>{}</p>", t(Key::NoDevices)));
    } else {
        b.push_str(&format!(
            "<table id=\"devices\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\" class=\"n\">{}</th></tr></thead><tbody>",
            t(Key::Hostname),
            t(Key::Organisation),
            t(Key::SiteTitle),
            t(Key::LastSeen),
            t(Key::Reports)
        ));
        for l in lines {
            let r = &l.record;
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                device_link(&r.org, &r.device_id, &r.hostname),
                esc(&r.org),
                esc(&l.site),
                esc(&l.last_seen),
                lang.num(r.reports as f64, 0)
            ));
        }
        b.push_str("</tbody></table>");
    }
    page(lang, t(Key::Devices), Nav::Devices, true, "/devices", &b)
}

/// One device: its timeline and inventory.
#[derive(Debug, Clone, Default)]
pub struct DevicePage {
    pub record: DeviceRecord,
    pub last_seen: String,
    /// (label, value) rows of the inventory table, values already formatted.
    pub inventory: Vec<(Key, String)>,
    pub hours: Vec<HourStates>,
    pub ticks: Vec<(usize, String)>,
}

/// The device page.
pub fn device(lang: Lang, d: &DevicePage) -> String {
    let t = |k| lang.t(k);
    let r = &d.record;
    let name = if r.hostname.is_empty() {
        &r.device_id
    } else {
        &r.hostname
    };
    let mut b = format!(
        "<h1>{}</h1><p class=\"muted\">{} · {} · {}: {}</p>",
        esc(name),
        esc(&r.org),
        esc(&r.device_id),
        t(Key::LastSeen),
        esc(&d.last_seen)
    );
    b.push_str(&format!("<h2 id=\"timeline-h\">{}</h2>", t(Key::Timeline)));
    b.push_str(&svg::timeline(
        lang,
        "timeline",
        t(Key::Timeline),
        &d.hours,
        &d.ticks,
    ));
    b.push_str(&svg::legend(lang));
    b.push_str(&format!("<p class=\"muted\">{}</p>", t(Key::TimelineHelp)));
    // The same hours summed, for screen readers and for reading exact figures.
    let mut sums = [0.0f64; 5];
    for h in &d.hours {
        for (s, v) in sums.iter_mut().zip(h.ms) {
            *s += v;
        }
    }
    b.push_str(&format!(
        "<table id=\"timeline-table\"><caption>{}</caption><thead><tr>",
        t(Key::Timeline)
    ));
    for st in svg::State::ALL {
        b.push_str(&format!(
            "<th scope=\"col\" class=\"n\">{} ({})</th>",
            t(st.key()),
            t(Key::Hours)
        ));
    }
    b.push_str("</tr></thead><tbody><tr>");
    for s in sums {
        b.push_str(&format!(
            "<td class=\"n\">{}</td>",
            lang.num(s / 3_600_000.0, 1)
        ));
    }
    b.push_str("</tr></tbody></table>");
    b.push_str(&format!(
        "<h2>{}</h2><table id=\"inventory\"><tbody>",
        t(Key::Inventory)
    ));
    for (k, v) in &d.inventory {
        b.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            t(*k),
            esc(v)
        ));
    }
    b.push_str("</tbody></table>");
    let path = format!(
        "/device/{}/{}",
        url_component(&r.org),
        url_component(&r.device_id)
    );
    page(lang, name, Nav::Devices, true, &path, &b)
}

/// The login form; `error` shows the refusal message (wrong token).
/// The login form; `error`: the message of the last try ([`Key::WrongToken`],
/// [`Key::TooManyLogins`]).
pub fn login(lang: Lang, error: Option<Key>) -> String {
    let t = |k| lang.t(k);
    let mut b = format!("<h1>{}</h1>", t(Key::Login));
    if let Some(e) = error {
        b.push_str(&format!(
            "<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>",
            t(e)
        ));
    }
    b.push_str(&format!(
        "<form method=\"post\" action=\"/login\"><p>{}</p><label for=\"token\">{}</label><input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required size=\"48\"> <button class=\"primary\" type=\"submit\" id=\"sign-in\">{}</button><input type=\"hidden\" name=\"lang\" value=\"{}\"></form>",
        t(Key::LoginHelp),
        t(Key::Token),
        t(Key::SignIn),
        lang.code()
    ));
    page(lang, t(Key::Login), Nav::None, false, "/login", &b)
}

/// What the savings page was asked (echoed in its form).
#[derive(Debug, Clone, Default)]
pub struct SavingsAsked {
    pub policy_version: Option<u64>,
    pub enforced_from: String,
    pub org: Option<String>,
}

/// The savings page: a form (policy version, optional start of enforcement), then per
/// site the mean kWh per device and day in each period, the saving with its 95 %
/// interval and the verdict (`report savings`). `outcome`: the report, or why there is
/// none (shown in place of the table).
pub fn savings(
    lang: Lang,
    asked: &SavingsAsked,
    outcome: Option<Result<&crate::reports::savings::SavingsReport, String>>,
) -> String {
    let t = |k| lang.t(k);
    let mut b = format!("<h1>{}</h1><p>{}</p>", t(Key::Savings), t(Key::SavingsHelp));
    let org = asked.org.as_deref().map_or(String::new(), |o| {
        format!("<input type=\"hidden\" name=\"org\" value=\"{}\">", esc(o))
    });
    b.push_str(&format!(
        "<form class=\"inline\" method=\"get\" action=\"/savings\"><div><label for=\"policy_version\">{}</label><input type=\"number\" min=\"1\" id=\"policy_version\" name=\"policy_version\" value=\"{}\" required></div><div><label for=\"enforced_from\">{}</label><input type=\"date\" id=\"enforced_from\" name=\"enforced_from\" value=\"{}\"></div>{org}<button class=\"primary\" type=\"submit\" id=\"show\">{}</button></form>",
        t(Key::PolicyVersion),
        asked.policy_version.map_or(String::new(), |v| v.to_string()),
        t(Key::EnforcedFrom),
        esc(&asked.enforced_from),
        t(Key::Show)
    ));
    match outcome {
        None => {}
        Some(Err(why)) => b.push_str(&format!("<p id=\"savings-error\">{}</p>", esc(&why))),
        Some(Ok(r)) => {
            let p = &r.periods;
            // French puts a space before a colon, English does not.
            let colon = if lang == Lang::Fr { "\u{a0}:" } else { ":" };
            b.push_str(&format!(
                "<p id=\"periods\">{}{colon} {} → {} ({}) · {}{colon} {} → {}</p>",
                t(Key::Baseline),
                p.baseline.first,
                p.baseline.last,
                if p.baseline_is_dry_run {
                    t(Key::DryRun)
                } else {
                    t(Key::BeforePolicy)
                },
                t(Key::Enforced),
                p.enforced.first,
                p.enforced.last
            ));
            if !r.excluded_days.is_empty() {
                b.push_str(&format!(
                    "<p>{}{colon} {}</p>",
                    t(Key::LeftOut),
                    esc(&r.excluded_days.join(", "))
                ));
            }
            b.push_str(&format!(
                "<table id=\"savings\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"n\">{} ({})</th><th scope=\"col\" class=\"n\">{} ({})</th><th scope=\"col\" class=\"n\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
                t(Key::SiteTitle),
                t(Key::Baseline),
                t(Key::KwhPerDeviceDay),
                t(Key::Enforced),
                t(Key::KwhPerDeviceDay),
                t(Key::SavedPerDeviceDay),
                t(Key::Interval95),
                t(Key::Verdict)
            ));
            let cell = |v: Option<f64>| match v {
                Some(v) => format!("<td class=\"n\" data-value=\"{v}\">{}</td>", lang.amount(v)),
                None => "<td class=\"n\">—</td>".to_owned(),
            };
            for s in &r.sites {
                let interval = match (s.saved_low, s.saved_high) {
                    (Some(l), Some(h)) => format!("{} … {}", lang.amount(l), lang.amount(h)),
                    _ => "—".to_owned(),
                };
                let (class, verdict) = match (s.saved_kwh_per_device_day, s.significant) {
                    (None, _) => ("insufficient", t(Key::InsufficientData)),
                    (Some(_), true) => ("significant", t(Key::Significant)),
                    (Some(_), false) => ("not-significant", t(Key::NotSignificant)),
                };
                b.push_str(&format!(
                    "<tr data-site=\"{}\"><th scope=\"row\">{}</th>{}{}{}<td>{interval}</td><td class=\"{class}\">{verdict}</td></tr>",
                    esc(&s.site),
                    esc(&s.site),
                    cell(s.baseline_kwh_per_device_day),
                    cell(s.enforced_kwh_per_device_day),
                    cell(s.saved_kwh_per_device_day),
                ));
            }
            b.push_str("</tbody></table>");
        }
    }
    page(lang, t(Key::Savings), Nav::Savings, true, "/savings", &b)
}

/// A short page for a missing device or a bad parameter.
pub fn message(lang: Lang, title: &str, text: &str) -> String {
    page(
        lang,
        title,
        Nav::None,
        true,
        "/",
        &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overview_carries_raw_values_and_escapes_names() {
        let mut month_figures = Figures::default();
        month_figures.kwh = 1234.5678;
        month_figures.eur = 12.5;
        month_figures.kg_co2e = 3.0;
        let v = Overview {
            month: "2026-11".into(),
            month_figures,
            trend: vec![Bar {
                label: "2026-11".into(),
                value: 1234.5678,
            }],
            devices: 4,
            left_on_nights: 1,
            left_on_weekends: 0,
            past_renewal_count: 1,
            past_renewal: vec![PastDevice {
                org: "a".into(),
                device_id: "d 1".into(),
                hostname: "<pc>".into(),
                site: "s".into(),
                class: "desktop".into(),
                age_years: 7.25,
            }],
            verdicts: vec![],
            trajectory: None,
        };
        let html = overview(Lang::Fr, &v, &None);
        assert!(!html.contains("id=\"trajectory\""));
        // With a target: the last twelve months against the line, as the API gives them.
        use veille_domain::trajectory::{MonthKwh, Target, trajectory};
        let months = |y: i32, kwh: f64| -> Vec<MonthKwh> {
            (1..=12)
                .map(|m| MonthKwh {
                    month: format!("{y}-{m:02}"),
                    kwh,
                })
                .collect()
        };
        let target = Target {
            baseline_year: 2025,
            target_year: 2028,
            kwh_reduction_pct: 20.0,
        };
        let tr = trajectory("a", &target, &months(2025, 100.0), &months(2026, 120.0));
        let with = Overview {
            trajectory: Some(tr.clone()),
            ..v.clone()
        };
        let en = overview(Lang::En, &with, &None);
        assert!(en.contains("data-on-track=\"false\""), "{en}");
        assert!(en.contains("Above the trajectory"));
        assert!(en.contains(&format!(
            "<td class=\"n\" data-value=\"{}\">",
            tr.trend[0].allowed_kwh
        )));
        assert!(html.contains("id=\"kwh\" data-value=\"1234.5678\""));
        assert!(html.contains("1\u{202f}234,6 kWh"), "French decimal comma");
        assert!(html.contains("3,00 kgCO2e"));
        assert!(html.contains("<a href=\"/device/a/d%201\">&lt;pc&gt;</a>"));
        assert!(html.contains("25,0\u{202f}%"), "1 of 4 left on at night");
        assert!(!html.contains("<pc>"));
        let en = overview(Lang::En, &v, &None);
        assert!(en.contains("1,234.6 kWh"));
        assert!(en.contains("<html lang=\"en\">"));
    }

    #[test]
    fn the_login_page_posts_and_shows_a_refusal() {
        let p = login(Lang::En, Some(Key::WrongToken));
        assert!(p.contains("method=\"post\" action=\"/login\""));
        assert!(p.contains("<label for=\"token\">Token</label>"));
        assert!(p.contains("role=\"alert\""));
        assert!(!login(Lang::En, None).contains("role=\"alert\""));
    }

    #[test]
    fn the_operator_picker_keeps_the_org_in_links() {
        let picker = Some(OrgPicker {
            orgs: vec!["acme".into(), "town".into()],
            selected: Some("town".into()),
        });
        let r = Report {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            by: GroupBy::Site,
            timezone: "Europe/Paris".into(),
            grid_kg_co2e_per_kwh: 0.05,
            grid_source: "x".into(),
            rows: vec![],
            total: Figures::default(),
            assets_without_agent: vec![],
        };
        let html = consumption(Lang::En, "2026-11", &r, &picker);
        assert!(!html.contains("without-agent"));
        let with = Report {
            assets_without_agent: vec![veille_domain::energy::consumption::AgentlessCount {
                org: "town".into(),
                site: "<Cave>".into(),
                kind: "monitor".into(),
                assets: 3,
            }],
            ..r.clone()
        };
        let page = consumption(Lang::En, "2026-11", &with, &picker);
        assert!(
            page.contains("<li data-assets=\"3\">town / &lt;Cave&gt; — 3 × monitor</li>"),
            "{page}"
        );
        assert!(page.contains("energy unknown, not counted"));
        assert!(html.contains("href=\"/consumption.csv?month=2026-11&amp;by=site&amp;org=town\""));
        assert!(html.contains("<option value=\"town\" selected>town</option>"));
    }
}
