//! `veille-collector demo`, the README's run command: collector and this machine's
//! agent in one process, data flowing within seconds, clean stop on SIGTERM.

use std::process::Command;

use veille_tests::{Proc, bin, devices_json, field, wait_until};

#[test]
fn the_demo_shows_this_machine_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new(bin("veille-collector"));
    cmd.arg("demo")
        .arg("--data-dir")
        .arg(&data)
        .arg("--grpc-listen")
        .arg("127.0.0.1:0")
        .arg("--http-listen")
        .arg("127.0.0.1:0");
    let mut demo = Proc::spawn("demo", cmd);
    let line = demo.wait_for_line("listening grpc=");
    assert!(field(&line, "grpc").is_some_and(|a| !a.ends_with(":0")));
    demo.wait_for_line("agent started");
    let device_id = veille_tests::this_device_id();
    wait_until("this machine to appear with its hostname", || {
        devices_json(&data).iter().any(|d| {
            d["device_id"] == device_id.as_str()
                && d["reports"].as_u64() >= Some(1)
                && !d["hostname"].as_str().unwrap_or("").is_empty()
        })
    });
    // The web page's address is logged (and printed in the banner).
    let web = demo.wait_for_line("web page");
    assert!(
        field(&web, "url").is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "{web}"
    );
    // The simulated fleet's year of history makes every report non-empty, the
    // 12-month trend included.
    demo.wait_for_line("simulated history sent");
    let year = report(
        &data,
        &[
            "consumption",
            "--by",
            "month",
            "--from",
            &day(-365),
            "--to",
            &day(0),
        ],
    );
    let months = year["rows"].as_array().expect("rows");
    assert!(
        months
            .iter()
            .filter(|m| m["kwh"].as_f64() > Some(0.0))
            .count()
            >= 12,
        "{year}"
    );
    let month = [day(-30), day(0)];
    let consumption = report(
        &data,
        &[
            "consumption",
            "--by",
            "site",
            "--from",
            &month[0],
            "--to",
            &month[1],
        ],
    );
    let rows = consumption["rows"].as_array().expect("rows");
    assert!(
        rows.iter()
            .any(|r| r["key"] == "hotel-de-ville" && r["kwh"].as_f64() > Some(0.0)),
        "{consumption}"
    );
    assert!(
        rows.len() >= veille_sim::fleet::DEFAULT_SITES.len(),
        "{consumption}"
    );
    let renewal = report(&data, &["renewal"]);
    assert!(renewal.to_string().contains("hotel-de-ville"), "{renewal}");
    let compliance = report(
        &data,
        &["compliance", "--from", &month[0], "--to", &month[1]],
    );
    assert!(
        compliance.as_array().is_some_and(|a| !a.is_empty()),
        "{compliance}"
    );
    assert_eq!(demo.stop(), Some(0));
    // The agent's last report (AGENT_STOP) was delivered before the collector stopped.
    let reports = veille_tests::stored_reports(&data, &device_id);
    let last = reports.last().expect("reports");
    assert!(
        last.events
            .iter()
            .any(|e| e.kind == veille_proto::v1::EventKind::AgentStop as i32),
        "last stored report has no AGENT_STOP: {last:?}"
    );
}

/// `veille-collector report <args> --format json --data-dir <data>`, parsed.
fn report(data: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin("veille-collector"))
        .arg("report")
        .args(args)
        .args(["--format", "json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn day(offset_days: i64) -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(offset_days))
        .unwrap()
        .to_string()
}

#[test]
fn agent_status_reads_a_running_agents_state() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let collector = veille_tests::Collector::start(data.path(), "127.0.0.1:0");
    let mut agent = veille_tests::Agent::start(
        "agent",
        state.path(),
        &collector.url(),
        &collector.token(),
        Some("status-dev"),
    );
    wait_until("an acknowledged report", || {
        agent.state()["last_acked_seq"].as_u64().unwrap_or(0) > 0
    });
    let out = Command::new(bin("veille-agent"))
        .arg("status")
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let acked = agent.state()["last_acked_seq"].as_u64().unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("last acked seq"))
        .unwrap_or_else(|| panic!("no last acked seq line in:\n{text}"));
    let shown: u64 = line.split_whitespace().last().unwrap().parse().unwrap();
    assert!(shown > 0 && shown <= acked + 10, "{line} vs {acked}");
    assert_eq!(agent.proc.stop(), Some(0));
}
