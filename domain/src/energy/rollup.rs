//! Hourly rollups: what a device's reports say about each hour, kept small enough that a
//! year of 30,000 devices can be reported on without reading raw reports.
//!
//! A rollup holds sufficient statistics, not energy: the power profile and tariffs can
//! change (a catalogue correction, a new model override) and the consumption of past
//! months must follow without rebuilding anything. The energy model is linear in the
//! state times and in `active_ms × cpu_util`, so these sums give exactly what
//! [`crate::energy::model`] computes from the raw reports.
//!
//! A report that straddles an hour boundary is split pro rata (its states spread evenly
//! over its interval), the same convention [`crate::energy::model::period_energy`] uses at a
//! period edge, so hour sums add up to the report and periods cut on hours agree with
//! the raw computation.
//!
//! Pure: no I/O.

use std::collections::BTreeMap;

use veille_proto::v1::Report;

use crate::energy::catalogue::PowerProfile;
use crate::energy::model::whole_system_measurement_j;

pub const HOUR_MS: i64 = veille_proto::units::MS_PER_HOUR;

/// Sums over the reports (or report parts) that fall into one hour of one device.
/// Milliseconds are fractional because of the pro-rata split.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourRollup {
    /// Time covered by reports.
    pub covered_ms: f64,
    /// Awake time (active + idle), for "hours on".
    pub awake_ms: f64,
    /// Awake time whose energy a whole-system meter measured, and that energy.
    pub measured_ms: f64,
    pub measured_j: f64,
    /// Awake time left to the model: active and idle parts, and Σ active_ms × cpu_util.
    pub modelled_active_ms: f64,
    pub modelled_active_util_ms: f64,
    pub modelled_idle_ms: f64,
    /// Sleep is always modelled (meters measure the awake part only).
    pub sleep_ms: f64,
    /// RAPL (CPU package + DRAM), beside the total, never in it.
    pub cpu_dram_j: f64,
    pub cpu_dram_ms: f64,
    /// The active part of `measured_ms`: a meter measures energy, not use, and
    /// `policy replay` counts the active time its windows would cut into whether or not
    /// a meter measured it (issue 23: metered laptops showed no interrupted hours).
    pub measured_active_ms: f64,
}

/// Fields of a rollup, in [`HourRollup::from_array`]'s order.
pub const FIELDS: usize = 11;

/// Encoded size of a rollup in the store: eleven little-endian f64.
pub const ENCODED_LEN: usize = FIELDS * 8;

/// Encoded size before `measured_active_ms` (the first ten fields): still read, with no
/// metered active time; `rebuild-rollups` recomputes it from the raw reports.
pub const ENCODED_LEN_V1: usize = 10 * 8;

impl HourRollup {
    /// The fields in encoding order ([`Self::from_array`]'s): a store's encoder packs
    /// them by column.
    pub fn as_array(&self) -> [f64; FIELDS] {
        [
            self.covered_ms,
            self.awake_ms,
            self.measured_ms,
            self.measured_j,
            self.modelled_active_ms,
            self.modelled_active_util_ms,
            self.modelled_idle_ms,
            self.sleep_ms,
            self.cpu_dram_j,
            self.cpu_dram_ms,
            self.measured_active_ms,
        ]
    }

    /// The rollup from its fields in encoding order (a store's decoder reads them
    /// straight into this, with no byte buffer between).
    pub fn from_array(a: [f64; FIELDS]) -> Self {
        Self {
            covered_ms: a[0],
            awake_ms: a[1],
            measured_ms: a[2],
            measured_j: a[3],
            modelled_active_ms: a[4],
            modelled_active_util_ms: a[5],
            modelled_idle_ms: a[6],
            sleep_ms: a[7],
            cpu_dram_j: a[8],
            cpu_dram_ms: a[9],
            measured_active_ms: a[10],
        }
    }

    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        for (chunk, v) in out.chunks_exact_mut(8).zip(self.as_array()) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// `None` for bytes of the wrong length (a store written by another version); the
    /// shorter encoding of earlier versions ([`ENCODED_LEN_V1`]) reads with no metered
    /// active time.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENCODED_LEN && bytes.len() != ENCODED_LEN_V1 {
            return None;
        }
        let mut a = [0f64; FIELDS];
        for (v, chunk) in a.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *v = f64::from_le_bytes(b);
        }
        Some(Self::from_array(a))
    }

    pub fn add(&mut self, o: &HourRollup) {
        let mut a = self.as_array();
        for (x, y) in a.iter_mut().zip(o.as_array()) {
            *x += y;
        }
        *self = Self::from_array(a);
    }

    fn scaled(&self, f: f64) -> Self {
        let mut a = self.as_array();
        for x in &mut a {
            *x *= f;
        }
        Self::from_array(a)
    }
}

/// Energy of a rollup with `profile`: (measured Wh, modelled Wh, RAPL Wh beside).
pub fn rollup_energy_wh(r: &HourRollup, profile: &PowerProfile) -> (f64, f64, f64) {
    let (idle, max, sleep) = (
        profile.p_idle_w.value,
        profile.p_max_w.value,
        profile.p_sleep_w.value,
    );
    let modelled_ms = idle * (r.modelled_active_ms + r.modelled_idle_ms)
        + (max - idle) * r.modelled_active_util_ms
        + sleep * r.sleep_ms;
    (
        r.measured_j / 3600.0,
        modelled_ms / MS_PER_HOUR,
        r.cpu_dram_j / 3600.0,
    )
}

const MS_PER_HOUR: f64 = veille_proto::units::MS_PER_HOUR as f64;

/// Start of the hour containing `ms` (Unix ms, UTC hours).
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The whole report as one rollup (before splitting into hours).
pub fn report_rollup(r: &Report) -> HourRollup {
    let len = r.end_unix_ms.saturating_sub(r.start_unix_ms).max(0) as f64;
    let active = r.active_ms as f64;
    let idle = r.idle_ms as f64;
    let u = if r.cpu_util.is_finite() {
        r.cpu_util.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut out = HourRollup {
        covered_ms: len,
        awake_ms: active + idle,
        sleep_ms: r.sleep_ms as f64,
        ..Default::default()
    };
    match whole_system_measurement_j(r) {
        Some(j) => {
            out.measured_ms = active + idle;
            out.measured_active_ms = active;
            out.measured_j = j;
        }
        None => {
            out.modelled_active_ms = active;
            out.modelled_active_util_ms = active * u;
            out.modelled_idle_ms = idle;
        }
    }
    if let Some(j) = crate::energy::model::rapl_j(r) {
        out.cpu_dram_j = j;
        out.cpu_dram_ms = len;
    }
    out
}

/// Splits a report over the hours it covers: hour start → its share.
pub fn split_by_hour(r: &Report) -> Vec<(i64, HourRollup)> {
    let whole = report_rollup(r);
    let (start, end) = (r.start_unix_ms, r.end_unix_ms);
    if end <= start {
        return Vec::new();
    }
    let len = (end - start) as f64;
    let mut out = Vec::new();
    let mut hour = hour_of(start);
    while hour < end {
        let a = start.max(hour);
        let b = end.min(hour + HOUR_MS);
        if b > a {
            out.push((hour, whole.scaled((b - a) as f64 / len)));
        }
        hour += HOUR_MS;
    }
    out
}

/// Adds every report's hours into `into`.
pub fn accumulate<'a>(
    reports: impl IntoIterator<Item = &'a Report>,
    into: &mut BTreeMap<i64, HourRollup>,
) {
    for r in reports {
        for (hour, part) in split_by_hour(r) {
            into.entry(hour).or_default().add(&part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::{EnergySource, Measurement};

    fn report(start: i64, end: i64, active: u64, util: f64) -> Report {
        let len = (end - start) as u64;
        Report {
            boot_id: "b".into(),
            seq: 1,
            start_unix_ms: start,
            end_unix_ms: end,
            boot_time_unix_s: start / 1000 - 10,
            active_ms: active,
            idle_ms: len - active,
            cpu_util: util,
            ..Default::default()
        }
    }

    #[test]
    fn a_report_across_an_hour_boundary_is_split_pro_rata() {
        let h = 1_700_000_000_000 / HOUR_MS * HOUR_MS + HOUR_MS;
        let r = report(h - 15_000, h + 45_000, 30_000, 0.5);
        let parts = split_by_hour(&r);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, h - HOUR_MS);
        assert_eq!(parts[1].0, h);
        assert!((parts[0].1.covered_ms - 15_000.0).abs() < 1e-9);
        assert!((parts[1].1.modelled_active_ms - 22_500.0).abs() < 1e-9);
        let mut sum = HourRollup::default();
        for (_, p) in &parts {
            sum.add(p);
        }
        assert_eq!(sum, report_rollup(&r));
        assert!((sum.modelled_active_util_ms - 15_000.0).abs() < 1e-9);
    }

    #[test]
    fn a_whole_system_measurement_replaces_the_model_rapl_stays_beside() {
        let mut r = report(0, 60_000, 60_000, 1.0);
        r.sleep_ms = 0;
        r.measurements = vec![
            Measurement {
                energy_j: 600.0,
                source: EnergySource::Rapl as i32,
            },
            Measurement {
                energy_j: 3000.0,
                source: EnergySource::ExternalMeter as i32,
            },
        ];
        let x = report_rollup(&r);
        assert_eq!((x.measured_ms, x.measured_j), (60_000.0, 3000.0));
        // The meter replaces the energy, not the use: the active time is kept.
        assert_eq!(x.measured_active_ms, 60_000.0);
        assert_eq!(x.modelled_active_ms, 0.0);
        assert_eq!((x.cpu_dram_j, x.cpu_dram_ms), (600.0, 60_000.0));
    }

    #[test]
    fn an_acpi_power_meter_report_counts_as_measured() {
        // 5 min: 2 active, 2 idle, 1 asleep; the ACPI meter measured the 4 awake
        // minutes at 150 W = 36 kJ.
        let mut r = report(0, 300_000, 120_000, 0.4);
        r.idle_ms = 120_000;
        r.sleep_ms = 60_000;
        r.measurements = vec![
            Measurement {
                energy_j: 36_000.0,
                source: EnergySource::AcpiPowerMeter as i32,
            },
            Measurement {
                energy_j: 9_000.0,
                source: EnergySource::Rapl as i32,
            },
        ];
        let x = report_rollup(&r);
        assert_eq!(x.awake_ms, 240_000.0);
        assert_eq!((x.measured_ms, x.measured_j), (x.awake_ms, 36_000.0));
        assert_eq!(x.measured_active_ms, 120_000.0);
        assert_eq!(
            (x.modelled_active_ms, x.modelled_idle_ms, x.sleep_ms),
            (0.0, 0.0, 60_000.0)
        );
        assert_eq!(x.cpu_dram_j, 9_000.0, "RAPL beside, not in measured_j");
    }

    #[test]
    fn encoding_round_trips_and_refuses_wrong_lengths() {
        let x = report_rollup(&report(0, 60_000, 10_000, 0.3));
        assert_eq!(HourRollup::decode(&x.encode()), Some(x));
        assert_eq!(HourRollup::decode(&[0u8; 7]), None);
        // A rollup stored before `measured_active_ms` reads with none.
        let mut m = x;
        m.measured_active_ms = 5.0;
        let old = &m.encode()[..ENCODED_LEN_V1];
        assert_eq!(
            HourRollup::decode(old),
            Some(HourRollup {
                measured_active_ms: 0.0,
                ..m
            })
        );
    }

    #[test]
    fn negative_times_floor_to_the_right_hour() {
        assert_eq!(hour_of(-1), -HOUR_MS);
        assert_eq!(hour_of(HOUR_MS), HOUR_MS);
    }
}
