//! Proof of savings end to end (issue 19): the real collector, a dry-run then an
//! enforced policy set through the CLI, and a small fleet sent over gRPC whose devices
//! stay on day and night before enforcement and are off from 18:00 to 08:00 after it.
//! `report savings` (through the running server's API) must find the drop per site
//! and call it significant; a site whose devices did not change must not.

use std::path::Path;
use std::process::Command;

use veille_proto::v1::{Inventory, Report, ReportBatch};
use veille_tests::{Collector, bin, grpc, now_unix_ms};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn collector_cli(args: &[&str], data: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(bin("veille-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn set_policy(data: &Path, files: &Path, mode: &str) {
    let path = files.join(format!("{mode}.toml"));
    std::fs::write(
        &path,
        format!(
            "org = \"default\"\nmode = \"{mode}\"\nidle_threshold_s = 600\nwarning_s = 300\n\n\
             [[windows]]\ndays = [\"all\"]\nstart = \"18:00\"\nend = \"08:00\"\n\
             time_zone = \"UTC\"\n"
        ),
    )
    .unwrap();
    let (code, _, err) = collector_cli(&["policy", "set", "--file", path.to_str().unwrap()], data);
    assert_eq!(code, Some(0), "policy set: {err}");
}

/// An hour-long report ending at `end_ms` of a machine booted at `boot_ms`, active a
/// few minutes that vary with `n` (day-to-day noise: alternate days differ, so two
/// periods of an even number of days have the same mean).
fn hour(boot_id: &str, seq: u64, end_ms: i64, boot_ms: i64, n: i64) -> Report {
    let active_ms = (5 + (n * 7) % 20) as u64 * 60_000;
    Report {
        boot_id: boot_id.to_owned(),
        seq,
        start_unix_ms: end_ms - HOUR,
        end_unix_ms: end_ms,
        boot_time_unix_s: boot_ms / 1000,
        uptime_s: ((end_ms - boot_ms) / 1000) as u64,
        active_ms,
        idle_ms: HOUR as u64 - active_ms,
        sleep_ms: 0,
        cpu_util: 0.05 + (n % 5) as f64 / 100.0,
        ..Default::default()
    }
}

/// The days the fleet reports: `days` days from `first_day` (UTC midnight, ms), the
/// policy enforced from `enforced_from` (a UTC midnight among them).
#[derive(Clone, Copy)]
struct Calendar {
    first_day: i64,
    days: i64,
    enforced_from: i64,
}

/// `device` at `site` over the calendar: always on before enforcement (one boot), and,
/// from then on when `obeys`, on 08:00 to 18:00 UTC only (a boot a day).
async fn send_fleet_device(
    (url, token): (&str, &str),
    device: &str,
    site: &str,
    cal: Calendar,
    obeys: bool,
) {
    let Calendar {
        first_day,
        days,
        enforced_from,
    } = cal;
    let mut client = grpc::client(url).await;
    let mut seq = 0;
    let mut inventory = Some(Inventory {
        hostname: device.to_owned(),
        site: site.to_owned(),
        ..Default::default()
    });
    let always_boot = first_day - HOUR;
    for d in 0..days {
        let day = first_day + d * DAY;
        let mut reports = Vec::new();
        let off_at_night = obeys && day >= enforced_from;
        let (boot_id, boot_ms, hours) = if off_at_night {
            (format!("{device}-{d}"), day + 8 * HOUR, 9..=18)
        } else {
            (format!("{device}-always"), always_boot, 1..=24)
        };
        for h in hours {
            seq += 1;
            reports.push(hour(&boot_id, seq, day + h * HOUR, boot_ms, d % 2));
        }
        let batch = ReportBatch {
            device_id: device.to_owned(),
            reports,
            inventory: inventory.take(),
            agent_version: "test".into(),
        };
        grpc::send(&mut client, token, batch).await.unwrap();
    }
}

#[test]
fn report_savings_finds_the_drop_of_an_enforced_policy_per_site() {
    let (data, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    set_policy(data.path(), files.path(), "dry-run");
    set_policy(data.path(), files.path(), "enforce");

    // Today's UTC midnight; data from 16 days ago to yesterday, enforcement 7 days ago.
    let today = now_unix_ms().div_euclid(DAY) * DAY;
    let first_day = today - 16 * DAY;
    let enforced_from = today - 7 * DAY;
    let (url, token) = (collector.url(), collector.token());
    let cal = Calendar {
        first_day,
        days: 16,
        enforced_from,
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        for i in 0..3 {
            let to = (url.as_str(), token.as_str());
            send_fleet_device(to, &format!("hq-{i}"), "HQ", cal, true).await;
            send_fleet_device(to, &format!("annex-{i}"), "Annex", cal, false).await;
        }
    });

    // Version 2 was set today: no whole day of it yet.
    let (code, _, err) =
        collector_cli(&["report", "savings", "--policy-version", "2"], data.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no whole day of it has passed yet"), "{err}");
    // Version 1 is a dry run.
    let (code, _, err) =
        collector_cli(&["report", "savings", "--policy-version", "1"], data.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("dry-run mode"), "{err}");

    let from = jiff::Timestamp::from_millisecond(enforced_from)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let (code, out, err) = collector_cli(
        &[
            "report",
            "savings",
            "--policy-version",
            "2",
            "--enforced-from",
            &from,
            "--format",
            "json",
        ],
        data.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["org"], "default");
    assert_eq!(r["periods"]["baseline_is_dry_run"], false);
    let sites = r["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{out}");
    let (annex, hq) = (&sites[0], &sites[1]);
    assert_eq!(hq["site"], "HQ");
    // The collector's day is Europe/Paris: 6 whole enforced days at least, the day of
    // the change left out.
    assert!(hq["enforced_days"].as_u64().unwrap() >= 5, "{hq}");
    assert!(hq["baseline_days"].as_u64().unwrap() >= 5, "{hq}");
    assert_eq!(hq["significant"], true, "{hq}");
    let saved = hq["saved_kwh_per_device_day"].as_f64().unwrap();
    let before = hq["baseline_kwh_per_device_day"].as_f64().unwrap();
    assert!(saved > 0.2 * before, "{hq}");
    assert!(hq["saved_low"].as_f64().unwrap() > 0.0, "{hq}");
    assert!(
        hq["verdict"].as_str().unwrap().starts_with("saved "),
        "{hq}"
    );
    assert_eq!(annex["site"], "Annex");
    assert_eq!(annex["significant"], false, "{annex}");

    // The table says it in words.
    let (code, out, err) = collector_cli(
        &[
            "report",
            "savings",
            "--policy-version",
            "2",
            "--enforced-from",
            &from,
        ],
        data.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("(before the policy)"), "{out}");
    assert!(out.contains("no significant difference"), "{out}");
}
