//! The I/O edge of the reports: loads what the domain's rules need from the store and
//! renders the result (table, CSV, JSON). The CLI and the API both end here.
//!
//! - this file: the report context (energy settings, power catalogue) and consumption;
//! - [`renewal`], [`compliance`] (and `policy replay`), [`setpoint`], [`compare`] (the
//!   comparison between bodies), [`trajectory`] (kWh targets).

pub mod compare;
pub mod compliance;
pub mod renewal;
pub mod savings;
pub mod setpoint;
pub mod trajectory;

use std::path::PathBuf;

use veille_proto::v1::ChassisClass;

use crate::config::Config;
use crate::store::{BootSession, Store, StoreError};
use veille_domain::devices::DeviceRecord;
use veille_domain::energy::catalogue::{Catalogue, CatalogueError, DeviceClass};
use veille_domain::energy::consumption::{
    self, ConsumptionError, Context, CsvDialect, DeviceData, GroupBy, SessionEdge,
};
use veille_domain::energy::intensity::HourlyIntensity;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Consumption(#[from] ConsumptionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("energy.power_profiles = {path}: {source}")]
    ProfilesFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("energy.power_profiles: {0}")]
    Catalogue(#[from] CatalogueError),
    #[error("format {value:?}: expected table, csv or json")]
    Format { value: String },
    #[error("csv dialect {value:?}: expected plain or excel-fr")]
    Dialect { value: String },
    #[error("no store in {path}: has a collector run with this data directory?")]
    NoStore { path: PathBuf },
    #[error("report task failed: {0}")]
    Task(String),
}

/// The report context from the config: time zone, working hours, tariff, grid factor,
/// and the power catalogue with the user's file on top of the built-in one.
pub fn context(config: &Config) -> Result<Context, ReportError> {
    let mut catalogue = Catalogue::builtin();
    let path = &config.energy.power_profiles;
    if !path.is_empty() {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::ProfilesFile {
            path: path.into(),
            source,
        })?;
        catalogue = catalogue.with_overrides(&text)?;
    }
    let orgs: Vec<(String, veille_domain::energy::consumption::OrgEnergy)> = config
        .orgs
        .iter()
        .filter_map(|o| o.energy.clone().map(|e| (o.id.clone(), e)))
        .collect();
    Ok(Context::with_orgs(&config.energy, catalogue, &orgs)?)
}

/// Every device of `org` (or all orgs) with its rollups in `[from_ms, to_ms)`, its boot
/// sessions and the facts from its latest inventory.
pub fn load_devices(
    store: &Store,
    org: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DeviceData>, StoreError> {
    device_stream(store, org, from_ms, to_ms)?.collect()
}

/// Devices loaded ahead of the report's computation: enough to keep the computing
/// core busy while the loader reads, few enough to bound memory.
const STREAM_AHEAD: usize = 64;

/// The same devices, loaded one at a time as the caller iterates: a fleet-wide
/// report then holds a few devices' rollups in memory, not all of them. A loader
/// thread reads the store while the caller computes, so a report uses two cores, and
/// it reads the period's rollups of the whole fleet in one ordered scan
/// ([`Store::rollups_of_fleet`]) rather than one range read per device.
pub fn device_stream<'a>(
    store: &'a Store,
    org: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<impl Iterator<Item = Result<DeviceData, StoreError>> + 'a, StoreError> {
    let from_hour = from_ms.div_euclid(veille_domain::energy::rollup::HOUR_MS)
        * veille_domain::energy::rollup::HOUR_MS;
    let records = store.devices(org)?;
    let (send, receive) = std::sync::mpsc::sync_channel(STREAM_AHEAD);
    let loader = store.clone();
    let org = org.map(str::to_owned);
    std::thread::Builder::new()
        .name("report-loader".into())
        .spawn(move || {
            // Inventories and boot sessions of the whole fleet, each in one scan (one
            // read per device cost more than the rollups' scan).
            let mut facts = match fleet_facts(&loader, org.as_deref()) {
                Ok(f) => f,
                Err(e) => {
                    let _ = send.send(Err(e));
                    return;
                }
            };
            // Devices come in (org, device) order from both sides: a merge join. A
            // device without rollups in the period still counts (its time is unknown).
            let mut records = records.into_iter().peekable();
            let mut stopped = false;
            let mut emit = |record: DeviceRecord, hours| {
                let (inv, sessions) = facts
                    .remove(&(record.org.clone(), record.device_id.clone()))
                    .unwrap_or_default();
                let device = device_data(record, hours, inv, sessions);
                // A closed channel: the caller stopped reading (an error, a client gone).
                stopped = send.send(Ok(device)).is_err();
                !stopped
            };
            let scanned =
                loader.rollups_of_fleet(org.as_deref(), from_hour, to_ms, |o, d, hours| {
                    let mut hours = Some(hours);
                    while let Some(r) = records.peek() {
                        let order = (r.org.as_str(), r.device_id.as_str()).cmp(&(o, d));
                        if order == std::cmp::Ordering::Greater {
                            // Rollups of a device registered after the list was read.
                            return Ok(());
                        }
                        let Some(r) = records.next() else { break };
                        let mine = order == std::cmp::Ordering::Equal;
                        let h = if mine {
                            hours.take().unwrap_or_default()
                        } else {
                            Vec::new()
                        };
                        if !emit(r, h) {
                            return Err(StoreError::Engine("report reader gone".into()));
                        }
                        if mine {
                            return Ok(());
                        }
                    }
                    Ok(())
                });
            if let Err(e) = scanned {
                if !stopped {
                    let _ = send.send(Err(e));
                }
                return;
            }
            for r in records {
                if !emit(r, Vec::new()) {
                    return;
                }
            }
        })
        .map_err(|e| StoreError::Engine(format!("cannot start the report loader: {e}")))?;
    Ok(receive.into_iter())
}

/// Each device's latest inventory and boot sessions, by (org, device).
type FleetFacts = std::collections::HashMap<
    (String, String),
    (Option<veille_proto::v1::Inventory>, Vec<BootSession>),
>;

fn fleet_facts(store: &Store, org: Option<&str>) -> Result<FleetFacts, StoreError> {
    let mut facts = FleetFacts::new();
    store.inventories_of_fleet(org, |o, d, inv| {
        facts.entry((o.to_owned(), d.to_owned())).or_default().0 = Some(inv);
    })?;
    store.boot_sessions_of_fleet(org, |o, d, s| {
        facts
            .entry((o.to_owned(), d.to_owned()))
            .or_default()
            .1
            .push(s);
    })?;
    Ok(facts)
}

/// One device's report input: its `hours`, its boot sessions and inventory facts.
fn device_data(
    record: DeviceRecord,
    hours: Vec<(i64, veille_domain::energy::rollup::HourRollup)>,
    inv: Option<veille_proto::v1::Inventory>,
    sessions: Vec<BootSession>,
) -> DeviceData {
    let inv = inv.unwrap_or_default();
    let class =
        DeviceClass::from(ChassisClass::try_from(inv.chassis).unwrap_or(ChassisClass::Unknown));
    let sessions = sessions
        .into_iter()
        .map(|s| SessionEdge {
            boot_ms: s.boot_time_unix_s.saturating_mul(1000),
            first_start_ms: s.first_start_unix_ms,
            last_end_ms: s.last_end_unix_ms,
            last_shutdown: s.last_report_shutdown,
            last_agent_stop: s.last_report_agent_stop,
        })
        .collect();
    DeviceData {
        hours,
        org: record.org,
        device_id: record.device_id,
        hostname: inv.hostname,
        site: inv.site,
        groups: inv.tags,
        class,
        chassis_code: DeviceClass::chassis_code_from_wire(inv.chassis_type),
        manufacturer: inv.manufacturer,
        model: inv.model,
        monitors: inv.monitors.len() as u32,
        monitor_diagonals_in: inv
            .monitors
            .iter()
            .map_while(|m| veille_domain::energy::classify::diagonal_in(m.width_cm, m.height_cm))
            .collect(),
        monitor_models: inv
            .monitors
            .iter()
            .map(|m| (m.manufacturer.clone(), m.name.clone()))
            .collect(),
        sessions,
    }
}

/// What `report consumption` and `GET /api/v1/reports/consumption` take.
#[derive(Debug, Clone)]
pub struct ConsumptionQuery {
    pub from: String,
    pub to: String,
    pub by: GroupBy,
    pub format: OutputFormat,
    pub dialect: CsvDialect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            _ => Err(ReportError::Format {
                value: s.to_owned(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Table => "text/plain; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

pub fn parse_dialect(s: &str) -> Result<CsvDialect, ReportError> {
    match s {
        "plain" => Ok(CsvDialect::Plain),
        "excel-fr" => Ok(CsvDialect::ExcelFr),
        _ => Err(ReportError::Dialect {
            value: s.to_owned(),
        }),
    }
}

impl ConsumptionQuery {
    /// The query string for the HTTP API.
    pub fn to_query_string(&self) -> String {
        let dialect = match self.dialect {
            CsvDialect::Plain => "plain",
            CsvDialect::ExcelFr => "excel-fr",
        };
        format!(
            "from={}&to={}&by={}&format={}&csv_dialect={dialect}",
            self.from,
            self.to,
            self.by.as_str(),
            self.format.as_str()
        )
    }
}

/// Computes and renders the consumption report from `store`. `--to` is inclusive: the
/// period ends at the local midnight after it.
pub fn consumption_output(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    q: &ConsumptionQuery,
    now_ms: i64,
) -> Result<String, ReportError> {
    let report = consumption_report(store, ctx, org, &q.from, &q.to, q.by, now_ms)?;
    Ok(match q.format {
        OutputFormat::Table => consumption::to_table(&report),
        OutputFormat::Csv => consumption::to_csv(&report, q.dialect),
        OutputFormat::Json => serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .unwrap_or_default(),
    })
}

/// The consumption report itself (what [`consumption_output`] renders), for the web
/// page: `from` and `to` are `YYYY-MM-DD`, `to` inclusive.
pub fn consumption_report(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    from: &str,
    to: &str,
    by: GroupBy,
    now_ms: i64,
) -> Result<consumption::Report, ReportError> {
    let from_ms = ctx.day_start_ms(from)?;
    let to_ms = ctx.day_start_ms(&next_day(to)?)?;
    let with_hourly = with_intensities(store, ctx, from_ms, to_ms)?;
    let ctx = with_hourly.as_ref().unwrap_or(ctx);
    let devices = device_stream(store, org, from_ms, to_ms)?.map(|d| d.map_err(ReportError::from));
    let mut report = consumption::report_from(devices, ctx, from, to, from_ms, to_ms, now_ms, by)?;
    // No agent, no evidence: listed, never given an energy.
    let agentless = store.fleet_assets(org)?;
    report.assets_without_agent = consumption::count_agentless(
        agentless
            .iter()
            .map(|(o, a)| (o.as_str(), a.location.as_str(), a.kind.as_str())),
    );
    Ok(report)
}

/// `ctx` with the hourly grid intensities of the zones it names over `[from, to)`
/// (`import carbon`), or `None` when it names none.
pub fn with_intensities(
    store: &Store,
    ctx: &Context,
    from_ms: i64,
    to_ms: i64,
) -> Result<Option<Context>, ReportError> {
    let zones = ctx.zones();
    if zones.is_empty() {
        return Ok(None);
    }
    let mut by_zone = std::collections::BTreeMap::new();
    for zone in zones {
        let hours = crate::store::intensity::intensity_between(store, &zone, from_ms, to_ms)?;
        by_zone.insert(zone, HourlyIntensity::from_g_per_kwh(hours));
    }
    Ok(Some(ctx.with_intensities(by_zone)))
}

pub(crate) fn next_day(date: &str) -> Result<String, ConsumptionError> {
    let bad = || ConsumptionError::Date {
        value: date.to_owned(),
    };
    let d: jiff::civil::Date = date.parse().map_err(|_| bad())?;
    let next = d.tomorrow().map_err(|_| bad())?;
    Ok(next.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::{Report, ReportBatch};

    const HOUR: i64 = veille_domain::energy::rollup::HOUR_MS;
    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn one_hour(device: &str, start: i64) -> ReportBatch {
        ReportBatch {
            device_id: device.into(),
            reports: vec![Report {
                boot_id: "b".into(),
                seq: 1,
                start_unix_ms: start,
                end_unix_ms: start + HOUR,
                boot_time_unix_s: start / 1000,
                uptime_s: 3600,
                active_ms: 1_000_000,
                idle_ms: 2_600_000,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The stream reads the fleet's inventories and boot sessions in one scan each:
    /// every device must still get its own, as a read of that device alone gives
    /// them (ids that are prefixes of one another, a device without inventory, one
    /// with several boots, two orgs).
    #[test]
    fn the_stream_gives_each_device_its_own_inventory_and_sessions() {
        use veille_proto::v1::{ChassisClass, Inventory, Monitor};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let devices = [
            ("acme", "a", Some(("site-a", ChassisClass::Laptop, 0))),
            ("acme", "a2", Some(("site-b", ChassisClass::Desktop, 2))),
            ("acme", "b", None),
            ("zeta", "a", Some(("site-z", ChassisClass::Desktop, 1))),
        ];
        for (n, (org, dev, inv)) in devices.iter().enumerate() {
            for boot in 0..=n as i64 {
                let mut batch = one_hour(dev, T0 + boot * 3 * HOUR);
                batch.reports[0].boot_id = format!("boot-{boot}");
                batch.reports[0].seq = boot as u64 + 1;
                batch.reports[0].boot_time_unix_s = (T0 + boot * 3 * HOUR) / 1000 - 60;
                if boot == 0 {
                    batch.inventory = inv.map(|(site, chassis, monitors)| Inventory {
                        hostname: format!("host-{org}-{dev}"),
                        site: site.into(),
                        chassis: chassis as i32,
                        manufacturer: "LENOVO".into(),
                        model: format!("model-{dev}"),
                        tags: vec![format!("tag-{n}")],
                        monitors: (0..monitors)
                            .map(|m| Monitor {
                                width_cm: 50 + m,
                                height_cm: 30,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    });
                }
                store.apply_batch(org, &batch, T0).unwrap();
            }
        }
        let streamed: Vec<DeviceData> = device_stream(&store, None, T0, T0 + 24 * HOUR)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(streamed.len(), devices.len());
        for d in &streamed {
            // The old path: one read of this device's inventory and sessions.
            let record = store.device(&d.org, &d.device_id).unwrap().unwrap();
            let alone = device_data(
                record,
                d.hours.clone(),
                store.inventory(&d.org, &d.device_id).unwrap(),
                store
                    .boot_sessions(&d.org, &d.device_id)
                    .unwrap()
                    .into_iter()
                    .map(|(_, s)| s)
                    .collect(),
            );
            assert_eq!(format!("{d:?}"), format!("{alone:?}"));
        }
        let a2 = &streamed[1];
        assert_eq!(
            (a2.site.as_str(), a2.monitors, a2.sessions.len()),
            ("site-b", 2, 2)
        );
        assert_eq!(streamed[2].site, "");
        assert_eq!(streamed[3].sessions.len(), 4);
        assert_eq!(streamed[3].hostname, "host-zeta-a");
    }

    #[test]
    fn the_stream_merges_the_fleet_scan_with_every_device_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // b and "a2" have hours in the period; "a" (a prefix of "a2") and c only before
        // it; another org's device after them all.
        for (org, dev, start) in [
            ("acme", "a", T0 - 48 * HOUR),
            ("acme", "a2", T0 + HOUR),
            ("acme", "b", T0 + 2 * HOUR),
            ("acme", "c", T0 - 48 * HOUR),
            ("zeta", "z", T0 + 3 * HOUR),
        ] {
            store.apply_batch(org, &one_hour(dev, start), T0).unwrap();
        }
        let got: Vec<(String, String, usize)> = device_stream(&store, None, T0, T0 + 24 * HOUR)
            .unwrap()
            .map(|d| {
                let d = d.unwrap();
                (d.org, d.device_id, d.hours.len())
            })
            .collect();
        let want = [
            ("acme", "a", 0),
            ("acme", "a2", 1),
            ("acme", "b", 1),
            ("acme", "c", 0),
            ("zeta", "z", 1),
        ];
        assert_eq!(
            got,
            want.map(|(o, d, n)| (o.to_owned(), d.to_owned(), n))
                .to_vec()
        );
        let one_org: Vec<String> = device_stream(&store, Some("zeta"), T0, T0 + 24 * HOUR)
            .unwrap()
            .map(|d| d.unwrap().device_id)
            .collect();
        assert_eq!(one_org, ["z"]);
        // A reader that stops early ends the loader instead of blocking it.
        let mut first = device_stream(&store, None, T0, T0 + 24 * HOUR).unwrap();
        assert!(first.next().is_some());
        drop(first);
    }

    /// The SMBIOS chassis code an agent sends reaches the energy model: stored with the
    /// inventory, read back into the device's report input (0 on the wire: unknown).
    #[test]
    fn the_inventory_chassis_code_reaches_the_report_input() {
        use veille_proto::v1::{ChassisClass, Inventory};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (dev, code) in [("mini", 35), ("old-agent", 0)] {
            let mut batch = one_hour(dev, T0 + HOUR);
            batch.inventory = Some(Inventory {
                hostname: dev.into(),
                chassis: ChassisClass::Desktop as i32,
                chassis_type: code,
                ..Default::default()
            });
            store.apply_batch("acme", &batch, T0 + 2 * HOUR).unwrap();
        }
        let got: Vec<(String, Option<u8>)> = device_stream(&store, None, T0, T0 + 24 * HOUR)
            .unwrap()
            .map(|d| {
                let d = d.unwrap();
                (d.device_id, d.chassis_code)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("mini".to_owned(), Some(35)),
                ("old-agent".to_owned(), None)
            ]
        );
    }
}
