//! Durable storage of reports and registries, behind one interface and two engines.
//!
//! [`Store`] holds the rules every engine shares — idempotent batches keyed on
//! (org, device_id, seq) with conflicts kept apart, hourly rollups maintained with each
//! stored report, boot sessions, inventories and their history, retention — and an
//! [`Engine`] keeps the bytes: [`sqlite::Sqlite`] embedded (the default, one file in
//! the data directory) or [`postgres`] for several collectors on one database
//! (`[store] backend = "postgres"`). The conformance tests below run against both.
//!
//! [`Store::apply_batch`] commits a whole batch or nothing; [`Store::flush`] is the
//! durability point (an Ack is sent only after it): one flush covers every batch
//! applied before it, which is the ingest's group commit.
//!
//! # Data
//! Bulk data is packed ([`codec`]): a device-hour of raw reports is one row, a
//! device-day of hourly rollups another. Registries are small values under byte keys
//! in the engine's kv table:
//!
//! | tree (engine::Tree) | key                                              | value |
//! |---------------------|--------------------------------------------------|-------|
//! | `devices`           | org \0 device_id                                 | JSON [`DeviceRecord`] |
//! | `boot_sessions`     | org \0 device_id \0 boot_id                      | JSON [`BootSession`] |
//! | `inventory`         | org \0 device_id                                 | prost `Inventory` |
//! | `inventory_history` | org \0 device_id \0 received_ms (u64 BE)         | prost `Inventory` replaced at that time |
//! | `conflicts`         | org \0 device_id \0 seq (u64 BE) received_ms (u64 BE) n (u32 BE) | prost `Report` |
//! | `asset`             | org \0 device_id                                 | JSON [`AssetRecord`] (GLPI import) |
//! | `fleet_asset`       | org \0 kind \0 identity                          | JSON `FleetAsset`: GLPI, no agent (the `fleet` module) |
//! | `policies`          | org \0 version (u64 BE)                          | prost `SignedPolicy` (the `policy` module) |
//! | `meters`            | org \0 meter_id                                  | JSON (the `meters` module) |
//! | `rooms`             | org \0 room name                                 | JSON room (the `rooms` module) |
//!
//! Ids never contain NUL (org ids are `[A-Za-z0-9._-]`, device and boot ids are
//! refused with control characters by `validate_batch`), so NUL separates key parts and
//! a prefix scan on `org \0 device_id \0` finds exactly one device's rows.

pub mod codec;
pub mod engine;
pub mod fleet;
pub mod intensity;
pub mod meters;
pub mod postgres;
pub mod retention;
pub mod rooms;
pub mod sqlite;
pub mod testpg;

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use serde::{Deserialize, Serialize};
use veille_proto::v1::{EventKind, Inventory, Report, ReportBatch};

use crate::store::engine::{Dev, DevSpan, Engine, RawHour, Tree, Tx};
use veille_domain::devices::DeviceRecord;
use veille_domain::energy::rollup::{self, HOUR_MS, HourRollup};
use veille_domain::renewal::asset::AssetRecord;

/// Directory of the embedded store inside the data directory.
pub const STORE_DIR: &str = "store";

/// Directory where Veille 0.1 kept its sled store: recognised to refuse it clearly.
pub const OLD_SLED_DIR: &str = "db";

/// The layout this version reads and writes, recorded in the store's `meta`. Bump it
/// with any change an older collector would misread (3: rollup days in fixed-width
/// columns, [`codec::encode_rollup_day`]; 4: raw hours in columns and runs,
/// [`codec::encode_reports`]; 5: raw hours in appended chunks,
/// [`codec::append_reports`]).
pub const FORMAT_VERSION: u32 = 5;

/// Page cache per connection of [`Store::open`] (tests and tools); the server takes
/// `[store] cache_mib`.
const TOOL_CACHE_MIB: u32 = 8;

const DAY_MS: i64 = veille_proto::units::MS_PER_DAY;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error(
        "{path} holds a Veille 0.1 store (sled), which this version does not read; \
         0.1 was never released, so there is no migration: move it away (or start with \
         an empty data directory) and let the agents resend what their spools hold"
    )]
    OldSled { path: PathBuf },
    #[error(
        "the store at {location} has format {found}, this collector reads format \
         {FORMAT_VERSION}: run the collector version that wrote it, or export its data \
         with that version and start a new store"
    )]
    Format { location: String, found: String },
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store is busy (another process holds its write lock): {0}")]
    Busy(String),
    #[error("store engine error: {0}")]
    Engine(String),
    #[error("corrupt entry in {tree}, key {key}: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
}

impl StoreError {
    /// The store cannot take writes now but may later (disk full, database gone): the
    /// ingest answers UNAVAILABLE and agents keep their spool.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Busy(_))
    }
}

/// Where the store lives: `[store]` in the collector config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded engine in this directory.
    Embedded { dir: PathBuf, cache_mib: u32 },
    /// A PostgreSQL database.
    Postgres { url: String },
}

impl Location {
    /// For messages: a path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Embedded { dir, .. } => dir.display().to_string(),
            Location::Postgres { url } => postgres::redact(url),
        }
    }
}

/// A part of the fleet in (org, device) order, for [`Store::rollups_of_spans`]: the
/// devices from `first` (org, device), included, up to `end`, excluded (`None`: to
/// the last). The owned form of [`engine::DevSpan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpan {
    pub first: (String, String),
    pub end: Option<(String, String)>,
}

/// One boot session of one device, as seen through its reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BootSession {
    /// When the session booted (agent clock, seconds).
    pub boot_time_unix_s: i64,
    /// Earliest `start_unix_ms` of its stored reports.
    pub first_start_unix_ms: i64,
    /// Latest `end_unix_ms` of its stored reports.
    pub last_end_unix_ms: i64,
    /// Stored reports of this session.
    pub reports: u64,
    /// A SHUTDOWN event was reported: the end of the session is known, not inferred.
    pub shutdown_seen: bool,
    /// The session's latest report (the one ending at `last_end_unix_ms`) carries
    /// SHUTDOWN: what follows it is inferred off.
    #[serde(default)]
    pub last_report_shutdown: bool,
    /// The session's latest report carries AGENT_STOP without SHUTDOWN: the machine
    /// kept running after it, so what follows is unknown, never off.
    #[serde(default)]
    pub last_report_agent_stop: bool,
}

/// What happened to one batch. `highest_durable_seq` becomes durable at the next
/// [`Store::flush`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The device's highest stored seq after this batch.
    pub highest_durable_seq: u64,
    /// New reports stored.
    pub stored: u32,
    /// Reports already stored with the same bytes (resends).
    pub duplicates: u32,
    /// Reports whose seq was stored with different bytes (kept apart).
    pub conflicts: u32,
    /// Of `conflicts`, versions not seen before (stored now in `conflicts`).
    pub new_conflicts: u32,
    /// Seq of the first conflicting report, for the log line.
    pub first_conflict_seq: Option<u64>,
}

/// One validated batch of [`Store::apply_batches`], with its org and receive time.
#[derive(Debug, Clone, Copy)]
pub struct Pending<'a> {
    pub org: &'a str,
    pub batch: &'a ReportBatch,
    pub received_unix_ms: i64,
}

/// What [`Store::purge_raw_reports`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Devices that lost at least one raw report.
    pub devices: u64,
    /// Raw reports deleted.
    pub reports: u64,
}

/// A conflicting version of a report, kept apart from the stored one.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictEntry {
    pub seq: u64,
    /// Collector clock when this version arrived.
    pub received_unix_ms: i64,
    pub report: Report,
}

/// The store. Cheap to share behind an `Arc`; reads run concurrently with writes.
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine.name())
            .finish_non_exhaustive()
    }
}

/// The day (Unix ms at 00:00 UTC) holding `ms`. Saturates at the ends of i64, which
/// only range bounds reach (`rollups(.., i64::MIN, i64::MAX)`): a report's time is
/// validated to within centuries of now.
fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS).saturating_mul(DAY_MS)
}

/// The day holding `hour` and the hour's slot in it (0..24), for any i64: the slot
/// comes from the remainder, so it is always a valid index into a packed day.
fn day_slot(hour: i64) -> (i64, usize) {
    let h = hour.div_euclid(HOUR_MS);
    (
        h.div_euclid(24).saturating_mul(DAY_MS),
        h.rem_euclid(24) as usize,
    )
}

impl Store {
    /// Opens (creating if needed) the embedded store in directory `dir`, with a small
    /// page cache (tests and tools; the collector opens what its config names with
    /// `Config::open_store`).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_location(&Location::Embedded {
            dir: dir.to_owned(),
            cache_mib: TOOL_CACHE_MIB,
        })
    }

    /// Opens the store at `location`, checking its format.
    pub fn open_location(location: &Location) -> Result<Self, StoreError> {
        let engine: Arc<dyn Engine> = match location {
            Location::Embedded { dir, cache_mib } => {
                if dir.join("conf").is_file() && dir.join("db").is_file() {
                    return Err(StoreError::OldSled { path: dir.clone() });
                }
                Arc::new(sqlite::Sqlite::open(dir, *cache_mib)?)
            }
            Location::Postgres { url } => postgres::connect(url)?,
        };
        let store = Self { engine };
        store.check_format(&location.describe())?;
        Ok(store)
    }

    /// A store over `engine` (tests, benchmarks), its format checked.
    pub fn with_engine(engine: Arc<dyn Engine>) -> Result<Self, StoreError> {
        let store = Self { engine };
        store.check_format("(engine)")?;
        Ok(store)
    }

    /// Records the format in a new store; refuses a store of another format.
    fn check_format(&self, location: &str) -> Result<(), StoreError> {
        check_format(&mut |b| self.engine.write(b), location)
    }

    /// [`Store::open_location`] for the server: a PostgreSQL database unreachable at
    /// start does not stop it. The store then answers every call `Unavailable` (the
    /// ingest answers UNAVAILABLE, agents keep their spool) and connects by itself
    /// when the database comes up, checking its format before any write
    /// ([`postgres::connect_or_wait`]). The embedded store opens as with
    /// `open_location`: its directory is there or it is a configuration error.
    pub fn open_serving(location: &Location) -> Result<Self, StoreError> {
        match location {
            Location::Postgres { url } => {
                let described = location.describe();
                let engine = postgres::connect_or_wait(
                    url,
                    Box::new(move |write| check_format(write, &described)),
                )?;
                Ok(Self { engine })
            }
            Location::Embedded { .. } => Self::open_location(location),
        }
    }

    /// `embedded` or `postgres`.
    pub fn engine_name(&self) -> &'static str {
        self.engine.name()
    }

    /// Runs `body` in one write transaction (committed on `Ok`). For the store's own
    /// modules (meters, rooms, policies), which keep their records in kv trees.
    pub fn write<T>(
        &self,
        mut body: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run(|b| self.engine.write(b), &mut body)
    }

    /// Runs `body` on a consistent snapshot.
    pub fn read<T>(
        &self,
        mut body: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run(|b| self.engine.read(b), &mut body)
    }

    /// Applies a validated batch of `org`: new reports are stored, resends counted as
    /// duplicates, different content under a stored seq kept apart as a conflict; the
    /// device, boot-session and inventory registries and the hourly rollups are
    /// updated. All of it commits atomically or not at all. Not durable until
    /// [`Store::flush`] returns.
    ///
    /// The batch must have passed [`veille_proto::validate_batch`].
    pub fn apply_batch(
        &self,
        org: &str,
        batch: &ReportBatch,
        received_unix_ms: i64,
    ) -> Result<BatchOutcome, StoreError> {
        self.write(|tx| {
            let mut hours = apply::Hours::default();
            let outcome = apply::batch(tx, &mut hours, org, batch, received_unix_ms)?;
            hours.write(tx)?;
            Ok(outcome)
        })
    }

    /// [`Store::apply_batch`] for a group of batches, in one write transaction when
    /// every batch applies: the ingest's writer calls it with everything queued.
    /// Results come back in the order of `batches`, each as `apply_batch` alone
    /// would give it.
    ///
    /// Why one transaction: a commit writes every page it touched to SQLite's WAL (16
    /// KiB pages: device registry, raw hour, rollup day, index), so one-report batches
    /// committed one by one (agents over MQTT, the live fleet over gRPC) held ingest
    /// to about a thousand batches a second on a loaded 2-core machine (BENCHMARKS.md,
    /// section 8); a group writes each page once. Likewise a device-hour of
    /// raw reports is unpacked and packed once per group, not once per batch (a
    /// device sending one report a second over MQTT repacked its whole hour for each).
    ///
    /// Batches are applied ordered by (org, device_id), each device's batches in
    /// their given order, so that writers sharing PostgreSQL take their device locks
    /// in one global order. When the group's transaction fails (one batch's corrupt
    /// entry, a lost database), each batch is applied again alone, so that one bad
    /// batch does not refuse the others.
    pub fn apply_batches(&self, batches: &[Pending<'_>]) -> Vec<Result<BatchOutcome, StoreError>> {
        if let [one] = batches {
            return vec![self.apply_batch(one.org, one.batch, one.received_unix_ms)];
        }
        let mut order: Vec<usize> = (0..batches.len()).collect();
        // Stable: a device's batches keep their order (seqs, rollup addition order).
        order.sort_by_key(|&i| (batches[i].org, batches[i].batch.device_id.as_str()));
        let grouped = self.write(|tx| {
            let mut hours = apply::Hours::default();
            let mut outcomes = vec![BatchOutcome::default(); batches.len()];
            for &i in &order {
                let b = &batches[i];
                outcomes[i] = apply::batch(tx, &mut hours, b.org, b.batch, b.received_unix_ms)?;
            }
            hours.write(tx)?;
            Ok(outcomes)
        });
        match grouped {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(_) => batches
                .iter()
                .map(|b| self.apply_batch(b.org, b.batch, b.received_unix_ms))
                .collect(),
        }
    }

    /// Makes every write applied so far durable. Returns once the data is on disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.engine.flush()
    }

    /// Bytes the store takes on disk, for `/metrics`.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.engine.size_on_disk()
    }

    /// Device records, of one org or of all, sorted by (org, device_id).
    pub fn devices(&self, org: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError> {
        let p = org.map(prefix).unwrap_or_default();
        self.read(|tx| {
            tx.kv_scan(Tree::Devices, &p)?
                .iter()
                .map(|(k, v)| decode_json(Tree::Devices, k, v))
                .collect()
        })
    }

    /// One device's record.
    pub fn device(&self, org: &str, device_id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let key = device_key(org, device_id);
        self.read(|tx| {
            tx.kv_get(Tree::Devices, &key)?
                .map(|v| decode_json(Tree::Devices, &key, &v))
                .transpose()
        })
    }

    /// Stored reports of one device with seq in `seqs`, in seq order.
    pub fn reports(
        &self,
        org: &str,
        device_id: &str,
        seqs: RangeInclusive<u64>,
    ) -> Result<Vec<Report>, StoreError> {
        let dev = Dev {
            org,
            device: device_id,
        };
        self.read(|tx| {
            let mut out = Vec::new();
            for raw in tx.raw_by_seq(dev, *seqs.start(), *seqs.end())? {
                out.extend(
                    unpack(dev, &raw)?
                        .into_iter()
                        .filter(|r| seqs.contains(&r.seq)),
                );
            }
            out.sort_by_key(|r| r.seq);
            Ok(out)
        })
    }

    /// Stored reports of one device that start in `[from_ms, to_ms)`, in seq order
    /// (`export`): one read of the device's packed hours in that span.
    pub fn reports_between(
        &self,
        org: &str,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Report>, StoreError> {
        let dev = Dev {
            org,
            device: device_id,
        };
        self.read(|tx| {
            let mut out = Vec::new();
            for raw in tx.raw_range(dev, rollup::hour_of(from_ms), to_ms)? {
                out.extend(
                    unpack(dev, &raw)?
                        .into_iter()
                        .filter(|r| r.start_unix_ms >= from_ms && r.start_unix_ms < to_ms),
                );
            }
            out.sort_by_key(|r| r.seq);
            Ok(out)
        })
    }

    /// Every stored report of one device, in seq order (tests, `export`).
    pub fn all_reports(&self, org: &str, device_id: &str) -> Result<Vec<Report>, StoreError> {
        self.reports(org, device_id, 0..=u64::MAX)
    }

    /// Number of stored reports, all devices.
    pub fn report_count(&self) -> usize {
        self.read(|tx| tx.raw_report_count())
            .map(|n| n as usize)
            .unwrap_or_default()
    }

    /// Conflicting versions kept for one device, by seq then arrival.
    pub fn conflicts(&self, org: &str, device_id: &str) -> Result<Vec<ConflictEntry>, StoreError> {
        let mut p = device_key(org, device_id);
        p.push(0);
        self.read(|tx| {
            let mut out = Vec::new();
            for (k, v) in tx.kv_scan(Tree::Conflicts, &p)? {
                let rest = &k[p.len()..];
                let (Some(s), Some(r)) = (rest.get(0..8), rest.get(8..16)) else {
                    return Err(corrupt(Tree::Conflicts, &k, "key too short"));
                };
                out.push(ConflictEntry {
                    seq: be_u64(s),
                    received_unix_ms: be_u64(r) as i64,
                    report: decode_proto(Tree::Conflicts, &k, &v)?,
                });
            }
            Ok(out)
        })
    }

    /// Boot sessions of one device, by boot id.
    pub fn boot_sessions(
        &self,
        org: &str,
        device_id: &str,
    ) -> Result<Vec<(String, BootSession)>, StoreError> {
        let mut p = device_key(org, device_id);
        p.push(0);
        self.read(|tx| {
            tx.kv_scan(Tree::BootSessions, &p)?
                .iter()
                .map(|(k, v)| {
                    let boot_id = String::from_utf8_lossy(&k[p.len()..]).into_owned();
                    Ok((boot_id, decode_json(Tree::BootSessions, k, v)?))
                })
                .collect()
        })
    }

    /// The boot sessions of every device of `org` (every org: `None`), in (org,
    /// device) order, from one scan: a fleet-wide report reads them at once rather
    /// than with one read per device.
    pub fn boot_sessions_of_fleet(
        &self,
        org: Option<&str>,
        mut each: impl FnMut(&str, &str, BootSession),
    ) -> Result<(), StoreError> {
        let p = org.map(prefix).unwrap_or_default();
        for (k, v) in self.read(|tx| tx.kv_scan(Tree::BootSessions, &p))? {
            let (o, rest) = split_key(Tree::BootSessions, &k)?;
            let (d, _boot) = split_key(Tree::BootSessions, rest.as_bytes())?;
            each(o, d, decode_json(Tree::BootSessions, &k, &v)?);
        }
        Ok(())
    }

    /// The latest inventory of every device of `org` (every org: `None`), in (org,
    /// device) order, from one scan (see [`Store::boot_sessions_of_fleet`]).
    pub fn inventories_of_fleet(
        &self,
        org: Option<&str>,
        mut each: impl FnMut(&str, &str, Inventory),
    ) -> Result<(), StoreError> {
        let p = org.map(prefix).unwrap_or_default();
        for (k, v) in self.read(|tx| tx.kv_scan(Tree::Inventory, &p))? {
            let (o, d) = split_key(Tree::Inventory, &k)?;
            each(o, d, decode_proto(Tree::Inventory, &k, &v)?);
        }
        Ok(())
    }

    /// The latest inventory a device sent.
    pub fn inventory(&self, org: &str, device_id: &str) -> Result<Option<Inventory>, StoreError> {
        let key = device_key(org, device_id);
        self.read(|tx| {
            tx.kv_get(Tree::Inventory, &key)?
                .map(|v| decode_proto(Tree::Inventory, &key, &v))
                .transpose()
        })
    }

    /// Previous inventories of one device, oldest first, each with the collector time
    /// (Unix ms) at which a different inventory replaced it.
    pub fn inventory_history(
        &self,
        org: &str,
        device_id: &str,
    ) -> Result<Vec<(i64, Inventory)>, StoreError> {
        let mut p = device_key(org, device_id);
        p.push(0);
        self.read(|tx| {
            tx.kv_scan(Tree::InventoryHistory, &p)?
                .iter()
                .map(|(k, v)| {
                    let at = k
                        .last_chunk::<8>()
                        .map(|b| u64::from_be_bytes(*b) as i64)
                        .unwrap_or_default();
                    Ok((at, decode_proto(Tree::InventoryHistory, k, v)?))
                })
                .collect()
        })
    }

    /// The asset facts imported for one device.
    pub fn asset(&self, org: &str, device_id: &str) -> Result<Option<AssetRecord>, StoreError> {
        let key = device_key(org, device_id);
        self.read(|tx| {
            tx.kv_get(Tree::Asset, &key)?
                .map(|v| decode_json(Tree::Asset, &key, &v))
                .transpose()
        })
    }

    /// Writes asset records, all in one transaction (an import is never half-applied),
    /// then flushes. A record whose facts equal the stored ones is left as it is, so a
    /// re-import changes nothing. Returns (written, unchanged).
    pub fn put_assets(
        &self,
        records: &[(String, String, AssetRecord)],
    ) -> Result<(usize, usize), StoreError> {
        let w = self.put_glpi(records, None)?;
        Ok((w.written, w.unchanged))
    }

    /// Hourly rollups of one device for hours starting in `[from_hour, to_hour)`.
    pub fn rollups(
        &self,
        org: &str,
        device_id: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<(i64, HourRollup)>, StoreError> {
        let dev = Dev {
            org,
            device: device_id,
        };
        let (from_day, to_day) = day_span(from_hour, to_hour);
        self.read(|tx| {
            let mut out = Vec::new();
            for (day, data) in tx.rollup_days(dev, from_day, to_day)? {
                push_hours(&mut out, dev, day, &data, from_hour, to_hour)?;
            }
            Ok(out)
        })
    }

    /// Every device's hourly rollups in `[from_hour, to_hour)`, of `org` (all with
    /// `None`), in one scan: `each` gets one device at a time, in (org, device) order,
    /// with its hours in order. What a fleet export reads.
    pub fn rollups_of_fleet(
        &self,
        org: Option<&str>,
        from_hour: i64,
        to_hour: i64,
        mut each: impl FnMut(&str, &str, Vec<(i64, HourRollup)>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.read(|tx| hours_of_span(tx, DevSpan::fleet(org), from_hour, to_hour, &mut each))
    }

    /// [`Store::rollups_of_fleet`] over the devices of `spans` only, one scan each, all
    /// in one read (one snapshot, one connection): `each` also gets the index of the
    /// span the device is in. Readers of disjoint spans on several threads read one
    /// fleet on several cores (`reports::device_stream`).
    pub fn rollups_of_spans(
        &self,
        org: Option<&str>,
        spans: &[DeviceSpan],
        from_hour: i64,
        to_hour: i64,
        mut each: impl FnMut(usize, &str, &str, Vec<(i64, HourRollup)>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.read(|tx| {
            for (i, s) in spans.iter().enumerate() {
                let span = DevSpan {
                    org,
                    first: Dev {
                        org: &s.first.0,
                        device: &s.first.1,
                    },
                    end: s.end.as_ref().map(|(org, device)| Dev { org, device }),
                };
                hours_of_span(tx, span, from_hour, to_hour, &mut |o, d, h| {
                    each(i, o, d, h)
                })?;
            }
            Ok(())
        })
    }

    /// Writes rollups as given, replacing any stored for those hours. For bulk loads
    /// (a migration from another tool) and benchmarks; ingest maintains rollups itself.
    pub fn put_rollups(
        &self,
        org: &str,
        device_id: &str,
        rollups: &[(i64, HourRollup)],
    ) -> Result<(), StoreError> {
        let dev = Dev {
            org,
            device: device_id,
        };
        let mut by_day: BTreeMap<i64, Vec<(usize, HourRollup)>> = BTreeMap::new();
        for (hour, r) in rollups {
            let (day, slot) = day_slot(*hour);
            by_day.entry(day).or_default().push((slot, *r));
        }
        self.write(|tx| {
            for (day, hours) in &by_day {
                let mut slots = read_day(tx, dev, *day)?;
                for (slot, r) in hours {
                    slots[*slot] = Some(*r);
                }
                tx.rollup_day_put(dev, *day, &codec::encode_rollup_day(&slots))?;
            }
            Ok(())
        })
    }

    /// Deletes each device's raw reports that ended before `cutoff_unix_ms` (rounded
    /// down to an hour), in seq order, stopping at its first report that ends later, so
    /// "every seq up to the watermark is gone" holds and a resend of one is recognised.
    /// Rollups stay and the hours before the cutoff become closed. One transaction per
    /// device: ingest waits milliseconds, not the whole purge.
    ///
    /// Only hours before the cutoff are read: a report with a lower seq but a later
    /// start (an agent clock set back) stays stored above the watermark, which keeps
    /// both rules true (it is a duplicate if resent; its hours are still open).
    pub fn purge_raw_reports(&self, cutoff_unix_ms: i64) -> Result<PurgeOutcome, StoreError> {
        let cutoff = rollup::hour_of(cutoff_unix_ms);
        let mut outcome = PurgeOutcome::default();
        for record in self.devices(None)? {
            let n = self.write(|tx| purge_device(tx, &record.org, &record.device_id, cutoff))?;
            if n > 0 {
                outcome.devices += 1;
                outcome.reports += n;
            }
        }
        if outcome.reports > 0 {
            self.flush()?;
        }
        // Partitioned engines drop the periods this (or an earlier) purge emptied.
        self.engine.release_raw_before(cutoff)?;
        Ok(outcome)
    }

    /// Recomputes every rollup from the raw reports (after a crash of an older version,
    /// or to check them): the result is identical to what ingest maintained. Returns
    /// (reports read, rollups written). `progress` is called after each device with the
    /// reports read so far.
    pub fn rebuild_rollups(&self, mut progress: impl FnMut(u64)) -> Result<(u64, u64), StoreError> {
        let mut reports = 0u64;
        let mut written = 0u64;
        for record in self.devices(None)? {
            let (r, w) = self.write(|tx| rebuild_device(tx, &record))?;
            reports += r;
            written += w;
            progress(reports);
        }
        self.flush()?;
        Ok((reports, written))
    }
}

/// Runs `body` through `transaction` (an engine's write or read) and hands back what
/// it returned: the engine's bodies return `()`, the store's return values.
/// Records the format in a new store through `write`; refuses a store of another
/// format.
fn check_format(write: &mut engine::Write<'_>, location: &str) -> Result<(), StoreError> {
    let key = b"format";
    let expected = FORMAT_VERSION.to_string();
    run(write, &mut |tx| match tx.kv_get(Tree::Meta, key)? {
        None => tx.kv_put(Tree::Meta, key, expected.as_bytes()),
        Some(v) if v == expected.as_bytes() => Ok(()),
        Some(v) => Err(StoreError::Format {
            location: location.to_owned(),
            found: String::from_utf8_lossy(&v).into_owned(),
        }),
    })
}

fn run<T>(
    transaction: impl FnOnce(&mut engine::Body<'_>) -> Result<(), StoreError>,
    body: &mut dyn FnMut(&mut dyn Tx) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut out = None;
    transaction(&mut |tx| {
        out = Some(body(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::Engine("transaction returned nothing".into()))
}

/// Days covering hours `[from_hour, to_hour)`.
fn day_span(from_hour: i64, to_hour: i64) -> (i64, i64) {
    let from_day = day_of(from_hour);
    let to_day = if to_hour <= from_hour {
        from_day
    } else {
        day_of(to_hour.saturating_sub(1)).saturating_add(DAY_MS)
    };
    (from_day, to_day)
}

fn push_hours(
    out: &mut Vec<(i64, HourRollup)>,
    dev: Dev<'_>,
    day: i64,
    data: &[u8],
    from_hour: i64,
    to_hour: i64,
) -> Result<(), StoreError> {
    codec::for_each_rollup(data, |slot, r| {
        let hour = day + slot as i64 * HOUR_MS;
        if hour >= from_hour && hour < to_hour {
            out.push((hour, r));
        }
    })
    .map_err(|e| StoreError::Corrupt {
        tree: "rollup_days",
        key: printable(&day_key(dev, day)),
        reason: e.to_string(),
    })
}

/// What gets each device's hours from a fleet scan: (org, device, hours in order).
type EachDevice<'a> = dyn FnMut(&str, &str, Vec<(i64, HourRollup)>) -> Result<(), StoreError> + 'a;

/// The rollups of the devices in `span` over `[from_hour, to_hour)`, one device at a
/// time in (org, device) order, its hours in order.
fn hours_of_span(
    tx: &mut dyn Tx,
    span: DevSpan<'_>,
    from_hour: i64,
    to_hour: i64,
    each: &mut EachDevice<'_>,
) -> Result<(), StoreError> {
    let (from_day, to_day) = day_span(from_hour, to_hour);
    let mut current: Option<(String, String)> = None;
    let mut hours = Vec::new();
    tx.rollup_days_all(span, from_day, to_day, &mut |o, d, day, data| {
        if current.as_ref().is_none_or(|(co, cd)| co != o || cd != d) {
            if let Some((co, cd)) = current.take() {
                // The next device likely has as many hours: no regrowth.
                let next = Vec::with_capacity(hours.len());
                each(&co, &cd, std::mem::replace(&mut hours, next))?;
            }
            current = Some((o.to_owned(), d.to_owned()));
        }
        push_hours(
            &mut hours,
            Dev { org: o, device: d },
            day,
            data,
            from_hour,
            to_hour,
        )
    })?;
    if let Some((co, cd)) = current.take() {
        each(&co, &cd, std::mem::take(&mut hours))?;
    }
    Ok(())
}

fn day_key(dev: Dev<'_>, day: i64) -> Vec<u8> {
    let mut k = device_key(dev.org, dev.device);
    k.push(0);
    k.extend_from_slice(day.to_string().as_bytes());
    k
}

/// The stored rollups of one device-day, as slots.
fn read_day(
    tx: &mut dyn Tx,
    dev: Dev<'_>,
    day: i64,
) -> Result<[Option<HourRollup>; codec::HOURS_PER_DAY], StoreError> {
    match tx.rollup_day_get(dev, day)? {
        None => Ok(Default::default()),
        Some(data) => codec::decode_rollup_day(&data).map_err(|e| StoreError::Corrupt {
            tree: "rollup_days",
            key: printable(&day_key(dev, day)),
            reason: e.to_string(),
        }),
    }
}

/// The reports of one raw hour.
fn unpack(dev: Dev<'_>, raw: &RawHour) -> Result<Vec<Report>, StoreError> {
    codec::decode_reports(&raw.data).map_err(|e| corrupt_hour(dev, raw, e))
}

fn corrupt_hour(dev: Dev<'_>, raw: &RawHour, e: codec::CodecError) -> StoreError {
    StoreError::Corrupt {
        tree: "raw_hours",
        key: printable(&day_key(dev, raw.hour)),
        reason: e.to_string(),
    }
}

/// Packs `reports` (one device, one hour) into a raw hour.
fn pack(hour: i64, reports: &[Report]) -> RawHour {
    RawHour {
        hour,
        seq_min: reports.iter().map(|r| r.seq).min().unwrap_or_default(),
        seq_max: reports.iter().map(|r| r.seq).max().unwrap_or_default(),
        reports: reports.len() as u64,
        data: codec::encode_reports(reports),
    }
}

fn purge_device(
    tx: &mut dyn Tx,
    org: &str,
    device_id: &str,
    cutoff: i64,
) -> Result<u64, StoreError> {
    let dev = Dev {
        org,
        device: device_id,
    };
    tx.lock_device(dev)?;
    let dev_key = device_key(org, device_id);
    let Some(v) = tx.kv_get(Tree::Devices, &dev_key)? else {
        return Ok(0);
    };
    let mut device = decode_json::<DeviceRecord>(Tree::Devices, &dev_key, &v)?;
    let rows = tx.raw_range(dev, i64::MIN, cutoff)?;
    let mut all: Vec<(i64, Report)> = Vec::new();
    for raw in &rows {
        all.extend(unpack(dev, raw)?.into_iter().map(|r| (raw.hour, r)));
    }
    all.sort_by_key(|(_, r)| r.seq);
    let purged_through = device.raw_purged_through_seq;
    let mut doomed_through = None;
    for (_, r) in &all {
        if r.end_unix_ms >= cutoff {
            break;
        }
        doomed_through = Some(r.seq);
    }
    let Some(last) = doomed_through else {
        return Ok(0);
    };
    let mut keep: BTreeMap<i64, Vec<Report>> = BTreeMap::new();
    let mut n = 0u64;
    for (hour, r) in all {
        if r.seq <= last {
            n += 1;
        } else {
            keep.entry(hour).or_default().push(r);
        }
    }
    for raw in &rows {
        match keep.get(&raw.hour) {
            Some(left) if left.len() as u64 != raw.reports => {
                tx.raw_put(dev, &pack(raw.hour, left))?
            }
            Some(_) => {}
            None => tx.raw_delete(dev, raw.hour)?,
        }
    }
    device.raw_purged_through_seq = Some(purged_through.map_or(last, |p| p.max(last)));
    device.rollups_closed_before_unix_ms = device.rollups_closed_before_unix_ms.max(cutoff);
    tx.kv_put(Tree::Devices, &dev_key, &encode_json(&device))?;
    Ok(n)
}

/// Rebuilds one device's rollups from its raw reports, keeping the hours a purge
/// closed. Returns (reports read, hourly rollups written).
fn rebuild_device(tx: &mut dyn Tx, record: &DeviceRecord) -> Result<(u64, u64), StoreError> {
    let dev = Dev {
        org: &record.org,
        device: &record.device_id,
    };
    tx.lock_device(dev)?;
    let closed_before = if record.rollups_closed_before_unix_ms != 0 {
        record.rollups_closed_before_unix_ms
    } else {
        i64::MIN
    };
    let mut reports = Vec::new();
    for raw in tx.raw_range(dev, i64::MIN, i64::MAX)? {
        reports.extend(unpack(dev, &raw)?);
    }
    // Seq order: the order ingest added the parts in, so both give the same bits.
    reports.sort_by_key(|r| r.seq);
    let mut hours: BTreeMap<i64, HourRollup> = BTreeMap::new();
    rollup::accumulate(&reports, &mut hours);
    let mut days: BTreeMap<i64, [Option<HourRollup>; codec::HOURS_PER_DAY]> = BTreeMap::new();
    for (day, data) in tx.rollup_days(dev, i64::MIN, i64::MAX)? {
        let slots = codec::decode_rollup_day(&data).map_err(|e| StoreError::Corrupt {
            tree: "rollup_days",
            key: printable(&day_key(dev, day)),
            reason: e.to_string(),
        })?;
        // Closed hours stay as stored; open ones are recomputed.
        let mut kept: [Option<HourRollup>; codec::HOURS_PER_DAY] = Default::default();
        for (i, slot) in slots.iter().enumerate() {
            if day + (i as i64) * HOUR_MS < closed_before {
                kept[i] = *slot;
            }
        }
        days.insert(day, kept);
    }
    let mut written = 0u64;
    for (hour, r) in hours {
        if hour < closed_before {
            continue;
        }
        let (day, slot) = day_slot(hour);
        days.entry(day).or_default()[slot] = Some(r);
        written += 1;
    }
    for (day, slots) in &days {
        if slots.iter().all(Option::is_none) {
            tx.rollup_day_delete(dev, *day)?;
        } else {
            tx.rollup_day_put(dev, *day, &codec::encode_rollup_day(slots))?;
        }
    }
    Ok((reports.len() as u64, written))
}

/// The batch rules, on one transaction.
mod apply {
    use super::*;

    /// The raw device-hours one transaction changed: each is read once, takes the new
    /// reports of every batch of the transaction, and is written once by
    /// [`Hours::write`] before the commit, the new reports appended to it
    /// ([`codec::append_reports`]) rather than the hour unpacked and packed again.
    #[derive(Default)]
    pub(super) struct Hours {
        /// (org, device_id, hour) → that device-hour's row before the transaction,
        /// and the transaction's new reports of it.
        changed: BTreeMap<(String, String, i64), Changed>,
        /// (org, device_id) → the device's highest seq before the transaction, for the
        /// devices that had reports: it finds the row the device was appending to.
        before: BTreeMap<(String, String), u64>,
    }

    struct Changed {
        stored: Option<RawHour>,
        new: Vec<Report>,
    }

    impl Hours {
        /// Notes the device's highest stored seq the first time the transaction
        /// touches it.
        fn saw_device(&mut self, dev: Dev<'_>, device: &DeviceRecord) {
            if device.reports > 0 {
                self.before
                    .entry((dev.org.to_owned(), dev.device.to_owned()))
                    .or_insert(device.highest_seq);
            }
        }

        /// Adds `reports` (new, distinct seqs) to their device-hour.
        fn add(
            &mut self,
            tx: &mut dyn Tx,
            dev: Dev<'_>,
            hour: i64,
            reports: Vec<Report>,
        ) -> Result<(), StoreError> {
            let key = (dev.org.to_owned(), dev.device.to_owned(), hour);
            let changed = match self.changed.entry(key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(Changed {
                    stored: tx.raw_get(dev, hour)?,
                    new: Vec::new(),
                }),
            };
            changed.new.extend(reports);
            Ok(())
        }

        /// The device's new reports of this transaction, for lookups that must see
        /// them before they are written.
        fn new_of_device<'a>(&'a self, dev: Dev<'a>) -> impl Iterator<Item = &'a Report> + 'a {
            let from = (dev.org.to_owned(), dev.device.to_owned(), i64::MIN);
            self.changed
                .range(from..)
                .take_while(move |((o, d, _), _)| o == dev.org && d == dev.device)
                .flat_map(|(_, c)| c.new.iter())
        }

        /// Writes every changed hour: the device's latest one with the new reports
        /// appended, earlier ones (late or backfilled reports) compact. When a device
        /// opened a new hour, the row it was appending to before is compacted too: a
        /// closed hour keeps one chunk, so the disk a device-hour takes does not grow
        /// with the chunks (BENCHMARKS.md 6b, 8a).
        pub(super) fn write(self, tx: &mut dyn Tx) -> Result<(), StoreError> {
            let mut iter = self.changed.iter().peekable();
            while let Some(((org, device, hour), changed)) = iter.next() {
                let dev = Dev { org, device };
                let latest = !iter
                    .peek()
                    .is_some_and(|((o, d, _), _)| o == org && d == device);
                let raw = match &changed.stored {
                    None => pack(*hour, &changed.new),
                    Some(stored) if latest => append(dev, stored, &changed.new)?,
                    Some(stored) => {
                        let mut all = unpack(dev, stored)?;
                        all.extend_from_slice(&changed.new);
                        pack(*hour, &all)
                    }
                };
                tx.raw_put(dev, &raw)?;
                if latest && changed.stored.is_none() {
                    let key = (org.clone(), device.clone());
                    if let Some(&seq) = self.before.get(&key) {
                        for raw in tx.raw_by_seq(dev, seq, seq)? {
                            let key = (org.clone(), device.clone(), raw.hour);
                            if !self.changed.contains_key(&key) {
                                compact(tx, dev, raw)?;
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// `stored` with `new` appended.
    fn append(dev: Dev<'_>, stored: &RawHour, new: &[Report]) -> Result<RawHour, StoreError> {
        let data =
            codec::append_reports(&stored.data, new).map_err(|e| corrupt_hour(dev, stored, e))?;
        let seqs = new.iter().map(|r| r.seq);
        Ok(RawHour {
            hour: stored.hour,
            seq_min: seqs
                .clone()
                .chain([stored.seq_min])
                .min()
                .unwrap_or_default(),
            seq_max: seqs.chain([stored.seq_max]).max().unwrap_or_default(),
            reports: stored.reports + new.len() as u64,
            data,
        })
    }

    /// Rewrites a row of several chunks as one.
    fn compact(tx: &mut dyn Tx, dev: Dev<'_>, raw: RawHour) -> Result<(), StoreError> {
        if let Some(data) =
            codec::compact_reports(&raw.data).map_err(|e| corrupt_hour(dev, &raw, e))?
        {
            tx.raw_put(dev, &RawHour { data, ..raw })?;
        }
        Ok(())
    }

    pub(super) fn batch(
        tx: &mut dyn Tx,
        hours: &mut Hours,
        org: &str,
        batch: &ReportBatch,
        received_unix_ms: i64,
    ) -> Result<BatchOutcome, StoreError> {
        let dev = Dev {
            org,
            device: &batch.device_id,
        };
        tx.lock_device(dev)?;
        let dev_key = device_key(org, &batch.device_id);
        let mut device = match tx.kv_get(Tree::Devices, &dev_key)? {
            Some(v) => decode_json::<DeviceRecord>(Tree::Devices, &dev_key, &v)?,
            None => DeviceRecord {
                org: org.to_owned(),
                device_id: batch.device_id.clone(),
                first_seen_unix_ms: received_unix_ms,
                ..Default::default()
            },
        };
        hours.saw_device(dev, &device);
        device.last_seen_unix_ms = received_unix_ms;
        if !batch.agent_version.is_empty() {
            device.agent_version.clone_from(&batch.agent_version);
        }

        let mut outcome = BatchOutcome::default();
        let mut existing = stored_versions(tx, hours, dev, &device, batch)?;
        let mut new_by_hour: BTreeMap<i64, Vec<Report>> = BTreeMap::new();
        let mut sessions: HashMap<String, BootSession> = HashMap::new();
        // Parts are kept apart and added one by one, in seq order, onto the stored
        // value: floating-point addition is not associative, and this is the order
        // `rebuild_rollups` adds them in, so both give the same bits.
        let mut new_rollups: BTreeMap<i64, Vec<HourRollup>> = BTreeMap::new();
        for report in &batch.reports {
            if device
                .raw_purged_through_seq
                .is_some_and(|purged| report.seq <= purged)
            {
                // Stored once, purged since: its hours are already in the rollups.
                outcome.duplicates += 1;
                continue;
            }
            match existing.remove(&report.seq) {
                Some(stored) if stored == *report => {
                    outcome.duplicates += 1;
                    existing.insert(report.seq, stored);
                }
                Some(stored) => {
                    existing.insert(report.seq, stored);
                    outcome.conflicts += 1;
                    outcome.first_conflict_seq.get_or_insert(report.seq);
                    if keep_conflict(tx, org, &batch.device_id, report, received_unix_ms)? {
                        outcome.new_conflicts += 1;
                    }
                }
                None => {
                    outcome.stored += 1;
                    existing.insert(report.seq, report.clone());
                    new_by_hour
                        .entry(rollup::hour_of(report.start_unix_ms))
                        .or_default()
                        .push(report.clone());
                    for (hour, part) in rollup::split_by_hour(report) {
                        new_rollups.entry(hour).or_default().push(part);
                    }
                    device.reports += 1;
                    device.last_report_end_unix_ms =
                        device.last_report_end_unix_ms.max(report.end_unix_ms);
                    if report.seq >= device.highest_seq {
                        device.highest_seq = report.seq;
                        device.last_boot_id.clone_from(&report.boot_id);
                    }
                    track_session(
                        tx,
                        org,
                        &batch.device_id,
                        &mut device,
                        &mut sessions,
                        report,
                    )?;
                }
            }
        }
        device.conflicts += u64::from(outcome.new_conflicts);
        outcome.highest_durable_seq = device.highest_seq;

        for (hour, reports) in new_by_hour {
            hours.add(tx, dev, hour, reports)?;
        }
        let mut by_day: BTreeMap<i64, Vec<(usize, Vec<HourRollup>)>> = BTreeMap::new();
        for (hour, parts) in new_rollups {
            let (day, slot) = day_slot(hour);
            by_day.entry(day).or_default().push((slot, parts));
        }
        for (day, hours) in by_day {
            let mut slots = read_day(tx, dev, day)?;
            for (slot, parts) in hours {
                let slot = &mut slots[slot];
                let mut total = slot.unwrap_or_default();
                for part in &parts {
                    total.add(part);
                }
                *slot = Some(total);
            }
            tx.rollup_day_put(dev, day, &codec::encode_rollup_day(&slots))?;
        }
        for (boot_id, session) in &sessions {
            tx.kv_put(
                Tree::BootSessions,
                &boot_key(org, &batch.device_id, boot_id),
                &encode_json(session),
            )?;
        }
        if let Some(inv) = &batch.inventory {
            if !inv.hostname.is_empty() {
                device.hostname.clone_from(&inv.hostname);
            }
            if !inv.agent_version.is_empty() {
                device.agent_version.clone_from(&inv.agent_version);
            }
            let bytes = inv.encode_to_vec();
            if let Some(previous) = tx.kv_get(Tree::Inventory, &dev_key)?
                && previous != bytes
            {
                // Two changes within one millisecond must not overwrite each other.
                let mut at = received_unix_ms.max(0) as u64;
                while tx
                    .kv_get(
                        Tree::InventoryHistory,
                        &history_key(org, &batch.device_id, at),
                    )?
                    .is_some()
                {
                    at += 1;
                }
                tx.kv_put(
                    Tree::InventoryHistory,
                    &history_key(org, &batch.device_id, at),
                    &previous,
                )?;
            }
            tx.kv_put(Tree::Inventory, &dev_key, &bytes)?;
        }
        tx.kv_put(Tree::Devices, &dev_key, &encode_json(&device))?;
        Ok(outcome)
    }

    /// The stored versions of the batch's seqs. A seq above the device's highest
    /// stored one is new without a look (the usual case: an agent's seqs only grow),
    /// so only resends and out-of-order batches read stored hours.
    fn stored_versions(
        tx: &mut dyn Tx,
        hours: &Hours,
        dev: Dev<'_>,
        device: &DeviceRecord,
        batch: &ReportBatch,
    ) -> Result<HashMap<u64, Report>, StoreError> {
        let lo = batch.reports.iter().map(|r| r.seq).min();
        let hi = batch
            .reports
            .iter()
            .map(|r| r.seq)
            .filter(|s| *s <= device.highest_seq)
            .max();
        let mut found = HashMap::new();
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(found);
        };
        if device.reports == 0 || lo > hi {
            return Ok(found);
        }
        let wanted: std::collections::HashSet<u64> = batch.reports.iter().map(|r| r.seq).collect();
        // The engine holds every row as it was before this transaction (rows are
        // written at its end, `Hours::write`); this transaction's reports are in `hours`.
        for raw in tx.raw_by_seq(dev, lo, hi)? {
            for r in unpack(dev, &raw)? {
                if wanted.contains(&r.seq) {
                    found.insert(r.seq, r);
                }
            }
        }
        for r in hours.new_of_device(dev) {
            if wanted.contains(&r.seq) {
                found.insert(r.seq, r.clone());
            }
        }
        Ok(found)
    }

    /// Stores a conflicting version unless this exact version is already kept.
    /// Returns whether it was new.
    fn keep_conflict(
        tx: &mut dyn Tx,
        org: &str,
        device_id: &str,
        report: &Report,
        received_unix_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = report_key(org, device_id, report.seq);
        let bytes = report.encode_to_vec();
        let kept = tx.kv_scan(Tree::Conflicts, &key)?;
        if kept.iter().any(|(_, v)| *v == bytes) {
            return Ok(false);
        }
        let mut ckey = key;
        ckey.extend_from_slice(&(received_unix_ms.max(0) as u64).to_be_bytes());
        ckey.extend_from_slice(&(kept.len() as u32).to_be_bytes());
        tx.kv_put(Tree::Conflicts, &ckey, &bytes)?;
        Ok(true)
    }

    fn track_session(
        tx: &mut dyn Tx,
        org: &str,
        device_id: &str,
        device: &mut DeviceRecord,
        sessions: &mut HashMap<String, BootSession>,
        report: &Report,
    ) -> Result<(), StoreError> {
        let session = match sessions.entry(report.boot_id.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let bkey = boot_key(org, device_id, &report.boot_id);
                let s = match tx.kv_get(Tree::BootSessions, &bkey)? {
                    Some(v) => decode_json::<BootSession>(Tree::BootSessions, &bkey, &v)?,
                    None => {
                        device.boot_sessions += 1;
                        BootSession {
                            boot_time_unix_s: report.boot_time_unix_s,
                            first_start_unix_ms: report.start_unix_ms,
                            last_end_unix_ms: report.end_unix_ms,
                            ..Default::default()
                        }
                    }
                };
                e.insert(s)
            }
        };
        session.reports += 1;
        session.first_start_unix_ms = session.first_start_unix_ms.min(report.start_unix_ms);
        let has = |kind: EventKind| report.events.iter().any(|e| e.kind == kind as i32);
        if report.end_unix_ms >= session.last_end_unix_ms {
            session.last_end_unix_ms = report.end_unix_ms;
            session.last_report_shutdown = has(EventKind::Shutdown);
            session.last_report_agent_stop = has(EventKind::AgentStop) && !has(EventKind::Shutdown);
        }
        session.shutdown_seen |= has(EventKind::Shutdown);
        Ok(())
    }
}

/// A key's part before its first NUL and what follows that NUL, as text.
fn split_key(tree: Tree, key: &[u8]) -> Result<(&str, &str), StoreError> {
    let at = key
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| corrupt(tree, key, "no NUL between the key's parts"))?;
    let text = |b| std::str::from_utf8(b).map_err(|_| corrupt(tree, key, "key not UTF-8"));
    Ok((text(&key[..at])?, text(&key[at + 1..])?))
}

/// `org \0`: prefix of every key of one org.
pub fn prefix(org: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(org.len() + 1);
    k.extend_from_slice(org.as_bytes());
    k.push(0);
    k
}

/// `org \0 device_id`.
pub fn device_key(org: &str, device_id: &str) -> Vec<u8> {
    let mut k = prefix(org);
    k.extend_from_slice(device_id.as_bytes());
    k
}

/// `org \0 device_id \0 received_ms` (big-endian): one replaced inventory.
pub fn history_key(org: &str, device_id: &str, received_ms: u64) -> Vec<u8> {
    let mut k = device_key(org, device_id);
    k.push(0);
    k.extend_from_slice(&received_ms.to_be_bytes());
    k
}

/// `org \0 device_id \0 seq` with seq big-endian, so keys sort in seq order.
pub fn report_key(org: &str, device_id: &str, seq: u64) -> Vec<u8> {
    let mut k = device_key(org, device_id);
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `org \0 device_id \0 boot_id`.
pub fn boot_key(org: &str, device_id: &str, boot_id: &str) -> Vec<u8> {
    let mut k = device_key(org, device_id);
    k.push(0);
    k.extend_from_slice(boot_id.as_bytes());
    k
}

/// Splits a `reports` key into (org, device_id, seq).
pub fn parse_report_key(key: &[u8]) -> Option<(&str, &str, u64)> {
    let (seq_bytes, head) = key.split_last_chunk::<8>().map(|(h, s)| (s, h))?;
    let head = head.strip_suffix(&[0])?;
    let sep = head.iter().position(|&b| b == 0)?;
    let org = std::str::from_utf8(&head[..sep]).ok()?;
    let device = std::str::from_utf8(&head[sep + 1..]).ok()?;
    Some((org, device, u64::from_be_bytes(*seq_bytes)))
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn printable(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

fn corrupt(tree: Tree, key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        tree: tree.name(),
        key: printable(key),
        reason: reason.into(),
    }
}

/// JSON of a registry record.
pub(crate) fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings, numbers and booleans always serialise.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A registry record from its JSON, or a corruption error naming where it was.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    tree: Tree,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(tree, key, &e.to_string()))
}

pub(crate) fn decode_proto<T: Message + Default>(
    tree: Tree,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    T::decode(bytes).map_err(|e| corrupt(tree, key, &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::{Event, Inventory};

    const NOW: i64 = 1_790_000_000_000;

    pub(crate) fn report(seq: u64, boot_id: &str) -> Report {
        let start = NOW - 600_000 + seq as i64 * 1_000;
        Report {
            boot_id: boot_id.into(),
            seq,
            start_unix_ms: start,
            end_unix_ms: start + 1_000,
            boot_time_unix_s: (NOW - 3_600_000) / 1000,
            uptime_s: 3600,
            active_ms: 400,
            idle_ms: 600,
            cpu_util: 0.1,
            ..Default::default()
        }
    }

    fn batch(device: &str, reports: Vec<Report>) -> ReportBatch {
        ReportBatch {
            device_id: device.into(),
            reports,
            inventory: None,
            agent_version: "0.1.0".into(),
        }
    }

    /// Hourly-ish reports of one boot session over two days, seq 1..=n.
    fn day_reports(n: u64) -> Vec<Report> {
        let t0 = rollup::hour_of(NOW) - 48 * rollup::HOUR_MS;
        (1..=n)
            .map(|seq| {
                // 50-minute reports: some hours hold parts of two reports.
                let start = t0 + (seq as i64 - 1) * 3_000_000;
                Report {
                    boot_id: "b1".into(),
                    seq,
                    start_unix_ms: start,
                    end_unix_ms: start + 3_000_000,
                    boot_time_unix_s: t0 / 1000,
                    uptime_s: 3600,
                    active_ms: 1_000_000 + seq,
                    idle_ms: 2_000_000 - seq,
                    cpu_util: 0.1,
                    ..Default::default()
                }
            })
            .collect()
    }

    fn all_rollups(store: &Store) -> Vec<(i64, HourRollup)> {
        store
            .rollups("acme", "dev-1", i64::MIN / 2, i64::MAX / 2)
            .unwrap()
    }

    /// The conformance suite: each test takes where its store is and runs once per
    /// engine — embedded in a temporary directory, PostgreSQL in a new database of the
    /// test cluster ([`testpg`]).
    macro_rules! on_every_engine {
        ($($name:ident),* $(,)?) => {
            mod embedded {
                $(#[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(&super::Location::Embedded {
                        dir: dir.path().to_owned(),
                        cache_mib: super::TOOL_CACHE_MIB,
                    });
                })*
            }
            mod postgres {
                $(#[test]
                fn $name() {
                    super::$name(&super::Location::Postgres {
                        url: super::testpg::fresh_database(),
                    });
                })*
            }
        };
    }

    on_every_engine!(
        purge_keeps_rollups_counts_resends_as_duplicates_and_survives_a_rebuild,
        ingest_is_idempotent_and_conflicts_are_kept_apart,
        sparse_seqs_are_looked_up_one_by_one_with_the_same_result,
        boot_sessions_and_inventory_are_tracked,
        a_changed_inventory_keeps_the_previous_one_in_the_history,
        assets_are_written_together_and_a_reimport_changes_nothing,
        two_processes_share_one_store_and_see_each_others_commits,
        a_store_records_its_format_and_refuses_another_one,
        readings_kv_scans_and_fleet_order_are_the_same_on_every_engine,
        a_group_applies_as_its_batches_one_by_one_and_a_bad_batch_fails_alone,
        one_report_batches_append_to_their_hour_and_a_closed_hour_is_compact,
    );

    /// Issue 17 (MQTT, a report a second): new reports are appended to their
    /// device-hour as chunks rather than the hour repacked. Resends and conflicts must
    /// still be found in any chunk (and among the same group's batches), and once the
    /// device moves to a later hour the one it left is compacted to one chunk, the
    /// bytes of the hour packed at once.
    fn one_report_batches_append_to_their_hour_and_a_closed_hour_is_compact(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let dev = Dev {
            org: "acme",
            device: "dev-1",
        };
        let hour = rollup::hour_of(report(1, "b1").start_unix_ms);
        let row = |store: &Store, hour: i64| {
            store
                .read(|tx| tx.raw_get(dev, hour))
                .unwrap()
                .expect("row")
        };
        for seq in 1..=40 {
            let o = store
                .apply_batch("acme", &batch("dev-1", vec![report(seq, "b1")]), NOW)
                .unwrap();
            assert_eq!(o.stored, 1);
        }
        let open = row(&store, hour);
        assert_eq!((open.seq_min, open.seq_max, open.reports), (1, 40, 40));
        assert!(codec::compact_reports(&open.data).unwrap().is_some());
        // A group: new reports, a resend from an early chunk, a seq sent twice in the
        // group with different bytes.
        let mut other = report(41, "b1");
        other.active_ms += 1;
        let group = [
            batch("dev-1", vec![report(41, "b1"), report(42, "b1")]),
            batch("dev-1", vec![report(5, "b1")]),
            batch("dev-1", vec![other, report(43, "b1")]),
        ];
        let pending: Vec<Pending<'_>> = group
            .iter()
            .map(|batch| Pending {
                org: "acme",
                batch,
                received_unix_ms: NOW,
            })
            .collect();
        let outcomes: Vec<BatchOutcome> = store
            .apply_batches(&pending)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            outcomes
                .iter()
                .map(|o| (o.stored, o.duplicates, o.conflicts))
                .collect::<Vec<_>>(),
            [(2, 0, 0), (0, 1, 0), (1, 0, 1)]
        );
        let o = store
            .apply_batch("acme", &batch("dev-1", vec![report(7, "b1")]), NOW)
            .unwrap();
        assert_eq!((o.stored, o.duplicates), (0, 1));
        let expected: Vec<Report> = (1..=43).map(|s| report(s, "b1")).collect();
        assert_eq!(store.all_reports("acme", "dev-1").unwrap(), expected);
        assert_eq!(
            store.reports("acme", "dev-1", 20..=22).unwrap(),
            expected[19..22]
        );
        let open = row(&store, hour);
        assert_eq!((open.seq_min, open.seq_max, open.reports), (1, 43, 43));
        assert!(codec::compact_reports(&open.data).unwrap().is_some());

        // The next hour: the one left is compacted, the new one starts as one chunk.
        let next = report(5_000, "b1");
        let next_hour = rollup::hour_of(next.start_unix_ms);
        assert!(next_hour > hour);
        store
            .apply_batch("acme", &batch("dev-1", vec![next.clone()]), NOW)
            .unwrap();
        let closed = row(&store, hour);
        assert_eq!(closed.data, codec::encode_reports(&expected));
        assert_eq!(
            (closed.seq_min, closed.seq_max, closed.reports),
            (1, 43, 43)
        );
        assert_eq!(row(&store, next_hour).data, codec::encode_reports(&[next]));
        assert_eq!(store.report_count(), 44);
        // Rollups added report by report are what a rebuild from the rows gives.
        let rollups = all_rollups(&store);
        store.rebuild_rollups(|_| {}).unwrap();
        assert_eq!(all_rollups(&store), rollups);
    }

    /// Issue 17 (MQTT and live-fleet ingest): the writer applies everything queued in
    /// one transaction. Each batch's outcome and everything stored must be what
    /// applying the batches one by one gives, a device's batches in their order
    /// (resends and conflicts included), and a batch that cannot be applied (here a
    /// corrupt device record) must fail alone, the rest of its group stored.
    fn a_group_applies_as_its_batches_one_by_one_and_a_bad_batch_fails_alone(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let mut changed = report(3, "b1");
        changed.active_ms += 1;
        let batches = [
            batch("dev-2", (1..=3).map(|s| report(s, "b1")).collect()),
            batch("dev-1", (1..=2).map(|s| report(s, "b1")).collect()),
            batch("dev-1", vec![report(3, "b2")]),
            batch("dev-1", (2..=3).map(|s| report(s, "b1")).collect()),
            batch("dev-1", vec![changed]),
        ];
        let alone: Vec<BatchOutcome> = batches
            .iter()
            .map(|b| store.apply_batch("acme", b, NOW).unwrap())
            .collect();
        let pending: Vec<Pending<'_>> = batches
            .iter()
            .map(|b| Pending {
                org: "town",
                batch: b,
                received_unix_ms: NOW,
            })
            .collect();
        let grouped: Vec<BatchOutcome> = store
            .apply_batches(&pending)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(grouped, alone);
        assert_eq!(
            (alone[3].duplicates, alone[4].conflicts),
            (1, 1),
            "{alone:?}"
        );
        for device in ["dev-1", "dev-2"] {
            let (a, t) = (
                store.device("acme", device).unwrap().unwrap(),
                store.device("town", device).unwrap().unwrap(),
            );
            assert_eq!(
                (a.reports, a.highest_seq, a.conflicts),
                (t.reports, t.highest_seq, t.conflicts)
            );
            assert_eq!(
                store.reports("acme", device, 1..=10).unwrap(),
                store.reports("town", device, 1..=10).unwrap()
            );
            let span = (i64::MIN / 2, i64::MAX / 2);
            assert_eq!(
                store.rollups("acme", device, span.0, span.1).unwrap(),
                store.rollups("town", device, span.0, span.1).unwrap()
            );
        }

        store
            .write(|tx| tx.kv_put(Tree::Devices, &device_key("town", "bad"), b"not json"))
            .unwrap();
        let more = [
            batch("dev-3", vec![report(1, "b1")]),
            batch("bad", vec![report(1, "b1")]),
            batch("dev-1", vec![report(4, "b1")]),
        ];
        let pending: Vec<Pending<'_>> = more
            .iter()
            .map(|b| Pending {
                org: "town",
                batch: b,
                received_unix_ms: NOW,
            })
            .collect();
        let results = store.apply_batches(&pending);
        assert!(
            matches!(results[1], Err(StoreError::Corrupt { .. })),
            "{results:?}"
        );
        assert_eq!(results[0].as_ref().map(|o| o.stored).ok(), Some(1));
        assert_eq!(
            results[2].as_ref().map(|o| o.highest_durable_seq).ok(),
            Some(4)
        );
        assert_eq!(store.reports("town", "dev-3", 1..=1).unwrap().len(), 1);
        assert_eq!(store.reports("town", "dev-1", 4..=4).unwrap().len(), 1);
    }

    /// What the meters, rooms and policies modules and the fleet reports rely on from
    /// an engine: readings by series and time, replaced in place; kv prefix scans in
    /// byte order (high bytes included); devices in byte order of their ids.
    fn readings_kv_scans_and_fleet_order_are_the_same_on_every_engine(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let keys: [&[u8]; 5] = [b"a\0\xff\x01", b"a\0x", b"a\0\x7f", b"a\x01", b"b"];
        store
            .write(|tx| {
                for ts in [3_000, 1_000, 2_000] {
                    tx.reading_put("acme", "m1", "energy", (ts, ts as f64 / 1e3, 0))?;
                }
                tx.reading_put("acme", "m1", "energy", (2_000, 2.5, 4))?;
                tx.reading_put("acme", "m2", "energy", (1_000, 9.0, 0))?;
                tx.reading_put("acme", "m1", "power", (1_000, 100.0, 0))?;
                for k in keys {
                    tx.kv_put(Tree::Rooms, k, k)?;
                }
                tx.kv_delete(Tree::Rooms, b"b")
            })
            .unwrap();
        let (series, there, absent, scan, all) = store
            .read(|tx| {
                Ok((
                    tx.readings("acme", "m1", "energy", 1_000, 3_000)?,
                    tx.reading_exists("acme", "m1", "energy", 3_000)?,
                    tx.reading_exists("acme", "m1", "energy", 4_000)?,
                    tx.kv_scan(Tree::Rooms, b"a\0")?,
                    tx.kv_scan(Tree::Rooms, b"")?,
                ))
            })
            .unwrap();
        assert_eq!(series, vec![(1_000, 1.0, 0), (2_000, 2.5, 4)]);
        assert!(there && !absent);
        let scanned: Vec<&[u8]> = scan.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(scanned, [&b"a\0x"[..], b"a\0\x7f", b"a\0\xff\x01"]);
        assert_eq!(all.len(), 4);

        let hour = rollup::hour_of(NOW);
        let r = HourRollup {
            covered_ms: 1_000.0,
            ..Default::default()
        };
        for device in ["b-dev", "B-dev", "a-dev"] {
            store.put_rollups("acme", device, &[(hour, r)]).unwrap();
        }
        let mut order = Vec::new();
        store
            .rollups_of_fleet(Some("acme"), hour, hour + HOUR_MS, |_, d, hours| {
                assert_eq!(hours, vec![(hour, r)]);
                order.push(d.to_owned());
                Ok(())
            })
            .unwrap();
        assert_eq!(order, ["B-dev", "a-dev", "b-dev"]);
    }

    fn purge_keeps_rollups_counts_resends_as_duplicates_and_survives_a_rebuild(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let reports = day_reports(50);
        store
            .apply_batch("acme", &batch("dev-1", reports.clone()), NOW)
            .unwrap();
        let before = all_rollups(&store);

        // Cut 20 hours into the history, in the middle of report 25 (which stays).
        let cutoff = reports[24].start_unix_ms + 1_800_000;
        let out = store.purge_raw_reports(cutoff).unwrap();
        let hour = rollup::hour_of(cutoff);
        let purged: Vec<u64> = reports
            .iter()
            .take_while(|r| r.end_unix_ms < hour)
            .map(|r| r.seq)
            .collect();
        assert!(purged.len() > 10 && purged.len() < 50);
        assert_eq!(
            out,
            PurgeOutcome {
                devices: 1,
                reports: purged.len() as u64
            }
        );
        assert_eq!(store.report_count(), 50 - purged.len());
        assert!(
            store
                .reports("acme", "dev-1", 1..=*purged.last().unwrap())
                .unwrap()
                .is_empty()
        );
        assert_eq!(all_rollups(&store), before, "rollups untouched by a purge");
        let d = store.device("acme", "dev-1").unwrap().unwrap();
        assert_eq!(d.raw_purged_through_seq, purged.last().copied());
        assert_eq!(d.rollups_closed_before_unix_ms, hour);

        // An agent resending purged reports adds nothing.
        let o = store
            .apply_batch("acme", &batch("dev-1", reports[..5].to_vec()), NOW + 1)
            .unwrap();
        assert_eq!((o.stored, o.duplicates), (0, 5));
        assert_eq!(all_rollups(&store), before);

        // A rebuild from what is left gives the same rollups, bit for bit.
        store.rebuild_rollups(|_| {}).unwrap();
        assert_eq!(
            all_rollups(&store),
            before,
            "closed hours kept, open hours rebuilt"
        );

        // A second purge at the same cutoff finds nothing more.
        assert_eq!(
            store.purge_raw_reports(cutoff).unwrap(),
            PurgeOutcome::default()
        );
    }

    #[test]
    fn every_hour_has_a_slot_in_its_day() {
        for hour in [
            i64::MIN,
            -1,
            0,
            3_599_999,
            3_600_000,
            86_399_999,
            86_400_000,
            i64::MAX,
        ] {
            let (day, slot) = day_slot(hour);
            assert!(slot < codec::HOURS_PER_DAY, "{hour}");
            if hour.checked_sub(day).is_some() && day != i64::MIN {
                assert_eq!(day, day_of(hour), "{hour}");
                assert_eq!(slot as i64, (hour - day) / HOUR_MS, "{hour}");
            }
        }
    }

    #[test]
    fn keys_sort_by_seq_and_parse_back() {
        let a = report_key("acme", "dev", 2);
        let b = report_key("acme", "dev", 256);
        assert!(a < b);
        assert_eq!(parse_report_key(&b), Some(("acme", "dev", 256)));
        assert_eq!(&a[..9], b"acme\0dev\0");
        // A device id that is a prefix of another does not share its key prefix.
        let mut p = device_key("acme", "dev");
        p.push(0);
        assert!(!report_key("acme", "dev2", 1).starts_with(&p));
        assert_eq!(parse_report_key(b"short"), None);
    }

    fn ingest_is_idempotent_and_conflicts_are_kept_apart(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let b = batch("dev-1", vec![report(1, "b1"), report(2, "b1")]);
        let o = store.apply_batch("acme", &b, NOW).unwrap();
        assert_eq!((o.stored, o.duplicates, o.conflicts), (2, 0, 0));
        assert_eq!(o.highest_durable_seq, 2);

        // Resend: duplicates, nothing doubled.
        let o = store.apply_batch("acme", &b, NOW + 1).unwrap();
        assert_eq!((o.stored, o.duplicates, o.conflicts), (0, 2, 0));
        assert_eq!(store.report_count(), 2);
        let d = store.device("acme", "dev-1").unwrap().unwrap();
        assert_eq!((d.reports, d.highest_seq, d.boot_sessions), (2, 2, 1));
        assert_eq!(d.last_seen_unix_ms, NOW + 1);
        assert_eq!(d.first_seen_unix_ms, NOW);

        // Same seq, other content: a conflict, stored apart, original untouched.
        let mut other = report(2, "b1");
        other.cpu_util = 0.9;
        let c = batch("dev-1", vec![other.clone(), report(3, "b2")]);
        let o = store.apply_batch("acme", &c, NOW + 2).unwrap();
        assert_eq!(
            (o.stored, o.duplicates, o.conflicts, o.new_conflicts),
            (1, 0, 1, 1)
        );
        assert_eq!(o.first_conflict_seq, Some(2));
        assert_eq!(o.highest_durable_seq, 3);
        assert_eq!(
            store.reports("acme", "dev-1", 2..=2).unwrap()[0].cpu_util,
            0.1
        );
        let conflicts = store.conflicts("acme", "dev-1").unwrap();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].seq, 2);
        assert_eq!(conflicts[0].received_unix_ms, NOW + 2);
        assert_eq!(conflicts[0].report, other);

        // The same conflicting version again: counted, not stored twice.
        let o = store
            .apply_batch("acme", &batch("dev-1", vec![other]), NOW + 3)
            .unwrap();
        assert_eq!((o.conflicts, o.new_conflicts), (1, 0));
        assert_eq!(store.conflicts("acme", "dev-1").unwrap().len(), 1);

        let d = store.device("acme", "dev-1").unwrap().unwrap();
        assert_eq!((d.reports, d.conflicts, d.boot_sessions), (3, 1, 2));
        assert_eq!(d.last_boot_id, "b2");
        // Other orgs do not see this device.
        assert!(store.devices(Some("other")).unwrap().is_empty());
        assert_eq!(store.devices(None).unwrap().len(), 1);
    }

    fn sparse_seqs_are_looked_up_one_by_one_with_the_same_result(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let sparse = batch("dev-1", vec![report(1, "b1"), report(100, "b1")]);
        let o = store.apply_batch("acme", &sparse, NOW).unwrap();
        assert_eq!((o.stored, o.highest_durable_seq), (2, 100));
        let o = store.apply_batch("acme", &sparse, NOW).unwrap();
        assert_eq!((o.stored, o.duplicates), (0, 2));
        // Dense batch overlapping a stored seq: found by the range scan.
        let dense = batch("dev-1", vec![report(99, "b1"), report(100, "b1")]);
        let o = store.apply_batch("acme", &dense, NOW).unwrap();
        assert_eq!((o.stored, o.duplicates), (1, 1));
    }

    fn boot_sessions_and_inventory_are_tracked(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let mut last = report(2, "b1");
        last.events.push(Event {
            kind: EventKind::Shutdown as i32,
            at_unix_ms: last.end_unix_ms - 1,
            count: 1,
            detail: String::new(),
        });
        let mut b = batch("dev-1", vec![report(1, "b1"), last.clone()]);
        b.inventory = Some(Inventory {
            hostname: "pc-01".into(),
            agent_version: "0.1.1".into(),
            ..Default::default()
        });
        store.apply_batch("acme", &b, NOW).unwrap();
        store.flush().unwrap();
        let sessions = store.boot_sessions("acme", "dev-1").unwrap();
        assert_eq!(sessions.len(), 1);
        let (id, s) = &sessions[0];
        assert_eq!(id, "b1");
        assert_eq!(s.reports, 2);
        assert!(s.shutdown_seen);
        assert_eq!(s.first_start_unix_ms, report(1, "b1").start_unix_ms);
        assert_eq!(s.last_end_unix_ms, last.end_unix_ms);
        let d = store.device("acme", "dev-1").unwrap().unwrap();
        assert_eq!(d.hostname, "pc-01");
        assert_eq!(d.agent_version, "0.1.1");
        assert_eq!(
            store.inventory("acme", "dev-1").unwrap().unwrap().hostname,
            "pc-01"
        );
    }

    fn a_changed_inventory_keeps_the_previous_one_in_the_history(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let inv = |ram_gib: u64| Inventory {
            hostname: "pc-01".into(),
            ram_bytes: ram_gib << 30,
            ..Default::default()
        };
        let with = |inv: Inventory| ReportBatch {
            inventory: Some(inv),
            ..batch("dev-1", vec![])
        };
        store.apply_batch("acme", &with(inv(8)), NOW).unwrap();
        // The same inventory again (an agent restart): no history.
        store.apply_batch("acme", &with(inv(8)), NOW + 1).unwrap();
        assert!(store.inventory_history("acme", "dev-1").unwrap().is_empty());
        // A RAM upgrade: the 8 GiB inventory moves to the history.
        store.apply_batch("acme", &with(inv(16)), NOW + 2).unwrap();
        // A batch without an inventory changes nothing.
        store
            .apply_batch("acme", &batch("dev-1", vec![report(1, "b1")]), NOW + 3)
            .unwrap();
        // Two changes in the same millisecond are both kept.
        store.apply_batch("acme", &with(inv(32)), NOW + 2).unwrap();
        let h = store.inventory_history("acme", "dev-1").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].0, h[0].1.ram_bytes), (NOW + 2, 8 << 30));
        assert_eq!((h[1].0, h[1].1.ram_bytes), (NOW + 3, 16 << 30));
        assert_eq!(
            store.inventory("acme", "dev-1").unwrap().unwrap().ram_bytes,
            32 << 30
        );
        assert!(store.inventory_history("acme", "dev-2").unwrap().is_empty());
    }

    fn assets_are_written_together_and_a_reimport_changes_nothing(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let rec = |at: i64| AssetRecord {
            acquisition_date: "2019-03-12".into(),
            matched_by: "serial".into(),
            imported_at_unix_ms: at,
            ..Default::default()
        };
        let rows = vec![
            ("acme".to_owned(), "dev-1".to_owned(), rec(1)),
            ("acme".to_owned(), "dev-2".to_owned(), rec(1)),
        ];
        assert_eq!(store.put_assets(&rows).unwrap(), (2, 0));
        let again: Vec<_> = rows
            .iter()
            .map(|(o, d, _)| (o.clone(), d.clone(), rec(2)))
            .collect();
        assert_eq!(store.put_assets(&again).unwrap(), (0, 2));
        assert_eq!(store.asset("acme", "dev-1").unwrap(), Some(rec(1)));
        assert_eq!(store.asset("acme", "dev-3").unwrap(), None);
    }

    fn two_processes_share_one_store_and_see_each_others_commits(at: &Location) {
        let server = Store::open_location(at).unwrap();
        let cli = Store::open_location(at).unwrap();
        server
            .apply_batch("acme", &batch("dev-1", vec![report(1, "b1")]), NOW)
            .unwrap();
        server.flush().unwrap();
        assert_eq!(cli.device("acme", "dev-1").unwrap().unwrap().reports, 1);
        cli.put_assets(&[("acme".into(), "dev-1".into(), AssetRecord::default())])
            .unwrap();
        assert!(server.asset("acme", "dev-1").unwrap().is_some());
    }

    fn a_store_records_its_format_and_refuses_another_one(at: &Location) {
        let store = Store::open_location(at).unwrap();
        let format = store.read(|tx| tx.kv_get(Tree::Meta, b"format")).unwrap();
        assert_eq!(format, Some(FORMAT_VERSION.to_string().into_bytes()));
        store
            .write(|tx| tx.kv_put(Tree::Meta, b"format", b"99"))
            .unwrap();
        drop(store);
        let e = Store::open_location(at).unwrap_err();
        assert!(
            matches!(e, StoreError::Format { ref found, .. } if found == "99"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("reads format {FORMAT_VERSION}")),
            "{e}"
        );
    }

    #[test]
    fn a_sled_directory_is_named_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), "segment_size: 524288\n").unwrap();
        std::fs::write(dir.path().join("db"), [0u8; 16]).unwrap();
        let e = Store::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::OldSled { .. }), "{e}");
        assert!(!dir.path().join(sqlite::FILE).exists());
    }
}
