//! Issue 20 end to end: the real `veille-collector glpi sync` binary against a
//! scripted GLPI on 127.0.0.1:0 (apirest.md's initSession, Session-Token, `range` with
//! 206 and `Content-Range`, killSession), over a store seeded with two devices.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use veille_collector::store::Store;
use veille_proto::v1::{Inventory, ReportBatch};
use veille_tests::bin;

const USER_TOKEN: &str = "e2e-user-token";
const SESSION: &str = "e2e-session";

/// Three computers (one deleted), served two per page; returns the request log.
fn start_fake() -> (String, Arc<Mutex<Vec<String>>>) {
    let items = [
        r#"{"id": 1, "name": "PC-ACCUEIL-01", "serial": "5CG1234XYZ", "is_deleted": 0,
            "locations_id": "Mairie > Accueil", "_infocoms": {"buy_date": "2019-03-12"}}"#,
        r#"{"id": 2, "name": "PC-OLD", "serial": "MXL9999OLD", "is_deleted": 1, "_infocoms": []}"#,
        r#"{"id": 3, "name": "PC-URBA", "serial": "PF2ABCDE", "is_deleted": 0,
            "_infocoms": {"use_date": "2020-06-01"}}"#,
    ];
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/apirest.php", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                headers.push(line.trim().to_owned());
            }
            let target = first.split(' ').nth(1).unwrap_or("").to_owned();
            let target = target.trim_start_matches("/apirest.php/").to_owned();
            seen.lock().unwrap().push(target.clone());
            let has = |h: &str| headers.iter().any(|l| l.eq_ignore_ascii_case(h));
            let (status, extra, body) = if target == "initSession" {
                if has(&format!("Authorization: user_token {USER_TOKEN}")) {
                    (
                        "200 OK",
                        String::new(),
                        format!(r#"{{"session_token": "{SESSION}"}}"#),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        String::new(),
                        r#"["ERROR_GLPI_LOGIN_USER_TOKEN", "parameter user_token seems invalid"]"#
                            .to_owned(),
                    )
                }
            } else if !has(&format!("Session-Token: {SESSION}")) {
                (
                    "401 Unauthorized",
                    String::new(),
                    r#"["ERROR_SESSION_TOKEN_INVALID", "session_token seems invalid"]"#.to_owned(),
                )
            } else if target == "killSession" {
                ("200 OK", String::new(), String::new())
            } else if target.starts_with("Computer?") {
                let range = target.split("range=").nth(1).unwrap_or("0-49");
                let start: usize = range.split('-').next().unwrap().parse().unwrap();
                let last = (start + 1).min(items.len() - 1);
                let status = if last + 1 < items.len() {
                    "206 Partial Content"
                } else {
                    "200 OK"
                };
                (
                    status,
                    format!("Content-Range: {start}-{last}/{}\r\n", items.len()),
                    format!("[{}]", items[start..=last].join(",")),
                )
            } else if target.starts_with("Monitor?") {
                (
                    "200 OK",
                    "Content-Range: 0-0/1\r\n".to_owned(),
                    r#"[{"id": 7, "name": "ECRAN-ACCUEIL", "serial": "CN0MON1", "is_deleted": 0,
                        "locations_id": "Mairie > Accueil", "_infocoms": {"buy_date": "2015-02-01"}}]"#
                        .to_owned(),
                )
            } else {
                (
                    "200 OK",
                    "Content-Range: 0-0/0\r\n".to_owned(),
                    "[]".to_owned(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, log)
}

fn renewal_json(data_dir: &Path) -> serde_json::Value {
    let out = Command::new(bin("veille-collector"))
        .args(["report", "renewal", "--format", "json", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run veille-collector report renewal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("renewal JSON")
}

fn glpi_sync(data_dir: &Path, url: &str, token: &str, dry_run: bool) -> Output {
    let mut cmd = Command::new(bin("veille-collector"));
    cmd.args(["glpi", "sync", "--data-dir"])
        .arg(data_dir)
        .env("VEILLE_GLPI__URL", url)
        .env("VEILLE_GLPI__USER_TOKEN", token)
        .env("VEILLE_GLPI__PAGE_SIZE", "2");
    if dry_run {
        cmd.arg("--dry-run");
    }
    cmd.output().expect("run veille-collector glpi sync")
}

#[test]
fn glpi_sync_reads_every_page_and_applies_the_active_fleet_once() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join(veille_collector::store::STORE_DIR);
    {
        // What agents would have reported: two PCs of the default org.
        let store = Store::open(&store_dir).unwrap();
        for (id, serial) in [("d-accueil", "5CG1234XYZ"), ("d-old", "MXL9999OLD")] {
            let batch = ReportBatch {
                device_id: id.into(),
                inventory: Some(Inventory {
                    hostname: id.into(),
                    serial: serial.into(),
                    ..Default::default()
                }),
                agent_version: "0.1.0".into(),
                ..Default::default()
            };
            store
                .apply_batch("default", &batch, 1_790_000_000_000)
                .unwrap();
        }
        store.flush().unwrap();
    }
    let (url, log) = start_fake();

    let wrong = glpi_sync(dir.path(), &url, "not-it", false);
    assert_eq!(wrong.status.code(), Some(2));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("ERROR_GLPI_LOGIN_USER_TOKEN") && err.contains("user_token seems invalid"),
        "{err}"
    );

    let dry = glpi_sync(dir.path(), &url, USER_TOKEN, true);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(out.contains("dry run: nothing applied"), "{out}");

    let real = glpi_sync(dir.path(), &url, USER_TOKEN, false);
    let out = String::from_utf8_lossy(&real.stdout);
    assert!(
        real.status.success(),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    assert!(
        out.starts_with("GLPI API: 4 items (3 computers, 1 monitors) for org default; 1 left out"),
        "{out}"
    );
    assert!(
        out.contains("left out: Computer 2 \"PC-OLD\" (deleted)"),
        "{out}"
    );
    assert!(
        out.contains("line 1: default/d-accueil (by serial)"),
        "{out}"
    );
    assert!(out.contains("applied: 1 written, 0 unchanged"), "{out}");
    assert!(
        out.contains("kept without agent for org default: 1 computer(s), 1 monitor(s)"),
        "{out}"
    );
    let again = glpi_sync(dir.path(), &url, USER_TOKEN, false);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("applied: 0 written, 1 unchanged"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // The whole fleet in the renewal report: the PC and the monitor without agent,
    // with their GLPI dates and ids.
    let renewal = renewal_json(dir.path());
    let row = |id: &str| {
        renewal["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {renewal:#}"))
    };
    let monitor = row("glpi/monitor/serial:CN0MON1");
    assert_eq!(monitor["has_agent"], false, "{monitor:#}");
    assert_eq!(monitor["kind"], "monitor");
    assert_eq!(monitor["age_source"], "acquisition");
    assert_eq!(monitor["age_since"], "2015-02-01");
    assert_eq!(monitor["glpi_id"], 7);
    assert_eq!(monitor["site"], "Mairie > Accueil");
    let pc = row("glpi/computer/serial:PF2ABCDE");
    assert_eq!(pc["has_agent"], false, "{pc:#}");
    assert_eq!(
        (pc["age_source"].as_str(), pc["age_since"].as_str()),
        (Some("acquisition"), Some("2020-06-01"))
    );
    assert_eq!(renewal["without_agent"], 2, "{renewal:#}");
    assert_eq!(row("d-accueil")["has_agent"], true);

    // An agent starts reporting PC-URBA: the next sync matches it, and it is no
    // longer counted without agent (not twice).
    {
        let store = Store::open(&store_dir).unwrap();
        let batch = ReportBatch {
            device_id: "d-urba".into(),
            inventory: Some(Inventory {
                hostname: "pc-urba".into(),
                serial: "PF2ABCDE".into(),
                ..Default::default()
            }),
            agent_version: "0.1.0".into(),
            ..Default::default()
        };
        store
            .apply_batch("default", &batch, 1_790_000_000_000)
            .unwrap();
        store.flush().unwrap();
    }
    let third = glpi_sync(dir.path(), &url, USER_TOKEN, false);
    let out = String::from_utf8_lossy(&third.stdout);
    assert!(
        out.contains("without agent: 0 written, 1 unchanged, 1 removed"),
        "{out}"
    );
    let renewal = renewal_json(dir.path());
    let urba: Vec<&serde_json::Value> = renewal["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["hostname"]
                .as_str()
                .is_some_and(|h| h.eq_ignore_ascii_case("pc-urba"))
        })
        .collect();
    assert_eq!(urba.len(), 1, "{renewal:#}");
    assert_eq!(urba[0]["device_id"], "d-urba");
    assert_eq!(urba[0]["age_source"], "acquisition");
    assert_eq!(renewal["without_agent"], 1, "{renewal:#}");

    let store = Store::open(&store_dir).unwrap();
    let a = store.asset("default", "d-accueil").unwrap().unwrap();
    assert_eq!(
        (a.acquisition_date.as_str(), a.location.as_str()),
        ("2019-03-12", "Mairie > Accueil")
    );
    assert_eq!(store.asset("default", "d-old").unwrap(), None);
    // Each successful sync: initSession, two Computer pages, one Monitor page,
    // killSession.
    let log = log.lock().unwrap();
    let kills = log.iter().filter(|l| *l == "killSession").count();
    assert_eq!(kills, 4, "{log:?}");
    assert!(log.iter().any(|l| l.ends_with("range=2-3")), "{log:?}");
}
