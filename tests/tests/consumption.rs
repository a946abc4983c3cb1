//! The consumption report end to end: real agents report to a real collector, and the
//! report labels how each figure was obtained. An agent killed without a SHUTDOWN
//! leaves an unknown gap, never inferred off.

use std::process::Command;
use std::time::Duration;

use veille_tests::{Agent, Collector, bin, devices_json, wait_until};

fn day(offset_days: i64) -> String {
    let now = jiff::Timestamp::now();
    let d = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(offset_days))
        .unwrap();
    d.to_string()
}

fn consumption(data: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(bin("veille-collector"))
        .args(["report", "consumption", "--data-dir"])
        .arg(data)
        .args(["--from", &day(-1), "--to", &day(1)])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report consumption failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_killed_agent_leaves_unknown_time_never_off() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(data.path(), "127.0.0.1:0");
    let (url, token) = (collector.url(), collector.token());
    let dir = data.path().to_owned();
    let reports = |n: u64| {
        let dir = dir.clone();
        move || {
            devices_json(&dir)
                .first()
                .is_some_and(|d| d["reports"].as_u64() >= Some(n))
        }
    };
    let mut agent = Agent::start("agent-1", state.path(), &url, &token, Some("cons-dev"));
    wait_until("3 reports", reports(3));
    agent.proc.kill_hard();
    std::thread::sleep(Duration::from_secs(3));
    let mut agent = Agent::start("agent-2", state.path(), &url, &token, Some("cons-dev"));
    wait_until("6 reports", reports(6));
    assert_eq!(agent.proc.stop(), Some(0));
    wait_until("the spool to drain", || agent.spooled() == 0);

    // Through the running server's HTTP API.
    let json = consumption(data.path(), &["--by", "device", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{json}");
    let row = &rows[0];
    assert_eq!(row["key"], "default/cons-dev");
    let pct = |k: &str| row[k].as_f64().unwrap();
    assert!(pct("modelled_pct") > 0.0, "{row}");
    assert_eq!(pct("measured_pct"), 0.0, "no meter on this VM");
    assert_eq!(
        pct("inferred_off_pct"),
        0.0,
        "a kill without SHUTDOWN is not evidence of off: {row}"
    );
    assert!(pct("unknown_pct") > 0.0);
    let sum =
        pct("modelled_pct") + pct("measured_pct") + pct("inferred_off_pct") + pct("unknown_pct");
    assert!((sum - 100.0).abs() < 1e-6, "shares sum to {sum}");
    assert!(row["kwh"].as_f64().unwrap() > 0.0);
    assert!(row["hours_on"].as_f64().unwrap() > 0.0);
    assert_eq!(
        row["fallback_profile_devices"], 1,
        "no DMI here: class unknown, flagged"
    );

    // The same report read from the store once the server is gone: identical figures.
    assert_eq!(collector.proc.stop(), Some(0));
    let offline = consumption(data.path(), &["--by", "device", "--format", "json"]);
    let w: serde_json::Value = serde_json::from_str(&offline).unwrap();
    assert_eq!(w["rows"][0]["kwh"], row["kwh"]);
    assert!(w["rows"][0]["unknown_pct"].as_f64().unwrap() > 0.0);

    // rebuild-rollups gives the same report.
    let out = Command::new(bin("veille-collector"))
        .args(["rebuild-rollups", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt = consumption(data.path(), &["--by", "device", "--format", "json"]);
    let r: serde_json::Value = serde_json::from_str(&rebuilt).unwrap();
    assert_eq!(r["rows"][0]["kwh"], row["kwh"]);
    assert_eq!(r["rows"][0]["hours_on"], row["hours_on"]);

    // French Excel CSV: BOM, semicolons, decimal commas, a TOTAL line.
    let csv = consumption(
        data.path(),
        &["--format", "csv", "--csv-dialect", "excel-fr"],
    );
    assert!(csv.starts_with('\u{feff}'), "BOM");
    let lines: Vec<&str> = csv.trim_end().lines().collect();
    assert!(lines[0].contains("org;devices;kwh;"), "{}", lines[0]);
    assert!(lines.last().unwrap().starts_with("TOTAL;1;"));
    assert!(lines[1].contains(','), "decimal comma: {}", lines[1]);
}

#[test]
fn a_bad_date_is_a_usage_error_naming_the_value() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(bin("veille-collector"))
        .args(["report", "consumption", "--data-dir"])
        .arg(data.path())
        .args(["--from", "2026-02-30", "--to", "2026-03-01"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2026-02-30"), "{err}");
}
