//! The auto-shutdown policy end to end with the real binaries: `policy set` on a running
//! collector → the signed policy rides on the gRPC Ack → the agent pins the key on
//! first contact, keeps the policy and evaluates it (dry run: events only) → the events
//! reach the store and the compliance report. A policy signed by another key, planted in
//! the collector's store, is rejected by the agent (POLICY_REJECTED) which keeps the
//! old one. Enforcement (warn → postpone → power off) is tested in-process with the
//! recording enforcer (`veille_agent::policy` tests): no test powers anything off.

use std::path::Path;
use std::process::Command;

use veille_proto::v1::{
    ChassisClass, EnergySource, EventKind, Inventory, Measurement, Report, ReportBatch,
};
use veille_tests::{Agent, Collector, bin, stored_reports, wait_until};

fn run(args: &[&str], data: &Path) -> (bool, String, String) {
    let out = Command::new(bin("veille-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A dry-run policy whose window (every day, UTC) is open now for two more hours.
fn policy_file(dir: &Path, org: &str, version: u64) -> std::path::PathBuf {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let hm = |z: jiff::Zoned| z.strftime("%H:%M").to_string();
    let start = hm(now.checked_sub(jiff::Span::new().minutes(30)).unwrap());
    let end = hm(now.checked_add(jiff::Span::new().hours(2)).unwrap());
    let path = dir.join(format!("policy-{version}.toml"));
    std::fs::write(
        &path,
        format!(
            "org = \"{org}\"\nversion = {version}\nmode = \"dry-run\"\nidle_threshold_s = 60\n\
             warning_s = 60\npostpones_allowed = 1\npostpone_s = 60\n\n[[windows]]\n\
             days = [\"all\"]\nstart = \"{start}\"\nend = \"{end}\"\ntime_zone = \"UTC\"\n"
        ),
    )
    .unwrap();
    path
}

fn compliance(data: &Path) -> serde_json::Value {
    let (ok, out, err) = run(
        &[
            "report",
            "compliance",
            "--from",
            &veille_tests::collector_day(-1),
            "--to",
            &veille_tests::collector_day(1),
            "--format",
            "json",
        ],
        data,
    );
    assert!(ok, "report compliance failed: {err}");
    serde_json::from_str(&out).unwrap()
}

fn events(reports: &[veille_proto::v1::Report], kind: EventKind) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| &r.events)
        .filter(|e| e.kind == kind as i32)
        .map(|e| e.detail.clone())
        .collect()
}

#[test]
fn a_signed_dry_run_policy_reaches_the_agent_and_a_forged_one_is_rejected() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let (url, token, grpc) = (collector.url(), collector.token(), collector.grpc.clone());
    let mut collector = collector;

    // Set through the running server (HTTP API, operator token).
    let file = policy_file(files.path(), "default", 0);
    let (ok, out, err) = run(
        &["policy", "set", "--file", file.to_str().unwrap()],
        data.path(),
    );
    assert!(ok, "policy set failed: {err}");
    assert!(out.contains("version 1"), "{out}");
    // A version not above the current one is refused, naming both (exit 2).
    let stale = policy_file(files.path(), "default", 1);
    let (ok, _, err) = run(
        &["policy", "set", "--file", stale.to_str().unwrap()],
        data.path(),
    );
    assert!(!ok && err.contains("not above"), "{err}");
    let (ok, out, err) = run(&["policy", "show", "--format", "json"], data.path());
    assert!(ok, "policy show failed: {err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    let public_key = shown["public_key"].as_str().unwrap().to_owned();
    let key_id = shown["key_id"].as_str().unwrap().to_owned();
    assert_eq!(shown["policies"][0]["version"], 1);
    assert_eq!(shown["policies"][0]["mode"], "dry-run");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.path().join("policy.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The agent gets it with its first Ack, pins the key (TOFU over gRPC), evaluates.
    let mut agent = Agent::start("agent", state.path(), &url, &token, Some("policy-dev"));
    agent.proc.wait_for_line("new policy accepted");
    agent.proc.wait_for_line("policy: skipped");
    wait_until("the key to be pinned", || {
        agent.state()["pinned_policy_key"].as_str() == Some(public_key.as_str())
    });
    let status = Command::new(bin("veille-agent"))
        .args(["status", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("version 1 mode dry-run") && status.contains(&key_id),
        "{status}"
    );
    // Nothing is pending, so nothing can be postponed.
    let postpone = Command::new(bin("veille-agent"))
        .args(["postpone", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!postpone.status.success());

    // Dry run: a POLICY_SKIPPED event (user active, a would-warn, or an exclusion of
    // this machine's chassis) reaches the compliance report through the server.
    wait_until("a POLICY_SKIPPED in the compliance report", || {
        let c = compliance(data.path());
        c[0]["skipped"].as_u64().unwrap_or(0) >= 1
    });
    let c = compliance(data.path());
    assert_eq!(c[0]["policy_version"], 1);
    assert_eq!(c[0]["shutdowns"], 0, "a dry run never shuts down");

    // A forged policy planted in the store: version 2, signed by another key.
    assert_eq!(collector.proc.stop(), Some(0));
    {
        use veille_collector::policy::{PolicyFile, set};
        let store = veille_collector::store::Store::open(
            &data.path().join(veille_collector::store::STORE_DIR),
        )
        .unwrap();
        let forger = veille_proto::signing::generate_signing_key().unwrap();
        let text = std::fs::read_to_string(policy_file(files.path(), "default", 2)).unwrap();
        let mut draft = PolicyFile::parse(&text).unwrap();
        draft.mode = "enforce".into();
        set(&store, &forger, &draft).unwrap();
    }
    let collector = Collector::start(data.path(), &grpc);
    agent.proc.wait_for_line("policy rejected");
    wait_until("a POLICY_REJECTED in the compliance report", || {
        compliance(data.path())[0]["rejected"].as_u64().unwrap_or(0) >= 1
    });
    let status = Command::new(bin("veille-agent"))
        .args(["status", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("version 1 mode dry-run"),
        "old policy kept: {status}"
    );

    assert_eq!(agent.proc.stop(), Some(0));
    wait_until("the spool to drain", || agent.spooled() == 0);
    let mut collector = collector;
    assert_eq!(collector.proc.stop(), Some(0));
    let reports = stored_reports(data.path(), "policy-dev");
    assert!(!events(&reports, EventKind::PolicySkipped).is_empty());
    assert_eq!(events(&reports, EventKind::PolicyRejected), ["unknown_key"]);
    assert!(events(&reports, EventKind::PolicyShutdown).is_empty());
}

const ALPHA_TOKEN: &str = "alpha-token-0123456789abcdef";
const BETA_TOKEN: &str = "beta-token-0123456789abcdef";

/// Two orgs with the same history and different `[orgs.energy]`: alpha keeps the
/// collector's 0.20 €/kWh and 0.1 kgCO2e/kWh, beta pays 0.40 €/kWh on a 0.5 kg grid.
/// Desktops draw round figures (power-profiles file) so that the sums can be done by
/// hand.
fn two_org_config(dir: &Path) -> std::path::PathBuf {
    let profiles = dir.join("profiles.toml");
    std::fs::write(
        &profiles,
        "[classes.desktop]\n\
         p_off_w = { value = 1.0, source = \"assumption: test\" }\n\
         p_sleep_w = { value = 2.0, source = \"assumption: test\" }\n\
         p_idle_w = { value = 20.0, source = \"assumption: test\" }\n\
         p_max_w = { value = 60.0, source = \"assumption: test\" }\n",
    )
    .unwrap();
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[energy]\ntimezone = \"UTC\"\npower_profiles = \"{}\"\n\
             tariff = {{ base_eur_per_kwh = 0.20 }}\n\
             grid = {{ kg_co2e_per_kwh = 0.1, source = \"test\", year = 2025 }}\n\n\
             [[orgs]]\nid = \"alpha\"\ntoken = \"{ALPHA_TOKEN}\"\n\n\
             [[orgs]]\nid = \"beta\"\ntoken = \"{BETA_TOKEN}\"\n\
             [orgs.energy]\ntariff = {{ base_eur_per_kwh = 0.40 }}\n\
             grid = {{ kg_co2e_per_kwh = 0.5, source = \"test\", year = 2025 }}\n",
            profiles.display()
        ),
    )
    .unwrap();
    config
}

/// Two hours of one-minute reports from 20:00 UTC on `day_ms` (midnight UTC): each
/// minute 20 s active at 20 % CPU and 40 s idle; with `meter_wh_per_h`, a plug meter
/// measures that much per hour (the energy is then measured, the activity still known).
fn evening(device_id: &str, day_ms: i64, meter_wh_per_h: Option<f64>) -> ReportBatch {
    let from = day_ms + 20 * 3_600_000;
    let boot = from - 3_600_000;
    let reports = (0..120i64)
        .map(|k| {
            let start = from + k * 60_000;
            Report {
                boot_id: "boot-1".into(),
                seq: k as u64 + 1,
                start_unix_ms: start,
                end_unix_ms: start + 60_000,
                boot_time_unix_s: boot / 1000,
                uptime_s: ((start + 60_000 - boot) / 1000) as u64,
                active_ms: 20_000,
                idle_ms: 40_000,
                cpu_util: 0.2,
                measurements: meter_wh_per_h
                    .map(|wh| Measurement {
                        energy_j: wh * 3600.0 / 60.0,
                        source: EnergySource::ExternalMeter as i32,
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    ReportBatch {
        device_id: device_id.into(),
        reports,
        inventory: Some(Inventory {
            hostname: device_id.into(),
            chassis: ChassisClass::Desktop as i32,
            ..Default::default()
        }),
        agent_version: "test".into(),
    }
}

/// Issue 23: `policy replay` and `report compliance` priced every org with the
/// collector-wide tariff and grid factor, and replay counted no active time on metered
/// hours. The real collector, through its HTTP API and then from the store.
///
/// By hand, for a window 20:30-23:00 UTC over that evening (half of the 20:00 hour and
/// all of the 21:00 one, 1.5 h):
/// - modelled desktop, per hour (20 − 1) W × 1 h + (60 − 20) W × 1/3 h × 0.2 =
///   21.666… Wh; × 1.5 = 32.5 Wh;
/// - metered desktop (30 Wh per hour measured): (30 − 1) Wh × 1.5 = 43.5 Wh;
/// - each: active 1/3 of the time, 0.5 h in 2 window hours.
///
/// Together 76 Wh per org: alpha 0.076 × 0.20 €, 0.076 × 0.1 kg; beta 0.076 × 0.40 €,
/// 0.076 × 0.5 kg.
#[test]
fn replay_and_compliance_price_each_org_with_its_own_energy_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = two_org_config(dir.path());
    let config_arg = config.to_str().unwrap().to_owned();
    let mut collector =
        Collector::start_with("collector", &data, "127.0.0.1:0", Some(&config), &[]);

    let now = jiff::Timestamp::now().as_millisecond();
    let yesterday_ms = (now / 86_400_000 - 1) * 86_400_000;
    let yesterday = jiff::Timestamp::from_millisecond(yesterday_ms)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut client = veille_tests::grpc::client(&collector.url()).await;
        for (token, prefix) in [(ALPHA_TOKEN, "a"), (BETA_TOKEN, "b")] {
            for (device, meter) in [("modelled", None), ("metered", Some(30.0))] {
                let batch = evening(&format!("{prefix}-{device}"), yesterday_ms, meter);
                let ack = veille_tests::grpc::send(&mut client, token, batch)
                    .await
                    .unwrap();
                assert_eq!(ack.highest_durable_seq, 120);
            }
        }
    });

    let draft = |org: &str, version: u64| {
        let path = dir.path().join(format!("{org}-{version}.toml"));
        std::fs::write(
            &path,
            format!(
                "org = \"{org}\"\nversion = {version}\nmode = \"dry-run\"\nidle_threshold_s = 600\n\
                 warning_s = 300\n\n[[windows]]\ndays = [\"all\"]\nstart = \"20:30\"\n\
                 end = \"23:00\"\ntime_zone = \"UTC\"\n"
            ),
        )
        .unwrap();
        path
    };
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", &config_arg]);
        let (ok, out, err) = run(&all, &data);
        assert!(ok, "{args:?} failed: {err}");
        out
    };
    for org in ["alpha", "beta"] {
        let file = draft(org, 1);
        cli(&["policy", "set", "--file", file.to_str().unwrap()]);
    }
    let close = |v: &serde_json::Value, want: f64| {
        let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
        (got - want).abs() < 1e-9
    };
    let kwh = 0.076;
    let tariffs = [("alpha", 0.20, 0.1), ("beta", 0.40, 0.5)];
    let check = |how: &str| {
        for (org, eur_per_kwh, kg_per_kwh) in tariffs {
            let file = draft(org, 2);
            let out = cli(&[
                "policy",
                "replay",
                "--file",
                file.to_str().unwrap(),
                "--from",
                &yesterday,
                "--to",
                &yesterday,
                "--format",
                "json",
            ]);
            let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
            let r = &rows[0];
            assert_eq!(rows.as_array().unwrap().len(), 1, "{how}: {rows}");
            assert_eq!(r["org"], org, "{how}: {r}");
            assert_eq!(
                (r["devices"].as_u64(), r["affected"].as_u64()),
                (Some(2), Some(2)),
                "{how}: {r}"
            );
            assert!(close(&r["saved_kwh"], kwh), "{how}: {r}");
            assert!(
                close(&r["saved_eur"], kwh * eur_per_kwh),
                "{how}, {org} at {eur_per_kwh} €/kWh: {r}"
            );
            assert!(
                close(&r["saved_kg_co2e"], kwh * kg_per_kwh),
                "{how}, {org} at {kg_per_kwh} kg/kWh: {r}"
            );
            // 0.5 h in each device's window, the metered one's included.
            assert!(close(&r["interrupted_active_h"], 1.0), "{how}: {r}");
            assert_eq!(r["interrupted_sessions"], 4, "{how}: {r}");
        }
        let out = cli(&[
            "report",
            "compliance",
            "--from",
            &yesterday,
            "--to",
            &yesterday,
            "--format",
            "json",
        ]);
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 2, "{how}: {rows}");
        for ((org, eur_per_kwh, kg_per_kwh), r) in tariffs.iter().zip(rows.as_array().unwrap()) {
            assert_eq!(r["org"], *org, "{how}: {r}");
            assert_eq!(
                (r["devices"].as_u64(), r["left_on"].as_u64()),
                (Some(2), Some(2)),
                "{how}: {r}"
            );
            assert!(close(&r["left_on_hours"], 3.0), "{how}: {r}");
            assert!(close(&r["wasted_kwh"], kwh), "{how}: {r}");
            assert!(
                close(&r["wasted_eur"], kwh * eur_per_kwh),
                "{how}, {org}: {r}"
            );
            assert!(
                close(&r["wasted_kg_co2e"], kwh * kg_per_kwh),
                "{how}, {org}: {r}"
            );
        }
    };
    check("through the running server");
    assert_eq!(collector.proc.stop(), Some(0));
    check("from the store");
}
