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
use crate::store::{BootSession, DeviceSpan, Store, StoreError};
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

/// Devices a loader reads in one statement, and what each loader may hold ready
/// ahead of the report's computation (its channel's bound): a loader can then finish
/// its chunk while the computation drains another loader's, and memory stays bounded
/// (loaders × this × one device's period of hours, ~70 KB for a month). Large enough
/// that a loader seldom waits to be woken: on a loaded machine each wake-up waits for
/// a core, and chunks of 64 made the month report slower than one loader
/// (BENCHMARKS.md §6c).
const CHUNK_DEVICES: usize = 256;

/// Loaders at most, whatever the cores: each holds a connection (PostgreSQL's read pool
/// keeps 4) and past the cores they only contend.
const MAX_LOADERS: usize = 4;

/// The same devices, loaded as the caller iterates: a fleet-wide report then holds a
/// few chunks of devices' rollups in memory, not all of them.
///
/// The fleet is cut into chunks of [`CHUNK_DEVICES`] in (org, device) order and the
/// chunks dealt to one loader thread per core, each reading its chunks' rollups in
/// one read of its own ([`Store::rollups_of_spans`]: one range scan per chunk) and
/// decoding them, while the caller computes. The caller takes the chunks back in
/// order, so it sees the devices in (org, device) order exactly as one loader would
/// give them, and a report's sums are added in the same order, to the bit. Each
/// loader reads its own snapshot: as before (the device list, inventories and boot
/// sessions were already separate reads), a report taken during ingest may see one
/// device's latest hour and not another's.
pub fn device_stream<'a>(
    store: &'a Store,
    org: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<impl Iterator<Item = Result<DeviceData, StoreError>> + 'a, StoreError> {
    let loaders = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MAX_LOADERS);
    stream_in_chunks(store, org, from_ms, to_ms, CHUNK_DEVICES, loaders)
}

/// [`device_stream`] with its chunk size and loader count given (tests use small ones).
fn stream_in_chunks(
    store: &Store,
    org: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    chunk_devices: usize,
    loaders: usize,
) -> Result<Chunks, StoreError> {
    let from_hour = from_ms.div_euclid(veille_domain::energy::rollup::HOUR_MS)
        * veille_domain::energy::rollup::HOUR_MS;
    let mut records = store.devices(org)?.into_iter();
    let mut chunks: Vec<Vec<DeviceRecord>> = Vec::new();
    loop {
        let chunk: Vec<DeviceRecord> = records.by_ref().take(chunk_devices.max(1)).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
    let loaders = loaders.clamp(1, chunks.len().max(1));
    // Inventories and boot sessions of the whole fleet, each in one scan (one read per
    // device cost more than the rollups' scan), then given to the loader of each
    // device's chunk.
    let firsts: Vec<(String, String)> = chunks
        .iter()
        .filter_map(|c| c.first().map(key_of))
        .collect();
    let mut facts: Vec<FleetFacts> = (0..loaders).map(|_| FleetFacts::new()).collect();
    for (key, f) in fleet_facts(store, org)? {
        // The chunk whose first device is the last at or before this one; a device
        // not in the list (registered since) is never asked for.
        let chunk = firsts.partition_point(|first| *first <= key);
        if let Some(mine) = chunk
            .checked_sub(1)
            .and_then(|c| facts.get_mut(c % loaders))
        {
            mine.insert(key, f);
        }
    }
    let mut work: Vec<Loader> = facts
        .into_iter()
        .map(|facts| Loader {
            spans: Vec::new(),
            chunks: Vec::new(),
            facts,
        })
        .collect();
    let ends = firsts.iter().skip(1).map(Some).chain(std::iter::once(None));
    for (i, ((chunk, first), end)) in chunks.into_iter().zip(&firsts).zip(ends).enumerate() {
        if let Some(w) = work.get_mut(i % loaders) {
            w.spans.push(DeviceSpan {
                first: first.clone(),
                end: end.cloned(),
            });
            w.chunks.push(chunk.into_iter().peekable());
        }
    }
    let mut receivers = Vec::with_capacity(loaders);
    for (n, loader) in work.into_iter().enumerate() {
        let (send, receive) = std::sync::mpsc::sync_channel(chunk_devices.clamp(1, CHUNK_DEVICES));
        let store = store.clone();
        let org = org.map(str::to_owned);
        std::thread::Builder::new()
            .name(format!("report-loader-{n}"))
            .spawn(move || loader.run(&store, org.as_deref(), from_hour, to_ms, &send))
            .map_err(|e| StoreError::Engine(format!("cannot start a report loader: {e}")))?;
        receivers.push(receive);
    }
    Ok(Chunks {
        receivers,
        sizes,
        next_chunk: 0,
        current: 0,
        left: 0,
        failed: false,
    })
}

fn key_of(r: &DeviceRecord) -> (String, String) {
    (r.org.clone(), r.device_id.clone())
}

/// One loader's share of the fleet: every n-th chunk, its span, the facts of its
/// devices.
struct Loader {
    spans: Vec<DeviceSpan>,
    chunks: Vec<std::iter::Peekable<std::vec::IntoIter<DeviceRecord>>>,
    facts: FleetFacts,
}

type Sent = std::sync::mpsc::SyncSender<Result<DeviceData, StoreError>>;

impl Loader {
    /// Sends every device of its chunks, in order, each with its rollups; an error
    /// ends the stream (sent in place of the next device).
    fn run(mut self, store: &Store, org: Option<&str>, from_hour: i64, to_ms: i64, send: &Sent) {
        let spans = std::mem::take(&mut self.spans);
        let mut at = 0;
        // Devices come in (org, device) order from both sides: a merge join per chunk.
        // A device without rollups in the period still counts (its time is unknown).
        let scanned = store.rollups_of_spans(org, &spans, from_hour, to_ms, |i, o, d, hours| {
            self.finish_chunks(&mut at, i, send)?;
            let Some(records) = self.chunks.get_mut(i) else {
                return Ok(());
            };
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
                emit(&mut self.facts, send, r, h)?;
                if mine {
                    return Ok(());
                }
            }
            Ok(())
        });
        let done = scanned.and_then(|()| self.finish_chunks(&mut at, spans.len(), send));
        if let Err(e) = done {
            // Refused when the caller stopped reading: nothing to tell then.
            let _ = send.send(Err(e));
        }
    }

    /// Sends the devices left (those without rollups) of the chunks before `upto`.
    fn finish_chunks(
        &mut self,
        at: &mut usize,
        upto: usize,
        send: &Sent,
    ) -> Result<(), StoreError> {
        while *at < upto {
            if let Some(records) = self.chunks.get_mut(*at) {
                for r in records {
                    emit(&mut self.facts, send, r, Vec::new())?;
                }
            }
            *at += 1;
        }
        Ok(())
    }
}

/// Sends one device; an error once the caller has stopped reading (an error, a client
/// gone), which ends the loader's scan.
fn emit(
    facts: &mut FleetFacts,
    send: &Sent,
    record: DeviceRecord,
    hours: Vec<(i64, veille_domain::energy::rollup::HourRollup)>,
) -> Result<(), StoreError> {
    let (inv, sessions) = facts
        .remove(&(record.org.clone(), record.device_id.clone()))
        .unwrap_or_default();
    send.send(Ok(device_data(record, hours, inv, sessions)))
        .map_err(|_| StoreError::Engine("report reader gone".into()))
}

/// The caller's side of [`device_stream`]: the chunks back in order, each from its
/// loader's channel.
struct Chunks {
    receivers: Vec<std::sync::mpsc::Receiver<Result<DeviceData, StoreError>>>,
    /// Devices in each chunk: chunk `i` comes from loader `i % receivers.len()`.
    sizes: Vec<usize>,
    next_chunk: usize,
    current: usize,
    /// Devices of the current chunk not yet taken.
    left: usize,
    /// An error was given: the stream has ended.
    failed: bool,
}

impl Iterator for Chunks {
    type Item = Result<DeviceData, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while self.left == 0 {
            self.left = *self.sizes.get(self.next_chunk)?;
            self.current = self.next_chunk % self.receivers.len().max(1);
            self.next_chunk += 1;
        }
        let got = match self.receivers.get(self.current).map(|r| r.recv()) {
            Some(Ok(got)) => got,
            // A loader that ended without its error (it cannot, short of a panic).
            _ => Err(StoreError::Engine("a report loader stopped early".into())),
        };
        match got {
            Ok(_) => self.left -= 1,
            Err(_) => self.failed = true,
        }
        Some(got)
    }
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

    /// Loaders that each read every n-th chunk of the fleet give the devices back in
    /// the order and with the data of one loader reading it all (chunks of 2 over 3
    /// loaders: spans that end inside an org, between orgs, on devices without rollups
    /// in the period, and ids that are prefixes of one another).
    #[test]
    fn chunked_loaders_give_what_one_loader_gives() {
        let dir = tempfile::tempdir().unwrap();
        chunked_loaders_agree(&Store::open(dir.path()).unwrap());
    }

    /// The same on PostgreSQL, whose fleet scan is its own statement (devices by id,
    /// their days aggregated per device).
    #[test]
    fn chunked_loaders_give_what_one_loader_gives_on_postgres() {
        let url = crate::store::testpg::fresh_database();
        let store = Store::open_location(&crate::store::Location::Postgres { url }).unwrap();
        chunked_loaders_agree(&store);
    }

    fn chunked_loaders_agree(store: &Store) {
        let mut n = 0;
        for org in ["acme", "acme2", "zeta"] {
            for dev in ["a", "a2", "b", "c", "c0", "d"] {
                n += 1;
                // Every third device has no hours in the period.
                let start = if n % 3 == 0 {
                    T0 - 48 * HOUR
                } else {
                    T0 + (n % 5) * HOUR
                };
                let mut batch = one_hour(dev, start);
                batch.inventory = Some(veille_proto::v1::Inventory {
                    site: format!("site-{n}"),
                    ..Default::default()
                });
                store.apply_batch(org, &batch, T0).unwrap();
            }
        }
        let show = |org, chunk, loaders| -> Vec<String> {
            stream_in_chunks(store, org, T0, T0 + 24 * HOUR, chunk, loaders)
                .unwrap()
                .map(|d| format!("{:?}", d.unwrap()))
                .collect()
        };
        for org in [None, Some("acme2")] {
            let one = show(org, usize::MAX, 1);
            assert_eq!(one.len(), if org.is_none() { 18 } else { 6 });
            for (chunk, loaders) in [(2, 3), (1, 4), (5, 2), (64, 2)] {
                assert_eq!(show(org, chunk, loaders), one, "{chunk} × {loaders}");
            }
        }
        // Each device with its own hours, as a read of it alone gives them.
        for d in stream_in_chunks(store, None, T0, T0 + 24 * HOUR, 2, 3).unwrap() {
            let d = d.unwrap();
            let alone = store
                .rollups(&d.org, &d.device_id, T0, T0 + 24 * HOUR)
                .unwrap();
            assert_eq!(d.hours, alone, "{}/{}", d.org, d.device_id);
        }
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
