//! Rules a `ReportBatch` must pass. The agent checks a report before it spools it (so a
//! bug is caught where it happens) and the collector checks every batch before it
//! stores anything (so a forged or broken batch never reaches the store). Both call
//! [`validate_batch`]; there is no second copy of these rules.

use crate::defaults::{
    MAX_CHASSIS_TYPE, MAX_FUTURE_SKEW_MS, MAX_ID_LEN, MAX_INTERVAL_MS, MAX_ITEMS,
    MAX_REPORTS_PER_BATCH, MAX_TEXT_LEN, MIN_TIMESTAMP_MS,
};
use crate::v1::{Inventory, Report, ReportBatch};

/// Why a batch was refused. `field` is a path into the batch (`reports[2].end_unix_ms`)
/// and `value` the offending value as text, so an operator can find the culprit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} = {value}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl ValidationError {
    pub(crate) fn new(
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Checks a batch against the contract, with `now_ms` the receiver's wall clock.
///
/// Checks: identifiers present and bounded, at most [`MAX_REPORTS_PER_BATCH`] reports,
/// seqs strictly increasing within the batch, each interval non-empty, not longer than a
/// day, not before 2000, not more than [`MAX_FUTURE_SKEW_MS`] ahead of `now_ms`, state
/// times summing exactly to the interval, intervals of one boot session not overlapping,
/// `cpu_util` in [0, 1], measurements and temperatures finite and plausible, strings
/// bounded.
pub fn validate_batch(batch: &ReportBatch, now_ms: i64) -> Result<(), ValidationError> {
    check_id("device_id", &batch.device_id)?;
    if batch.device_id.contains(['/', '+', '#']) {
        // The device id is a segment of MQTT topics.
        return Err(ValidationError::new(
            "device_id",
            quoted(&batch.device_id),
            "must not contain '/', '+' or '#'",
        ));
    }
    check_text("agent_version", &batch.agent_version)?;
    if batch.reports.len() > MAX_REPORTS_PER_BATCH {
        return Err(ValidationError::new(
            "reports",
            format!("{} reports", batch.reports.len()),
            format!("at most {MAX_REPORTS_PER_BATCH} reports per batch"),
        ));
    }
    if batch.reports.is_empty() && batch.inventory.is_none() {
        return Err(ValidationError::new(
            "reports",
            "0 reports",
            "a batch carries at least one report or an inventory",
        ));
    }
    let mut previous: Option<&Report> = None;
    for (i, report) in batch.reports.iter().enumerate() {
        validate_report(&format!("reports[{i}]"), report, now_ms)?;
        if let Some(prev) = previous {
            if report.seq <= prev.seq {
                return Err(ValidationError::new(
                    format!("reports[{i}].seq"),
                    report.seq,
                    format!(
                        "seqs must increase within a batch (previous is {})",
                        prev.seq
                    ),
                ));
            }
            if report.boot_id == prev.boot_id && report.start_unix_ms < prev.end_unix_ms {
                return Err(ValidationError::new(
                    format!("reports[{i}].start_unix_ms"),
                    report.start_unix_ms,
                    format!(
                        "overlaps the previous report of the same boot, which ends at {}",
                        prev.end_unix_ms
                    ),
                ));
            }
        }
        previous = Some(report);
    }
    if let Some(inventory) = &batch.inventory {
        validate_inventory(inventory)?;
    }
    Ok(())
}

/// Checks one report; `at` is its path in the batch for error messages.
pub fn validate_report(at: &str, r: &Report, now_ms: i64) -> Result<(), ValidationError> {
    let field = |name: &str| format!("{at}.{name}");
    check_id(&field("boot_id"), &r.boot_id)?;
    if r.seq == 0 {
        return Err(ValidationError::new(field("seq"), 0, "seq starts at 1"));
    }
    let latest = now_ms.saturating_add(MAX_FUTURE_SKEW_MS);
    for (name, value) in [
        ("start_unix_ms", r.start_unix_ms),
        ("end_unix_ms", r.end_unix_ms),
    ] {
        if value < MIN_TIMESTAMP_MS {
            return Err(ValidationError::new(
                field(name),
                value,
                "before 2000-01-01: is the device's clock set?",
            ));
        }
        if value > latest {
            return Err(ValidationError::new(
                field(name),
                value,
                format!(
                    "{} s in the future of the receiver's clock ({now_ms}); at most {} s allowed",
                    (value - now_ms) / 1000,
                    MAX_FUTURE_SKEW_MS / 1000
                ),
            ));
        }
    }
    if r.end_unix_ms <= r.start_unix_ms {
        return Err(ValidationError::new(
            field("end_unix_ms"),
            r.end_unix_ms,
            format!("must be after start_unix_ms ({})", r.start_unix_ms),
        ));
    }
    let length_ms = r.end_unix_ms - r.start_unix_ms;
    if length_ms > MAX_INTERVAL_MS {
        return Err(ValidationError::new(
            field("end_unix_ms"),
            r.end_unix_ms,
            format!("interval of {length_ms} ms is longer than a day"),
        ));
    }
    let states = [r.active_ms, r.idle_ms, r.sleep_ms]
        .iter()
        .try_fold(0u64, |sum, v| sum.checked_add(*v));
    if states != Some(length_ms as u64) {
        return Err(ValidationError::new(
            field("active_ms+idle_ms+sleep_ms"),
            format!("{}+{}+{}", r.active_ms, r.idle_ms, r.sleep_ms),
            format!("must sum to the interval length, {length_ms} ms"),
        ));
    }
    let boot_ms = r.boot_time_unix_s.saturating_mul(1000);
    // One second of slack: boot time is derived from the wall clock minus uptime, both
    // rounded.
    if r.boot_time_unix_s <= 0 || boot_ms > r.start_unix_ms.saturating_add(1000) {
        return Err(ValidationError::new(
            field("boot_time_unix_s"),
            r.boot_time_unix_s,
            format!(
                "must be positive and not after the interval start ({})",
                r.start_unix_ms
            ),
        ));
    }
    if !(0.0..=1.0).contains(&r.cpu_util) {
        return Err(ValidationError::new(
            field("cpu_util"),
            r.cpu_util,
            "must be within [0, 1]",
        ));
    }
    check_count(&field("events"), r.events.len())?;
    for (j, e) in r.events.iter().enumerate() {
        check_text(&field(&format!("events[{j}].detail")), &e.detail)?;
    }
    check_count(&field("measurements"), r.measurements.len())?;
    for (j, m) in r.measurements.iter().enumerate() {
        if !m.energy_j.is_finite() || m.energy_j < 0.0 {
            return Err(ValidationError::new(
                field(&format!("measurements[{j}].energy_j")),
                m.energy_j,
                "must be a finite, non-negative number of joules",
            ));
        }
    }
    check_count(&field("temperatures"), r.temperatures.len())?;
    for (j, t) in r.temperatures.iter().enumerate() {
        check_id(&field(&format!("temperatures[{j}].sensor")), &t.sensor)?;
        if !t.celsius.is_finite() || !(-60.0..=200.0).contains(&t.celsius) {
            return Err(ValidationError::new(
                field(&format!("temperatures[{j}].celsius")),
                t.celsius,
                "must be a finite temperature between -60 and 200 °C",
            ));
        }
    }
    Ok(())
}

fn validate_inventory(inv: &Inventory) -> Result<(), ValidationError> {
    for (name, value) in [
        ("inventory.hostname", &inv.hostname),
        ("inventory.os_name", &inv.os_name),
        ("inventory.os_version", &inv.os_version),
        ("inventory.kernel", &inv.kernel),
        ("inventory.manufacturer", &inv.manufacturer),
        ("inventory.model", &inv.model),
        ("inventory.serial", &inv.serial),
        ("inventory.cpu_model", &inv.cpu_model),
        ("inventory.bios_release_date", &inv.bios_release_date),
        ("inventory.agent_version", &inv.agent_version),
        ("inventory.site", &inv.site),
    ] {
        check_text(name, value)?;
    }
    if inv.chassis_type > u32::from(MAX_CHASSIS_TYPE) {
        return Err(ValidationError::new(
            "inventory.chassis_type",
            inv.chassis_type.to_string(),
            "an SMBIOS chassis type code is 0..=127 (the lock bit cleared)",
        ));
    }
    check_count("inventory.monitors", inv.monitors.len())?;
    check_count("inventory.disks", inv.disks.len())?;
    check_count("inventory.tags", inv.tags.len())?;
    for (i, tag) in inv.tags.iter().enumerate() {
        check_text(&format!("inventory.tags[{i}]"), tag)?;
    }
    for (i, m) in inv.monitors.iter().enumerate() {
        for (name, value) in [
            ("manufacturer", &m.manufacturer),
            ("serial", &m.serial),
            ("name", &m.name),
        ] {
            check_text(&format!("inventory.monitors[{i}].{name}"), value)?;
        }
    }
    for (i, d) in inv.disks.iter().enumerate() {
        check_text(&format!("inventory.disks[{i}].name"), &d.name)?;
    }
    check_count("inventory.interfaces", inv.interfaces.len())?;
    for (i, n) in inv.interfaces.iter().enumerate() {
        check_text(&format!("inventory.interfaces[{i}].name"), &n.name)?;
        check_text(&format!("inventory.interfaces[{i}].mac"), &n.mac)?;
        check_count(
            &format!("inventory.interfaces[{i}].ipv4_subnets"),
            n.ipv4_subnets.len(),
        )?;
        for (j, subnet) in n.ipv4_subnets.iter().enumerate() {
            check_text(
                &format!("inventory.interfaces[{i}].ipv4_subnets[{j}]"),
                subnet,
            )?;
        }
    }
    Ok(())
}

pub(crate) fn check_id(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "\"\"", "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            field,
            format!("{} bytes", value.len()),
            format!("at most {MAX_ID_LEN} bytes"),
        ));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ValidationError::new(
            field,
            quoted(value),
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

pub(crate) fn check_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_TEXT_LEN {
        return Err(ValidationError::new(
            field,
            format!("{} bytes", value.len()),
            format!("at most {MAX_TEXT_LEN} bytes"),
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(
            field,
            quoted(value),
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub(crate) fn check_count(field: &str, n: usize) -> Result<(), ValidationError> {
    if n > MAX_ITEMS {
        return Err(ValidationError::new(
            field,
            format!("{n} items"),
            format!("at most {MAX_ITEMS}"),
        ));
    }
    Ok(())
}

/// Quotes a value for an error message, escaping control characters and truncating so
/// a hostile value cannot flood logs.
pub(crate) fn quoted(value: &str) -> String {
    let short: String = value.chars().take(64).collect();
    format!("{short:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Event, EventKind, Measurement, Temperature};

    const NOW: i64 = 1_790_000_000_000;

    fn report(seq: u64, start: i64, end: i64) -> Report {
        Report {
            boot_id: "b1".into(),
            seq,
            start_unix_ms: start,
            end_unix_ms: end,
            boot_time_unix_s: (start - 3_600_000) / 1000,
            uptime_s: 3600,
            active_ms: (end - start) as u64 / 2,
            idle_ms: (end - start) as u64 - (end - start) as u64 / 2,
            sleep_ms: 0,
            cpu_util: 0.25,
            ..Default::default()
        }
    }

    fn batch(reports: Vec<Report>) -> ReportBatch {
        ReportBatch {
            device_id: "dev-1".into(),
            reports,
            inventory: None,
            agent_version: "0.1.0".into(),
        }
    }

    fn err(b: &ReportBatch) -> ValidationError {
        validate_batch(b, NOW).expect_err("batch should be refused")
    }

    #[test]
    fn a_good_batch_passes() {
        let b = batch(vec![
            report(1, NOW - 120_000, NOW - 60_000),
            report(2, NOW - 60_000, NOW),
        ]);
        assert_eq!(validate_batch(&b, NOW), Ok(()));
    }

    #[test]
    fn end_before_start_names_the_field_and_value() {
        let mut r = report(1, NOW - 60_000, NOW);
        r.end_unix_ms = r.start_unix_ms - 5;
        r.active_ms = 0;
        r.idle_ms = 0;
        let e = err(&batch(vec![r]));
        assert_eq!(e.field, "reports[0].end_unix_ms");
        assert_eq!(e.value, (NOW - 60_005).to_string());
        assert!(e.to_string().contains("must be after start_unix_ms"), "{e}");
    }

    #[test]
    fn states_must_sum_to_the_interval() {
        let mut r = report(1, NOW - 60_000, NOW);
        r.idle_ms += 1;
        let e = err(&batch(vec![r]));
        assert_eq!(e.field, "reports[0].active_ms+idle_ms+sleep_ms");
        assert_eq!(e.value, "30000+30001+0");
    }

    #[test]
    fn overflowing_states_are_refused_not_wrapped() {
        let mut r = report(1, NOW - 60_000, NOW);
        r.active_ms = u64::MAX;
        r.idle_ms = 60_001;
        assert_eq!(
            err(&batch(vec![r])).field,
            "reports[0].active_ms+idle_ms+sleep_ms"
        );
    }

    #[test]
    fn future_timestamps_beyond_five_minutes_are_refused() {
        let day = 86_400_000;
        let e = err(&batch(vec![report(1, NOW + day - 60_000, NOW + day)]));
        assert_eq!(e.field, "reports[0].start_unix_ms");
        // Within the allowed skew it passes.
        let ok = batch(vec![report(1, NOW + 200_000, NOW + 260_000)]);
        assert_eq!(validate_batch(&ok, NOW), Ok(()));
        let e = err(&batch(vec![report(1, NOW + 250_000, NOW + 310_000)]));
        assert_eq!(e.field, "reports[0].end_unix_ms");
    }

    #[test]
    fn cpu_util_outside_unit_range_or_nan_is_refused() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let mut r = report(1, NOW - 60_000, NOW);
            r.cpu_util = bad;
            let e = err(&batch(vec![r]));
            assert_eq!(e.field, "reports[0].cpu_util");
        }
    }

    #[test]
    fn seqs_must_increase_and_intervals_not_overlap() {
        let e = err(&batch(vec![
            report(2, NOW - 120_000, NOW - 60_000),
            report(2, NOW - 60_000, NOW),
        ]));
        assert_eq!(e.field, "reports[1].seq");
        let e = err(&batch(vec![
            report(1, NOW - 120_000, NOW - 60_000),
            report(2, NOW - 90_000, NOW),
        ]));
        assert_eq!(e.field, "reports[1].start_unix_ms");
        let e = err(&batch(vec![report(0, NOW - 60_000, NOW)]));
        assert_eq!(e.field, "reports[0].seq");
    }

    #[test]
    fn identifiers_are_bounded_and_topic_safe() {
        let mut b = batch(vec![report(1, NOW - 60_000, NOW)]);
        b.device_id = "a/b".into();
        assert_eq!(err(&b).field, "device_id");
        b.device_id = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(err(&b).value, format!("{} bytes", MAX_ID_LEN + 1));
        b.device_id = String::new();
        assert_eq!(err(&b).field, "device_id");
        let mut b = batch(vec![report(1, NOW - 60_000, NOW)]);
        b.reports[0].boot_id = "has space".into();
        assert_eq!(err(&b).field, "reports[0].boot_id");
    }

    #[test]
    fn long_or_control_text_is_refused() {
        let mut b = batch(vec![report(1, NOW - 60_000, NOW)]);
        b.reports[0].events.push(Event {
            kind: EventKind::Boot as i32,
            at_unix_ms: NOW - 60_000,
            count: 1,
            detail: "x".repeat(MAX_TEXT_LEN + 1),
        });
        assert_eq!(err(&b).field, "reports[0].events[0].detail");
        let mut b = batch(vec![]);
        b.inventory = Some(Inventory {
            hostname: "pc\u{1b}[31m".into(),
            ..Default::default()
        });
        assert_eq!(err(&b).field, "inventory.hostname");
        // A chassis code with the lock bit still set (or any value past a byte) is
        // not a code the agent sends: refused, not folded into a class silently.
        for chassis_type in [0x80, 0x83, 1000] {
            let mut b = batch(vec![]);
            b.inventory = Some(Inventory {
                hostname: "pc".into(),
                chassis_type,
                ..Default::default()
            });
            assert_eq!(err(&b).field, "inventory.chassis_type");
        }
        let mut b = batch(vec![]);
        b.inventory = Some(Inventory {
            hostname: "pc".into(),
            chassis_type: u32::from(MAX_CHASSIS_TYPE),
            ..Default::default()
        });
        assert_eq!(validate_batch(&b, NOW), Ok(()));
    }

    #[test]
    fn measurements_and_temperatures_must_be_plausible() {
        let mut b = batch(vec![report(1, NOW - 60_000, NOW)]);
        b.reports[0].measurements.push(Measurement {
            energy_j: -1.0,
            source: 1,
        });
        assert_eq!(err(&b).field, "reports[0].measurements[0].energy_j");
        let mut b = batch(vec![report(1, NOW - 60_000, NOW)]);
        b.reports[0].temperatures.push(Temperature {
            sensor: "cpu".into(),
            celsius: 900.0,
        });
        assert_eq!(err(&b).field, "reports[0].temperatures[0].celsius");
    }

    #[test]
    fn an_empty_batch_or_a_dead_rtc_is_refused() {
        assert_eq!(err(&batch(vec![])).field, "reports");
        let e = err(&batch(vec![report(1, 60_000, 120_000)]));
        assert_eq!(e.field, "reports[0].start_unix_ms");
        assert!(e.reason.contains("2000"));
    }

    #[test]
    fn boot_time_after_the_interval_is_refused() {
        let mut r = report(1, NOW - 60_000, NOW);
        r.boot_time_unix_s = NOW / 1000;
        assert_eq!(err(&batch(vec![r])).field, "reports[0].boot_time_unix_s");
    }
}
