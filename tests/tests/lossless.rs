//! The walking skeleton's promise: an agent's reports reach the collector over gRPC and
//! none is lost or stored twice, whichever side crashes.

use std::collections::BTreeMap;
use std::time::Duration;

use veille_proto::v1::{EventKind, Report};
use veille_tests::grpc::{batch, send};
use veille_tests::{Agent, Collector, devices_json, stored_reports, wait_until};

fn has_event(r: &Report, kind: EventKind) -> bool {
    r.events.iter().any(|e| e.kind == kind as i32)
}

/// Seqs of `reports` are exactly `first..=last` with no gap and no duplicate.
fn assert_contiguous(reports: &[Report], last: u64) {
    let seqs: Vec<u64> = reports.iter().map(|r| r.seq).collect();
    assert!(!seqs.is_empty());
    let first = seqs[0];
    let expected: Vec<u64> = (first..=last).collect();
    assert_eq!(
        seqs, expected,
        "stored seqs are not exactly {first}..={last}"
    );
}

#[test]
fn the_device_appears_with_this_boot_id() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let mut agent = Agent::start(
        "agent",
        state.path(),
        &collector.url(),
        &collector.token(),
        None,
    );
    let device_id = veille_tests::this_device_id();
    wait_until("the device to appear", || {
        devices_json(data.path())
            .iter()
            .any(|d| d["device_id"] == device_id.as_str() && d["reports"].as_u64() >= Some(2))
    });
    let devices = devices_json(data.path());
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["last_boot_id"], veille_tests::this_boot_id());
    assert_eq!(agent.proc.stop(), Some(0));
}

#[test]
fn a_collector_outage_is_drained_from_the_spool_in_order() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(data.path(), "127.0.0.1:0");
    let (url, token, grpc_addr) = (collector.url(), collector.token(), collector.grpc.clone());
    assert_eq!(collector.proc.stop(), Some(0), "clean stop exits 0");

    let mut agent = Agent::start("agent", state.path(), &url, &token, Some("outage-dev"));
    wait_until("5 reports spooled while the collector is down", || {
        agent.spooled() >= 5
    });
    let _collector = Collector::start(data.path(), &grpc_addr);
    wait_until("the spool to drain", || agent.spooled() == 0);
    assert_eq!(agent.proc.stop(), Some(0));
    let last_seq = agent.state()["last_seq"].as_u64().unwrap();
    wait_until("the final report to be acknowledged", || {
        agent.spooled() == 0
    });
    drop(_collector);
    let reports = stored_reports(data.path(), "outage-dev");
    assert!(reports.len() >= 6, "{} reports", reports.len());
    assert_contiguous(&reports, last_seq);
    assert!(has_event(reports.last().unwrap(), EventKind::AgentStop));
}

#[test]
fn an_agent_killed_and_restarted_continues_its_seq_and_invents_nothing() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let (url, token) = (collector.url(), collector.token());
    let mut agent = Agent::start("agent-1", state.path(), &url, &token, Some("kill-dev"));
    wait_until("3 reports acknowledged", || {
        agent.state()["last_acked_seq"].as_u64().unwrap_or(0) > 0 && agent.spooled() == 0 && {
            devices_json(data.path())
                .first()
                .is_some_and(|d| d["reports"].as_u64() >= Some(3))
        }
    });
    agent.proc.kill_hard();
    let killed_at = veille_tests::now_unix_ms();
    std::thread::sleep(Duration::from_secs(3));
    let mut agent = Agent::start("agent-2", state.path(), &url, &token, Some("kill-dev"));
    let restarted_at = veille_tests::now_unix_ms();
    wait_until("3 more reports", || {
        devices_json(data.path())
            .first()
            .is_some_and(|d| d["reports"].as_u64() >= Some(7))
    });
    assert_eq!(agent.proc.stop(), Some(0));
    let last_seq = agent.state()["last_seq"].as_u64().unwrap();
    wait_until("the spool to drain", || agent.spooled() == 0);
    drop(collector);

    let reports = stored_reports(data.path(), "kill-dev");
    assert_contiguous(&reports, last_seq);
    assert!(
        has_event(&reports[0], EventKind::Boot) || has_event(&reports[0], EventKind::AgentStart)
    );
    let mut gaps = Vec::new();
    for pair in reports.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            b.start_unix_ms >= a.end_unix_ms,
            "overlap between {} and {}",
            a.seq,
            b.seq
        );
        if b.start_unix_ms > a.end_unix_ms {
            gaps.push((a.clone(), b.clone()));
        }
    }
    assert_eq!(
        gaps.len(),
        1,
        "only the agent's downtime is a hole: {gaps:?}"
    );
    let (before, after) = &gaps[0];
    assert!(
        before.end_unix_ms <= killed_at,
        "no report covers the downtime"
    );
    assert!(after.start_unix_ms >= killed_at + 2_000);
    assert!(after.start_unix_ms <= restarted_at);
    assert!(
        !has_event(before, EventKind::AgentStop),
        "a SIGKILL leaves no stop event"
    );
    assert!(has_event(after, EventKind::AgentStart));
    assert!(
        !has_event(after, EventKind::Boot),
        "same boot: no BOOT event"
    );
    assert!(has_event(reports.last().unwrap(), EventKind::AgentStop));
}

/// A load generator's view: the highest seq acknowledged per device.
async fn load_generator(url: String, token: String, device: String, stop_after: u64) -> u64 {
    let mut acked = 0u64;
    let mut next = 1u64;
    let mut client: Option<_> = None;
    while next <= stop_after {
        if client.is_none() {
            match tonic::transport::Channel::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
            {
                Ok(ch) => {
                    client = Some(veille_proto::v1::telemetry_client::TelemetryClient::new(ch))
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let c = client.as_mut().unwrap();
        let last = (next + 49).min(stop_after);
        match send(c, &token, batch(&device, next..=last)).await {
            Ok(ack) => {
                assert!(ack.highest_durable_seq >= last, "ack below what was sent");
                acked = ack.highest_durable_seq;
                ACKED.lock().unwrap().insert(device.clone(), acked);
                next = last + 1;
            }
            Err(_) => {
                client = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    acked
}

static ACKED: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_killed_under_load_keeps_every_acknowledged_report() {
    let data = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(data.path(), "127.0.0.1:0");
    let (url, token, addr) = (collector.url(), collector.token(), collector.grpc.clone());
    let states: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut agents: Vec<Agent> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = format!("agent-dev-{i}");
            Agent::start(&id, s.path(), &url, &token, Some(&id))
        })
        .collect();
    let generators: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(load_generator(
                url.clone(),
                token.clone(),
                format!("load-dev-{i}"),
                20_000,
            ))
        })
        .collect();
    // Let load build up, then pull the plug.
    let start = std::time::Instant::now();
    while ACKED.lock().unwrap().values().sum::<u64>() < 2_000 {
        assert!(
            start.elapsed() < veille_tests::DEADLINE,
            "load never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    collector.proc.kill_hard();
    let acked_at_kill = ACKED.lock().unwrap().clone();

    // Every acknowledged report is on disk, before anything is resent.
    for (device, acked) in &acked_at_kill {
        let stored = stored_reports(data.path(), device);
        let seqs: Vec<u64> = stored.iter().map(|r| r.seq).collect();
        assert!(
            seqs.len() as u64 >= *acked
                && seqs[..*acked as usize] == (1..=*acked).collect::<Vec<_>>()[..],
            "{device}: acked up to {acked}, stored {} reports",
            seqs.len()
        );
    }

    let collector = Collector::start(data.path(), &addr);
    for g in generators {
        assert_eq!(g.await.unwrap(), 20_000);
    }
    for agent in &mut agents {
        assert_eq!(agent.proc.stop(), Some(0));
    }
    for agent in &agents {
        wait_until("agents' spools to drain", || agent.spooled() == 0);
    }
    drop(collector);
    for i in 0..4 {
        let reports = stored_reports(data.path(), &format!("load-dev-{i}"));
        assert_contiguous(&reports, 20_000);
    }
    for (i, agent) in agents.iter().enumerate() {
        let reports = stored_reports(data.path(), &format!("agent-dev-{i}"));
        assert_contiguous(&reports, agent.state()["last_seq"].as_u64().unwrap());
    }
}
