//! The live meter path: an MQTT meter message (Veille JSON or a mapped Tasmota
//! `SENSOR`) → parsed readings → the energy counter → the store. Parse errors and
//! unknown units are counted and logged, never stored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use jiff::tz::TimeZone;
use veille_domain::rooms::meters::{self, MeterError, Parsed, TasmotaMap};

use crate::config::meters::MetersConfig;
use crate::store::Store;
use crate::store::meters::*;

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
    use veille_domain::rooms::meters::Quantity;

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
            tasmota: vec![crate::config::meters::TasmotaMapping {
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
