//! A grid carbon-intensity file (`import carbon FILE`: an éCO2mix download, an ODRÉ
//! CSV or a plain two-column file), read in Europe/Paris as for RTE's files: one mean
//! intensity per UTC hour, sorted, on hour boundaries, within the documented 0–2000
//! g/kWh, from no more hours than samples; or an error naming a line and column.
#![no_main]

use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use veille_domain::energy::intensity::{IntensityError, MAX_G_PER_KWH, parse};
use veille_proto::units::MS_PER_HOUR;

fuzz_target!(|data: &[u8]| {
    let tz = TimeZone::get("Europe/Paris").unwrap_or(TimeZone::UTC);
    // An upper bound on the lines the parser counts.
    let lines = data.iter().filter(|b| **b == b'\n' || **b == b'\r').count() + 1;
    match parse(data, &tz) {
        Ok(parsed) => {
            assert!(!parsed.hours.is_empty() && parsed.hours.len() <= parsed.samples);
            for w in parsed.hours.windows(2) {
                assert!(w[0].0 < w[1].0, "hours not sorted: {w:?}");
            }
            for &(hour, g) in &parsed.hours {
                assert_eq!(hour.rem_euclid(MS_PER_HOUR), 0, "{hour} not an hour start");
                assert!((0.0..=MAX_G_PER_KWH).contains(&g), "{g} g/kWh");
            }
        }
        Err(IntensityError::Field { line, column, .. }) => {
            assert!(
                (1..=lines).contains(&line) && column >= 1,
                "line {line}, column {column}"
            );
        }
        Err(IntensityError::Fields { line, .. }) => assert!((1..=lines).contains(&line)),
        Err(_) => {}
    }
});
