//! Meter readings: payloads from energy meters and temperature probes → typed readings
//! in canonical units (W, kWh, °C), and the cumulative-energy counter that turns kWh
//! totals into increments.
//!
//! Two payload shapes arrive over MQTT (issue 4):
//! - Veille's own JSON on `veille/v1/{org}/meters/{meter_id}` ([`parse_veille_json`]);
//! - Tasmota's telemetry on `tele/{topic}/SENSOR` ([`parse_tasmota_sensor`]), mapped to
//!   meter ids by configuration.
//!
//! Nothing is silently taken as truth: a value whose unit we do not know, or that is not
//! a finite number, comes back as a [`Rejected`] entry with its reason, next to the good
//! readings of the same payload. A payload that cannot be read at all (not JSON, no
//! timestamp) is an error. Energy totals go through [`EnergyCounter`], which flags counter
//! resets and glitches instead of storing negative or double-counted energy.
//!
//! Pure: bytes in, values out; time zones come from `jiff`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::{Map, Value};

/// What a reading measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Instantaneous (or short-average) active power.
    Power,
    /// A cumulative energy counter (never an increment: see [`EnergyCounter`]).
    Energy,
    Temperature,
}

/// The canonical unit of each [`Quantity`]: every [`Reading`] is converted to it, so a
/// series never mixes W and kW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Unit {
    #[serde(rename = "W")]
    W,
    #[serde(rename = "kWh")]
    KWh,
    #[serde(rename = "°C")]
    Celsius,
}

impl Quantity {
    pub fn unit(self) -> Unit {
        match self {
            Quantity::Power => Unit::W,
            Quantity::Energy => Unit::KWh,
            Quantity::Temperature => Unit::Celsius,
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unit::W => "W",
            Unit::KWh => "kWh",
            Unit::Celsius => "°C",
        })
    }
}

/// One accepted value, in the canonical unit of its quantity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub meter_id: String,
    /// Unix milliseconds (UTC).
    pub ts_ms: i64,
    pub quantity: Quantity,
    pub value: f64,
    pub unit: Unit,
}

impl Reading {
    fn new(meter_id: &str, ts_ms: i64, quantity: Quantity, value: f64) -> Self {
        Reading {
            meter_id: meter_id.to_owned(),
            ts_ms,
            quantity,
            value,
            unit: quantity.unit(),
        }
    }
}

/// A value that was in the payload but is not stored as a reading: the caller counts and
/// logs it (never stores it as truth).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// The meter it would have belonged to; empty when a Tasmota sensor is not mapped.
    pub meter_id: String,
    pub ts_ms: i64,
    /// The payload field, e.g. `power_w` or `DS18B20.Temperature`.
    pub field: String,
    pub reason: String,
}

/// What one payload yielded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Parsed {
    pub readings: Vec<Reading>,
    pub rejected: Vec<Rejected>,
}

/// A payload that cannot be read at all (nothing in it is usable).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeterError {
    #[error("payload is not JSON: {0}")]
    Json(String),
    #[error("payload is not a JSON object")]
    NotObject,
    #[error("missing {0:?}: a reading without a timestamp cannot be placed in a series")]
    MissingTime(&'static str),
    #[error("bad {field:?} {value}: {reason}")]
    BadTime {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("Tasmota topic {0:?} is not mapped to any meter")]
    UnmappedTopic(String),
}

/// Timestamps before this (2001-09-09) are refused: a device that sends Unix *seconds*
/// instead of milliseconds, or a Tasmota whose clock is not yet set by NTP (it reports
/// 1970-01-01), would otherwise land decades in the past.
pub const MIN_PLAUSIBLE_TS_MS: i64 = 1_000_000_000_000;

fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, MeterError> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(MeterError::NotObject),
        Err(e) => Err(MeterError::Json(e.to_string())),
    }
}

/// Unit overrides accepted in Veille JSON, as (spelling, factor to canonical, offset).
/// Temperatures need an affine conversion; powers and energies only a factor.
fn convert(quantity: Quantity, unit: &str, value: f64) -> Option<f64> {
    let u = unit.trim();
    match quantity {
        Quantity::Power => match u {
            "W" | "w" => Some(value),
            "kW" | "kw" => Some(value * 1_000.0),
            "MW" => Some(value * 1_000_000.0),
            _ => None,
        },
        Quantity::Energy => match u {
            "Wh" | "wh" => Some(value / 1_000.0),
            "kWh" | "kwh" => Some(value),
            "MWh" => Some(value * 1_000.0),
            _ => None,
        },
        Quantity::Temperature => match u {
            "C" | "°C" | "c" => Some(value),
            "F" | "°F" | "f" => Some((value - 32.0) * 5.0 / 9.0),
            "K" => Some(value - 273.15),
            _ => None,
        },
    }
}

/// Parses a Veille meter payload (topic `veille/v1/{org}/meters/{meter_id}`; the caller
/// takes `meter_id` from the topic).
///
/// Accepted, any subset of the values:
/// ```json
/// {"ts": 1714564800000, "power_w": 850.0, "energy_kwh": 12345.6, "temperature_c": 21.5,
///  "power_unit": "kW", "energy_unit": "Wh", "temperature_unit": "F"}
/// ```
/// - `ts` (required): Unix milliseconds, an integer ≥ [`MIN_PLAUSIBLE_TS_MS`].
/// - Each value's default unit is its name's suffix (W, kWh, °C). An optional
///   `*_unit` says what the number really is, for devices that cannot rescale:
///   power `W`, `kW`, `MW`; energy `Wh`, `kWh`, `MWh`; temperature `C`/`°C`, `F`/`°F`,
///   `K`. Values are converted to the canonical unit.
/// - A value that is `null` is absent. A value that is not a finite number, or whose
///   `*_unit` is unknown, is [`Rejected`] with the reason; the payload's other values
///   are still read.
/// - Unknown fields are ignored (newer devices may send more).
pub fn parse_veille_json(meter_id: &str, payload: &[u8]) -> Result<Parsed, MeterError> {
    let obj = parse_object(payload)?;
    let ts_ms = match obj.get("ts") {
        None | Some(Value::Null) => return Err(MeterError::MissingTime("ts")),
        Some(v) => match v.as_i64() {
            Some(ms) if ms >= MIN_PLAUSIBLE_TS_MS => ms,
            Some(ms) => {
                return Err(MeterError::BadTime {
                    field: "ts",
                    value: ms.to_string(),
                    reason: "before 2001: expected Unix milliseconds (seconds sent?)".into(),
                });
            }
            None => {
                return Err(MeterError::BadTime {
                    field: "ts",
                    value: v.to_string(),
                    reason: "expected an integer of Unix milliseconds".into(),
                });
            }
        },
    };
    let mut out = Parsed::default();
    for (field, unit_field, quantity) in [
        ("power_w", "power_unit", Quantity::Power),
        ("energy_kwh", "energy_unit", Quantity::Energy),
        ("temperature_c", "temperature_unit", Quantity::Temperature),
    ] {
        let raw = match obj.get(field) {
            None | Some(Value::Null) => continue,
            Some(v) => v,
        };
        let reject = |reason: String| Rejected {
            meter_id: meter_id.to_owned(),
            ts_ms,
            field: field.to_owned(),
            reason,
        };
        let Some(value) = raw.as_f64().filter(|v| v.is_finite()) else {
            out.rejected
                .push(reject(format!("{raw} is not a finite number")));
            continue;
        };
        let unit = match obj.get(unit_field) {
            None | Some(Value::Null) => quantity.unit().to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                out.rejected
                    .push(reject(format!("{unit_field} = {other} is not a unit name")));
                continue;
            }
        };
        match convert(quantity, &unit, value) {
            Some(v) if v.is_finite() => out
                .readings
                .push(Reading::new(meter_id, ts_ms, quantity, v)),
            // A finite number can overflow once scaled (1e308 kW).
            Some(_) => out.rejected.push(reject(format!(
                "{raw} {unit} is out of range in {}",
                quantity.unit()
            ))),
            None => out.rejected.push(reject(format!(
                "unknown unit {unit:?} in {unit_field}: not stored"
            ))),
        }
    }
    Ok(out)
}

/// The Tasmota topic in `tele/{topic}/SENSOR`, or `None` for any other topic. Tasmota's
/// default full topic is `%prefix%/%topic%/`; a custom full topic with more levels is
/// not recognised here.
pub fn tasmota_topic(mqtt_topic: &str) -> Option<&str> {
    let rest = mqtt_topic.strip_prefix("tele/")?;
    let topic = rest.strip_suffix("/SENSOR")?;
    (!topic.is_empty() && !topic.contains('/')).then_some(topic)
}

/// Tasmota topic → meter ids, from configuration. Keys are either `topic` (the device's
/// energy monitor) or `topic/Sensor` (one sensor of it: `plug1/DS18B20`,
/// `plug1/DS18B20-2`, `plug1/ENERGY`).
///
/// Temperatures are only taken from sensors mapped by `topic/Sensor`: many plugs report
/// an internal temperature (Shelly Plug S `ANALOG`, the `ESP32` chip), and that must not
/// become a room's inlet temperature because the plug was mapped for its energy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TasmotaMap(pub BTreeMap<String, String>);

impl TasmotaMap {
    pub fn lookup(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Parses Tasmota's `tele/{topic}/SENSOR` telemetry.
///
/// Read from the payload:
/// - `Time`: Tasmota's local time, normally without a zone (`2024-05-01T12:00:00`); it
///   is interpreted in `tz`, the zone the device is set to (a fixed offset,
///   `TimeZone::fixed`, or an IANA zone so DST is followed; a time repeated at the DST
///   fall-back takes the earlier instant). With `SetOption52 1` Tasmota appends the
///   offset (`2024-05-01T12:00:00+02:00`): then the offset in the payload wins. A
///   time before 2001 means the clock is not set yet (Tasmota reports
///   `1970-01-01T00:33:28` until NTP answers): the payload is refused.
/// - `ENERGY.Power` (W) and `ENERGY.Total` (kWh, cumulative: feed it to
///   [`EnergyCounter`]); meter id from `meter_for("{topic}/ENERGY")` or else
///   `meter_for("{topic}")`. Multi-channel devices send arrays (`"Power":[10,20]`):
///   the channels are summed, the meter being the device. Tasmota's other energy fields
///   (Today, Yesterday, Period, Voltage, Current, Factor…) are derived or not needed
///   and are ignored.
/// - Every other object with a `Temperature` (`DS18B20`, `BME280`, `SI7021`,
///   `DS18B20-1`…), in `TempUnit` (`C` or `F`, converted to °C; absent = `C`), for
///   sensors mapped by `meter_for("{topic}/{Sensor}")`. An unmapped sensor or an
///   unknown `TempUnit` gives a [`Rejected`] entry.
///
/// `topic` is the `{topic}` level (see [`tasmota_topic`]). A topic for which nothing in
/// the payload is mapped is an error ([`MeterError::UnmappedTopic`]), so the caller can
/// count unconfigured devices.
pub fn parse_tasmota_sensor(
    topic: &str,
    payload: &[u8],
    tz: &TimeZone,
    meter_for: impl Fn(&str) -> Option<String>,
) -> Result<Parsed, MeterError> {
    let obj = parse_object(payload)?;
    let ts_ms = tasmota_time(&obj, tz)?;
    let mut out = Parsed::default();
    let mut mapped_any = false;

    if let Some(Value::Object(energy)) = obj.get("ENERGY") {
        let meter = meter_for(&format!("{topic}/ENERGY")).or_else(|| meter_for(topic));
        if let Some(meter) = meter {
            mapped_any = true;
            for (field, quantity) in [("Power", Quantity::Power), ("Total", Quantity::Energy)] {
                let Some(raw) = energy.get(field) else {
                    continue;
                };
                match sum_channels(raw) {
                    Some(v) => out.readings.push(Reading::new(&meter, ts_ms, quantity, v)),
                    None => out.rejected.push(Rejected {
                        meter_id: meter.clone(),
                        ts_ms,
                        field: format!("ENERGY.{field}"),
                        reason: format!(
                            "{raw} is not a number or an array of numbers with a finite sum"
                        ),
                    }),
                }
            }
        }
    }

    let temp_unit = match obj.get("TempUnit") {
        None => Some("C".to_owned()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => None,
    };
    for (sensor, body) in &obj {
        let Some(raw) = body.as_object().and_then(|b| b.get("Temperature")) else {
            continue;
        };
        let field = format!("{sensor}.Temperature");
        let Some(meter) = meter_for(&format!("{topic}/{sensor}")) else {
            out.rejected.push(Rejected {
                meter_id: String::new(),
                ts_ms,
                field,
                reason: format!("sensor {topic}/{sensor} is not mapped to a meter"),
            });
            continue;
        };
        mapped_any = true;
        let reject = |reason: String| Rejected {
            meter_id: meter.clone(),
            ts_ms,
            field: field.clone(),
            reason,
        };
        let Some(value) = raw.as_f64().filter(|v| v.is_finite()) else {
            out.rejected
                .push(reject(format!("{raw} is not a finite number")));
            continue;
        };
        let converted = match temp_unit.as_deref() {
            Some(u @ ("C" | "F")) => convert(Quantity::Temperature, u, value),
            _ => None,
        };
        match converted {
            Some(c) if c.is_finite() => {
                out.readings
                    .push(Reading::new(&meter, ts_ms, Quantity::Temperature, c))
            }
            Some(_) => out
                .rejected
                .push(reject(format!("{raw} is out of range in °C"))),
            None => out.rejected.push(reject(format!(
                "unknown TempUnit {}: not stored",
                obj.get("TempUnit")
                    .map(Value::to_string)
                    .unwrap_or_default()
            ))),
        }
    }
    if !mapped_any {
        return Err(MeterError::UnmappedTopic(topic.to_owned()));
    }
    Ok(out)
}

/// The sum of a value or an array of channels; `None` if any is not a number or the sum
/// overflows (two channels of 1e308 W).
fn sum_channels(raw: &Value) -> Option<f64> {
    match raw {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_f64().filter(|x| x.is_finite()))
            .sum::<Option<f64>>()
            .filter(|s| !items.is_empty() && s.is_finite()),
        v => v.as_f64().filter(|x| x.is_finite()),
    }
}

fn tasmota_time(obj: &Map<String, Value>, tz: &TimeZone) -> Result<i64, MeterError> {
    let raw = match obj.get("Time") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(MeterError::BadTime {
                field: "Time",
                value: other.to_string(),
                reason: "expected a string".into(),
            });
        }
        None => return Err(MeterError::MissingTime("Time")),
    };
    let bad = |reason: String| MeterError::BadTime {
        field: "Time",
        value: raw.to_owned(),
        reason,
    };
    // With an explicit offset (SetOption52), the payload is unambiguous.
    let ts = match raw.parse::<Timestamp>() {
        Ok(ts) => ts,
        Err(_) => {
            let dt: DateTime = raw
                .parse()
                .map_err(|e: jiff::Error| bad(format!("not an ISO 8601 local time: {e}")))?;
            tz.to_ambiguous_zoned(dt)
                .compatible()
                .map_err(|e| bad(e.to_string()))?
                .timestamp()
        }
    };
    let ms = ts.as_millisecond();
    if ms < MIN_PLAUSIBLE_TS_MS {
        return Err(bad("before 2001: the device clock is not set (NTP)".into()));
    }
    Ok(ms)
}

/// What one cumulative reading means for a meter's energy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CounterStep {
    /// The first reading of this meter: a reference, no energy yet.
    Baseline,
    /// The counter rose (or stayed): `kwh` ≥ 0 consumed since the previous reading.
    Increment { kwh: f64 },
    /// The counter dropped by more than the glitch tolerance: the meter was reset (power
    /// loss without saved total, replacement, `EnergyTotal 0`). The energy since the
    /// reset is taken as the new value, assuming it restarted from 0; the energy between
    /// the last reading and the reset is lost. Flagged.
    Reset { kwh: f64, previous_kwh: f64 },
    /// The counter dropped by at most the tolerance: a read glitch (rounding, a meter
    /// that restores its total from flash a little behind). No energy is counted and the
    /// reference stays at the highest value, so when the counter recovers only the
    /// energy above that high-water mark is counted: never twice. If the counter never
    /// recovers, at most the tolerance is under-counted. Flagged.
    Glitch { drop_kwh: f64 },
    /// Not after the previous reading (same or older timestamp: a retransmission or
    /// out-of-order delivery): ignored.
    Stale,
}

impl CounterStep {
    /// The energy to add for this reading.
    pub fn kwh(&self) -> f64 {
        match *self {
            CounterStep::Increment { kwh } | CounterStep::Reset { kwh, .. } => kwh,
            _ => 0.0,
        }
    }

    /// True where the reading must be flagged rather than taken silently.
    pub fn is_flagged(&self) -> bool {
        matches!(self, CounterStep::Reset { .. } | CounterStep::Glitch { .. })
    }
}

/// One meter's cumulative energy counter (kWh totals → increments). Feed readings in
/// time order; keep one per meter.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyCounter {
    glitch_tolerance_kwh: f64,
    /// The reference: the highest total seen since the last reset.
    high_kwh: Option<f64>,
    last_ts_ms: Option<i64>,
}

impl EnergyCounter {
    /// Drops up to `glitch_tolerance_kwh` are glitches, larger ones resets. A good
    /// tolerance is a few counter resolutions (Tasmota reports 0.001 kWh; 0.01 is safe):
    /// small enough that a real reset (to 0, or near it) is never mistaken for one.
    pub fn new(glitch_tolerance_kwh: f64) -> Self {
        EnergyCounter {
            glitch_tolerance_kwh: glitch_tolerance_kwh.max(0.0),
            high_kwh: None,
            last_ts_ms: None,
        }
    }

    pub fn observe(&mut self, ts_ms: i64, total_kwh: f64) -> CounterStep {
        if self.last_ts_ms.is_some_and(|last| ts_ms <= last) {
            return CounterStep::Stale;
        }
        self.last_ts_ms = Some(ts_ms);
        let Some(high) = self.high_kwh else {
            self.high_kwh = Some(total_kwh);
            return CounterStep::Baseline;
        };
        if total_kwh >= high {
            self.high_kwh = Some(total_kwh);
            return CounterStep::Increment {
                kwh: total_kwh - high,
            };
        }
        let drop_kwh = high - total_kwh;
        if drop_kwh <= self.glitch_tolerance_kwh {
            CounterStep::Glitch { drop_kwh }
        } else {
            self.high_kwh = Some(total_kwh);
            CounterStep::Reset {
                kwh: total_kwh.max(0.0),
                previous_kwh: high,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `meter_json` fuzz target's invariant (every reading finite) caught it: a
    /// finite value that overflows once converted (1e308 kW, -1.7e308 °F) or summed
    /// over channels was stored as an infinite reading.
    #[test]
    fn values_that_overflow_once_converted_are_rejected() {
        let p = parse_veille_json(
            "m",
            br#"{"ts":1714564800000,"power_w":1e308,"power_unit":"kW","temperature_c":-1.7e308,"temperature_unit":"F","energy_kwh":2}"#,
        )
        .unwrap();
        assert_eq!(p.readings.len(), 1, "{p:?}");
        assert_eq!(p.readings[0].quantity, Quantity::Energy);
        assert_eq!(p.rejected.len(), 2, "{p:?}");
        assert!(p.rejected[0].reason.contains("out of range"), "{p:?}");

        let map = |k: &str| (k == "plug1" || k == "plug1/DS18B20").then(|| k.to_owned());
        let p = parse_tasmota_sensor(
            "plug1",
            br#"{"Time":"2024-05-01T12:00:00Z","ENERGY":{"Power":[1e308,1e308],"Total":1},"DS18B20":{"Temperature":-1.7e308},"TempUnit":"F"}"#,
            &TimeZone::UTC,
            map,
        )
        .unwrap();
        assert!(p.readings.iter().all(|r| r.value.is_finite()), "{p:?}");
        assert_eq!(p.readings.len(), 1, "{p:?}");
        assert_eq!(p.rejected.len(), 2, "{p:?}");
    }

    fn map(pairs: &[(&str, &str)]) -> TasmotaMap {
        TasmotaMap(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn veille_json_any_subset_in_canonical_units() {
        let p = parse_veille_json(
            "m1",
            br#"{"ts":1714564800000,"power_w":850.5,"energy_kwh":12.5,"extra":"ignored"}"#,
        )
        .unwrap();
        assert!(p.rejected.is_empty());
        assert_eq!(
            p.readings,
            vec![
                Reading::new("m1", 1714564800000, Quantity::Power, 850.5),
                Reading::new("m1", 1714564800000, Quantity::Energy, 12.5),
            ]
        );
        assert_eq!(p.readings[1].unit.to_string(), "kWh");

        let t = parse_veille_json("t", br#"{"ts":1714564800000,"temperature_c":21}"#).unwrap();
        assert_eq!(t.readings[0].unit, Unit::Celsius);
        assert_eq!(t.readings[0].value, 21.0);
    }

    #[test]
    fn veille_json_unit_overrides_convert() {
        let p = parse_veille_json(
            "m1",
            br#"{"ts":1714564800000,"power_w":1.2,"power_unit":"kW",
                 "energy_kwh":1500,"energy_unit":"Wh",
                 "temperature_c":77,"temperature_unit":"F"}"#,
        )
        .unwrap();
        let v: Vec<f64> = p.readings.iter().map(|r| r.value).collect();
        assert_eq!(v[0], 1200.0);
        assert_eq!(v[1], 1.5);
        assert!((v[2] - 25.0).abs() < 1e-9);
    }

    #[test]
    fn unknown_unit_or_non_number_is_rejected_not_stored() {
        let p = parse_veille_json(
            "m1",
            br#"{"ts":1714564800000,"power_w":3,"power_unit":"hp",
                 "energy_kwh":"12","temperature_c":null}"#,
        )
        .unwrap();
        assert!(p.readings.is_empty());
        assert_eq!(p.rejected.len(), 2);
        assert_eq!(p.rejected[0].field, "power_w");
        assert!(p.rejected[0].reason.contains("unknown unit \"hp\""));
        assert_eq!(p.rejected[1].field, "energy_kwh");
    }

    #[test]
    fn veille_json_needs_a_millisecond_timestamp() {
        assert_eq!(
            parse_veille_json("m", br#"{"power_w":1}"#),
            Err(MeterError::MissingTime("ts"))
        );
        // Seconds instead of milliseconds.
        assert!(matches!(
            parse_veille_json("m", br#"{"ts":1714564800,"power_w":1}"#),
            Err(MeterError::BadTime { .. })
        ));
        assert!(matches!(
            parse_veille_json("m", b"[1,2]"),
            Err(MeterError::NotObject)
        ));
        assert!(matches!(
            parse_veille_json("m", b"{nope"),
            Err(MeterError::Json(_))
        ));
    }

    #[test]
    fn tasmota_topic_shape() {
        assert_eq!(tasmota_topic("tele/plug1/SENSOR"), Some("plug1"));
        assert_eq!(tasmota_topic("tele/plug1/STATE"), None);
        assert_eq!(tasmota_topic("tele/a/b/SENSOR"), None);
        assert_eq!(tasmota_topic("stat/plug1/SENSOR"), None);
    }

    /// A Sonoff POW R2's `tele/.../SENSOR` payload as published in Richard N.'s blog
    /// post "Collecting Sonoff Pow data in Home Assistant" (2019-04-02, richardn.ca),
    /// with Tasmota's `TotalStartTime` and `Period` fields.
    const POW_R2: &str = r#"{"Time":"2019-04-02T19:31:06","ENERGY":{"TotalStartTime":"2019-03-19T21:10:01","Total":1.368,"Yesterday":0.001,"Today":0.397,"Period":0,"Power":0,"ApparentPower":0,"ReactivePower":0,"Factor":0.00,"Voltage":0,"Current":0.000}}"#;

    /// A Shelly Plug S on Tasmota, from a public decoder's comment (GitHub,
    /// `TasmotaPlugS` class): `ANALOG.Temperature` is the plug's internal sensor.
    const PLUG_S: &str = r#"{"Time":"2024-04-16T09:15:03","ANALOG":{"Temperature":28.6},"ENERGY":{"TotalStartTime":"2023-11-13T19:36:00","Total":235.645,"Yesterday":0.000,"Today":0.015,"Period":2,"Power":24,"ApparentPower":24,"ReactivePower":0,"Factor":1,"Voltage":237,"Current":0.099},"TempUnit":"C"}"#;

    #[test]
    fn real_tasmota_energy_payload_with_local_time() {
        let paris_winter = TimeZone::fixed(jiff::tz::offset(2));
        let m = map(&[("pow", "it-load")]);
        let p =
            parse_tasmota_sensor("pow", POW_R2.as_bytes(), &paris_winter, |k| m.lookup(k)).unwrap();
        // 19:31:06 at UTC+2 = 17:31:06Z.
        let ts: Timestamp = "2019-04-02T17:31:06Z".parse().unwrap();
        assert_eq!(
            p.readings,
            vec![
                Reading::new("it-load", ts.as_millisecond(), Quantity::Power, 0.0),
                Reading::new("it-load", ts.as_millisecond(), Quantity::Energy, 1.368),
            ]
        );
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn tasmota_time_in_an_iana_zone_follows_dst() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let m = map(&[("plug", "m")]);
        let p = parse_tasmota_sensor("plug", PLUG_S.as_bytes(), &tz, |k| m.lookup(k)).unwrap();
        let ts: Timestamp = "2024-04-16T07:15:03Z".parse().unwrap(); // CEST, UTC+2
        assert!(p.readings.iter().all(|r| r.ts_ms == ts.as_millisecond()));
        assert_eq!(p.readings[0].value, 24.0);
        assert_eq!(p.readings[1].value, 235.645);
        // The plug's internal temperature is not mapped: flagged, not stored.
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].field, "ANALOG.Temperature");
    }

    /// `{"DS18B20":{"Temperature":77},"TempUnit":"F"}` as in a public Tasmota
    /// HomeKit bridge's tests (GitHub, OpenHAP `Tasmota::Sensor`, "77F = 25C"),
    /// here with the `Time` field Tasmota always sends.
    #[test]
    fn tasmota_fahrenheit_is_converted_and_sensors_map_separately() {
        let payload =
            br#"{"Time":"2024-01-01T00:00:00","DS18B20":{"Temperature":77},"TempUnit":"F"}"#;
        let m = map(&[("room1", "total"), ("room1/DS18B20", "inlet")]);
        let p = parse_tasmota_sensor("room1", payload, &TimeZone::UTC, |k| m.lookup(k)).unwrap();
        assert_eq!(p.readings.len(), 1);
        let r = &p.readings[0];
        assert_eq!(
            (r.meter_id.as_str(), r.quantity),
            ("inlet", Quantity::Temperature)
        );
        assert!((r.value - 25.0).abs() < 1e-9);
        assert_eq!(r.ts_ms, 1_704_067_200_000);

        let kelvin =
            br#"{"Time":"2024-01-01T00:00:00","DS18B20":{"Temperature":298},"TempUnit":"K"}"#;
        let p = parse_tasmota_sensor("room1", kelvin, &TimeZone::UTC, |k| m.lookup(k)).unwrap();
        assert!(p.readings.is_empty());
        assert!(p.rejected[0].reason.contains("unknown TempUnit"));
    }

    #[test]
    fn tasmota_explicit_offset_and_multichannel_power() {
        let payload = br#"{"Time":"2024-05-01T12:00:00+02:00","ENERGY":{"Total":12.345,"Power":[85,15],"Voltage":230,"Current":0.4}}"#;
        let m = map(&[("dual/ENERGY", "m2")]);
        // The payload's offset wins over the configured zone.
        let p = parse_tasmota_sensor("dual", payload, &TimeZone::UTC, |k| m.lookup(k)).unwrap();
        let ts: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        assert_eq!(p.readings[0].ts_ms, ts.as_millisecond());
        assert_eq!(p.readings[0].value, 100.0);
        assert_eq!(p.readings[1].value, 12.345);
    }

    /// A Sonoff publishing before NTP sync (payload from a public GitHub script's
    /// comment: `tele/tasmota_5014E2/SENSOR`, Time 1970-01-01T00:33:28).
    #[test]
    fn tasmota_without_clock_or_mapping_is_refused() {
        let payload = br#"{"Time":"1970-01-01T00:33:28","ENERGY":{"TotalStartTime":"2021-07-10T11:54:41","Total":0.003,"Yesterday":0.000,"Today":0.003,"Period":0,"Power":22,"ApparentPower":24,"ReactivePower":11,"Factor":0.90,"Voltage":246,"Current":0.098}}"#;
        let m = map(&[("tasmota_5014E2", "m")]);
        assert!(matches!(
            parse_tasmota_sensor("tasmota_5014E2", payload, &TimeZone::UTC, |k| m.lookup(k)),
            Err(MeterError::BadTime { field: "Time", .. })
        ));
        let ok = POW_R2.as_bytes();
        assert_eq!(
            parse_tasmota_sensor("other", ok, &TimeZone::UTC, |k| m.lookup(k)),
            Err(MeterError::UnmappedTopic("other".into()))
        );
        assert!(matches!(
            parse_tasmota_sensor("x", br#"{"ENERGY":{}}"#, &TimeZone::UTC, |k| m.lookup(k)),
            Err(MeterError::MissingTime("Time"))
        ));
    }

    #[test]
    fn counter_increments_resets_and_glitches() {
        let mut c = EnergyCounter::new(0.01);
        assert_eq!(c.observe(1_000, 100.0), CounterStep::Baseline);
        assert_eq!(c.observe(2_000, 100.5), CounterStep::Increment { kwh: 0.5 });
        // A small drop, then recovery: nothing counted twice.
        let g = c.observe(3_000, 100.495);
        assert!(matches!(g, CounterStep::Glitch { .. }) && g.is_flagged());
        assert_eq!(g.kwh(), 0.0);
        assert_eq!(c.observe(4_000, 100.7).kwh(), 100.7 - 100.5);
        // A reset to near 0: the increment is the value since the reset.
        let r = c.observe(5_000, 0.2);
        assert_eq!(
            r,
            CounterStep::Reset {
                kwh: 0.2,
                previous_kwh: 100.7
            }
        );
        assert!(r.is_flagged());
        assert_eq!(c.observe(6_000, 0.5).kwh(), 0.5 - 0.2);
        // Retransmitted or out-of-order readings are ignored.
        assert_eq!(c.observe(6_000, 0.5), CounterStep::Stale);
        assert_eq!(c.observe(1_000, 99.0), CounterStep::Stale);
        assert_eq!(c.observe(7_000, 0.6).kwh(), 0.6 - 0.5);
    }

    #[test]
    fn counter_total_matches_the_meter_across_a_glitch() {
        let mut c = EnergyCounter::new(0.01);
        let totals = [10.0, 10.2, 10.195, 10.198, 10.4, 10.6];
        let sum: f64 = totals
            .iter()
            .enumerate()
            .map(|(i, &t)| c.observe(i as i64, t).kwh())
            .sum();
        assert!((sum - 0.6).abs() < 1e-9, "{sum}");
    }
}
