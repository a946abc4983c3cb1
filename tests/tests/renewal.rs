//! Issue 7 end to end: this machine's agent sends its inventory, the renewal report
//! lists the device aged from when it was first seen (or its BIOS date), and once a
//! GLPI export is imported from its acquisition date.

use std::path::Path;
use std::process::{Command, Output};

use veille_tests::{Agent, Collector, bin, devices_json, this_device_id, wait_until};

fn collector(args: &[&str], data_dir: &Path) -> Output {
    Command::new(bin("veille-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap_or_else(|e| panic!("run veille-collector {args:?}: {e}"))
}

fn renewal_json(data_dir: &Path) -> serde_json::Value {
    let out = collector(&["report", "renewal", "--format", "json"], data_dir);
    assert!(
        out.status.success(),
        "report renewal failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report renewal --format json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn this_device(report: &serde_json::Value, id: &str) -> serde_json::Value {
    report["devices"]
        .as_array()
        .expect("devices array")
        .iter()
        .find(|d| d["device_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not in the renewal report: {report:#}"))
}

/// Without an import, the age comes from the BIOS release date where this machine has
/// one readable (sysfs gives MM/DD/YYYY), else from the day the collector first saw it:
/// (age_source, age_since).
fn expected_age_without_import() -> (&'static str, String) {
    match veille_tests::host_dmi("bios_date") {
        Some(bios) => {
            let p: Vec<&str> = bios.split('/').collect();
            assert_eq!(p.len(), 3, "bios_date {bios:?}");
            ("bios_estimate", format!("{}-{}-{}", p[2], p[0], p[1]))
        }
        None => (
            "first_seen",
            jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date()
                .to_string(),
        ),
    }
}

#[test]
fn glpi_acquisition_date_becomes_the_age_of_this_machine() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let device_id = this_device_id();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned();

    let mut c = Collector::start(data.path(), "127.0.0.1:0");
    let mut agent = Agent::start("agent", state.path(), &c.url(), &c.token(), None);
    wait_until("the inventory reaches the collector", || {
        devices_json(data.path())
            .iter()
            .any(|d| d["device_id"] == device_id.as_str() && d["hostname"] == hostname.as_str())
    });

    // Server running: the CLI goes through the HTTP API.
    let report = renewal_json(data.path());
    let d = this_device(&report, &device_id);
    let (source, since) = expected_age_without_import();
    assert_eq!(d["age_source"], source, "{d:#}");
    assert_eq!(d["age_since"], since.as_str(), "{d:#}");
    assert_eq!(d["kind"], "computer");
    assert_eq!(d["working"], true);
    if source == "first_seen" {
        assert_eq!(
            d["status"], "ok",
            "a device first seen today is not old: {d:#}"
        );
    } else {
        // Dated by this host's BIOS: past its horizon or not, by the dates alone.
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string();
        let past = today.as_str() >= d["horizon_date"].as_str().unwrap();
        assert_eq!(d["status"] == "past", past, "{d:#}");
    }

    // The import runs beside the server, whose next report shows the imported date.
    let csv = data.path().join("glpi.csv");
    std::fs::write(
        &csv,
        format!(
            "\u{feff}ID;Nom;Numéro de série;Numéro d'inventaire;Lieu;Date d'achat\n\
             1;{};;INV-2016-042;Mairie > Informatique;15/01/2016\n\
             2;pc-inconnu;SN-UNKNOWN;INV-2016-043;Cave;15/01/2016\n",
            hostname.to_uppercase()
        ),
    )
    .unwrap();
    let csv_arg = csv.to_string_lossy().into_owned();
    let out = collector(&["import", "glpi", &csv_arg], data.path());
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import beside a running collector failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        summary.contains("matched: 1, unmatched: 1, ambiguous: 0"),
        "{summary}"
    );
    assert!(summary.contains("(by hostname)"), "{summary}");
    assert!(summary.contains("applied: 1 written"), "{summary}");
    // Through the running server's API (listen.json), not the store.
    let live = renewal_json(data.path());
    assert_eq!(
        this_device(&live, &device_id)["age_source"],
        "acquisition",
        "{live:#}"
    );

    agent.proc.stop();
    assert_eq!(c.proc.stop(), Some(0));

    // A bad date: exit 2, line and column named, nothing applied.
    let bad = data.path().join("bad.csv");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&csv)
            .unwrap()
            .replace("15/01/2016\n2", "31/02/2016\n2"),
    )
    .unwrap();
    let out = collector(&["import", "glpi", &bad.to_string_lossy()], data.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 2") && err.contains("Date d'achat"),
        "{err}"
    );

    // The same file again, server stopped: nothing changes.
    let out = collector(&["import", "glpi", &csv_arg], data.path());
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        summary.contains("applied: 0 written, 1 unchanged"),
        "{summary}"
    );

    // Server stopped: the CLI reads the store.
    let report = renewal_json(data.path());
    let d = this_device(&report, &device_id);
    assert_eq!(d["age_source"], "acquisition", "{d:#}");
    assert_eq!(d["age_since"], "2016-01-15");
    assert_eq!(d["inventory_number"], "INV-2016-042");
    assert_eq!(d["matched_by"], "hostname");
    assert_eq!(d["status"], "past", "{d:#}");
    assert!(
        report["past_horizon"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device_id"] == device_id.as_str()),
        "{report:#}"
    );

    // Re-import: nothing changes.
    let out = collector(&["import", "glpi", &csv_arg], data.path());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("applied: 0 written, 1 unchanged"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The whole fleet: the computer row no agent reports is kept, and so are the
    // monitors of GLPI's monitor export; neither is given an energy.
    let monitors = data.path().join("monitors.csv");
    std::fs::write(
        &monitors,
        "Nom;Numéro de série;Lieu;Date d'achat\nECRAN-01;CN0ECR1;Mairie > Accueil;02/05/2014\n",
    )
    .unwrap();
    let out = collector(
        &[
            "import",
            "glpi",
            "--kind",
            "monitor",
            &monitors.to_string_lossy(),
        ],
        data.path(),
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        summary.contains("kept without agent for org default: 1 monitor(s)"),
        "{summary}"
    );
    let report = renewal_json(data.path());
    let pc = this_device(&report, "glpi/computer/serial:SN-UNKNOWN");
    assert_eq!(
        (
            &pc["has_agent"],
            &pc["kind"],
            &pc["age_source"],
            &pc["age_since"]
        ),
        (
            &serde_json::json!(false),
            &serde_json::json!("computer"),
            &serde_json::json!("acquisition"),
            &serde_json::json!("2016-01-15")
        ),
        "{pc:#}"
    );
    assert_eq!(pc["status"], "past");
    let screen = this_device(&report, "glpi/monitor/serial:CN0ECR1");
    assert_eq!(screen["has_agent"], false, "{screen:#}");
    assert_eq!(screen["class"], "monitor");
    assert_eq!(screen["age_since"], "2014-05-02");
    assert_eq!(report["without_agent"], 2, "{report:#}");
    assert_eq!(this_device(&report, &device_id)["has_agent"], true);
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let out = collector(
        &[
            "report",
            "consumption",
            "--from",
            &today,
            "--to",
            &today,
            "--format",
            "json",
        ],
        data.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let consumption: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        consumption["assets_without_agent"],
        serde_json::json!([
            {"org": "default", "site": "Cave", "kind": "computer", "assets": 1},
            {"org": "default", "site": "Mairie > Accueil", "kind": "monitor", "assets": 1}
        ]),
        "{consumption:#}"
    );

    // The table and CSV renderings work on the same store.
    let out = collector(&["report", "renewal", "--format", "csv"], data.path());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&device_id));
    let out = collector(&["report", "renewal"], data.path());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Past their horizon"));
}
