//! The one wall clock of the collector. Everything below the edges takes time as a
//! parameter (`now_ms`), so tests pass instants and only the edges call this.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall clock in Unix milliseconds (0 if the clock is before 1970, `i64::MAX` past
/// year 292 million).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
