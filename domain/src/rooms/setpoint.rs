//! The setpoint report's statistics: what a server room's cooling setpoint change did,
//! with its uncertainty, or an honest "insufficient data" (issue 8).
//!
//! Method, for one change on day `D` (the room's local date):
//! - windows of `window_days` before (`D−w ..= D−1`) and after (`D+1 ..= D+w`); the day
//!   of the change is excluded, being half one regime and half the other;
//! - per metric, the daily means present in each window (the caller drops days whose
//!   own coverage is too poor: a day here is one trustworthy number);
//! - difference after − before with a confidence interval from Welch's t-test, which
//!   does not assume equal variances (the after window may be noisier, e.g. fans
//!   hunting). Daily means are treated as independent: day-to-day autocorrelation
//!   (weather spells) makes the true interval somewhat wider;
//! - the verdict in words; "no significant change" whenever the interval contains 0;
//! - PUE (total / IT) per day where both are metered, compared the same way. PUE alone
//!   can mislead (a warmer room makes server fans draw more IT power, which *lowers*
//!   PUE), so cooling energy saved and IT power added are reported apart;
//! - optionally, cooling power adjusted for outdoor temperature: a least-squares line of
//!   daily cooling power on daily outdoor temperature over the before window, used to
//!   bring each after day back to the before window's mean outdoor temperature. The
//!   interval does not include the slope's own uncertainty: read it as a lower bound.
//!
//! Too little data (fewer than `min_days` on a side, or a side's coverage of its window
//! under `min_coverage`) gives [`Comparison::Insufficient`] with the reason, never a
//! number.
//!
//! Pure: values in, values out.

use std::collections::BTreeMap;

use jiff::Span;
use jiff::civil::Date;
use serde::Serialize;

/// Daily means by local date: W for powers, °C for temperatures.
pub type DailySeries = BTreeMap<Date, f64>;

/// A room's daily series; an empty series means "not metered".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomSeries {
    /// IT power (from agents or an IT meter), W.
    pub it_power_w: DailySeries,
    /// Total power including cooling, W.
    pub total_power_w: DailySeries,
    /// Cooling power alone, W.
    pub cooling_power_w: DailySeries,
    /// Server inlet temperature, °C.
    pub inlet_c: DailySeries,
    /// Outdoor temperature, °C.
    pub outdoor_c: DailySeries,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SetpointOptions {
    /// Days on each side of the change (the day itself excluded).
    pub window_days: u32,
    /// Fewer days than this on a side: insufficient. At least 2 (a variance needs 2).
    pub min_days: u32,
    /// Fraction of a window's days that must have data, 0–1.
    pub min_coverage: f64,
    /// Also report cooling power adjusted for outdoor temperature.
    pub adjust_outdoor: bool,
    /// Confidence level of the intervals, e.g. 0.95.
    pub confidence: f64,
}

impl Default for SetpointOptions {
    fn default() -> Self {
        SetpointOptions {
            window_days: 14,
            min_days: 7,
            min_coverage: 0.7,
            adjust_outdoor: false,
            confidence: 0.95,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetpointError {
    #[error("min_days must be at least 2 (a variance needs two days), got {0}")]
    MinDays(u32),
    #[error("window_days ({window}) must be at least min_days ({min})")]
    Window { window: u32, min: u32 },
    #[error("min_coverage must be within 0–1, got {0}")]
    Coverage(f64),
    #[error("confidence must be strictly between 0 and 1, got {0}")]
    Confidence(f64),
    #[error("the windows around {0} fall outside the calendar")]
    Date(Date),
}

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    ItPower,
    TotalPower,
    CoolingPower,
    InletTemperature,
    OutdoorTemperature,
    Pue,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::ItPower => "IT power",
            Metric::TotalPower => "total power",
            Metric::CoolingPower => "cooling power",
            Metric::InletTemperature => "inlet temperature",
            Metric::OutdoorTemperature => "outdoor temperature",
            Metric::Pue => "PUE",
        }
    }

    /// How the change is put in words: powers relative to before (%), temperatures in
    /// °C (a relative °C change means nothing), PUE as a plain difference.
    fn scale(self) -> Scale {
        match self {
            Metric::ItPower | Metric::TotalPower | Metric::CoolingPower => Scale::Relative,
            Metric::InletTemperature | Metric::OutdoorTemperature => Scale::Absolute(" °C"),
            Metric::Pue => Scale::Absolute(""),
        }
    }
}

#[derive(Clone, Copy)]
enum Scale {
    Relative,
    Absolute(&'static str),
}

/// Welch's t-test result for `after − before`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Welch {
    pub mean_before: f64,
    pub mean_after: f64,
    /// `mean_after − mean_before`.
    pub diff: f64,
    /// Standard error of the difference.
    pub se: f64,
    /// Welch–Satterthwaite degrees of freedom (not an integer in general).
    pub df: f64,
    /// `diff / se` (infinite when both samples are constant and differ).
    pub t: f64,
    pub low: f64,
    pub high: f64,
}

/// Welch's two-sample t-test on `after − before`, with a two-sided interval at
/// `confidence`. `None` with fewer than two values on a side.
pub fn welch(before: &[f64], after: &[f64], confidence: f64) -> Option<Welch> {
    let (n1, n2) = (before.len() as f64, after.len() as f64);
    if before.len() < 2 || after.len() < 2 {
        return None;
    }
    let (m1, v1) = mean_var(before);
    let (m2, v2) = mean_var(after);
    let (a, b) = (v1 / n1, v2 / n2);
    let se = (a + b).sqrt();
    let diff = m2 - m1;
    // Both samples constant: no spread to estimate; the interval is the point.
    let df = if a + b > 0.0 {
        (a + b).powi(2) / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0))
    } else {
        n1 + n2 - 2.0
    };
    let half = student_t_quantile(0.5 + confidence / 2.0, df) * se;
    let t = if se > 0.0 {
        diff / se
    } else if diff == 0.0 {
        0.0
    } else {
        diff.signum() * f64::INFINITY
    };
    Some(Welch {
        mean_before: m1,
        mean_after: m2,
        diff,
        se,
        df,
        t,
        low: diff - half,
        high: diff + half,
    })
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v)
}

/// The `p` quantile of Student's t with `df` degrees of freedom (`df` > 0, not
/// necessarily an integer), by bisection on the exact CDF (regularized incomplete beta,
/// continued fraction). Accurate to ~1e-10; `NaN` for `p` outside (0, 1) or `df` ≤ 0.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0 && df > 0.0) {
        return f64::NAN;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    if p == 0.5 {
        return 0.0;
    }
    let mut hi = 1.0;
    while student_t_cdf(hi, df) < p && hi < 1e12 {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * reg_inc_beta(df / 2.0, 0.5, x);
    if t > 0.0 { 1.0 - tail } else { tail }
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9), ~1e-15 relative for x > 0.
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// I_x(a, b), the regularized incomplete beta function.
fn reg_inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a+1)/(a+b+2); use symmetry beyond.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// Continued fraction for the incomplete beta (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// One metric's before/after comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Comparison {
    Estimate(Estimate),
    /// Not enough data: the reason, and deliberately no number.
    Insufficient {
        reason: String,
    },
    /// The room has no series for this metric.
    NotMetered,
}

impl Comparison {
    pub fn estimate(&self) -> Option<&Estimate> {
        match self {
            Comparison::Estimate(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub metric: Metric,
    pub n_before: usize,
    pub n_after: usize,
    pub welch: Welch,
    /// The change relative to before, % (powers only): (value, half-width of the
    /// interval). The half-width ignores the before mean's own uncertainty.
    pub relative_pct: Option<(f64, f64)>,
    /// The interval excludes 0.
    pub significant: bool,
    /// Outdoor-temperature adjusted (cooling power only).
    pub adjusted: bool,
    /// E.g. "cooling power fell by 8.1 % ± 2.3 %", "inlet temperature: no significant
    /// change".
    pub verdict: String,
}

/// A derived effect with its interval, in its own unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effect {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    /// Derived from the outdoor-adjusted cooling comparison.
    pub adjusted: bool,
}

/// The outdoor-temperature adjustment of cooling power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adjustment {
    /// W of cooling per °C outdoors, fitted on the before window.
    pub slope_w_per_c: f64,
    /// The before window's mean outdoor temperature, the reference after days are
    /// brought back to.
    pub reference_outdoor_c: f64,
    pub cooling: Comparison,
}

/// An inclusive range of local dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    #[serde(serialize_with = "ser_date")]
    pub first: Date,
    #[serde(serialize_with = "ser_date")]
    pub last: Date,
}

/// `YYYY-MM-DD`: this workspace builds `jiff` without its `serde` feature.
fn ser_date<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetpointReport {
    #[serde(serialize_with = "ser_date")]
    pub change: Date,
    pub before: Window,
    pub after: Window,
    pub it_power: Comparison,
    pub total_power: Comparison,
    pub cooling_power: Comparison,
    pub inlet: Comparison,
    pub outdoor: Comparison,
    pub pue: Comparison,
    /// Present when asked for ([`SetpointOptions::adjust_outdoor`]).
    pub adjusted: Option<Adjustment>,
    /// Cooling energy saved per day, kWh (positive = saved); from the adjusted
    /// comparison when there is one. `None` when cooling has no estimate.
    pub cooling_saved_kwh_per_day: Option<Effect>,
    /// IT power added (e.g. by faster server fans), W. `None` when IT has no estimate.
    pub it_power_added_w: Option<Effect>,
}

/// Builds the report for a change on `change` (local date).
pub fn setpoint_report(
    change: Date,
    series: &RoomSeries,
    opts: &SetpointOptions,
) -> Result<SetpointReport, SetpointError> {
    if opts.min_days < 2 {
        return Err(SetpointError::MinDays(opts.min_days));
    }
    if opts.window_days < opts.min_days {
        return Err(SetpointError::Window {
            window: opts.window_days,
            min: opts.min_days,
        });
    }
    if !(0.0..=1.0).contains(&opts.min_coverage) {
        return Err(SetpointError::Coverage(opts.min_coverage));
    }
    if !(opts.confidence > 0.0 && opts.confidence < 1.0) {
        return Err(SetpointError::Confidence(opts.confidence));
    }
    let w = i64::from(opts.window_days);
    let day = |n: i64| -> Result<Date, SetpointError> {
        // `try_days`: a window of more days than jiff represents is an error, not a
        // panic (window_days comes from the API's query string).
        Span::new()
            .try_days(n)
            .and_then(|span| change.checked_add(span))
            .map_err(|_| SetpointError::Date(change))
    };
    let before = Window {
        first: day(-w)?,
        last: day(-1)?,
    };
    let after = Window {
        first: day(1)?,
        last: day(w)?,
    };
    let ctx = Ctx {
        before,
        after,
        opts,
    };

    let pue_daily: DailySeries = series
        .total_power_w
        .iter()
        .filter_map(|(d, total)| {
            let it = series.it_power_w.get(d)?;
            (*it > 0.0).then(|| (*d, total / it))
        })
        .collect();
    let pue_metered = !series.total_power_w.is_empty() && !series.it_power_w.is_empty();

    let it_power = ctx.compare(Metric::ItPower, &series.it_power_w, false);
    let cooling_power = ctx.compare(Metric::CoolingPower, &series.cooling_power_w, false);
    let adjusted = opts
        .adjust_outdoor
        .then(|| ctx.adjust(&series.cooling_power_w, &series.outdoor_c));
    let cooling_for_effect = adjusted
        .as_ref()
        .and_then(|a| a.cooling.estimate())
        .or(cooling_power.estimate());
    let cooling_saved_kwh_per_day = cooling_for_effect.map(|e| {
        // A fall in W is energy saved: −Δ W × 24 h / 1000.
        let k = -24.0 / 1_000.0;
        Effect {
            value: e.welch.diff * k,
            low: e.welch.high * k,
            high: e.welch.low * k,
            adjusted: e.adjusted,
        }
    });
    let it_power_added_w = it_power.estimate().map(|e| Effect {
        value: e.welch.diff,
        low: e.welch.low,
        high: e.welch.high,
        adjusted: false,
    });
    Ok(SetpointReport {
        change,
        before,
        after,
        total_power: ctx.compare(Metric::TotalPower, &series.total_power_w, false),
        inlet: ctx.compare(Metric::InletTemperature, &series.inlet_c, false),
        outdoor: ctx.compare(Metric::OutdoorTemperature, &series.outdoor_c, false),
        pue: if pue_metered {
            ctx.compare(Metric::Pue, &pue_daily, false)
        } else {
            Comparison::NotMetered
        },
        it_power,
        cooling_power,
        adjusted,
        cooling_saved_kwh_per_day,
        it_power_added_w,
    })
}

struct Ctx<'a> {
    before: Window,
    after: Window,
    opts: &'a SetpointOptions,
}

impl Ctx<'_> {
    fn values(series: &DailySeries, w: Window) -> Vec<(Date, f64)> {
        series
            .range(w.first..=w.last)
            .filter(|(_, v)| v.is_finite())
            .map(|(d, v)| (*d, *v))
            .collect()
    }

    /// `Some(reason)` when a side has too little data.
    fn insufficient(&self, metric: Metric, n: usize, side: &str) -> Option<String> {
        let window = self.opts.window_days as usize;
        if n < self.opts.min_days as usize {
            return Some(format!(
                "{}: {n} day(s) with data {side} the change, at least {} needed",
                metric.name(),
                self.opts.min_days
            ));
        }
        let coverage = n as f64 / window as f64;
        (coverage < self.opts.min_coverage).then(|| {
            format!(
                "{}: {n} of {window} days ({:.0} %) have data {side} the change, at least {:.0} % needed",
                metric.name(),
                coverage * 100.0,
                self.opts.min_coverage * 100.0
            )
        })
    }

    fn compare(&self, metric: Metric, series: &DailySeries, adjusted: bool) -> Comparison {
        if series.is_empty() {
            return Comparison::NotMetered;
        }
        let b: Vec<f64> = Self::values(series, self.before)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let a: Vec<f64> = Self::values(series, self.after)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        self.compare_values(metric, &b, &a, adjusted)
    }

    fn compare_values(&self, metric: Metric, b: &[f64], a: &[f64], adjusted: bool) -> Comparison {
        if let Some(reason) = self
            .insufficient(metric, b.len(), "before")
            .or_else(|| self.insufficient(metric, a.len(), "after"))
        {
            return Comparison::Insufficient { reason };
        }
        let Some(welch) = welch(b, a, self.opts.confidence) else {
            return Comparison::Insufficient {
                reason: format!("{}: fewer than two days on a side", metric.name()),
            };
        };
        let significant = welch.low > 0.0 || welch.high < 0.0;
        let scale = metric.scale();
        let relative_pct = match scale {
            Scale::Relative if welch.mean_before != 0.0 => Some((
                welch.diff / welch.mean_before * 100.0,
                (welch.high - welch.low) / 2.0 / welch.mean_before.abs() * 100.0,
            )),
            _ => None,
        };
        let name = if adjusted {
            format!("{} (adjusted for outdoor temperature)", metric.name())
        } else {
            metric.name().to_owned()
        };
        let verdict = if !significant {
            format!("{name}: no significant change")
        } else {
            let dir = if welch.diff < 0.0 { "fell" } else { "rose" };
            let half = (welch.high - welch.low) / 2.0;
            match (relative_pct, scale) {
                (Some((pct, half_pct)), _) => {
                    format!("{name} {dir} by {:.1} % ± {half_pct:.1} %", pct.abs())
                }
                (None, Scale::Absolute("")) => {
                    format!("{name} {dir} by {:.2} ± {half:.2}", welch.diff.abs())
                }
                (None, Scale::Absolute(unit)) => {
                    format!(
                        "{name} {dir} by {:.1}{unit} ± {half:.1}{unit}",
                        welch.diff.abs()
                    )
                }
                (None, Scale::Relative) => {
                    format!("{name} {dir} by {:.0} W ± {half:.0} W", welch.diff.abs())
                }
            }
        };
        Comparison::Estimate(Estimate {
            metric,
            n_before: b.len(),
            n_after: a.len(),
            welch,
            relative_pct,
            significant,
            adjusted,
            verdict,
        })
    }

    fn adjust(&self, cooling: &DailySeries, outdoor: &DailySeries) -> Adjustment {
        let insufficient = |reason: String| Adjustment {
            slope_w_per_c: f64::NAN,
            reference_outdoor_c: f64::NAN,
            cooling: Comparison::Insufficient { reason },
        };
        if cooling.is_empty() {
            return Adjustment {
                slope_w_per_c: f64::NAN,
                reference_outdoor_c: f64::NAN,
                cooling: Comparison::NotMetered,
            };
        }
        if outdoor.is_empty() {
            return insufficient("adjustment: no outdoor temperature series".into());
        }
        let pairs = |w: Window| -> Vec<(f64, f64)> {
            Self::values(cooling, w)
                .into_iter()
                .filter_map(|(d, c)| outdoor.get(&d).filter(|t| t.is_finite()).map(|t| (*t, c)))
                .collect()
        };
        let fit = pairs(self.before);
        if let Some(reason) = self.insufficient(Metric::CoolingPower, fit.len(), "before") {
            return insufficient(format!(
                "adjustment needs cooling and outdoor on the same days; {reason}"
            ));
        }
        let n = fit.len() as f64;
        let tm = fit.iter().map(|p| p.0).sum::<f64>() / n;
        let cm = fit.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = fit.iter().map(|p| (p.0 - tm).powi(2)).sum();
        let sxy: f64 = fit.iter().map(|p| (p.0 - tm) * (p.1 - cm)).sum();
        if sxx <= f64::EPSILON * n {
            return insufficient(
                "adjustment: outdoor temperature did not vary before the change".into(),
            );
        }
        let slope = sxy / sxx;
        let before: Vec<f64> = Self::values(cooling, self.before)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let after: Vec<f64> = pairs(self.after)
            .into_iter()
            .map(|(t, c)| c - slope * (t - tm))
            .collect();
        Adjustment {
            slope_w_per_c: slope,
            reference_outdoor_c: tm,
            cooling: self.compare_values(Metric::CoolingPower, &before, &after, true),
        }
    }
}

/// Days from `from` counted `n` forward, for building series in tests and callers.
pub fn nth_day(from: Date, n: i64) -> Option<Date> {
    Span::new()
        .try_days(n)
        .and_then(|span| from.checked_add(span))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// Deterministic standard-normal noise (xorshift64* + Box–Muller): no `rand` seed
    /// drift between versions, so the statistical assertions cannot flake.
    struct Noise(u64);
    impl Noise {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    const CHANGE: Date = date(2024, 6, 15);

    /// `before(i)` for i in 1..=days before the change, `after(i)` after; the change day
    /// itself gets an outlier that must not be used.
    fn series(days: i64, before: impl Fn(i64) -> f64, after: impl Fn(i64) -> f64) -> DailySeries {
        let mut s = DailySeries::new();
        for i in 1..=days {
            s.insert(nth_day(CHANGE, -i).unwrap(), before(i));
            s.insert(nth_day(CHANGE, i).unwrap(), after(i));
        }
        s.insert(CHANGE, 1e9);
        s
    }

    #[test]
    fn t_quantiles_match_published_tables() {
        // Student's t tables (two-sided 95 %: p = 0.975); df = 5.3 and the rest to
        // 6 digits from mpmath (exact incomplete beta).
        for (p, df, want) in [
            (0.975, 10.0, 2.228139),
            (0.975, 26.0, 2.055529),
            (0.975, 5.3, 2.527428),
            (0.975, 1.0, 12.706205),
            (0.975, 2.0, 4.302653),
            (0.975, 1000.0, 1.962339),
            (0.995, 3.0, 5.840909),
        ] {
            let got = student_t_quantile(p, df);
            assert!(
                (got - want).abs() < 2e-6,
                "t({p}, {df}) = {got}, want {want}"
            );
        }
        assert!((student_t_quantile(0.025, 10.0) + 2.228139).abs() < 2e-6);
        assert_eq!(student_t_quantile(0.5, 4.0), 0.0);
        assert!(student_t_quantile(1.0, 4.0).is_nan());
    }

    /// Wikipedia, "Welch's t-test", Example 1 (samples A1, A2): t ≈ 2.46, ν ≈ 25.0;
    /// the interval cross-checked with mpmath.
    #[test]
    fn welch_matches_the_published_worked_example() {
        let a1 = [
            27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7,
            21.4,
        ];
        let a2 = [
            27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5,
            24.4,
        ];
        let w = welch(&a1, &a2, 0.95).unwrap();
        assert!((w.t - 2.455356).abs() < 1e-5, "{w:?}");
        assert!((w.df - 24.988529).abs() < 1e-5);
        assert!((w.diff - 2.166667).abs() < 1e-5);
        assert!((w.low - 0.349237).abs() < 1e-5 && (w.high - 3.984096).abs() < 1e-5);
        assert!(welch(&[1.0], &a2, 0.95).is_none());
    }

    /// `window_days` comes from the API's query string: a window wider than jiff's
    /// spans (about 20,000 years) is an error, not a panic.
    #[test]
    fn a_window_past_any_date_is_an_error_not_a_panic() {
        let room = RoomSeries::default();
        for window_days in [u32::MAX, 7_304_485] {
            let opts = SetpointOptions {
                window_days,
                ..SetpointOptions::default()
            };
            let e = setpoint_report(CHANGE, &room, &opts).unwrap_err();
            assert!(matches!(e, SetpointError::Date(d) if d == CHANGE), "{e:?}");
        }
        assert_eq!(nth_day(CHANGE, i64::MAX), None);
    }

    #[test]
    fn known_effect_is_found_and_covered() {
        let mut noise = Noise(42);
        let mut room = RoomSeries::default();
        let mut before = Vec::new();
        let mut after = Vec::new();
        for _ in 0..14 {
            before.push(10_000.0 + 250.0 * noise.normal());
            after.push(9_200.0 + 250.0 * noise.normal());
        }
        room.cooling_power_w = series(14, |i| before[i as usize - 1], |i| after[i as usize - 1]);
        let r = setpoint_report(CHANGE, &room, &SetpointOptions::default()).unwrap();
        assert_eq!(r.before.first, date(2024, 6, 1));
        assert_eq!(r.after.last, date(2024, 6, 29));
        let e = r.cooling_power.estimate().unwrap();
        assert_eq!((e.n_before, e.n_after), (14, 14));
        assert!(e.significant);
        assert!(e.welch.low < -800.0 && -800.0 < e.welch.high, "{e:?}");
        let (pct, half) = e.relative_pct.unwrap();
        assert!((-11.0..-5.0).contains(&pct) && half < 3.0, "{pct} ± {half}");
        assert!(
            e.verdict.starts_with("cooling power fell by "),
            "{}",
            e.verdict
        );
        assert!(e.verdict.contains(" % ± "));
        // 0.8 kW less, 24 h a day: about 19 kWh a day saved.
        let saved = r.cooling_saved_kwh_per_day.unwrap();
        assert!((saved.value + e.welch.diff * 0.024).abs() < 1e-9);
        assert!(saved.low < 19.2 && 19.2 < saved.high && saved.low > 0.0);
        assert_eq!(r.it_power, Comparison::NotMetered);
        assert!(r.it_power_added_w.is_none());
    }

    #[test]
    fn null_effect_says_no_significant_change_about_95_percent_of_seeds() {
        let mut covered = 0;
        let runs = 400;
        for seed in 1..=runs {
            let mut noise = Noise(seed * 7919);
            let vals: Vec<f64> = (0..28).map(|_| 10_000.0 + 300.0 * noise.normal()).collect();
            let room = RoomSeries {
                cooling_power_w: series(14, |i| vals[i as usize - 1], |i| vals[13 + i as usize]),
                ..Default::default()
            };
            let r = setpoint_report(CHANGE, &room, &SetpointOptions::default()).unwrap();
            let e = r.cooling_power.estimate().unwrap();
            if !e.significant {
                covered += 1;
                assert_eq!(e.verdict, "cooling power: no significant change");
            }
        }
        let rate = f64::from(covered) / runs as f64;
        assert!((0.92..=0.98).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn insufficient_data_gives_a_reason_never_a_number() {
        let room = RoomSeries {
            cooling_power_w: series(6, |_| 10_000.0, |_| 9_000.0),
            ..Default::default()
        };
        let r = setpoint_report(CHANGE, &room, &SetpointOptions::default()).unwrap();
        match &r.cooling_power {
            Comparison::Insufficient { reason } => {
                assert!(reason.contains("6 day(s) with data before"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(r.cooling_saved_kwh_per_day.is_none());

        // 9 of 14 days after: above min_days but under 70 % coverage.
        let mut s = series(14, |i| 10_000.0 + i as f64, |i| 9_000.0 + i as f64);
        for i in 10..=14 {
            s.remove(&nth_day(CHANGE, i).unwrap());
        }
        let room = RoomSeries {
            cooling_power_w: s,
            ..Default::default()
        };
        let r = setpoint_report(CHANGE, &room, &SetpointOptions::default()).unwrap();
        let Comparison::Insufficient { reason } = &r.cooling_power else {
            panic!("{:?}", r.cooling_power);
        };
        assert!(
            reason.contains("9 of 14 days (64 %) have data after"),
            "{reason}"
        );

        assert_eq!(
            setpoint_report(
                CHANGE,
                &room,
                &SetpointOptions {
                    min_days: 1,
                    ..Default::default()
                }
            ),
            Err(SetpointError::MinDays(1))
        );
    }

    #[test]
    fn pue_and_both_effects_apart() {
        let mut noise = Noise(7);
        let n: Vec<f64> = (0..56).map(|_| noise.normal()).collect();
        let it = |k: usize, base: f64| base + 100.0 * n[k];
        let room = RoomSeries {
            // IT rises 1 % (fans), cooling falls 1.5 kW, total = IT + cooling.
            it_power_w: series(
                14,
                |i| it(i as usize, 20_000.0),
                |i| it(14 + i as usize, 20_200.0),
            ),
            cooling_power_w: series(
                14,
                |i| 12_000.0 + 150.0 * n[27 + i as usize],
                |i| 10_500.0 + 150.0 * n[41 + i as usize],
            ),
            total_power_w: series(
                14,
                |i| it(i as usize, 20_000.0) + 12_000.0 + 150.0 * n[27 + i as usize],
                |i| it(14 + i as usize, 20_200.0) + 10_500.0 + 150.0 * n[41 + i as usize],
            ),
            inlet_c: series(
                14,
                |i| 22.0 + 0.1 * n[i as usize],
                |i| 24.0 + 0.1 * n[i as usize],
            ),
            ..Default::default()
        };
        let r = setpoint_report(CHANGE, &room, &SetpointOptions::default()).unwrap();
        let pue = r.pue.estimate().unwrap();
        assert!((pue.welch.mean_before - 1.6).abs() < 0.02, "{pue:?}");
        assert!((pue.welch.mean_after - 30_700.0 / 20_200.0).abs() < 0.02);
        assert!(
            pue.verdict.starts_with("PUE fell by 0.0"),
            "{}",
            pue.verdict
        );
        let it_added = r.it_power_added_w.unwrap();
        assert!(it_added.low < 200.0 && 200.0 < it_added.high && it_added.low > 0.0);
        let saved = r.cooling_saved_kwh_per_day.unwrap();
        assert!(saved.low < 36.0 && 36.0 < saved.high);
        let inlet = r.inlet.estimate().unwrap();
        assert!(
            inlet
                .verdict
                .starts_with("inlet temperature rose by 2.0 °C ± 0.1 °C"),
            "{}",
            inlet.verdict
        );
        assert_eq!(r.outdoor, Comparison::NotMetered);
    }

    #[test]
    fn outdoor_adjustment_removes_a_warmer_after_window() {
        // Cooling = 5 kW + 200 W/°C outdoors; the setpoint saves 600 W; the after
        // window is 4 °C warmer outside, which hides the saving in the raw numbers.
        let mut noise = Noise(2024);
        let days: Vec<(f64, f64, f64, f64)> = (0..14)
            .map(|_| {
                let tb = 10.0 + 2.0 * noise.normal();
                let ta = 14.0 + 2.0 * noise.normal();
                (tb, ta, 60.0 * noise.normal(), 60.0 * noise.normal())
            })
            .collect();
        let d = |i: i64| days[i as usize - 1];
        let room = RoomSeries {
            cooling_power_w: series(
                14,
                |i| 5_000.0 + 200.0 * d(i).0 + d(i).2,
                |i| 5_000.0 - 600.0 + 200.0 * d(i).1 + d(i).3,
            ),
            outdoor_c: series(14, |i| d(i).0, |i| d(i).1),
            ..Default::default()
        };
        let opts = SetpointOptions {
            adjust_outdoor: true,
            ..Default::default()
        };
        let r = setpoint_report(CHANGE, &room, &opts).unwrap();
        let raw = r.cooling_power.estimate().unwrap();
        assert!(!raw.verdict.contains("fell"), "raw: {}", raw.verdict);
        let adj = r.adjusted.unwrap();
        assert!(
            (adj.slope_w_per_c - 200.0).abs() < 20.0,
            "{}",
            adj.slope_w_per_c
        );
        let e = adj.cooling.estimate().unwrap();
        assert!(e.adjusted && e.significant);
        assert!(e.welch.low < -600.0 && -600.0 < e.welch.high, "{e:?}");
        assert!(
            e.verdict
                .starts_with("cooling power (adjusted for outdoor temperature) fell by "),
            "{}",
            e.verdict
        );
        assert!(r.cooling_saved_kwh_per_day.unwrap().adjusted);
        assert!(
            r.outdoor
                .estimate()
                .unwrap()
                .verdict
                .starts_with("outdoor temperature rose")
        );

        // Without outdoor data the adjustment is refused, not guessed.
        let no_outdoor = RoomSeries {
            outdoor_c: DailySeries::new(),
            ..room
        };
        let r = setpoint_report(CHANGE, &no_outdoor, &opts).unwrap();
        assert!(matches!(
            r.adjusted.unwrap().cooling,
            Comparison::Insufficient { .. }
        ));
    }
}
