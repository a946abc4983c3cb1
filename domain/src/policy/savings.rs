//! Proof of savings (issue 19; what PC power managers call the baseline): did enforcing
//! a policy version lower the fleet's daily kWh per device, per site, and is the
//! difference more than day-to-day noise?
//!
//! Method:
//! - Periods ([`periods`]): the enforced period runs from the day version N took
//!   effect to the day before the next version (or yesterday: today is incomplete).
//!   The baseline is the dry-run days just before it (consecutive dry-run versions
//!   before N), or, without a dry run, as many days before N as the enforced period
//!   has. The day of each change is left out, being half one regime and half the other.
//! - One number per site and day: the mean kWh (measured or modelled, the consumption
//!   report's figure) of the site's devices whose day is mostly known; holidays and
//!   closure days of the policy are left out (the machines are off whatever the
//!   policy).
//! - The difference baseline − enforced (kWh saved per device and day) with a 95 %
//!   interval from Welch's t-test (`rooms::setpoint::welch`, the setpoint report's
//!   statistics); significant when the interval excludes 0. Daily means are treated as
//!   independent, so read the interval as somewhat optimistic.
//!
//! Pure: values in, values out.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::Serialize;

use crate::rooms::setpoint::{Window, nth_day, welch};

/// Confidence of the interval.
pub const CONFIDENCE: f64 = 0.95;
/// Fewest days on each side for a figure; fewer gives "insufficient data".
pub const MIN_DAYS: usize = 3;

/// One version of an org's policy, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSpan {
    pub version: u64,
    /// `dry-run`, `enforce` or `off` (`file::mode_name`).
    pub mode: String,
    /// Local date it was set (took effect).
    pub set_on: Date,
}

/// Why no comparison can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavingsError {
    #[error("policy version {0} does not exist for this org")]
    NoSuchVersion(u64),
    #[error("policy version {version} is in {mode} mode: only an enforced version saves energy")]
    NotEnforced { version: u64, mode: String },
    #[error("policy version {version} took effect on {set_on}: no whole day of it has passed yet")]
    TooRecent { version: u64, set_on: Date },
}

/// The two periods compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Periods {
    pub baseline: Window,
    pub enforced: Window,
    /// The baseline is the dry-run of the policy (else the days before it).
    pub baseline_is_dry_run: bool,
}

/// The baseline and enforced periods of `version` among `versions` (any order), with
/// `today` the current local date. `set_on` of `version` may be overridden by the
/// caller (a rollout later than the signature) before calling.
pub fn periods(
    versions: &[VersionSpan],
    version: u64,
    today: Date,
) -> Result<Periods, SavingsError> {
    let mut sorted = versions.to_vec();
    sorted.sort_by_key(|v| v.version);
    let i = sorted
        .iter()
        .position(|v| v.version == version)
        .ok_or(SavingsError::NoSuchVersion(version))?;
    let this = &sorted[i];
    if this.mode != "enforce" {
        return Err(SavingsError::NotEnforced {
            version,
            mode: this.mode.clone(),
        });
    }
    let day = |d: Date, n: i64| nth_day(d, n).unwrap_or(d);
    let enforced_first = day(this.set_on, 1);
    let enforced_end = sorted
        .get(i + 1)
        .map_or(today, |next| next.set_on.min(today));
    let enforced_last = day(enforced_end, -1);
    if enforced_last < enforced_first {
        return Err(SavingsError::TooRecent {
            version,
            set_on: this.set_on,
        });
    }
    let enforced_days = days_between(enforced_first, enforced_last) + 1;
    // The run of dry-run versions just before, if any.
    let mut first_dry = None;
    for v in sorted[..i].iter().rev() {
        if v.mode != "dry-run" {
            break;
        }
        first_dry = Some(v.set_on);
    }
    let baseline_last = day(this.set_on, -1);
    let (baseline_first, dry) = match first_dry {
        Some(start) if day(start, 1) <= baseline_last => (day(start, 1), true),
        _ => (day(this.set_on, -enforced_days), false),
    };
    Ok(Periods {
        baseline: Window {
            first: baseline_first,
            last: baseline_last,
        },
        enforced: Window {
            first: enforced_first,
            last: enforced_last,
        },
        baseline_is_dry_run: dry,
    })
}

fn days_between(a: Date, b: Date) -> i64 {
    a.until(b).map(|s| i64::from(s.get_days())).unwrap_or(0)
}

/// One device's energy on one local day.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDay {
    pub site: String,
    pub date: Date,
    pub kwh: f64,
}

/// One site's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteSavings {
    pub site: String,
    /// Days with data in each period (holidays and closure days left out).
    pub baseline_days: usize,
    pub enforced_days: usize,
    /// Mean daily kWh per device in each period.
    pub baseline_kwh_per_device_day: Option<f64>,
    pub enforced_kwh_per_device_day: Option<f64>,
    /// baseline − enforced: kWh saved per device and day, with its 95 % interval.
    pub saved_kwh_per_device_day: Option<f64>,
    pub saved_low: Option<f64>,
    pub saved_high: Option<f64>,
    /// Saved share of the baseline, %.
    pub saved_pct: Option<f64>,
    /// The interval excludes 0.
    pub significant: bool,
    /// In words: "saved 0.41 kWh per device and day (0.33 to 0.49, 95 %)", "no
    /// significant difference", or why there is no figure.
    pub verdict: String,
}

/// Per site: the daily means of `days` in each period (days for which `excluded`
/// holds are left out), compared. Sites sorted by name.
pub fn savings(
    days: &[DeviceDay],
    periods: &Periods,
    excluded: &dyn Fn(Date) -> bool,
) -> Vec<SiteSavings> {
    // site -> date -> (sum, devices)
    let mut by_site: BTreeMap<&str, BTreeMap<Date, (f64, u32)>> = BTreeMap::new();
    for d in days {
        if excluded(d.date) || !d.kwh.is_finite() {
            continue;
        }
        let e = by_site
            .entry(d.site.as_str())
            .or_default()
            .entry(d.date)
            .or_default();
        e.0 += d.kwh;
        e.1 += 1;
    }
    let within = |w: &Window, d: &Date| w.first <= *d && *d <= w.last;
    by_site
        .into_iter()
        .map(|(site, daily)| {
            let means = |w: &Window| -> Vec<f64> {
                daily
                    .iter()
                    .filter(|(d, _)| within(w, d))
                    .map(|(_, (sum, n))| sum / f64::from(*n))
                    .collect()
            };
            let (before, after) = (means(&periods.baseline), means(&periods.enforced));
            compare(site, &before, &after)
        })
        .collect()
}

fn compare(site: &str, before: &[f64], after: &[f64]) -> SiteSavings {
    let mean = |x: &[f64]| (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64);
    let mut row = SiteSavings {
        site: site.to_owned(),
        baseline_days: before.len(),
        enforced_days: after.len(),
        baseline_kwh_per_device_day: mean(before),
        enforced_kwh_per_device_day: mean(after),
        saved_kwh_per_device_day: None,
        saved_low: None,
        saved_high: None,
        saved_pct: None,
        significant: false,
        verdict: String::new(),
    };
    if before.len() < MIN_DAYS || after.len() < MIN_DAYS {
        row.verdict = format!(
            "insufficient data: {} baseline and {} enforced days, at least {MIN_DAYS} each",
            before.len(),
            after.len()
        );
        return row;
    }
    let Some(w) = welch(before, after, CONFIDENCE) else {
        row.verdict = "insufficient data".into();
        return row;
    };
    // Welch gives after − before; saved is the opposite.
    let (saved, low, high) = (-w.diff, -w.high, -w.low);
    row.saved_kwh_per_device_day = Some(saved);
    row.saved_low = Some(low);
    row.saved_high = Some(high);
    row.saved_pct = (w.mean_before > 0.0).then(|| 100.0 * saved / w.mean_before);
    row.significant = low > 0.0 || high < 0.0;
    row.verdict = if !row.significant {
        format!("no significant difference ({low:.2} to {high:.2} kWh per device and day, 95 %)")
    } else if saved > 0.0 {
        format!("saved {saved:.2} kWh per device and day ({low:.2} to {high:.2}, 95 %)")
    } else {
        format!(
            "used {:.2} kWh more per device and day ({:.2} to {:.2}, 95 %)",
            -saved, -high, -low
        )
    };
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn v(version: u64, mode: &str, set_on: Date) -> VersionSpan {
        VersionSpan {
            version,
            mode: mode.into(),
            set_on,
        }
    }

    fn w(first: Date, last: Date) -> Window {
        Window { first, last }
    }

    #[test]
    fn the_baseline_is_the_dry_run_else_as_many_days_before() {
        let today = date(2026, 3, 31);
        let history = [
            v(1, "dry-run", date(2026, 3, 1)),
            v(2, "dry-run", date(2026, 3, 5)),
            v(3, "enforce", date(2026, 3, 15)),
            v(4, "enforce", date(2026, 3, 25)),
        ];
        assert_eq!(
            periods(&history, 3, today).unwrap(),
            Periods {
                baseline: w(date(2026, 3, 2), date(2026, 3, 14)),
                enforced: w(date(2026, 3, 16), date(2026, 3, 24)),
                baseline_is_dry_run: true,
            }
        );
        // Version 4 follows an enforced one: it runs to yesterday (5 days), and the
        // baseline is the 5 days before it.
        assert_eq!(
            periods(&history, 4, today).unwrap(),
            Periods {
                baseline: w(date(2026, 3, 20), date(2026, 3, 24)),
                enforced: w(date(2026, 3, 26), date(2026, 3, 30)),
                baseline_is_dry_run: false,
            }
        );
        assert_eq!(
            periods(&history, 2, today),
            Err(SavingsError::NotEnforced {
                version: 2,
                mode: "dry-run".into()
            })
        );
        assert_eq!(
            periods(&history, 9, today),
            Err(SavingsError::NoSuchVersion(9))
        );
        assert!(matches!(
            periods(&history, 4, date(2026, 3, 26)),
            Err(SavingsError::TooRecent { .. })
        ));
    }

    fn days(site: &str, first: Date, kwh: &[f64]) -> Vec<DeviceDay> {
        kwh.iter()
            .enumerate()
            .map(|(i, k)| DeviceDay {
                site: site.into(),
                date: nth_day(first, i as i64).unwrap(),
                kwh: *k,
            })
            .collect()
    }

    #[test]
    fn a_clear_drop_is_significant_and_noise_is_not() {
        let p = Periods {
            baseline: w(date(2026, 3, 1), date(2026, 3, 7)),
            enforced: w(date(2026, 3, 9), date(2026, 3, 15)),
            baseline_is_dry_run: true,
        };
        let mut all = days("HQ", date(2026, 3, 1), &[2.0, 2.1, 1.9, 2.0, 2.2, 1.8, 2.0]);
        all.extend(days(
            "HQ",
            date(2026, 3, 9),
            &[1.0, 1.1, 0.9, 1.0, 1.2, 0.8, 1.0],
        ));
        // Two devices at the annex: the daily mean is per device.
        for k in [0.0, 0.2] {
            all.extend(days(
                "Annex",
                date(2026, 3, 1),
                &[1.0 + k, 1.1 + k, 0.9 + k, 1.0 + k],
            ));
            all.extend(days(
                "Annex",
                date(2026, 3, 9),
                &[1.05 + k, 0.95 + k, 1.0 + k, 1.1 + k],
            ));
        }
        // A holiday with a huge value, left out.
        all.extend(days("HQ", date(2026, 3, 10), &[50.0]));
        let holiday = date(2026, 3, 10);
        let r = savings(&all, &p, &|d| d == holiday);
        assert_eq!(r.len(), 2);
        let (annex, hq) = (&r[0], &r[1]);
        assert_eq!(
            (hq.site.as_str(), hq.baseline_days, hq.enforced_days),
            ("HQ", 7, 6)
        );
        let saved = hq.saved_kwh_per_device_day.unwrap();
        assert!((saved - (2.0 - (1.0 + 0.9 + 1.0 + 1.2 + 0.8 + 1.0) / 6.0)).abs() < 1e-9);
        assert!(hq.significant, "{hq:?}");
        assert!(
            hq.saved_low.unwrap() > 0.5 && hq.saved_high.unwrap() < 1.5,
            "{hq:?}"
        );
        assert!((hq.saved_pct.unwrap() - 100.0 * saved / 2.0).abs() < 1e-9);
        assert!(
            hq.verdict
                .starts_with("saved 1.02 kWh per device and day ("),
            "{}",
            hq.verdict
        );
        assert_eq!(annex.baseline_kwh_per_device_day, Some(1.1));
        assert!(!annex.significant, "{annex:?}");
        assert!(
            annex.verdict.starts_with("no significant difference"),
            "{}",
            annex.verdict
        );
    }

    #[test]
    fn too_few_days_give_no_figure() {
        let p = Periods {
            baseline: w(date(2026, 3, 1), date(2026, 3, 7)),
            enforced: w(date(2026, 3, 9), date(2026, 3, 15)),
            baseline_is_dry_run: false,
        };
        let mut all = days("HQ", date(2026, 3, 1), &[2.0, 2.1, 1.9]);
        all.extend(days("HQ", date(2026, 3, 9), &[1.0, 1.1]));
        let r = savings(&all, &p, &|_| false);
        assert_eq!(r[0].saved_kwh_per_device_day, None);
        assert!(!r[0].significant);
        assert!(
            r[0].verdict
                .starts_with("insufficient data: 3 baseline and 2 enforced")
        );
    }
}
