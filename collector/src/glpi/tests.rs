//! `glpi sync` against a scripted GLPI: a small HTTP server on 127.0.0.1:0 that
//! follows apirest.md (initSession with `Authorization: user_token …` and App-Token,
//! Session-Token on every later call, `range` → 206/200 with `Content-Range`,
//! `["ERROR_…", "message"]` bodies) and records every request and every killSession.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;
use crate::config::Config;
use veille_proto::v1::{Inventory, ReportBatch};

const NOW: i64 = 1_790_000_000_000;
const APP_TOKEN: &str = "app-0123456789";
const USER_TOKEN: &str = "user-abcdef";
const SESSION: &str = "83af7e620c83a50a18d3eac2f6ed05a3ca0bea62";

/// What the fake does on one request.
#[derive(Default)]
struct Script {
    computers: Vec<Value>,
    monitors: Vec<Value>,
    /// A page (`"Computer?…range=2-3"` substring) answered with this status and body.
    fail_on: Option<(String, u16, String)>,
    /// Every request, `path?query`, in order.
    log: Vec<String>,
    killed: usize,
}

type Fake = Arc<Mutex<Script>>;

fn glpi_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!([code, message]))).into_response()
}

async fn handle(State(fake): State<Fake>, uri: Uri, headers: HeaderMap) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut s = fake.lock().unwrap();
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    s.log
        .push(pq.trim_start_matches("/apirest.php/").to_owned());
    if header("App-Token") != APP_TOKEN {
        return glpi_error(
            StatusCode::BAD_REQUEST,
            "ERROR_WRONG_APP_TOKEN_PARAMETER",
            "parameter app_token seems wrong",
        );
    }
    let path = uri.path().trim_start_matches("/apirest.php/");
    if path == "initSession" {
        if header("Authorization") != format!("user_token {USER_TOKEN}") {
            return glpi_error(
                StatusCode::UNAUTHORIZED,
                "ERROR_GLPI_LOGIN_USER_TOKEN",
                "parameter user_token seems invalid",
            );
        }
        return axum::Json(json!({ "session_token": SESSION })).into_response();
    }
    if header("Session-Token") != SESSION {
        return glpi_error(
            StatusCode::UNAUTHORIZED,
            "ERROR_SESSION_TOKEN_INVALID",
            "session_token seems invalid",
        );
    }
    if path == "killSession" {
        s.killed += 1;
        return StatusCode::OK.into_response();
    }
    if let Some((needle, status, body)) = &s.fail_on
        && pq.contains(needle.as_str())
    {
        return (StatusCode::from_u16(*status).unwrap(), body.clone()).into_response();
    }
    let query = uri.query().unwrap_or("");
    if !query.contains("expand_dropdowns=true") || !query.contains("with_infocoms=true") {
        return glpi_error(StatusCode::BAD_REQUEST, "TEST", "dropdowns not expanded");
    }
    let items = match path {
        "Computer" => &s.computers,
        "Monitor" => &s.monitors,
        _ => {
            return glpi_error(
                StatusCode::BAD_REQUEST,
                "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
                "no such itemtype",
            );
        }
    };
    let range = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("range="))
        .unwrap_or("0-49");
    let (a, b) = range.split_once('-').unwrap();
    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
    let total = items.len();
    if total == 0 {
        return (
            StatusCode::OK,
            [("Content-Range", "0-0/0".to_owned())],
            axum::Json(json!([])),
        )
            .into_response();
    }
    if a >= total {
        return glpi_error(
            StatusCode::BAD_REQUEST,
            "ERROR_RANGE_EXCEED_TOTAL",
            "Provided range exceed total count of data",
        );
    }
    let last = b.min(total - 1);
    let status = if last + 1 < total {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    (
        status,
        [
            ("Content-Range", format!("{a}-{last}/{total}")),
            ("Accept-Range", format!("{path} 990")),
        ],
        axum::Json(Value::Array(items[a..=last].to_vec())),
    )
        .into_response()
}

async fn start_fake(script: Script) -> (Fake, std::net::SocketAddr) {
    let fake: Fake = Arc::new(Mutex::new(script));
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, addr)
}

/// Five computers (one deleted, one in state "Rebut", one unknown to Veille) and
/// three monitors (no agent: unmatched; one decommissioned), as GLPI sends them.
fn fleet() -> Script {
    Script {
        computers: vec![
            json!({"id": 1, "name": "PC-ACCUEIL-01", "serial": "5CG1234XYZ",
                   "otherserial": "INV-001", "locations_id": "Mairie > Accueil",
                   "states_id": "En service", "is_deleted": 0,
                   "_infocoms": {"buy_date": "2019-03-12", "warranty_date": "2019-03-12",
                                 "warranty_duration": 36}}),
            json!({"id": 2, "name": "PC-URBA-03", "serial": "PF2ABCDE", "locations_id": "&nbsp;",
                   "is_deleted": 0, "_infocoms": {"use_date": "2020-06-01"}}),
            json!({"id": 3, "name": "PC-OLD", "serial": "MXL9999OLD", "is_deleted": 1,
                   "_infocoms": {"buy_date": "2012-01-01"}}),
            json!({"id": 4, "name": "PC-REBUT", "serial": "CZJ93201RT", "is_deleted": 0,
                   "states_id": "Hors service > Rebut", "_infocoms": []}),
            json!({"id": 5, "name": "PC-INCONNU", "serial": "ZZZ999", "is_deleted": 0,
                   "_infocoms": []}),
        ],
        monitors: vec![
            json!({"id": 1, "name": "ECRAN-1", "serial": "M1", "is_deleted": 0,
                   "_infocoms": {"buy_date": "2021-01-01"}}),
            json!({"id": 2, "name": "ECRAN-2", "serial": "M2", "is_deleted": 0,
                   "_infocoms": {"decommission_date": "2024-05-01"}}),
            json!({"id": 3, "name": "ECRAN-3", "serial": "M3", "is_deleted": 0}),
        ],
        ..Script::default()
    }
}

fn config(dir: &std::path::Path, addr: std::net::SocketAddr, user_token: &str) -> Config {
    let env = [
        ("VEILLE_DATA_DIR", dir.display().to_string()),
        ("VEILLE_GLPI__URL", format!("http://{addr}/apirest.php")),
        ("VEILLE_GLPI__APP_TOKEN", APP_TOKEN.to_owned()),
        ("VEILLE_GLPI__USER_TOKEN", user_token.to_owned()),
        ("VEILLE_GLPI__PAGE_SIZE", "2".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    Config::load(None, env, toml::Table::new()).unwrap().0
}

/// Devices with agents in the default org: the GLPI computers 1–4 by serial.
fn seed(config: &Config) {
    let store = config.open_store().unwrap();
    for (id, serial) in [
        ("d-accueil", "5CG1234XYZ"),
        ("d-urba", "PF2ABCDE"),
        ("d-old", "MXL9999OLD"),
        ("d-rebut", "CZJ93201RT"),
    ] {
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
        store.apply_batch("default", &batch, NOW).unwrap();
    }
    store.flush().unwrap();
}

fn assets(config: &Config) -> Vec<(String, String)> {
    let store = config.open_store().unwrap();
    ["d-accueil", "d-urba", "d-old", "d-rebut"]
        .iter()
        .filter_map(|id| {
            store
                .asset("default", id)
                .unwrap()
                .map(|a| (id.to_string(), a.acquisition_date))
        })
        .collect()
}

async fn setup(script: Script, user_token: &str) -> (tempfile::TempDir, Fake, Config) {
    let dir = tempfile::tempdir().unwrap();
    let (fake, addr) = start_fake(script).await;
    let config = config(dir.path(), addr, user_token);
    seed(&config);
    (dir, fake, config)
}

#[tokio::test]
async fn every_page_is_read_in_one_session_and_only_the_active_fleet_is_applied() {
    let (_dir, fake, config) = setup(fleet(), USER_TOKEN).await;
    let out = sync(&config, false, NOW).await.unwrap();
    {
        let s = fake.lock().unwrap();
        let pages: Vec<&str> = s
            .log
            .iter()
            .map(|l| l.split("range=").nth(1).map_or(l.as_str(), |r| r))
            .collect();
        // Three computer pages of 2 (206, 206, 200), two monitor pages, one session.
        assert_eq!(
            pages,
            [
                "initSession",
                "0-1",
                "2-3",
                "4-5",
                "0-1",
                "2-3",
                "killSession"
            ]
        );
        assert!(s.log[1].starts_with("Computer?") && s.log[4].starts_with("Monitor?"));
        assert_eq!(s.killed, 1);
    }
    assert!(
        out.starts_with(
            "GLPI API: 8 items (5 computers, 3 monitors) for org default; 3 left out\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("left out: Computer 3 \"PC-OLD\" (deleted)"),
        "{out}"
    );
    assert!(
        out.contains("left out: Computer 4 \"PC-REBUT\" (state \"Hors service > Rebut\")"),
        "{out}"
    );
    assert!(
        out.contains("left out: Monitor 2 \"ECRAN-2\" (decommissioned on 2024-05-01)"),
        "{out}"
    );
    assert!(
        out.contains("matched: 2, unmatched: 1, ambiguous: 0"),
        "{out}"
    );
    assert!(
        out.contains("line 1: default/d-accueil (by serial)"),
        "{out}"
    );
    assert!(out.contains("line 2: default/d-urba (by serial)"), "{out}");
    assert!(
        out.contains("unmatched lines (no known device): 5\n"),
        "{out}"
    );
    assert!(
        out.contains("active monitors: 2 (no agent runs on a monitor: kept without agent)"),
        "{out}"
    );
    assert!(out.contains("applied: 2 written, 0 unchanged"), "{out}");
    assert_eq!(
        assets(&config),
        [
            ("d-accueil".to_owned(), "2019-03-12".to_owned()),
            ("d-urba".to_owned(), "2020-06-01".to_owned())
        ]
    );
    let store = config.open_store().unwrap();
    let a = store.asset("default", "d-accueil").unwrap().unwrap();
    assert_eq!(
        (
            a.inventory_number.as_str(),
            a.location.as_str(),
            a.glpi_name.as_str()
        ),
        ("INV-001", "Mairie > Accueil", "PC-ACCUEIL-01")
    );
    // The unmatched computer and the two active monitors are kept without agent,
    // with GLPI's ids; the left-out items are not.
    let kept: Vec<(String, u64)> = store
        .fleet_assets(Some("default"))
        .unwrap()
        .into_iter()
        .map(|(_, a)| (a.kind, a.glpi_id))
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(
        kept.iter().filter(|(k, _)| k == "monitor").count(),
        2,
        "{kept:?}"
    );
    assert!(kept.iter().all(|(_, id)| *id > 0), "{kept:?}");
    assert!(
        out.contains("kept without agent for org default: 1 computer(s), 2 monitor(s)"),
        "{out}"
    );
    drop(store);

    // A re-sync of the same GLPI changes nothing.
    let again = sync(&config, false, NOW + 60_000).await.unwrap();
    assert!(again.contains("applied: 0 written, 2 unchanged"), "{again}");
    assert!(
        again.contains("without agent: 0 written, 3 unchanged, 0 removed"),
        "{again}"
    );
    assert_eq!(fake.lock().unwrap().killed, 2);
}

#[tokio::test]
async fn a_dry_run_reads_and_matches_but_writes_nothing() {
    let (_dir, fake, config) = setup(fleet(), USER_TOKEN).await;
    let out = sync(&config, true, NOW).await.unwrap();
    assert!(
        out.contains("matched: 2, unmatched: 1, ambiguous: 0"),
        "{out}"
    );
    assert!(out.ends_with("dry run: nothing applied\n"), "{out}");
    assert!(assets(&config).is_empty());
    assert_eq!(fake.lock().unwrap().killed, 1);
}

#[tokio::test]
async fn a_wrong_token_is_glpis_refusal_named_and_nothing_is_written() {
    let (_dir, fake, config) = setup(fleet(), "not-the-token").await;
    let e = sync(&config, false, NOW).await.unwrap_err();
    assert!(e.is_usage(), "{e}");
    assert_eq!(
        e.to_string(),
        "GLPI refused GET initSession (401 ERROR_GLPI_LOGIN_USER_TOKEN): parameter \
         user_token seems invalid; nothing was applied"
    );
    assert!(!e.to_string().contains("not-the-token"));
    assert!(assets(&config).is_empty());
    let s = fake.lock().unwrap();
    // No session was opened, so there is none to close; no page was asked for.
    assert_eq!(s.log, ["initSession"]);
    assert_eq!(s.killed, 0);
}

#[tokio::test]
async fn a_failure_half_way_names_the_request_applies_nothing_and_closes_the_session() {
    for (status, body, want) in [
        (
            500,
            r#"["ERROR", "Internal error"]"#,
            "GLPI refused GET Computer?expand_dropdowns=true&with_infocoms=true&get_hateoas=false&range=2-3 (500 ERROR): Internal error",
        ),
        (
            206,
            "<html>maintenance</html>",
            "GET Computer?expand_dropdowns=true&with_infocoms=true&get_hateoas=false&range=2-3: the answer is not JSON",
        ),
    ] {
        let script = Script {
            fail_on: Some((
                "Computer?".to_owned()
                    + "expand_dropdowns=true&with_infocoms=true&get_hateoas=false&range=2-3",
                status,
                body.to_owned(),
            )),
            ..fleet()
        };
        let (_dir, fake, config) = setup(script, USER_TOKEN).await;
        let e = sync(&config, false, NOW).await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(want), "{msg}");
        assert!(msg.ends_with("nothing was applied"), "{msg}");
        // Page 1 was good, but nothing of the sync is applied.
        assert!(assets(&config).is_empty());
        {
            let mut s = fake.lock().unwrap();
            assert_eq!(s.killed, 1, "{:?}", s.log);
            assert_eq!(s.log.last().map(String::as_str), Some("killSession"));
            // The next sync starts over and goes through.
            s.fail_on = None;
        }
        let out = sync(&config, false, NOW).await.unwrap();
        assert!(out.contains("applied: 2 written"), "{out}");
    }
}

#[tokio::test]
async fn an_empty_glpi_and_a_missing_app_token_are_told_apart() {
    let (_dir, fake, config) = setup(Script::default(), USER_TOKEN).await;
    let out = sync(&config, false, NOW).await.unwrap();
    assert!(out.starts_with("GLPI API: 0 items"), "{out}");
    assert_eq!(fake.lock().unwrap().killed, 1);
    let mut no_app = config.clone();
    no_app.glpi.app_token = String::new();
    let e = sync(&no_app, false, NOW).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("(400 ERROR_WRONG_APP_TOKEN_PARAMETER): parameter app_token seems wrong"),
        "{e}"
    );
    assert!(matches!(e, SyncError::Refused { status: 400, .. }), "{e}");
}

#[tokio::test]
async fn the_server_task_syncs_at_start_and_stops_on_the_signal() {
    let (_dir, fake, mut config) = setup(fleet(), USER_TOKEN).await;
    config.glpi.sync_every_minutes = 60;
    let store = Arc::new(config.open_store().unwrap());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = spawn_periodic(store.clone(), &config, stop_rx).expect("sync is on");
    // The first sync runs at once; wait (bounded) for what it writes.
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while store.asset("default", "d-accueil").unwrap().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the periodic sync ran");
    let _ = stop.send(true);
    tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("the task stops on the signal")
        .unwrap();
    assert_eq!(fake.lock().unwrap().killed, 1);
    // Off by default.
    config.glpi.sync_every_minutes = 0;
    let (_stop, rx) = tokio::sync::watch::channel(false);
    assert!(spawn_periodic(store, &config, rx).is_none());
}

#[tokio::test]
async fn a_sync_goes_through_while_another_process_holds_the_store_open() {
    let (_dir, _fake, config) = setup(fleet(), USER_TOKEN).await;
    // What a running collector holds: the store open.
    let held = config.open_store().unwrap();
    let out = sync(&config, false, NOW).await.unwrap();
    assert!(out.contains("applied: 2 written"), "{out}");
    // The holder sees the sync without reopening.
    assert!(held.asset("default", "d-accueil").unwrap().is_some());
}

#[tokio::test]
async fn a_data_directory_without_a_store_is_refused_before_asking_glpi() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, addr) = start_fake(fleet()).await;
    let config = config(&dir.path().join("nothing-here"), addr, USER_TOKEN);
    let e = sync(&config, false, NOW).await.unwrap_err();
    assert!(
        matches!(e, SyncError::NoStore { .. }) && e.is_usage(),
        "{e}"
    );
    assert!(fake.lock().unwrap().log.is_empty());
}
