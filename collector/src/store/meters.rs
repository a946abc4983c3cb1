//! Meter readings in the store: the `meter_readings` series and the `meters` registry,
//! fed by MQTT ([`MeterSink`]) and by `import meters` (load curves).
//!
//! # Trees and keys
//! | tree             | key                                              | value |
//! |------------------|--------------------------------------------------|-------|
//! | `meter_readings` | org \0 meter_id \0 quantity \0 ts_ms (sortable u64 BE) | value (f64 BE) + flags (u8) |
//! | `meters`         | org \0 meter_id                                  | JSON [`MeterRecord`] |
//!
//! `quantity` is `power` (W), `energy` (kWh, the meter's cumulative counter as read)
//! or `temperature` (°C): every value is in its quantity's canonical unit
//! ([`veille_domain::rooms::meters::Quantity::unit`]); a value whose unit is unknown never gets here
//! (it is counted in the registry's `rejected`).
//!
//! Energy counters go through [`EnergyCounter`], whose state (high-water mark, last
//! timestamp) lives in the registry so it survives restarts: a reset is stored with
//! [`FLAG_RESET`] and counted, a glitch with [`FLAG_GLITCH`]; a stale reading (not
//! after the previous one: a redelivery) is not stored.

use std::collections::{BTreeMap, HashMap, HashSet, btree_map};
use std::sync::Mutex;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, device_key, prefix};
use veille_domain::rooms::meters::{
    self, CounterStep, EnergyCounter, MeterError, Parsed, Quantity, TasmotaMap,
};
use veille_domain::rooms::setpoint::DailySeries;

/// The counter value is a reset: the meter restarted from (near) 0.
pub const FLAG_RESET: u8 = 1;
/// The counter dropped by less than the glitch tolerance: not counted as energy.
pub const FLAG_GLITCH: u8 = 2;
/// Imported from a file (`import meters`), not received live.
pub const FLAG_IMPORTED: u8 = 4;

/// `[meters]` in the collector config. Documented for users in `deploy/collector.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetersConfig {
    /// Tasmota topics → meters (`tele/{topic}/SENSOR`).
    pub tasmota: Vec<TasmotaMapping>,
    /// IANA zone of Tasmota's local `Time`; empty = `energy.timezone`.
    pub tasmota_timezone: String,
    /// Counter drops up to this are glitches, larger ones resets (kWh).
    pub glitch_tolerance_kwh: f64,
}

impl Default for MetersConfig {
    fn default() -> Self {
        MetersConfig {
            tasmota: Vec::new(),
            tasmota_timezone: String::new(),
            glitch_tolerance_kwh: 0.01,
        }
    }
}

/// One `[[meters.tasmota]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TasmotaMapping {
    /// `plug1` (the device's energy monitor) or `plug1/DS18B20` (one of its sensors).
    pub topic: String,
    /// The meter id its readings are stored under.
    pub meter: String,
    /// The org the meter belongs to; empty = the only configured org (or `default`).
    #[serde(default)]
    pub org: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MeterStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("meters.tasmota: {0}")]
    Config(String),
}

/// A counter's persisted state (see [`EnergyCounter`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterState {
    /// The highest total since the last reset: the counter's reference.
    pub high_kwh: f64,
    /// The last total read.
    pub last_kwh: f64,
    pub last_ts_ms: i64,
}

/// The registry entry of one meter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MeterRecord {
    pub org: String,
    pub meter_id: String,
    /// Canonical unit per quantity seen (`power` → `W`…).
    pub units: BTreeMap<String, String>,
    pub readings: u64,
    pub last_ts_ms: i64,
    pub counter: Option<CounterState>,
    /// Counter resets detected (stored flagged).
    pub resets: u64,
    /// Counter glitches (small drops) flagged.
    pub glitches: u64,
    /// Counter readings not after the previous one (not stored).
    pub stale: u64,
    /// Values refused (unknown unit, not a number), by reason.
    pub rejected: BTreeMap<String, u64>,
}

/// What one call to [`record`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub stored: u64,
    pub rejected: u64,
    pub resets: u64,
    pub glitches: u64,
    pub stale: u64,
}

pub fn quantity_name(q: Quantity) -> &'static str {
    match q {
        Quantity::Power => "power",
        Quantity::Energy => "energy",
        Quantity::Temperature => "temperature",
    }
}

/// `org \0 meter_id \0 quantity \0 ts`.
pub fn reading_key(org: &str, meter_id: &str, quantity: Quantity, ts_ms: i64) -> Vec<u8> {
    let mut k = series_prefix(org, meter_id, quantity);
    k.extend_from_slice(&((ts_ms as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn series_prefix(org: &str, meter_id: &str, quantity: Quantity) -> Vec<u8> {
    let mut k = device_key(org, meter_id);
    k.push(0);
    k.extend_from_slice(quantity_name(quantity).as_bytes());
    k.push(0);
    k
}

fn encode_value(value: f64, flags: u8) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[..8].copy_from_slice(&value.to_be_bytes());
    v[8] = flags;
    v
}

fn corrupt(tree: &'static str, key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        reason: reason.into(),
    }
}

/// One meter's registry entry.
pub fn meter(store: &Store, org: &str, meter_id: &str) -> Result<Option<MeterRecord>, StoreError> {
    let tree = store.meters()?;
    let key = device_key(org, meter_id);
    match tree.get(&key)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| corrupt("meters", &key, &e.to_string())),
    }
}

/// Every meter of `org` (all orgs with `None`).
pub fn meters_of(store: &Store, org: Option<&str>) -> Result<Vec<MeterRecord>, StoreError> {
    let tree = store.meters()?;
    let iter = match org {
        Some(o) => tree.scan_prefix(prefix(o)),
        None => tree.iter(),
    };
    let mut out = Vec::new();
    for e in iter {
        let (k, v) = e?;
        out.push(serde_json::from_slice(&v).map_err(|e| corrupt("meters", &k, &e.to_string()))?);
    }
    Ok(out)
}

fn put_meter(store: &Store, rec: &MeterRecord) -> Result<(), StoreError> {
    let v = serde_json::to_vec(rec).map_err(|e| corrupt("meters", b"", &e.to_string()))?;
    store
        .meters()?
        .insert(device_key(&rec.org, &rec.meter_id), v)?;
    Ok(())
}

/// Readings of one series in `[from_ms, to_ms)`: (ts_ms, value, flags).
pub fn readings(
    store: &Store,
    org: &str,
    meter_id: &str,
    quantity: Quantity,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(i64, f64, u8)>, StoreError> {
    let tree = store.meter_readings()?;
    let from = reading_key(org, meter_id, quantity, from_ms);
    let to = reading_key(org, meter_id, quantity, to_ms);
    let mut out = Vec::new();
    for e in tree.range(from..to) {
        let (k, v) = e?;
        let ts = k
            .last_chunk::<8>()
            .map(|b| (u64::from_be_bytes(*b) ^ (1 << 63)) as i64)
            .unwrap_or_default();
        if v.len() != 9 {
            return Err(corrupt("meter_readings", &k, "value is not 9 bytes"));
        }
        let value = f64::from_be_bytes(v[..8].try_into().unwrap_or_default());
        out.push((ts, value, v[8]));
    }
    Ok(out)
}

/// Stores `parsed` (one payload) for `org`: values go to their series, energy totals
/// through each meter's counter, rejected values are counted in the registry. Not
/// durable until [`Store::flush`]. Callers serialise calls for the same meter (the
/// counter is read, advanced and written back).
pub fn record(
    store: &Store,
    org: &str,
    parsed: &Parsed,
    glitch_tolerance_kwh: f64,
    extra_flags: u8,
) -> Result<Recorded, StoreError> {
    let mut out = Recorded::default();
    let mut recs: BTreeMap<String, MeterRecord> = BTreeMap::new();
    let load = |id: &str| -> Result<MeterRecord, StoreError> {
        Ok(meter(store, org, id)?.unwrap_or_else(|| MeterRecord {
            org: org.to_owned(),
            meter_id: id.to_owned(),
            ..MeterRecord::default()
        }))
    };
    let mut batch = sled::Batch::default();
    let mut readings: Vec<_> = parsed.readings.iter().collect();
    readings.sort_by_key(|r| r.ts_ms);
    for r in readings {
        let rec = match recs.entry(r.meter_id.clone()) {
            btree_map::Entry::Occupied(e) => e.into_mut(),
            btree_map::Entry::Vacant(e) => e.insert(load(&r.meter_id)?),
        };
        let mut flags = extra_flags;
        if r.quantity == Quantity::Energy {
            let mut c = EnergyCounter::new(glitch_tolerance_kwh);
            if let Some(s) = rec.counter {
                // Restores the counter: its reference and its last timestamp.
                c.observe(s.last_ts_ms, s.high_kwh);
            }
            let step = c.observe(r.ts_ms, r.value);
            let prev = rec.counter.unwrap_or_default();
            match step {
                CounterStep::Stale => {
                    rec.stale += 1;
                    out.stale += 1;
                    continue;
                }
                CounterStep::Baseline | CounterStep::Increment { .. } => {
                    // Baseline or a rise: the total is the new reference.
                    rec.counter = Some(CounterState {
                        high_kwh: r.value,
                        last_kwh: r.value,
                        last_ts_ms: r.ts_ms,
                    });
                }
                CounterStep::Reset { previous_kwh, .. } => {
                    tracing::warn!(%org, meter = %r.meter_id, previous_kwh, now_kwh = r.value,
                        "energy counter reset detected: stored flagged");
                    flags |= FLAG_RESET;
                    rec.resets += 1;
                    out.resets += 1;
                    rec.counter = Some(CounterState {
                        high_kwh: r.value,
                        last_kwh: r.value,
                        last_ts_ms: r.ts_ms,
                    });
                }
                CounterStep::Glitch { drop_kwh } => {
                    tracing::info!(%org, meter = %r.meter_id, drop_kwh,
                        "energy counter glitch: stored flagged, not counted");
                    flags |= FLAG_GLITCH;
                    rec.glitches += 1;
                    out.glitches += 1;
                    rec.counter = Some(CounterState {
                        high_kwh: prev.high_kwh,
                        last_kwh: r.value,
                        last_ts_ms: r.ts_ms,
                    });
                }
            }
        }
        rec.units
            .insert(quantity_name(r.quantity).to_owned(), r.unit.to_string());
        rec.readings += 1;
        rec.last_ts_ms = rec.last_ts_ms.max(r.ts_ms);
        batch.insert(
            reading_key(org, &r.meter_id, r.quantity, r.ts_ms),
            encode_value(r.value, flags).to_vec(),
        );
        out.stored += 1;
    }
    for rej in &parsed.rejected {
        out.rejected += 1;
        if rej.meter_id.is_empty() {
            continue;
        }
        let rec = match recs.entry(rej.meter_id.clone()) {
            btree_map::Entry::Occupied(e) => e.into_mut(),
            btree_map::Entry::Vacant(e) => e.insert(load(&rej.meter_id)?),
        };
        *rec.rejected.entry(rej.reason.clone()).or_default() += 1;
    }
    store.meter_readings()?.apply_batch(batch)?;
    for rec in recs.values() {
        put_meter(store, rec)?;
    }
    Ok(out)
}

/// Stores a load curve (average W per step) as `power` readings of `meter_id`, at each
/// step's start, flagged [`FLAG_IMPORTED`]. Returns (new readings, already stored).
/// Importing the same file again stores nothing new.
pub fn import_load_curve(
    store: &Store,
    org: &str,
    meter_id: &str,
    curve: &veille_domain::rooms::loadcurve::LoadCurve,
) -> Result<(u64, u64), StoreError> {
    let tree = store.meter_readings()?;
    let mut batch = sled::Batch::default();
    let (mut new, mut present) = (0u64, 0u64);
    let mut last = 0;
    for p in &curve.points {
        let key = reading_key(org, meter_id, Quantity::Power, p.start_ms);
        if tree.contains_key(&key)? {
            present += 1;
        } else {
            new += 1;
        }
        last = last.max(p.start_ms);
        batch.insert(key, encode_value(p.power_w, FLAG_IMPORTED).to_vec());
    }
    let mut rec = meter(store, org, meter_id)?.unwrap_or_else(|| MeterRecord {
        org: org.to_owned(),
        meter_id: meter_id.to_owned(),
        ..MeterRecord::default()
    });
    rec.units.insert("power".into(), "W".into());
    rec.readings += new;
    rec.last_ts_ms = rec.last_ts_ms.max(last);
    tree.apply_batch(batch)?;
    put_meter(store, &rec)?;
    store.flush()?;
    Ok((new, present))
}

/// Daily means of a series by local date in `tz`, over `[first, last]`. A day counts
/// only when at least `min_hours` of its hours have a reading (a day with a few
/// readings is not one trustworthy number). Glitch-flagged values are left out.
pub fn daily_means(points: &[(i64, f64, u8)], tz: &TimeZone, min_hours: usize) -> DailySeries {
    let mut days: BTreeMap<Date, (f64, u64, HashSet<i64>)> = BTreeMap::new();
    for &(ts, v, flags) in points {
        if flags & FLAG_GLITCH != 0 {
            continue;
        }
        let Ok(t) = Timestamp::from_millisecond(ts) else {
            continue;
        };
        let d = t.to_zoned(tz.clone()).date();
        let e = days.entry(d).or_default();
        e.0 += v;
        e.1 += 1;
        e.2.insert(ts.div_euclid(3_600_000));
    }
    days.into_iter()
        .filter(|(_, (_, n, hours))| *n > 0 && hours.len() >= min_hours)
        .map(|(d, (sum, n, _))| (d, sum / n as f64))
        .collect()
}

/// Counters of the live meter path (MQTT).
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub stored: std::sync::atomic::AtomicU64,
    pub rejected: std::sync::atomic::AtomicU64,
    pub dropped: std::sync::atomic::AtomicU64,
    pub resets: std::sync::atomic::AtomicU64,
}

/// Meter payloads from MQTT → the store. One per collector, shared by the subscriber.
pub struct MeterSink {
    store: std::sync::Arc<Store>,
    orgs: HashSet<String>,
    tasmota: TasmotaMap,
    /// Meter id (from the Tasmota map) → its org.
    tasmota_org: HashMap<String, String>,
    tz: TimeZone,
    glitch_tolerance_kwh: f64,
    lock: Mutex<()>,
    pub counters: SinkCounters,
}

impl MeterSink {
    /// `orgs`: the configured org ids; `tz`: the zone of Tasmota's local time.
    pub fn new(
        store: std::sync::Arc<Store>,
        config: &MetersConfig,
        orgs: Vec<String>,
        tz: TimeZone,
    ) -> Result<Self, MeterStoreError> {
        let mut map = BTreeMap::new();
        let mut tasmota_org = HashMap::new();
        for m in &config.tasmota {
            if m.topic.is_empty() || m.meter.is_empty() {
                return Err(MeterStoreError::Config(
                    "every entry needs a topic and a meter".into(),
                ));
            }
            let org = if !m.org.is_empty() {
                m.org.clone()
            } else if orgs.len() == 1 {
                orgs[0].clone()
            } else {
                return Err(MeterStoreError::Config(format!(
                    "topic {:?}: several orgs are configured, set org",
                    m.topic
                )));
            };
            if !orgs.contains(&org) {
                return Err(MeterStoreError::Config(format!(
                    "topic {:?}: org {org:?} is not configured",
                    m.topic
                )));
            }
            if let Some(prev) = tasmota_org.insert(m.meter.clone(), org.clone())
                && prev != org
            {
                return Err(MeterStoreError::Config(format!(
                    "meter {:?} mapped under two orgs",
                    m.meter
                )));
            }
            map.insert(m.topic.clone(), m.meter.clone());
        }
        Ok(MeterSink {
            store,
            orgs: orgs.into_iter().collect(),
            tasmota: TasmotaMap(map),
            tasmota_org,
            tz,
            glitch_tolerance_kwh: config.glitch_tolerance_kwh,
            lock: Mutex::new(()),
            counters: SinkCounters::default(),
        })
    }

    /// Handles one meter message (`org` empty for Tasmota topics). Never panics on its
    /// content; a payload that cannot be read is counted and logged. Returns whether
    /// the store failed (the message should then not be acknowledged).
    pub fn handle(&self, org: &str, meter_id: &str, topic: &str, payload: &[u8]) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let parsed: Result<Vec<(String, Parsed)>, MeterError> = if org.is_empty() {
            let Some(t) = meters::tasmota_topic(topic) else {
                self.counters.dropped.fetch_add(1, Relaxed);
                return true;
            };
            meters::parse_tasmota_sensor(t, payload, &self.tz, |k| self.tasmota.lookup(k)).map(
                |p| {
                    // Split by org: each mapped meter has its own.
                    let mut by_org: BTreeMap<String, Parsed> = BTreeMap::new();
                    for r in p.readings {
                        let o = self
                            .tasmota_org
                            .get(&r.meter_id)
                            .cloned()
                            .unwrap_or_default();
                        by_org.entry(o).or_default().readings.push(r);
                    }
                    for r in p.rejected {
                        let o = self
                            .tasmota_org
                            .get(&r.meter_id)
                            .cloned()
                            .unwrap_or_default();
                        by_org.entry(o).or_default().rejected.push(r);
                    }
                    by_org.into_iter().collect()
                },
            )
        } else if !self.orgs.contains(org) {
            self.counters.dropped.fetch_add(1, Relaxed);
            tracing::warn!(org = ?org, "meter reading for an unknown org dropped");
            return true;
        } else {
            meters::parse_veille_json(meter_id, payload).map(|p| vec![(org.to_owned(), p)])
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                let n = self.counters.dropped.fetch_add(1, Relaxed) + 1;
                tracing::warn!(topic = ?crate::ingest::mqtt::broker::truncate(topic), error = %e,
                    total = n, "meter payload dropped");
                return true;
            }
        };
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        for (org, p) in parsed {
            for rej in &p.rejected {
                tracing::warn!(%org, meter = %rej.meter_id, field = %rej.field,
                    reason = %rej.reason, "meter value rejected: not stored");
            }
            if org.is_empty() {
                // Unmapped Tasmota sensors: only rejections.
                self.counters
                    .rejected
                    .fetch_add(p.rejected.len() as u64, Relaxed);
                continue;
            }
            match record(&self.store, &org, &p, self.glitch_tolerance_kwh, 0) {
                Ok(r) => {
                    self.counters.stored.fetch_add(r.stored, Relaxed);
                    self.counters.rejected.fetch_add(r.rejected, Relaxed);
                    self.counters.resets.fetch_add(r.resets, Relaxed);
                    tracing::debug!(%org, stored = r.stored, rejected = r.rejected,
                        "meter readings stored");
                }
                Err(e) => {
                    tracing::error!(%org, error = %e, "meter readings not stored");
                    return false;
                }
            }
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "meter readings not flushed");
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn sink(dir: &std::path::Path, cfg: MetersConfig) -> MeterSink {
        let store = Arc::new(Store::open(dir).unwrap());
        MeterSink::new(store, &cfg, vec!["acme".into()], TimeZone::UTC).unwrap()
    }

    #[test]
    fn veille_json_stored_with_units_and_unknown_unit_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path(), MetersConfig::default());
        assert!(s.handle(
            "acme",
            "m1",
            "veille/v1/acme/meters/m1",
            br#"{"ts":1714564800000,"power_w":1.5,"power_unit":"kW","temperature_c":21}"#
        ));
        assert!(s.handle(
            "acme",
            "m1",
            "veille/v1/acme/meters/m1",
            br#"{"ts":1714564810000,"power_w":3,"power_unit":"hp"}"#
        ));
        let p = readings(&s.store, "acme", "m1", Quantity::Power, 0, i64::MAX).unwrap();
        assert_eq!(p, vec![(1714564800000, 1500.0, 0)]);
        let rec = meter(&s.store, "acme", "m1").unwrap().unwrap();
        assert_eq!(rec.units["power"], "W");
        assert_eq!(rec.units["temperature"], "°C");
        assert_eq!(rec.rejected.values().sum::<u64>(), 1);
        // Unknown org and unreadable payloads are dropped, not stored.
        assert!(s.handle("evil", "m1", "veille/v1/evil/meters/m1", b"{}"));
        assert!(s.handle("acme", "m1", "veille/v1/acme/meters/m1", b"nope"));
        assert_eq!(
            s.counters
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn counter_reset_and_glitch_are_flagged_and_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = MetersConfig {
            tasmota: vec![TasmotaMapping {
                topic: "pow".into(),
                meter: "it".into(),
                org: String::new(),
            }],
            ..MetersConfig::default()
        };
        let pay = |t: &str, total: f64| {
            format!(r#"{{"Time":"{t}","ENERGY":{{"Total":{total},"Power":100}}}}"#)
        };
        {
            let s = sink(dir.path(), cfg.clone());
            for (t, v) in [
                ("2024-05-01T10:00:00", 100.0),
                ("2024-05-01T10:01:00", 100.5),
            ] {
                assert!(s.handle("", "", "tele/pow/SENSOR", pay(t, v).as_bytes()));
            }
        }
        // A new process: the counter state comes from the registry.
        let s = sink(dir.path(), cfg);
        for (t, v) in [
            ("2024-05-01T10:02:00", 100.495),
            ("2024-05-01T10:03:00", 0.2),
            ("2024-05-01T10:03:00", 0.2),
            ("2024-05-01T10:04:00", 0.4),
        ] {
            assert!(s.handle("", "", "tele/pow/SENSOR", pay(t, v).as_bytes()));
        }
        let e = readings(&s.store, "acme", "it", Quantity::Energy, 0, i64::MAX).unwrap();
        let flags: Vec<u8> = e.iter().map(|r| r.2).collect();
        assert_eq!(flags, vec![0, 0, FLAG_GLITCH, FLAG_RESET, 0]);
        let rec = meter(&s.store, "acme", "it").unwrap().unwrap();
        assert_eq!((rec.resets, rec.glitches, rec.stale), (1, 1, 1));
        assert_eq!(rec.counter.unwrap().last_kwh, 0.4);
        assert_eq!(rec.units["energy"], "kWh");
    }

    #[test]
    fn daily_means_need_enough_hours() {
        let tz = TimeZone::UTC;
        let day0 = 1_704_067_200_000i64; // 2024-01-01
        let mut pts: Vec<(i64, f64, u8)> =
            (0..48).map(|i| (day0 + i * 1_800_000, 10.0, 0)).collect();
        pts.push((day0 + 86_400_000, 99.0, 0)); // one reading on day 2
        let d = daily_means(&pts, &tz, 18);
        assert_eq!(d.len(), 1);
        assert_eq!(d.values().next(), Some(&10.0));
    }
}
