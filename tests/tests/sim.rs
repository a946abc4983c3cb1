//! `veille-sim` end to end: the real simulator binary sends a simulated fleet's history
//! and live reports to the real collector over gRPC; the store then holds exactly the
//! reports the simulator's library generates for that period, a second run adds only
//! duplicates, and the consumption report sees the fleet's off nights.

use std::process::Command;

use veille_sim::{Cut, FleetSpec, Mode};
use veille_tests::{Collector, bin, devices_json, stored_reports};

fn sim(collector: &Collector, args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin("veille-sim"))
        .args([
            "--collector",
            &collector.url(),
            "--token",
            &collector.token(),
            "--json",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "veille-sim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().last().expect("a summary line"))
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

const DEVICES: usize = 12;

#[test]
fn simulated_history_is_stored_exactly_and_resending_it_is_harmless() {
    let data = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(data.path(), "127.0.0.1:0");
    let n = DEVICES.to_string();
    let args = ["--devices", n.as_str(), "--seed", "7", "--days", "4"];
    let first = sim(&collector, &args);
    let sent = first["reports"].as_u64().unwrap();
    assert!(sent > 200, "{first}");
    assert_eq!(first["stored"].as_u64(), Some(sent), "{first}");
    assert_eq!(first["conflicts"].as_u64(), Some(0));

    let devices = devices_json(data.path());
    assert_eq!(devices.len(), DEVICES);
    let total: u64 = devices.iter().map(|d| d["reports"].as_u64().unwrap()).sum();
    assert_eq!(total, sent);
    assert!(
        devices
            .iter()
            .all(|d| d["hostname"].as_str().is_some_and(|h| !h.is_empty()))
    );

    // The same fleet again (its period now ends a little later): nothing is doubled.
    let again = sim(&collector, &args);
    assert_eq!(again["conflicts"].as_u64(), Some(0), "{again}");
    assert!(
        again["duplicates"].as_u64().unwrap() + 5 * DEVICES as u64 >= sent,
        "{again}"
    );
    let after: u64 = devices_json(data.path())
        .iter()
        .map(|d| d["reports"].as_u64().unwrap())
        .sum();
    assert_eq!(after, sent + again["stored"].as_u64().unwrap());

    // The consumption report sees the nights off (SHUTDOWN then BOOT) of office machines.
    let out = Command::new(bin("veille-collector"))
        .args([
            "report",
            "consumption",
            "--by",
            "device",
            "--format",
            "json",
            "--data-dir",
        ])
        .arg(data.path())
        .args(["--from", &day(-3), "--to", &day(-1)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), DEVICES, "{v}");
    assert!(
        rows.iter()
            .any(|r| r["inferred_off_pct"].as_f64().unwrap() > 20.0),
        "{v}"
    );
    assert!(rows.iter().all(|r| r["kwh"].as_f64().unwrap() >= 0.0));

    assert_eq!(collector.proc.stop(), Some(0));
    // Exactly the library's reports for the first run's period, device by device.
    let fleet = FleetSpec::new(7, DEVICES);
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let (from, to) = (
        first["from_ms"].as_i64().unwrap(),
        first["to_ms"].as_i64().unwrap(),
    );
    for dev in fleet.iter() {
        let expected = veille_sim::reports::reports(
            &dev,
            &tz,
            from,
            to,
            Mode::Realistic,
            Cut { interval_s: 3600 },
        );
        let stored = stored_reports(data.path(), &dev.device_id);
        let first_run: Vec<_> = stored.into_iter().filter(|r| r.end_unix_ms <= to).collect();
        assert_eq!(first_run, expected, "{:?} {}", dev.archetype, dev.device_id);
    }
}

#[test]
fn a_live_fleet_reports_every_interval() {
    let data = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(data.path(), "127.0.0.1:0");
    let live = sim(
        &collector,
        &[
            "--devices",
            "5",
            "--realtime",
            "--keep-awake",
            "--report-interval-s",
            "1",
            "--duration-s",
            "4",
        ],
    );
    let sent = live["reports"].as_u64().unwrap();
    // 5 devices, one report a second for 4 s (the first and last may fall outside).
    assert!((10..=20).contains(&sent), "{live}");
    assert_eq!(live["stored"].as_u64(), Some(sent));
    let stored: u64 = devices_json(data.path())
        .iter()
        .map(|d| d["reports"].as_u64().unwrap())
        .sum();
    assert_eq!(stored, sent);
    assert_eq!(collector.proc.stop(), Some(0));
}

fn day(offset_days: i64) -> String {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
    now.date()
        .checked_add(jiff::Span::new().days(offset_days))
        .unwrap()
        .to_string()
}
