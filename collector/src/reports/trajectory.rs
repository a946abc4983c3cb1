//! The I/O edge of targets and trajectories: each org with a target
//! (`[orgs.profile.target]`) gets its baseline year's and its last twelve complete
//! months' kWh from the consumption report, and [`veille_domain::trajectory`] sets
//! them against the line. `report trajectory` and `GET /api/v1/reports/trajectory`
//! both end here.

use crate::reports::{OutputFormat, ReportError, consumption_report};
use crate::store::Store;
use veille_domain::compare::OrgProfile;
use veille_domain::energy::consumption::{ConsumptionError, Context, GroupBy};
use veille_domain::trajectory::{self, MonthKwh, Trajectory};

/// One org's kWh for `months` months from `first` (a first of month), every month
/// present (0 kWh without data).
fn monthly(
    store: &Store,
    ctx: &Context,
    org: &str,
    first: jiff::civil::Date,
    months: i32,
    now_ms: i64,
) -> Result<Vec<MonthKwh>, ReportError> {
    let bad = |e: jiff::Error| {
        ReportError::Consumption(ConsumptionError::Date {
            value: e.to_string(),
        })
    };
    let last = first
        .checked_add(jiff::Span::new().months(months))
        .and_then(|d| d.yesterday())
        .map_err(bad)?;
    let r = consumption_report(
        store,
        ctx,
        Some(org),
        &first.to_string(),
        &last.to_string(),
        GroupBy::Month,
        now_ms,
    )?;
    let mut out = Vec::new();
    for i in 0..months {
        let d = first
            .checked_add(jiff::Span::new().months(i))
            .map_err(bad)?;
        let month = format!("{:04}-{:02}", d.year(), d.month());
        let kwh = r
            .rows
            .iter()
            .find(|row| row.key == month)
            .map_or(0.0, |row| row.figures.kwh);
        out.push(MonthKwh { month, kwh });
    }
    Ok(out)
}

/// Every org with a target among `profiles` (only `view` when given), at `now_ms`: the
/// trend is the twelve complete months before the current one (in the org's time
/// zone), so a month just begun does not look thrifty.
pub fn trajectories(
    store: &Store,
    energy: &Context,
    profiles: &[OrgProfile],
    view: Option<&str>,
    now_ms: i64,
) -> Result<Vec<Trajectory>, ReportError> {
    let mut out = Vec::new();
    for p in profiles {
        let Some(target) = p.target else { continue };
        if view.is_some_and(|v| v != p.org) {
            continue;
        }
        let ctx = energy.for_org(&p.org);
        let today = jiff::Timestamp::from_millisecond(now_ms)
            .map(|t| t.to_zoned(ctx.tz.clone()).date())
            .map_err(|e| {
                ReportError::Consumption(ConsumptionError::Date {
                    value: e.to_string(),
                })
            })?;
        let this_month = today.first_of_month();
        let trend_start = this_month
            .checked_sub(jiff::Span::new().months(12))
            .map_err(|e| {
                ReportError::Consumption(ConsumptionError::Date {
                    value: e.to_string(),
                })
            })?;
        let baseline_start = jiff::civil::Date::new(
            i16::try_from(target.baseline_year).unwrap_or(i16::MAX),
            1,
            1,
        )
        .map_err(|e| {
            ReportError::Consumption(ConsumptionError::Date {
                value: e.to_string(),
            })
        })?;
        let baseline = monthly(store, energy, &p.org, baseline_start, 12, now_ms)?;
        let last_12 = monthly(store, energy, &p.org, trend_start, 12, now_ms)?;
        out.push(trajectory::trajectory(&p.org, &target, &baseline, &last_12));
    }
    Ok(out)
}

/// The trajectories rendered in `format`.
pub fn output(
    store: &Store,
    energy: &Context,
    profiles: &[OrgProfile],
    view: Option<&str>,
    format: OutputFormat,
    now_ms: i64,
) -> Result<String, ReportError> {
    let t = trajectories(store, energy, profiles, view, now_ms)?;
    Ok(match format {
        OutputFormat::Table => trajectory::to_table(&t),
        OutputFormat::Csv => trajectory::to_csv(&t),
        OutputFormat::Json => trajectory::to_json(&t),
    })
}
