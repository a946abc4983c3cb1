//! `/metrics` end to end: a real collector after real gRPC ingest, its exposition
//! checked by Prometheus's own `promtool check metrics` (Debian package `prometheus`),
//! a few values checked against what was sent, and the Grafana dashboard's queries
//! checked against the metric names the collector actually exposes.

use std::io::Write;
use std::process::{Command, Stdio};

use veille_tests::fleet::{http, sample_fleet, seed};
use veille_tests::{Collector, grpc};

const PROMTOOL: &str = "/usr/bin/promtool";

/// The value of the sample whose name and labels are exactly `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

/// Sum of every sample of family `name`.
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn promtool_check(text: &str) {
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} missing: apt-get install prometheus (scripts/test.sh installs it)"
    );
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    println!(
        "promtool check metrics: exit {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool refused the exposition:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Metric names (`veille_…`) used in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("veille_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn live_metrics_pass_promtool_and_count_what_was_sent() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let token = collector.token();
    let fleet = sample_fleet();
    let sent = seed(&collector.url(), &token, &fleet, 30).await;
    // One refused batch: a wrong token.
    let mut client = grpc::client(&collector.url()).await;
    let refused = grpc::send(
        &mut client,
        "not-a-token-of-this-collector",
        grpc::batch("intruder", 1..=1),
    )
    .await;
    assert!(refused.is_err());

    let addr = collector.http.clone();
    let resp = tokio::task::spawn_blocking(move || http(&addr, "GET", "/metrics", None, None))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        resp.headers
    );
    let text = resp.text();
    promtool_check(&text);

    assert_eq!(
        value(&text, "veille_ingest_reports_stored_total"),
        Some(sent as f64),
        "{text}"
    );
    assert_eq!(
        value(&text, "veille_ingest_batches_total"),
        Some(fleet.len() as f64)
    );
    assert_eq!(
        value(
            &text,
            "veille_ingest_rejected_total{reason=\"unauthenticated\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sum(&text, "veille_devices"), fleet.len() as f64);
    // Latest reports: the desktop mostly idle, the laptop asleep, the server active.
    for state in ["idle", "sleep", "active"] {
        assert_eq!(
            value(
                &text,
                &format!("veille_devices{{org=\"default\",state=\"{state}\"}}")
            ),
            Some(1.0),
            "{state}: {text}"
        );
    }
    assert_eq!(
        value(&text, "veille_devices_silent{org=\"default\"}"),
        Some(0.0)
    );
    let lyon = value(&text, "veille_power_watts{org=\"default\",site=\"Lyon\"}").unwrap();
    let paris = value(&text, "veille_power_watts{org=\"default\",site=\"Paris\"}").unwrap();
    assert!(lyon > 0.0 && paris > 0.0, "{text}");
    assert!(
        value(
            &text,
            "veille_energy_today_kwh{org=\"default\",site=\"Lyon\"}"
        )
        .is_some()
    );
    assert!(value(&text, "veille_store_size_bytes").unwrap() > 0.0);
    assert!(!text.contains("device_id="), "no per-device label");

    // The Grafana dashboard queries only metrics that exist.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/veille.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 7);
    let mut checked = 0;
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                assert!(
                    text.contains(&format!("# TYPE {n} ")),
                    "panel {} queries {n}, which /metrics does not expose",
                    p["title"]
                );
                checked += 1;
            }
        }
    }
    println!(
        "grafana: {} panels, {checked} metric references checked",
        panels.len()
    );
}

#[test]
fn a_metrics_token_is_required_when_configured() {
    let data = tempfile::tempdir().unwrap();
    let secret = "prometheus-scrape-secret-0123";
    let collector = Collector::start_with(
        "collector",
        data.path(),
        "127.0.0.1:0",
        None,
        &[("VEILLE_METRICS__TOKEN", secret)],
    );
    let addr = collector.http.clone();
    assert_eq!(http(&addr, "GET", "/metrics", None, None).status, 401);
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut s, &mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("veille_ingest_reports_stored_total 0"));
}
