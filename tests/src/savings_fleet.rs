//! A fleet for the proof of savings (issue 19), shared by `tests/savings.rs` (CLI and
//! API) and `tests/web.rs` (the page): a dry-run then an enforced policy set through
//! the CLI, then sites whose devices stay on day and night before enforcement and,
//! where they obey, are off from 18:00 to 08:00 UTC after it.

use std::path::Path;
use std::process::Command;

use veille_proto::v1::{Inventory, Report, ReportBatch};

use crate::{bin, grpc};

pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;

/// `veille-collector ARGS --data-dir DATA`: (exit code, stdout, stderr).
pub fn collector_cli(args: &[&str], data: &Path) -> (Option<i32>, String, String) {
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

/// Sets the next version of org "default"'s policy in `mode` (a night window).
pub fn set_policy(data: &Path, files: &Path, mode: &str) {
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
pub struct Calendar {
    pub first_day: i64,
    pub days: i64,
    pub enforced_from: i64,
}

/// `device` at `site` over the calendar: always on before enforcement (one boot), and,
/// from then on when `obeys`, on 08:00 to 18:00 UTC only (a boot a day).
pub async fn send_fleet_device(
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

/// Sets a dry-run then an enforced policy, and sends 16 days up to yesterday of three
/// devices at "HQ" that obey from 7 days ago and three at "Annex" that do not. Returns
/// the UTC date enforcement started (for `--enforced-from`: the versions were set
/// today).
pub async fn seed(data: &Path, files: &Path, url: &str, token: &str) -> String {
    set_policy(data, files, "dry-run");
    set_policy(data, files, "enforce");
    let today = crate::now_unix_ms().div_euclid(DAY) * DAY;
    let cal = Calendar {
        first_day: today - 16 * DAY,
        days: 16,
        enforced_from: today - 7 * DAY,
    };
    for i in 0..3 {
        send_fleet_device((url, token), &format!("hq-{i}"), "HQ", cal, true).await;
        send_fleet_device((url, token), &format!("annex-{i}"), "Annex", cal, false).await;
    }
    jiff::Timestamp::from_millisecond(cal.enforced_from)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}
