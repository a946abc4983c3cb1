//! Meter payloads from the MQTT broker: Veille's JSON (`veille/v1/{org}/meters/{id}`)
//! and Tasmota's `tele/{topic}/SENSOR`, read in a fixed offset and in an IANA zone (DST
//! gaps and folds). Whatever a device sends, a reading is stored only with a plausible
//! time, a finite value in its quantity's canonical unit, and a meter id the caller gave
//! (the topic's, or one from the mapping): never one made up from the payload.
#![no_main]

use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use veille_domain::rooms::meters::{
    MIN_PLAUSIBLE_TS_MS, Parsed, parse_tasmota_sensor, parse_veille_json,
};

const METER: &str = "room1-pdu";

/// The mapping a site would configure: the plug's energy monitor and one probe.
fn meter_for(key: &str) -> Option<String> {
    match key {
        "plug1" => Some("plug1-energy".to_owned()),
        "plug1/DS18B20" => Some("room1-inlet".to_owned()),
        _ => None,
    }
}

fn check(parsed: &Parsed, ids: &[&str]) {
    for r in &parsed.readings {
        assert!(r.ts_ms >= MIN_PLAUSIBLE_TS_MS, "implausible time {r:?}");
        assert!(r.value.is_finite(), "non-finite reading {r:?}");
        assert_eq!(r.unit, r.quantity.unit(), "unit not canonical {r:?}");
        assert!(ids.contains(&r.meter_id.as_str()), "unknown meter {r:?}");
    }
    for r in &parsed.rejected {
        assert!(r.ts_ms >= MIN_PLAUSIBLE_TS_MS, "implausible time {r:?}");
        assert!(
            r.meter_id.is_empty() || ids.contains(&r.meter_id.as_str()),
            "unknown meter {r:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_veille_json(METER, data) {
        check(&parsed, &[METER]);
    }
    let paris = TimeZone::get("Europe/Paris").unwrap_or(TimeZone::UTC);
    for tz in [TimeZone::fixed(jiff::tz::offset(2)), paris] {
        if let Ok(parsed) = parse_tasmota_sensor("plug1", data, &tz, meter_for) {
            check(&parsed, &["plug1-energy", "room1-inlet"]);
        }
    }
});
