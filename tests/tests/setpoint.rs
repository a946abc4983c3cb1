//! Server rooms end to end with the real binaries (issue 8 test 3, issue 4 test 5):
//! meters over MQTT through a real Mosquitto, load curves imported from CSV, a recorded
//! setpoint change, and the setpoint report.

use std::path::Path;
use std::process::Command;

use veille_collector::store::Store;
use veille_collector::store::meters::{self as meter_store, FLAG_RESET};
use veille_domain::rooms::meters::Quantity;
use veille_tests::mosquitto::{self, Mosquitto};
use veille_tests::{Collector, bin};

fn run(data: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(bin("veille-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run veille-collector");
    eprintln!(
        "[veille-collector {args:?}] exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(out.status.success(), "{args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 30-minute load curve from 2024-01-01T00:00Z for `days` days: `base` W with a
/// day-to-day wobble (±3 %, deterministic) and a daily cycle, times `after_factor` from
/// 2024-01-31 on (the change day itself is excluded by the report).
fn load_curve(days: i64, base: f64, after_factor: f64, seed: u64) -> String {
    let mut s = String::from("Horodate;Valeur\n");
    let start: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
    let change_day = 30;
    let mut x = seed;
    let mut wobble = 1.0;
    for step in 0..days * 48 {
        let day = step / 48;
        if step % 48 == 0 {
            // xorshift: the same series on every run.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            wobble = 1.0 + ((x % 6001) as f64 / 100_000.0 - 0.03);
        }
        let hour = (step % 48) as f64 / 2.0;
        let cycle = 1.0 + 0.05 * ((hour - 15.0) / 24.0 * std::f64::consts::TAU).cos();
        let factor = if day >= change_day { after_factor } else { 1.0 };
        let end = start
            .checked_add(jiff::SignedDuration::from_mins(30 * (step + 1)))
            .unwrap();
        s.push_str(&format!("{end};{:.0}\n", base * wobble * cycle * factor));
    }
    s
}

fn report_json(data: &Path, room: &str) -> serde_json::Value {
    let out = ok(
        data,
        &["report", "setpoint", "--room", room, "--format", "json"],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

#[test]
fn imported_load_curves_and_a_setpoint_change_give_the_effect_or_insufficient_data() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    // A first start creates the store and the default org. Writes go to the store
    // beside the running server, which sees them at once.
    let mut c = Collector::start(d, "127.0.0.1:0");
    // (salle-a is declared fully below: `room add` replaces a room of the same name.)
    ok(d, &["room", "add", "--name", "salle-a", "--site", "draft"]);
    let listed = ok(d, &["room", "list"]);
    assert!(
        listed.contains("salle-a") && listed.contains("draft"),
        "{listed}"
    );
    assert_eq!(c.proc.stop(), Some(0));

    ok(
        d,
        &[
            "room",
            "add",
            "--name",
            "salle-a",
            "--site",
            "siege",
            "--hosts",
            "srv1,srv2",
            "--meter",
            "cooling=clim-a",
            "--meter",
            "total=tgbt-a",
        ],
    );
    ok(
        d,
        &[
            "room",
            "add",
            "--name",
            "salle-b",
            "--site",
            "annexe",
            "--tag",
            "rack-b",
            "--meter",
            "cooling=clim-b",
        ],
    );
    let bad_role = run(
        d,
        &[
            "room", "add", "--name", "y", "--site", "s", "--meter", "fridge=m",
        ],
    );
    assert_eq!(bad_role.status.code(), Some(2));

    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let cooling = write("cooling.csv", load_curve(60, 12_000.0, 0.92, 7));
    let total = write("total.csv", load_curve(60, 40_000.0, 0.975, 11));
    let short = write("short.csv", load_curve(35, 12_000.0, 0.92, 13));
    let out = ok(
        d,
        &[
            "import", "meters", &cooling, "--meter", "clim-a", "--unit", "W",
        ],
    );
    assert!(out.contains("2880 new"), "{out}");
    assert!(out.contains("no gaps"), "{out}");
    // Importing again stores nothing new.
    let again = ok(
        d,
        &[
            "import", "meters", &cooling, "--meter", "clim-a", "--unit", "W",
        ],
    );
    assert!(again.contains("0 new, 2880 already stored"), "{again}");
    ok(
        d,
        &[
            "import", "meters", &total, "--meter", "tgbt-a", "--unit", "kW",
        ],
    );
    ok(
        d,
        &[
            "import", "meters", &short, "--meter", "clim-b", "--unit", "W",
        ],
    );
    // A broken line names its line and column; nothing is stored.
    let broken = write(
        "broken.csv",
        "Horodate;Valeur\n2024-01-01T00:30:00Z;100\n2024-01-01T01:00:00Z;abc\n".into(),
    );
    let b = run(
        d,
        &[
            "import", "meters", &broken, "--meter", "m-broken", "--unit", "W",
        ],
    );
    assert_eq!(b.status.code(), Some(2));
    let err = String::from_utf8_lossy(&b.stderr);
    assert!(err.contains("line 3") && err.contains("column"), "{err}");

    for room in ["salle-a", "salle-b"] {
        ok(
            d,
            &[
                "room",
                "setpoint",
                "--room",
                room,
                "--at",
                "2024-01-31T10:00",
                "--from",
                "22",
                "--to",
                "24",
                "--note",
                "+2 °C",
            ],
        );
    }
    let list = ok(d, &["room", "list", "--format", "json"]);
    let rooms: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(rooms.as_array().unwrap().len(), 2);
    assert_eq!(rooms[0]["meters"]["cooling"], "clim-a");

    let r = report_json(d, "salle-a");
    let rep = &r["changes"][0]["report"];
    let a_cooling = rep["cooling_power"].clone();
    let cooling = &rep["cooling_power"];
    assert_eq!(cooling["status"], "estimate", "{rep:#}");
    let (lo, hi) = (
        cooling["welch"]["low"].as_f64().unwrap(),
        cooling["welch"]["high"].as_f64().unwrap(),
    );
    assert!(
        hi < 0.0,
        "the CI must exclude 0 and show a fall: [{lo}, {hi}]"
    );
    let pct = cooling["relative_pct"][0].as_f64().unwrap();
    assert!((-11.0..-5.0).contains(&pct), "about −8 %: {pct}");
    assert!(
        cooling["verdict"].as_str().unwrap().contains("fell"),
        "{cooling}"
    );
    assert_eq!(rep["total_power"]["status"], "estimate");
    assert!(rep["cooling_saved_kwh_per_day"]["value"].as_f64().unwrap() > 0.0);
    // No agent has reported for srv1/srv2: IT is insufficient, never a number.
    assert_eq!(rep["it_power"]["status"], "insufficient", "{rep:#}");

    // Only 5 days after the change: insufficient data, with its reason.
    let r = report_json(d, "salle-b");
    let cooling = &r["changes"][0]["report"]["cooling_power"];
    assert_eq!(cooling["status"], "insufficient", "{cooling}");
    assert!(!cooling["reason"].as_str().unwrap().is_empty());
    let table = ok(d, &["report", "setpoint", "--room", "salle-b"]);
    assert!(table.contains("insufficient data"), "{table}");

    // The same report through the running server's API.
    let mut c = Collector::start(d, "127.0.0.1:0");
    let via_server = report_json(d, "salle-a");
    assert_eq!(
        via_server["changes"][0]["report"]["cooling_power"], a_cooling,
        "server and store paths agree"
    );
    // The web page's server-room view shows the same comparison (issue 20): signed in
    // with the org token, salle-a's cooling row carries the report's before and after
    // means, its chart is drawn, and salle-b says why it has no number.
    let login = veille_tests::fleet::http(
        &c.http,
        "POST",
        "/login",
        None,
        Some(&format!("token={}", c.token())),
    );
    assert_eq!(login.status, 303, "{}", login.text());
    let cookie = login
        .header("set-cookie")
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = veille_tests::fleet::http(&c.http, "GET", "/rooms", Some(&cookie), None);
    assert_eq!(page.status, 200);
    let html = page.text();
    let row_start = html
        .find("<tr data-metric=\"cooling_power\">")
        .expect("salle-a's cooling row");
    let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
    let shown: Vec<f64> = row
        .split("data-value=\"")
        .skip(1)
        .map(|v| v[..v.find('"').unwrap()].parse().unwrap())
        .collect();
    assert_eq!(shown.len(), 3, "{row}");
    for (key, got) in ["mean_before", "mean_after", "diff"].iter().zip(&shown) {
        // JSON parsing may be an ulp off (serde_json's fast float path): compare closely.
        let want = a_cooling["welch"][key].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want.abs(),
            "{key}: {got} vs {want} in {row}"
        );
    }
    assert!(
        html.contains("<svg class=\"change\""),
        "the before/after chart"
    );
    assert!(html.contains("salle-b"));
    // And in the real browser: signed in with the org token, the rooms page draws
    // salle-a's chart and carries the same before/after means.
    let base = format!("http://{}", c.http);
    let profile = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let in_browser: Result<Vec<f64>, fantoccini::error::CmdError> = rt.block_on(async {
        let (_driver, b) = veille_tests::browser::browser(profile.path()).await;
        let shown = async {
            veille_tests::browser::sign_in(&b, &base, &c.token()).await?;
            b.find(fantoccini::Locator::LinkText("Server rooms"))
                .await?
                .click()
                .await?;
            let row = b
                .wait()
                .for_element(fantoccini::Locator::Css("tr[data-metric='cooling_power']"))
                .await?;
            b.find(fantoccini::Locator::Css("svg.change rect.after"))
                .await?;
            let mut values = Vec::new();
            for cell in row
                .find_all(fantoccini::Locator::Css("td[data-value]"))
                .await?
            {
                values.push(cell.attr("data-value").await?.unwrap().parse().unwrap());
            }
            Ok(values)
        }
        .await;
        let _ = b.close().await;
        shown
    });
    assert_eq!(
        in_browser.unwrap(),
        shown,
        "the browser shows the page's figures"
    );
    let reason = r["changes"][0]["report"]["cooling_power"]["reason"]
        .as_str()
        .unwrap();
    assert!(
        html.contains(&reason.replace('\'', "&#39;")),
        "salle-b's reason: {reason}"
    );
    assert_eq!(c.proc.stop(), Some(0));
}

/// Issue 4 test 5: a real Tasmota SENSOR payload and a Veille meter JSON published with
/// `mosquitto_pub` through a real Mosquitto are stored with the right units; a counter
/// reset is detected and stored flagged.
/// Issue 21: load curves other tools write, through the real CLI: `horodatage;valeur`
/// found by its names, and a pipe-delimited file with a start and an end column and
/// French grouped numbers, read with `--time-column`, `--value-column`, `--delimiter`
/// and `--decimal-comma`. The stored values are the file's, in W.
#[test]
fn import_meters_takes_header_variants_and_named_columns() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let mut c = Collector::start(d, "127.0.0.1:0");
    assert_eq!(c.proc.stop(), Some(0));
    let files = tempfile::tempdir().unwrap();
    let horodatage = files.path().join("horodatage.csv");
    std::fs::write(
        &horodatage,
        "horodatage;valeur\r\n2024-02-05T00:30:00+01:00;812,5\r\n2024-02-05T01:00:00+01:00;790\r\n",
    )
    .unwrap();
    let out = ok(
        d,
        &[
            "import",
            "meters",
            &horodatage.to_string_lossy(),
            "--meter",
            "clim-h",
            "--unit",
            "W",
        ],
    );
    assert!(out.contains("2 points") && out.contains("2 new"), "{out}");

    let piped = files.path().join("gtb-export.txt");
    std::fs::write(
        &piped,
        "Point|Début|Fin|P moy. (kW)\n\
         TGBT|2024-02-05T00:00:00+01:00|2024-02-05T00:30:00+01:00|1 234,5\n\
         TGBT|2024-02-05T00:30:00+01:00|2024-02-05T01:00:00+01:00|1.240,25\n",
    )
    .unwrap();
    let piped = piped.to_string_lossy().into_owned();
    let base = ["import", "meters", piped.as_str(), "--meter", "tgbt"];
    // Without the names, the error says which flags to pass; nothing is stored.
    let refused = run(d, &base);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--time-column"), "{err}");
    let bad_delimiter = run(d, &[&base[..], &["--delimiter", "ab"]].concat());
    assert_eq!(bad_delimiter.status.code(), Some(2));
    let out = ok(
        d,
        &[
            &base[..],
            &[
                "--delimiter",
                "|",
                "--time-column",
                "fin",
                "--value-column",
                "4",
                "--decimal-comma",
                "--unit",
                "kW",
            ],
        ]
        .concat(),
    );
    assert!(out.contains("2 new"), "{out}");

    let store = Store::open(&d.join(veille_collector::store::STORE_DIR)).unwrap();
    let values = |meter: &str| -> Vec<f64> {
        meter_store::readings(
            &store,
            veille_collector::tokens::DEFAULT_ORG_ID,
            meter,
            Quantity::Power,
            0,
            i64::MAX,
        )
        .unwrap()
        .iter()
        .map(|r| r.1)
        .collect()
    };
    assert_eq!(values("clim-h"), [812.5, 790.0]);
    assert_eq!(values("tgbt"), [1_234_500.0, 1_240_250.0]);
}

#[test]
fn tasmota_and_meter_json_through_mosquitto_are_stored_and_a_reset_is_handled() {
    let token = "acme-token-0123456789abcdef";
    let broker = Mosquitto::start(&[("acme", token), ("pow1", "pow1-password-123")]);
    let cfg = broker.collector_config("c1", &[("acme", token)], "veille-meters-1");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "[meters]\ntasmota_timezone = \"UTC\"\n[[meters.tasmota]]\ntopic = \"pow1\"\nmeter = \"clim\"\n\
         [[meters.tasmota]]\ntopic = \"pow1/DS18B20\"\nmeter = \"inlet\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut c = Collector::start_with("collector", data.path(), "127.0.0.1:0", Some(&cfg), &[]);

    // A Sonoff POW R2's telemetry (fields as Tasmota sends them), then a reset to 0.02.
    let sensor = |time: &str, total: f64, power: f64| {
        format!(
            r#"{{"Time":"{time}","ENERGY":{{"TotalStartTime":"2019-03-19T21:10:01","Total":{total},"Yesterday":0.001,"Today":0.397,"Period":0,"Power":{power},"ApparentPower":0,"ReactivePower":0,"Factor":0.00,"Voltage":230,"Current":0.000}},"DS18B20":{{"Id":"0316A279E6FF","Temperature":77.0}},"TempUnit":"F"}}"#
        )
    };
    let publish = |user: &str, pw: &str, topic: &str, payload: &str| {
        assert!(mosquitto::publish(
            broker.port,
            user,
            pw,
            topic,
            payload.as_bytes()
        ));
    };
    // "connected" is logged before the subscription is acknowledged: probe until a
    // meter message gets through (a refused value is logged at warn).
    c.proc.wait_for_line("connected to the MQTT broker");
    let probe = r#"{"ts":1714557600000,"power_w":1,"power_unit":"probe-unit"}"#;
    let mut through = false;
    for _ in 0..50 {
        publish("acme", token, "veille/v1/acme/meters/probe", probe);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < deadline && !through {
            through = c.proc.log().iter().any(|l| l.contains("probe-unit"));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if through {
            break;
        }
    }
    assert!(through, "the collector never received a meter message");
    let tele = "tele/pow1/SENSOR";
    publish(
        "pow1",
        "pow1-password-123",
        tele,
        &sensor("2024-05-01T10:00:00", 1.368, 850.0),
    );
    publish(
        "pow1",
        "pow1-password-123",
        tele,
        &sensor("2024-05-01T10:05:00", 1.468, 860.0),
    );
    publish(
        "pow1",
        "pow1-password-123",
        tele,
        &sensor("2024-05-01T10:10:00", 0.02, 855.0),
    );
    publish(
        "acme",
        token,
        "veille/v1/acme/meters/tgbt",
        r#"{"ts":1714557600000,"power_w":12.5,"power_unit":"kW","energy_kwh":500000,"energy_unit":"Wh"}"#,
    );
    publish(
        "acme",
        token,
        "veille/v1/acme/meters/tgbt",
        r#"{"ts":1714557660000,"power_w":3,"power_unit":"hp"}"#,
    );
    c.proc.wait_for_line("\"hp\"");
    c.proc.wait_for_line("counter reset detected");
    assert_eq!(c.proc.stop(), Some(0));

    let store = Store::open(&data.path().join(veille_collector::store::STORE_DIR)).unwrap();
    let energy =
        meter_store::readings(&store, "acme", "clim", Quantity::Energy, 0, i64::MAX).unwrap();
    assert_eq!(energy.len(), 3, "{energy:?}");
    assert_eq!(energy[2].2 & FLAG_RESET, FLAG_RESET, "the reset is flagged");
    assert_eq!(
        energy[0].0, 1_714_557_600_000,
        "Time read in the configured zone"
    );
    let power =
        meter_store::readings(&store, "acme", "clim", Quantity::Power, 0, i64::MAX).unwrap();
    assert_eq!(
        power.iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![850.0, 860.0, 855.0]
    );
    let inlet =
        meter_store::readings(&store, "acme", "inlet", Quantity::Temperature, 0, i64::MAX).unwrap();
    assert!((inlet[0].1 - 25.0).abs() < 1e-9, "77 °F = 25 °C: {inlet:?}");
    let clim_rec = meter_store::meter(&store, "acme", "clim").unwrap().unwrap();
    assert_eq!(clim_rec.resets, 1);
    assert_eq!(clim_rec.units["energy"], "kWh");
    assert_eq!(clim_rec.units["power"], "W");
    let tgbt_rec = meter_store::meter(&store, "acme", "tgbt").unwrap().unwrap();
    assert_eq!(tgbt_rec.units["power"], "W");
    assert_eq!(
        tgbt_rec.rejected.values().sum::<u64>(),
        1,
        "the unknown unit is counted"
    );
    let tgbt_p =
        meter_store::readings(&store, "acme", "tgbt", Quantity::Power, 0, i64::MAX).unwrap();
    assert_eq!(tgbt_p, vec![(1_714_557_600_000, 12_500.0, 0)]);
    let tgbt_e =
        meter_store::readings(&store, "acme", "tgbt", Quantity::Energy, 0, i64::MAX).unwrap();
    assert_eq!(tgbt_e[0].1, 500.0);
}
