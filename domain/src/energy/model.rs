//! The energy model: watt-hours for one report, and for a device over a period with
//! every millisecond accounted for by provenance.
//!
//! ```text
//! E = active·P(u) + idle·P_idle + sleep·P_sleep + off·P_off
//! P(u) = P_idle + (P_max − P_idle)·u            u = cpu_util, clamped to 0..1
//! ```
//!
//! A whole-system measurement (external meter, ACPI power meter, IPMI/DCMI, battery
//! discharge) replaces
//! the model for the awake part (active + idle) of its report; the sleep part stays
//! modelled. RAPL measures only CPU package + DRAM: it is returned beside the total
//! ([`EnergyBreakdown::cpu_dram_wh`]), never added to it nor substituted for it.
//!
//! Provenance of each millisecond comes from [`crate::energy::gaps`]: covered by a report
//! (measured or modelled), inferred off (modelled at `P_off`), or unknown (no energy
//! counted: a coverage gap, never silently filled).
//!
//! Pure: no I/O.

use std::ops::{Add, AddAssign};

use veille_proto::v1::{EnergySource, Report};

use crate::energy::catalogue::PowerProfile;
use crate::energy::gaps::{self, Coverage, GapError, SegmentKind};

const MS_PER_HOUR: f64 = veille_proto::units::MS_PER_HOUR as f64;

/// Whole-system sources, most trusted first: when a report carries several, the first
/// one present is used. Each is taken to cover the whole awake part of its report: the
/// agent must leave a measurement out of an interval it did not cover entirely (on mains
/// for `BATTERY_DISCHARGE`, a meter that stopped answering for the others).
///
/// The ACPI power meter ranks above IPMI/DCMI: the agent reads it as the meter's own
/// running average at every tick, where DCMI gives a BMC reading whose sampling window
/// the agent does not choose; an agent sends one of the two, never both.
pub const WHOLE_SYSTEM_SOURCES: [EnergySource; 4] = [
    EnergySource::ExternalMeter,
    EnergySource::AcpiPowerMeter,
    EnergySource::IpmiDcmi,
    EnergySource::BatteryDischarge,
];

/// Awake power at CPU utilisation `u` (clamped to 0..1; NaN counts as 0 — ingest
/// refuses NaN, this only keeps the function total).
pub fn awake_power_w(profile: &PowerProfile, cpu_util: f64) -> f64 {
    let u = if cpu_util.is_nan() {
        0.0
    } else {
        cpu_util.clamp(0.0, 1.0)
    };
    let (idle, max) = (profile.p_idle_w.value, profile.p_max_w.value);
    idle + (max - idle) * u
}

/// Energy over `off_ms` of inferred off time.
pub fn off_energy_wh(profile: &PowerProfile, off_ms: u64) -> f64 {
    profile.p_off_w.value * off_ms as f64 / MS_PER_HOUR
}

/// The energy of one whole report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportEnergy {
    /// From a whole-system measurement (the awake part), 0 when there is none.
    pub measured_wh: f64,
    /// The whole-system source used, if any.
    pub measured_source: Option<EnergySource>,
    /// From the model: the whole report, or only its sleep part when measured.
    pub modelled_wh: f64,
    /// Milliseconds behind `measured_wh` (active + idle when measured, else 0).
    pub measured_ms: u64,
    /// Milliseconds behind `modelled_wh`.
    pub modelled_ms: u64,
    /// RAPL (CPU package + DRAM) if reported: a part of the total, shown beside it.
    pub cpu_dram_wh: Option<f64>,
}

impl ReportEnergy {
    pub fn total_wh(&self) -> f64 {
        self.measured_wh + self.modelled_wh
    }
}

/// The energy of one report with `profile`.
///
/// Times come from the report's state milliseconds (ingest checks they sum to the
/// interval). Measurements with a negative or non-finite value are ignored.
pub fn report_energy(report: &Report, profile: &PowerProfile) -> ReportEnergy {
    let awake_ms = report.active_ms.saturating_add(report.idle_ms);
    let sleep_wh = profile.p_sleep_w.value * report.sleep_ms as f64 / MS_PER_HOUR;
    let rapl = measurement_j(report, EnergySource::Rapl).map(|j| j / 3600.0);
    let whole = WHOLE_SYSTEM_SOURCES
        .iter()
        .find_map(|&s| measurement_j(report, s).map(|j| (s, j)));
    match whole {
        Some((source, joules)) => ReportEnergy {
            measured_wh: joules / 3600.0,
            measured_source: Some(source),
            modelled_wh: sleep_wh,
            measured_ms: awake_ms,
            modelled_ms: report.sleep_ms,
            cpu_dram_wh: rapl,
        },
        None => {
            let active_wh =
                awake_power_w(profile, report.cpu_util) * report.active_ms as f64 / MS_PER_HOUR;
            let idle_wh = profile.p_idle_w.value * report.idle_ms as f64 / MS_PER_HOUR;
            ReportEnergy {
                measured_wh: 0.0,
                measured_source: None,
                modelled_wh: active_wh + idle_wh + sleep_wh,
                measured_ms: 0,
                modelled_ms: awake_ms.saturating_add(report.sleep_ms),
                cpu_dram_wh: rapl,
            }
        }
    }
}

/// Joules of the whole-system measurement the model gives way to, if the report has one
/// (first of [`WHOLE_SYSTEM_SOURCES`]).
pub fn whole_system_measurement_j(report: &Report) -> Option<f64> {
    WHOLE_SYSTEM_SOURCES
        .iter()
        .find_map(|&s| measurement_j(report, s))
}

/// Joules of RAPL (CPU package + DRAM) in the report, if any.
pub fn rapl_j(report: &Report) -> Option<f64> {
    measurement_j(report, EnergySource::Rapl)
}

fn measurement_j(report: &Report, source: EnergySource) -> Option<f64> {
    report
        .measurements
        .iter()
        .find(|m| m.source == source as i32)
        .map(|m| m.energy_j)
        .filter(|j| j.is_finite() && *j >= 0.0)
}

/// Energy of a device over a period, split by provenance so that reports can show
/// shares. `measured_ms + modelled_ms + inferred_off_ms + unknown_ms` equals the period
/// length exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EnergyBreakdown {
    pub measured_wh: f64,
    pub modelled_wh: f64,
    pub inferred_off_wh: f64,
    pub measured_ms: u64,
    pub modelled_ms: u64,
    pub inferred_off_ms: u64,
    /// No energy is counted for this time.
    pub unknown_ms: u64,
    /// RAPL energy (CPU package + DRAM), beside the total, never in it.
    pub cpu_dram_wh: f64,
    /// Milliseconds of reports that carried RAPL, to say what `cpu_dram_wh` covers.
    pub cpu_dram_ms: u64,
}

impl EnergyBreakdown {
    /// Measured + modelled + inferred off.
    pub fn total_wh(&self) -> f64 {
        self.measured_wh + self.modelled_wh + self.inferred_off_wh
    }

    pub fn period_ms(&self) -> u64 {
        self.measured_ms + self.modelled_ms + self.inferred_off_ms + self.unknown_ms
    }
}

impl AddAssign for EnergyBreakdown {
    fn add_assign(&mut self, o: Self) {
        self.measured_wh += o.measured_wh;
        self.modelled_wh += o.modelled_wh;
        self.inferred_off_wh += o.inferred_off_wh;
        self.measured_ms += o.measured_ms;
        self.modelled_ms += o.modelled_ms;
        self.inferred_off_ms += o.inferred_off_ms;
        self.unknown_ms += o.unknown_ms;
        self.cpu_dram_wh += o.cpu_dram_wh;
        self.cpu_dram_ms += o.cpu_dram_ms;
    }
}

impl Add for EnergyBreakdown {
    type Output = Self;
    fn add(mut self, o: Self) -> Self {
        self += o;
        self
    }
}

/// Energy over a classified period. `reports` must be the slice given to
/// [`gaps::classify`]. A report cut by the period edge counts pro rata (its states
/// spread evenly over its interval); its milliseconds are split between measured and
/// modelled in the report's own proportion, rounding down the measured part.
pub fn period_energy(
    reports: &[Report],
    coverage: &Coverage,
    profile: &PowerProfile,
) -> EnergyBreakdown {
    let mut out = EnergyBreakdown::default();
    for s in &coverage.segments {
        let len = s.len_ms();
        match s.kind {
            SegmentKind::Unknown => out.unknown_ms += len,
            SegmentKind::Off => {
                out.inferred_off_ms += len;
                out.inferred_off_wh += off_energy_wh(profile, len);
            }
            SegmentKind::Report(i) => {
                let r = &reports[i];
                let e = report_energy(r, profile);
                let report_len = r.end_unix_ms.abs_diff(r.start_unix_ms);
                let frac = if report_len == 0 {
                    0.0
                } else {
                    len as f64 / report_len as f64
                };
                let state_ms = e.measured_ms + e.modelled_ms;
                let measured_ms = if state_ms == 0 {
                    0
                } else {
                    (u128::from(len) * u128::from(e.measured_ms) / u128::from(state_ms)) as u64
                };
                out.measured_ms += measured_ms;
                out.modelled_ms += len - measured_ms;
                out.measured_wh += e.measured_wh * frac;
                out.modelled_wh += e.modelled_wh * frac;
                if let Some(wh) = e.cpu_dram_wh {
                    out.cpu_dram_wh += wh * frac;
                    out.cpu_dram_ms += len;
                }
            }
        }
    }
    out
}

/// [`gaps::classify`] then [`period_energy`]: a device's energy over `[from_ms, to_ms)`.
pub fn device_energy(
    reports: &[Report],
    profile: &PowerProfile,
    from_ms: i64,
    to_ms: i64,
) -> Result<(EnergyBreakdown, Coverage), GapError> {
    let coverage = gaps::classify(reports, from_ms, to_ms)?;
    Ok((period_energy(reports, &coverage, profile), coverage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::catalogue::{Duty, Figure, Range};
    use crate::energy::gaps::tests::{H, rep, with_event};
    use veille_proto::v1::{EventKind, Measurement};

    /// A fixed profile (the figures these hand computations were written with), so the
    /// model's arithmetic is tested apart from the catalogue's calibration.
    fn desktop() -> PowerProfile {
        let w = |value: f64| Figure {
            value,
            source: "test".into(),
        };
        PowerProfile {
            p_off_w: w(1.5),
            p_sleep_w: w(1.6),
            p_idle_w: w(39.0),
            p_max_w: w(175.0),
            duty: Duty::Desktop,
            range: Range {
                low: 1.0,
                high: 1.0,
                source: "test".into(),
            },
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    fn measured(mut r: Report, source: EnergySource, joules: f64) -> Report {
        r.measurements.push(Measurement {
            energy_j: joules,
            source: source as i32,
        });
        r
    }

    #[test]
    fn one_hour_active_at_half_load_on_a_desktop() {
        let r = Report {
            start_unix_ms: 0,
            end_unix_ms: H,
            active_ms: H as u64,
            cpu_util: 0.5,
            ..Default::default()
        };
        let e = report_energy(&r, &desktop());
        // 39 + (175 − 39)·0.5 = 107 Wh.
        close(e.modelled_wh, 107.0);
        close(e.measured_wh, 0.0);
        assert_eq!((e.measured_ms, e.modelled_ms), (0, H as u64));
        assert_eq!(e.cpu_dram_wh, None);
    }

    #[test]
    fn mixed_states_add_up() {
        // 30 min active at u = 0.25, 20 min idle, 10 min asleep.
        let r = Report {
            start_unix_ms: 0,
            end_unix_ms: H,
            active_ms: 1_800_000,
            idle_ms: 1_200_000,
            sleep_ms: 600_000,
            cpu_util: 0.25,
            ..Default::default()
        };
        let e = report_energy(&r, &desktop());
        // 0.5·(39 + 136·0.25) + (1/3)·39 + (1/6)·1.6 = 36.5 + 13 + 0.2666…
        close(e.modelled_wh, 36.5 + 13.0 + 1.6 / 6.0);
        close(e.total_wh(), e.modelled_wh);
    }

    #[test]
    fn whole_system_measurement_replaces_the_model_for_the_awake_part() {
        let mut r = Report {
            start_unix_ms: 0,
            end_unix_ms: H,
            active_ms: 1_800_000,
            idle_ms: 900_000,
            sleep_ms: 900_000,
            cpu_util: 0.9,
            ..Default::default()
        };
        r = measured(r, EnergySource::IpmiDcmi, 180_000.0); // 50 Wh
        let e = report_energy(&r, &desktop());
        close(e.measured_wh, 50.0);
        assert_eq!(e.measured_source, Some(EnergySource::IpmiDcmi));
        // Sleep stays modelled: 0.25 h · 1.6 W.
        close(e.modelled_wh, 0.4);
        assert_eq!((e.measured_ms, e.modelled_ms), (2_700_000, 900_000));

        // An external meter wins over IPMI; battery discharge counts as whole-system.
        let r2 = measured(r.clone(), EnergySource::ExternalMeter, 72_000.0);
        let e2 = report_energy(&r2, &desktop());
        close(e2.measured_wh, 20.0);
        assert_eq!(e2.measured_source, Some(EnergySource::ExternalMeter));
        let mut r3 = r.clone();
        r3.measurements.clear();
        let e3 = report_energy(
            &measured(r3, EnergySource::BatteryDischarge, 36_000.0),
            &desktop(),
        );
        close(e3.measured_wh, 10.0);

        // A nonsensical measurement is ignored: back to the model.
        let mut r4 = r.clone();
        r4.measurements[0].energy_j = -1.0;
        assert_eq!(report_energy(&r4, &desktop()).measured_source, None);
    }

    #[test]
    fn the_acpi_power_meter_is_whole_system_and_rapl_stays_beside() {
        // A server's hour: 40 min awake (30 busy at u = 0.8, 10 idle), 20 min asleep;
        // the ACPI meter saw 40 min at 180 W = 432 kJ = 120 Wh.
        let mut r = Report {
            start_unix_ms: 0,
            end_unix_ms: H,
            active_ms: 1_800_000,
            idle_ms: 600_000,
            sleep_ms: 1_200_000,
            cpu_util: 0.8,
            ..Default::default()
        };
        r = measured(r, EnergySource::Rapl, 216_000.0); // 60 Wh of CPU + DRAM
        r = measured(r, EnergySource::AcpiPowerMeter, 432_000.0);
        assert_eq!(whole_system_measurement_j(&r), Some(432_000.0));
        let e = report_energy(&r, &desktop());
        assert_eq!(e.measured_source, Some(EnergySource::AcpiPowerMeter));
        close(e.measured_wh, 120.0);
        assert_eq!((e.measured_ms, e.modelled_ms), (2_400_000, 1_200_000));
        // Sleep modelled (1/3 h at 1.6 W); RAPL beside, not added.
        close(e.total_wh(), 120.0 + 1.6 / 3.0);
        assert_eq!(e.cpu_dram_wh, Some(60.0));
        // RAPL alone is never whole-system.
        r.measurements
            .retain(|m| m.source == EnergySource::Rapl as i32);
        assert_eq!(whole_system_measurement_j(&r), None);
        // Beside IPMI (an agent sends one of them), the ACPI meter is used.
        let both = measured(
            measured(r, EnergySource::IpmiDcmi, 1.0),
            EnergySource::AcpiPowerMeter,
            432_000.0,
        );
        assert_eq!(whole_system_measurement_j(&both), Some(432_000.0));
    }

    #[test]
    fn rapl_is_beside_the_total_never_in_it() {
        let r = Report {
            start_unix_ms: 0,
            end_unix_ms: H,
            active_ms: H as u64,
            cpu_util: 0.5,
            ..Default::default()
        };
        let with_rapl = measured(r.clone(), EnergySource::Rapl, 36_000.0); // 10 Wh
        let e = report_energy(&with_rapl, &desktop());
        close(e.total_wh(), 107.0); // still the model
        assert_eq!(e.cpu_dram_wh, Some(10.0));
        assert_eq!(e.measured_source, None);
        // And beside a whole-system measurement.
        let both = measured(with_rapl, EnergySource::ExternalMeter, 180_000.0);
        let e = report_energy(&both, &desktop());
        close(e.total_wh(), 50.0);
        assert_eq!(e.cpu_dram_wh, Some(10.0));
    }

    #[test]
    fn utilisation_is_clamped() {
        let p = desktop();
        close(awake_power_w(&p, 2.0), 175.0);
        close(awake_power_w(&p, -1.0), 39.0);
        close(awake_power_w(&p, f64::NAN), 39.0);
    }

    #[test]
    fn a_day_and_night_split_by_provenance() {
        // 08:00–18:00 idle, 18:00 SHUTDOWN, off until 08:00 next day, then a
        // metered hour. Period: 24 h from 08:00, plus the next hour.
        let p = desktop();
        let day = with_event(rep(1, "a", 8 * H, 8 * H, 18 * H), EventKind::Shutdown);
        let next = measured(
            rep(2, "b", 32 * H, 32 * H, 33 * H),
            EnergySource::ExternalMeter,
            36_000.0,
        );
        let reports = vec![day, next];
        let (e, cov) = device_energy(&reports, &p, 8 * H, 34 * H).unwrap();
        assert_eq!(cov.totals.period_ms(), 26 * H as u64);
        assert_eq!(e.period_ms(), 26 * H as u64);
        assert_eq!(e.modelled_ms, 10 * H as u64);
        close(e.modelled_wh, 390.0); // 10 h · 39 W
        assert_eq!(e.inferred_off_ms, 14 * H as u64);
        close(e.inferred_off_wh, 21.0); // 14 h · 1.5 W
        assert_eq!(e.measured_ms, H as u64);
        close(e.measured_wh, 10.0);
        assert_eq!(e.unknown_ms, H as u64); // after the last report, no SHUTDOWN
        close(e.total_wh(), 421.0);
    }

    #[test]
    fn clipped_reports_count_pro_rata_and_times_stay_exact() {
        let p = desktop();
        // One hour: 45 min metered awake (30 Wh), 15 min asleep.
        let mut r = rep(1, "a", 0, 0, H);
        r.idle_ms = 2_700_000;
        r.sleep_ms = 900_000;
        let r = measured(r, EnergySource::IpmiDcmi, 108_000.0);
        let r = measured(r, EnergySource::Rapl, 7200.0);
        // Keep the first 20 minutes + 1 ms.
        let to = 1_200_001;
        let (e, _) = device_energy(&[r], &p, 0, to).unwrap();
        assert_eq!(e.period_ms(), to as u64);
        assert_eq!(e.measured_ms + e.modelled_ms, to as u64);
        assert_eq!(e.measured_ms, 900_000); // floor(1_200_001 · 3/4)
        let frac = to as f64 / H as f64;
        close(e.measured_wh, 30.0 * frac);
        close(e.modelled_wh, 0.25 * 1.6 * frac);
        close(e.cpu_dram_wh, 2.0 * frac);
        assert_eq!(e.cpu_dram_ms, to as u64);
    }

    #[test]
    fn breakdowns_add() {
        let a = EnergyBreakdown {
            measured_wh: 1.0,
            unknown_ms: 5,
            ..Default::default()
        };
        let b = EnergyBreakdown {
            modelled_wh: 2.0,
            modelled_ms: 7,
            ..Default::default()
        };
        let c = a + b;
        close(c.total_wh(), 3.0);
        assert_eq!(c.period_ms(), 12);
    }
}
