//! Targets and trajectories: an org commits to cutting its kWh by some percentage from a
//! baseline year to a target year (e.g. −20 % by 2028 against 2025), and follows its
//! last twelve months against the straight line between the two.
//!
//! Pure: the monthly kWh come from the consumption report, the target from the
//! configuration, "now" is the last month passed in.
//!
//! # Rules
//! - Baseline: the baseline year's kWh. With fewer than twelve months of data in that
//!   year, the months with data are scaled to a year (`baseline_months` says how many)
//!   rather than comparing a short year with a full one.
//! - The allowed yearly kWh falls linearly from the baseline (at the start of the
//!   baseline year) to `baseline × (1 − reduction)` (at the start of the target year),
//!   then stays there. A month's allowance is the yearly figure at its start, / 12.
//! - On track: the last twelve months used no more than the sum of their allowances;
//!   `gap_pct` is how far above (positive) or below (negative) that sum they are.

use serde::Serialize;

/// One org's commitment (`[orgs.target]` in the collector configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub baseline_year: i32,
    pub target_year: i32,
    /// The cut by the target year, percent of the baseline (0–100, exclusive).
    pub kwh_reduction_pct: f64,
}

/// Why a target cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("target_year {target} must be after baseline_year {baseline}")]
    Years { baseline: i32, target: i32 },
    #[error("kwh_reduction_pct {0} must be above 0 and below 100")]
    Pct(f64),
}

impl Target {
    pub fn check(&self) -> Result<(), TargetError> {
        if self.target_year <= self.baseline_year {
            return Err(TargetError::Years {
                baseline: self.baseline_year,
                target: self.target_year,
            });
        }
        if !(self.kwh_reduction_pct > 0.0 && self.kwh_reduction_pct < 100.0) {
            return Err(TargetError::Pct(self.kwh_reduction_pct));
        }
        Ok(())
    }

    /// The allowed kWh for a year starting at `year` (fractional: 2026.5 is July 2026).
    pub fn allowed_yearly_kwh(&self, baseline_kwh: f64, year: f64) -> f64 {
        let span = f64::from(self.target_year - self.baseline_year);
        let progress = ((year - f64::from(self.baseline_year)) / span).clamp(0.0, 1.0);
        baseline_kwh * (1.0 - self.kwh_reduction_pct / 100.0 * progress)
    }
}

/// kWh of one month, `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthKwh {
    pub month: String,
    pub kwh: f64,
}

/// One month of the trend: used and allowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendMonth {
    pub month: String,
    pub kwh: f64,
    pub allowed_kwh: f64,
}

/// An org's position against its trajectory. Field names are a stable interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trajectory {
    pub org: String,
    pub baseline_year: i32,
    pub target_year: i32,
    pub kwh_reduction_pct: f64,
    /// The baseline year's kWh (scaled to a year when months are missing).
    pub baseline_kwh: f64,
    /// Months of the baseline year with data (12 = no scaling).
    pub baseline_months: u32,
    /// The yearly kWh allowed from the target year on.
    pub target_kwh: f64,
    /// The last twelve months, oldest first.
    pub trend: Vec<TrendMonth>,
    pub last_12_months_kwh: f64,
    pub last_12_months_allowed_kwh: f64,
    /// `None` without a baseline (no data in the baseline year).
    pub on_track: Option<bool>,
    pub gap_pct: Option<f64>,
}

/// `YYYY-MM` → fractional year at the start of that month.
fn month_start(month: &str) -> Option<f64> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12)
        .contains(&m)
        .then(|| f64::from(y) + f64::from(m - 1) / 12.0)
}

/// The org's trajectory from its baseline year's months and its last twelve months.
pub fn trajectory(
    org: &str,
    target: &Target,
    baseline: &[MonthKwh],
    last_12: &[MonthKwh],
) -> Trajectory {
    let with_data: Vec<&MonthKwh> = baseline.iter().filter(|m| m.kwh > 0.0).collect();
    let months = with_data.len() as u32;
    let sum: f64 = with_data.iter().map(|m| m.kwh).sum();
    let baseline_kwh = if months == 0 {
        0.0
    } else {
        sum * 12.0 / f64::from(months)
    };
    let trend: Vec<TrendMonth> = last_12
        .iter()
        .map(|m| TrendMonth {
            month: m.month.clone(),
            kwh: round(m.kwh),
            allowed_kwh: round(
                month_start(&m.month)
                    .map(|y| target.allowed_yearly_kwh(baseline_kwh, y) / 12.0)
                    .unwrap_or(0.0),
            ),
        })
        .collect();
    let used: f64 = last_12.iter().map(|m| m.kwh).sum();
    let allowed: f64 = trend.iter().map(|m| m.allowed_kwh).sum();
    let (on_track, gap_pct) = if baseline_kwh > 0.0 && allowed > 0.0 {
        (
            Some(used <= allowed),
            Some(round((used / allowed - 1.0) * 100.0)),
        )
    } else {
        (None, None)
    };
    Trajectory {
        org: org.to_owned(),
        baseline_year: target.baseline_year,
        target_year: target.target_year,
        kwh_reduction_pct: target.kwh_reduction_pct,
        baseline_kwh: round(baseline_kwh),
        baseline_months: months,
        target_kwh: round(baseline_kwh * (1.0 - target.kwh_reduction_pct / 100.0)),
        trend,
        last_12_months_kwh: round(used),
        last_12_months_allowed_kwh: round(allowed),
        on_track,
        gap_pct,
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Every org's trajectory as JSON (pretty, newline-terminated).
pub fn to_json(t: &[Trajectory]) -> String {
    serde_json::to_string_pretty(t)
        .map(|s| s + "\n")
        .unwrap_or_default()
}

/// One line per org and month.
pub fn to_csv(t: &[Trajectory]) -> String {
    let mut out = String::from("org,month,kwh,allowed_kwh\n");
    for o in t {
        for m in &o.trend {
            out.push_str(&format!(
                "{},{},{},{}\n",
                crate::devices::csv_field(&o.org),
                m.month,
                m.kwh,
                m.allowed_kwh
            ));
        }
    }
    out
}

/// For people: each org's target, its last twelve months and the verdict.
pub fn to_table(t: &[Trajectory]) -> String {
    if t.is_empty() {
        return "No org has a target ([orgs.target] in the collector configuration).\n".into();
    }
    let mut out = String::new();
    for o in t {
        out.push_str(&format!(
            "{}: −{} % kWh by {} against {} (baseline {} kWh{}, target {} kWh/year)\n",
            o.org,
            o.kwh_reduction_pct,
            o.target_year,
            o.baseline_year,
            o.baseline_kwh,
            if o.baseline_months < 12 {
                format!(", scaled from {} month(s)", o.baseline_months)
            } else {
                String::new()
            },
            o.target_kwh
        ));
        for m in &o.trend {
            out.push_str(&format!(
                "  {}  {:>12.1} kWh  allowed {:>12.1}\n",
                m.month, m.kwh, m.allowed_kwh
            ));
        }
        out.push_str(&match (o.on_track, o.gap_pct) {
            (Some(true), Some(g)) => format!("  on track ({g:+.1} % against the trajectory)\n"),
            (Some(false), Some(g)) => format!("  off track ({g:+.1} % against the trajectory)\n"),
            _ => "  no baseline: no data in the baseline year\n".to_owned(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn months(year: i32, kwh: f64, n: u32) -> Vec<MonthKwh> {
        (1..=n)
            .map(|m| MonthKwh {
                month: format!("{year}-{m:02}"),
                kwh,
            })
            .collect()
    }

    const T: Target = Target {
        baseline_year: 2025,
        target_year: 2028,
        kwh_reduction_pct: 30.0,
    };

    #[test]
    fn the_allowance_falls_linearly_then_stays() {
        assert_eq!(T.allowed_yearly_kwh(1200.0, 2025.0), 1200.0);
        assert!((T.allowed_yearly_kwh(1200.0, 2026.0) - 1080.0).abs() < 1e-9);
        assert!((T.allowed_yearly_kwh(1200.0, 2028.0) - 840.0).abs() < 1e-9);
        assert!((T.allowed_yearly_kwh(1200.0, 2031.0) - 840.0).abs() < 1e-9);
        assert_eq!(T.allowed_yearly_kwh(1200.0, 2020.0), 1200.0);
        assert!(T.check().is_ok());
        let bad = Target {
            target_year: 2025,
            ..T
        };
        assert!(matches!(bad.check(), Err(TargetError::Years { .. })));
        let bad = Target {
            kwh_reduction_pct: 100.0,
            ..T
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn the_last_twelve_months_against_the_trajectory() {
        // Baseline 100 kWh a month (1200 a year); 2026 allows 1080 a year, 90 a month.
        let t = trajectory(
            "ville",
            &T,
            &months(2025, 100.0, 12),
            &months(2026, 85.0, 12),
        );
        assert_eq!((t.baseline_kwh, t.baseline_months), (1200.0, 12));
        assert_eq!(t.target_kwh, 840.0);
        assert_eq!(t.trend.len(), 12);
        assert_eq!(t.trend[0].allowed_kwh, 90.0);
        assert!(t.trend[11].allowed_kwh < 90.0, "the line keeps falling");
        assert_eq!(t.on_track, Some(true));
        assert!(t.gap_pct.unwrap() < 0.0);
        // 95 a month is above the line.
        let off = trajectory(
            "ville",
            &T,
            &months(2025, 100.0, 12),
            &months(2026, 95.0, 12),
        );
        assert_eq!(off.on_track, Some(false));
        assert!(off.gap_pct.unwrap() > 0.0);
        assert!(to_table(&[off]).contains("off track"));
        // Six months of baseline data are scaled to a year.
        let half = trajectory(
            "ville",
            &T,
            &months(2025, 100.0, 6),
            &months(2026, 85.0, 12),
        );
        assert_eq!((half.baseline_kwh, half.baseline_months), (1200.0, 6));
        // No baseline: no verdict.
        let none = trajectory("ville", &T, &[], &months(2026, 85.0, 12));
        assert_eq!((none.on_track, none.gap_pct), (None, None));
        assert!(to_table(std::slice::from_ref(&none)).contains("no baseline"));
        assert_eq!(to_csv(&[none]).lines().count(), 13);
    }
}
