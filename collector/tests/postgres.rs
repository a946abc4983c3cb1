//! The real `veille-collector` binary on PostgreSQL (`VEILLE_STORE__BACKEND=postgres`,
//! `VEILLE_STORE__URL`), against a cluster this test starts itself
//! (`veille_collector::store::testpg`), driven by the real tonic client over loopback.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Request;
use tonic::transport::Channel;
use veille_collector::store::{Location, Store, testpg};
use veille_proto::v1::telemetry_client::TelemetryClient;
use veille_proto::v1::{Ack, Report, ReportBatch};

const ORG: &str = "acme";
const TOKEN: &str = "acme-token-0123456789";
/// Bounds every wait: a failing test ends, a loaded 2-core machine still passes.
const DEADLINE: Duration = Duration::from_secs(90);

const EXE: &str = env!("CARGO_BIN_EXE_veille-collector");

/// Both collectors of a test serve the same org with the same token, as an operator
/// configures a fleet of them.
fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("collector.toml");
    std::fs::write(
        &path,
        format!("[[orgs]]\nid = \"{ORG}\"\ntoken = \"{TOKEN}\"\n"),
    )
    .unwrap();
    path
}

fn store_env(url: &str) -> [(&'static str, String); 2] {
    [
        ("VEILLE_STORE__BACKEND", "postgres".to_owned()),
        ("VEILLE_STORE__URL", url.to_owned()),
    ]
}

/// `veille-collector serve` on ephemeral ports, its stderr collected.
struct Serve {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    grpc: String,
}

impl Serve {
    fn start(name: &str, data: &Path, url: &str) -> Serve {
        let mut child = Command::new(EXE)
            .args(["serve", "--data-dir"])
            .arg(data)
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(["--mqtt-listen", "127.0.0.1:0", "--config"])
            .arg(write_config(data))
            .envs(store_env(url))
            .env("VEILLE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        let tag = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let grpc = loop {
            let found = lines
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| field(l, "listening grpc"));
            if let Some(addr) = found {
                break addr;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "{name} exited before listening"
            );
            assert!(started.elapsed() < DEADLINE, "{name} never listened");
            std::thread::sleep(Duration::from_millis(50));
        };
        Serve { child, lines, grpc }
    }

    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// SIGTERM, and the exit code once it stopped.
    fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(started.elapsed() < DEADLINE, "no stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logged(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VALUE` of `key=VALUE` in a log line.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_owned())
}

/// Minute reports `seqs`, the first starting `base_ms` + one minute per seq.
fn batch(device: &str, base_ms: i64, seqs: std::ops::RangeInclusive<u64>) -> ReportBatch {
    ReportBatch {
        device_id: device.into(),
        reports: seqs
            .map(|seq| {
                let start = base_ms + seq as i64 * 60_000;
                Report {
                    boot_id: "boot-a".into(),
                    seq,
                    start_unix_ms: start,
                    end_unix_ms: start + 60_000,
                    boot_time_unix_s: base_ms / 1000,
                    uptime_s: 600,
                    active_ms: 20_000,
                    idle_ms: 40_000,
                    cpu_util: 0.2,
                    ..Default::default()
                }
            })
            .collect(),
        inventory: None,
        agent_version: "0.1.0".into(),
    }
}

async fn send(url: &str, b: ReportBatch) -> Result<Ack, tonic::Status> {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut r = Request::new(b);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    TelemetryClient::new(channel)
        .report(r)
        .await
        .map(|r| r.into_inner())
}

/// A day ago, on a minute: every report of a test (at most 1,000 minutes) is past.
fn base_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 24 * 3_600_000) / 60_000 * 60_000
}

fn devices_json(data: &Path, url: &str) -> Vec<serde_json::Value> {
    let out = Command::new(EXE)
        .args(["devices", "--data-dir"])
        .arg(data)
        .args(["--format", "json", "--config"])
        .arg(data.join("collector.toml"))
        .envs(store_env(url))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "devices failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stored_seqs(url: &str, device: &str) -> Vec<u64> {
    let store = Store::open_location(&Location::Postgres {
        url: url.to_owned(),
    })
    .unwrap();
    store
        .all_reports(ORG, device)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

#[test]
fn a_collector_on_postgres_stores_batches_and_the_cli_reads_them_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = testpg::fresh_database();
    let data = tempfile::tempdir().unwrap();
    let mut serve = Serve::start("collector", data.path(), &url);
    assert!(serve.logged("engine=\"postgres\"") || serve.logged("engine=postgres"));
    let base = base_ms();
    for b in 0..3u64 {
        let seqs = b * 10 + 1..=b * 10 + 10;
        let ack = rt
            .block_on(send(&serve.url(), batch("pg-dev", base, seqs)))
            .unwrap();
        assert_eq!((ack.highest_durable_seq, ack.stored), (b * 10 + 10, 10));
    }
    let resend = rt
        .block_on(send(&serve.url(), batch("pg-dev", base, 1..=10)))
        .unwrap();
    assert_eq!((resend.stored, resend.duplicates), (0, 10));

    // Through the running server (HTTP), then from the database with the server down.
    let d = devices_json(data.path(), &url);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0]["device_id"].as_str(), d[0]["reports"].as_u64()),
        (Some("pg-dev"), Some(30))
    );
    assert_eq!(serve.stop(), Some(0), "a clean stop exits 0");
    assert!(
        !data.path().join("store").exists(),
        "nothing written to the embedded store's directory"
    );
    let d = devices_json(data.path(), &url);
    assert_eq!(d[0]["reports"].as_u64(), Some(30));
    assert_eq!(stored_seqs(&url, "pg-dev"), (1..=30).collect::<Vec<_>>());
}

/// Two collectors on one database, a client pushing through both in turn; one is
/// SIGKILLed mid-run and the client resends what it did not acknowledge through the
/// other. Every acknowledged seq is stored, and every seq exactly once.
#[test]
fn two_collectors_one_killed_every_acknowledged_seq_stored_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    const BATCHES: u64 = 40;
    const PER_BATCH: u64 = 20;
    const DEVICES: u64 = 3;
    const KILL_AT: u64 = 15;
    let url = testpg::fresh_database();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Serve::start("collector-a", da.path(), &url);
    let b = Serve::start("collector-b", db.path(), &url);
    let base = base_ms();
    let mut acked = vec![0u64; DEVICES as usize];
    let a_url = a.url();
    let (mut answered_by_a, mut resent) = (0u32, 0u32);
    for n in 0..BATCHES {
        if n == KILL_AT {
            // While the next batches are in flight to A: some may be stored and never
            // acknowledged.
            let pid = a.child.id().to_string();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            });
        }
        for dev in 0..DEVICES {
            let seqs = n * PER_BATCH + 1..=(n + 1) * PER_BATCH;
            let device = format!("dev-{dev}");
            // Alternate collectors; after the kill, A refuses and B takes the resend.
            let first = if (n + dev) % 2 == 0 {
                a_url.clone()
            } else {
                b.url()
            };
            let ack = match rt.block_on(send(&first, batch(&device, base, seqs.clone()))) {
                Ok(ack) => {
                    answered_by_a += u32::from(first == a_url);
                    ack
                }
                Err(_) => {
                    resent += 1;
                    rt.block_on(send(&b.url(), batch(&device, base, seqs.clone())))
                        .unwrap()
                }
            };
            assert_eq!(ack.highest_durable_seq, *seqs.end(), "{device}");
            acked[dev as usize] = ack.highest_durable_seq;
        }
    }
    drop(b);
    assert!(a.child.try_wait().unwrap().is_some(), "A was killed");
    assert!(
        answered_by_a > 0 && resent > 0,
        "A answered {answered_by_a}, resent {resent}"
    );
    for dev in 0..DEVICES {
        let seqs = stored_seqs(&url, &format!("dev-{dev}"));
        assert_eq!(acked[dev as usize], BATCHES * PER_BATCH);
        assert_eq!(
            seqs,
            (1..=BATCHES * PER_BATCH).collect::<Vec<_>>(),
            "dev-{dev}: every seq once, none missing"
        );
    }
}

/// The database stops under a running collector: ingest answers UNAVAILABLE (agents
/// keep their spool and retry), and once the database is back the same collector,
/// never restarted, stores the retried batch once.
#[test]
fn a_database_lost_mid_run_is_unavailable_then_the_collector_resumes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = testpg::Cluster::start().unwrap();
    // The test cluster trusts loopback, so any password is accepted; this one must
    // never be shown.
    let url = cluster
        .create_database()
        .unwrap()
        .replace("postgres@", "postgres:s3cret@");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start("collector", data.path(), &url);
    let base = base_ms();
    let ack = rt
        .block_on(send(&serve.url(), batch("dev", base, 1..=10)))
        .unwrap();
    assert_eq!(ack.stored, 10);

    cluster.stop();
    let refused = rt
        .block_on(send(&serve.url(), batch("dev", base, 11..=20)))
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(!refused.message().contains("s3cret"), "{refused:?}");
    assert!(
        !serve
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("s3cret"))
    );

    cluster.restart().unwrap();
    let started = Instant::now();
    let ack = loop {
        match rt.block_on(send(&serve.url(), batch("dev", base, 11..=20))) {
            Ok(ack) => break ack,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
                assert!(started.elapsed() < DEADLINE, "never resumed: {s:?}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    // Stored now, or by an attempt answered UNAVAILABLE before (committed, then its
    // flush failed): either way once.
    assert_eq!(ack.stored + ack.duplicates, 10);
    assert_eq!(ack.highest_durable_seq, 20);
    assert!(
        !serve
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("s3cret"))
    );
    drop(serve);
    assert_eq!(stored_seqs(&url, "dev"), (1..=20).collect::<Vec<_>>());
}
