//! Meter readings in the store: the `meter_readings` series and the `meters` registry,
//! fed by MQTT (the ingest's meter sink) and by `import meters` (load curves).
//!
//! # Where they live
//! Readings are rows of the engine's `readings` table, keyed by (org, meter_id,
//! quantity, ts_ms), with the value and its flags; the registry is the `meters` kv tree
//! (`org \0 meter_id` → JSON [`MeterRecord`]).
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

use crate::store::engine::{Tree, Tx};
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

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        tree: Tree::Meters.name(),
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        reason: reason.into(),
    }
}

fn get_meter(
    tx: &mut dyn Tx,
    org: &str,
    meter_id: &str,
) -> Result<Option<MeterRecord>, StoreError> {
    let key = device_key(org, meter_id);
    match tx.kv_get(Tree::Meters, &key)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| corrupt(&key, &e.to_string())),
    }
}

/// One meter's registry entry.
pub fn meter(store: &Store, org: &str, meter_id: &str) -> Result<Option<MeterRecord>, StoreError> {
    store.read(|tx| get_meter(tx, org, meter_id))
}

/// Every meter of `org` (all orgs with `None`).
pub fn meters_of(store: &Store, org: Option<&str>) -> Result<Vec<MeterRecord>, StoreError> {
    let p = org.map(prefix).unwrap_or_default();
    store
        .read(|tx| tx.kv_scan(Tree::Meters, &p))?
        .iter()
        .map(|(k, v)| serde_json::from_slice(v).map_err(|e| corrupt(k, &e.to_string())))
        .collect()
}

fn put_meter(tx: &mut dyn Tx, rec: &MeterRecord) -> Result<(), StoreError> {
    let v = serde_json::to_vec(rec).map_err(|e| corrupt(b"", &e.to_string()))?;
    tx.kv_put(Tree::Meters, &device_key(&rec.org, &rec.meter_id), &v)
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
    store.read(|tx| tx.readings(org, meter_id, quantity_name(quantity), from_ms, to_ms))
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
    store.write(|tx| record_in(tx, org, parsed, glitch_tolerance_kwh, extra_flags))
}

fn record_in(
    tx: &mut dyn Tx,
    org: &str,
    parsed: &Parsed,
    glitch_tolerance_kwh: f64,
    extra_flags: u8,
) -> Result<Recorded, StoreError> {
    let mut out = Recorded::default();
    let mut recs: BTreeMap<String, MeterRecord> = BTreeMap::new();
    let load = |tx: &mut dyn Tx, id: &str| -> Result<MeterRecord, StoreError> {
        Ok(get_meter(tx, org, id)?.unwrap_or_else(|| MeterRecord {
            org: org.to_owned(),
            meter_id: id.to_owned(),
            ..MeterRecord::default()
        }))
    };
    let mut readings: Vec<_> = parsed.readings.iter().collect();
    readings.sort_by_key(|r| r.ts_ms);
    for r in readings {
        let rec = match recs.entry(r.meter_id.clone()) {
            btree_map::Entry::Occupied(e) => e.into_mut(),
            btree_map::Entry::Vacant(e) => e.insert(load(tx, &r.meter_id)?),
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
        tx.reading_put(
            org,
            &r.meter_id,
            quantity_name(r.quantity),
            (r.ts_ms, r.value, flags),
        )?;
        out.stored += 1;
    }
    for rej in &parsed.rejected {
        out.rejected += 1;
        if rej.meter_id.is_empty() {
            continue;
        }
        let rec = match recs.entry(rej.meter_id.clone()) {
            btree_map::Entry::Occupied(e) => e.into_mut(),
            btree_map::Entry::Vacant(e) => e.insert(load(tx, &rej.meter_id)?),
        };
        *rec.rejected.entry(rej.reason.clone()).or_default() += 1;
    }
    for rec in recs.values() {
        put_meter(tx, rec)?;
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
    let power = quantity_name(Quantity::Power);
    let counts = store.write(|tx| {
        let (mut new, mut present) = (0u64, 0u64);
        let mut last = 0;
        for p in &curve.points {
            if tx.reading_exists(org, meter_id, power, p.start_ms)? {
                present += 1;
            } else {
                new += 1;
            }
            last = last.max(p.start_ms);
            tx.reading_put(org, meter_id, power, (p.start_ms, p.power_w, FLAG_IMPORTED))?;
        }
        let mut rec = get_meter(tx, org, meter_id)?.unwrap_or_else(|| MeterRecord {
            org: org.to_owned(),
            meter_id: meter_id.to_owned(),
            ..MeterRecord::default()
        });
        rec.units.insert("power".into(), "W".into());
        rec.readings += new;
        rec.last_ts_ms = rec.last_ts_ms.max(last);
        put_meter(tx, &rec)?;
        Ok((new, present))
    })?;
    store.flush()?;
    Ok(counts)
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
