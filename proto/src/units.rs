//! Time units, defined once for the whole workspace: the contract counts milliseconds
//! (`start_ms`, `active_ms`…), so every crate converts with these and nothing else.

/// Milliseconds in a second.
pub const MS_PER_SECOND: i64 = 1_000;
/// Milliseconds in a minute.
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
/// Milliseconds in an hour (a rollup's span, the unit of Wh).
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
/// Milliseconds in a day of 24 hours (a civil day may have 23 or 25 across DST).
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
/// Seconds in an hour.
pub const SECONDS_PER_HOUR: i64 = 3_600;

/// Steps of `Report.cpu_util` per unit: agents send it rounded to a thousandth.
pub const CPU_UTIL_STEPS: f64 = 1_000.0;

/// `util` clamped to 0..1 and rounded to a thousandth, as agents send `cpu_util`: a
/// finer figure is noise (the model's load curve has a few points), and a whole
/// permille packs into two bytes in the collector's store instead of eight.
pub fn cpu_permille(util: f64) -> f64 {
    if util.is_nan() {
        return 0.0;
    }
    (util.clamp(0.0, 1.0) * CPU_UTIL_STEPS).round() / CPU_UTIL_STEPS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_util_is_clamped_and_rounded_to_a_thousandth() {
        assert_eq!(cpu_permille(51.0 / 200.0), 0.255);
        assert_eq!(cpu_permille(1.0 / 3.0), 0.333);
        assert_eq!(cpu_permille(0.0004), 0.0);
        assert_eq!(cpu_permille(0.0005), 0.001);
        assert_eq!(cpu_permille(1.7), 1.0);
        assert_eq!(cpu_permille(-0.2), 0.0);
        assert_eq!(cpu_permille(f64::NAN), 0.0);
        // What the collector's codec packs: p / 1000 with p whole, for every p.
        for p in 0..=1000 {
            let v = cpu_permille(f64::from(p) / 1000.0);
            assert_eq!((v * CPU_UTIL_STEPS).round() / CPU_UTIL_STEPS, v);
        }
    }
}
