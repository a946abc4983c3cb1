//! Policy compliance and replay, from the hourly rollups and the agents' policy events.
//!
//! - `report compliance`: per org and site, the devices left on inside the current
//!   policy's windows, the energy they used there beyond what they would have used
//!   switched off (kWh, €, kgCO2e), and the shutdowns done, postponed, skipped (by
//!   reason) and policies rejected, as the agents reported them.
//! - `policy replay`: the same measure for a draft policy on the recorded timelines:
//!   the energy, cost and carbon it would have saved, and the active time it would have
//!   cut into.
//!
//! # Model
//! Window time is matched to rollup hours by overlap, and a rollup's awake time is
//! taken as spread evenly over its hour (hourly resolution is what the store keeps).
//! "Saved" and "wasted" are the awake energy in the windows (measured where a meter
//! measured it, else the catalogue's profile: idle power plus the CPU-dependent part)
//! minus the soft-off power over the same time: a switched-off PC still draws `p_off_w`.
//! Devices a policy excludes (group, hosts, tags, chassis, servers not opted in —
//! `allow_shutdown` is unknown to the collector, so servers are counted as excluded)
//! count for neither. Replay ignores the idle threshold and warnings: it is the upper
//! bound of what the windows can save, and "interrupted" counts the active hours in
//! the windows, the sessions a warning would have reached.
//!
//! Maintenance windows are cut out of the windows for both measures: a device awake for
//! its patch night is doing what the policy asks. The compliance report counts the
//! devices awake during some maintenance window (`awake_for_maintenance`) and the
//! wake-ups the agents armed for them (`wakes_armed`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use veille_proto::policy::{
    Decision, DeviceFacts, SkipReason, WindowSpan, evaluate, maintenance_between, spans_between,
};
use veille_proto::v1::{ChassisClass, EventKind, Policy, PolicyMode};

use crate::energy::catalogue::PowerProfile;
use crate::energy::consumption::Context;
use crate::energy::rollup::{HOUR_MS, HourRollup};

const MS_PER_HOUR: f64 = veille_proto::units::MS_PER_HOUR as f64;

/// One device's inputs.
#[derive(Debug, Clone)]
pub struct DeviceInput {
    pub org: String,
    pub device_id: String,
    pub site: String,
    pub facts: DeviceFacts,
    pub profile: PowerProfile,
    pub hours: Vec<(i64, HourRollup)>,
    /// Policy events the device reported in the period.
    pub events: Vec<(EventKind, String)>,
    /// Boot time of the session the device was still running at the end of the period
    /// (reported within its last day), if any: how long it has gone without a restart.
    pub running_since_ms: Option<i64>,
}

/// A device running for this long without a restart has probably not applied its
/// updates (most need a reboot): a patch risk the compliance report counts.
pub const PATCH_RISK_DAYS: i64 = 7;

/// Energy a device used awake during `r`'s hour, Wh (measured part, then modelled).
pub fn awake_wh(profile: &PowerProfile, r: &HourRollup) -> f64 {
    let idle = profile.p_idle_w.value;
    let span = profile.p_max_w.value - idle;
    r.measured_j / 3600.0
        + (idle * (r.modelled_active_ms + r.modelled_idle_ms) + span * r.modelled_active_util_ms)
            / MS_PER_HOUR
}

/// What switching the device off during its awake time of `r` would have saved, Wh.
pub fn avoidable_wh(profile: &PowerProfile, r: &HourRollup) -> f64 {
    (awake_wh(profile, r) - profile.p_off_w.value * r.awake_ms / MS_PER_HOUR).max(0.0)
}

/// Milliseconds of `[hour, hour + 1 h)` inside `spans` (overlaps counted once).
pub fn overlap_ms(spans: &[WindowSpan], hour: i64) -> i64 {
    let (a, b) = (hour, hour + HOUR_MS);
    let mut cuts: Vec<(i64, i64)> = spans
        .iter()
        .map(|s| {
            (
                s.start.as_millisecond().max(a),
                s.end.as_millisecond().min(b),
            )
        })
        .filter(|(x, y)| x < y)
        .collect();
    cuts.sort();
    let (mut total, mut reach) = (0, a);
    for (x, y) in cuts {
        let x = x.max(reach);
        if y > x {
            total += y - x;
            reach = y;
        }
    }
    total
}

/// Why `policy` would leave this device alone whatever its activity, if it would.
pub fn excluded(policy: &Policy, facts: &DeviceFacts, spans: &[WindowSpan]) -> Option<SkipReason> {
    let span = spans.first()?;
    let mut p = policy.clone();
    p.mode = PolicyMode::Enforce as i32;
    match evaluate(&p, span.start, facts, u64::MAX, 0, None) {
        Decision::Skip { reason }
            if !matches!(reason, SkipReason::UserActive | SkipReason::TooLateInWindow) =>
        {
            Some(reason)
        }
        _ => None,
    }
}

/// The window figures of one device over its rollups.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WindowFigures {
    pub awake_h: f64,
    pub active_h: f64,
    /// Hours of the windows with some active time (sessions a shutdown would reach).
    pub active_hours: u32,
    pub kwh: f64,
    pub eur: f64,
    pub kg_co2e: f64,
}

/// Awake time and avoidable energy of `device` inside `spans`, priced with the settings
/// of the device's org (`ctx.for_org`), as consumption prices it.
///
/// Issue 23: compliance and replay priced every org with the collector-wide tariff,
/// grid factor and time zone, and counted only modelled active time (none for metered
/// hours).
pub fn window_figures(ctx: &Context, device: &DeviceInput, spans: &[WindowSpan]) -> WindowFigures {
    let ctx = ctx.for_org(&device.org);
    let mut f = WindowFigures::default();
    for (hour, r) in &device.hours {
        let share = overlap_ms(spans, *hour) as f64 / HOUR_MS as f64;
        if share <= 0.0 {
            continue;
        }
        f.awake_h += share * r.awake_ms / MS_PER_HOUR;
        let active_ms = share * (r.modelled_active_ms + r.measured_active_ms);
        f.active_h += active_ms / MS_PER_HOUR;
        if active_ms > 0.0 {
            f.active_hours += 1;
        }
        let kwh = share * avoidable_wh(&device.profile, r) / 1000.0;
        f.kwh += kwh;
        let offset = Timestamp::from_millisecond(*hour)
            .map(|t| ctx.tz.to_offset(t).seconds() / 60)
            .unwrap_or(0);
        f.eur += ctx
            .tariff
            .cost(*hour, hour + HOUR_MS, kwh, offset)
            .map_or(kwh * ctx.tariff.base_eur_per_kwh, |c| c.total_eur);
    }
    f.kg_co2e = ctx.grid.kg_co2e(f.kwh);
    f
}

/// A row of the compliance report: one org and site.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ComplianceRow {
    pub org: String,
    pub site: String,
    /// The policy measured against (0: the org has none).
    pub policy_version: u64,
    pub policy_mode: String,
    pub devices: u32,
    pub excluded: u32,
    /// Devices awake for some time inside the windows.
    pub left_on: u32,
    pub left_on_hours: f64,
    pub wasted_kwh: f64,
    pub wasted_eur: f64,
    pub wasted_kg_co2e: f64,
    pub warned: u32,
    pub shutdowns: u32,
    pub postponed: u32,
    pub skipped: u32,
    /// Skip reason code (`user_active`, `dry_run`, `excluded_chassis`, …) → count.
    pub skipped_by_reason: BTreeMap<String, u32>,
    pub rejected: u32,
    /// Devices still running at the end of the period without a restart for at least
    /// [`PATCH_RISK_DAYS`] days.
    pub not_restarted_7_days: u32,
    /// Wake-ups armed for maintenance windows (`POLICY_WAKE_ARMED` events).
    pub wakes_armed: u32,
    /// Devices awake for some time inside a maintenance window of the period.
    pub awake_for_maintenance: u32,
}

/// The window spans minus the maintenance spans: the time a device should be off.
/// Both lists sorted by start (as [`spans_between`] and [`maintenance_between`] give
/// them); each piece keeps its window's index.
pub fn without_maintenance(spans: &[WindowSpan], maintenance: &[WindowSpan]) -> Vec<WindowSpan> {
    let mut out = Vec::new();
    for s in spans {
        let mut start = s.start;
        for m in maintenance {
            if m.end <= start || m.start >= s.end {
                continue;
            }
            if m.start > start {
                out.push(WindowSpan {
                    window: s.window,
                    start,
                    end: m.start,
                });
            }
            start = start.max(m.end);
        }
        if start < s.end {
            out.push(WindowSpan {
                window: s.window,
                start,
                end: s.end,
            });
        }
    }
    out
}

/// The compliance report: `policies` holds each org's current policy.
pub fn compliance(
    ctx: &Context,
    policies: &BTreeMap<String, Policy>,
    devices: &[DeviceInput],
    from_ms: i64,
    to_ms: i64,
) -> Vec<ComplianceRow> {
    let (from, to) = (ts(from_ms), ts(to_ms));
    let mut rows: BTreeMap<(String, String), ComplianceRow> = BTreeMap::new();
    type Spans = (Vec<WindowSpan>, Vec<WindowSpan>, Vec<WindowSpan>);
    let mut spans_of: BTreeMap<String, Spans> = BTreeMap::new();
    for d in devices {
        let row = rows
            .entry((d.org.clone(), d.site.clone()))
            .or_insert_with(|| ComplianceRow {
                org: d.org.clone(),
                site: d.site.clone(),
                policy_mode: "none".into(),
                ..ComplianceRow::default()
            });
        row.devices += 1;
        if d.running_since_ms
            .is_some_and(|boot| to_ms - boot >= PATCH_RISK_DAYS * 24 * 3_600_000)
        {
            row.not_restarted_7_days += 1;
        }
        for (kind, detail) in &d.events {
            match kind {
                EventKind::PolicyWarned => row.warned += 1,
                EventKind::PolicyShutdown => row.shutdowns += 1,
                EventKind::PolicyPostponed => row.postponed += 1,
                EventKind::PolicyRejected => row.rejected += 1,
                EventKind::PolicyWakeArmed => row.wakes_armed += 1,
                EventKind::PolicySkipped => {
                    row.skipped += 1;
                    let code = detail.split(':').next().unwrap_or_default().trim();
                    *row.skipped_by_reason.entry(code.to_owned()).or_default() += 1;
                }
                _ => {}
            }
        }
        let Some(policy) = policies.get(&d.org) else {
            continue;
        };
        row.policy_version = policy.version;
        row.policy_mode = mode_name(policy.mode()).into();
        // Per org, not per device: closure days make these lists long.
        let (spans, maintenance, off) = spans_of.entry(d.org.clone()).or_insert_with(|| {
            let spans = spans_between(policy, from, to);
            let maintenance = maintenance_between(policy, from, to);
            let off = without_maintenance(&spans, &maintenance);
            (spans, maintenance, off)
        });
        let (spans, maintenance, off) = (&*spans, &*maintenance, &*off);
        if window_figures(ctx, d, maintenance).awake_h > 0.0 {
            row.awake_for_maintenance += 1;
        }
        if excluded(policy, &d.facts, spans).is_some() {
            row.excluded += 1;
            continue;
        }
        let f = window_figures(ctx, d, off);
        if f.awake_h > 0.0 {
            row.left_on += 1;
        }
        row.left_on_hours += f.awake_h;
        row.wasted_kwh += f.kwh;
        row.wasted_eur += f.eur;
        row.wasted_kg_co2e += f.kg_co2e;
    }
    rows.into_values().collect()
}

/// A row of `policy replay`: one org and site.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayRow {
    pub org: String,
    pub site: String,
    pub devices: u32,
    pub excluded: u32,
    /// Devices the draft would have switched off at least once.
    pub affected: u32,
    pub saved_kwh: f64,
    pub saved_eur: f64,
    pub saved_kg_co2e: f64,
    /// Active time inside the windows, and the device-hours it falls in: the sessions
    /// the draft would have warned or cut into.
    pub interrupted_active_h: f64,
    pub interrupted_sessions: u32,
}

/// `policy replay`: what `draft` would have saved on `devices` of its org.
pub fn replay(
    ctx: &Context,
    draft: &Policy,
    devices: &[DeviceInput],
    from_ms: i64,
    to_ms: i64,
) -> Vec<ReplayRow> {
    let spans = without_maintenance(
        &spans_between(draft, ts(from_ms), ts(to_ms)),
        &maintenance_between(draft, ts(from_ms), ts(to_ms)),
    );
    let mut rows: BTreeMap<String, ReplayRow> = BTreeMap::new();
    for d in devices.iter().filter(|d| d.org == draft.org) {
        let row = rows.entry(d.site.clone()).or_insert_with(|| ReplayRow {
            org: d.org.clone(),
            site: d.site.clone(),
            ..ReplayRow::default()
        });
        row.devices += 1;
        if excluded(draft, &d.facts, &spans).is_some() {
            row.excluded += 1;
            continue;
        }
        let f = window_figures(ctx, d, &spans);
        if f.awake_h > 0.0 {
            row.affected += 1;
        }
        row.saved_kwh += f.kwh;
        row.saved_eur += f.eur;
        row.saved_kg_co2e += f.kg_co2e;
        row.interrupted_active_h += f.active_h;
        row.interrupted_sessions += f.active_hours;
    }
    rows.into_values().collect()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn mode_name(m: PolicyMode) -> &'static str {
    match m {
        PolicyMode::Off => "off",
        PolicyMode::DryRun => "dry-run",
        PolicyMode::Enforce => "enforce",
        PolicyMode::Unspecified => "unspecified",
    }
}

/// Facts for the policy from an inventory (`allow_shutdown` is the agent's own, unknown
/// here: false).
pub fn facts(chassis: i32, hostname: &str, tags: &[String]) -> DeviceFacts {
    DeviceFacts {
        chassis: ChassisClass::try_from(chassis).unwrap_or(ChassisClass::Unknown),
        tags: tags.to_vec(),
        hostname: hostname.to_owned(),
        allow_shutdown: false,
    }
}

/// Compliance rows as an aligned table.
pub fn compliance_table(rows: &[ComplianceRow]) -> String {
    let mut out = format!(
        "{:<14} {:<16} {:>7} {:<8} {:>7} {:>8} {:>7} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9} {:>8} {:>8} {:>9} {:>6} {:>8}  skipped by reason\n",
        "org",
        "site",
        "policy",
        "mode",
        "devices",
        "excluded",
        "left_on",
        "on_hours",
        "kWh",
        "EUR",
        "kgCO2e",
        "warned",
        "shutdowns",
        "postponed",
        "rejected",
        "up_7d+",
        "wakes",
        "maint_on"
    );
    for r in rows {
        let reasons: Vec<String> = r
            .skipped_by_reason
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "{:<14} {:<16} {:>7} {:<8} {:>7} {:>8} {:>7} {:>9.1} {:>9.2} {:>8.2} {:>6.1} {:>9} {:>9} {:>8} {:>8} {:>9} {:>6} {:>8}  {}\n",
            r.org, r.site, r.policy_version, r.policy_mode, r.devices, r.excluded, r.left_on,
            r.left_on_hours, r.wasted_kwh, r.wasted_eur, r.wasted_kg_co2e, r.warned, r.shutdowns,
            r.postponed, r.rejected, r.not_restarted_7_days, r.wakes_armed,
            r.awake_for_maintenance, reasons.join(" ")
        ));
    }
    out
}

/// Compliance rows as CSV with a header line.
pub fn compliance_csv(rows: &[ComplianceRow]) -> String {
    let mut out = String::from(
        "org,site,policy_version,policy_mode,devices,excluded,left_on,left_on_hours,wasted_kwh,wasted_eur,wasted_kg_co2e,warned,shutdowns,postponed,skipped,rejected,skipped_by_reason,not_restarted_7_days,wakes_armed,awake_for_maintenance\n",
    );
    for r in rows {
        let reasons: Vec<String> = r
            .skipped_by_reason
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{},{},{},{},{},{},{},{},{}\n",
            csv(&r.org),
            csv(&r.site),
            r.policy_version,
            r.policy_mode,
            r.devices,
            r.excluded,
            r.left_on,
            r.left_on_hours,
            r.wasted_kwh,
            r.wasted_eur,
            r.wasted_kg_co2e,
            r.warned,
            r.shutdowns,
            r.postponed,
            r.skipped,
            r.rejected,
            csv(&reasons.join(" ")),
            r.not_restarted_7_days,
            r.wakes_armed,
            r.awake_for_maintenance
        ));
    }
    out
}

/// Replay rows as an aligned table.
pub fn replay_table(rows: &[ReplayRow]) -> String {
    let mut out = format!(
        "{:<14} {:<16} {:>7} {:>8} {:>8} {:>10} {:>9} {:>9} {:>13} {:>11}\n",
        "org",
        "site",
        "devices",
        "excluded",
        "affected",
        "saved_kWh",
        "saved_EUR",
        "saved_kg",
        "active_hours",
        "sessions"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<14} {:<16} {:>7} {:>8} {:>8} {:>10.2} {:>9.2} {:>9.2} {:>13.1} {:>11}\n",
            r.org,
            r.site,
            r.devices,
            r.excluded,
            r.affected,
            r.saved_kwh,
            r.saved_eur,
            r.saved_kg_co2e,
            r.interrupted_active_h,
            r.interrupted_sessions
        ));
    }
    out
}

/// Replay rows as CSV with a header line.
pub fn replay_csv(rows: &[ReplayRow]) -> String {
    let mut out = String::from(
        "org,site,devices,excluded,affected,saved_kwh,saved_eur,saved_kg_co2e,interrupted_active_h,interrupted_sessions\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{}\n",
            csv(&r.org),
            csv(&r.site),
            r.devices,
            r.excluded,
            r.affected,
            r.saved_kwh,
            r.saved_eur,
            r.saved_kg_co2e,
            r.interrupted_active_h,
            r.interrupted_sessions
        ));
    }
    out
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::catalogue::{Catalogue, DeviceClass};
    use veille_proto::policy::ALL_DAYS;
    use veille_proto::v1::ShutdownWindow;

    // 2026-01-05 00:00 UTC, a Monday.
    const MON: i64 = 1_767_571_200_000;

    fn ctx() -> Context {
        let config: crate::energy::consumption::EnergyConfig =
            toml::from_str("timezone = \"UTC\"\nworking_days = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"]\nworking_hours = \"8-18\"\npower_profiles = \"\"\n[tariff]\nbase_eur_per_kwh = 0.25\n")
                .unwrap();
        let mut ctx = Context::new(&config, Catalogue::builtin()).unwrap();
        ctx.grid.kg_co2e_per_kwh = 0.1;
        ctx
    }

    fn policy() -> Policy {
        Policy {
            org: "acme".into(),
            version: 1,
            mode: PolicyMode::DryRun as i32,
            windows: vec![ShutdownWindow {
                days: ALL_DAYS,
                start: "20:00".into(),
                end: "06:00".into(),
                time_zone: "UTC".into(),
                ..ShutdownWindow::default()
            }],
            idle_threshold_s: 600,
            warning_s: 300,
            ..Policy::default()
        }
    }

    fn hour(awake_h: f64, active_share: f64) -> HourRollup {
        let awake = awake_h * MS_PER_HOUR;
        HourRollup {
            covered_ms: MS_PER_HOUR,
            awake_ms: awake,
            modelled_active_ms: awake * active_share,
            modelled_active_util_ms: awake * active_share * 0.2,
            modelled_idle_ms: awake * (1.0 - active_share),
            ..HourRollup::default()
        }
    }

    fn device(chassis: ChassisClass, hours: Vec<(i64, HourRollup)>) -> DeviceInput {
        let class = DeviceClass::from(chassis);
        DeviceInput {
            org: "acme".into(),
            device_id: "d1".into(),
            site: "hq".into(),
            facts: facts(chassis as i32, "pc-1", &[]),
            profile: Catalogue::builtin()
                .profile_for(class, None, "", "")
                .0
                .clone(),
            hours,
            events: vec![
                (EventKind::PolicySkipped, "dry_run: would warn".into()),
                (EventKind::PolicySkipped, "user_active".into()),
            ],
            running_since_ms: None,
        }
    }

    const MIN_MS: i64 = 60_000;

    fn span(start_ms: i64, end_ms: i64) -> WindowSpan {
        WindowSpan {
            window: 0,
            start: ts(start_ms),
            end: ts(end_ms),
        }
    }

    fn window(start: &str, end: &str, tz: &str) -> ShutdownWindow {
        ShutdownWindow {
            days: ALL_DAYS,
            start: start.into(),
            end: end.into(),
            time_zone: tz.into(),
            ..ShutdownWindow::default()
        }
    }

    #[test]
    fn overlap_counts_each_millisecond_once() {
        let h = MON + 3 * HOUR_MS;
        // Spans that overlap, nest, repeat and stick out of the hour on both sides.
        // Union inside [h, h+1h): [h-5m, h+20m) ∪ [h+10m, h+25m) ∪ [h+12m, h+13m)
        // ∪ [h+40m, h+50m) twice ∪ [h+55m, h+2h) = 0-25, 40-50, 55-60 min = 40 min.
        let spans = [
            span(h + 40 * MIN_MS, h + 50 * MIN_MS),
            span(h - 5 * MIN_MS, h + 20 * MIN_MS),
            span(h + 10 * MIN_MS, h + 25 * MIN_MS),
            span(h + 12 * MIN_MS, h + 13 * MIN_MS),
            span(h + 40 * MIN_MS, h + 50 * MIN_MS),
            span(h + 55 * MIN_MS, h + 2 * HOUR_MS),
        ];
        assert_eq!(overlap_ms(&spans, h), 40 * MIN_MS);
        assert_eq!(overlap_ms(&spans, h + HOUR_MS), HOUR_MS);
        assert_eq!(overlap_ms(&spans, h - HOUR_MS), 5 * MIN_MS);
        assert_eq!(overlap_ms(&spans, h + 2 * HOUR_MS), 0);

        // Two windows of one policy that overlap from 00:15 to 01:00 each night.
        let mut p = policy();
        p.windows = vec![
            window("20:30", "01:00", "UTC"),
            window("00:15", "06:00", "UTC"),
        ];
        let spans = spans_between(&p, ts(MON), ts(MON + 2 * 86_400_000));
        assert!(spans.len() >= 4, "{spans:?}");
        assert_eq!(overlap_ms(&spans, MON + 19 * HOUR_MS), 0);
        assert_eq!(overlap_ms(&spans, MON + 20 * HOUR_MS), 30 * MIN_MS);
        // 00:00-01:00 Tuesday: 60 minutes, not 60 + 45.
        assert_eq!(overlap_ms(&spans, MON + 24 * HOUR_MS), HOUR_MS);
        assert_eq!(overlap_ms(&spans, MON + 25 * HOUR_MS), HOUR_MS);
        assert_eq!(overlap_ms(&spans, MON + 30 * HOUR_MS), 0);
    }

    /// 1 W off, 2 W asleep, 20 W idle, 60 W at full CPU: round figures to do sums by hand.
    fn round_profile() -> PowerProfile {
        let w = |value: f64| crate::energy::catalogue::Figure {
            value,
            source: "assumption: test".into(),
        };
        PowerProfile {
            p_off_w: w(1.0),
            p_sleep_w: w(2.0),
            p_idle_w: w(20.0),
            p_max_w: w(60.0),
            duty: crate::energy::catalogue::Duty::Desktop,
            range: crate::energy::catalogue::Range {
                low: 1.0,
                high: 1.0,
                source: "assumption: test".into(),
            },
        }
    }

    /// A modelled hour: `awake_h` awake, of which `active_h` active at CPU `util`, the
    /// rest of the hour asleep.
    fn modelled(awake_h: f64, active_h: f64, util: f64) -> HourRollup {
        HourRollup {
            covered_ms: MS_PER_HOUR,
            awake_ms: awake_h * MS_PER_HOUR,
            modelled_active_ms: active_h * MS_PER_HOUR,
            modelled_active_util_ms: active_h * util * MS_PER_HOUR,
            modelled_idle_ms: (awake_h - active_h) * MS_PER_HOUR,
            sleep_ms: (1.0 - awake_h) * MS_PER_HOUR,
            ..HourRollup::default()
        }
    }

    /// A metered hour: `awake_h` awake, `active_h` of it active, `wh` measured.
    fn metered(awake_h: f64, active_h: f64, wh: f64) -> HourRollup {
        HourRollup {
            covered_ms: MS_PER_HOUR,
            awake_ms: awake_h * MS_PER_HOUR,
            measured_ms: awake_h * MS_PER_HOUR,
            measured_active_ms: active_h * MS_PER_HOUR,
            measured_j: wh * 3600.0,
            sleep_ms: (1.0 - awake_h) * MS_PER_HOUR,
            ..HourRollup::default()
        }
    }

    /// Issue 6, test 4, and issue 23: the savings equal the energy of the hours the
    /// windows remove, worked out by hand below (not with the code's formula) on a
    /// fixture with a window edge inside an hour, hours only partly awake, a metered
    /// device, and the night Paris moves to summer time.
    /// A row sent as JSON (the API, `--format json`) reads back to the bit: the web
    /// page, the CLI and the API must show one figure. Without serde_json's
    /// `float_roundtrip` this sum (two devices' kWh on a night in CI) came back one unit
    /// in the last place lower.
    #[test]
    fn a_replay_row_survives_json_to_the_bit() {
        let row = ReplayRow {
            saved_kwh: 0.02627 + 0.0021025,
            ..ReplayRow::default()
        };
        assert_eq!(row.saved_kwh.to_string(), "0.028372500000000002");
        let json = serde_json::to_string(&row).unwrap();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["saved_kwh"].as_f64(), Some(row.saved_kwh));
    }

    #[test]
    fn replay_saves_exactly_the_energy_of_the_removed_hours() {
        let ctx = ctx();
        // 2026-03-28 00:00 UTC, a Saturday; Paris moves from UTC+1 to UTC+2 on Sunday
        // 2026-03-29 at 01:00 UTC (02:00 local becomes 03:00).
        const SAT: i64 = 1_774_656_000_000;
        let at = |h: i64| SAT + h * HOUR_MS;
        let mut draft = policy();
        draft.windows = vec![window("22:30", "06:00", "Europe/Paris")];
        // That night's window: 22:30 UTC+1 = 21:30 UTC Saturday, to 06:00 UTC+2 =
        // 04:00 UTC Sunday (6.5 h; a time zone fixed at UTC+1 would end at 05:00).
        let modelled_device = DeviceInput {
            profile: round_profile(),
            hours: vec![
                // 20:00 UTC, 21:00 local: before the window.
                (at(20), modelled(1.0, 1.0, 0.5)),
                // 21:00: the window starts at 21:30, half of the hour.
                (at(21), modelled(1.0, 0.5, 0.5)),
                (at(22), modelled(1.0, 0.0, 0.0)),
                // 23:00: awake for half an hour only.
                (at(23), modelled(0.5, 0.25, 1.0)),
                // 00:00 Sunday: asleep all hour.
                (at(24), modelled(0.0, 0.0, 0.0)),
                // 01:00 UTC, 03:00 summer time: in the window.
                (at(25), modelled(1.0, 0.0, 0.0)),
                // 04:00 UTC, 06:00 summer time: the window has ended.
                (at(28), modelled(1.0, 1.0, 1.0)),
            ],
            ..device(ChassisClass::Desktop, vec![])
        };
        // By hand, Wh avoided = (idle − off) × awake h + (max − idle) × active h × util,
        // times the share of the hour in the window:
        //   21:00  0.5 × (19 × 1 + 40 × 0.5 × 0.5) = 0.5 × 29 = 14.5
        //   22:00  19 × 1                                    = 19
        //   23:00  19 × 0.5 + 40 × 0.25 × 1                  = 19.5
        //   00:00  0
        //   01:00  19 × 1                                    = 19
        // total 72 Wh; active time in the window 0.5 × 0.5 + 0.25 = 0.5 h in 2 hours.
        let metered_device = DeviceInput {
            device_id: "laptop".into(),
            site: "lab".into(),
            profile: round_profile(),
            hours: vec![
                // 30 Wh measured over a fully awake hour, 0.5 h of it active: 30 − 1.
                (at(22), metered(1.0, 0.5, 30.0)),
                // 03:00 UTC: a quarter awake, all of it active, 5 Wh: 5 − 0.25.
                (at(27), metered(0.25, 0.25, 5.0)),
            ],
            ..device(ChassisClass::Laptop, vec![])
        };
        let rows = replay(
            &ctx,
            &draft,
            &[modelled_device, metered_device],
            SAT,
            SAT + 2 * 86_400_000,
        );
        assert_eq!(rows.len(), 2);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let (hq, lab) = (&rows[0], &rows[1]);
        assert_eq!((hq.site.as_str(), lab.site.as_str()), ("hq", "lab"));
        assert!(close(hq.saved_kwh, 0.072), "{hq:?}");
        assert!(close(hq.saved_eur, 0.072 * 0.25), "{hq:?}");
        assert!(close(hq.saved_kg_co2e, 0.072 * 0.1), "{hq:?}");
        assert!(close(hq.interrupted_active_h, 0.5), "{hq:?}");
        assert_eq!((hq.affected, hq.interrupted_sessions), (1, 2));
        assert!(close(lab.saved_kwh, (29.0 + 4.75) / 1000.0), "{lab:?}");
        // Metered hours have active time too (it was counted as none).
        assert!(close(lab.interrupted_active_h, 0.75), "{lab:?}");
        assert_eq!((lab.affected, lab.interrupted_sessions), (1, 2));

        // A server is excluded (not named, and allow_shutdown is the agent's).
        let s = device(ChassisClass::Server, vec![(at(22), hour(1.0, 0.5))]);
        let rows = replay(&ctx, &draft, &[s], SAT, SAT + 86_400_000);
        assert_eq!((rows[0].excluded, rows[0].saved_kwh), (1, 0.0));
    }

    /// Issue 23: each org's `[orgs.energy]` prices its own devices, as in consumption.
    #[test]
    fn compliance_and_replay_price_each_org_with_its_own_settings() {
        let mut ctx = ctx();
        let mut beta = ctx.clone();
        beta.tariff.base_eur_per_kwh = 0.40;
        beta.grid.kg_co2e_per_kwh = 0.5;
        ctx.per_org.insert("beta".into(), std::sync::Arc::new(beta));
        // 21:00-22:00 UTC Monday, in the 20:00-06:00 window: 19 Wh avoided each.
        let hours = vec![(MON + 21 * HOUR_MS, modelled(1.0, 0.0, 0.0))];
        let a = DeviceInput {
            profile: round_profile(),
            ..device(ChassisClass::Desktop, hours.clone())
        };
        let b = DeviceInput {
            org: "beta".into(),
            ..a.clone()
        };
        let mut beta_policy = policy();
        beta_policy.org = "beta".into();
        let policies = BTreeMap::from([
            ("acme".to_owned(), policy()),
            ("beta".to_owned(), beta_policy.clone()),
        ]);
        let rows = compliance(
            &ctx,
            &policies,
            &[a.clone(), b.clone()],
            MON,
            MON + 86_400_000,
        );
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert_eq!(
            (rows[0].org.as_str(), rows[1].org.as_str()),
            ("acme", "beta")
        );
        for r in &rows {
            assert!(close(r.wasted_kwh, 0.019), "{r:?}");
        }
        assert!(close(rows[0].wasted_eur, 0.019 * 0.25), "{:?}", rows[0]);
        assert!(close(rows[0].wasted_kg_co2e, 0.019 * 0.1), "{:?}", rows[0]);
        assert!(close(rows[1].wasted_eur, 0.019 * 0.40), "{:?}", rows[1]);
        assert!(close(rows[1].wasted_kg_co2e, 0.019 * 0.5), "{:?}", rows[1]);

        let acme = replay(
            &ctx,
            &policy(),
            &[a.clone(), b.clone()],
            MON,
            MON + 86_400_000,
        );
        let beta = replay(&ctx, &beta_policy, &[a, b], MON, MON + 86_400_000);
        assert!(close(acme[0].saved_eur, 0.019 * 0.25), "{acme:?}");
        assert!(close(beta[0].saved_eur, 0.019 * 0.40), "{beta:?}");
        assert!(close(beta[0].saved_kg_co2e, 0.019 * 0.5), "{beta:?}");
    }

    #[test]
    fn compliance_counts_left_on_devices_and_events_by_reason() {
        let ctx = ctx();
        let hours = vec![
            (MON + 21 * HOUR_MS, hour(0.5, 0.0)),
            (MON + 10 * HOUR_MS, hour(1.0, 1.0)),
        ];
        let d = device(ChassisClass::Laptop, hours);
        let policies = BTreeMap::from([("acme".to_owned(), policy())]);
        let rows = compliance(&ctx, &policies, &[d], MON, MON + 86_400_000);
        let r = &rows[0];
        assert_eq!((r.devices, r.left_on, r.skipped), (1, 1, 2));
        assert!((r.left_on_hours - 0.5).abs() < 1e-9);
        assert!(r.wasted_kwh > 0.0);
        assert_eq!(r.skipped_by_reason["dry_run"], 1);
        assert_eq!(r.skipped_by_reason["user_active"], 1);
        assert!(compliance_csv(&rows).lines().count() == 2);
        assert!(compliance_table(&rows).contains("acme"));
        assert_eq!(r.not_restarted_7_days, 0);
    }

    #[test]
    fn devices_up_for_seven_days_or_more_are_a_patch_risk() {
        let ctx = ctx();
        let day = 86_400_000;
        let end = MON + day;
        let mut up_long = device(ChassisClass::Laptop, vec![]);
        up_long.running_since_ms = Some(end - PATCH_RISK_DAYS * day);
        let mut up_short = device(ChassisClass::Laptop, vec![]);
        up_short.running_since_ms = Some(end - PATCH_RISK_DAYS * day + 1);
        let off = device(ChassisClass::Laptop, vec![]);
        let policies = BTreeMap::new();
        let rows = compliance(&ctx, &policies, &[up_long, up_short, off], MON, end);
        assert_eq!((rows[0].devices, rows[0].not_restarted_7_days), (3, 1));
        let csv = compliance_csv(&rows);
        assert!(
            csv.lines()
                .next()
                .unwrap()
                .ends_with(",not_restarted_7_days,wakes_armed,awake_for_maintenance")
        );
        assert!(csv.lines().nth(1).unwrap().ends_with(",1,0,0"));
    }

    #[test]
    fn maintenance_time_is_cut_out_of_the_windows() {
        let h = MON;
        let spans = [span(h, h + 10 * HOUR_MS)];
        let holes = [
            span(h - HOUR_MS, h + HOUR_MS),
            span(h + 3 * HOUR_MS, h + 4 * HOUR_MS),
            span(h + 9 * HOUR_MS, h + 12 * HOUR_MS),
        ];
        assert_eq!(
            without_maintenance(&spans, &holes),
            vec![
                span(h + HOUR_MS, h + 3 * HOUR_MS),
                span(h + 4 * HOUR_MS, h + 9 * HOUR_MS)
            ]
        );
        assert_eq!(without_maintenance(&spans, &[]), spans.to_vec());
    }

    /// Issue 19: a device awake for its patch night is not "left on"; the report says
    /// how many were awake for maintenance and how many wake-ups were armed.
    #[test]
    fn compliance_counts_maintenance_apart() {
        let ctx = ctx();
        let mut p = policy();
        p.maintenance = vec![veille_proto::v1::MaintenanceWindow {
            days: ALL_DAYS,
            week_of_month: 0,
            start: "02:00".into(),
            end: "03:00".into(),
            time_zone: "UTC".into(),
        }];
        // Awake from Monday 20:00 to Tuesday 06:00 UTC (the whole window).
        let hours: Vec<(i64, HourRollup)> = (20..30)
            .map(|i| (MON + i * HOUR_MS, hour(1.0, 0.0)))
            .collect();
        let mut d = device(ChassisClass::Desktop, hours);
        d.events.push((
            EventKind::PolicyWakeArmed,
            "1767664800 maintenance[0] via rtc0".into(),
        ));
        let policies = BTreeMap::from([("acme".to_owned(), p.clone())]);
        let rows = compliance(&ctx, &policies, &[d.clone()], MON, MON + 2 * 24 * HOUR_MS);
        assert_eq!(rows[0].left_on, 1);
        assert!(
            (rows[0].left_on_hours - 9.0).abs() < 1e-9,
            "{}",
            rows[0].left_on_hours
        );
        assert_eq!(rows[0].awake_for_maintenance, 1);
        assert_eq!(rows[0].wakes_armed, 1);
        assert!(
            compliance_csv(&rows)
                .lines()
                .next()
                .unwrap()
                .ends_with(",wakes_armed,awake_for_maintenance")
        );
        // Without the maintenance window, all ten hours count.
        p.maintenance.clear();
        let policies = BTreeMap::from([("acme".to_owned(), p)]);
        let rows = compliance(&ctx, &policies, &[d], MON, MON + 2 * 24 * HOUR_MS);
        assert!((rows[0].left_on_hours - 10.0).abs() < 1e-9);
        assert_eq!(rows[0].awake_for_maintenance, 0);
    }
}
