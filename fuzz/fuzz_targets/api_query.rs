//! The HTTP API's query strings (`GET /api/v1/reports/…?from=&to=&by=&…`): decoded as
//! axum's `Query` does (serde_urlencoded, into the types the routes declare), then
//! through the parsers the values reach (dates → local midnights, `by`) and the
//! consumption report over the period with no device, which is what a caller with an
//! empty org gets: any query answers, quickly, with an error or a report of the period
//! asked.
//!
//! The route structs live in veille-collector, which this crate does not build (its
//! SQLite, Parquet and Postgres clients under AddressSanitizer would multiply the fuzz
//! build's time); `Params` below is the union of their fields, with their types.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use veille_domain::energy::catalogue::Catalogue;
use veille_domain::energy::consumption::{
    ConsumptionError, Context, DeviceData, EnergyConfig, GroupBy, report_from,
};

/// 2026-12-01T00:00Z: the clock of the report (reports stop at "now").
const NOW_MS: i64 = 1_796_083_200_000;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
    format: Option<String>,
    csv_dialect: Option<String>,
    org: Option<String>,
    room: Option<String>,
    window_days: Option<u32>,
    adjust_outdoor: Option<bool>,
    policy_version: Option<u64>,
    enforced_from: Option<String>,
}

fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        Context::new(&EnergyConfig::default(), Catalogue::builtin())
            .expect("the default energy configuration is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(p) = serde_urlencoded::from_bytes::<Params>(data) else {
        return;
    };
    let by = match p.by.as_deref().unwrap_or("org").parse::<GroupBy>() {
        Ok(by) => {
            assert_eq!(by.as_str().parse::<GroupBy>().ok(), Some(by));
            by
        }
        Err(_) => return,
    };
    if let Some(d) = &p.enforced_from {
        let _ = d.parse::<jiff::civil::Date>();
    }
    let (Some(from), Some(to)) = (p.from, p.to) else {
        return;
    };
    let ctx = ctx();
    let Ok(from_ms) = ctx.day_start_ms(&from) else {
        return;
    };
    // As the collector's `next_day`: `to` is inclusive.
    let Some(next) = to
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.tomorrow().ok())
    else {
        return;
    };
    let Ok(to_ms) = ctx.day_start_ms(&next.to_string()) else {
        return;
    };
    let devices: [Result<DeviceData, ConsumptionError>; 0] = [];
    if let Ok(report) = report_from(devices, ctx, &from, &to, from_ms, to_ms, NOW_MS, by) {
        assert!(to_ms > from_ms);
        let _ = serde_json::to_string(&report);
    }
});
