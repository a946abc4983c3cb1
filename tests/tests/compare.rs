//! Issue 20 end to end, the operator's comparison between bodies: three orgs of two
//! kinds (two communes, one EPCI) with their devices' hours in the store; the real
//! `veille-collector report compare` reads the store, then asks the running server,
//! whose API gives the operator every org ranked and an org token its own line and
//! its peers' quartiles, never another org's name. Then an org's kWh target and its
//! last twelve months against the trajectory.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

use veille_collector::store::Store;
use veille_proto::v1::{Report, ReportBatch};
use veille_tests::{Collector, bin};

const TOKEN_A: &str = "ville-a-token-0123456789";
const TOKEN_B: &str = "ville-b-token-0123456789";
const TOKEN_E: &str = "agglo-token-0123456789";
const HOUR: i64 = 3_600_000;
/// 2026-01-05T00:00:00Z, a Monday.
const MON: i64 = 1_767_571_200_000;
const PERIOD: &str = "from=2026-01-01&to=2026-01-31";

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("collector.toml");
    std::fs::write(
        &path,
        format!(
            "[[orgs]]\nid = \"ville-a\"\ntoken = \"{TOKEN_A}\"\n\
             [orgs.profile]\nkind = \"commune\"\npopulation_band = \"2k_10k\"\nheadcount = 20\n\n\
             [[orgs]]\nid = \"ville-b\"\ntoken = \"{TOKEN_B}\"\n\
             [orgs.profile]\nkind = \"commune\"\npopulation_band = \"2k_10k\"\nheadcount = 30\n\n\
             [[orgs]]\nid = \"agglo\"\ntoken = \"{TOKEN_E}\"\n\
             [orgs.profile]\nkind = \"epci\"\n"
        ),
    )
    .unwrap();
    path
}

/// `hours` consecutive hours of one device from `start`, half of them active.
fn seed(store: &Store, org: &str, device: &str, start: i64, hours: i64) {
    let reports = (0..hours)
        .map(|h| Report {
            boot_id: "boot-1".into(),
            seq: h as u64 + 1,
            start_unix_ms: start + h * HOUR,
            end_unix_ms: start + (h + 1) * HOUR,
            boot_time_unix_s: start / 1000,
            uptime_s: ((h + 1) * 3600) as u64,
            active_ms: 1_800_000,
            idle_ms: 1_800_000,
            ..Default::default()
        })
        .collect();
    let batch = ReportBatch {
        device_id: device.into(),
        reports,
        agent_version: "0.1.0".into(),
        ..Default::default()
    };
    store
        .apply_batch(org, &batch, start + hours * HOUR)
        .unwrap();
}

fn compare_cli(data: &Path, config: &Path, extra: &[&str]) -> Output {
    Command::new(bin("veille-collector"))
        .args([
            "report",
            "compare",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run veille-collector report compare")
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("compare JSON")
}

/// (status, body) of `GET path` with `token`.
fn get(addr: &str, path: &str, token: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

#[test]
fn three_orgs_of_two_kinds_compared_by_cli_and_api_without_naming_peers_to_an_org() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = config(dir.path());
    {
        let store = Store::open(&data.join(veille_collector::store::STORE_DIR)).unwrap();
        // ville-a: two PCs on a full day and night; ville-b: one PC for 8 hours;
        // agglo: three PCs for 4 hours each.
        seed(&store, "ville-a", "a-1", MON, 24);
        seed(&store, "ville-a", "a-2", MON, 24);
        seed(&store, "ville-b", "b-1", MON + 8 * HOUR, 8);
        for d in ["e-1", "e-2", "e-3"] {
            seed(&store, "agglo", d, MON + 9 * HOUR, 4);
        }
        store.flush().unwrap();
    }

    // Server stopped: the CLI reads the store. The operator's view: every org,
    // ranked by kWh per device-year, lowest first.
    let local = ok_json(&compare_cli(&data, &config, &["--format", "json"]));
    let orgs: Vec<(&str, u64, &str)> = local["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["org"].as_str().unwrap(),
                o["rank"].as_u64().unwrap(),
                o["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        orgs,
        [
            ("agglo", 1, "epci"),
            ("ville-b", 2, "commune"),
            ("ville-a", 3, "commune")
        ],
        "{local:#}"
    );
    // Two communes are fewer than three: everyone is compared with all three.
    for o in local["orgs"].as_array().unwrap() {
        assert_eq!(o["peers"]["basis"], "all", "{o:#}");
        assert_eq!(o["peers"]["orgs"], 3);
    }
    let a = &local["orgs"][2];
    assert_eq!(a["devices"], 2);
    assert_eq!(a["headcount"], 20);
    assert_eq!(a["indicators"]["devices_per_staff"], 0.1);
    let kwh = |o: &serde_json::Value| o["indicators"]["kwh_per_device_year"].as_f64().unwrap();
    assert!(kwh(&local["orgs"][0]) < kwh(&local["orgs"][1]));
    assert!(kwh(&local["orgs"][1]) < kwh(&local["orgs"][2]));
    // The median of the peers' kWh per device-year is the middle org's.
    let q = local["orgs"][0]["peers"]["quartiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["indicator"] == "kwh_per_device_year")
        .unwrap()
        .clone();
    assert_eq!(q["median"].as_f64().unwrap(), kwh(&local["orgs"][1]));
    // ville-a's share of on-time outside working hours: nights count.
    assert!(
        a["indicators"]["on_outside_working_hours_pct"]
            .as_f64()
            .unwrap()
            > 50.0
    );

    let mut c = Collector::start_with("collector", &data, "127.0.0.1:0", Some(&config), &[]);
    let operator = std::fs::read_to_string(data.join("operator.token"))
        .unwrap()
        .trim()
        .to_owned();

    // Server running: the CLI goes through the API, and the API equals the store.
    let remote = ok_json(&compare_cli(&data, &config, &["--format", "json"]));
    assert_eq!(remote, local);
    let (status, body) = get(
        &c.http,
        &format!("/api/v1/reports/compare?{PERIOD}"),
        &operator,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        local
    );

    // An org token: its own line, without rank, with the same peer quartiles, and no
    // other org's name in any format.
    let (status, body) = get(
        &c.http,
        &format!("/api/v1/reports/compare?{PERIOD}"),
        TOKEN_A,
    );
    assert_eq!(status, 200, "{body}");
    let own: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(own["orgs"].as_array().unwrap().len(), 1);
    assert_eq!(own["orgs"][0]["org"], "ville-a");
    assert_eq!(own["orgs"][0]["rank"], serde_json::Value::Null);
    assert_eq!(own["orgs"][0]["indicators"], a["indicators"]);
    assert_eq!(own["orgs"][0]["peers"], a["peers"]);
    for format in ["json", "csv", "table"] {
        let (status, body) = get(
            &c.http,
            &format!("/api/v1/reports/compare?{PERIOD}&format={format}"),
            TOKEN_A,
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("ville-a"), "{format}: {body}");
        assert!(
            !body.contains("ville-b") && !body.contains("agglo"),
            "{format}: {body}"
        );
    }
    // Asking for another org's view is refused.
    let (status, body) = get(
        &c.http,
        &format!("/api/v1/reports/compare?{PERIOD}&org=agglo"),
        TOKEN_A,
    );
    assert_eq!(status, 403, "{body}");
    // The CLI's --org shows what the org's token sees.
    let cli_own = ok_json(&compare_cli(
        &data,
        &config,
        &["--org", "ville-a", "--format", "json"],
    ));
    assert_eq!(cli_own, own);

    // The API describes itself, this route included, to a caller with a token.
    let (status, body) = get(&c.http, "/api/v1/openapi.json", TOKEN_A);
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        doc,
        serde_json::from_str::<serde_json::Value>(veille_collector::api::openapi::DOCUMENT)
            .unwrap()
    );
    assert!(doc["paths"]["/api/v1/reports/compare"]["get"].is_object());
    assert_eq!(get(&c.http, "/api/v1/openapi.json", "nope").0, 401);

    assert_eq!(c.proc.stop(), Some(0));
}

/// `hours` hours of `device` from `start`, under their own boot (seqs from `seq`).
fn seed_hours(store: &Store, org: &str, device: &str, start: i64, hours: i64, seq: &mut u64) {
    let boot = format!("boot-{start}");
    let reports = (0..hours)
        .map(|h| {
            *seq += 1;
            Report {
                boot_id: boot.clone(),
                seq: *seq,
                start_unix_ms: start + h * HOUR,
                end_unix_ms: start + (h + 1) * HOUR,
                boot_time_unix_s: start / 1000,
                uptime_s: ((h + 1) * 3600) as u64,
                active_ms: 1_800_000,
                idle_ms: 1_800_000,
                ..Default::default()
            }
        })
        .collect();
    let batch = ReportBatch {
        device_id: device.into(),
        reports,
        agent_version: "0.1.0".into(),
        ..Default::default()
    };
    store
        .apply_batch(org, &batch, start + hours * HOUR)
        .unwrap();
}

#[test]
fn an_org_follows_its_last_twelve_months_against_its_kwh_target() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap())
        .date();
    // The baseline two years back, so that the last twelve months never overlap it.
    let (base, this) = (today.year() - 2, today.year());
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[[orgs]]\nid = \"ville-a\"\ntoken = \"{TOKEN_A}\"\n\
             [orgs.profile]\nkind = \"commune\"\n\
             target = {{ baseline_year = {base}, target_year = {}, kwh_reduction_pct = 20 }}\n\n\
             [[orgs]]\nid = \"agglo\"\ntoken = \"{TOKEN_E}\"\n",
            this + 2
        ),
    )
    .unwrap();
    {
        let store = Store::open(&data.join(veille_collector::store::STORE_DIR)).unwrap();
        let mut seq = 0;
        // The baseline year: 150 hours on a month; the last twelve months: 10
        // (the rest of each month counts as inferred off, at its small power).
        let at = |y: i16, m: i8| {
            jiff::civil::date(y, m, 10)
                .at(8, 0, 0, 0)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_millisecond()
        };
        for m in 1..=12 {
            seed_hours(&store, "ville-a", "a-1", at(base, m), 150, &mut seq);
        }
        for back in 1..=12 {
            let d = today.first_of_month() - jiff::Span::new().months(back);
            seed_hours(
                &store,
                "ville-a",
                "a-1",
                at(d.year(), d.month()),
                10,
                &mut seq,
            );
        }
        seed_hours(&store, "agglo", "e-1", at(this, 1), 10, &mut 0);
        store.flush().unwrap();
    }
    let run = |extra: &[&str]| {
        Command::new(bin("veille-collector"))
            .args(["report", "trajectory"])
            .args(extra)
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run veille-collector report trajectory")
    };
    let local = ok_json(&run(&["--format", "json"]));
    let list = local.as_array().unwrap();
    assert_eq!(list.len(), 1, "only the org with a target: {local:#}");
    let t = &list[0];
    assert_eq!(t["org"], "ville-a");
    assert_eq!(t["baseline_months"], 12, "{t:#}");
    let trend = t["trend"].as_array().unwrap();
    assert_eq!(trend.len(), 12);
    // The twelve complete months before this one, the last being last month.
    let last = today.first_of_month().yesterday().unwrap();
    assert_eq!(
        trend[11]["month"],
        format!("{:04}-{:02}", last.year(), last.month())
    );
    // A fifteenth of the baseline's hours on: well under a line that fell by a few
    // percent.
    assert_eq!(t["on_track"], true, "{t:#}");
    assert!(t["gap_pct"].as_f64().unwrap() < -20.0, "{t:#}");
    let table = String::from_utf8_lossy(&run(&[]).stdout).into_owned();
    assert!(
        table.contains("ville-a: −20 % kWh by") && table.contains("on track"),
        "{table}"
    );

    // The same through the running server, for the operator and for the org's token.
    let mut c = Collector::start_with("collector", &data, "127.0.0.1:0", Some(&config), &[]);
    assert_eq!(ok_json(&run(&["--format", "json"])), local);
    let (status, body) = get(&c.http, "/api/v1/reports/trajectory", TOKEN_A);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        local
    );
    // The overview in the real browser shows the same verdict and gap.
    let base = format!("http://{}", c.http);
    let profile = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shown: Result<(Option<String>, String), fantoccini::error::CmdError> = rt.block_on(async {
        let (_driver, b) = veille_tests::browser::browser(profile.path()).await;
        let shown = async {
            veille_tests::browser::sign_in(&b, &base, TOKEN_A).await?;
            let verdict = b
                .find(fantoccini::Locator::Id("trajectory-verdict"))
                .await?;
            Ok((verdict.attr("data-on-track").await?, verdict.text().await?))
        }
        .await;
        let _ = b.close().await;
        shown
    });
    let (on_track, text) = shown.unwrap();
    assert_eq!(on_track.as_deref(), Some("true"), "{text}");
    let gap = format!("{:+.1} %", local[0]["gap_pct"].as_f64().unwrap());
    assert!(text.contains(&gap), "{text} should show {gap}");
    let (status, body) = get(&c.http, "/api/v1/reports/trajectory", TOKEN_E);
    assert_eq!((status, body.trim()), (200, "[]"), "agglo has no target");
    assert_eq!(
        get(&c.http, "/api/v1/reports/trajectory?org=ville-a", TOKEN_E).0,
        403
    );
    assert_eq!(c.proc.stop(), Some(0));
}
