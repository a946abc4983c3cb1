//! The MQTT transport with real parts: the real binaries, the embedded rumqttd broker,
//! and a private Mosquitto (`tests/src/mosquitto.rs`). MQTT must be as lossless as gRPC:
//! a report leaves the agent's spool only when the collector's Ack says it is durable.

use std::collections::BTreeSet;

use prost::Message;
use veille_tests::mosquitto::{self, Mosquitto};
use veille_tests::{Agent, Collector, devices_json, stored_seqs, wait_until};

const ACME_TOKEN: &str = "acme-token-0123456789abcdef";
const GLOBEX_TOKEN: &str = "globex-token-0123456789abcdef";

fn reports_of(data: &std::path::Path, device: &str) -> u64 {
    devices_json(data)
        .iter()
        .find(|d| d["device_id"] == device)
        .and_then(|d| d["reports"].as_u64())
        .unwrap_or(0)
}

/// Seqs are exactly `first..=last` with no gap.
fn assert_contiguous(seqs: &[u64], last: u64, what: &str) {
    assert!(!seqs.is_empty(), "{what}: nothing stored");
    let expected: Vec<u64> = (seqs[0]..=last).collect();
    assert_eq!(
        seqs, expected,
        "{what}: stored seqs are not exactly first..={last}"
    );
}

#[test]
fn agents_reach_the_collector_through_the_embedded_broker() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    assert!(!collector.mqtt5.is_empty(), "mqtt5= in the listening line");
    let listen: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("listen.json")).unwrap()).unwrap();
    assert_eq!(listen["mqtt"], collector.mqtt.as_str());
    let token = collector.token();
    let (s5, s4) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url5 = format!("mqtt://{}", collector.mqtt5);
    let url4 = format!("mqtt://{}", collector.mqtt);
    let mut a5 = Agent::start_mqtt("agent-v5", s5.path(), &url5, "default", &token, "dev-v5", 5);
    let mut a4 = Agent::start_mqtt("agent-v4", s4.path(), &url4, "default", &token, "dev-v4", 4);
    wait_until("3 reports of each agent", || {
        reports_of(data.path(), "dev-v5") >= 3 && reports_of(data.path(), "dev-v4") >= 3
    });
    assert_eq!(a5.proc.stop(), Some(0));
    assert_eq!(a4.proc.stop(), Some(0));
    for a in [&a5, &a4] {
        assert_eq!(a.spooled(), 0, "the last report was acknowledged");
    }
    let last5 = a5.state()["last_seq"].as_u64().unwrap();
    let last4 = a4.state()["last_seq"].as_u64().unwrap();
    drop(collector);
    assert_contiguous(
        &stored_seqs(data.path(), "default", "dev-v5"),
        last5,
        "dev-v5",
    );
    assert_contiguous(
        &stored_seqs(data.path(), "default", "dev-v4"),
        last4,
        "dev-v4",
    );
}

/// Issue 21: an agent pointed at the embedded broker's standard port (3.1.1) never
/// connected (it spoke MQTT 5 only) and needed `VEILLE_ORG` besides its token. Given
/// only a URL and a token, it must reach the collector on either port: MQTT 5 first,
/// 3.1.1 when the broker closes the connection at an MQTT 5 CONNECT.
#[test]
fn an_agent_with_only_a_url_and_a_token_connects_on_either_port() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let token = collector.token();
    let (s5, s4) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url5 = format!("mqtt://{}", collector.mqtt5);
    let url4 = format!("mqtt://{}", collector.mqtt);
    // No VEILLE_TRANSPORT, VEILLE_ORG nor version: the URL and the token only (the
    // device id keeps the two agents of this machine apart).
    let mut a5 = Agent::start("agent-on-v5", s5.path(), &url5, &token, Some("only-url-v5"));
    let mut a4 = Agent::start("agent-on-v4", s4.path(), &url4, &token, Some("only-url-v4"));
    a4.proc.wait_for_line(
        "the MQTT broker closed the connection at CONNECT (MQTT 5); trying MQTT 3.1.1",
    );
    a4.proc
        .wait_for_line("connected to the MQTT broker (3.1.1)");
    a5.proc
        .wait_for_line("connected to the MQTT broker (MQTT 5)");
    wait_until("2 reports of each agent", || {
        reports_of(data.path(), "only-url-v5") >= 2 && reports_of(data.path(), "only-url-v4") >= 2
    });
    assert!(
        !a5.proc
            .log()
            .iter()
            .any(|l| l.contains("trying MQTT 3.1.1")),
        "the MQTT 5 port answers MQTT 5"
    );
    assert_eq!(a5.proc.stop(), Some(0));
    assert_eq!(a4.proc.stop(), Some(0));
    assert_eq!(
        a4.spooled(),
        0,
        "the last report was acknowledged over 3.1.1"
    );
    // Other MQTT clients: the token alone (username empty, or the token again) is
    // enough for the embedded broker, which finds the org from it.
    let port: u16 = collector.mqtt.rsplit(':').next().unwrap().parse().unwrap();
    for (user, device) in [("", "empty-user"), (token.as_str(), "token-as-user")] {
        let topic = veille_proto::topics::reports("default", device);
        assert!(
            mosquitto::publish(port, user, &token, &topic, &valid_batch(device, 1)),
            "username {user:?} refused"
        );
    }
    wait_until("the token-only clients' reports", || {
        reports_of(data.path(), "empty-user") == 1 && reports_of(data.path(), "token-as-user") == 1
    });
}

/// Every MQTT connection failure names its cause: refused credentials (a CONNACK from
/// Mosquitto; a connection closed at CONNECT in both versions from the embedded
/// broker) and an unreachable broker. (TLS failures: tests/tests/tls.rs.)
#[test]
fn mqtt_connection_failures_name_their_cause() {
    let broker = Mosquitto::start(&[("acme", ACME_TOKEN)]);
    let s = tempfile::tempdir().unwrap();
    let mut wrong = Agent::start_mqtt(
        "agent-wrong-token",
        s.path(),
        &broker.url(),
        "acme",
        GLOBEX_TOKEN,
        "wrong-token",
        5,
    );
    wrong
        .proc
        .wait_for_line("the MQTT broker refused our credentials: check token");
    drop(wrong);

    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let s = tempfile::tempdir().unwrap();
    let url = format!("mqtt://{}", collector.mqtt);
    let mut embedded = Agent::start(
        "agent-embedded-wrong",
        s.path(),
        &url,
        "not-the-token",
        Some("w"),
    );
    embedded.proc.wait_for_line(
        "closed the connection at CONNECT in MQTT 5 and in 3.1.1: it refused our credentials",
    );
    drop(embedded);

    let s = tempfile::tempdir().unwrap();
    let nobody = format!("mqtt://127.0.0.1:{}", veille_tests::free_port());
    let mut lost = Agent::start("agent-unreachable", s.path(), &nobody, "t", Some("u"));
    lost.proc
        .wait_for_line("MQTT broker unreachable (no TCP connection");
    assert!(
        !lost
            .proc
            .log()
            .iter()
            .any(|l| l.contains("trying MQTT 3.1.1")),
        "an unreachable broker is not a protocol version problem"
    );
}

#[test]
fn two_collectors_share_mosquitto_and_one_takes_over() {
    let broker = Mosquitto::start(&[("acme", ACME_TOKEN)]);
    let orgs = [("acme", ACME_TOKEN)];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let c1cfg = broker.collector_config("c1", &orgs, "veille-collector-1");
    let c2cfg = broker.collector_config("c2", &orgs, "veille-collector-2");
    let mut c1 = Collector::start_with("collector-1", d1.path(), "127.0.0.1:0", Some(&c1cfg), &[]);
    let mut c2 = Collector::start_with("collector-2", d2.path(), "127.0.0.1:0", Some(&c2cfg), &[]);
    c1.proc.wait_for_line("connected to the MQTT broker");
    c2.proc.wait_for_line("connected to the MQTT broker");
    let devices = ["share-a", "share-b", "share-c"];
    let states: Vec<_> = devices
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut agents: Vec<Agent> = devices
        .iter()
        .zip(&states)
        .map(|(d, s)| Agent::start_mqtt(d, s.path(), &broker.url(), "acme", ACME_TOKEN, d, 5))
        .collect();
    let total = |dir: &std::path::Path| devices.iter().map(|d| reports_of(dir, d)).sum::<u64>();
    wait_until("both collectors to store reports", || {
        total(d1.path()) >= 2 && total(d2.path()) >= 2
    });
    assert_eq!(c1.proc.stop(), Some(0), "collector 1 stops cleanly");
    let before = total(d2.path());
    wait_until("collector 2 to take the whole load", || {
        total(d2.path()) >= before + 3 * devices.len() as u64
    });
    for a in &mut agents {
        assert_eq!(a.proc.stop(), Some(0));
        assert_eq!(a.spooled(), 0, "every report acknowledged");
    }
    assert_eq!(c2.proc.stop(), Some(0));
    for (d, a) in devices.iter().zip(&agents) {
        let last = a.state()["last_seq"].as_u64().unwrap();
        let s1 = stored_seqs(d1.path(), "acme", d);
        let s2 = stored_seqs(d2.path(), "acme", d);
        let both: BTreeSet<u64> = s1.iter().copied().collect();
        let dup: Vec<u64> = s2.iter().copied().filter(|s| both.contains(s)).collect();
        assert!(
            dup.is_empty(),
            "{d}: seqs stored by both collectors: {dup:?}"
        );
        let mut all: Vec<u64> = s1.into_iter().chain(s2).collect();
        all.sort_unstable();
        assert_contiguous(&all, last, d);
    }
}

#[test]
fn reports_wait_in_the_spool_while_the_collector_is_down() {
    let broker = Mosquitto::start(&[("acme", ACME_TOKEN)]);
    let data = tempfile::tempdir().unwrap();
    let cfg = broker.collector_config("c", &[("acme", ACME_TOKEN)], "veille-collector-outage");
    let state = tempfile::tempdir().unwrap();
    let mut agent = Agent::start_mqtt(
        "agent",
        state.path(),
        &broker.url(),
        "acme",
        ACME_TOKEN,
        "outage-mqtt",
        4,
    );
    wait_until(
        "5 reports spooled: the broker takes them, nobody acks",
        || agent.spooled() >= 5,
    );
    let mut collector =
        Collector::start_with("collector", data.path(), "127.0.0.1:0", Some(&cfg), &[]);
    wait_until("the spool to drain once the collector is back", || {
        agent.spooled() == 0
    });
    assert_eq!(agent.proc.stop(), Some(0));
    assert_eq!(agent.spooled(), 0);
    let last = agent.state()["last_seq"].as_u64().unwrap();
    assert_eq!(collector.proc.stop(), Some(0));
    let seqs = stored_seqs(data.path(), "acme", "outage-mqtt");
    assert!(seqs.len() >= 6, "{} reports", seqs.len());
    assert_contiguous(&seqs, last, "outage-mqtt");
}

fn valid_batch(device: &str, seq: u64) -> Vec<u8> {
    veille_tests::grpc::batch(device, seq..=seq).encode_to_vec()
}

/// Regression guard for the bad inputs: garbage, another device's topic, another
/// (unknown) org and wrong credentials are each refused or dropped and counted; good
/// reports keep flowing.
#[test]
fn bad_mqtt_input_is_dropped_counted_and_ingest_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(data.path(), "127.0.0.1:0");
    let token = collector.token();
    let port: u16 = collector.mqtt.rsplit(':').next().unwrap().parse().unwrap();
    let topic = |org: &str, dev: &str| veille_proto::topics::reports(org, dev);

    assert!(mosquitto::publish(
        port,
        "default",
        &token,
        &topic("default", "junk-dev"),
        b"\xff\x01garbage"
    ));
    let line = collector.proc.wait_for_line("bad_protobuf");
    assert!(line.contains("total=1"), "{line}");

    let victim = valid_batch("victim-dev", 1);
    assert!(mosquitto::publish(
        port,
        "default",
        &token,
        &topic("default", "attacker-dev"),
        &victim
    ));
    let line = collector.proc.wait_for_line("device_mismatch");
    assert!(line.contains("total=1"), "{line}");

    // A topic of another org than the token's (here one that does not exist) is
    // refused by the embedded broker's org guard before the subscriber sees it; the
    // subscriber's own `unknown_org` drop stays for external brokers.
    assert!(!mosquitto::publish(
        port,
        "default",
        &token,
        &topic("nosuchorg", "x-dev"),
        &valid_batch("x-dev", 1)
    ));
    collector.proc.wait_for_line("cross_org");

    assert!(
        !mosquitto::publish(
            port,
            "default",
            "wrong-token",
            &topic("default", "y-dev"),
            &valid_batch("y-dev", 1)
        ),
        "wrong credentials must be refused"
    );
    let line = collector.proc.wait_for_line("auth_refused");
    assert!(line.contains("total=1"), "{line}");

    // The collector goes on: a real agent's reports and a good mosquitto_pub land.
    let state = tempfile::tempdir().unwrap();
    let url = format!("mqtt://{}", collector.mqtt);
    let mut agent = Agent::start_mqtt(
        "agent",
        state.path(),
        &url,
        "default",
        &token,
        "good-dev",
        4,
    );
    assert!(mosquitto::publish(
        port,
        "default",
        &token,
        &topic("default", "pub-dev"),
        &valid_batch("pub-dev", 1)
    ));
    wait_until("good reports stored", || {
        reports_of(data.path(), "good-dev") >= 2 && reports_of(data.path(), "pub-dev") == 1
    });
    assert_eq!(agent.proc.stop(), Some(0));
    let ids: Vec<String> = devices_json(data.path())
        .iter()
        .map(|d| d["device_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    for never in ["junk-dev", "victim-dev", "attacker-dev", "x-dev", "y-dev"] {
        assert!(
            !ids.iter().any(|i| i == never),
            "{never} must not be stored: {ids:?}"
        );
    }
}

/// With Mosquitto and `deploy/mosquitto/acl`, an org's credentials cannot publish under
/// another org's topics (rumqttd cannot enforce this; README, "MQTT").
#[test]
fn mosquitto_acl_keeps_an_org_out_of_another_orgs_topics() {
    // Debug logging: Mosquitto then logs each PUBLISH its ACL denies.
    let mut broker = Mosquitto::start_with(
        &[("acme", ACME_TOKEN), ("globex", GLOBEX_TOKEN)],
        None,
        "log_type debug",
    );
    let data = tempfile::tempdir().unwrap();
    let orgs = [("acme", ACME_TOKEN), ("globex", GLOBEX_TOKEN)];
    let cfg = broker.collector_config("c", &orgs, "veille-collector-acl");
    let mut collector =
        Collector::start_with("collector", data.path(), "127.0.0.1:0", Some(&cfg), &[]);
    collector.proc.wait_for_line("connected to the MQTT broker");
    let topic = veille_proto::topics::reports("globex", "intruder");
    // Mosquitto accepts the PUBLISH (MQTT 3.1.1 has no way to say no) and drops it:
    // its log says so, before the PUBACK that ends mosquitto_pub.
    mosquitto::publish(
        broker.port,
        "acme",
        ACME_TOKEN,
        &topic,
        &valid_batch("intruder", 1),
    );
    let denied = broker.proc.wait_for_line("Denied PUBLISH from");
    assert!(denied.contains(&format!("'{topic}'")), "{denied}");
    let own = veille_proto::topics::reports("globex", "insider");
    assert!(mosquitto::publish(
        broker.port,
        "globex",
        GLOBEX_TOKEN,
        &own,
        &valid_batch("insider", 1)
    ));
    wait_until("globex's own report stored", || {
        reports_of(data.path(), "insider") == 1
    });
    // The broker denied the intruder's PUBLISH (above), so it never reached the
    // collector: nothing to wait for.
    assert!(
        !broker
            .proc
            .log()
            .iter()
            .any(|l| l.contains("Denied PUBLISH") && l.contains(&format!("'{own}'"))),
        "globex's own topic was denied"
    );
    assert_eq!(
        reports_of(data.path(), "intruder"),
        0,
        "the ACL let acme publish as globex"
    );
    assert_eq!(collector.proc.stop(), Some(0));
}
