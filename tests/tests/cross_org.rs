//! Cross-org isolation on every door of the real collector: org A's token never reads
//! or writes org B's data. The HTTP routes come from the router's own table
//! (`veille_collector::api::routes()`), so a route added there without a case here
//! fails this test instead of going unchecked.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use veille_tests::grpc::{batch, client, send};
use veille_tests::{Collector, bin, wait_until};

const A: &str = "org-a";
const B: &str = "tenant-b";
const A_TOKEN: &str = "a-token-0123456789abcdef";
const B_TOKEN: &str = "b-token-0123456789abcdef";
/// Every piece of B's data carries this, and nothing of A's does: a body holding it
/// leaked B's data (error messages never name the other org).
const B_MARK: &str = "tenant-b";

struct Answer {
    status: u16,
    body: String,
}

/// One raw HTTP/1.1 request with a bearer token and an optional JSON body.
fn call(addr: &str, method: &str, path: &str, token: &str, json: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    Answer {
        status,
        body: body.to_owned(),
    }
}

fn draft(org: &str, idle_s: u32) -> String {
    format!(
        r#"{{"org":"{org}","mode":"dry-run","idle_threshold_s":{idle_s},"warning_s":300,
        "windows":[{{"days":["weekdays"],"start":"20:00","end":"07:00","time_zone":"Europe/Paris"}}]}}"#
    )
}

fn room_add(config: &Path, data: &Path, org: &str, name: &str, host: &str) {
    let out = Command::new(bin("veille-collector"))
        .args(["room", "add", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(["--org", org, "--name", name, "--site", "s", "--hosts", host])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "room add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The requests org A makes against B's data on one route: (method, path+query, body).
/// Panics for a route it does not know, so a new route needs a case.
fn attacks(method: &str, path: &str, period: &str) -> Vec<(String, String)> {
    let q = |query: &str| format!("{path}?{query}");
    match (method, path) {
        ("GET", "/api/v1/devices") => vec![
            (path.into(), String::new()),
            (q(&format!("org={B}")), String::new()),
        ],
        ("GET", "/api/v1/reports/consumption") => vec![
            (q(&format!("{period}&by=device")), String::new()),
            (q(&format!("{period}&by=org&org={B}")), String::new()),
            (q(&format!("{period}&by=device&format=csv")), String::new()),
        ],
        ("GET", "/api/v1/reports/renewal") => vec![
            (path.into(), String::new()),
            (q(&format!("org={B}&format=csv")), String::new()),
        ],
        ("GET", "/api/v1/reports/compliance") => {
            vec![(q(&format!("{period}&org={B}")), String::new())]
        }
        // Without `org`, B's room name is echoed in "no room …": checked apart below.
        ("GET", "/api/v1/reports/setpoint") => {
            vec![(q(&format!("room=tenant-b-room&org={B}")), String::new())]
        }
        ("GET", "/api/v1/rooms") => vec![
            (path.into(), String::new()),
            (q(&format!("org={B}")), String::new()),
        ],
        ("GET", "/api/v1/policy") => vec![
            (path.into(), String::new()),
            (q(&format!("org={B}")), String::new()),
        ],
        ("PUT", "/api/v1/policy") => vec![(path.into(), draft(B, 999))],
        ("POST", "/api/v1/policy/replay") => vec![(q(period), draft(B, 999))],
        // Without `org`, B's device id is simply unknown to A: checked apart below.
        ("POST", "/api/v1/devices/{id}/wake") => vec![(
            format!("/api/v1/devices/tenant-b-pc/wake?org={B}"),
            String::new(),
        )],
        ("GET", "/api/v1/reports/savings") => vec![
            (q("policy_version=1"), String::new()),
            (q(&format!("policy_version=1&org={B}")), String::new()),
        ],
        // An org sees its own line and its peers' quartiles, never a peer's name.
        ("GET", "/api/v1/reports/compare") => vec![
            (q(period), String::new()),
            (q(&format!("{period}&format=csv")), String::new()),
            (q(&format!("{period}&org={B}")), String::new()),
        ],
        ("GET", "/api/v1/reports/trajectory") => vec![
            (path.into(), String::new()),
            (q(&format!("org={B}")), String::new()),
        ],
        ("GET", "/api/v1/openapi.json") => vec![(path.into(), String::new())],
        _ => panic!("{method} {path} has no cross-org case in tests/tests/cross_org.rs: add one"),
    }
}

#[test]
fn org_a_never_reads_or_writes_org_b_on_any_api_route() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[[orgs]]\nid = \"{A}\"\ntoken = \"{A_TOKEN}\"\n[[orgs]]\nid = \"{B}\"\ntoken = \"{B_TOKEN}\"\n"
        ),
    )
    .unwrap();
    let c = Collector::start_with("collector", data.path(), "127.0.0.1:0", Some(&config), &[]);
    let operator = std::fs::read_to_string(data.path().join("operator.token")).unwrap();
    let operator = operator.trim();
    let http = c.http.clone();

    // Each org gets a device (over gRPC), a room and a policy; B's all carry B_MARK.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut g = client(&c.url()).await;
        send(&mut g, A_TOKEN, batch("org-a-pc", 1..=3))
            .await
            .unwrap();
        send(&mut g, B_TOKEN, batch("tenant-b-pc", 1..=3))
            .await
            .unwrap();
    });
    room_add(&config, data.path(), A, "a-room", "org-a-pc");
    room_add(&config, data.path(), B, "tenant-b-room", "tenant-b-pc");
    for (org, idle) in [(A, 600), (B, 1234)] {
        let put = call(&http, "PUT", "/api/v1/policy", operator, &draft(org, idle));
        assert_eq!(put.status, 200, "policy of {org}: {}", put.body);
    }
    let b_policy = call(&http, "GET", "/api/v1/policy", B_TOKEN, "").body;
    assert!(b_policy.contains("1234"), "{b_policy}");

    // Controls: the marker shows where B's data legitimately appears, so its absence
    // below means something.
    wait_until("both devices stored", || {
        let d = call(&http, "GET", "/api/v1/devices", operator, "").body;
        d.contains("org-a-pc") && d.contains("tenant-b-pc")
    });
    for path in ["/api/v1/rooms", "/api/v1/policy"] {
        let seen = call(&http, "GET", path, operator, "");
        assert!(seen.body.contains(B_MARK), "operator {path}: {}", seen.body);
    }
    let own = call(&http, "GET", "/api/v1/devices", A_TOKEN, "");
    assert!(
        own.status == 200 && own.body.contains("org-a-pc"),
        "{}",
        own.body
    );
    let own = call(&http, "GET", "/api/v1/rooms", A_TOKEN, "");
    assert!(
        own.status == 200 && own.body.contains("a-room"),
        "{}",
        own.body
    );
    let own = call(&http, "GET", "/api/v1/policy", A_TOKEN, "");
    assert!(own.status == 200 && own.body.contains(A), "{}", own.body);

    let today = jiff::Zoned::now().date();
    let period = format!(
        "from={}&to={}",
        today.yesterday().unwrap(),
        today.tomorrow().unwrap()
    );
    let routes = veille_collector::api::routes();
    assert!(
        routes.iter().map(|(_, m)| m.len()).sum::<usize>() >= 9,
        "{routes:?}"
    );
    let mut checked = 0;
    for (path, methods) in &routes {
        for method in methods {
            for (target, body) in attacks(method, path, &period) {
                let a = call(&http, method, &target, A_TOKEN, &body);
                assert!(
                    matches!(a.status, 200 | 400 | 403 | 404),
                    "{method} {target}: {} {}",
                    a.status,
                    a.body
                );
                assert!(
                    !a.body.contains(B_MARK),
                    "{method} {target} with A's token shows B's data: {}",
                    a.body
                );
                if *method != "GET" {
                    assert_eq!(
                        a.status, 403,
                        "{method} {target} writes B's data: {}",
                        a.body
                    );
                }
                checked += 1;
            }
            // Methods a route does not declare are not served (the table says them all).
            for other in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
                if !methods.contains(&other) {
                    let a = call(&http, other, path, A_TOKEN, "{}");
                    assert_eq!(a.status, 405, "{other} {path}: {}", a.body);
                }
            }
        }
    }
    assert!(checked >= 15, "{checked} requests");
    // B's room asked by name with A's token: the same answer as a room that exists
    // nowhere (no report, and no way to learn that B has such a room).
    let path = "/api/v1/reports/setpoint?room=";
    let a = call(&http, "GET", &format!("{path}tenant-b-room"), A_TOKEN, "");
    let none = call(&http, "GET", &format!("{path}no-such-room"), A_TOKEN, "");
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.status, none.status);
    assert_eq!(a.body, none.body.replace("no-such-room", "tenant-b-room"));
    let a = call(
        &http,
        "GET",
        &format!("/api/v1/reports/setpoint?room=tenant-b-room&org={B}"),
        A_TOKEN,
        "",
    );
    assert_eq!(a.status, 403, "{}", a.body);
    // Waking B's device with A's token: the same answer as a device that exists
    // nowhere, and nothing queued.
    let path = "/api/v1/devices/";
    let a = call(
        &http,
        "POST",
        &format!("{path}tenant-b-pc/wake"),
        A_TOKEN,
        "",
    );
    let none = call(
        &http,
        "POST",
        &format!("{path}no-such-pc/wake"),
        A_TOKEN,
        "",
    );
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.body, none.body.replace("no-such-pc", "tenant-b-pc"));
    // The refused writes changed nothing of B's.
    assert_eq!(
        call(&http, "GET", "/api/v1/policy", B_TOKEN, "").body,
        b_policy
    );
    let b_rooms = call(&http, "GET", "/api/v1/rooms", B_TOKEN, "").body;
    assert!(
        b_rooms.contains("tenant-b-room") && !b_rooms.contains("a-room"),
        "{b_rooms}"
    );
}

/// The web page is a door too: A's session opens B's device page by its URL.
#[test]
fn org_a_session_cannot_open_org_b_device_page() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[[orgs]]\nid = \"{A}\"\ntoken = \"{A_TOKEN}\"\n[[orgs]]\nid = \"{B}\"\ntoken = \"{B_TOKEN}\"\n"
        ),
    )
    .unwrap();
    let c = Collector::start_with("collector", data.path(), "127.0.0.1:0", Some(&config), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut g = client(&c.url()).await;
        send(&mut g, A_TOKEN, batch("org-a-pc", 1..=2))
            .await
            .unwrap();
        send(&mut g, B_TOKEN, batch("tenant-b-pc", 1..=2))
            .await
            .unwrap();
    });
    let login = |token: &str| {
        let r = veille_tests::fleet::http(
            &c.http,
            "POST",
            "/login",
            None,
            Some(&format!("token={token}")),
        );
        assert_eq!(r.status, 303, "{}", r.text());
        r.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_owned()
    };
    let (a, b) = (login(A_TOKEN), login(B_TOKEN));
    let page = format!("/device/{B}/tenant-b-pc");
    let own = veille_tests::fleet::http(&c.http, "GET", &page, Some(&b), None);
    assert_eq!(own.status, 200, "B sees its own device");
    assert!(
        own.text().contains("tenant-b-pc"),
        "B's page names its device"
    );
    let theirs = veille_tests::fleet::http(&c.http, "GET", &page, Some(&a), None);
    assert!(matches!(theirs.status, 403 | 404), "{}", theirs.status);
    assert!(!theirs.text().contains("tenant-b-pc"), "{}", theirs.text());
    let list = veille_tests::fleet::http(&c.http, "GET", "/devices", Some(&a), None);
    assert_eq!(list.status, 200);
    assert!(list.text().contains("org-a-pc") && !list.text().contains("tenant-b-pc"));
}

/// Runs `tool` (`mosquitto_pub`/`mosquitto_sub`) against `addr` with org A's token;
/// returns (exit code, stderr).
fn mosquitto(tool: &str, addr: &str, version: &str, args: &[&str]) -> (Option<i32>, String) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new(tool)
        .args(["-h", host, "-p", port, "-V", version, "-q", "1"])
        .args(["-i", "intruder", "-u", A, "-P", A_TOKEN])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian package mosquitto-clients): {e}"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("[{tool} {args:?}] exit {:?} {err}", out.status.code());
    (out.status.code(), err)
}

fn cross_org_refusals(http: &str) -> u64 {
    let r = veille_tests::fleet::http(http, "GET", "/metrics", None, None);
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("veille_mqtt_cross_org_refused_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("veille_mqtt_cross_org_refused_total in /metrics") as u64
}

/// rumqttd, the embedded broker, has no per-user topic ACL, so the collector's proxy in
/// front of it keeps each connection to its token's org: org A's token publishing on
/// org B's report topic, or subscribing to B's acks or policy, gets its connection
/// closed, counted and logged, and nothing reaches B's data. On both ports (MQTT 3.1.1
/// and 5).
#[test]
fn on_the_embedded_broker_org_a_cannot_publish_or_subscribe_as_org_b() {
    use prost::Message;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[[orgs]]\nid = \"{A}\"\ntoken = \"{A_TOKEN}\"\n[[orgs]]\nid = \"{B}\"\ntoken = \"{B_TOKEN}\"\n"
        ),
    )
    .unwrap();
    let mut c = Collector::start_with("collector", data.path(), "127.0.0.1:0", Some(&config), &[]);
    let operator = std::fs::read_to_string(data.path().join("operator.token")).unwrap();
    let payload = data.path().join("batch.pb");
    let ports = [(c.mqtt.clone(), "mqttv311"), (c.mqtt5.clone(), "mqttv5")];
    let mut refused = 0;
    for (i, (addr, version)) in ports.iter().enumerate() {
        // Control: A's own topic works through the same proxy.
        let own = format!("org-a-pc-{i}");
        std::fs::write(&payload, batch(&own, 1..=1).encode_to_vec()).unwrap();
        let topic = veille_proto::topics::reports(A, &own);
        let (code, err) = mosquitto(
            "mosquitto_pub",
            addr,
            version,
            &["-t", &topic, "-f", payload.to_str().unwrap()],
        );
        assert_eq!(code, Some(0), "{err}");
        wait_until("A's report stored", || {
            call(&c.http, "GET", "/api/v1/devices", A_TOKEN, "")
                .body
                .contains(&own)
        });
        let (code, _) = mosquitto(
            "mosquitto_sub",
            addr,
            version,
            &["-t", &veille_proto::topics::ack(A, &own), "-W", "1"],
        );
        assert_ne!(code, Some(0), "nothing to receive: the wait times out");
        assert_eq!(
            cross_org_refusals(&c.http),
            refused,
            "own topics are not refused"
        );

        // A's token, B's report topic, a batch that names B's device.
        let theirs = format!("{B}-pc-{i}");
        std::fs::write(&payload, batch(&theirs, 1..=1).encode_to_vec()).unwrap();
        let topic = veille_proto::topics::reports(B, &theirs);
        let (code, _) = mosquitto(
            "mosquitto_pub",
            addr,
            version,
            &["-t", &topic, "-f", payload.to_str().unwrap()],
        );
        assert_ne!(code, Some(0), "the publish is not acknowledged");
        refused += 1;
        wait_until("the refusal counted", || {
            cross_org_refusals(&c.http) >= refused
        });
        refused = cross_org_refusals(&c.http);

        // B's acks and policy, and every org's at once.
        for filter in [
            veille_proto::topics::ack(B, "+"),
            veille_proto::topics::policy(B),
            veille_proto::topics::POLICY_FILTER.to_owned(),
            "#".to_owned(),
        ] {
            let (code, _) = mosquitto(
                "mosquitto_sub",
                addr,
                version,
                &["-t", &filter, "-W", "2", "-C", "1"],
            );
            assert_ne!(code, Some(0), "{filter}");
            wait_until("the subscription refused", || {
                cross_org_refusals(&c.http) > refused
            });
            refused = cross_org_refusals(&c.http);
        }
    }
    let devices = call(&c.http, "GET", "/api/v1/devices", operator.trim(), "").body;
    assert!(devices.contains("org-a-pc-1"), "{devices}");
    assert!(
        !devices.contains("tenant-b-pc"),
        "nothing filed under B: {devices}"
    );
    assert!(
        c.proc
            .log()
            .iter()
            .any(|l| l.contains("reason=\"cross_org\"") || l.contains("reason=cross_org")),
        "the refusal is logged"
    );
    c.proc.stop();
}
