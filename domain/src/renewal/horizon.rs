//! The renewal horizon: how old a device is, where that age comes from, and whether it
//! is fine, approaching its horizon or past it.
//!
//! Keeping a healthy device longer is the strongest lever on a fleet's footprint
//! (manufacturing is most of it, see [`crate::renewal::embodied`]), so the horizon is a prompt to
//! review a device, not an order to replace it: past its horizon a working device under
//! the recycling age is listed for reuse (loi REEN 2021-1485 art. 16, décret 2023-266),
//! not for the skip.
//!
//! Age precedence (DESIGN.md, "Renewal horizon"): the acquisition date from the asset
//! inventory ([`AgeSource::Acquisition`]), else the BIOS release date
//! ([`AgeSource::BiosEstimate`], an estimate), else the day the collector first saw the
//! device ([`AgeSource::FirstSeen`], a lower bound).
//!
//! The defaults live in `deploy/renewal.toml`, embedded; every value there says where it
//! comes from or why. A user file of the same layout overrides any of them
//! ([`RenewalPolicy::with_overrides`]); a per-device lifespan (GLPI) beats the class.
//!
//! Pure: no clock, no I/O. `today` is always passed in.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::energy::catalogue::DeviceClass;
use crate::renewal::embodied::EmbodiedEntry;

/// The embedded defaults (`deploy/renewal.toml`), shared with [`crate::renewal::embodied`].
pub const DEFAULT_RENEWAL_TOML: &str = include_str!("../../../deploy/renewal.toml");

/// A calendar date (proleptic Gregorian), stored as days since 1970-01-01.
///
/// Small on purpose: the renewal model needs only whole days, month arithmetic and
/// ordering, which does not justify a date-time dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    days: i32,
}

impl Date {
    /// `None` unless `month` is 1–12, `day` exists in that month, and `year` is 1–9999.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        if day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date {
            days: days_from_civil(year, month, day),
        })
    }

    /// From days since 1970-01-01 (negative before), e.g. a timestamp divided by 86 400.
    pub fn from_days_since_epoch(days: i32) -> Date {
        Date { days }
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i32 {
        self.days
    }

    /// (year, month 1–12, day 1–31).
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.days)
    }

    /// `YYYY-MM-DD` exactly, as `Inventory.bios_release_date` carries it; `None` for
    /// anything else, including an empty string.
    pub fn parse_iso(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let y = i32::try_from(num(0..4)?).ok()?;
        Date::from_ymd(y, num(5..7)?, num(8..10)?)
    }

    /// This date moved by `months` calendar months; a day that does not exist in the
    /// target month is clamped to its last day (2020-02-29 + 12 months = 2021-02-28),
    /// so an anniversary never spills into the next month. Saturates at January of year
    /// 1 and December of 9999 (the month, not only the year: clamping the year alone
    /// made 9999-12-01 + 1 month 9999-01-01, a date moved forward that went back).
    pub fn add_months(self, months: i32) -> Date {
        let (y, m, d) = self.ymd();
        let total =
            (i64::from(y) * 12 + i64::from(m) - 1 + i64::from(months)).clamp(12, 9999 * 12 + 11);
        let ny = total.div_euclid(12) as i32;
        let nm = (total.rem_euclid(12) + 1) as u32;
        let nd = d.min(days_in_month(ny, nm));
        Date {
            days: days_from_civil(ny, nm, nd),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's `days_from_civil` / `civil_from_days` (public domain algorithms).
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = i64::from(if m <= 2 { y - 1 } else { y });
    let (m, d) = (i64::from(m), i64::from(d));
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // Years 1–9999 keep this well inside i32.
    (era * 146_097 + doe - 719_468) as i32
}

fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// Where a device's age comes from, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgeSource {
    /// Purchase (or delivery, or startup) date from the asset inventory: the real age.
    Acquisition,
    /// BIOS release date: an estimate. The firmware is released some months before
    /// the machine is built, and a BIOS update moves the date forward, so the true age
    /// can be off either way by a year or more.
    BiosEstimate,
    /// The day the collector first heard from the device: a lower bound; the device
    /// was at least this old, probably older.
    FirstSeen,
    /// A monitor's week and year of manufacture from its EDID: close to the real age
    /// (a monitor ships weeks to months after it is built), used for monitors only.
    EdidManufacture,
}

impl AgeSource {
    /// A short label for reports, saying how far to trust the age.
    pub fn label(self) -> &'static str {
        match self {
            AgeSource::Acquisition => "acquisition date",
            AgeSource::BiosEstimate => "BIOS release date (estimate)",
            AgeSource::FirstSeen => "first seen (lower bound)",
            AgeSource::EdidManufacture => "EDID date of manufacture (monitor)",
        }
    }

    /// Machine-readable key for CSV/JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AgeSource::Acquisition => "acquisition",
            AgeSource::BiosEstimate => "bios_estimate",
            AgeSource::FirstSeen => "first_seen",
            AgeSource::EdidManufacture => "edid_manufacture",
        }
    }

    /// True when the real age may only be larger (first seen).
    pub fn is_lower_bound(self) -> bool {
        matches!(self, AgeSource::FirstSeen)
    }
}

impl fmt::Display for AgeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The date a device's age is counted from, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAge {
    pub since: Date,
    pub source: AgeSource,
}

impl DeviceAge {
    /// The best age available: acquisition, else BIOS release, else first seen; `None`
    /// when there is none of the three.
    pub fn from_sources(
        acquisition: Option<Date>,
        bios_release: Option<Date>,
        first_seen: Option<Date>,
    ) -> Option<DeviceAge> {
        let pick = |d: Option<Date>, source| d.map(|since| DeviceAge { since, source });
        pick(acquisition, AgeSource::Acquisition)
            .or_else(|| pick(bios_release, AgeSource::BiosEstimate))
            .or_else(|| pick(first_seen, AgeSource::FirstSeen))
    }

    /// Whole days of age at `today`; 0 for a date in the future (a typo in the
    /// inventory must not make a device younger than new).
    pub fn age_days(&self, today: Date) -> i32 {
        (today.days_since_epoch() - self.since.days_since_epoch()).max(0)
    }

    /// Whole calendar months completed at `today` (anniversaries clamped as in
    /// [`Date::add_months`]).
    pub fn age_months(&self, today: Date) -> u32 {
        if today <= self.since {
            return 0;
        }
        let (y0, m0, _) = self.since.ymd();
        let (y1, m1, _) = today.ymd();
        let mut months = (y1 - y0) * 12 + m1 as i32 - m0 as i32;
        if self.since.add_months(months) > today {
            months -= 1;
        }
        months.max(0) as u32
    }
}

/// Where a device stands against its horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RenewalStatus {
    /// More than the approaching window before the horizon.
    Ok,
    /// Within the approaching window: time to plan (budget, reuse, or decide to keep).
    Approaching,
    /// On or after the horizon date.
    Past,
}

impl RenewalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RenewalStatus::Ok => "ok",
            RenewalStatus::Approaching => "approaching",
            RenewalStatus::Past => "past",
        }
    }
}

impl fmt::Display for RenewalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value from the renewal file with the reason or source behind it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    pub value: u32,
    /// The publication or the reasoning; `assumption: …` when there is no publication.
    pub source: String,
}

/// A class's service horizon.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Horizon {
    /// Years of service before the device is due for review.
    pub years: u32,
    /// The publication or the reasoning.
    pub source: String,
}

/// Which horizon applied to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HorizonOrigin {
    /// The class default (or the user's override of it).
    Class(DeviceClass),
    /// A lifespan set on this device in the asset inventory.
    Device,
}

/// The result of [`RenewalPolicy::assess`] for one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub age: DeviceAge,
    /// Whole months of age at `today`.
    pub age_months: u32,
    /// The horizon that applied, in months of service.
    pub horizon_months: u32,
    pub horizon_origin: HorizonOrigin,
    /// `age.since` + horizon; the status turns `Past` on this day.
    pub horizon_date: Date,
    pub status: RenewalStatus,
    /// Working, past its horizon, under the recycling age: hand it on (loi REEN
    /// 2021-1485 art. 16, décret 2023-266), don't throw it away.
    pub reuse: bool,
    /// At or over the recycling age (10 years by default, décret 2023-266): goes to
    /// recycling whatever its state.
    pub recycle: bool,
}

/// Why a renewal file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RenewalError {
    #[error("renewal file is not valid TOML for this layout: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("renewal file: `{key}` is missing")]
    Missing { key: String },
    #[error("renewal file: `{key}` = {value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("renewal file: `{key}` has an empty source")]
    NoSource { key: String },
}

/// The layout of `deploy/renewal.toml` (and of a user override, where everything is
/// optional). Shared with [`crate::renewal::embodied`], which reads the `[embodied]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewalFile {
    #[serde(default)]
    pub(crate) approaching_months: Option<Setting>,
    #[serde(default)]
    pub(crate) recycle_after_years: Option<Setting>,
    #[serde(default)]
    pub(crate) horizons: BTreeMap<DeviceClass, Horizon>,
    #[serde(default)]
    pub(crate) embodied: BTreeMap<DeviceClass, EmbodiedEntry>,
}

/// Horizons per class, the approaching window and the recycling age.
#[derive(Debug, Clone)]
pub struct RenewalPolicy {
    horizons: BTreeMap<DeviceClass, Horizon>,
    approaching_months: Setting,
    recycle_after_years: Setting,
}

impl RenewalPolicy {
    /// The embedded defaults.
    ///
    /// # Panics
    /// Never in a released binary: a unit test parses the embedded file.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_RENEWAL_TOML).expect("embedded deploy/renewal.toml is valid")
    }

    /// A complete policy from TOML text: every class and both settings required.
    pub fn parse(toml_text: &str) -> Result<Self, RenewalError> {
        let file: RenewalFile = toml::from_str(toml_text)?;
        let missing = |key: &str| RenewalError::Missing {
            key: key.to_owned(),
        };
        let approaching = file
            .approaching_months
            .ok_or_else(|| missing("approaching_months"))?;
        let recycle = file
            .recycle_after_years
            .ok_or_else(|| missing("recycle_after_years"))?;
        let mut horizons = BTreeMap::new();
        for class in DeviceClass::ALL {
            let h = file
                .horizons
                .get(&class)
                .cloned()
                .ok_or_else(|| missing(&format!("horizons.{class}")))?;
            horizons.insert(class, h);
        }
        let policy = RenewalPolicy {
            horizons,
            approaching_months: approaching,
            recycle_after_years: recycle,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// This policy with a user file of the same layout applied; every key optional
    /// (`[embodied]` is read by [`crate::renewal::embodied::EmbodiedTable::with_overrides`]).
    pub fn with_overrides(&self, user_toml: &str) -> Result<Self, RenewalError> {
        let file: RenewalFile = toml::from_str(user_toml)?;
        let mut policy = self.clone();
        if let Some(s) = file.approaching_months {
            policy.approaching_months = s;
        }
        if let Some(s) = file.recycle_after_years {
            policy.recycle_after_years = s;
        }
        policy.horizons.extend(file.horizons);
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), RenewalError> {
        let check =
            |key: String, value: u32, range: std::ops::RangeInclusive<u32>, source: &str| {
                if !range.contains(&value) {
                    return Err(RenewalError::Invalid {
                        key,
                        value: value.to_string(),
                        reason: format!("must be {}–{}", range.start(), range.end()),
                    });
                }
                if source.trim().is_empty() {
                    return Err(RenewalError::NoSource { key });
                }
                Ok(())
            };
        for (class, h) in &self.horizons {
            check(
                format!("horizons.{class}.years"),
                h.years,
                1..=30,
                &h.source,
            )?;
        }
        let a = &self.approaching_months;
        check("approaching_months".into(), a.value, 0..=60, &a.source)?;
        let r = &self.recycle_after_years;
        check("recycle_after_years".into(), r.value, 1..=50, &r.source)?;
        Ok(())
    }

    /// The horizon of a class.
    pub fn horizon(&self, class: DeviceClass) -> &Horizon {
        &self.horizons[&class]
    }

    /// The approaching window, in months, and its reasoning.
    pub fn approaching_months(&self) -> &Setting {
        &self.approaching_months
    }

    /// The recycling age, in years, and its source.
    pub fn recycle_after_years(&self) -> &Setting {
        &self.recycle_after_years
    }

    /// Where a device stands at `today`.
    ///
    /// `lifespan_months` is a per-device lifespan from the asset inventory; it beats
    /// the class horizon. `working` says the device still works (it reports, its
    /// health is fine): only working devices are put on the reuse list.
    ///
    /// Boundaries: the status is `Past` from the horizon date itself (acquired
    /// 2020-03-15 with 5 years: past on 2025-03-15, approaching the day before), and
    /// `Approaching` from `horizon_date − approaching_months`. With
    /// [`AgeSource::FirstSeen`] a `Past` is certain but an `Ok` is only as good as the
    /// lower bound.
    pub fn assess(
        &self,
        class: DeviceClass,
        age: DeviceAge,
        lifespan_months: Option<u32>,
        working: bool,
        today: Date,
    ) -> Assessment {
        let (horizon_months, horizon_origin) = match lifespan_months {
            Some(m) if m > 0 => (m, HorizonOrigin::Device),
            _ => (
                self.horizons[&class].years * 12,
                HorizonOrigin::Class(class),
            ),
        };
        let as_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let horizon_date = age.since.add_months(as_i32(horizon_months));
        let approaching_from = horizon_date.add_months(-as_i32(self.approaching_months.value));
        let status = if today >= horizon_date {
            RenewalStatus::Past
        } else if today >= approaching_from {
            RenewalStatus::Approaching
        } else {
            RenewalStatus::Ok
        };
        let recycle_date = age
            .since
            .add_months(as_i32(self.recycle_after_years.value.saturating_mul(12)));
        let recycle = today >= recycle_date;
        Assessment {
            age,
            age_months: age.age_months(today),
            horizon_months,
            horizon_origin,
            horizon_date,
            status,
            reuse: working && status == RenewalStatus::Past && !recycle,
            recycle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Date {
        Date::from_ymd(y, m, day).unwrap()
    }

    fn acquired(since: Date) -> DeviceAge {
        DeviceAge {
            since,
            source: AgeSource::Acquisition,
        }
    }

    #[test]
    fn the_embedded_file_is_valid_with_the_documented_defaults() {
        let p = RenewalPolicy::parse(DEFAULT_RENEWAL_TOML).unwrap();
        let years = |c| p.horizon(c).years;
        assert_eq!(years(DeviceClass::Laptop), 5);
        assert_eq!(years(DeviceClass::Desktop), 6);
        assert_eq!(years(DeviceClass::Monitor), 8);
        assert_eq!(years(DeviceClass::Server), 7);
        for c in DeviceClass::ALL {
            assert!(!p.horizon(c).source.trim().is_empty(), "{c}");
        }
        assert_eq!(p.approaching_months().value, 6);
        assert_eq!(p.recycle_after_years().value, 10);
        assert!(p.recycle_after_years().source.contains("2023-266"));
    }

    #[test]
    fn dates_round_trip_and_reject_impossible_days() {
        assert_eq!(d(1970, 1, 1).days_since_epoch(), 0);
        assert_eq!(d(2000, 3, 1).days_since_epoch(), 11_017);
        for days in [-700_000, -1, 0, 59, 60, 10_000, 19_782, 2_900_000] {
            let date = Date::from_days_since_epoch(days);
            let (y, m, dd) = date.ymd();
            assert_eq!(Date::from_ymd(y, m, dd), Some(date));
        }
        assert_eq!(Date::from_ymd(2021, 2, 29), None);
        assert_eq!(
            Date::from_ymd(2024, 2, 29).map(|x| x.to_string()),
            Some("2024-02-29".into())
        );
        assert_eq!(Date::from_ymd(1900, 2, 29), None);
        assert!(Date::from_ymd(2000, 2, 29).is_some());
        assert_eq!(Date::from_ymd(2021, 13, 1), None);
        assert_eq!(Date::parse_iso("2019-06-04"), Some(d(2019, 6, 4)));
        for bad in [
            "",
            "2019-6-4",
            "2019/06/04",
            "2019-02-30",
            "abcd-ef-gh",
            "+019-06-04",
        ] {
            assert_eq!(Date::parse_iso(bad), None, "{bad}");
        }
        assert_eq!(d(2020, 2, 29).add_months(12), d(2021, 2, 28));
        assert_eq!(d(2020, 2, 29).add_months(48), d(2024, 2, 29));
        assert_eq!(d(2021, 8, 31).add_months(-6), d(2021, 2, 28));
        assert_eq!(d(2021, 1, 31).add_months(1), d(2021, 2, 28));
        // Regression (glpi_api fuzz target's "a warranty never ends before it starts"):
        // the year alone was clamped, so December 9999 + 1 month went back to January.
        assert_eq!(d(9999, 12, 1).add_months(1), d(9999, 12, 1));
        assert_eq!(d(9999, 6, 30).add_months(i32::MAX), d(9999, 12, 30));
        assert_eq!(d(1, 1, 31).add_months(-1), d(1, 1, 31));
        assert_eq!(d(2, 3, 15).add_months(i32::MIN), d(1, 1, 15));
    }

    #[test]
    fn age_precedence_acquisition_then_bios_then_first_seen() {
        let (a, b, f) = (d(2019, 9, 2), d(2018, 11, 20), d(2024, 1, 10));
        let age = DeviceAge::from_sources(Some(a), Some(b), Some(f)).unwrap();
        assert_eq!((age.since, age.source), (a, AgeSource::Acquisition));
        let age = DeviceAge::from_sources(None, Some(b), Some(f)).unwrap();
        assert_eq!((age.since, age.source), (b, AgeSource::BiosEstimate));
        assert_eq!(age.source.label(), "BIOS release date (estimate)");
        let age = DeviceAge::from_sources(None, None, Some(f)).unwrap();
        assert_eq!((age.since, age.source), (f, AgeSource::FirstSeen));
        assert!(age.source.is_lower_bound());
        assert_eq!(age.source.label(), "first seen (lower bound)");
        assert_eq!(DeviceAge::from_sources(None, None, None), None);
    }

    #[test]
    fn each_age_source_is_carried_into_the_assessment() {
        let p = RenewalPolicy::builtin();
        let today = d(2025, 6, 1);
        for source in [
            AgeSource::Acquisition,
            AgeSource::BiosEstimate,
            AgeSource::FirstSeen,
        ] {
            let age = DeviceAge {
                since: d(2019, 1, 15),
                source,
            };
            let a = p.assess(DeviceClass::Laptop, age, None, true, today);
            assert_eq!(a.age.source, source);
            assert_eq!(a.status, RenewalStatus::Past);
            assert_eq!(a.age_months, 76);
        }
    }

    #[test]
    fn status_at_the_horizon_boundaries() {
        let p = RenewalPolicy::builtin();
        let age = acquired(d(2020, 3, 15));
        let at = |today| p.assess(DeviceClass::Laptop, age, None, true, today);
        // Laptop: 5 years → horizon 2025-03-15, approaching from 2024-09-15.
        let exactly = at(d(2025, 3, 15));
        assert_eq!(exactly.horizon_date, d(2025, 3, 15));
        assert_eq!(exactly.status, RenewalStatus::Past);
        assert_eq!(exactly.age_months, 60);
        assert_eq!(at(d(2025, 3, 14)).status, RenewalStatus::Approaching);
        assert_eq!(at(d(2025, 3, 14)).age_months, 59);
        assert_eq!(at(d(2024, 9, 15)).status, RenewalStatus::Approaching);
        assert_eq!(at(d(2024, 9, 14)).status, RenewalStatus::Ok);
        assert_eq!(at(d(2019, 1, 1)).status, RenewalStatus::Ok);
        assert_eq!(at(d(2019, 1, 1)).age_months, 0);
    }

    #[test]
    fn a_leap_day_acquisition_reaches_its_horizon_on_28_february() {
        let p = RenewalPolicy::builtin();
        let age = acquired(d(2020, 2, 29));
        let at = |today| p.assess(DeviceClass::Laptop, age, None, true, today);
        assert_eq!(at(d(2025, 2, 28)).horizon_date, d(2025, 2, 28));
        assert_eq!(at(d(2025, 2, 28)).status, RenewalStatus::Past);
        assert_eq!(at(d(2025, 2, 27)).status, RenewalStatus::Approaching);
        // Approaching edge: 2025-02-28 − 6 months = 2024-08-28.
        assert_eq!(at(d(2024, 8, 28)).status, RenewalStatus::Approaching);
        assert_eq!(at(d(2024, 8, 27)).status, RenewalStatus::Ok);
        // Today on a leap day, device with a 4-year horizon from a leap day.
        let a = p.assess(DeviceClass::Laptop, age, Some(48), true, d(2024, 2, 29));
        assert_eq!((a.status, a.age_months), (RenewalStatus::Past, 48));
    }

    #[test]
    fn the_approaching_window_and_horizons_are_configurable() {
        let user = r#"
            approaching_months = { value = 12, source = "our budget is voted a year ahead" }
            [horizons]
            laptop = { years = 7, source = "our policy since 2024" }
        "#;
        let p = RenewalPolicy::builtin().with_overrides(user).unwrap();
        assert_eq!(p.horizon(DeviceClass::Laptop).years, 7);
        assert_eq!(p.horizon(DeviceClass::Desktop).years, 6);
        let age = acquired(d(2020, 3, 15));
        let at = |today| p.assess(DeviceClass::Laptop, age, None, true, today);
        assert_eq!(at(d(2026, 3, 15)).status, RenewalStatus::Approaching);
        assert_eq!(at(d(2026, 3, 14)).status, RenewalStatus::Ok);
        assert_eq!(at(d(2027, 3, 15)).status, RenewalStatus::Past);

        let err = RenewalPolicy::builtin()
            .with_overrides("[horizons]\nlaptop = { years = 0, source = \"x\" }")
            .unwrap_err();
        assert!(err.to_string().contains("horizons.laptop.years"), "{err}");
        let err = RenewalPolicy::builtin()
            .with_overrides("[horizons]\nlaptop = { years = 6, source = \" \" }")
            .unwrap_err();
        assert!(matches!(err, RenewalError::NoSource { .. }), "{err}");
        assert!(
            RenewalPolicy::builtin()
                .with_overrides("colour = 1")
                .is_err()
        );
    }

    #[test]
    fn a_per_device_lifespan_beats_the_class() {
        let p = RenewalPolicy::builtin();
        let age = acquired(d(2020, 3, 15));
        let a = p.assess(DeviceClass::Desktop, age, Some(8 * 12), true, d(2026, 6, 1));
        assert_eq!(a.horizon_origin, HorizonOrigin::Device);
        assert_eq!(a.horizon_date, d(2028, 3, 15));
        assert_eq!(a.status, RenewalStatus::Ok);
        let a = p.assess(DeviceClass::Desktop, age, None, true, d(2026, 6, 1));
        assert_eq!(a.horizon_origin, HorizonOrigin::Class(DeviceClass::Desktop));
        assert_eq!(a.status, RenewalStatus::Past);
    }

    #[test]
    fn reuse_under_ten_years_recycle_from_ten() {
        let p = RenewalPolicy::builtin();
        let age = acquired(d(2015, 5, 20));
        let at = |today, working| p.assess(DeviceClass::Desktop, age, None, working, today);
        let a = at(d(2025, 5, 19), true);
        assert_eq!(
            (a.status, a.reuse, a.recycle),
            (RenewalStatus::Past, true, false)
        );
        // A broken device is not handed on.
        assert!(!at(d(2025, 5, 19), false).reuse);
        // Ten years to the day: recycling, not reuse, working or not.
        let a = at(d(2025, 5, 20), true);
        assert_eq!((a.reuse, a.recycle), (false, true));
        assert!(at(d(2025, 5, 20), false).recycle);
        // Not past the horizon: neither list.
        let a = at(d(2018, 1, 1), true);
        assert_eq!(
            (a.status, a.reuse, a.recycle),
            (RenewalStatus::Ok, false, false)
        );
    }

    #[test]
    fn a_date_in_the_future_is_age_zero_not_negative() {
        let age = acquired(d(2030, 1, 1));
        assert_eq!(age.age_days(d(2025, 1, 1)), 0);
        assert_eq!(age.age_months(d(2025, 1, 1)), 0);
        let a =
            RenewalPolicy::builtin().assess(DeviceClass::Server, age, None, true, d(2025, 1, 1));
        assert_eq!(a.status, RenewalStatus::Ok);
    }
}
