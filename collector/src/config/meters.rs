//! `[meters]`: Tasmota topics mapped to meters, and the counter's glitch tolerance.

use serde::Deserialize;

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
