//! PostgreSQL down when the collector starts (issue 17): the collector says which
//! database and why in one log line, keeps running, answers gRPC ingest with
//! UNAVAILABLE and leaves MQTT reports unacknowledged (agents keep their spool), and
//! connects by itself once the database comes up; then the refused batch and the
//! spooled reports go in, each once.
//!
//! The cluster is a real one from `veille_collector::store::testpg`, stopped before the
//! collector starts.

use tonic::Code;
use veille_collector::store::testpg::Cluster;
use veille_collector::store::{Location, Store};
use veille_tests::grpc::{self, batch, send};
use veille_tests::{Agent, Collector, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_start_is_waited_for_and_nothing_is_lost() {
    // The cluster's helpers use the blocking PostgreSQL client, which must not run
    // on a runtime worker as is.
    use tokio::task::block_in_place as blocking;
    let (cluster, url) = blocking(|| {
        let cluster =
            Cluster::start().expect("a test PostgreSQL cluster (apt-get install postgresql)");
        let url = cluster.create_database().unwrap();
        cluster.stop();
        (cluster, url)
    });

    let data = tempfile::tempdir().unwrap();
    let mut collector = Collector::start_with(
        "collector",
        data.path(),
        "127.0.0.1:0",
        None,
        &[
            ("VEILLE_STORE__BACKEND", "postgres"),
            ("VEILLE_STORE__URL", url.as_str()),
        ],
    );
    // One line names the database and the cause.
    let line = collector
        .proc
        .wait_for_line("PostgreSQL unreachable at start");
    assert!(
        line.contains(&format!("127.0.0.1:{}", cluster.port())),
        "{line}"
    );
    assert!(line.contains("refused"), "the cause: {line}");

    let token = collector.token();
    let mut client = grpc::client(&collector.url()).await;
    let refused = send(&mut client, &token, batch("pc-1", 1..=20))
        .await
        .expect_err("no database: no Ack");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("PostgreSQL"),
        "the refusal names the cause: {refused:?}"
    );

    // An agent over MQTT meanwhile: its reports wait in its spool, unacknowledged.
    let spool = tempfile::tempdir().unwrap();
    let mqtt = format!("mqtt://{}", collector.mqtt5);
    let mut agent = Agent::start_mqtt(
        "agent",
        spool.path(),
        &mqtt,
        "default",
        &token,
        "pc-mqtt",
        5,
    );
    wait_until("the MQTT agent to spool reports", || agent.spooled() >= 2);

    blocking(|| cluster.restart()).unwrap();
    collector
        .proc
        .wait_for_line("PostgreSQL reached: the store is ready");
    // The agent's retry of the refused batch now goes in.
    let ack = send(&mut client, &token, batch("pc-1", 1..=20))
        .await
        .expect("the database is up: the batch is taken");
    assert_eq!(ack.highest_durable_seq, 20);
    wait_until("the MQTT agent's spool to drain", || agent.spooled() == 0);
    assert_eq!(agent.proc.stop(), Some(0));
    assert_eq!(agent.spooled(), 0, "the last report was acknowledged");
    let last = agent.state()["last_seq"].as_u64().unwrap();
    assert_eq!(collector.proc.stop(), Some(0), "a clean stop");

    // The blocking client again (and its drop), off the runtime's worker.
    let (pc1, mqtt_seqs) = blocking(|| {
        let store = Store::open_location(&Location::Postgres { url }).unwrap();
        let seqs = |device: &str| -> Vec<u64> {
            store
                .reports("default", device, 0..=u64::MAX)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect()
        };
        (seqs("pc-1"), seqs("pc-mqtt"))
    });
    assert_eq!(pc1, (1..=20).collect::<Vec<_>>());
    // Agents number from a starting seq of their own: contiguous from the first
    // stored to the agent's last, each once (reports spooled during the outage
    // included: nothing was acknowledged before the database came up).
    assert!(mqtt_seqs.len() >= 2, "{mqtt_seqs:?}");
    assert_eq!(
        mqtt_seqs,
        (mqtt_seqs[0]..=last).collect::<Vec<_>>(),
        "every spooled report once, none lost"
    );
    drop(cluster);
}
