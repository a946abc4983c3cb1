//! Durable storage of reports and registries, on sled.
//!
//! The method set is the storage contract the rest of the collector relies on, shaped so
//! that a PostgreSQL backend (DESIGN.md "Scale") can implement it later with the same
//! idempotency key: [`Store::apply_batch`] (all reports of a batch or none; a
//! transaction), [`Store::flush`] (the durability point: an Ack is sent only after
//! it), and read methods returning plain values. It is a concrete struct until that
//! second backend exists.
//!
//! # Trees and keys
//! Ids never contain NUL (org ids are `[A-Za-z0-9._-]`, device and boot ids are
//! refused with control characters by `validate_batch`), so NUL separates key parts and
//! a prefix scan on `org \0 device_id \0` finds exactly one device's rows.
//!
//! | tree            | key                                              | value |
//! |-----------------|--------------------------------------------------|-------|
//! | `reports`       | org \0 device_id \0 seq (u64 BE)                 | prost `Report` |
//! | `conflicts`     | org \0 device_id \0 seq (u64 BE) received_ms (u64 BE) n (u32 BE) | prost `Report` |
//! | `devices`       | org \0 device_id                                 | JSON [`DeviceRecord`] |
//! | `boot_sessions` | org \0 device_id \0 boot_id                      | JSON [`BootSession`] |
//! | `inventory`     | org \0 device_id                                 | prost `Inventory` |
//! | `rollups`       | org \0 device_id \0 hour (sortable u64 BE)       | 80-byte [`HourRollup`] |
//! | `inventory_history` | org \0 device_id \0 received_ms (u64 BE)   | prost `Inventory` replaced at that time |
//! | `asset`         | org \0 device_id                                 | JSON [`AssetRecord`] (GLPI import) |
//! | `policies`      | org \0 version (u64 BE)                          | prost `SignedPolicy` (the `policy` module) |
//! | `meter_readings`, `meters` | see [`crate::store::meters`]            | |
//! | `rooms`         | org \0 room name                                 | JSON room (the `reports::rooms` module) |

/// Directory of the sled store inside the data directory.
pub const STORE_DIR: &str = "db";

pub mod meters;
pub mod retention;
pub mod rooms;

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prost::Message;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use veille_proto::v1::{EventKind, Inventory, Report, ReportBatch};

use veille_domain::devices::DeviceRecord;
use veille_domain::energy::rollup::{self, HourRollup};
use veille_domain::renewal::asset::AssetRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store {path} is locked by another process (is a collector running on this data directory?)"
    )]
    Locked { path: PathBuf },
    #[error("cannot open the store {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store I/O error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt entry in tree {tree}, key {key}: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
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

/// What [`Store::purge_raw_reports`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Devices that lost at least one raw report.
    pub devices: u64,
    /// Raw reports deleted.
    pub reports: u64,
}

/// Reports deleted per write-lock hold during a purge.
pub const PURGE_CHUNK: u64 = 10_000;

/// A conflicting version of a report, kept apart from the stored one.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictEntry {
    pub seq: u64,
    /// Collector clock when this version arrived.
    pub received_unix_ms: i64,
    pub report: Report,
}

/// The sled-backed store. Cheap to share behind an `Arc`; reads run concurrently with
/// the writer, and writes are serialised by an internal lock.
pub struct Store {
    db: sled::Db,
    reports: sled::Tree,
    conflicts: sled::Tree,
    devices: sled::Tree,
    boot_sessions: sled::Tree,
    inventory: sled::Tree,
    /// `org \0 device_id \0 hour` → [`HourRollup`]: maintained with every stored report,
    /// rebuildable from `reports` ([`Store::rebuild_rollups`]).
    rollups: sled::Tree,
    /// Previous inventories of a device, each keyed by when it was replaced: "a changed
    /// monitor, a RAM upgrade" stays visible after the latest inventory overwrote it.
    inventory_history: sled::Tree,
    /// Asset facts imported from GLPI ([`AssetRecord`]).
    asset: sled::Tree,
    /// `apply_batch` plans with plain reads, then commits in a transaction; the plan is
    /// only valid if no other write runs in between.
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // sled releases its file lock from a background thread after the last handle is
        // dropped, so a reopen right after a close (a CLI command just after the server
        // stopped, a test) can see the lock for a moment. Retry briefly; a store held by
        // a running server is still reported as locked.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match Self::open_once(path) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).open().map_err(|source| {
            if matches!(&source, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"))
            {
                StoreError::Locked {
                    path: path.to_owned(),
                }
            } else {
                StoreError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Ok(Self {
            reports: db.open_tree("reports")?,
            conflicts: db.open_tree("conflicts")?,
            devices: db.open_tree("devices")?,
            boot_sessions: db.open_tree("boot_sessions")?,
            inventory: db.open_tree("inventory")?,
            rollups: db.open_tree("rollups")?,
            inventory_history: db.open_tree("inventory_history")?,
            asset: db.open_tree("asset")?,
            db,
            write_lock: Mutex::new(()),
        })
    }

    /// Applies a validated batch of `org`: new reports are stored, resends counted as
    /// duplicates, different content under a stored seq kept apart as a conflict; the
    /// device, boot-session and inventory registries are updated. All of it commits
    /// atomically or not at all. Not durable until [`Store::flush`] returns.
    ///
    /// The batch must have passed [`veille_proto::validate_batch`].
    pub fn apply_batch(
        &self,
        org: &str,
        batch: &ReportBatch,
        received_unix_ms: i64,
    ) -> Result<BatchOutcome, StoreError> {
        // A poisoned lock only means another write panicked; the trees are still
        // consistent (sled transactions are atomic), so carry on.
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let dev_key = device_key(org, &batch.device_id);
        let mut device = match self.devices.get(&dev_key)? {
            Some(v) => decode_json::<DeviceRecord>("devices", &dev_key, &v)?,
            None => DeviceRecord {
                org: org.to_owned(),
                device_id: batch.device_id.clone(),
                first_seen_unix_ms: received_unix_ms,
                ..Default::default()
            },
        };
        device.last_seen_unix_ms = received_unix_ms;
        if !batch.agent_version.is_empty() {
            device.agent_version.clone_from(&batch.agent_version);
        }

        let mut outcome = BatchOutcome::default();
        let mut reports = sled::Batch::default();
        let mut conflicts = sled::Batch::default();
        let mut sessions: HashMap<String, BootSession> = HashMap::new();
        // Parts are kept apart and added one by one, in seq order, onto the stored
        // value: floating-point addition is not associative, and this is the order
        // `rebuild_rollups` adds them in, so both give the same bits.
        let mut new_rollups: BTreeMap<i64, Vec<HourRollup>> = BTreeMap::new();
        let mut existing = self.existing_reports(org, batch)?;
        for report in &batch.reports {
            if device
                .raw_purged_through_seq
                .is_some_and(|purged| report.seq <= purged)
            {
                // Stored once, purged since: its hours are already in the rollups.
                outcome.duplicates += 1;
                continue;
            }
            let key = report_key(org, &batch.device_id, report.seq);
            let bytes = report.encode_to_vec();
            let stored = match &mut existing {
                Some(found) => found.remove(&report.seq),
                None => self.reports.get(&key)?,
            };
            match stored {
                Some(existing) if existing.as_ref() == bytes.as_slice() => {
                    outcome.duplicates += 1;
                }
                Some(_) => {
                    outcome.conflicts += 1;
                    outcome.first_conflict_seq.get_or_insert(report.seq);
                    let mut seen = 0u32;
                    let mut known = false;
                    for entry in self.conflicts.scan_prefix(&key) {
                        let (_, v) = entry?;
                        seen += 1;
                        known |= v.as_ref() == bytes.as_slice();
                    }
                    if !known {
                        let mut ckey = key.clone();
                        ckey.extend_from_slice(&(received_unix_ms.max(0) as u64).to_be_bytes());
                        ckey.extend_from_slice(&seen.to_be_bytes());
                        conflicts.insert(ckey, bytes);
                        outcome.new_conflicts += 1;
                    }
                }
                None => {
                    outcome.stored += 1;
                    reports.insert(key, bytes);
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
                    let session = match sessions.entry(report.boot_id.clone()) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            let bkey = boot_key(org, &batch.device_id, &report.boot_id);
                            let s = match self.boot_sessions.get(&bkey)? {
                                Some(v) => decode_json::<BootSession>("boot_sessions", &bkey, &v)?,
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
                    session.first_start_unix_ms =
                        session.first_start_unix_ms.min(report.start_unix_ms);
                    let has = |kind: EventKind| report.events.iter().any(|e| e.kind == kind as i32);
                    if report.end_unix_ms >= session.last_end_unix_ms {
                        session.last_end_unix_ms = report.end_unix_ms;
                        session.last_report_shutdown = has(EventKind::Shutdown);
                        session.last_report_agent_stop =
                            has(EventKind::AgentStop) && !has(EventKind::Shutdown);
                    }
                    session.shutdown_seen |= has(EventKind::Shutdown);
                }
            }
        }
        device.conflicts += u64::from(outcome.new_conflicts);
        outcome.highest_durable_seq = device.highest_seq;

        let mut boot_batch = sled::Batch::default();
        for (boot_id, session) in &sessions {
            boot_batch.insert(
                boot_key(org, &batch.device_id, boot_id),
                encode_json(session),
            );
        }
        let mut inventory_batch = sled::Batch::default();
        let mut history_batch = sled::Batch::default();
        if let Some(inv) = &batch.inventory {
            if !inv.hostname.is_empty() {
                device.hostname.clone_from(&inv.hostname);
            }
            if !inv.agent_version.is_empty() {
                device.agent_version.clone_from(&inv.agent_version);
            }
            let bytes = inv.encode_to_vec();
            if let Some(previous) = self.inventory.get(&dev_key)?
                && previous.as_ref() != bytes.as_slice()
            {
                // Two changes within one millisecond must not overwrite each other.
                let mut at = received_unix_ms.max(0) as u64;
                while self
                    .inventory_history
                    .contains_key(history_key(org, &batch.device_id, at))?
                {
                    at += 1;
                }
                history_batch.insert(history_key(org, &batch.device_id, at), previous);
            }
            inventory_batch.insert(dev_key.clone(), bytes);
        }
        let mut device_batch = sled::Batch::default();
        let mut rollup_batch = sled::Batch::default();
        for (hour, parts) in &new_rollups {
            let key = rollup_key(org, &batch.device_id, *hour);
            let mut total = match self.rollups.get(&key)? {
                Some(v) => HourRollup::decode(&v).ok_or_else(|| StoreError::Corrupt {
                    tree: "rollups",
                    key: printable(&key),
                    reason: "wrong length".into(),
                })?,
                None => HourRollup::default(),
            };
            for part in parts {
                total.add(part);
            }
            rollup_batch.insert(key, total.encode().to_vec());
        }
        device_batch.insert(dev_key, encode_json(&device));

        (
            &self.reports,
            &self.conflicts,
            &self.devices,
            &self.boot_sessions,
            &self.inventory,
            &self.rollups,
            &self.inventory_history,
        )
            .transaction(|(r, c, d, b, i, h, ih)| {
                r.apply_batch(&reports)?;
                c.apply_batch(&conflicts)?;
                d.apply_batch(&device_batch)?;
                b.apply_batch(&boot_batch)?;
                i.apply_batch(&inventory_batch)?;
                h.apply_batch(&rollup_batch)?;
                ih.apply_batch(&history_batch)?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Sled(e),
            })?;
        Ok(outcome)
    }

    /// Stored reports under the batch's seqs, found with one range scan when the seqs
    /// are dense (the usual case: an agent's seqs are consecutive). `None` when they are
    /// sparse: a scan could then walk a long stretch of history, so the caller looks
    /// each seq up instead.
    fn existing_reports(
        &self,
        org: &str,
        batch: &ReportBatch,
    ) -> Result<Option<HashMap<u64, sled::IVec>>, StoreError> {
        let (Some(first), Some(last)) = (batch.reports.first(), batch.reports.last()) else {
            return Ok(Some(HashMap::new()));
        };
        let span = last.seq.saturating_sub(first.seq);
        if span > 4 * batch.reports.len() as u64 {
            return Ok(None);
        }
        let from = report_key(org, &batch.device_id, first.seq);
        let to = report_key(org, &batch.device_id, last.seq);
        let mut found = HashMap::new();
        for entry in self.reports.range(from..=to) {
            let (k, v) = entry?;
            if let Some((_, _, seq)) = parse_report_key(&k) {
                found.insert(seq, v);
            }
        }
        Ok(Some(found))
    }

    /// The `policies` tree: every signed policy of every org, kept by version
    /// (the `policy` module reads and writes it).
    pub fn policies(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("policies")?)
    }

    /// The `meter_readings` tree ([`crate::store::meters`]).
    pub fn meter_readings(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("meter_readings")?)
    }

    /// The `meters` registry tree ([`crate::store::meters`]).
    pub fn meters(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("meters")?)
    }

    /// The `rooms` tree (the `reports::rooms` module).
    pub fn rooms(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("rooms")?)
    }

    /// Makes every write applied so far durable (one fsync of sled's log). Returns once
    /// the data is on disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Bytes the store takes on disk (sled's own figure), for `/metrics`.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Device records, of one org or of all, sorted by (org, device_id).
    pub fn devices(&self, org: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError> {
        let iter = match org {
            Some(org) => self.devices.scan_prefix(prefix(org)),
            None => self.devices.iter(),
        };
        let mut out = Vec::new();
        for entry in iter {
            let (k, v) = entry?;
            out.push(decode_json::<DeviceRecord>("devices", &k, &v)?);
        }
        Ok(out)
    }

    /// One device's record.
    pub fn device(&self, org: &str, device_id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let key = device_key(org, device_id);
        self.devices
            .get(&key)?
            .map(|v| decode_json("devices", &key, &v))
            .transpose()
    }

    /// Stored reports of one device with seq in `seqs`, in seq order.
    pub fn reports(
        &self,
        org: &str,
        device_id: &str,
        seqs: RangeInclusive<u64>,
    ) -> Result<Vec<Report>, StoreError> {
        let from = report_key(org, device_id, *seqs.start());
        let to = report_key(org, device_id, *seqs.end());
        let mut out = Vec::new();
        for entry in self.reports.range(from..=to) {
            let (k, v) = entry?;
            out.push(decode_proto::<Report>("reports", &k, &v)?);
        }
        Ok(out)
    }

    /// Number of stored reports, all devices (a full scan: for tests and tools).
    pub fn report_count(&self) -> usize {
        self.reports.len()
    }

    /// Conflicting versions kept for one device, by seq then arrival.
    pub fn conflicts(&self, org: &str, device_id: &str) -> Result<Vec<ConflictEntry>, StoreError> {
        let p = {
            let mut p = device_key(org, device_id);
            p.push(0);
            p
        };
        let mut out = Vec::new();
        for entry in self.conflicts.scan_prefix(&p) {
            let (k, v) = entry?;
            let rest = &k[p.len()..];
            let (seq, received) = match (rest.get(0..8), rest.get(8..16)) {
                (Some(s), Some(r)) => (be_u64(s), be_u64(r) as i64),
                _ => {
                    return Err(StoreError::Corrupt {
                        tree: "conflicts",
                        key: printable(&k),
                        reason: "key too short".into(),
                    });
                }
            };
            out.push(ConflictEntry {
                seq,
                received_unix_ms: received,
                report: decode_proto("conflicts", &k, &v)?,
            });
        }
        Ok(out)
    }

    /// Boot sessions of one device, by boot id.
    pub fn boot_sessions(
        &self,
        org: &str,
        device_id: &str,
    ) -> Result<Vec<(String, BootSession)>, StoreError> {
        let mut p = device_key(org, device_id);
        p.push(0);
        let mut out = Vec::new();
        for entry in self.boot_sessions.scan_prefix(&p) {
            let (k, v) = entry?;
            let boot_id = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            out.push((boot_id, decode_json("boot_sessions", &k, &v)?));
        }
        Ok(out)
    }

    /// The latest inventory a device sent.
    pub fn inventory(&self, org: &str, device_id: &str) -> Result<Option<Inventory>, StoreError> {
        let key = device_key(org, device_id);
        self.inventory
            .get(&key)?
            .map(|v| decode_proto("inventory", &key, &v))
            .transpose()
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
        let mut out = Vec::new();
        for entry in self.inventory_history.scan_prefix(&p) {
            let (k, v) = entry?;
            let at = k
                .last_chunk::<8>()
                .map(|b| u64::from_be_bytes(*b) as i64)
                .unwrap_or_default();
            out.push((at, decode_proto("inventory_history", &k, &v)?));
        }
        Ok(out)
    }

    /// The asset facts imported for one device.
    pub fn asset(&self, org: &str, device_id: &str) -> Result<Option<AssetRecord>, StoreError> {
        let key = device_key(org, device_id);
        self.asset
            .get(&key)?
            .map(|v| decode_json("asset", &key, &v))
            .transpose()
    }

    /// Writes asset records, all in one transaction (an import is never half-applied),
    /// then flushes. A record whose facts equal the stored ones is left as it is, so a
    /// re-import changes nothing. Returns (written, unchanged).
    pub fn put_assets(
        &self,
        records: &[(String, String, AssetRecord)],
    ) -> Result<(usize, usize), StoreError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        let (mut written, mut unchanged) = (0, 0);
        for (org, device_id, record) in records {
            let key = device_key(org, device_id);
            let same = match self.asset.get(&key)? {
                Some(v) => decode_json::<AssetRecord>("asset", &key, &v)?.same_facts(record),
                None => false,
            };
            if same {
                unchanged += 1;
            } else {
                batch.insert(key, encode_json(record));
                written += 1;
            }
        }
        self.asset
            .transaction(|t| {
                t.apply_batch(&batch)?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Sled(e),
            })?;
        self.db.flush()?;
        Ok((written, unchanged))
    }

    /// Hourly rollups of one device for hours starting in `[from_hour, to_hour)`.
    pub fn rollups(
        &self,
        org: &str,
        device_id: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<(i64, HourRollup)>, StoreError> {
        let from = rollup_key(org, device_id, from_hour);
        let to = rollup_key(org, device_id, to_hour);
        let mut out = Vec::new();
        for entry in self.rollups.range(from..to) {
            let (k, v) = entry?;
            let hour = k
                .last_chunk::<8>()
                .map(|b| sortable_to_i64(u64::from_be_bytes(*b)))
                .unwrap_or_default();
            let r = HourRollup::decode(&v).ok_or_else(|| StoreError::Corrupt {
                tree: "rollups",
                key: printable(&k),
                reason: "wrong length".into(),
            })?;
            out.push((hour, r));
        }
        Ok(out)
    }

    /// Writes rollups as given, replacing any stored for those hours. For bulk loads
    /// (a migration from another tool) and benchmarks; ingest maintains rollups itself.
    pub fn put_rollups(
        &self,
        org: &str,
        device_id: &str,
        rollups: &[(i64, HourRollup)],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (hour, r) in rollups {
            batch.insert(rollup_key(org, device_id, *hour), r.encode().to_vec());
        }
        self.rollups.apply_batch(batch)?;
        Ok(())
    }

    /// Deletes each device's raw reports that ended before `cutoff_unix_ms` (rounded
    /// down to an hour), in seq order, stopping at its first report that ends later, so
    /// "every seq up to the watermark is gone" holds and a resend of one is recognised.
    /// Rollups stay and the hours before the cutoff become closed. The write lock is
    /// taken per chunk of [`PURGE_CHUNK`] reports: ingest waits milliseconds, not the
    /// whole purge.
    pub fn purge_raw_reports(&self, cutoff_unix_ms: i64) -> Result<PurgeOutcome, StoreError> {
        let cutoff = rollup::hour_of(cutoff_unix_ms);
        let mut outcome = PurgeOutcome::default();
        let device_keys = self.devices.iter().keys().collect::<Result<Vec<_>, _>>()?;
        for dev_key in device_keys {
            let mut purged_any = false;
            loop {
                let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
                let Some(v) = self.devices.get(&dev_key)? else {
                    break;
                };
                let mut device = decode_json::<DeviceRecord>("devices", &dev_key, &v)?;
                let first = device
                    .raw_purged_through_seq
                    .map_or(0, |s| s.saturating_add(1));
                let seq_key = |seq: u64| {
                    let mut k = dev_key.to_vec();
                    k.push(0);
                    k.extend_from_slice(&seq.to_be_bytes());
                    k
                };
                let mut doomed = sled::Batch::default();
                let mut last = None;
                let mut n = 0u64;
                for entry in self.reports.range(seq_key(first)..=seq_key(u64::MAX)) {
                    let (k, v) = entry?;
                    let report: Report = decode_proto("reports", &k, &v)?;
                    if report.end_unix_ms >= cutoff || n == PURGE_CHUNK {
                        break;
                    }
                    doomed.remove(k);
                    last = Some(report.seq);
                    n += 1;
                }
                let Some(last) = last else {
                    break;
                };
                device.raw_purged_through_seq = Some(last);
                device.rollups_closed_before_unix_ms =
                    device.rollups_closed_before_unix_ms.max(cutoff);
                let record = encode_json(&device);
                (&self.reports, &self.devices)
                    .transaction(|(r, d)| {
                        r.apply_batch(&doomed)?;
                        d.insert(dev_key.as_ref(), record.as_slice())?;
                        Ok::<_, ConflictableTransactionError<StoreError>>(())
                    })
                    .map_err(|e| match e {
                        TransactionError::Abort(e) => e,
                        TransactionError::Storage(e) => StoreError::Sled(e),
                    })?;
                outcome.reports += n;
                purged_any = true;
                if n < PURGE_CHUNK {
                    break;
                }
            }
            outcome.devices += u64::from(purged_any);
        }
        if outcome.reports > 0 {
            self.db.flush()?;
        }
        Ok(outcome)
    }

    /// Recomputes every rollup from the raw reports (after a crash of an older version,
    /// or to check them): the result is identical to what ingest maintained. Returns
    /// (reports read, rollups written). `progress` is called every 100,000 reports.
    pub fn rebuild_rollups(&self, mut progress: impl FnMut(u64)) -> Result<(u64, u64), StoreError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        // Hours closed by a purge have no raw reports left behind them: keep those.
        let mut closed: HashMap<Vec<u8>, i64> = HashMap::new();
        for entry in self.devices.iter() {
            let (k, v) = entry?;
            let d = decode_json::<DeviceRecord>("devices", &k, &v)?;
            if d.rollups_closed_before_unix_ms != 0 {
                closed.insert(k.to_vec(), d.rollups_closed_before_unix_ms);
            }
        }
        if closed.is_empty() {
            self.rollups.clear()?;
        } else {
            let mut stale = sled::Batch::default();
            for entry in self.rollups.iter() {
                let (k, _) = entry?;
                let keep = split_rollup_key(&k).is_some_and(|(device, hour)| {
                    closed.get(device).is_some_and(|before| hour < *before)
                });
                if !keep {
                    stale.remove(k);
                }
            }
            self.rollups.apply_batch(stale)?;
        }
        let mut reports = 0u64;
        let mut written = 0u64;
        let mut current: Option<Vec<u8>> = None;
        let mut hours: BTreeMap<i64, HourRollup> = BTreeMap::new();
        let mut flush =
            |device: &[u8], hours: &mut BTreeMap<i64, HourRollup>| -> Result<(), StoreError> {
                let closed_before = closed.get(device).copied().unwrap_or(i64::MIN);
                let mut batch = sled::Batch::default();
                for (hour, r) in std::mem::take(hours) {
                    if hour < closed_before {
                        continue;
                    }
                    let mut key = device.to_vec();
                    key.push(0);
                    key.extend_from_slice(&i64_to_sortable(hour).to_be_bytes());
                    batch.insert(key, r.encode().to_vec());
                    written += 1;
                }
                self.rollups.apply_batch(batch)?;
                Ok(())
            };
        for entry in self.reports.iter() {
            let (k, v) = entry?;
            let Some((org, device, _)) = parse_report_key(&k) else {
                return Err(StoreError::Corrupt {
                    tree: "reports",
                    key: printable(&k),
                    reason: "bad key".into(),
                });
            };
            let dev = device_key(org, device);
            if current.as_deref() != Some(dev.as_slice()) {
                if let Some(prev) = current.take() {
                    flush(&prev, &mut hours)?;
                }
                current = Some(dev);
            }
            let report: Report = decode_proto("reports", &k, &v)?;
            rollup::accumulate([&report], &mut hours);
            reports += 1;
            if reports.is_multiple_of(100_000) {
                progress(reports);
            }
        }
        if let Some(prev) = current.take() {
            flush(&prev, &mut hours)?;
        }
        self.db.flush()?;
        Ok((reports, written))
    }
}

/// `org \0 device_id \0 hour` with the hour (Unix ms) mapped to a big-endian u64 that
/// sorts like the signed value.
pub fn rollup_key(org: &str, device_id: &str, hour: i64) -> Vec<u8> {
    let mut k = device_key(org, device_id);
    k.push(0);
    k.extend_from_slice(&i64_to_sortable(hour).to_be_bytes());
    k
}

/// `(org \0 device_id, hour)` of a rollup key.
fn split_rollup_key(key: &[u8]) -> Option<(&[u8], i64)> {
    let (head, hour) = key.split_last_chunk::<8>()?;
    let device = head.strip_suffix(&[0])?;
    Some((device, sortable_to_i64(u64::from_be_bytes(*hour))))
}

fn i64_to_sortable(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

fn sortable_to_i64(v: u64) -> i64 {
    (v ^ (1 << 63)) as i64
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

fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings, integers and booleans always serialise.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode_json<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        key: printable(key),
        reason: e.to_string(),
    })
}

fn decode_proto<T: Message + Default>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    T::decode(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        key: printable(key),
        reason: e.to_string(),
    })
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

    #[test]
    fn purge_keeps_rollups_counts_resends_as_duplicates_and_survives_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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

    #[test]
    fn ingest_is_idempotent_and_conflicts_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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

    #[test]
    fn sparse_seqs_are_looked_up_one_by_one_with_the_same_result() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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

    #[test]
    fn boot_sessions_and_inventory_are_tracked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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

    #[test]
    fn a_changed_inventory_keeps_the_previous_one_in_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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

    #[test]
    fn assets_are_written_together_and_a_reimport_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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

    #[test]
    fn a_second_open_of_the_same_store_reports_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    }
}
