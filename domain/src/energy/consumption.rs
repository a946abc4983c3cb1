//! The consumption report: kWh, €, kgCO2e, hours on, and how sure each figure is, per
//! org, site, group, class, device or month.
//!
//! Inputs are each device's hourly rollups ([`crate::energy::rollup`]) and boot-session edges;
//! nothing here reads raw reports, so a year of a large fleet stays cheap. Every
//! millisecond of the period is one of: measured (a whole-system meter), modelled (the
//! power profile applied to reported states), inferred off (between boot sessions, or
//! after a SHUTDOWN), or unknown (no evidence: counted in the coverage, never filled with
//! energy). The same rule as [`crate::energy::gaps::classify`], applied to session edges.
//!
//! Conventions a reader of the report must know:
//! - a device with several tags counts in each of its groups (group totals can exceed
//!   the org's); one without tags is in group `(none)`;
//! - monitors listed in the device's inventory draw the catalogue's profile for their
//!   diagonal (EDID; the 21.5–25" profile when the size is unknown)
//!   while the device is awake (on), asleep (sleep) or inferred off (off);
//! - hours are attributed by their UTC start: with a time zone whose offset is not a
//!   whole number of hours, month edges are approximate to the hour;
//! - the period is cut at "now": the future is neither off nor unknown.
//!
//! Pure: no I/O; time zones come from `jiff`'s bundled database.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::energy::carbon::{CarbonError, GridFactor, Tariff};
use crate::energy::catalogue::{Catalogue, DeviceClass, Duty, PowerProfile, Query};
use crate::energy::intensity::HourlyIntensity;
use crate::energy::rollup::{HOUR_MS, HourRollup, rollup_energy_wh};

const MS_PER_HOUR: f64 = veille_proto::units::MS_PER_HOUR as f64;

/// `[energy]` in the collector config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnergyConfig {
    /// IANA time zone for dates, months and working hours.
    pub timezone: String,
    /// Working days, `mon`..`sun`.
    pub working_days: Vec<String>,
    /// Working hours `HH-HH` (local, whole hours), e.g. `8-19`.
    pub working_hours: String,
    /// Optional power-profile file extending the built-in catalogue; empty = none.
    pub power_profiles: String,
    /// Electricity price; absent = the built-in default ([`Tariff::default`]).
    #[serde(default)]
    pub tariff: Tariff,
    /// Grid carbon factor; absent = ADEME's French mix ([`GridFactor::default`]).
    #[serde(default)]
    pub grid: GridFactor,
    /// Zone of the hourly intensities (`import carbon --zone`) that weigh each hour's
    /// kWh; empty: the grid factor for every hour.
    #[serde(default)]
    pub grid_zone: String,
    /// Sites in another zone than `grid_zone` (site → zone).
    #[serde(default)]
    pub site_grid_zones: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumptionError {
    #[error("energy.timezone = {value:?}: {reason}")]
    TimeZone { value: String, reason: String },
    #[error("energy.working_days: {value:?} is not a day (mon, tue, wed, thu, fri, sat, sun)")]
    Day { value: String },
    #[error("energy.working_hours = {value:?}: expected HH-HH with 0 <= start < end <= 24")]
    Hours { value: String },
    #[error("{0}")]
    Carbon(#[from] CarbonError),
    #[error("invalid date {value:?}: expected YYYY-MM-DD")]
    Date { value: String },
    #[error("period: --to ({to}) must be after --from ({from})")]
    Period { from: String, to: String },
    #[error("period of {days} days: a report covers at most {max} days", max = MAX_PERIOD_DAYS)]
    PeriodTooLong { days: i64 },
    #[error("orgs {org:?} energy: {source}")]
    Org {
        org: String,
        source: Box<ConsumptionError>,
    },
    #[error("--by {value:?}: expected org, site, group, class, device or month")]
    GroupBy { value: String },
}

/// Per-organisation overrides of `[energy]` (`[orgs.energy]` under an `[[orgs]]`
/// entry): a body in another time zone, with its own tariff or working hours. Keys left
/// out keep the collector-wide value.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrgEnergy {
    pub timezone: Option<String>,
    pub working_days: Option<Vec<String>>,
    pub working_hours: Option<String>,
    pub tariff: Option<Tariff>,
    pub grid: Option<GridFactor>,
    pub grid_zone: Option<String>,
    pub site_grid_zones: Option<BTreeMap<String, String>>,
}

/// The collector's configuration defaults, embedded: `[energy]` is read from here so
/// its default values are written in one place only.
const COLLECTOR_DEFAULTS_TOML: &str = include_str!("../../../deploy/collector.toml");

/// `[energy]` as `deploy/collector.toml` sets it (Europe/Paris, Monday to Friday,
/// 8-19, the built-in tariff and grid factor): the configuration a collector runs
/// with when nothing is configured, and the fixture tests start from.
///
/// # Panics
/// Never from outside input: the text is `deploy/collector.toml` embedded at compile
/// time, and `the_default_energy_settings_are_the_collector_files` (and the config
/// tests that parse the same file) fail the build's tests if it ever stops parsing.
impl Default for EnergyConfig {
    fn default() -> Self {
        let table: toml::Table = toml::from_str(COLLECTOR_DEFAULTS_TOML)
            .expect("deploy/collector.toml is valid TOML (checked by its tests)");
        table
            .get("energy")
            .cloned()
            .expect("deploy/collector.toml has an [energy] table")
            .try_into()
            .expect("deploy/collector.toml's [energy] is a valid EnergyConfig")
    }
}

impl EnergyConfig {
    /// This config with `o`'s overrides applied.
    pub fn with_org(&self, o: &OrgEnergy) -> EnergyConfig {
        EnergyConfig {
            timezone: o.timezone.clone().unwrap_or_else(|| self.timezone.clone()),
            working_days: o
                .working_days
                .clone()
                .unwrap_or_else(|| self.working_days.clone()),
            working_hours: o
                .working_hours
                .clone()
                .unwrap_or_else(|| self.working_hours.clone()),
            power_profiles: self.power_profiles.clone(),
            tariff: o.tariff.clone().unwrap_or_else(|| self.tariff.clone()),
            grid: o.grid.clone().unwrap_or_else(|| self.grid.clone()),
            grid_zone: o
                .grid_zone
                .clone()
                .unwrap_or_else(|| self.grid_zone.clone()),
            site_grid_zones: o
                .site_grid_zones
                .clone()
                .unwrap_or_else(|| self.site_grid_zones.clone()),
        }
    }
}

/// Working hours, resolved.
#[derive(Debug, Clone)]
pub struct WorkingHours {
    days: [bool; 7],
    start_hour: i8,
    end_hour: i8,
}

impl WorkingHours {
    fn is_working(&self, weekday: Weekday, hour: i8) -> bool {
        self.days[weekday.to_monday_zero_offset() as usize]
            && hour >= self.start_hour
            && hour < self.end_hour
    }
}

/// Everything a report computation needs besides the data.
#[derive(Debug, Clone)]
pub struct Context {
    pub catalogue: Catalogue,
    pub tariff: Tariff,
    pub grid: GridFactor,
    pub tz: TimeZone,
    pub working: WorkingHours,
    /// Organisations with their own settings ([`OrgEnergy`]); others use this one.
    pub per_org: BTreeMap<String, std::sync::Arc<Context>>,
    /// `[energy] grid_zone`: the zone whose hourly intensities weigh kWh; empty: none.
    pub grid_zone: String,
    /// `[energy] site_grid_zones`: sites in another zone.
    pub site_grid_zones: BTreeMap<String, String>,
    /// Hourly intensities by zone, loaded by the caller for the report's period
    /// ([`Context::with_intensities`]); empty: the grid factor for every hour.
    pub intensities: std::sync::Arc<BTreeMap<String, HourlyIntensity>>,
}

impl Context {
    pub fn new(config: &EnergyConfig, catalogue: Catalogue) -> Result<Self, ConsumptionError> {
        let tz = TimeZone::get(&config.timezone).map_err(|e| ConsumptionError::TimeZone {
            value: config.timezone.clone(),
            reason: e.to_string(),
        })?;
        let mut days = [false; 7];
        for d in &config.working_days {
            let i = match d.to_ascii_lowercase().as_str() {
                "mon" => 0,
                "tue" => 1,
                "wed" => 2,
                "thu" => 3,
                "fri" => 4,
                "sat" => 5,
                "sun" => 6,
                _ => return Err(ConsumptionError::Day { value: d.clone() }),
            };
            days[i] = true;
        }
        let bad = || ConsumptionError::Hours {
            value: config.working_hours.clone(),
        };
        let (a, b) = config.working_hours.split_once('-').ok_or_else(bad)?;
        let start_hour: i8 = a.trim().parse().map_err(|_| bad())?;
        let end_hour: i8 = b.trim().parse().map_err(|_| bad())?;
        if !(0..24).contains(&start_hour) || end_hour <= start_hour || end_hour > 24 {
            return Err(bad());
        }
        config.tariff.validate()?;
        config.grid.validate()?;
        Ok(Self {
            catalogue,
            tariff: config.tariff.clone(),
            grid: config.grid.clone(),
            tz,
            working: WorkingHours {
                days,
                start_hour,
                end_hour,
            },
            per_org: BTreeMap::new(),
            grid_zone: config.grid_zone.clone(),
            site_grid_zones: config.site_grid_zones.clone(),
            intensities: Default::default(),
        })
    }

    /// Every zone this context and its orgs' name: those whose intensities a report
    /// needs.
    pub fn zones(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for c in std::iter::once(self).chain(self.per_org.values().map(|c| c.as_ref())) {
            out.extend(
                std::iter::once(&c.grid_zone)
                    .chain(c.site_grid_zones.values())
                    .filter(|z| !z.is_empty())
                    .cloned(),
            );
        }
        out
    }

    /// This context (and its orgs') with hourly intensities by zone.
    pub fn with_intensities(&self, intensities: BTreeMap<String, HourlyIntensity>) -> Self {
        let shared = std::sync::Arc::new(intensities);
        let mut ctx = self.clone();
        ctx.intensities = shared.clone();
        for c in ctx.per_org.values_mut() {
            let mut org = c.as_ref().clone();
            org.intensities = shared.clone();
            *c = std::sync::Arc::new(org);
        }
        ctx
    }

    /// The hourly intensities a device of `site` is weighed by, if its zone has any.
    fn intensity_for(&self, site: &str) -> Option<&HourlyIntensity> {
        let zone = self.site_grid_zones.get(site).unwrap_or(&self.grid_zone);
        self.intensities.get(zone).filter(|i| !i.is_empty())
    }

    /// The collector-wide context plus one per organisation that overrides `[energy]`.
    /// An org's bad override is reported with the org's id.
    pub fn with_orgs(
        config: &EnergyConfig,
        catalogue: Catalogue,
        orgs: &[(String, OrgEnergy)],
    ) -> Result<Self, ConsumptionError> {
        let mut ctx = Self::new(config, catalogue.clone())?;
        for (id, o) in orgs {
            let org_ctx = Self::new(&config.with_org(o), catalogue.clone()).map_err(|e| {
                ConsumptionError::Org {
                    org: id.clone(),
                    source: Box::new(e),
                }
            })?;
            ctx.per_org.insert(id.clone(), std::sync::Arc::new(org_ctx));
        }
        Ok(ctx)
    }

    /// The settings that apply to `org`'s devices.
    pub fn for_org(&self, org: &str) -> &Context {
        self.per_org.get(org).map(|c| c.as_ref()).unwrap_or(self)
    }

    /// Whether `ms` falls on a working day, and within working hours, in this
    /// context's time zone: the web page's "left on at night / at weekends".
    pub fn working_at(&self, ms: i64) -> (bool, bool) {
        match self.local(ms) {
            Some(z) => {
                let day = self.working.days[z.weekday().to_monday_zero_offset() as usize];
                (day, self.working.is_working(z.weekday(), z.hour()))
            }
            None => (false, false),
        }
    }

    /// Local midnight starting `date` (`YYYY-MM-DD`), as Unix ms.
    pub fn day_start_ms(&self, date: &str) -> Result<i64, ConsumptionError> {
        let bad = || ConsumptionError::Date {
            value: date.to_owned(),
        };
        let d: jiff::civil::Date = date.parse().map_err(|_| bad())?;
        let z = d.to_zoned(self.tz.clone()).map_err(|_| bad())?;
        Ok(z.timestamp().as_millisecond())
    }

    fn offset_minutes(&self, ms: i64) -> i32 {
        Timestamp::from_millisecond(ms)
            .map(|t| self.tz.to_offset(t).seconds() / 60)
            .unwrap_or(0)
    }

    fn local(&self, ms: i64) -> Option<jiff::Zoned> {
        Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_zoned(self.tz.clone()))
    }

    /// `YYYY-MM` of the local month containing `ms`, and that month's [start, end).
    fn month_of(&self, ms: i64) -> Option<(String, i64, i64)> {
        let z = self.local(ms)?;
        let first = z.date().first_of_month();
        let start = first
            .to_zoned(self.tz.clone())
            .ok()?
            .timestamp()
            .as_millisecond();
        let next = first.checked_add(jiff::Span::new().months(1)).ok()?;
        let end = next
            .to_zoned(self.tz.clone())
            .ok()?
            .timestamp()
            .as_millisecond();
        Some((
            format!("{:04}-{:02}", first.year(), first.month()),
            start,
            end,
        ))
    }
}

/// The edges of one boot session, as the store keeps them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionEdge {
    pub boot_ms: i64,
    pub first_start_ms: i64,
    pub last_end_ms: i64,
    /// Its latest report carries SHUTDOWN.
    pub last_shutdown: bool,
    /// Its latest report carries AGENT_STOP and not SHUTDOWN.
    pub last_agent_stop: bool,
}

/// Inferred-off intervals from session edges, clipped to `[from, to)`: between a
/// session's last report and the next session's boot, unless the agent said it stopped
/// with the machine still running; after a last session that said SHUTDOWN.
pub fn inferred_off(sessions: &[SessionEdge], from: i64, to: i64) -> Vec<(i64, i64)> {
    inferred_off_with_evidence(sessions, from, to)
        .into_iter()
        .map(|(a, b, _)| (a, b))
        .collect()
}

/// What an inferred-off interval rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffEvidence {
    /// The session's last report carried SHUTDOWN: the machine said it was stopping.
    Shutdown,
    /// Only a later boot says the machine went down: it may have crashed, lost power,
    /// or stopped without the agent seeing it, and the last report may have been cut
    /// short of the real end. Weaker: reports give it its own share.
    RebootOnly,
}

/// [`inferred_off`] with what each interval rests on.
pub fn inferred_off_with_evidence(
    sessions: &[SessionEdge],
    from: i64,
    to: i64,
) -> Vec<(i64, i64, OffEvidence)> {
    let mut s: Vec<&SessionEdge> = sessions
        .iter()
        .filter(|e| e.last_end_ms > e.first_start_ms)
        .collect();
    s.sort_by_key(|e| e.first_start_ms);
    let mut out = Vec::new();
    let mut push = |a: i64, b: i64, evidence| {
        let (a, b) = (a.max(from), b.min(to));
        if b > a {
            out.push((a, b, evidence));
        }
    };
    let evidence = |e: &SessionEdge| {
        if e.last_shutdown {
            OffEvidence::Shutdown
        } else {
            OffEvidence::RebootOnly
        }
    };
    for pair in s.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        if next.first_start_ms <= prev.last_end_ms || prev.last_agent_stop {
            continue;
        }
        let boot = next.boot_ms.clamp(prev.last_end_ms, next.first_start_ms);
        push(prev.last_end_ms, boot, evidence(prev));
    }
    if let Some(last) = s.last()
        && last.last_shutdown
    {
        push(last.last_end_ms, i64::MAX, OffEvidence::Shutdown);
    }
    out
}

/// One device's data for a report.
#[derive(Debug, Clone, Default)]
pub struct DeviceData {
    pub org: String,
    pub device_id: String,
    pub hostname: String,
    pub site: String,
    pub groups: Vec<String>,
    pub class: DeviceClass,
    /// The SMBIOS chassis type code from the inventory, when the agent read one.
    pub chassis_code: Option<u8>,
    pub manufacturer: String,
    pub model: String,
    pub monitors: u32,
    /// Diagonals (inches, from EDID) of the first monitors, where known; monitors past
    /// the end of this list draw the default (21.5–25") display profile.
    pub monitor_diagonals_in: Vec<f64>,
    /// EDID maker (PNP id, "DEL") and product name ("DELL P2419H") of each monitor, in
    /// inventory order (empty where EDID gives none): a monitor the catalogue lists by
    /// model draws its own declared power rather than its size band's.
    pub monitor_models: Vec<(String, String)>,
    /// Rollups by hour start, any hours (filtered to each window here).
    pub hours: Vec<(i64, HourRollup)>,
    pub sessions: Vec<SessionEdge>,
}

/// Figures of one row. Energies in kWh; times in hours; shares in percent of the
/// period, unrounded (they sum to 100).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub devices: u64,
    pub kwh: f64,
    pub measured_kwh: f64,
    pub modelled_kwh: f64,
    pub inferred_off_kwh: f64,
    /// Part of `kwh` drawn by monitors (modelled).
    pub monitors_kwh: f64,
    /// RAPL CPU+DRAM energy where measured: beside `kwh`, never part of it.
    pub cpu_dram_kwh: f64,
    pub eur: f64,
    pub kg_co2e: f64,
    /// Low and high ends of `kwh`, `eur` and `kg_co2e`: modelled and inferred-off energy
    /// scaled by each profile's range (the spread of its class, or ±10 % for a model
    /// entry); measured energy counts as itself (meters report no uncertainty yet).
    /// Sums of rows are sums of their ranges.
    pub kwh_low: f64,
    pub kwh_high: f64,
    pub eur_low: f64,
    pub eur_high: f64,
    pub kg_co2e_low: f64,
    pub kg_co2e_high: f64,
    pub hours_on: f64,
    pub hours_on_outside_working_hours: f64,
    pub measured_pct: f64,
    pub modelled_pct: f64,
    pub inferred_off_pct: f64,
    pub unknown_pct: f64,
    /// The part of `inferred_off_pct` whose only evidence is a later boot (no
    /// SHUTDOWN seen before it: a crash, a power cut, a stop the agent missed):
    /// weaker evidence than an announced shutdown, so shown on its own.
    pub inferred_off_reboot_pct: f64,
    /// Share of `kwh` whose kgCO2e was weighed hour by hour with the grid's hourly
    /// intensity (`import carbon`); the rest used the annual grid factor.
    pub hourly_carbon_kwh_pct: f64,
    /// Devices whose class was unknown: their energy uses the fallback profile.
    pub fallback_profile_devices: u64,
    #[serde(skip)]
    ms: [f64; 4],
    /// Milliseconds of `ms[2]` (inferred off) resting on a reboot only.
    #[serde(skip)]
    off_reboot_ms: f64,
    /// kWh of `kwh` weighed with an hourly intensity.
    #[serde(skip)]
    hourly_kwh: f64,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.devices += o.devices;
        self.kwh += o.kwh;
        self.measured_kwh += o.measured_kwh;
        self.modelled_kwh += o.modelled_kwh;
        self.inferred_off_kwh += o.inferred_off_kwh;
        self.monitors_kwh += o.monitors_kwh;
        self.cpu_dram_kwh += o.cpu_dram_kwh;
        self.eur += o.eur;
        self.kg_co2e += o.kg_co2e;
        self.kwh_low += o.kwh_low;
        self.kwh_high += o.kwh_high;
        self.eur_low += o.eur_low;
        self.eur_high += o.eur_high;
        self.kg_co2e_low += o.kg_co2e_low;
        self.kg_co2e_high += o.kg_co2e_high;
        self.hours_on += o.hours_on;
        self.hours_on_outside_working_hours += o.hours_on_outside_working_hours;
        self.fallback_profile_devices += o.fallback_profile_devices;
        for (a, b) in self.ms.iter_mut().zip(o.ms) {
            *a += b;
        }
        self.off_reboot_ms += o.off_reboot_ms;
        self.hourly_kwh += o.hourly_kwh;
    }

    fn finish(&mut self) {
        let total: f64 = self.ms.iter().sum();
        if total > 0.0 {
            self.measured_pct = 100.0 * self.ms[0] / total;
            self.modelled_pct = 100.0 * self.ms[1] / total;
            self.inferred_off_pct = 100.0 * self.ms[2] / total;
            self.unknown_pct = 100.0 * self.ms[3] / total;
            self.inferred_off_reboot_pct = 100.0 * self.off_reboot_ms / total;
        }
        if self.kwh > 0.0 {
            self.hourly_carbon_kwh_pct = 100.0 * self.hourly_kwh / self.kwh;
        }
    }

    /// Milliseconds measured, modelled, inferred off, unknown.
    pub fn coverage_ms(&self) -> [f64; 4] {
        self.ms
    }
}

/// One device over `[from, to)`.
pub fn device_figures(
    dev: &DeviceData,
    ctx: &Context,
    from: i64,
    to: i64,
) -> Result<Figures, ConsumptionError> {
    let hours = HourTable::new(ctx, from, to)?;
    device_figures_with(dev, ctx, &hours, from, to)
}

/// Longest period a report computes, days: thirty years, longer than any device's
/// life (older hours have no data). The per-hour table costs 16 bytes an hour (4 MiB
/// here); without a bound, `from=1013-01-01` in a query string made one request build
/// 9 million hours (the `api_query` fuzz target's timeout).
pub const MAX_PERIOD_DAYS: i64 = 30 * 366;

/// Per-hour facts that are the same for every device (price, working or not), so a
/// report over many devices computes them once: time-zone conversions and tariff
/// lookups would otherwise dominate a fleet-wide report.
pub struct HourTable {
    first_hour: i64,
    /// € per kWh and "within working hours", for each hour from `first_hour`.
    hours: Vec<(f64, bool)>,
}

impl HourTable {
    pub fn new(ctx: &Context, from: i64, to: i64) -> Result<Self, ConsumptionError> {
        let days = to.saturating_sub(from) / (24 * HOUR_MS);
        if days > MAX_PERIOD_DAYS {
            return Err(ConsumptionError::PeriodTooLong { days });
        }
        let first_hour = from.div_euclid(HOUR_MS) * HOUR_MS;
        let mut hours = Vec::new();
        let mut h = first_hour;
        while h < to {
            let price = ctx
                .tariff
                .cost(h, h + HOUR_MS, 1.0, ctx.offset_minutes(h))?
                .total_eur;
            let working = ctx
                .local(h)
                .is_some_and(|z| ctx.working.is_working(z.weekday(), z.hour()));
            hours.push((price, working));
            h += HOUR_MS;
        }
        Ok(Self { first_hour, hours })
    }

    fn get(&self, hour: i64) -> Option<(f64, bool)> {
        let i = usize::try_from((hour - self.first_hour).div_euclid(HOUR_MS)).ok()?;
        self.hours.get(i).copied()
    }
}

/// What a device draws beside its rollups: its power profile and its monitors'
/// summed power per state. Devices of one model with the same monitors share it, so a
/// fleet report looks each combination up once ([`PowerCache`]): a catalogue lookup
/// (family rules, model keys, the reason text) costs more than a device's month of
/// hours.
#[derive(Debug, Clone)]
struct DevicePower {
    profile: PowerProfile,
    fallback: bool,
    mon_on_w: f64,
    mon_sleep_w: f64,
    mon_off_w: f64,
    /// The monitors' power per state (on, sleep, off) at the low and high ends of each
    /// display's range (factors on energy).
    mon_lo: [f64; 3],
    mon_hi: [f64; 3],
}

impl DevicePower {
    fn of(dev: &DeviceData, ctx: &Context) -> Self {
        let (profile, origin) =
            ctx.catalogue
                .profile_for(dev.class, dev.chassis_code, &dev.manufacturer, &dev.model);
        // The monitors' summed power per state: each by its own diagonal's profile.
        let (mut mon_on_w, mut mon_sleep_w, mut mon_off_w) = (0.0, 0.0, 0.0);
        let (mut mon_lo, mut mon_hi) = ([0.0; 3], [0.0; 3]);
        for i in 0..dev.monitors as usize {
            let screen_in = dev.monitor_diagonals_in.get(i).copied();
            let (maker, name) = dev
                .monitor_models
                .get(i)
                .map_or(("", ""), |(m, n)| (m.as_str(), n.as_str()));
            let by_size = Query {
                class: DeviceClass::Monitor,
                screen_in,
                ..Query::default()
            };
            let by_model = ctx.catalogue.lookup(&Query {
                manufacturer: maker,
                model: name,
                ..by_size
            });
            // A name that happens to match a computer's entry is not taken for a display.
            let p = if by_model.profile.duty == Duty::Display {
                by_model.profile
            } else {
                ctx.catalogue.lookup(&by_size).profile
            };
            mon_on_w += p.p_idle_w.value;
            mon_sleep_w += p.p_sleep_w.value;
            mon_off_w += p.p_off_w.value;
            for (acc, k) in [(&mut mon_lo, p.range.low), (&mut mon_hi, p.range.high)] {
                acc[0] += k * p.p_idle_w.value;
                acc[1] += k * p.p_sleep_w.value;
                acc[2] += k * p.p_off_w.value;
            }
        }
        Self {
            profile: profile.clone(),
            fallback: origin.is_fallback(),
            mon_on_w,
            mon_sleep_w,
            mon_off_w,
            mon_lo,
            mon_hi,
        }
    }
}

/// [`DevicePower`] by what decides it: the org's settings (`None`: the defaults), class,
/// SMBIOS chassis code, manufacturer, model, and the monitors' diagonals (bits; `None`
/// for an unknown one).
type PowerKey = (
    Option<String>,
    DeviceClass,
    Option<u8>,
    String,
    String,
    Vec<(Option<u64>, String, String)>,
);

/// The power of each combination met in one report.
#[derive(Default)]
struct PowerCache(HashMap<PowerKey, DevicePower>);

impl PowerCache {
    fn get(&mut self, org: Option<&str>, dev: &DeviceData, ctx: &Context) -> &DevicePower {
        let monitors = (0..dev.monitors as usize)
            .map(|i| {
                let (maker, name) = dev.monitor_models.get(i).cloned().unwrap_or_default();
                (
                    dev.monitor_diagonals_in.get(i).map(|d| d.to_bits()),
                    maker,
                    name,
                )
            })
            .collect();
        let key = (
            org.map(str::to_owned),
            dev.class,
            dev.chassis_code,
            dev.manufacturer.clone(),
            dev.model.clone(),
            monitors,
        );
        self.0
            .entry(key)
            .or_insert_with(|| DevicePower::of(dev, ctx))
    }
}

fn device_figures_with(
    dev: &DeviceData,
    ctx: &Context,
    table: &HourTable,
    from: i64,
    to: i64,
) -> Result<Figures, ConsumptionError> {
    device_figures_of(dev, ctx, &DevicePower::of(dev, ctx), table, from, to)
}

/// One device over `[from, to)` with its power looked up already.
fn device_figures_of(
    dev: &DeviceData,
    ctx: &Context,
    power: &DevicePower,
    table: &HourTable,
    from: i64,
    to: i64,
) -> Result<Figures, ConsumptionError> {
    let mut f = Figures {
        devices: 1,
        ..Default::default()
    };
    if to <= from {
        return Ok(f);
    }
    let profile = &power.profile;
    if power.fallback {
        f.fallback_profile_devices = 1;
    }
    let DevicePower {
        mon_on_w,
        mon_sleep_w,
        mon_off_w,
        mon_lo,
        mon_hi,
        ..
    } = *power;
    let mut covered_ms = 0.0;
    let mut measured_ms = 0.0;
    let intensity = ctx.intensity_for(&dev.site);
    let mut hourly = HourlyCarbon::default();
    // A rollup belongs to the window holding its hour's start; a window edge inside an
    // hour (non-whole-hour offsets) is approximate, as documented.
    for (hour, r) in dev.hours.iter().filter(|(h, _)| *h >= from && *h < to) {
        let (measured_wh, modelled_wh, cpu_dram_wh) = rollup_energy_wh(r, profile);
        let monitor_wh = (mon_on_w * r.awake_ms + mon_sleep_w * r.sleep_ms) / MS_PER_HOUR;
        f.measured_kwh += measured_wh / 1000.0;
        f.modelled_kwh += (modelled_wh + monitor_wh) / 1000.0;
        f.monitors_kwh += monitor_wh / 1000.0;
        f.cpu_dram_kwh += cpu_dram_wh / 1000.0;
        let hour_kwh = (measured_wh + modelled_wh + monitor_wh) / 1000.0;
        let ends = [(profile.range.low, mon_lo), (profile.range.high, mon_hi)].map(|(k, m)| {
            (measured_wh + k * modelled_wh + (m[0] * r.awake_ms + m[1] * r.sleep_ms) / MS_PER_HOUR)
                / 1000.0
        });
        let (price, working) = match table.get(*hour) {
            Some(x) => x,
            None => {
                // Outside the table (a caller's window wider than the table's): look
                // it up directly.
                let price = ctx
                    .tariff
                    .cost(*hour, hour + HOUR_MS, 1.0, ctx.offset_minutes(*hour))?
                    .total_eur;
                let working = ctx
                    .local(*hour)
                    .is_some_and(|z| ctx.working.is_working(z.weekday(), z.hour()));
                (price, working)
            }
        };
        f.eur += hour_kwh * price;
        if let Some(kg) = intensity.and_then(|i| i.at(*hour)) {
            hourly.add(kg, hour_kwh, ends);
        }
        f.kwh_low += ends[0];
        f.kwh_high += ends[1];
        f.eur_low += ends[0] * price;
        f.eur_high += ends[1] * price;
        let on_h = r.awake_ms / MS_PER_HOUR;
        f.hours_on += on_h;
        if !working {
            f.hours_on_outside_working_hours += on_h;
        }
        covered_ms += r.covered_ms;
        measured_ms += r.measured_ms;
    }
    let (mut off_ms, mut off_reboot_ms) = (0.0, 0.0);
    for (a, b, evidence) in inferred_off_with_evidence(&dev.sessions, from, to) {
        let ms = (b - a) as f64;
        off_ms += ms;
        if evidence == OffEvidence::RebootOnly {
            off_reboot_ms += ms;
        }
        let wh = (profile.p_off_w.value + mon_off_w) * ms / MS_PER_HOUR;
        f.inferred_off_kwh += wh / 1000.0;
        f.monitors_kwh += mon_off_w * ms / MS_PER_HOUR / 1000.0;
        let eur = ctx
            .tariff
            .cost(a, b, wh / 1000.0, ctx.offset_minutes(a))?
            .total_eur;
        f.eur += eur;
        // The tariff is linear in kWh over one interval: the ends cost pro rata.
        let lo_wh = (profile.range.low * profile.p_off_w.value + mon_lo[2]) * ms / MS_PER_HOUR;
        let hi_wh = (profile.range.high * profile.p_off_w.value + mon_hi[2]) * ms / MS_PER_HOUR;
        f.kwh_low += lo_wh / 1000.0;
        f.kwh_high += hi_wh / 1000.0;
        if wh > 0.0 {
            f.eur_low += eur * lo_wh / wh;
            f.eur_high += eur * hi_wh / wh;
        }
        if let Some(intensity) = intensity {
            // Each hour's piece of the interval at its own intensity, pro rata.
            let mut p = a;
            while p < b {
                let q = (p.div_euclid(HOUR_MS) + 1) * HOUR_MS;
                let q = q.min(b);
                if let Some(kg) = intensity.at(p.div_euclid(HOUR_MS) * HOUR_MS) {
                    let k = (q - p) as f64 / ms / 1000.0;
                    hourly.add(kg, wh * k, [lo_wh * k, hi_wh * k]);
                }
                p = q;
            }
        }
    }
    let period = (to - from) as f64;
    let covered_ms = covered_ms.min(period);
    let off_ms = off_ms.min(period - covered_ms);
    f.ms = [
        measured_ms.min(covered_ms),
        covered_ms - measured_ms.min(covered_ms),
        off_ms,
        (period - covered_ms - off_ms).max(0.0),
    ];
    f.off_reboot_ms = off_reboot_ms.min(off_ms);
    f.kwh = f.measured_kwh + f.modelled_kwh + f.inferred_off_kwh;
    // Hours with an intensity at their own; the rest at the annual factor.
    let rest = |all: f64, hourly: f64| ctx.grid.kg_co2e((all - hourly).max(0.0));
    f.kg_co2e = hourly.kg[0] + rest(f.kwh, hourly.kwh[0]);
    f.kg_co2e_low = hourly.kg[1] + rest(f.kwh_low, hourly.kwh[1]);
    f.kg_co2e_high = hourly.kg[2] + rest(f.kwh_high, hourly.kwh[2]);
    f.hourly_kwh = hourly.kwh[0];
    Ok(f)
}

/// kWh weighed with an hourly intensity, and their kgCO2e: [central, low, high].
#[derive(Default)]
struct HourlyCarbon {
    kwh: [f64; 3],
    kg: [f64; 3],
}

impl HourlyCarbon {
    fn add(&mut self, kg_per_kwh: f64, kwh: f64, ends: [f64; 2]) {
        for (i, e) in [kwh, ends[0], ends[1]].into_iter().enumerate() {
            self.kwh[i] += e;
            self.kg[i] += e * kg_per_kwh;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Org,
    Site,
    Group,
    Class,
    Device,
    Month,
}

impl std::str::FromStr for GroupBy {
    type Err = ConsumptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "org" => Self::Org,
            "site" => Self::Site,
            "group" => Self::Group,
            "class" => Self::Class,
            "device" => Self::Device,
            "month" => Self::Month,
            _ => {
                return Err(ConsumptionError::GroupBy {
                    value: s.to_owned(),
                });
            }
        })
    }
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::Site => "site",
            Self::Group => "group",
            Self::Class => "class",
            Self::Device => "device",
            Self::Month => "month",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub key: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub by: GroupBy,
    pub timezone: String,
    pub grid_kg_co2e_per_kwh: f64,
    pub grid_source: String,
    pub rows: Vec<Row>,
    pub total: Figures,
    /// Assets the inventory (GLPI) lists and no agent reports, by org, site and kind:
    /// their energy is unknown and counted nowhere above (filled by the caller, which
    /// reads the inventory; empty from [`report_from`]).
    pub assets_without_agent: Vec<AgentlessCount>,
}

/// How many assets without agent one (org, site, kind) holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AgentlessCount {
    pub org: String,
    /// The inventory's location, `(none)` when empty.
    pub site: String,
    /// `computer` or `monitor`.
    pub kind: String,
    pub assets: u64,
}

/// Counts `(org, site, kind)` triples, one per asset, sorted by (org, site, kind).
pub fn count_agentless<'a>(
    assets: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<AgentlessCount> {
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for (org, site, kind) in assets {
        let site = if site.is_empty() { "(none)" } else { site };
        *counts
            .entry((org.to_owned(), site.to_owned(), kind.to_owned()))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((org, site, kind), assets)| AgentlessCount {
            org,
            site,
            kind,
            assets,
        })
        .collect()
}

/// Computes the report over `[from_ms, to_ms)` (cut at `now_ms`) grouped by `by`.
#[allow(clippy::too_many_arguments)]
pub fn report(
    devices: &[DeviceData],
    ctx: &Context,
    from: &str,
    to: &str,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
    by: GroupBy,
) -> Result<Report, ConsumptionError> {
    report_from(
        devices.iter().map(Ok::<_, ConsumptionError>),
        ctx,
        from,
        to,
        from_ms,
        to_ms,
        now_ms,
        by,
    )
}

/// [`report`] over devices produced one at a time (loaded from the store as the
/// report goes), so memory holds one device's rollups, not the fleet's.
#[allow(clippy::too_many_arguments)]
pub fn report_from<D, E>(
    devices: impl IntoIterator<Item = Result<D, E>>,
    ctx: &Context,
    from: &str,
    to: &str,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
    by: GroupBy,
) -> Result<Report, E>
where
    D: std::borrow::Borrow<DeviceData>,
    E: From<ConsumptionError>,
{
    if to_ms <= from_ms {
        return Err(ConsumptionError::Period {
            from: from.to_owned(),
            to: to.to_owned(),
        }
        .into());
    }
    let end = to_ms.min(now_ms).max(from_ms);
    let table = HourTable::new(ctx, from_ms, end)?;
    let mut org_tables: BTreeMap<String, HourTable> = BTreeMap::new();
    for (org, c) in &ctx.per_org {
        org_tables.insert(org.clone(), HourTable::new(c, from_ms, end)?);
    }
    let mut rows: BTreeMap<String, Figures> = BTreeMap::new();
    let mut total = Figures::default();
    let mut device_count = 0u64;
    let mut fallback_count = 0u64;
    let mut powers = PowerCache::default();
    for dev in devices {
        let dev = dev?;
        let dev: &DeviceData = dev.borrow();
        let (ctx, table, org) = match (ctx.per_org.get(&dev.org), org_tables.get(&dev.org)) {
            (Some(c), Some(t)) => (c.as_ref(), t, Some(dev.org.as_str())),
            _ => (ctx, &table, None),
        };
        let power = powers.get(org, dev, ctx);
        device_count += 1;
        if by == GroupBy::Month {
            if power.fallback {
                fallback_count += 1;
            }
            let mut t = from_ms;
            while t < end {
                let Some((key, _, month_end)) = ctx.month_of(t) else {
                    break;
                };
                let b = month_end.min(end);
                let f = device_figures_of(dev, ctx, power, table, t, b)?;
                rows.entry(key).or_default().add(&f);
                total.add(&f);
                if b <= t {
                    break;
                }
                t = b;
            }
            // A device counts once in the total, not once per month.
            continue;
        }
        let f = device_figures_of(dev, ctx, power, table, from_ms, end)?;
        total.add(&f);
        let keys: Vec<String> = match by {
            GroupBy::Org => vec![dev.org.clone()],
            GroupBy::Site if dev.site.is_empty() => vec!["(none)".into()],
            GroupBy::Site => vec![dev.site.clone()],
            GroupBy::Group if dev.groups.is_empty() => vec!["(none)".into()],
            GroupBy::Group => dev.groups.clone(),
            GroupBy::Class => vec![dev.class.as_str().to_owned()],
            GroupBy::Device => vec![format!("{}/{}", dev.org, dev.device_id)],
            GroupBy::Month => vec![],
        };
        for k in keys {
            rows.entry(k).or_default().add(&f);
        }
    }
    if by == GroupBy::Month {
        total.devices = device_count;
        total.fallback_profile_devices = fallback_count;
    }
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|(key, mut figures)| {
            figures.finish();
            Row { key, figures }
        })
        .collect();
    total.finish();
    Ok(Report {
        from: from.to_owned(),
        to: to.to_owned(),
        by,
        timezone: ctx.tz.iana_name().unwrap_or("UTC").to_owned(),
        grid_kg_co2e_per_kwh: ctx.grid.kg_co2e_per_kwh,
        grid_source: ctx.grid.source.clone(),
        rows,
        total,
        assets_without_agent: Vec::new(),
    })
}

/// CSV dialects: plain (`,`, decimal point) or `excel-fr` (`;`, decimal comma, UTF-8
/// BOM) because energy managers open the file in French Excel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvDialect {
    #[default]
    Plain,
    ExcelFr,
}

const COLUMNS: [&str; 24] = [
    "devices",
    "kwh",
    "measured_kwh",
    "modelled_kwh",
    "inferred_off_kwh",
    "monitors_kwh",
    "cpu_dram_kwh",
    "eur",
    "kg_co2e",
    "hours_on",
    "hours_on_outside_working_hours",
    "measured_pct",
    "modelled_pct",
    "inferred_off_pct",
    "unknown_pct",
    "fallback_profile_devices",
    "kwh_low",
    "kwh_high",
    "eur_low",
    "eur_high",
    "kg_co2e_low",
    "kg_co2e_high",
    "inferred_off_reboot_pct",
    "hourly_carbon_kwh_pct",
];

fn values(f: &Figures) -> [f64; 24] {
    [
        f.devices as f64,
        f.kwh,
        f.measured_kwh,
        f.modelled_kwh,
        f.inferred_off_kwh,
        f.monitors_kwh,
        f.cpu_dram_kwh,
        f.eur,
        f.kg_co2e,
        f.hours_on,
        f.hours_on_outside_working_hours,
        f.measured_pct,
        f.modelled_pct,
        f.inferred_off_pct,
        f.unknown_pct,
        f.fallback_profile_devices as f64,
        f.kwh_low,
        f.kwh_high,
        f.eur_low,
        f.eur_high,
        f.kg_co2e_low,
        f.kg_co2e_high,
        f.inferred_off_reboot_pct,
        f.hourly_carbon_kwh_pct,
    ]
}

/// The report as CSV: one row per key, then a `TOTAL` row.
pub fn to_csv(r: &Report, dialect: CsvDialect) -> String {
    let (sep, bom) = match dialect {
        CsvDialect::Plain => (',', ""),
        CsvDialect::ExcelFr => (';', "\u{feff}"),
    };
    let num = |v: f64, decimals: usize| {
        let s = format!("{v:.decimals$}");
        match dialect {
            CsvDialect::Plain => s,
            CsvDialect::ExcelFr => s.replace('.', ","),
        }
    };
    let mut out = String::from(bom);
    out.push_str(r.by.as_str());
    for c in COLUMNS {
        out.push(sep);
        out.push_str(c);
    }
    out.push_str("\r\n");
    let mut line = |key: &str, f: &Figures| {
        out.push_str(&csv_cell(key, sep));
        for (i, v) in values(f).iter().enumerate() {
            out.push(sep);
            let decimals = if i == 0 || i == 15 { 0 } else { 3 };
            out.push_str(&num(*v, decimals));
        }
        out.push_str("\r\n");
    };
    for row in &r.rows {
        line(&row.key, &row.figures);
    }
    line("TOTAL", &r.total);
    out
}

/// Quotes a cell when needed, and defuses spreadsheet formulas (a hostname or tag
/// starting with `=`, `+`, `-` or `@` comes from an agent, not from us).
fn csv_cell(v: &str, sep: char) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([sep, '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// An aligned table for the terminal, with coverage shown beside every figure.
pub fn to_table(r: &Report) -> String {
    let mut lines = vec![format!(
        "Consumption {} → {} by {} ({}; grid {} kgCO2e/kWh, {})",
        r.from,
        r.to,
        r.by.as_str(),
        r.timezone,
        r.grid_kg_co2e_per_kwh,
        r.grid_source
    )];
    let header = [
        r.by.as_str(),
        "devices",
        "kWh",
        "€",
        "kgCO2e",
        "hours on",
        "off-hours on",
        "measured%",
        "modelled%",
        "off% (reboot only)",
        "unknown%",
        "kWh low–high",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let fmt = |key: &str, f: &Figures| {
        vec![
            key.to_owned(),
            f.devices.to_string(),
            format!("{:.2}", f.kwh),
            format!("{:.2}", f.eur),
            format!("{:.3}", f.kg_co2e),
            format!("{:.1}", f.hours_on),
            format!("{:.1}", f.hours_on_outside_working_hours),
            format!("{:.1}", f.measured_pct),
            format!("{:.1}", f.modelled_pct),
            format!(
                "{:.1} ({:.1})",
                f.inferred_off_pct, f.inferred_off_reboot_pct
            ),
            format!("{:.1}", f.unknown_pct),
            format!("{:.2}–{:.2}", f.kwh_low, f.kwh_high),
        ]
    };
    for row in &r.rows {
        rows.push(fmt(&row.key, &row.figures));
    }
    rows.push(fmt("TOTAL", &r.total));
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        lines.push(cells.join("  ").trim_end().to_owned());
    }
    if r.total.fallback_profile_devices > 0 {
        lines.push(format!(
            "note: {} device(s) of unknown class use the fallback power profile",
            r.total.fallback_profile_devices
        ));
    }
    for a in &r.assets_without_agent {
        lines.push(format!(
            "without agent: {} {}(s) at {}/{}: energy unknown, not counted",
            a.assets, a.kind, a.org, a.site
        ));
    }
    lines.push(
        "measured: whole-system meter; modelled: power profile × reported states; \
         off: inferred between boots; unknown: no evidence (no energy counted)"
            .to_owned(),
    );
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::catalogue::PowerClass;

    const H: i64 = HOUR_MS;
    /// 2025-03-03 00:00 UTC, a Monday (01:00 in Paris).
    const MON: i64 = 1_740_960_000_000;

    /// The `api_query` fuzz target's timeout: `from=1013-01-01` made the report build
    /// a table of every hour since then; now refused, naming the limit.
    #[test]
    fn a_period_of_centuries_is_refused() {
        let ctx = ctx();
        let from_ms = ctx.day_start_ms("1013-01-01").unwrap();
        let to_ms = ctx.day_start_ms("2027-01-01").unwrap();
        let devices: [Result<DeviceData, ConsumptionError>; 0] = [];
        let e = report_from(
            devices,
            &ctx,
            "1013-01-01",
            "2026-12-31",
            from_ms,
            to_ms,
            MON,
            GroupBy::Org,
        )
        .unwrap_err();
        assert!(matches!(e, ConsumptionError::PeriodTooLong { .. }), "{e}");
        assert!(e.to_string().contains("at most 10980 days"), "{e}");
        let from_ms = ctx.day_start_ms("2000-01-01").unwrap();
        let devices: [Result<DeviceData, ConsumptionError>; 0] = [];
        assert!(
            report_from(
                devices,
                &ctx,
                "2000-01-01",
                "2026-12-31",
                from_ms,
                to_ms,
                MON,
                GroupBy::Org
            )
            .is_ok()
        );
    }

    fn ctx() -> Context {
        let config = EnergyConfig::default();
        Context::new(&config, Catalogue::builtin()).unwrap()
    }

    fn idle_hour(hour: i64) -> (i64, HourRollup) {
        (
            hour,
            HourRollup {
                covered_ms: H as f64,
                awake_ms: H as f64,
                modelled_idle_ms: H as f64,
                ..Default::default()
            },
        )
    }

    fn edge(boot: i64, start: i64, end: i64, shutdown: bool, agent_stop: bool) -> SessionEdge {
        SessionEdge {
            boot_ms: boot,
            first_start_ms: start,
            last_end_ms: end,
            last_shutdown: shutdown,
            last_agent_stop: agent_stop,
        }
    }

    #[test]
    fn off_is_inferred_between_boots_and_after_shutdown_only() {
        let s = [
            edge(MON, MON + 60_000, MON + 8 * H, false, false),
            edge(
                MON + 10 * H,
                MON + 10 * H + 30_000,
                MON + 12 * H,
                true,
                false,
            ),
        ];
        assert_eq!(
            inferred_off(&s, MON, MON + 24 * H),
            vec![(MON + 8 * H, MON + 10 * H), (MON + 12 * H, MON + 24 * H)]
        );
        // The agent said it stopped while the machine ran: the gap is not off.
        let s = [
            edge(MON, MON, MON + 8 * H, false, true),
            edge(MON + 10 * H, MON + 10 * H, MON + 12 * H, false, false),
        ];
        assert!(inferred_off(&s, MON, MON + 24 * H).is_empty());
    }

    /// Issue 18: off after a reboot with no SHUTDOWN is weaker evidence than after a
    /// SHUTDOWN, and reports say how much of "off" rests on it. Hand-computed: a day
    /// with 2 h off between a session that did not say SHUTDOWN and the next boot
    /// (reboot only), then 12 h off after one that did.
    #[test]
    fn off_after_a_reboot_without_shutdown_has_its_own_share() {
        let s = vec![
            edge(MON, MON, MON + 8 * H, false, false),
            edge(MON + 10 * H, MON + 10 * H, MON + 12 * H, true, false),
        ];
        assert_eq!(
            inferred_off_with_evidence(&s, MON, MON + 24 * H),
            vec![
                (MON + 8 * H, MON + 10 * H, OffEvidence::RebootOnly),
                (MON + 12 * H, MON + 24 * H, OffEvidence::Shutdown)
            ]
        );
        let c = ctx();
        let dev = DeviceData {
            org: "o".into(),
            device_id: "d".into(),
            class: DeviceClass::Desktop,
            hours: (0..8)
                .chain(10..12)
                .map(|h| idle_hour(MON + h * H))
                .collect(),
            sessions: s,
            ..Default::default()
        };
        let rep = report(
            &[dev],
            &c,
            "a",
            "b",
            MON,
            MON + 24 * H,
            MON + 24 * H,
            GroupBy::Device,
        )
        .unwrap();
        let f = &rep.total;
        assert!(
            (f.inferred_off_pct - 100.0 * 14.0 / 24.0).abs() < 1e-9,
            "{f:?}"
        );
        assert!((f.inferred_off_reboot_pct - 100.0 * 2.0 / 24.0).abs() < 1e-9);
        let csv = to_csv(&rep, CsvDialect::Plain);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let total: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
        let col = header
            .iter()
            .position(|h| *h == "inferred_off_reboot_pct")
            .unwrap();
        assert_eq!(total[col], "8.333");
        assert_eq!(header.len(), total.len());
    }

    #[test]
    fn an_idle_desktop_hour_costs_its_idle_power_and_counts_outside_working_hours() {
        let c = ctx();
        let dev = DeviceData {
            org: "o".into(),
            device_id: "d".into(),
            class: DeviceClass::Desktop,
            // 02:00–03:00 Paris on a Monday: outside working hours.
            hours: vec![idle_hour(MON + H)],
            ..Default::default()
        };
        let f = device_figures(&dev, &c, MON + H, MON + 2 * H).unwrap();
        let idle_w = c
            .catalogue
            .class_profile(DeviceClass::Desktop)
            .p_idle_w
            .value;
        assert!((f.kwh - idle_w / 1000.0).abs() < 1e-12, "{f:?}");
        assert!((f.eur - f.kwh * c.tariff.base_eur_per_kwh).abs() < 1e-12);
        assert!((f.kg_co2e - f.kwh * c.grid.kg_co2e_per_kwh).abs() < 1e-12);
        assert_eq!((f.hours_on, f.hours_on_outside_working_hours), (1.0, 1.0));
        assert_eq!(f.coverage_ms(), [0.0, H as f64, 0.0, 0.0]);
        // 10:00 Paris on the Monday: within working hours.
        let dev = DeviceData {
            hours: vec![idle_hour(MON + 9 * H)],
            ..dev
        };
        let f = device_figures(&dev, &c, MON + 9 * H, MON + 10 * H).unwrap();
        assert_eq!(f.hours_on_outside_working_hours, 0.0);
    }

    #[test]
    fn monitors_draw_while_on_and_unknown_time_draws_nothing() {
        let c = ctx();
        let dev = DeviceData {
            class: DeviceClass::Desktop,
            monitors: 2,
            hours: vec![idle_hour(MON)],
            ..Default::default()
        };
        let f = device_figures(&dev, &c, MON, MON + 2 * H).unwrap();
        let mon_w = c
            .catalogue
            .class_profile(DeviceClass::Monitor)
            .p_idle_w
            .value;
        assert!((f.monitors_kwh - 2.0 * mon_w / 1000.0).abs() < 1e-12);
        let [_, modelled, off, unknown] = f.coverage_ms();
        assert_eq!((modelled, off, unknown), (H as f64, 0.0, H as f64));
    }

    /// Issue 18: the SMBIOS chassis code the agent sends decides a finer class than
    /// the chassis class: a "desktop" whose firmware says 35 (Mini PC) draws the
    /// mini-PC profile, one that says 7 (Tower) the tower profile; no code, the class
    /// default. Each hand-checked against the catalogue's idle power.
    #[test]
    fn the_chassis_code_picks_the_finer_class() {
        let c = ctx();
        let idle_kwh = |chassis_code| {
            let dev = DeviceData {
                org: "o".into(),
                device_id: "d".into(),
                class: DeviceClass::Desktop,
                chassis_code,
                hours: vec![idle_hour(MON)],
                ..Default::default()
            };
            device_figures(&dev, &c, MON, MON + H).unwrap().kwh
        };
        let p_idle = |class| c.catalogue.power_class_profile(class).p_idle_w.value / 1000.0;
        for (code, class) in [
            (None, PowerClass::Desktop),
            (Some(35), PowerClass::MiniPc),
            (Some(7), PowerClass::DesktopTower),
            (Some(4), PowerClass::DesktopSff),
        ] {
            let kwh = idle_kwh(code);
            assert!(
                (kwh - p_idle(class)).abs() < 1e-12,
                "{code:?}: {kwh} vs {class}"
            );
        }
        assert!(p_idle(PowerClass::MiniPc) < p_idle(PowerClass::DesktopTower));
    }

    /// Issue 18: hourly carbon, hand-computed. A desktop idles 2 hours and is then
    /// off (after SHUTDOWN) 2 hours. Zone "FR" has intensities for the first idle hour
    /// (100 g/kWh) and the first off hour (10 g/kWh) only; the other two hours use
    /// the annual factor. A device of a site mapped to a zone without data, and any
    /// device when no zone is configured, use the annual factor throughout.
    #[test]
    fn hourly_intensity_weighs_its_hours_and_the_annual_factor_the_rest() {
        use crate::energy::intensity::HourlyIntensity;
        let config = EnergyConfig {
            grid_zone: "FR".into(),
            site_grid_zones: BTreeMap::from([("Lyon".to_owned(), "ARA".to_owned())]),
            ..EnergyConfig::default()
        };
        let base = Context::new(&config, Catalogue::builtin()).unwrap();
        assert_eq!(base.zones().into_iter().collect::<Vec<_>>(), ["ARA", "FR"]);
        let c = base.with_intensities(BTreeMap::from([(
            "FR".to_owned(),
            HourlyIntensity::from_g_per_kwh([(MON, 100.0), (MON + 2 * H, 10.0)]),
        )]));
        let dev = |site: &str| DeviceData {
            org: "o".into(),
            device_id: site.into(),
            site: site.into(),
            class: DeviceClass::Desktop,
            hours: vec![idle_hour(MON), idle_hour(MON + H)],
            sessions: vec![edge(MON, MON, MON + 2 * H, true, false)],
            ..Default::default()
        };
        let p = c.catalogue.class_profile(DeviceClass::Desktop);
        let (idle, off) = (p.p_idle_w.value / 1000.0, p.p_off_w.value / 1000.0);
        let annual = c.grid.kg_co2e_per_kwh;
        let f = device_figures(&dev("Paris"), &c, MON, MON + 4 * H).unwrap();
        assert!((f.kwh - (2.0 * idle + 2.0 * off)).abs() < 1e-12);
        let want = idle * 0.100 + off * 0.010 + (idle + off) * annual;
        assert!((f.kg_co2e - want).abs() < 1e-12, "{} vs {want}", f.kg_co2e);
        // The ends: each hour's low/high energy at the same intensity.
        let (lo, hi) = (p.range.low, p.range.high);
        let want_lo = lo * (idle * 0.100 + off * 0.010 + (idle + off) * annual);
        assert!((f.kg_co2e_low - want_lo).abs() < 1e-12);
        assert!((f.kg_co2e_high - want_lo / lo * hi).abs() < 1e-12);
        let rep = report(
            &[dev("Paris"), dev("Lyon")],
            &c,
            "a",
            "b",
            MON,
            MON + 4 * H,
            MON + 4 * H,
            GroupBy::Site,
        )
        .unwrap();
        let row = |k: &str| &rep.rows.iter().find(|r| r.key == k).unwrap().figures;
        let share = 100.0 * (idle + off) / (2.0 * idle + 2.0 * off);
        assert!((row("Paris").hourly_carbon_kwh_pct - share).abs() < 1e-9);
        assert_eq!(row("Lyon").hourly_carbon_kwh_pct, 0.0, "ARA has no data");
        assert!((row("Lyon").kg_co2e - row("Lyon").kwh * annual).abs() < 1e-12);
        assert!((rep.total.hourly_carbon_kwh_pct - share / 2.0).abs() < 1e-9);
        // No zone configured: the annual factor for every hour, as before.
        let plain = ctx();
        let g = device_figures(&dev("Paris"), &plain, MON, MON + 4 * H).unwrap();
        assert!((g.kg_co2e - g.kwh * annual).abs() < 1e-12);
        assert_eq!(g.hourly_kwh, 0.0);
    }

    /// Issue 18: a monitor the catalogue lists by model (EDID maker "DEL", product name
    /// "DELL C2423H": Dell's declared C2423H) draws that entry's power; an unlisted
    /// name, or one that matches a computer's entry, draws its size band's.
    #[test]
    fn a_monitor_listed_by_model_draws_its_own_power() {
        let c = ctx();
        let monitor_kwh = |maker: &str, name: &str| {
            let dev = DeviceData {
                org: "o".into(),
                device_id: "d".into(),
                class: DeviceClass::Desktop,
                monitors: 1,
                monitor_diagonals_in: vec![23.8],
                monitor_models: vec![(maker.into(), name.into())],
                hours: vec![idle_hour(MON)],
                ..Default::default()
            };
            device_figures(&dev, &c, MON, MON + H).unwrap().monitors_kwh
        };
        let entry = c.catalogue.lookup(&Query {
            class: DeviceClass::Monitor,
            manufacturer: "Dell",
            model: "C2423H Monitor",
            screen_in: Some(23.8),
            ..Query::default()
        });
        assert_eq!(entry.origin, crate::energy::catalogue::ProfileOrigin::Model);
        let band = c.catalogue.lookup(&Query {
            class: DeviceClass::Monitor,
            screen_in: Some(23.8),
            ..Query::default()
        });
        let own = monitor_kwh("DEL", "DELL C2423H");
        assert!(
            (own - entry.profile.p_idle_w.value / 1000.0).abs() < 1e-12,
            "{own}"
        );
        assert_ne!(entry.profile.p_idle_w.value, band.profile.p_idle_w.value);
        for (maker, name) in [("DEL", "DELL U9999Z"), ("", ""), ("DEL", "OptiPlex 7090")] {
            let kwh = monitor_kwh(maker, name);
            assert!(
                (kwh - band.profile.p_idle_w.value / 1000.0).abs() < 1e-12,
                "{name}: {kwh}"
            );
        }
    }

    /// Issue 18: ranges. A device's low/high is its modelled energy × its profile's
    /// range factors (hand-computed here from the catalogue's figures); rows and the
    /// total add ranges up like kWh; € and kgCO2e follow kWh.
    #[test]
    fn ranges_carry_through_and_add_up() {
        let c = ctx();
        let laptop = DeviceData {
            org: "o".into(),
            device_id: "l".into(),
            class: DeviceClass::Laptop,
            hours: vec![idle_hour(MON)],
            ..Default::default()
        };
        let desktop = DeviceData {
            org: "o".into(),
            device_id: "d".into(),
            class: DeviceClass::Desktop,
            monitors: 1,
            monitor_diagonals_in: vec![23.8],
            hours: vec![idle_hour(MON)],
            ..Default::default()
        };
        let f = device_figures(&laptop, &c, MON, MON + H).unwrap();
        let p = c.catalogue.class_profile(DeviceClass::Laptop);
        // One idle hour: P_idle Wh, its ends × the laptop class's range.
        let kwh = p.p_idle_w.value / 1000.0;
        assert!((f.kwh - kwh).abs() < 1e-12);
        assert!((f.kwh_low - kwh * p.range.low).abs() < 1e-12);
        assert!((f.kwh_high - kwh * p.range.high).abs() < 1e-12);
        assert!(f.kwh_low < f.kwh && f.kwh < f.kwh_high);
        assert!((f.eur_low / f.eur - p.range.low).abs() < 1e-9);
        assert!((f.kg_co2e_high / f.kg_co2e - p.range.high).abs() < 1e-9);
        // The desktop's monitor has its own range.
        let g = device_figures(&desktop, &c, MON, MON + H).unwrap();
        let d = c.catalogue.class_profile(DeviceClass::Desktop);
        let m = c.catalogue.power_class_profile(PowerClass::Monitor);
        let want_low = (d.p_idle_w.value * d.range.low + m.p_idle_w.value * m.range.low) / 1000.0;
        assert!(
            (g.kwh_low - want_low).abs() < 1e-12,
            "{} vs {want_low}",
            g.kwh_low
        );
        // Sums: the total's range is the sum of the devices' ranges.
        let rep = report(
            &[laptop, desktop],
            &c,
            "a",
            "b",
            MON,
            MON + H,
            MON + H,
            GroupBy::Device,
        )
        .unwrap();
        let (lo, hi): (f64, f64) = rep
            .rows
            .iter()
            .map(|r| (r.figures.kwh_low, r.figures.kwh_high))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        assert!((rep.total.kwh_low - lo).abs() < 1e-12 && (rep.total.kwh_high - hi).abs() < 1e-12);
        assert!((rep.total.kwh_low - (f.kwh_low + g.kwh_low)).abs() < 1e-12);
        let csv = to_csv(&rep, CsvDialect::Plain);
        assert!(csv.lines().next().unwrap().ends_with(
            ",kwh_low,kwh_high,eur_low,eur_high,kg_co2e_low,kg_co2e_high,inferred_off_reboot_pct,hourly_carbon_kwh_pct"
        ));
        let json = serde_json::to_value(&rep).unwrap();
        assert!(
            json["total"]["kwh_high"].as_f64().unwrap() > json["total"]["kwh"].as_f64().unwrap()
        );
        assert!(to_table(&rep).contains("kWh low–high"));
    }

    /// Issue 18: a 27" display draws its band's power, not the 24" figure; a monitor
    /// whose EDID gives no size keeps the default.
    #[test]
    fn monitors_draw_by_their_diagonal() {
        let c = ctx();
        let dev = DeviceData {
            class: DeviceClass::Desktop,
            monitors: 2,
            monitor_diagonals_in: vec![27.2],
            hours: vec![idle_hour(MON)],
            ..Default::default()
        };
        let f = device_figures(&dev, &c, MON, MON + H).unwrap();
        let on = |class| c.catalogue.power_class_profile(class).p_idle_w.value;
        let want = on(PowerClass::Monitor27) + on(PowerClass::Monitor);
        assert!(
            (f.monitors_kwh - want / 1000.0).abs() < 1e-12,
            "{}",
            f.monitors_kwh
        );
        assert!(on(PowerClass::Monitor27) > 1.3 * on(PowerClass::Monitor));
    }

    #[test]
    fn months_split_in_local_time_and_devices_count_once_in_the_total() {
        let c = ctx();
        let from = c.day_start_ms("2025-01-31").unwrap();
        let to = c.day_start_ms("2025-02-02").unwrap();
        let dev = DeviceData {
            org: "o".into(),
            device_id: "d".into(),
            class: DeviceClass::Laptop,
            hours: (0..48).map(|i| idle_hour(from + i * H)).collect(),
            ..Default::default()
        };
        let r = report(
            std::slice::from_ref(&dev),
            &c,
            "2025-01-31",
            "2025-02-01",
            from,
            to,
            i64::MAX,
            GroupBy::Month,
        )
        .unwrap();
        let keys: Vec<&str> = r.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["2025-01", "2025-02"]);
        assert_eq!(r.rows[0].figures.hours_on, 24.0);
        assert_eq!(r.total.devices, 1);
        let sum: f64 = [
            r.total.measured_pct,
            r.total.modelled_pct,
            r.total.inferred_off_pct,
            r.total.unknown_pct,
        ]
        .iter()
        .sum();
        assert!((sum - 100.0).abs() < 1e-9);
    }

    #[test]
    fn csv_defuses_formulas_and_excel_fr_uses_commas() {
        let c = ctx();
        let dev = DeviceData {
            org: "o".into(),
            site: "=HYPERLINK(\"x\")".into(),
            hours: vec![idle_hour(MON)],
            ..Default::default()
        };
        let r = report(&[dev], &c, "a", "b", MON, MON + H, i64::MAX, GroupBy::Site).unwrap();
        let csv = to_csv(&r, CsvDialect::ExcelFr);
        assert!(csv.starts_with('\u{feff}'));
        assert!(
            csv.contains("\n\"'=HYPERLINK(\"\"x\"\")\""),
            "formula defused and quoted: {csv}"
        );
        let line = csv.lines().nth(1).unwrap();
        assert!(line.contains(";1;0,"), "{line}");
        let plain = to_csv(&r, CsvDialect::Plain);
        assert!(plain.lines().nth(1).unwrap().contains(",1,0."));
    }

    #[test]
    fn an_org_override_applies_to_its_devices_only() {
        let base = EnergyConfig::default();
        let far = OrgEnergy {
            // 02:00 UTC Monday is 23:00 Sunday in Cayenne: outside working hours there
            // too, so use working hours that cover it to tell the contexts apart.
            timezone: Some("America/Cayenne".into()),
            working_days: Some(vec!["sun".into()]),
            working_hours: Some("0-24".into()),
            tariff: Some(Tariff {
                base_eur_per_kwh: 1.0,
                bands: Vec::new(),
            }),
            ..OrgEnergy::default()
        };
        let c = Context::with_orgs(&base, Catalogue::builtin(), &[("far".into(), far)]).unwrap();
        let dev = |org: &str| DeviceData {
            org: org.into(),
            device_id: "d".into(),
            class: DeviceClass::Desktop,
            hours: vec![idle_hour(MON + 2 * H)],
            ..Default::default()
        };
        let r = report(
            &[dev("near"), dev("far")],
            &c,
            "a",
            "b",
            MON + 2 * H,
            MON + 3 * H,
            i64::MAX,
            GroupBy::Org,
        )
        .unwrap();
        let (far_row, near_row) = (&r.rows[0].figures, &r.rows[1].figures);
        assert_eq!(r.rows[0].key, "far");
        assert!((far_row.eur - far_row.kwh * 1.0).abs() < 1e-12);
        assert!((near_row.eur - near_row.kwh * 0.20).abs() < 1e-12);
        assert_eq!(far_row.hours_on_outside_working_hours, 0.0);
        assert_eq!(near_row.hours_on_outside_working_hours, 1.0);
        let bad = OrgEnergy {
            timezone: Some("Mars/Olympus".into()),
            ..Default::default()
        };
        let e = Context::with_orgs(&base, Catalogue::builtin(), &[("x".into(), bad)]).unwrap_err();
        assert!(
            e.to_string().contains("\"x\"") && e.to_string().contains("Mars"),
            "{e}"
        );
    }

    /// The report looks each device's power up once per (org settings, model,
    /// monitors) rather than per device: its figures must be those of each device
    /// computed on its own, bit for bit, over a varied fleet — DST change (30 March
    /// in Paris), an org with its own time zone and a tariff with bands, hours
    /// missing, partial hours, meters, sleep, inferred-off time, monitors known and
    /// unknown, known and unknown classes.
    #[test]
    fn the_report_with_shared_power_lookups_equals_each_device_alone() {
        let base = EnergyConfig {
            tariff: Tariff {
                base_eur_per_kwh: 0.2516,
                bands: vec![crate::energy::carbon::TariffBand {
                    name: "heures creuses".into(),
                    start_hour: 22,
                    end_hour: 6,
                    eur_per_kwh: 0.2068,
                }],
            },
            ..EnergyConfig::default()
        };
        let far = OrgEnergy {
            timezone: Some("America/Cayenne".into()),
            tariff: Some(Tariff {
                base_eur_per_kwh: 0.31,
                bands: vec![crate::energy::carbon::TariffBand {
                    name: "pointe".into(),
                    start_hour: 17,
                    end_hour: 20,
                    eur_per_kwh: 0.5,
                }],
            }),
            ..Default::default()
        };
        let c = Context::with_orgs(&base, Catalogue::builtin(), &[("far".into(), far)]).unwrap();
        let from = c.day_start_ms("2025-03-28").unwrap();
        let to = c.day_start_ms("2025-04-02").unwrap();
        let classes = [
            DeviceClass::Desktop,
            DeviceClass::Laptop,
            DeviceClass::Unknown,
            DeviceClass::Desktop,
        ];
        let fleet: Vec<DeviceData> = (0..24u32)
            .map(|i| {
                let hours = ((from - 3 * H) / H..(to + 2 * H) / H)
                    .map(|h| h * H)
                    // Gaps: every device misses some hours, differently.
                    .filter(|h| (h / H + i64::from(i)) % 7 != 3)
                    .map(|h| {
                        let k = ((h / H) % 5) as f64 + f64::from(i % 3);
                        let covered = if (h / H) % 11 == 0 {
                            1_800_000.0
                        } else {
                            H as f64
                        };
                        let sleep = if (h / H) % 4 == 0 { 600_000.0 } else { 0.0 };
                        let awake = covered - sleep;
                        let metered = i % 5 == 0 && (h / H) % 3 == 0;
                        (
                            h,
                            HourRollup {
                                covered_ms: covered,
                                awake_ms: awake,
                                measured_ms: if metered { awake } else { 0.0 },
                                measured_j: if metered { 40.0 * awake / 1000.0 } else { 0.0 },
                                modelled_active_ms: if metered { 0.0 } else { 1000.0 * k },
                                modelled_active_util_ms: if metered { 0.0 } else { 333.0 * k },
                                modelled_idle_ms: if metered { 0.0 } else { awake - 1000.0 * k },
                                sleep_ms: sleep,
                                cpu_dram_j: 3.5 * k,
                                cpu_dram_ms: 1000.0 * k,
                                measured_active_ms: 0.0,
                            },
                        )
                    })
                    .collect();
                DeviceData {
                    org: if i % 4 == 1 {
                        "far".into()
                    } else {
                        "near".into()
                    },
                    device_id: format!("d{i:02}"),
                    site: format!("site-{}", i % 3),
                    class: classes[i as usize % classes.len()],
                    // Devices i and i + 12 differ in their model only: one in the
                    // catalogue, one not.
                    manufacturer: if i < 12 { "Dell" } else { "LENOVO" }.into(),
                    model: if i < 12 {
                        "OptiPlex 3050 All-in-One Desktop"
                    } else {
                        "ThinkCentre M70q"
                    }
                    .into(),
                    monitors: i % 3,
                    monitor_diagonals_in: if i % 2 == 0 { vec![23.8] } else { vec![] },
                    hours,
                    sessions: vec![
                        edge(from - 5 * H, from - 3 * H, from + 30 * H, i % 2 == 0, false),
                        edge(from + 40 * H, from + 41 * H, to - 20 * H, true, false),
                    ],
                    ..Default::default()
                }
            })
            .collect();
        for by in [GroupBy::Site, GroupBy::Device, GroupBy::Org] {
            let r = report(&fleet, &c, "a", "b", from, to, i64::MAX, by).unwrap();
            let mut rows: BTreeMap<String, Figures> = BTreeMap::new();
            let mut total = Figures::default();
            for d in &fleet {
                let f = device_figures(d, c.for_org(&d.org), from, to).unwrap();
                let key = match by {
                    GroupBy::Site => d.site.clone(),
                    GroupBy::Device => format!("{}/{}", d.org, d.device_id),
                    _ => d.org.clone(),
                };
                rows.entry(key).or_default().add(&f);
                total.add(&f);
            }
            total.finish();
            assert_eq!(r.total, total, "{by:?}");
            assert!(r.total.kwh > 0.0 && r.total.inferred_off_kwh > 0.0 && r.total.eur > 0.0);
            assert!(r.total.measured_kwh > 0.0 && r.total.monitors_kwh > 0.0);
            assert_eq!(r.rows.len(), rows.len());
            for (row, (key, mut f)) in r.rows.iter().zip(rows) {
                f.finish();
                assert_eq!((&row.key, &row.figures), (&key, &f), "{by:?}");
            }
        }
    }

    #[test]
    fn the_default_energy_settings_are_the_collector_files() {
        let c = EnergyConfig::default();
        assert_eq!(c.timezone, "Europe/Paris");
        assert_eq!(c.working_hours, "8-19");
        assert_eq!(c.working_days, ["mon", "tue", "wed", "thu", "fri"]);
        assert!(c.power_profiles.is_empty());
        Context::new(&c, Catalogue::builtin()).unwrap();
    }

    #[test]
    fn bad_settings_name_the_key() {
        let mut config = EnergyConfig {
            timezone: "Europe/Pariss".into(),
            working_days: vec!["mon".into()],
            working_hours: "8-19".into(),
            power_profiles: String::new(),
            tariff: Tariff::default(),
            grid: GridFactor::default(),
            grid_zone: String::new(),
            site_grid_zones: BTreeMap::new(),
        };
        let e = Context::new(&config, Catalogue::builtin()).unwrap_err();
        assert!(e.to_string().contains("Europe/Pariss"), "{e}");
        config.timezone = "UTC".into();
        config.working_hours = "19-8".into();
        assert!(Context::new(&config, Catalogue::builtin()).is_err());
        config.working_hours = "8-19".into();
        config.working_days = vec!["lundi".into()];
        let e = Context::new(&config, Catalogue::builtin()).unwrap_err();
        assert!(e.to_string().contains("lundi"));
    }

    #[test]
    fn assets_without_agent_are_counted_by_org_site_and_kind_and_shown_as_unknown() {
        let counts = count_agentless([
            ("mairie", "Accueil", "monitor"),
            ("mairie", "", "computer"),
            ("mairie", "Accueil", "monitor"),
            ("ecole", "", "computer"),
        ]);
        let got: Vec<(&str, &str, &str, u64)> = counts
            .iter()
            .map(|c| (c.org.as_str(), c.site.as_str(), c.kind.as_str(), c.assets))
            .collect();
        assert_eq!(
            got,
            [
                ("ecole", "(none)", "computer", 1),
                ("mairie", "(none)", "computer", 1),
                ("mairie", "Accueil", "monitor", 2),
            ]
        );
        let mut r = report(
            &[],
            &ctx(),
            "2025-03-03",
            "2025-03-03",
            MON,
            MON + 24 * H,
            MON + 24 * H,
            GroupBy::Org,
        )
        .unwrap();
        assert!(r.assets_without_agent.is_empty());
        r.assets_without_agent = counts;
        let table = to_table(&r);
        assert!(
            table.contains(
                "without agent: 2 monitor(s) at mairie/Accueil: energy unknown, not counted"
            ),
            "{table}"
        );
        // No energy is invented for them.
        assert_eq!(r.total.kwh, 0.0);
    }
}
