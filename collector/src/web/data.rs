//! The I/O edge of the web page: loads from the store what the views show, with the
//! same functions the command line uses (the consumption report, the renewal report,
//! the setpoint report), so a figure on the page equals the CLI's.

use jiff::Timestamp;
use jiff::civil::Date;
use veille_proto::v1::ChassisClass;

use crate::reports::{self, OutputFormat, ReportError};
use crate::store::Store;
use veille_domain::energy::catalogue::DeviceClass;
use veille_domain::energy::consumption::{Context, DeviceData, GroupBy, SessionEdge, inferred_off};
use veille_domain::energy::rollup::{HOUR_MS, HourRollup};
use veille_domain::renewal::report::RenewalContext;

use super::i18n::{Key, Lang};
use super::svg::{Bar, HourStates};
use super::views::{DeviceLine, DevicePage, Overview, PastDevice, Verdict};

/// Hours shown on a device's timeline.
pub const TIMELINE_HOURS: i64 = 7 * 24;
/// An hour counts as "left on" when the device was awake for more than this of it.
pub const LEFT_ON_MS: f64 = 1_800_000.0;
/// Rows of the "past renewal" list on the overview (the count shows them all).
pub const PAST_RENEWAL_ROWS: usize = 10;
/// Rooms whose latest verdicts the overview shows.
pub const VERDICT_ROOMS: usize = 10;

/// `YYYY-MM` → its first and last day (`YYYY-MM-DD`), or `None` if malformed.
pub fn month_days(month: &str) -> Option<(String, String)> {
    if month.len() != 7 {
        return None;
    }
    let first: Date = format!("{month}-01").parse().ok()?;
    Some((first.to_string(), first.last_of_month().to_string()))
}

/// [`month_days`], or the report error a malformed month gets everywhere.
pub fn month_range(month: &str) -> Result<(String, String), ReportError> {
    month_days(month).ok_or_else(|| bad_month(month))
}

/// The month asked for (`?month=`), else the current one in the org's time zone.
pub fn month_or_current(asked: Option<String>, ctx: &Context, now_ms: i64) -> String {
    asked
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| current_month(ctx, now_ms))
}

/// The month `n` months before `month` (`YYYY-MM`).
pub fn months_before(month: &str, n: i64) -> Option<String> {
    let first: Date = format!("{month}-01").parse().ok()?;
    let d = first.checked_sub(jiff::Span::new().months(n)).ok()?;
    Some(format!("{:04}-{:02}", d.year(), d.month()))
}

/// The local month of `now_ms` in `ctx`'s time zone.
pub fn current_month(ctx: &Context, now_ms: i64) -> String {
    let d = Timestamp::from_millisecond(now_ms)
        .map(|t| t.to_zoned(ctx.tz.clone()).date())
        .unwrap_or_default();
    format!("{:04}-{:02}", d.year(), d.month())
}

/// The local date of `now_ms`, `YYYY-MM-DD`.
pub fn today(ctx: &Context, now_ms: i64) -> String {
    Timestamp::from_millisecond(now_ms)
        .map(|t| t.to_zoned(ctx.tz.clone()).date().to_string())
        .unwrap_or_default()
}

/// Whether a device was left on at night (an hour of a working day outside working
/// hours) and at weekends (an hour of a non-working day), each counted when awake more
/// than [`LEFT_ON_MS`] of the hour, within `[from, to)`.
pub fn left_on(hours: &[(i64, HourRollup)], ctx: &Context, from: i64, to: i64) -> (bool, bool) {
    let (mut night, mut weekend) = (false, false);
    for (h, r) in hours.iter().filter(|(h, _)| *h >= from && *h < to) {
        if r.awake_ms <= LEFT_ON_MS {
            continue;
        }
        match ctx.working_at(*h) {
            (true, false) => night = true,
            (false, _) => weekend = true,
            (true, true) => {}
        }
    }
    (night, weekend)
}

/// The overview of `month` for `org` (all orgs for `None`).
pub fn overview(
    store: &Store,
    ctx: &Context,
    renewal: &RenewalContext,
    org: Option<&str>,
    month: &str,
    now_ms: i64,
) -> Result<Overview, ReportError> {
    let (first, last) = month_range(month)?;
    let figures =
        reports::consumption_report(store, ctx, org, &first, &last, GroupBy::Org, now_ms)?;
    let trend_from = months_before(month, 11).ok_or_else(|| bad_month(month))?;
    let (trend_first, _) = month_days(&trend_from).ok_or_else(|| bad_month(month))?;
    let by_month =
        reports::consumption_report(store, ctx, org, &trend_first, &last, GroupBy::Month, now_ms)?;
    let trend = (0..12)
        .rev()
        .filter_map(|i| months_before(month, i))
        .map(|m| Bar {
            value: by_month
                .rows
                .iter()
                .find(|r| r.key == m)
                .map_or(0.0, |r| r.figures.kwh),
            label: m,
        })
        .collect();

    let from_ms = ctx.day_start_ms(&first)?;
    let (next_first, _) = months_before(month, -1)
        .and_then(|m| month_days(&m))
        .ok_or_else(|| bad_month(month))?;
    let to_ms = ctx.day_start_ms(&next_first)?;
    let (mut devices, mut nights, mut weekends) = (0, 0, 0);
    for d in reports::device_stream(store, org, from_ms, to_ms)? {
        let d: DeviceData = d?;
        if !d
            .hours
            .iter()
            .any(|(h, r)| *h >= from_ms && r.covered_ms > 0.0)
        {
            continue;
        }
        devices += 1;
        let (n, w) = left_on(&d.hours, ctx.for_org(&d.org), from_ms, to_ms);
        nights += u64::from(n);
        weekends += u64::from(w);
    }

    let renewal = crate::reports::renewal::report(store, renewal, org, now_ms)?;
    let past_renewal = renewal
        .past_horizon
        .iter()
        .take(PAST_RENEWAL_ROWS)
        .map(|r| PastDevice {
            org: r.org.clone(),
            device_id: r.device_id.clone(),
            hostname: r.hostname.clone(),
            site: r.site.clone(),
            class: r.class.to_owned(),
            age_years: r.age_years,
        })
        .collect();

    Ok(Overview {
        month: month.to_owned(),
        month_figures: figures.total,
        trend,
        devices,
        left_on_nights: nights,
        left_on_weekends: weekends,
        past_renewal_count: renewal.past_horizon.len(),
        past_renewal,
        verdicts: verdicts(store, ctx, org),
        // Filled by the page handler, which knows the orgs' targets.
        trajectory: None,
    })
}

fn bad_month(month: &str) -> ReportError {
    ReportError::Consumption(veille_domain::energy::consumption::ConsumptionError::Date {
        value: month.to_owned(),
    })
}

/// The latest setpoint change of each room and its verdicts, through the setpoint
/// report the CLI prints. A room whose report fails shows the reason instead.
fn verdicts(store: &Store, ctx: &Context, org: Option<&str>) -> Vec<Verdict> {
    let rooms = match crate::store::rooms::rooms_of(store, org) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list rooms for the overview");
            return Vec::new();
        }
    };
    let opts = veille_domain::rooms::setpoint::SetpointOptions::default();
    rooms
        .into_iter()
        .filter(|r| !r.setpoints.is_empty())
        .take(VERDICT_ROOMS)
        .map(|room| {
            let out = crate::reports::setpoint::setpoint_output(
                store,
                ctx,
                Some(&room.org),
                &room.name,
                &opts,
                OutputFormat::Json,
            );
            let (at, lines) = match out {
                Ok(json) => verdict_lines(&json),
                Err(e) => (String::new(), vec![e.to_string()]),
            };
            Verdict {
                room: room.name,
                at,
                lines,
            }
        })
        .collect()
}

/// The latest change's date and its verdicts from the setpoint report's JSON.
pub fn verdict_lines(json: &str) -> (String, Vec<String>) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let Some(last) = v["changes"].as_array().and_then(|c| c.last()) else {
        return (String::new(), Vec::new());
    };
    let at = last["at"].as_str().unwrap_or("").to_owned();
    let r = &last["report"];
    let mut lines = Vec::new();
    for metric in ["total_power", "cooling_power", "it_power", "inlet", "pue"] {
        let c = &r[metric];
        match c["status"].as_str() {
            Some("estimate") => {
                if let Some(s) = c["verdict"].as_str() {
                    lines.push(s.to_owned());
                }
            }
            Some("insufficient") => lines.push(format!(
                "{metric}: {}",
                c["reason"].as_str().unwrap_or("insufficient data")
            )),
            _ => {}
        }
    }
    (at, lines)
}

/// `YYYY-MM-DD HH:MM` in the report time zone.
pub fn local_time(ctx: &Context, ms: i64) -> String {
    if ms <= 0 {
        return "—".to_owned();
    }
    Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(ctx.tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// The device list with each device's site.
pub fn device_lines(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
) -> Result<Vec<DeviceLine>, ReportError> {
    let mut records = store.devices(org)?;
    veille_domain::devices::sort(&mut records);
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let site = store
            .inventory(&record.org, &record.device_id)?
            .map(|i| i.site)
            .unwrap_or_default();
        out.push(DeviceLine {
            last_seen: local_time(ctx.for_org(&record.org), record.last_seen_unix_ms),
            record,
            site,
        });
    }
    Ok(out)
}

/// Per-hour states from rollups and inferred-off intervals, for hours starting at
/// `from` (a whole hour) up to `to`.
pub fn hour_states(
    ctx: &Context,
    rollups: &[(i64, HourRollup)],
    off: &[(i64, i64)],
    from: i64,
    to: i64,
) -> Vec<HourStates> {
    let mut out = Vec::new();
    let mut h = from;
    while h < to {
        let r = rollups
            .iter()
            .find(|(t, _)| *t == h)
            .map(|(_, r)| *r)
            .unwrap_or_default();
        let idle = r.modelled_idle_ms;
        let active = (r.awake_ms - idle).max(0.0);
        let off_ms: i64 = off
            .iter()
            .map(|(a, b)| ((*b).min(h + HOUR_MS) - (*a).max(h)).max(0))
            .sum();
        let known = active + idle + r.sleep_ms + off_ms as f64;
        out.push(HourStates {
            label: local_time(ctx, h),
            ms: [
                active,
                idle,
                r.sleep_ms,
                off_ms as f64,
                (HOUR_MS as f64 - known).max(0.0),
            ],
        });
        h += HOUR_MS;
    }
    out
}

/// Tick marks at each local midnight among `hours` starting at `from`.
pub fn midnight_ticks(ctx: &Context, from: i64, n: usize) -> Vec<(usize, String)> {
    (0..n)
        .filter_map(|i| {
            let t = Timestamp::from_millisecond(from + i as i64 * HOUR_MS).ok()?;
            let z = t.to_zoned(ctx.tz.clone());
            (z.hour() == 0).then(|| (i, z.strftime("%d/%m").to_string()))
        })
        .collect()
}

/// The device page of `org/device_id`, or `None` when unknown (or in another org).
pub fn device_page(
    store: &Store,
    ctx: &Context,
    lang: Lang,
    org: &str,
    device_id: &str,
    now_ms: i64,
) -> Result<Option<DevicePage>, ReportError> {
    let Some(record) = store.device(org, device_id)? else {
        return Ok(None);
    };
    let ctx = ctx.for_org(org);
    let inv = store.inventory(org, device_id)?.unwrap_or_default();
    let to = veille_domain::energy::rollup::hour_of(now_ms) + HOUR_MS;
    let from = to - TIMELINE_HOURS * HOUR_MS;
    let rollups = store.rollups(org, device_id, from, to)?;
    let sessions: Vec<SessionEdge> = store
        .boot_sessions(org, device_id)?
        .into_iter()
        .map(|(_, s)| SessionEdge {
            boot_ms: s.boot_time_unix_s.saturating_mul(1000),
            first_start_ms: s.first_start_unix_ms,
            last_end_ms: s.last_end_unix_ms,
            last_shutdown: s.last_report_shutdown,
            last_agent_stop: s.last_report_agent_stop,
        })
        .collect();
    let off = inferred_off(&sessions, from, now_ms.min(to));
    let hours = hour_states(ctx, &rollups, &off, from, to);
    let ticks = midnight_ticks(ctx, from, hours.len());
    let class =
        DeviceClass::from(ChassisClass::try_from(inv.chassis).unwrap_or(ChassisClass::Unknown));
    let monitors: Vec<String> = inv
        .monitors
        .iter()
        .map(|m| {
            let year = if m.year_of_manufacture > 0 {
                format!(" ({})", m.year_of_manufacture)
            } else {
                String::new()
            };
            format!("{} {:04x}{year}", m.manufacturer, m.product_code)
        })
        .collect();
    let ram = if inv.ram_bytes > 0 {
        format!(
            "{} GiB",
            lang.num(inv.ram_bytes as f64 / (1u64 << 30) as f64, 1)
        )
    } else {
        String::new()
    };
    let inventory = vec![
        (Key::Hostname, inv.hostname.clone()),
        (Key::SiteTitle, inv.site.clone()),
        (Key::Tags, inv.tags.join(", ")),
        (Key::Chassis, class.as_str().to_owned()),
        (Key::Manufacturer, inv.manufacturer.clone()),
        (Key::Model, inv.model.clone()),
        (Key::Serial, inv.serial.clone()),
        (
            Key::Os,
            format!("{} {}", inv.os_name, inv.os_version)
                .trim()
                .to_owned(),
        ),
        (
            Key::Cpu,
            if inv.cpu_cores > 0 {
                format!("{} × {}", inv.cpu_model, inv.cpu_cores)
            } else {
                inv.cpu_model.clone()
            },
        ),
        (Key::Ram, ram),
        (Key::Bios, inv.bios_release_date.clone()),
        (Key::Monitors, monitors.join(", ")),
    ];
    Ok(Some(DevicePage {
        last_seen: local_time(ctx, record.last_seen_unix_ms),
        record,
        inventory,
        hours,
        ticks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_domain::energy::catalogue::Catalogue;
    use veille_domain::energy::consumption::EnergyConfig;

    fn ctx() -> Context {
        let cfg = EnergyConfig::default();
        Context::new(&cfg, Catalogue::builtin()).unwrap()
    }

    #[test]
    fn months_and_their_days() {
        assert_eq!(
            month_days("2026-02"),
            Some(("2026-02-01".into(), "2026-02-28".into()))
        );
        assert_eq!(month_days("2026-13"), None);
        assert_eq!(month_days("2026-1"), None);
        assert_eq!(months_before("2026-03", 11).as_deref(), Some("2025-04"));
        assert_eq!(months_before("2026-12", -1).as_deref(), Some("2027-01"));
    }

    #[test]
    fn nights_and_weekends_are_told_apart() {
        let c = ctx();
        let awake = HourRollup {
            covered_ms: 3_600_000.0,
            awake_ms: 3_600_000.0,
            ..Default::default()
        };
        let ms = |s: &str| c.day_start_ms(s).unwrap();
        // Monday 2026-11-23 22:00 Paris: a working day, outside hours.
        let mon_night = ms("2026-11-23") + 22 * HOUR_MS;
        // Saturday 2026-11-21 10:00.
        let sat = ms("2026-11-21") + 10 * HOUR_MS;
        // Monday 10:00: working hours.
        let mon_day = ms("2026-11-23") + 10 * HOUR_MS;
        let all = (i64::MIN, i64::MAX);
        assert_eq!(
            left_on(&[(mon_night, awake)], &c, all.0, all.1),
            (true, false)
        );
        assert_eq!(left_on(&[(sat, awake)], &c, all.0, all.1), (false, true));
        assert_eq!(
            left_on(&[(mon_day, awake)], &c, all.0, all.1),
            (false, false)
        );
        let brief = HourRollup {
            awake_ms: 600_000.0,
            ..awake
        };
        assert_eq!(left_on(&[(sat, brief)], &c, all.0, all.1), (false, false));
        assert_eq!(left_on(&[(sat, awake)], &c, sat + 1, all.1), (false, false));
    }

    #[test]
    fn hours_split_into_states_with_off_and_unknown() {
        let c = ctx();
        let h0 = 1_700_000_000_000i64 / HOUR_MS * HOUR_MS;
        let r = HourRollup {
            covered_ms: 1_800_000.0,
            awake_ms: 1_800_000.0,
            modelled_idle_ms: 600_000.0,
            modelled_active_ms: 1_200_000.0,
            ..Default::default()
        };
        let hours = hour_states(
            &c,
            &[(h0, r)],
            &[(h0 + HOUR_MS, h0 + HOUR_MS + 900_000)],
            h0,
            h0 + 2 * HOUR_MS,
        );
        assert_eq!(hours.len(), 2);
        assert_eq!(hours[0].ms, [1_200_000.0, 600_000.0, 0.0, 0.0, 1_800_000.0]);
        assert_eq!(hours[1].ms, [0.0, 0.0, 0.0, 900_000.0, 2_700_000.0]);
    }

    #[test]
    fn verdicts_come_from_the_latest_change() {
        let json = r#"{"changes":[{"at":"old","report":{}},{"at":"2026-11-02T00:00:00Z","report":{
            "total_power":{"status":"estimate","verdict":"total power fell by 5 %"},
            "cooling_power":{"status":"insufficient","reason":"3 days before"},
            "it_power":{"status":"not_metered"}}}]}"#;
        let (at, lines) = verdict_lines(json);
        assert_eq!(at, "2026-11-02T00:00:00Z");
        assert_eq!(
            lines,
            vec!["total power fell by 5 %", "cooling_power: 3 days before"]
        );
        assert_eq!(verdict_lines("not json"), (String::new(), vec![]));
    }
}
