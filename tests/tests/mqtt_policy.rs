//! The policy channel over MQTT with real parts: a collector on a private Mosquitto
//! publishes each org's signed policy as the retained `veille/v1/{org}/policy`; an agent
//! on MQTT with `policy_public_key` configured takes it from there. A client holding
//! valid broker credentials (the collector's own broker password) but not the
//! collector's signing key cannot make the agent accept anything: garbage and a policy
//! signed by another key are both rejected (POLICY_REJECTED) and the collector's policy
//! stays in force.

use std::path::Path;
use std::process::Command;

use prost::Message;
use veille_proto::v1::{Policy, PolicyMode, SignedPolicy};
use veille_tests::mosquitto::{COLLECTOR_PASSWORD, COLLECTOR_USER, Mosquitto};
use veille_tests::{Agent, Collector, bin, wait_until};

const ACME_TOKEN: &str = "acme-token-0123456789abcdef";

fn collector_cmd(args: &[&str], data: &Path, config: &Path) -> String {
    let out = Command::new(bin("veille-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "veille-collector {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn agent_status(state: &Path) -> String {
    let out = Command::new(bin("veille-agent"))
        .args(["status", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mosquitto_pub -r` (retained, QoS 1, MQTT 3.1.1) of `payload` on `topic`.
fn publish_retained(port: u16, user: &str, password: &str, topic: &str, payload: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload");
    std::fs::write(&file, payload).unwrap();
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv311"])
        .args([
            "-q", "1", "-r", "-u", user, "-P", password, "-t", topic, "-f",
        ])
        .arg(&file)
        .output()
        .expect("mosquitto_pub (Debian package mosquitto-clients) must be installed");
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_retained_policy_reaches_an_mqtt_agent_and_broker_forgeries_are_rejected() {
    let broker = Mosquitto::start(&[("acme", ACME_TOKEN)]);
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = broker.collector_config("c", &[("acme", ACME_TOKEN)], "veille-collector-p");
    let mut collector =
        Collector::start_with("collector", data.path(), "127.0.0.1:0", Some(&cfg), &[]);
    collector.proc.wait_for_line("connected to the MQTT broker");

    let shown: serde_json::Value = serde_json::from_str(&collector_cmd(
        &["policy", "show", "--format", "json"],
        data.path(),
        &cfg,
    ))
    .unwrap();
    let public_key = shown["public_key"].as_str().unwrap().to_owned();

    let mut agent = Agent::start_with(
        "agent",
        state.path(),
        &broker.url(),
        ACME_TOKEN,
        Some("mqtt-policy-dev"),
        &[
            ("VEILLE_TRANSPORT", "mqtt"),
            ("VEILLE_ORG", "acme"),
            ("VEILLE_MQTT__ACK_TIMEOUT_S", "3"),
            ("VEILLE_POLICY_PUBLIC_KEY", &public_key),
        ],
    );

    // `policy set` on the running collector → retained on the broker → the agent.
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("policy.toml");
    std::fs::write(
        &file,
        "org = \"acme\"\nmode = \"dry-run\"\nidle_threshold_s = 60\nwarning_s = 60\n\
         postpones_allowed = 1\npostpone_s = 60\n\n[[windows]]\ndays = [\"all\"]\n\
         start = \"22:00\"\nend = \"06:00\"\ntime_zone = \"UTC\"\n",
    )
    .unwrap();
    let out = collector_cmd(
        &["policy", "set", "--file", file.to_str().unwrap()],
        data.path(),
        &cfg,
    );
    assert!(out.contains("version 1"), "{out}");
    collector.proc.wait_for_line("policy published (retained)");
    agent.proc.wait_for_line("new policy accepted");
    assert!(
        agent_status(state.path()).contains("version 1 mode dry-run"),
        "{}",
        agent_status(state.path())
    );
    let held =
        SignedPolicy::decode(&std::fs::read(state.path().join("policy.pb")).unwrap()[..]).unwrap();

    // Valid broker credentials, no signing key: garbage, then a newer policy signed by
    // another key, both retained on the org's policy topic.
    let topic = veille_proto::topics::policy("acme");
    publish_retained(
        broker.port,
        COLLECTOR_USER,
        COLLECTOR_PASSWORD,
        &topic,
        b"\xff\xff not a policy",
    );
    agent.proc.wait_for_line("code=\"malformed\"");
    let mut forged = Policy::decode(&held.policy[..]).unwrap();
    forged.version = 99;
    forged.set_mode(PolicyMode::Enforce);
    let forger = veille_proto::signing::generate_signing_key().unwrap();
    let forged = veille_proto::signing::sign(&forged, &forger);
    publish_retained(
        broker.port,
        COLLECTOR_USER,
        COLLECTOR_PASSWORD,
        &topic,
        &forged.encode_to_vec(),
    );
    agent.proc.wait_for_line("code=\"unknown_key\"");
    let status = agent_status(state.path());
    assert!(status.contains("version 1 mode dry-run"), "kept: {status}");
    let still =
        SignedPolicy::decode(&std::fs::read(state.path().join("policy.pb")).unwrap()[..]).unwrap();
    assert_eq!(still, held, "the collector's policy stays on disk");

    // The rejections are reported as events (the compliance report counts them).
    let (from, to) = (
        veille_tests::collector_day(-1),
        veille_tests::collector_day(1),
    );
    wait_until("2 POLICY_REJECTED in the compliance report", || {
        let out = collector_cmd(
            &[
                "report",
                "compliance",
                "--from",
                &from,
                "--to",
                &to,
                "--format",
                "json",
            ],
            data.path(),
            &cfg,
        );
        let c: serde_json::Value = serde_json::from_str(&out).unwrap();
        c[0]["rejected"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(agent.proc.stop(), Some(0));
    assert_eq!(collector.proc.stop(), Some(0));
}

/// The same channel on the collector's embedded broker (the default deployment): a
/// policy set before the agent connects reaches it as the retained message when it
/// subscribes, and a newer one set while it is connected reaches it live.
#[test]
fn the_embedded_broker_delivers_the_retained_policy_then_a_newer_one_live() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(data.path(), "127.0.0.1:0");
    assert!(!collector.mqtt5.is_empty(), "embedded broker expected");
    let cfg = files.path().join("empty.toml");
    std::fs::write(&cfg, "").unwrap();
    let shown: serde_json::Value = serde_json::from_str(&collector_cmd(
        &["policy", "show", "--format", "json"],
        data.path(),
        &cfg,
    ))
    .unwrap();
    let public_key = shown["public_key"].as_str().unwrap().to_owned();
    let set = |version_note: &str, threshold: u32| {
        let file = files.path().join(format!("{version_note}.toml"));
        std::fs::write(
            &file,
            format!(
                "org = \"default\"\nmode = \"dry-run\"\nidle_threshold_s = {threshold}\n\
                 warning_s = 60\n\n[[windows]]\ndays = [\"all\"]\nstart = \"22:00\"\n\
                 end = \"06:00\"\ntime_zone = \"UTC\"\n"
            ),
        )
        .unwrap();
        collector_cmd(
            &["policy", "set", "--file", file.to_str().unwrap()],
            data.path(),
            &cfg,
        )
    };
    assert!(set("v1", 600).contains("version 1"));

    let mut agent = Agent::start_with(
        "agent",
        state.path(),
        &format!("mqtt://{}", collector.mqtt5),
        &collector.token(),
        Some("embedded-policy-dev"),
        &[
            ("VEILLE_TRANSPORT", "mqtt"),
            ("VEILLE_ORG", "default"),
            ("VEILLE_MQTT__ACK_TIMEOUT_S", "3"),
            ("VEILLE_POLICY_PUBLIC_KEY", &public_key),
        ],
    );
    agent.proc.wait_for_line("new policy accepted");
    wait_until("version 1 held by the agent", || {
        agent_status(state.path()).contains("version 1 mode dry-run")
    });

    assert!(set("v2", 900).contains("version 2"));
    wait_until("version 2 held by the agent", || {
        agent_status(state.path()).contains("version 2 mode dry-run")
    });
    assert_eq!(agent.proc.stop(), Some(0));
    assert_eq!(collector.proc.stop(), Some(0));
}
