//! TLS end to end with the real binaries: `init-tls` → a collector with `[tls]` → agents
//! trusting its CA over gRPC (`https://`) and MQTT (`mqtts://`, the embedded broker),
//! the HTTP API over HTTPS, and every refusal an operator will meet: a wrong CA (the
//! reports wait in the spool and arrive once the CA is fixed), plaintext on a TLS port,
//! an agent without the client certificate the collector requires. And TLS through a
//! real Mosquitto: agent → `mqtts://` Mosquitto → collector on `mqtts://`.

use std::path::Path;

use veille_tests::mosquitto::Mosquitto;
use veille_tests::{
    Agent, Collector, devices_json, https_get, https_request, init_tls, wait_until,
};

fn tls_env(tls: &Path) -> Vec<(String, String)> {
    vec![
        (
            "VEILLE_TLS__CERT".into(),
            tls.join("server.pem").display().to_string(),
        ),
        (
            "VEILLE_TLS__KEY".into(),
            tls.join("server.key").display().to_string(),
        ),
    ]
}

fn start_tls_collector(name: &str, data: &Path, extra: &[(String, String)]) -> Collector {
    let tls = data.join("tls");
    let mut env = tls_env(&tls);
    env.extend(extra.iter().cloned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let c = Collector::start_with(name, data, "127.0.0.1:0", None, &env);
    assert!(c.tls, "the listening line shows https:// URLs with TLS on");
    c
}

fn device_known(data: &Path, device_id: &str) -> bool {
    devices_json(data)
        .iter()
        .any(|d| d["device_id"] == device_id)
}

#[test]
fn agent_delivers_over_grpc_tls_and_the_api_answers_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tls = init_tls(&data, &["--san", "127.0.0.1", "--san", "localhost"]);
    for f in ["ca.pem", "ca.key", "server.pem", "server.key"] {
        assert!(tls.join(f).exists(), "init-tls wrote {f}");
    }
    let collector = start_tls_collector("collector", &data, &[]);
    let listen: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("listen.json")).unwrap()).unwrap();
    assert_eq!(listen["grpc"], collector.grpc.as_str());
    assert!(listen["tls_cert"].as_str().unwrap().ends_with("server.pem"));

    let ca = tls.join("ca.pem").display().to_string();
    let agent = Agent::start_with(
        "agent",
        &dir.path().join("agent"),
        &collector.url(),
        &collector.token(),
        Some("tls-grpc-1"),
        &[("VEILLE_CA_CERT", ca.as_str())],
    );
    // `devices` (the CLI) goes through the running server's HTTPS API, pinning its cert.
    wait_until("the device over gRPC+TLS", || {
        device_known(&data, "tls-grpc-1")
    });
    wait_until("the spool drains", || agent.spooled() == 0);

    // The HTTP API over HTTPS, trusting the init-tls CA like a browser or curl would.
    let (status, body) = https_get(&collector.http, &tls.join("ca.pem"), "/healthz").unwrap();
    assert!(status.contains("200"), "{status}: {body}");
    // And by name: `localhost` is one of the certificate's names.
    let port = collector.http.rsplit(':').next().unwrap();
    let (status, _) = https_get(
        &format!("localhost:{port}"),
        &tls.join("ca.pem"),
        "/healthz",
    )
    .unwrap();
    assert!(status.contains("200"), "{status}");

    // The web login over HTTPS: the session cookie is `Secure`, so a browser never sends
    // it back over plaintext, and it opens the overview.
    let form = format!("token={}", collector.token());
    let (head, _) = https_request(
        &collector.http,
        &tls.join("ca.pem"),
        "POST",
        "/login",
        Some(&form),
    )
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no session cookie in {head}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[test]
fn wrong_ca_is_refused_clearly_and_the_reports_wait_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init_tls(&data, &["--san", "127.0.0.1"]);
    // Another site's CA: valid PEM, wrong authority.
    let other = init_tls(&dir.path().join("other"), &["--san", "127.0.0.1"]);
    let collector = start_tls_collector("collector", &data, &[]);
    let state = dir.path().join("agent");
    let wrong_ca = other.join("ca.pem").display().to_string();
    let mut agent = Agent::start_with(
        "agent-wrong-ca",
        &state,
        &collector.url(),
        &collector.token(),
        Some("tls-wrong-ca"),
        &[("VEILLE_CA_CERT", wrong_ca.as_str())],
    );
    let line = agent
        .proc
        .wait_for_line("TLS handshake with collector failed");
    assert!(
        line.contains("certificate signed by unknown authority; check ca_cert"),
        "{line}"
    );
    wait_until("reports waiting in the spool", || agent.spooled() >= 2);
    assert!(!device_known(&data, "tls-wrong-ca"));
    assert_eq!(agent.proc.stop(), Some(0));
    let waiting = veille_tests::spooled(&state);
    assert!(waiting >= 2);

    // Fixed: the same state directory, the right CA; the backlog arrives.
    let ca = data.join("tls/ca.pem").display().to_string();
    let agent = Agent::start_with(
        "agent-fixed",
        &state,
        &collector.url(),
        &collector.token(),
        Some("tls-wrong-ca"),
        &[("VEILLE_CA_CERT", ca.as_str())],
    );
    wait_until("the backlog delivered", || agent.spooled() == 0);
    drop(agent);
    let mut collector = collector;
    assert_eq!(collector.proc.stop(), Some(0));
    let stored = veille_tests::stored_reports(&data, "tls-wrong-ca");
    assert!(
        stored.len() >= waiting,
        "{} stored, {waiting} were waiting",
        stored.len()
    );
}

/// A refusal line in full: a warning, the port named, the README's words, and the
/// peer's address (`peer=` a loopback address with a port; exactly `peer` when known).
fn assert_refusal(line: &str, port: &str, peer: Option<std::net::SocketAddr>) {
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(&format!(
            "{port} port: plaintext connection refused: this port requires TLS"
        )),
        "{line}"
    );
    assert!(
        line.contains("the client must use https:// or mqtts://"),
        "{line}"
    );
    let logged: std::net::SocketAddr = veille_tests::field(line, "peer")
        .unwrap_or_else(|| panic!("no peer= in {line}"))
        .parse()
        .unwrap_or_else(|e| panic!("peer= is not an address ({e}): {line}"));
    assert!(logged.ip().is_loopback() && logged.port() != 0, "{line}");
    if let Some(peer) = peer {
        assert_eq!(logged, peer, "{line}");
    }
}

#[test]
fn plaintext_is_refused_on_a_tls_port() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init_tls(&data, &["--san", "127.0.0.1"]);
    let mut collector = start_tls_collector("collector", &data, &[]);
    let state = dir.path().join("agent");
    let mut agent = Agent::start(
        "agent-plain",
        &state,
        &format!("http://{}", collector.grpc),
        &collector.token(),
        Some("tls-plain"),
    );
    // README "TLS": the collector logs `gRPC port: plaintext connection refused: this
    // port requires TLS` with the peer's address, as a warning.
    let refusal = collector.proc.wait_for_line("plaintext connection refused");
    assert_refusal(&refusal, "gRPC", None);
    agent
        .proc
        .wait_for_line("cannot deliver reports; they stay in the spool");
    wait_until("reports waiting in the spool", || agent.spooled() >= 1);
    assert!(!device_known(&data, "tls-plain"));

    // Plain HTTP to the API port is refused the same way.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&collector.http).unwrap();
    let ours = s.local_addr().unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    let refusal = collector
        .proc
        .wait_for_line("HTTP port: plaintext connection refused");
    // Here the peer is known exactly: this test's own socket.
    assert_refusal(&refusal, "HTTP", Some(ours));
    assert_eq!(agent.proc.stop(), Some(0));
}

#[test]
fn client_certificate_required_refuses_an_agent_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tls = init_tls(&data, &["--san", "127.0.0.1", "--client", "pc-1"]);
    let ca = tls.join("ca.pem").display().to_string();
    let collector = start_tls_collector(
        "collector",
        &data,
        &[("VEILLE_TLS__CLIENT_CA".into(), ca.clone())],
    );
    let mut without = Agent::start_with(
        "agent-no-cert",
        &dir.path().join("a1"),
        &collector.url(),
        &collector.token(),
        Some("tls-no-cert"),
        &[("VEILLE_CA_CERT", ca.as_str())],
    );
    // With TLS 1.3 the refusal can first surface as a broken pipe; the diagnosis follows
    // (and is logged as a warning once).
    let line = without
        .proc
        .wait_for_line("the collector requires a client certificate");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("set client_cert and client_key"), "{line}");
    wait_until("reports waiting in the spool", || without.spooled() >= 1);
    assert!(!device_known(&data, "tls-no-cert"));

    let cert = tls.join("clients/pc-1.pem").display().to_string();
    let key = tls.join("clients/pc-1.key").display().to_string();
    let with = Agent::start_with(
        "agent-cert",
        &dir.path().join("a2"),
        &collector.url(),
        &collector.token(),
        Some("tls-with-cert"),
        &[
            ("VEILLE_CA_CERT", ca.as_str()),
            ("VEILLE_CLIENT_CERT", cert.as_str()),
            ("VEILLE_CLIENT_KEY", key.as_str()),
        ],
    );
    wait_until("the device with a client certificate", || {
        device_known(&data, "tls-with-cert")
    });
    wait_until("its spool drains", || with.spooled() == 0);
    assert!(!device_known(&data, "tls-no-cert"));
    assert_eq!(without.proc.stop(), Some(0));
}

#[test]
fn agent_delivers_over_mqtts_to_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tls = init_tls(&data, &["--san", "127.0.0.1"]);
    let collector = start_tls_collector("collector", &data, &[]);
    assert!(!collector.mqtt5.is_empty());
    let ca = tls.join("ca.pem").display().to_string();
    let agent = Agent::start_with(
        "agent-mqtts",
        &dir.path().join("agent"),
        &format!("mqtts://{}", collector.mqtt5),
        &collector.token(),
        Some("tls-mqtt-1"),
        &[
            ("VEILLE_TRANSPORT", "mqtt"),
            ("VEILLE_ORG", "default"),
            ("VEILLE_MQTT__ACK_TIMEOUT_S", "3"),
            ("VEILLE_CA_CERT", ca.as_str()),
        ],
    );
    wait_until("the device over MQTT+TLS", || {
        device_known(&data, "tls-mqtt-1")
    });
    wait_until("the spool drains", || agent.spooled() == 0);

    // Plaintext MQTT on the TLS listener is refused like on the other ports.
    let plain = Agent::start_mqtt(
        "agent-mqtt-plain",
        &dir.path().join("plain"),
        &format!("mqtt://{}", collector.mqtt5),
        "default",
        &collector.token(),
        "tls-mqtt-plain",
        5,
    );
    let mut collector = collector;
    let refusal = collector
        .proc
        .wait_for_line("MQTT 5 port: plaintext connection refused");
    assert_refusal(&refusal, "MQTT 5", None);
    wait_until("plaintext reports waiting", || plain.spooled() >= 1);
    assert!(!device_known(&data, "tls-mqtt-plain"));
    assert_eq!(collector.proc.stop(), Some(0));
}

/// An external broker over TLS: the collector subscribes to Mosquitto on `mqtts://`
/// trusting `[mqtt] ca_cert`, an agent publishes to the same listener. A wrong CA is
/// named in the collector's log and nothing is received until it is fixed.
#[test]
fn collector_and_agent_meet_on_a_mosquitto_tls_listener() {
    const ACME_TOKEN: &str = "acme-token-for-the-mqtts-test-0123";
    let dir = tempfile::tempdir().unwrap();
    let pki = init_tls(&dir.path().join("pki"), &["--san", "127.0.0.1"]);
    let other = init_tls(&dir.path().join("other"), &["--san", "127.0.0.1"]);
    let broker = Mosquitto::start_tls(&[("acme", ACME_TOKEN)], &pki);
    assert!(broker.url().starts_with("mqtts://"));
    let config_with_ca = |name: &str, ca: &Path| {
        let path = broker.collector_config(name, &[("acme", ACME_TOKEN)], "veille-mqtts");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("ca_cert = \"{}\"\n", ca.join("ca.pem").display()));
        std::fs::write(&path, text).unwrap();
        path
    };

    let data = dir.path().join("data");
    let wrong = config_with_ca("wrong-ca", &other);
    let mut collector = Collector::start_with(
        "collector-wrong-ca",
        &data,
        "127.0.0.1:0",
        Some(&wrong),
        &[],
    );
    let line = collector
        .proc
        .wait_for_line("TLS handshake with the MQTT broker failed");
    assert!(line.contains("check [mqtt] ca_cert"), "{line}");
    assert_eq!(collector.proc.stop(), Some(0));

    let right = config_with_ca("right-ca", &pki);
    let mut collector = Collector::start_with("collector", &data, "127.0.0.1:0", Some(&right), &[]);
    collector.proc.wait_for_line("connected to the MQTT broker");
    let ca = pki.join("ca.pem").display().to_string();
    let agent = Agent::start_with(
        "agent-via-mosquitto",
        &dir.path().join("agent"),
        &broker.url(),
        ACME_TOKEN,
        Some("tls-mosquitto-1"),
        &[
            ("VEILLE_TRANSPORT", "mqtt"),
            ("VEILLE_ORG", "acme"),
            ("VEILLE_MQTT__ACK_TIMEOUT_S", "3"),
            ("VEILLE_CA_CERT", ca.as_str()),
        ],
    );
    wait_until("the device through Mosquitto over TLS", || {
        device_known(&data, "tls-mosquitto-1")
    });
    // The collector's Ack came back through the broker: the spool empties.
    wait_until("the spool drains", || agent.spooled() == 0);
}

/// Renewing the server certificate needs no restart: `init-tls --san` re-issues it from
/// the same CA while the collector runs, and the next handshakes present the new one.
#[test]
fn a_renewed_server_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tls = init_tls(&data, &["--san", "localhost"]);
    let mut collector = start_tls_collector("collector", &data, &[]);
    let ca = tls.join("ca.pem");
    let by_ip = || https_get(&collector.http, &ca, "/healthz");
    let e = by_ip().unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");

    init_tls(&data, &["--san", "localhost", "--san", "127.0.0.1"]);
    wait_until(
        "the renewed certificate (naming 127.0.0.1) is served",
        || by_ip().is_ok_and(|(status, _)| status.contains("200")),
    );
    collector.proc.wait_for_line("server certificate reloaded");
}

/// README "TLS", an external broker: with Mosquitto's `require_certificate true`, the
/// collector needs `[mqtt] client_cert` + `client_key`. Without them it names what to
/// set and receives nothing; with them (issued by `init-tls --client`) it subscribes,
/// and an agent holding its own client certificate delivers through the broker.
#[test]
fn mosquitto_requiring_a_client_certificate_admits_the_collector_with_one() {
    const ACME_TOKEN: &str = "acme-token-for-the-client-cert-test";
    let dir = tempfile::tempdir().unwrap();
    let pki = init_tls(
        &dir.path().join("pki"),
        &[
            "--san",
            "127.0.0.1",
            "--client",
            "collector-1",
            "--client",
            "pc-1",
        ],
    );
    let broker = Mosquitto::start_with(
        &[("acme", ACME_TOKEN)],
        Some(&pki),
        "require_certificate true",
    );
    let config = |name: &str, client: Option<&str>| {
        let path = broker.collector_config(name, &[("acme", ACME_TOKEN)], "veille-mtls");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("ca_cert = \"{}\"\n", pki.join("ca.pem").display()));
        if let Some(c) = client {
            text.push_str(&format!(
                "client_cert = \"{}\"\nclient_key = \"{}\"\n",
                pki.join(format!("clients/{c}.pem")).display(),
                pki.join(format!("clients/{c}.key")).display()
            ));
        }
        std::fs::write(&path, text).unwrap();
        path
    };

    let data = dir.path().join("data");
    let mut collector = Collector::start_with(
        "collector-no-cert",
        &data,
        "127.0.0.1:0",
        Some(&config("no-cert", None)),
        &[],
    );
    let line = collector
        .proc
        .wait_for_line("TLS handshake with the MQTT broker failed");
    assert!(
        line.contains(
            "the broker requires a client certificate; set [mqtt] client_cert and client_key"
        ),
        "{line}"
    );
    assert!(
        !collector
            .proc
            .log()
            .iter()
            .any(|l| l.contains("connected to the MQTT broker")),
        "connected without a client certificate"
    );
    assert_eq!(collector.proc.stop(), Some(0));

    let mut collector = Collector::start_with(
        "collector",
        &data,
        "127.0.0.1:0",
        Some(&config("with-cert", Some("collector-1"))),
        &[],
    );
    collector.proc.wait_for_line("connected to the MQTT broker");
    let ca = pki.join("ca.pem").display().to_string();
    let cert = pki.join("clients/pc-1.pem").display().to_string();
    let key = pki.join("clients/pc-1.key").display().to_string();
    let agent = Agent::start_with(
        "agent-mtls",
        &dir.path().join("agent"),
        &broker.url(),
        ACME_TOKEN,
        Some("mtls-mosquitto-1"),
        &[
            ("VEILLE_TRANSPORT", "mqtt"),
            ("VEILLE_ORG", "acme"),
            ("VEILLE_MQTT__ACK_TIMEOUT_S", "3"),
            ("VEILLE_CA_CERT", ca.as_str()),
            ("VEILLE_CLIENT_CERT", cert.as_str()),
            ("VEILLE_CLIENT_KEY", key.as_str()),
        ],
    );
    wait_until(
        "the device through Mosquitto with client certificates",
        || device_known(&data, "mtls-mosquitto-1"),
    );
    wait_until("the spool drains", || agent.spooled() == 0);
    assert_eq!(collector.proc.stop(), Some(0));
}
