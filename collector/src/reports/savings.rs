//! `report savings --policy-version N`: the proof of savings of an enforced policy
//! version (issue 19). Reads the version history (with the time each version was set)
//! and the fleet's rollups, computes each device's kWh per local day with the
//! consumption report's model, and hands them to `veille_domain::policy::savings`,
//! which picks the periods and does the statistics.

use std::collections::BTreeSet;

use jiff::civil::Date;
use serde::Serialize;
use veille_domain::energy::consumption::{Context, device_figures};
use veille_domain::policy::file::mode_name;
use veille_domain::policy::savings::{
    DeviceDay, Periods, SavingsError, SiteSavings, VersionSpan, periods, savings,
};

use crate::policy::{PolicyError, current_all, history};
use crate::reports::{OutputFormat, device_stream};
use crate::store::Store;

/// `GET ?policy_version=N[&org=][&enforced_from=YYYY-MM-DD][&format=]`.
pub const SAVINGS_PATH: &str = "/api/v1/reports/savings";

/// A device-day counts when at most this share of it is unknown (no report and no
/// inferred off time): a day mostly unknown would read as a day of zero kWh.
pub const MAX_UNKNOWN_PCT: f64 = 50.0;

/// What the report is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavingsQuery {
    pub policy_version: u64,
    /// `None`: the only org with a policy.
    pub org: Option<String>,
    /// The day enforcement really started, when not the day version N was set (a
    /// later rollout, or a version set before the collector recorded set times).
    pub enforced_from: Option<Date>,
    pub format: OutputFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum SavingsReportError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Savings(#[from] SavingsError),
    #[error(transparent)]
    Report(#[from] crate::reports::ReportError),
    #[error("{0}")]
    Usage(String),
}

impl SavingsReportError {
    /// The operator's input (exit code 2, HTTP 400).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Savings(_) | Self::Usage(_))
            || matches!(self, Self::Policy(e) if e.is_usage())
    }
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct SavingsReport {
    pub org: String,
    pub policy_version: u64,
    pub periods: Periods,
    /// Holidays and closure days of the policy inside the periods, left out.
    pub excluded_days: Vec<String>,
    pub sites: Vec<SiteSavings>,
}

fn local_date(ctx: &Context, ms: i64) -> Date {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(ctx.tz.clone())
        .date()
}

/// Computes the report on `store` at `now_ms`.
pub fn savings_report(
    store: &Store,
    ctx: &Context,
    q: &SavingsQuery,
    now_ms: i64,
) -> Result<SavingsReport, SavingsReportError> {
    let org = match &q.org {
        Some(o) => o.clone(),
        None => {
            let orgs: Vec<String> = current_all(store)?
                .into_iter()
                .map(|(p, _)| p.org)
                .collect();
            match orgs.as_slice() {
                [one] => one.clone(),
                [] => return Err(SavingsReportError::Usage("no org has a policy".into())),
                _ => {
                    return Err(SavingsReportError::Usage(format!(
                        "several orgs have policies ({}): name one with --org",
                        orgs.join(", ")
                    )));
                }
            }
        }
    };
    let ctx = ctx.for_org(&org);
    let versions = history(store, &org)?;
    let mut spans = Vec::new();
    for v in &versions {
        let set_on = match (v.set_at_ms, v.policy.version == q.policy_version) {
            (_, true) if q.enforced_from.is_some() => q.enforced_from.unwrap_or_default(),
            (Some(ms), _) => local_date(ctx, ms),
            (None, true) => {
                return Err(SavingsReportError::Usage(format!(
                    "policy version {} of org {org:?} has no recorded set time (set by an \
                     older collector): give the day enforcement started with --enforced-from",
                    q.policy_version
                )));
            }
            // An older version without a time: not usable as a dry-run baseline.
            (None, false) => continue,
        };
        spans.push(VersionSpan {
            version: v.policy.version,
            mode: mode_name(v.policy.mode()).to_owned(),
            set_on,
        });
    }
    let today = local_date(ctx, now_ms);
    let p = periods(&spans, q.policy_version, today)?;
    let policy = versions
        .iter()
        .find(|v| v.policy.version == q.policy_version)
        .map(|v| v.policy.clone())
        .unwrap_or_default();
    let closed: BTreeSet<Date> = policy
        .closure_days
        .iter()
        .filter_map(|c| c.date.parse().ok())
        .collect();
    let excluded = |d: Date| closed.contains(&d);

    let day_ms = |d: Date| {
        ctx.day_start_ms(&d.to_string())
            .map_err(|e| SavingsReportError::Report(e.into()))
    };
    let from_ms = day_ms(p.baseline.first.min(p.enforced.first))?;
    let last = p.baseline.last.max(p.enforced.last);
    let to_ms = day_ms(last.tomorrow().unwrap_or(last))?;
    let mut days = Vec::new();
    let mut dates = Vec::new();
    let mut d = p.baseline.first;
    while d <= last {
        let inside = |w: &veille_domain::rooms::setpoint::Window| w.first <= d && d <= w.last;
        if inside(&p.baseline) || inside(&p.enforced) {
            let start = day_ms(d)?;
            let end = day_ms(d.tomorrow().unwrap_or(d))?;
            dates.push((d, start, end));
        }
        d = match d.tomorrow() {
            Ok(n) => n,
            Err(_) => break,
        };
    }
    let stream = device_stream(store, Some(&org), from_ms, to_ms)
        .map_err(|e| SavingsReportError::Report(e.into()))?;
    for dev in stream {
        let dev = dev.map_err(|e| SavingsReportError::Report(e.into()))?;
        for (date, start, end) in &dates {
            let f = device_figures(&dev, ctx, *start, *end)
                .map_err(|e| SavingsReportError::Report(e.into()))?;
            // A device not yet (or no longer) reporting that day says nothing.
            if f.unknown_pct > MAX_UNKNOWN_PCT || f.coverage_ms().iter().sum::<f64>() <= 0.0 {
                continue;
            }
            days.push(DeviceDay {
                site: if dev.site.is_empty() {
                    "(no site)".to_owned()
                } else {
                    dev.site.clone()
                },
                date: *date,
                kwh: f.kwh,
            });
        }
    }
    let excluded_days = closed
        .iter()
        .filter(|d| {
            (p.baseline.first <= **d && **d <= p.baseline.last)
                || (p.enforced.first <= **d && **d <= p.enforced.last)
        })
        .map(|d| d.to_string())
        .collect();
    Ok(SavingsReport {
        org,
        policy_version: q.policy_version,
        periods: p,
        excluded_days,
        sites: savings(&days, &p, &excluded),
    })
}

/// The report rendered in the query's format.
pub fn savings_output(
    store: &Store,
    ctx: &Context,
    q: &SavingsQuery,
    now_ms: i64,
) -> Result<String, SavingsReportError> {
    let r = savings_report(store, ctx, q, now_ms)?;
    Ok(render(&r, q.format))
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.3}"))
}

/// JSON (the [`SavingsReport`]), CSV (one row per site) or a table with the periods.
pub fn render(r: &SavingsReport, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(r).unwrap_or_default() + "\n",
        OutputFormat::Csv => {
            let mut out = String::from(
                "site,baseline_days,enforced_days,baseline_kwh_per_device_day,\
                 enforced_kwh_per_device_day,saved_kwh_per_device_day,saved_low,saved_high,\
                 saved_pct,significant\n",
            );
            for s in &r.sites {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{},{}\n",
                    csv_field(&s.site),
                    s.baseline_days,
                    s.enforced_days,
                    opt(s.baseline_kwh_per_device_day),
                    opt(s.enforced_kwh_per_device_day),
                    opt(s.saved_kwh_per_device_day),
                    opt(s.saved_low),
                    opt(s.saved_high),
                    opt(s.saved_pct),
                    s.significant
                ));
            }
            out
        }
        OutputFormat::Table => {
            let p = &r.periods;
            let mut out = format!(
                "Savings of policy version {} (org {}): baseline {} to {} ({}), enforced {} to {}\n",
                r.policy_version,
                r.org,
                p.baseline.first,
                p.baseline.last,
                if p.baseline_is_dry_run {
                    "dry run"
                } else {
                    "before the policy"
                },
                p.enforced.first,
                p.enforced.last
            );
            if !r.excluded_days.is_empty() {
                out.push_str(&format!(
                    "Left out (holidays, closure days): {}\n",
                    r.excluded_days.join(", ")
                ));
            }
            out.push_str("site  days (baseline/enforced)  kWh per device-day (baseline -> enforced)  verdict\n");
            for s in &r.sites {
                out.push_str(&format!(
                    "{}  {}/{}  {} -> {}  {}\n",
                    s.site,
                    s.baseline_days,
                    s.enforced_days,
                    opt(s.baseline_kwh_per_device_day),
                    opt(s.enforced_kwh_per_device_day),
                    s.verdict
                ));
            }
            out
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
