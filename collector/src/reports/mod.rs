//! The I/O edge of the reports: loads what the domain's rules need from the store and
//! renders the result (table, CSV, JSON). The CLI and the API both end here.
//!
//! - this file: the report context (energy settings, power catalogue) and consumption;
//! - [`renewal`], [`compliance`] (and `policy replay`), [`setpoint`].

pub mod compliance;
pub mod renewal;
pub mod setpoint;

use std::path::PathBuf;

use veille_proto::v1::ChassisClass;

use crate::config::Config;
use crate::store::{Store, StoreError};
use veille_domain::energy::catalogue::{Catalogue, CatalogueError, DeviceClass};
use veille_domain::energy::consumption::{
    self, ConsumptionError, Context, CsvDialect, DeviceData, GroupBy, SessionEdge,
};

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
/// thread reads the store while the caller computes, so a report uses two cores.
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
    std::thread::Builder::new()
        .name("report-loader".into())
        .spawn(move || {
            for record in records {
                let device = load_device(&loader, record, from_hour, to_ms);
                let failed = device.is_err();
                // A closed channel: the caller stopped reading (an error, a client gone).
                if send.send(device).is_err() || failed {
                    return;
                }
            }
        })
        .map_err(|e| StoreError::Engine(format!("cannot start the report loader: {e}")))?;
    Ok(receive.into_iter())
}

/// One device's rollups in `[from_hour, to_ms)`, boot sessions and inventory facts.
fn load_device(
    store: &Store,
    record: veille_domain::devices::DeviceRecord,
    from_hour: i64,
    to_ms: i64,
) -> Result<DeviceData, StoreError> {
    let inv = store
        .inventory(&record.org, &record.device_id)?
        .unwrap_or_default();
    let class =
        DeviceClass::from(ChassisClass::try_from(inv.chassis).unwrap_or(ChassisClass::Unknown));
    let sessions = store
        .boot_sessions(&record.org, &record.device_id)?
        .into_iter()
        .map(|(_, s)| SessionEdge {
            boot_ms: s.boot_time_unix_s.saturating_mul(1000),
            first_start_ms: s.first_start_unix_ms,
            last_end_ms: s.last_end_unix_ms,
            last_shutdown: s.last_report_shutdown,
            last_agent_stop: s.last_report_agent_stop,
        })
        .collect();
    Ok(DeviceData {
        hours: store.rollups(&record.org, &record.device_id, from_hour, to_ms)?,
        org: record.org,
        device_id: record.device_id,
        hostname: inv.hostname,
        site: inv.site,
        groups: inv.tags,
        class,
        manufacturer: inv.manufacturer,
        model: inv.model,
        monitors: inv.monitors.len() as u32,
        monitor_diagonals_in: inv
            .monitors
            .iter()
            .map_while(|m| veille_domain::energy::classify::diagonal_in(m.width_cm, m.height_cm))
            .collect(),
        sessions,
    })
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
    let devices = device_stream(store, org, from_ms, to_ms)?.map(|d| d.map_err(ReportError::from));
    consumption::report_from(devices, ctx, from, to, from_ms, to_ms, now_ms, by)
}

fn next_day(date: &str) -> Result<String, ConsumptionError> {
    let bad = || ConsumptionError::Date {
        value: date.to_owned(),
    };
    let d: jiff::civil::Date = date.parse().map_err(|_| bad())?;
    let next = d.tomorrow().map_err(|_| bad())?;
    Ok(next.to_string())
}
