//! The HTTP API's query strings (`GET /api/v1/reports/…?from=&to=&by=&…`): decoded as
//! axum's `Query` does (serde_urlencoded), into every type a route declares, then
//! through the parsers the values reach (dates → local midnights, `by`) and the
//! consumption report over the period with no device, which is what a caller with an
//! empty org gets: any query answers, quickly, with an error or a report of the period
//! asked.
//!
//! The route types are the collector's own (`collector/src/api/params.rs`), compiled
//! here as a module: this crate does not build veille-collector (its SQLite, Parquet
//! and Postgres clients under AddressSanitizer would multiply the fuzz build's time),
//! and that file names nothing but serde.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use veille_domain::energy::catalogue::Catalogue;
use veille_domain::energy::consumption::{
    ConsumptionError, Context, DeviceData, EnergyConfig, GroupBy, report_from,
};

/// 2026-12-01T00:00Z: the clock of the report (reports stop at "now").
const NOW_MS: i64 = 1_796_083_200_000;

#[allow(dead_code)]
#[path = "../../collector/src/api/params.rs"]
mod params;

use params::{
    CompareParams, ConsumptionParams, DevicesQuery, FormatParams, ListParams, PeriodParams,
    SavingsParams, SetpointParams, ShowParams, TrajectoryParams, WakeQuery,
};

/// Decodes `data` as axum's `Query<T>` would; the result only matters as "no panic".
fn decodes<T: serde::de::DeserializeOwned + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    let p = serde_urlencoded::from_bytes::<T>(data).ok()?;
    let _ = format!("{p:?}");
    Some(p)
}

fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        Context::new(&EnergyConfig::default(), Catalogue::builtin())
            .expect("the default energy configuration is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    // The routes whose values go no further than a string here (org, format, room).
    let _ = decodes::<DevicesQuery>(data);
    let _ = decodes::<WakeQuery>(data);
    let _ = decodes::<ShowParams>(data);
    let _ = decodes::<FormatParams>(data);
    let _ = decodes::<ListParams>(data);
    let _ = decodes::<TrajectoryParams>(data);
    let _ = decodes::<SetpointParams>(data);
    let _ = decodes::<PeriodParams>(data);
    let _ = decodes::<CompareParams>(data);
    if let Some(p) = decodes::<SavingsParams>(data)
        && let Some(d) = &p.enforced_from
    {
        let _ = d.parse::<jiff::civil::Date>();
    }
    // The consumption route's period and grouping, through to the report.
    let Some(p) = decodes::<ConsumptionParams>(data) else {
        return;
    };
    let by = match p.by.as_deref().unwrap_or("org").parse::<GroupBy>() {
        Ok(by) => {
            assert_eq!(by.as_str().parse::<GroupBy>().ok(), Some(by));
            by
        }
        Err(_) => return,
    };
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
