//! `raw_retention_days` end to end: a real collector purges raw reports past the
//! retention, the consumption report does not change (it reads the hourly rollups), a
//! resend of a purged report is a duplicate, and `rebuild-rollups` keeps the closed
//! hours.

use std::process::Command;

use veille_proto::v1::{Report, ReportBatch};
use veille_tests::{Collector, bin, devices_json, grpc, now_unix_ms, stored_seqs};

const HOUR_MS: i64 = 3_600_000;
const DEVICE: &str = "retained-dev";

/// 60 one-hour reports of one boot session, the last ending an hour ago: the first
/// ~36 are older than a one-day retention, the rest are not.
fn history() -> ReportBatch {
    let end = (now_unix_ms() / HOUR_MS - 1) * HOUR_MS;
    let start = end - 60 * HOUR_MS;
    let reports = (1..=60u64)
        .map(|seq| {
            let s = start + (seq as i64 - 1) * HOUR_MS;
            Report {
                boot_id: "boot-r".into(),
                seq,
                start_unix_ms: s,
                end_unix_ms: s + HOUR_MS,
                boot_time_unix_s: start / 1000,
                uptime_s: ((s + HOUR_MS - start) / 1000) as u64,
                active_ms: 1_200_000 + seq * 1000,
                idle_ms: 2_400_000 - seq * 1000,
                cpu_util: 0.2,
                ..Default::default()
            }
        })
        .collect();
    ReportBatch {
        device_id: DEVICE.into(),
        reports,
        inventory: None,
        agent_version: "test".into(),
    }
}

fn day(offset_days: i64) -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(offset_days))
        .unwrap()
        .to_string()
}

/// The per-device consumption rows over the last week, as JSON values, without the
/// shares of time.
fn consumption(data: &std::path::Path) -> serde_json::Value {
    let out = Command::new(bin("veille-collector"))
        .args([
            "report",
            "consumption",
            "--by",
            "device",
            "--format",
            "json",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(["--from", &day(-6), "--to", &day(1)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The period ends now, so the unknown share of the elapsed time grows between two
    // calls; every energy figure must stay equal.
    for row in v["rows"].as_array_mut().unwrap() {
        let row = row.as_object_mut().unwrap();
        row.remove("modelled_pct");
        row.remove("unknown_pct");
    }
    v["rows"].clone()
}

fn send(url: &str, token: &str, batch: ReportBatch) -> veille_proto::v1::Ack {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = grpc::client(url).await;
        grpc::send(&mut c, token, batch)
            .await
            .expect("batch accepted")
    })
}

#[test]
fn raw_reports_past_the_retention_are_purged_and_the_energy_figures_stay() {
    let data = tempfile::tempdir().unwrap();
    let batch = history();
    let keep = [("VEILLE_RAW_RETENTION_DAYS", "0")];
    let mut collector = Collector::start_with("keep", data.path(), "127.0.0.1:0", None, &keep);
    let ack = send(&collector.url(), &collector.token(), batch.clone());
    assert_eq!(ack.stored, 60);
    let before = consumption(data.path());
    assert_eq!(before.as_array().unwrap().len(), 1, "{before}");
    assert!(before[0]["kwh"].as_f64().unwrap() > 0.0);
    collector.proc.wait_for_line("kept forever");
    assert_eq!(collector.proc.stop(), Some(0));
    assert_eq!(stored_seqs(data.path(), "default", DEVICE).len(), 60);

    let one_day = [("VEILLE_RAW_RETENTION_DAYS", "1")];
    let mut collector = Collector::start_with("purge", data.path(), "127.0.0.1:0", None, &one_day);
    let line = collector.proc.wait_for_line("purged raw reports");
    let cutoff = (now_unix_ms() - 24 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let expected: Vec<u64> = batch
        .reports
        .iter()
        .filter(|r| r.end_unix_ms < cutoff)
        .map(|r| r.seq)
        .collect();
    assert!(
        (30..=40).contains(&expected.len()),
        "{} reports older than a day",
        expected.len()
    );
    assert!(
        line.contains(&format!("reports={}", expected.len())),
        "{line}"
    );

    let devices = devices_json(data.path());
    assert_eq!(
        devices[0]["raw_purged_through_seq"].as_u64(),
        expected.last().copied()
    );
    assert_eq!(
        devices[0]["reports"], 60,
        "the count of reports ever stored stays"
    );
    assert_eq!(
        consumption(data.path()),
        before,
        "rollups carry the energy figures"
    );

    // The agent resends everything (say, a restored spool): nothing is counted twice.
    let ack = send(&collector.url(), &collector.token(), batch);
    assert_eq!((ack.stored, ack.duplicates), (0, 60));
    assert_eq!(consumption(data.path()), before);
    assert_eq!(collector.proc.stop(), Some(0));

    let seqs = stored_seqs(data.path(), "default", DEVICE);
    assert_eq!(seqs.len(), 60 - expected.len());
    assert_eq!(seqs.first().copied(), Some(expected.len() as u64 + 1));

    // Rebuilding rollups from what is left keeps the purged hours.
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
    assert_eq!(consumption(data.path()), before);
}
