//! The I/O edge of the comparison between bodies: the period's consumption by org and
//! the renewal report give each org's figures, the configuration its profile, and
//! [`veille_domain::compare`] does the rest. `report compare` and
//! `GET /api/v1/reports/compare` both end here.
//!
//! Who sees what is decided here, once: `view = None` is the operator's view (every
//! org, ranked); `view = Some(org)` is that org's (its own line and its peers'
//! quartiles, no other name).

use std::collections::BTreeMap;

use crate::reports::{OutputFormat, ReportError, consumption_report, next_day};
use crate::store::Store;
use veille_domain::compare::{self, CompareReport, OrgFigures, OrgProfile};
use veille_domain::energy::consumption::{Context, GroupBy};
use veille_domain::renewal::report::RenewalContext;

/// The comparison over `[from, to]` (days, `to` included), cut at `now_ms`.
#[allow(clippy::too_many_arguments)]
pub fn compare_report(
    store: &Store,
    energy: &Context,
    renewal: &RenewalContext,
    profiles: &[OrgProfile],
    from: &str,
    to: &str,
    view: Option<&str>,
    now_ms: i64,
) -> Result<CompareReport, ReportError> {
    // Every org's figures, whoever asks: an org's quartiles need its peers'.
    let consumption = consumption_report(store, energy, None, from, to, GroupBy::Org, now_ms)?;
    let renewal = crate::reports::renewal::report(store, renewal, None, now_ms)?;
    let mut figures: BTreeMap<String, OrgFigures> = BTreeMap::new();
    for row in &consumption.rows {
        let f = figures.entry(row.key.clone()).or_default();
        f.devices = row.figures.devices;
        f.kwh = row.figures.kwh;
        f.kg_co2e = row.figures.kg_co2e;
        f.hours_on = row.figures.hours_on;
        f.hours_on_outside_working_hours = row.figures.hours_on_outside_working_hours;
        f.measured_pct = row.figures.measured_pct;
        f.modelled_pct = row.figures.modelled_pct;
    }
    for d in &renewal.devices {
        let f = figures.entry(d.org.clone()).or_default();
        f.ages_months.push(d.age_months);
        f.past_horizon += u32::from(d.status == "past");
        f.reuse += u32::from(d.reuse);
    }
    // Configured orgs with no data yet still count (as orgs without figures).
    for p in profiles {
        figures.entry(p.org.clone()).or_default();
    }
    let orgs: Vec<(OrgProfile, OrgFigures)> = figures
        .into_iter()
        .map(|(org, f)| {
            let p = profiles
                .iter()
                .find(|p| p.org == org)
                .cloned()
                .unwrap_or_else(|| OrgProfile::unknown(&org));
            (p, f)
        })
        .collect();
    let from_ms = energy.day_start_ms(from)?;
    let to_ms = energy
        .day_start_ms(&next_day(to)?)?
        .min(now_ms)
        .max(from_ms);
    let period_days = (to_ms - from_ms) as f64 / veille_proto::units::MS_PER_DAY as f64;
    let all = compare::compare(&orgs, from, to, (period_days * 1000.0).round() / 1000.0);
    Ok(match view {
        None => all,
        Some(org) => all.for_org(org),
    })
}

/// The comparison rendered in `format`.
#[allow(clippy::too_many_arguments)]
pub fn compare_output(
    store: &Store,
    energy: &Context,
    renewal: &RenewalContext,
    profiles: &[OrgProfile],
    from: &str,
    to: &str,
    view: Option<&str>,
    format: OutputFormat,
    now_ms: i64,
) -> Result<String, ReportError> {
    let r = compare_report(store, energy, renewal, profiles, from, to, view, now_ms)?;
    Ok(match format {
        OutputFormat::Table => compare::to_table(&r),
        OutputFormat::Csv => compare::to_csv(&r),
        OutputFormat::Json => compare::to_json(&r),
    })
}
