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
