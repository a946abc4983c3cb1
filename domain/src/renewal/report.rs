//! The renewal report: every device's age and where it comes from, its horizon and
//! status, counts by site and class, the devices past their horizon, the reuse list
//! (working devices past their horizon, under the recycling age: loi REEN) and the
//! recycling list, with embodied kgCO2e per year of service and what one more year of
//! service saves.
//!
//! Pure: the facts come from the collector's store and `today`
//! is passed in.
//!
//! # Rules
//! - Age: acquisition date (GLPI import), else BIOS release date (an estimate), else the
//!   day the collector first saw the device (a lower bound); see [`crate::renewal::horizon`].
//! - Attached monitors (from the computer's inventory) are devices of class `monitor`,
//!   aged from their EDID week and year of manufacture, else their computer's first
//!   seen (a lower bound). Their id is `<computer id>/monitor/<n>`.
//! - Working: the device (for a monitor, its computer) reported within
//!   [`WORKING_WITHIN_DAYS`] days. Only working devices go on the reuse list; a device
//!   that went silent may be broken, stored or already gone.
//! - Site: the agent's `site`, else the GLPI location, else `(none)`.
//! - Assets without an agent ([`crate::renewal::fleet`]: monitors and PCs that GLPI
//!   lists and no agent reports) are rows too, `has_agent: false`: aged from their
//!   acquisition date, else from the day an import first listed them (a lower bound,
//!   `first_seen`); never `working` (nothing says they are), so never on the reuse
//!   list. Their id is `glpi/<kind>/<identity>`.
//! - Embodied per year: the class's embodied kgCO2e over the whole years served so far
//!   (at least one); the gain is how much that yearly share drops if the device serves
//!   one more year.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::devices::csv_field;
use crate::energy::catalogue::DeviceClass;
use crate::renewal::asset::AssetRecord;
use crate::renewal::embodied::EmbodiedTable;
use crate::renewal::fleet::FleetAsset;
use crate::renewal::horizon::{
    AgeSource, Date, DeviceAge, HorizonOrigin, RenewalError, RenewalPolicy,
};

/// A device counts as working when it reported within this many days.
pub const WORKING_WITHIN_DAYS: i64 = 30;

use veille_proto::units::MS_PER_DAY as DAY_MS;

/// `[renewal]` of the collector configuration (documented in `deploy/collector.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfig {
    /// Months before the horizon during which a device is "approaching" (0–60). Applied
    /// over the built-in value and over the overrides file's.
    pub approaching_months: u32,
    /// A TOML file in the layout of `deploy/renewal.toml` overriding horizons, the
    /// recycling age or embodied figures; empty = the built-in values only.
    pub overrides: String,
}

/// Why the renewal settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RenewalConfigError {
    #[error("renewal.overrides = {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("renewal.overrides = {path}: {source}")]
    Overrides { path: String, source: RenewalError },
    #[error("renewal.approaching_months: {0}")]
    Approaching(RenewalError),
}

/// The horizons and embodied figures a report uses.
#[derive(Debug, Clone)]
pub struct RenewalContext {
    pub policy: RenewalPolicy,
    pub embodied: EmbodiedTable,
}

impl RenewalContext {
    /// The built-in values, the overrides file's text (`overrides`, read by the caller
    /// from `config.overrides`) on top, then `approaching_months`.
    pub fn from_config(
        config: &RenewalConfig,
        overrides: Option<&str>,
    ) -> Result<Self, RenewalConfigError> {
        let mut policy = RenewalPolicy::builtin();
        let mut embodied = EmbodiedTable::builtin();
        if let Some(text) = overrides {
            let bad = |source| RenewalConfigError::Overrides {
                path: config.overrides.clone(),
                source,
            };
            policy = policy.with_overrides(text).map_err(bad)?;
            embodied = embodied.with_overrides(text).map_err(bad)?;
        }
        let approaching = format!(
            "approaching_months = {{ value = {}, source = \"collector configuration, renewal.approaching_months\" }}",
            config.approaching_months
        );
        policy = policy
            .with_overrides(&approaching)
            .map_err(RenewalConfigError::Approaching)?;
        Ok(Self { policy, embodied })
    }
}

/// A monitor attached to a computer, from its EDID.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorFacts {
    /// e.g. `DEL 0xA0B1 "DELL P2419H" s/n ABC`.
    pub label: String,
    /// Year of manufacture; 0 = unknown.
    pub year: u32,
    /// Week of manufacture 1–53; 0 (or 255, "model year") = unknown.
    pub week: u32,
}

/// One previous inventory replaced at `at` (`YYYY-MM-DD`), and what changed then.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryChange {
    pub at: String,
    pub changes: Vec<String>,
}

/// What the report needs about one computer.
#[derive(Debug, Clone, Default)]
pub struct ComputerFacts {
    pub org: String,
    pub device_id: String,
    pub hostname: String,
    pub site: String,
    pub class: DeviceClass,
    pub bios_release: Option<Date>,
    pub first_seen_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    pub asset: Option<AssetRecord>,
    pub monitors: Vec<MonitorFacts>,
    pub inventory_changes: Vec<InventoryChange>,
}

/// One device of the report. JSON field names are a stable interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRow {
    pub org: String,
    pub device_id: String,
    pub hostname: String,
    /// `computer` or `monitor`.
    pub kind: &'static str,
    /// For a monitor, the computer it is attached to; else empty.
    pub attached_to: String,
    pub site: String,
    pub class: &'static str,
    /// The date the age counts from.
    pub age_since: String,
    /// `acquisition`, `bios_estimate`, `first_seen` or `edid_manufacture`.
    pub age_source: &'static str,
    /// The same for people, saying how far to trust it.
    pub age_source_label: &'static str,
    /// True when the real age may only be larger (first seen).
    pub age_is_lower_bound: bool,
    pub age_months: u32,
    /// Age in years, one decimal.
    pub age_years: f64,
    pub horizon_months: u32,
    /// `class` (the class horizon) or `device` (a lifespan set in GLPI).
    pub horizon_from: &'static str,
    pub horizon_date: String,
    /// `ok`, `approaching` or `past`.
    pub status: &'static str,
    /// Reported within [`WORKING_WITHIN_DAYS`] days (a monitor: its computer did).
    pub working: bool,
    pub reuse: bool,
    pub recycle: bool,
    /// Embodied kgCO2e of one device of this class.
    pub embodied_kgco2e: f64,
    /// That figure over the whole years served so far (at least one).
    pub embodied_kgco2e_per_year: f64,
    /// How much the yearly figure drops if the device serves one more year.
    pub gain_kgco2e_per_year_if_kept_one_more_year: f64,
    pub inventory_number: String,
    pub location: String,
    /// How the GLPI row was matched (`serial`, `uuid`, `hostname`); empty if none.
    pub matched_by: String,
    /// Hardware changes seen in the inventory history, oldest first.
    pub inventory_changes: Vec<InventoryChange>,
    /// False for an asset only the inventory (GLPI) knows: its energy is unknown.
    pub has_agent: bool,
    /// GLPI's id of an asset without agent, when the sync gave it; 0 otherwise.
    pub glpi_id: u64,
}

/// Counts for one (site, class).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupCount {
    pub site: String,
    pub class: String,
    pub total: u32,
    pub ok: u32,
    pub approaching: u32,
    pub past: u32,
    pub reuse: u32,
    pub recycle: u32,
    /// Assets no agent reports.
    pub without_agent: u32,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenewalReport {
    pub today: String,
    pub approaching_months: u32,
    pub recycle_after_years: u32,
    pub working_within_days: i64,
    /// Rows of `devices` no agent reports (GLPI only).
    pub without_agent: u32,
    pub groups: Vec<GroupCount>,
    /// Every device, computers and their monitors, by (org, device_id).
    pub devices: Vec<DeviceRow>,
    /// Devices on or past their horizon, oldest first.
    pub past_horizon: Vec<DeviceRow>,
    /// Working, past their horizon, under the recycling age: hand them on (loi REEN).
    pub reuse: Vec<DeviceRow>,
    /// At or over the recycling age.
    pub recycling: Vec<DeviceRow>,
}

fn date_of_ms(ms: i64) -> Date {
    Date::from_days_since_epoch(
        ms.div_euclid(DAY_MS)
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32,
    )
}

/// The date an EDID week/year points to: the Monday-ish start of that week (Jan 1 +
/// 7 × (week − 1)), or Jan 1 when the week is unknown. `None` for a year EDID cannot
/// hold (before 1990) or 0.
pub fn edid_date(year: u32, week: u32) -> Option<Date> {
    if year < 1990 {
        return None;
    }
    let jan1 = Date::from_ymd(i32::try_from(year).ok()?, 1, 1)?;
    let offset = if (1..=53).contains(&week) {
        (week as i32 - 1) * 7
    } else {
        0
    };
    Some(Date::from_days_since_epoch(
        jan1.days_since_epoch() + offset,
    ))
}

/// Builds the report at `now_ms` (collector clock; `today` is its UTC date).
pub fn report(computers: &[ComputerFacts], ctx: &RenewalContext, now_ms: i64) -> RenewalReport {
    report_fleet(computers, &[], ctx, now_ms)
}

/// [`report`] over the whole fleet: the devices agents report and the assets without
/// agent, `(org, asset)`.
pub fn report_fleet(
    computers: &[ComputerFacts],
    agentless: &[(String, FleetAsset)],
    ctx: &RenewalContext,
    now_ms: i64,
) -> RenewalReport {
    let today = date_of_ms(now_ms);
    let mut devices = Vec::new();
    for (org, a) in agentless {
        let Some(kind) = a.asset_kind() else { continue };
        let first_imported =
            (a.first_imported_unix_ms > 0).then(|| date_of_ms(a.first_imported_unix_ms));
        let Some(age) = DeviceAge::from_sources(a.acquisition(), None, first_imported) else {
            continue;
        };
        let site = if a.location.is_empty() {
            "(none)".to_owned()
        } else {
            a.location.clone()
        };
        let base = Base {
            org,
            hostname: &a.name,
            site: &site,
            working: false,
            today,
            ctx,
        };
        let mut row = base.row(
            format!("glpi/{}/{}", a.kind, a.identity),
            kind.class(),
            age,
            a.lifespan(),
            String::new(),
        );
        row.kind = kind.as_str();
        row.has_agent = false;
        row.glpi_id = a.glpi_id;
        row.inventory_number = a.inventory_number.clone();
        row.location = a.location.clone();
        devices.push(row);
    }
    for c in computers {
        let first_seen = (c.first_seen_unix_ms > 0).then(|| date_of_ms(c.first_seen_unix_ms));
        let working = c.last_seen_unix_ms > 0
            && now_ms.saturating_sub(c.last_seen_unix_ms) <= WORKING_WITHIN_DAYS * DAY_MS;
        let asset = c.asset.clone().unwrap_or_default();
        let site = if !c.site.is_empty() {
            c.site.clone()
        } else if !asset.location.is_empty() {
            asset.location.clone()
        } else {
            "(none)".to_owned()
        };
        let base = Base {
            org: &c.org,
            hostname: &c.hostname,
            site: &site,
            working,
            today,
            ctx,
        };
        if let Some(age) = DeviceAge::from_sources(asset.acquisition(), c.bios_release, first_seen)
        {
            let mut row = base.row(
                c.device_id.clone(),
                c.class,
                age,
                asset.lifespan(),
                String::new(),
            );
            row.inventory_number = asset.inventory_number.clone();
            row.location = asset.location.clone();
            row.matched_by = asset.matched_by.clone();
            row.inventory_changes = c.inventory_changes.clone();
            devices.push(row);
        }
        for (i, m) in c.monitors.iter().enumerate() {
            let age = match edid_date(m.year, m.week) {
                Some(since) => Some(DeviceAge {
                    since,
                    source: AgeSource::EdidManufacture,
                }),
                None => first_seen.map(|since| DeviceAge {
                    since,
                    source: AgeSource::FirstSeen,
                }),
            };
            if let Some(age) = age {
                let mut row = base.row(
                    format!("{}/monitor/{}", c.device_id, i + 1),
                    DeviceClass::Monitor,
                    age,
                    None,
                    c.device_id.clone(),
                );
                row.hostname = format!("{} ({})", c.hostname, m.label);
                devices.push(row);
            }
        }
    }
    devices.sort_by(|a, b| (&a.org, &a.device_id).cmp(&(&b.org, &b.device_id)));

    let mut groups: BTreeMap<(String, String), GroupCount> = BTreeMap::new();
    for d in &devices {
        let g = groups
            .entry((d.site.clone(), d.class.to_owned()))
            .or_insert_with(|| GroupCount {
                site: d.site.clone(),
                class: d.class.to_owned(),
                ..Default::default()
            });
        g.total += 1;
        match d.status {
            "past" => g.past += 1,
            "approaching" => g.approaching += 1,
            _ => g.ok += 1,
        }
        g.reuse += u32::from(d.reuse);
        g.recycle += u32::from(d.recycle);
        g.without_agent += u32::from(!d.has_agent);
    }
    let oldest_first = |mut v: Vec<DeviceRow>| {
        v.sort_by(|a, b| {
            (&a.age_since, &a.org, &a.device_id).cmp(&(&b.age_since, &b.org, &b.device_id))
        });
        v
    };
    let filtered = |f: fn(&DeviceRow) -> bool| {
        oldest_first(devices.iter().filter(|d| f(d)).cloned().collect())
    };
    RenewalReport {
        today: today.to_string(),
        approaching_months: ctx.policy.approaching_months().value,
        recycle_after_years: ctx.policy.recycle_after_years().value,
        working_within_days: WORKING_WITHIN_DAYS,
        without_agent: devices.iter().filter(|d| !d.has_agent).count() as u32,
        groups: groups.into_values().collect(),
        past_horizon: filtered(|d| d.status == "past"),
        reuse: filtered(|d| d.reuse),
        recycling: filtered(|d| d.recycle),
        devices,
    }
}

/// What a computer's rows and its monitors' rows share.
struct Base<'a> {
    org: &'a str,
    hostname: &'a str,
    site: &'a str,
    working: bool,
    today: Date,
    ctx: &'a RenewalContext,
}

impl Base<'_> {
    fn row(
        &self,
        device_id: String,
        class: DeviceClass,
        age: DeviceAge,
        lifespan_months: Option<u32>,
        attached_to: String,
    ) -> DeviceRow {
        let a = self
            .ctx
            .policy
            .assess(class, age, lifespan_months, self.working, self.today);
        let years_served = a.age_months / 12;
        let embodied = &self.ctx.embodied;
        DeviceRow {
            org: self.org.to_owned(),
            device_id,
            hostname: self.hostname.to_owned(),
            kind: if attached_to.is_empty() {
                "computer"
            } else {
                "monitor"
            },
            attached_to,
            site: self.site.to_owned(),
            class: class.as_str(),
            age_since: age.since.to_string(),
            age_source: age.source.as_str(),
            age_source_label: age.source.label(),
            age_is_lower_bound: age.source.is_lower_bound(),
            age_months: a.age_months,
            age_years: round(f64::from(a.age_months) / 12.0, 1),
            horizon_months: a.horizon_months,
            horizon_from: match a.horizon_origin {
                HorizonOrigin::Class(_) => "class",
                HorizonOrigin::Device => "device",
            },
            horizon_date: a.horizon_date.to_string(),
            status: a.status.as_str(),
            working: self.working,
            reuse: a.reuse,
            recycle: a.recycle,
            embodied_kgco2e: embodied.entry(class).kgco2e,
            embodied_kgco2e_per_year: round(embodied.yearly_embodied_kg(class, years_served), 1),
            gain_kgco2e_per_year_if_kept_one_more_year: round(
                embodied.gain_of_keeping_one_more_year(class, years_served),
                1,
            ),
            inventory_number: String::new(),
            location: String::new(),
            matched_by: String::new(),
            inventory_changes: Vec::new(),
            has_agent: true,
            glpi_id: 0,
        }
    }
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// The report as JSON (pretty, newline-terminated).
pub fn to_json(r: &RenewalReport) -> String {
    serde_json::to_string_pretty(r)
        .map(|s| s + "\n")
        .unwrap_or_default()
}

const CSV_HEADER: &[&str] = &[
    "org",
    "device_id",
    "hostname",
    "kind",
    "attached_to",
    "site",
    "class",
    "age_since",
    "age_source",
    "age_months",
    "horizon_months",
    "horizon_from",
    "horizon_date",
    "status",
    "working",
    "reuse",
    "recycle",
    "embodied_kgco2e",
    "embodied_kgco2e_per_year",
    "gain_kgco2e_per_year_if_kept_one_more_year",
    "inventory_number",
    "location",
    "matched_by",
    "has_agent",
];

/// One line per device (the lists are the `status`, `reuse` and `recycle` columns).
pub fn to_csv(r: &RenewalReport) -> String {
    let mut out = CSV_HEADER.join(",") + "\n";
    for d in &r.devices {
        let cells = [
            d.org.clone(),
            d.device_id.clone(),
            d.hostname.clone(),
            d.kind.to_owned(),
            d.attached_to.clone(),
            d.site.clone(),
            d.class.to_owned(),
            d.age_since.clone(),
            d.age_source.to_owned(),
            d.age_months.to_string(),
            d.horizon_months.to_string(),
            d.horizon_from.to_owned(),
            d.horizon_date.clone(),
            d.status.to_owned(),
            d.working.to_string(),
            d.reuse.to_string(),
            d.recycle.to_string(),
            d.embodied_kgco2e.to_string(),
            d.embodied_kgco2e_per_year.to_string(),
            d.gain_kgco2e_per_year_if_kept_one_more_year.to_string(),
            d.inventory_number.clone(),
            d.location.clone(),
            d.matched_by.clone(),
            d.has_agent.to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Aligned tables for people: counts by site and class, then the three lists.
pub fn to_table(r: &RenewalReport) -> String {
    let mut out = format!(
        "Renewal on {} (approaching: within {} months of the horizon; working: reported \
         within {} days; recycling from {} years)\n",
        r.today, r.approaching_months, r.working_within_days, r.recycle_after_years
    );
    if r.without_agent > 0 {
        out.push_str(&format!(
            "{} asset(s) without agent (from GLPI): AGENT = no below\n",
            r.without_agent
        ));
    }
    out.push('\n');
    let counts: Vec<Vec<String>> = r
        .groups
        .iter()
        .map(|g| {
            vec![
                g.site.clone(),
                g.class.clone(),
                g.total.to_string(),
                g.ok.to_string(),
                g.approaching.to_string(),
                g.past.to_string(),
                g.reuse.to_string(),
                g.recycle.to_string(),
                g.without_agent.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "SITE",
            "CLASS",
            "TOTAL",
            "OK",
            "APPROACHING",
            "PAST",
            "REUSE",
            "RECYCLE",
            "NO AGENT",
        ],
        &counts,
    ));
    for (title, list) in [
        ("Past their horizon", &r.past_horizon),
        (
            "Reuse: working, past their horizon, under the recycling age (loi REEN)",
            &r.reuse,
        ),
        ("Recycling: at or over the recycling age", &r.recycling),
        ("All devices", &r.devices),
    ] {
        out.push_str(&format!("\n{title} ({}):\n", list.len()));
        if list.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|d| {
                vec![
                    d.hostname.clone(),
                    d.device_id.clone(),
                    d.site.clone(),
                    d.class.to_owned(),
                    format!("{:.1} y", d.age_years),
                    d.age_source_label.to_owned(),
                    d.horizon_date.clone(),
                    d.status.to_owned(),
                    format!("{:.1}", d.embodied_kgco2e_per_year),
                    format!("{:.1}", d.gain_kgco2e_per_year_if_kept_one_more_year),
                    if d.has_agent { "yes" } else { "no" }.to_owned(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "HOSTNAME",
                "DEVICE_ID",
                "SITE",
                "CLASS",
                "AGE",
                "AGE FROM",
                "HORIZON",
                "STATUS",
                "KGCO2E/Y",
                "GAIN +1Y",
                "AGENT",
            ],
            &rows,
        ));
    }
    out
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000; // 2026-09-21

    fn ctx() -> RenewalContext {
        RenewalContext::from_config(
            &RenewalConfig {
                approaching_months: 6,
                overrides: String::new(),
            },
            None,
        )
        .unwrap()
    }

    fn ms(y: i32, m: u32, d: u32) -> i64 {
        i64::from(Date::from_ymd(y, m, d).unwrap().days_since_epoch()) * DAY_MS
    }

    fn computer(id: &str, class: DeviceClass) -> ComputerFacts {
        ComputerFacts {
            org: "mairie".into(),
            device_id: id.into(),
            hostname: format!("pc-{id}"),
            class,
            first_seen_unix_ms: ms(2026, 1, 10),
            last_seen_unix_ms: NOW - DAY_MS,
            ..Default::default()
        }
    }

    #[test]
    fn age_sources_statuses_lists_and_groups() {
        assert_eq!(date_of_ms(NOW).to_string(), "2026-09-21");
        let mut acquired = computer("a", DeviceClass::Laptop);
        acquired.asset = Some(AssetRecord {
            acquisition_date: "2019-03-12".into(),
            location: "Mairie > Accueil".into(),
            matched_by: "serial".into(),
            ..Default::default()
        });
        let mut bios = computer("b", DeviceClass::Desktop);
        bios.bios_release = Date::from_ymd(2021, 1, 5);
        bios.site = "ecole".into();
        let mut silent_old = computer("c", DeviceClass::Desktop);
        silent_old.bios_release = Date::from_ymd(2015, 6, 1);
        silent_old.last_seen_unix_ms = NOW - 31 * DAY_MS;
        silent_old.site = "ecole".into();
        let mut with_monitor = computer("d", DeviceClass::Desktop);
        with_monitor.monitors = vec![
            MonitorFacts {
                label: "DEL 0xA0B1".into(),
                year: 2017,
                week: 10,
            },
            MonitorFacts {
                label: "XXX 0x0001".into(),
                year: 0,
                week: 0,
            },
        ];
        let r = report(&[acquired, bios, silent_old, with_monitor], &ctx(), NOW);

        let by_id = |id: &str| r.devices.iter().find(|d| d.device_id == id).unwrap();
        let a = by_id("a");
        assert_eq!(
            (a.age_source, a.status, a.site.as_str()),
            ("acquisition", "past", "Mairie > Accueil")
        );
        assert_eq!(a.age_months, 90);
        assert!(a.working && a.reuse && !a.recycle);
        assert_eq!(a.matched_by, "serial");
        // 181 kg over 7 whole years, and over 8.
        assert_eq!(a.embodied_kgco2e_per_year, 25.9);
        assert_eq!(a.gain_kgco2e_per_year_if_kept_one_more_year, 3.2);
        let b = by_id("b");
        assert_eq!((b.age_source, b.status), ("bios_estimate", "approaching"));
        assert!(!b.age_is_lower_bound);
        let c = by_id("c");
        assert_eq!(
            (c.status, c.working, c.reuse, c.recycle),
            ("past", false, false, true)
        );
        let d = by_id("d");
        assert_eq!((d.age_source, d.status), ("first_seen", "ok"));
        assert!(d.age_is_lower_bound);
        let m1 = by_id("d/monitor/1");
        assert_eq!(
            (m1.kind, m1.class, m1.age_source),
            ("monitor", "monitor", "edid_manufacture")
        );
        assert_eq!((m1.age_since.as_str(), m1.status), ("2017-03-05", "past"));
        assert_eq!(m1.attached_to, "d");
        assert!(m1.reuse, "a working monitor past 8 y, under 10 y");
        let m2 = by_id("d/monitor/2");
        assert_eq!(m2.age_source, "first_seen");

        assert_eq!(r.devices.len(), 6);
        let ids = |l: &[DeviceRow]| l.iter().map(|d| d.device_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&r.past_horizon), ["c", "d/monitor/1", "a"]);
        assert_eq!(ids(&r.reuse), ["d/monitor/1", "a"]);
        assert_eq!(ids(&r.recycling), ["c"]);
        let ecole_desktop = r
            .groups
            .iter()
            .find(|g| g.site == "ecole" && g.class == "desktop")
            .unwrap();
        assert_eq!(
            (
                ecole_desktop.total,
                ecole_desktop.ok,
                ecole_desktop.approaching,
                ecole_desktop.past,
                ecole_desktop.recycle
            ),
            (2, 0, 1, 1, 1)
        );
        let total: u32 = r.groups.iter().map(|g| g.total).sum();
        assert_eq!(total, 6);

        // Renderings carry the same devices.
        let csv = to_csv(&r);
        assert_eq!(csv.lines().count(), 7);
        assert!(
            csv.lines()
                .next()
                .unwrap()
                .starts_with("org,device_id,hostname,kind")
        );
        let json: serde_json::Value = serde_json::from_str(&to_json(&r)).unwrap();
        assert_eq!(json["devices"].as_array().unwrap().len(), 6);
        assert_eq!(json["reuse"][1]["age_source"], "acquisition");
        let table = to_table(&r);
        assert!(table.contains("Reuse: working"), "{table}");
        assert!(table.contains("acquisition date"), "{table}");
    }

    #[test]
    fn a_glpi_lifespan_beats_the_class_horizon_and_config_sets_the_window() {
        let mut c = computer("a", DeviceClass::Laptop);
        c.asset = Some(AssetRecord {
            acquisition_date: "2022-09-21".into(),
            lifespan_months: 48,
            ..Default::default()
        });
        let r = report(std::slice::from_ref(&c), &ctx(), NOW);
        assert_eq!(
            (r.devices[0].horizon_from, r.devices[0].status),
            ("device", "past")
        );
        let wide = RenewalContext::from_config(
            &RenewalConfig {
                approaching_months: 60,
                overrides: String::new(),
            },
            None,
        )
        .unwrap();
        c.asset = None;
        let r = report(&[c], &wide, NOW);
        assert_eq!(r.approaching_months, 60);
        assert_eq!(r.devices[0].status, "approaching");
        let e = RenewalContext::from_config(
            &RenewalConfig {
                approaching_months: 61,
                overrides: String::new(),
            },
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("approaching_months"), "{e}");
    }

    #[test]
    fn an_overrides_file_changes_horizons_and_embodied_figures() {
        let text = "[horizons]\nlaptop = { years = 8, source = \"our policy\" }\n\
             [embodied]\nlaptop = { kgco2e = 236.0, source = \"manufacturer sheets median\" }\n";
        let ctx = RenewalContext::from_config(
            &RenewalConfig {
                approaching_months: 6,
                overrides: "renewal.toml".into(),
            },
            Some(text),
        )
        .unwrap();
        assert_eq!(ctx.policy.horizon(DeviceClass::Laptop).years, 8);
        assert_eq!(ctx.embodied.entry(DeviceClass::Laptop).kgco2e, 236.0);
        assert_eq!(ctx.policy.horizon(DeviceClass::Desktop).years, 6);
    }

    #[test]
    fn assets_without_agent_are_rows_with_their_age_source_and_never_working() {
        use crate::renewal::fleet::{AssetKind, FleetAsset};
        use crate::renewal::glpi::GlpiRow;
        let monitor = FleetAsset::from_row(
            &GlpiRow {
                name: Some("ECRAN-ACCUEIL".into()),
                serial: Some("CN0ABC".into()),
                location: Some("Mairie > Accueil".into()),
                purchase_date: Date::from_ymd(2016, 1, 15),
                ..Default::default()
            },
            AssetKind::Monitor,
            7,
            NOW,
        )
        .unwrap();
        // No date in GLPI: aged from the first import, a lower bound.
        let pc = FleetAsset::from_row(
            &GlpiRow {
                name: Some("PC-SANS-AGENT".into()),
                ..Default::default()
            },
            AssetKind::Computer,
            0,
            ms(2026, 1, 10),
        )
        .unwrap();
        let agentless = [("mairie".to_owned(), monitor), ("mairie".to_owned(), pc)];
        let r = report_fleet(
            &[computer("a", DeviceClass::Laptop)],
            &agentless,
            &ctx(),
            NOW,
        );
        assert_eq!(r.devices.len(), 3);
        assert_eq!(r.without_agent, 2);
        let by_id = |id: &str| r.devices.iter().find(|d| d.device_id == id).unwrap();
        let m = by_id("glpi/monitor/serial:CN0ABC");
        assert_eq!(
            (
                m.kind,
                m.class,
                m.age_source,
                m.status,
                m.has_agent,
                m.glpi_id
            ),
            ("monitor", "monitor", "acquisition", "past", false, 7)
        );
        assert_eq!(m.site, "Mairie > Accueil");
        assert!(!m.working && !m.reuse, "nothing says it works");
        let pc = by_id("glpi/computer/name:pc-sans-agent");
        assert_eq!(
            (pc.kind, pc.class, pc.age_source, pc.age_since.as_str()),
            ("computer", "unknown", "first_seen", "2026-01-10")
        );
        assert!(pc.age_is_lower_bound && !pc.has_agent);
        assert!(by_id("a").has_agent);
        let none = r
            .groups
            .iter()
            .find(|g| g.site == "(none)" && g.class == "unknown")
            .unwrap();
        assert_eq!((none.total, none.without_agent), (1, 1));
        assert!(r.past_horizon.iter().any(|d| d.device_id == m.device_id));
        assert!(r.reuse.is_empty());
        let csv = to_csv(&r);
        assert!(csv.lines().next().unwrap().ends_with(",has_agent"), "{csv}");
        assert!(csv.contains("glpi/monitor/serial:CN0ABC"), "{csv}");
        assert!(to_table(&r).contains("2 asset(s) without agent"));
        // Without agentless assets, the same report as before.
        let plain = report(&[computer("a", DeviceClass::Laptop)], &ctx(), NOW);
        assert_eq!(plain.without_agent, 0);
        assert_eq!(plain.devices.len(), 1);
    }

    #[test]
    fn edid_dates() {
        assert_eq!(edid_date(2017, 1).unwrap().to_string(), "2017-01-01");
        assert_eq!(edid_date(2017, 10).unwrap().to_string(), "2017-03-05");
        assert_eq!(edid_date(2017, 255).unwrap().to_string(), "2017-01-01");
        assert_eq!(edid_date(0, 0), None);
        assert_eq!(edid_date(1989, 1), None);
    }
}
