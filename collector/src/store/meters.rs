//! Meter readings in the store: the `meter_readings` series and the `meters` registry,
//! fed by MQTT (the ingest's meter sink) and by `import meters` (load curves).
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

use std::collections::{BTreeMap, HashSet, btree_map};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, device_key, prefix};
use veille_domain::rooms::meters::{CounterStep, EnergyCounter, Parsed, Quantity};
use veille_domain::rooms::setpoint::DailySeries;

/// The counter value is a reset: the meter restarted from (near) 0.
pub const FLAG_RESET: u8 = 1;
/// The counter dropped by less than the glitch tolerance: not counted as energy.
pub const FLAG_GLITCH: u8 = 2;
/// Imported from a file (`import meters`), not received live.
pub const FLAG_IMPORTED: u8 = 4;

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
