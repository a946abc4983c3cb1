//! Crash trials: SIGKILL the collector or one agent at random moments under load, many
//! times over, and count the reports lost or duplicated against what was acknowledged.
//! A bench binary, not a timed test: it runs for minutes.
//!
//! The load: real `veille-agent`s over gRPC and over MQTT (embedded broker, one on its
//! MQTT 3.1.1 port, one on its MQTT 5 port) reporting every second, plus gRPC load
//! generators sending batches as fast as acks come back (each remembers the highest seq
//! acknowledged). Each trial waits a random time (seeded), then SIGKILLs the collector
//! (and restarts it on the same ports) or one agent (and restarts it on the same state
//! directory). When the collector dies, every acknowledged seq of the generators must
//! already be in the store, read at once, before any resend could hide a loss. At the
//! end everything stops cleanly, spools drain, and every device's stored seqs must be
//! exactly 1..=last with no conflict (a second, different report under one seq).
//!
//! ```sh
//! cargo build -p veille-collector -p veille-agent -p veille-tests --bins
//! target/debug/veille-crash-trials --trials 100 --seed 1 2>crash.log
//! ```
//! Exits 1 when anything was lost or duplicated; a harness failure (a process that
//! does not start or stop cleanly) panics, exit 101.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use veille_collector::store::{STORE_DIR, Store};
use veille_tests::grpc::{batch, send};
use veille_tests::{Agent, Collector, free_port, stored_seqs, wait_until};

const ORG: &str = "default";
/// Reports per load-generator batch, and the pause between batches: about 200 reports/s
/// per generator, so that the store stays small enough to be read after every kill.
const LOAD_BATCH: u64 = 20;
const LOAD_PAUSE: Duration = Duration::from_millis(100);

/// The value after `--name` on the command line.
fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

type Acked = Arc<Mutex<BTreeMap<String, u64>>>;

/// Sends `device`'s reports 1, 2, … in batches until `stop`, then until the last batch
/// sent is acknowledged; records the highest acknowledged seq in `acked`.
async fn load_generator(
    url: String,
    token: String,
    device: String,
    acked: Acked,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut next = 1u64;
    let mut client = None;
    let mut pending = None;
    loop {
        if stop.load(Ordering::Relaxed) && next > 1 {
            return next - 1;
        }
        if client.is_none() {
            let endpoint = tonic::transport::Channel::from_shared(url.clone()).expect("url");
            match endpoint.connect().await {
                Ok(ch) => {
                    client = Some(veille_proto::v1::telemetry_client::TelemetryClient::new(ch))
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let c = client.as_mut().expect("connected");
        let last = next + LOAD_BATCH - 1;
        // A resend carries the very same reports, as an agent's spool does (a fresh
        // batch would hold new timestamps: a conflict, not a duplicate).
        let this = pending
            .get_or_insert_with(|| batch(&device, next..=last))
            .clone();
        match send(c, &token, this).await {
            Ok(ack) => {
                assert!(
                    ack.highest_durable_seq >= last,
                    "{device}: ack {} below {last}",
                    ack.highest_durable_seq
                );
                acked
                    .lock()
                    .expect("lock")
                    .insert(device.clone(), ack.highest_durable_seq);
                next = last + 1;
                pending = None;
                tokio::time::sleep(LOAD_PAUSE).await;
            }
            Err(_) => {
                client = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How one agent is started (again): its transport and where it keeps its state.
struct AgentSpec {
    id: String,
    state: PathBuf,
    /// `None`: gRPC; `Some(v)`: MQTT version `v` on the matching port.
    mqtt: Option<u8>,
}

struct Ports {
    grpc: String,
    mqtt4: String,
    mqtt5: String,
}

fn start_collector(data: &Path, ports: &Ports, n: usize) -> Collector {
    let v5 = ports.mqtt5.clone();
    Collector::start_on(
        &format!("collector-{n}"),
        data,
        &ports.grpc,
        &ports.mqtt4,
        None,
        &[("VEILLE_MQTT__LISTEN_V5", &v5)],
    )
}

fn start_agent(spec: &AgentSpec, ports: &Ports, token: &str, n: usize) -> Agent {
    let name = format!("{}-{n}", spec.id);
    match spec.mqtt {
        None => Agent::start(
            &name,
            &spec.state,
            &format!("http://{}", ports.grpc),
            token,
            Some(&spec.id),
        ),
        Some(v) => {
            let addr = if v == 5 { &ports.mqtt5 } else { &ports.mqtt4 };
            Agent::start_mqtt(
                &name,
                &spec.state,
                &format!("mqtt://{addr}"),
                ORG,
                token,
                &spec.id,
                v,
            )
        }
    }
}

/// Seqs in `first..=last` missing from `stored` (sorted, distinct).
fn missing(stored: &[u64], first: u64, last: u64) -> u64 {
    if last < first {
        return 0;
    }
    let have = stored
        .iter()
        .filter(|s| (first..=last).contains(*s))
        .count() as u64;
    last - first + 1 - have
}

fn main() {
    let trials: usize = arg("--trials").map_or(100, |s| s.parse().expect("--trials N"));
    let seed: u64 = arg("--seed").map_or(1, |s| s.parse().expect("--seed N"));
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let data = tempfile::tempdir().expect("tempdir");
    let ports = Ports {
        grpc: format!("127.0.0.1:{}", free_port()),
        mqtt4: format!("127.0.0.1:{}", free_port()),
        mqtt5: format!("127.0.0.1:{}", free_port()),
    };
    let mut collector_runs = 0;
    let mut collector = start_collector(data.path(), &ports, collector_runs);
    let token = collector.token();

    let states: Vec<_> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let specs: Vec<AgentSpec> = [None, None, Some(4), Some(5)]
        .into_iter()
        .zip(&states)
        .enumerate()
        .map(|(i, (mqtt, dir))| AgentSpec {
            id: match mqtt {
                None => format!("grpc-agent-{i}"),
                Some(v) => format!("mqtt{v}-agent-{i}"),
            },
            state: dir.path().to_owned(),
            mqtt,
        })
        .collect();
    let mut agent_runs = vec![0usize; specs.len()];
    let mut agents: Vec<Agent> = specs
        .iter()
        .map(|s| start_agent(s, &ports, &token, 0))
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load_devices: Vec<String> = (0..2).map(|i| format!("load-{i}")).collect();
    let generators: Vec<_> = load_devices
        .iter()
        .map(|d| {
            rt.spawn(load_generator(
                format!("http://{}", ports.grpc),
                token.clone(),
                d.clone(),
                acked.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let mut lost_at_kill = 0u64;
    let mut collector_kills = 0;
    let mut agent_kills = 0;
    for trial in 1..=trials {
        let delay = Duration::from_millis(rng.random_range(200..2_000));
        std::thread::sleep(delay);
        if rng.random_bool(0.5) {
            collector.proc.kill_hard();
            collector_kills += 1;
            let snapshot = acked.lock().expect("lock").clone();
            for (device, acked) in &snapshot {
                let lost = missing(&stored_seqs(data.path(), ORG, device), 1, *acked);
                if lost > 0 {
                    eprintln!("trial {trial}: {device} acked up to {acked}, {lost} not stored");
                }
                lost_at_kill += lost;
            }
            collector_runs += 1;
            collector = start_collector(data.path(), &ports, collector_runs);
            println!("trial {trial}: collector killed after {delay:?}, restarted");
        } else {
            let i = rng.random_range(0..specs.len());
            agents[i].proc.kill_hard();
            agent_kills += 1;
            agent_runs[i] += 1;
            agents[i] = start_agent(&specs[i], &ports, &token, agent_runs[i]);
            println!(
                "trial {trial}: {} killed after {delay:?}, restarted",
                specs[i].id
            );
        }
    }

    // Drain: generators finish their batch in flight, agents stop cleanly (their last
    // report is sent) and their spools empty.
    stop.store(true, Ordering::Relaxed);
    // Device -> (first seq if known, last seq made).
    let mut last: BTreeMap<String, (Option<u64>, u64)> = BTreeMap::new();
    for (d, g) in load_devices.iter().zip(generators) {
        last.insert(d.clone(), (Some(1), rt.block_on(g).expect("generator")));
    }
    for (spec, agent) in specs.iter().zip(&mut agents) {
        assert_eq!(agent.proc.stop(), Some(0), "{} stops cleanly", spec.id);
        wait_until("the agent's spool to drain", || agent.spooled() == 0);
        let seq = agent.state()["last_seq"].as_u64().expect("last_seq");
        last.insert(spec.id.clone(), (None, seq));
    }
    assert_eq!(collector.proc.stop(), Some(0), "collector stops cleanly");

    let store = Store::open(&data.path().join(STORE_DIR)).expect("store");
    let mut lost = 0u64;
    let mut duplicated = 0u64;
    let mut total = 0u64;
    for (device, (first, last_seq)) in &last {
        let seqs: Vec<u64> = store
            .reports(ORG, device, 0..=u64::MAX)
            .expect("reports")
            .iter()
            .map(|r| r.seq)
            .collect();
        // An agent's seqs start where its clock put them (its first report is the
        // smallest stored); a generator's at 1.
        let first = first.unwrap_or_else(|| seqs.first().copied().unwrap_or(1));
        let device_lost = missing(&seqs, first, *last_seq);
        let mut distinct = seqs.clone();
        distinct.dedup();
        // A seq above the last one the sender made would be a report it never sent.
        let beyond = seqs.iter().filter(|s| **s > *last_seq).count() as u64;
        let conflicts = store.conflicts(ORG, device).expect("conflicts").len() as u64;
        let device_dup = (seqs.len() - distinct.len()) as u64 + conflicts + beyond;
        println!(
            "{device:>16}: last seq {last_seq:>6}, stored {:>6}, lost {device_lost}, duplicated {device_dup}",
            seqs.len()
        );
        lost += device_lost;
        duplicated += device_dup;
        total += last_seq + 1 - first;
    }
    println!(
        "crash trials: {trials} (seed {seed}): {collector_kills} collector SIGKILLs, \
         {agent_kills} agent SIGKILLs; {total} reports acknowledged, lost {lost} \
         (acked but not stored at a collector kill: {lost_at_kill}), duplicated \
         {duplicated}; {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if lost + lost_at_kill + duplicated > 0 {
        std::process::exit(1);
    }
}
