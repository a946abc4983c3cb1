//! Ingest benchmark: how many reports per second the collector acknowledges *durably*
//! over loopback gRPC (group commit), against the raw SQLite insert rate of the same
//! records on the same disk with one flush per batch (the "one fsync per request"
//! baseline) and with a single flush at the end (the ceiling).
//!
//! ```text
//! cargo run --release -p veille-collector --bin veille-bench-ingest -- --clients 8 --batches 100 --batch-size 100
//! ```
//! `--postgres` runs phase (a) on a throwaway PostgreSQL cluster instead of the embedded
//! store (the baselines stay SQLite).
//! Scratch data goes to `--dir` (default: the current directory, so it sits on the disk
//! being measured rather than on a tmpfs) and is removed at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use prost::Message;
use veille_collector::clock::now_ms;
use veille_collector::config::OrgConfig;
use veille_collector::store::report_key;
use veille_collector::{Config, Listeners, Server};
use veille_proto::v1::telemetry_client::TelemetryClient;
use veille_proto::v1::{Report, ReportBatch};

const TOKEN: &str = "bench-token-0123456789abcdef";
const ORG: &str = "bench";

/// Measures durable ingest throughput of the collector against raw SQLite.
#[derive(Debug, Parser)]
#[command(name = "veille-bench-ingest")]
struct Args {
    /// Concurrent gRPC clients, one device each.
    #[arg(long, default_value_t = 8)]
    clients: u64,
    /// Batches each client sends (one after the other, each waiting for its Ack).
    #[arg(long, default_value_t = 100)]
    batches: u64,
    /// Reports per batch (at most veille_proto::defaults::MAX_REPORTS_PER_BATCH).
    #[arg(long, default_value_t = 100)]
    batch_size: u64,
    /// Parent directory for the scratch stores (removed afterwards).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Phase (a) on PostgreSQL (`[store] backend = "postgres"`): a throwaway cluster
    /// started from Debian's `postgresql` binaries (`store::testpg`, in the system
    /// temp dir), fsync on.
    #[arg(long)]
    postgres: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VEILLE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    if args.clients == 0 || args.batches == 0 || args.batch_size == 0 {
        bail!("--clients, --batches and --batch-size must be at least 1");
    }
    if args.batch_size as usize > veille_proto::defaults::MAX_REPORTS_PER_BATCH {
        bail!(
            "--batch-size {} is over the contract's limit of {}",
            args.batch_size,
            veille_proto::defaults::MAX_REPORTS_PER_BATCH
        );
    }
    let work = args
        .dir
        .join(format!("veille-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = run(&args, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run(args: &Args, work: &Path) -> anyhow::Result<()> {
    // Reports of 100 ms each from a day ago: a device can send 864,000 before "now".
    let base_ms = now_ms() - 24 * 3_600_000;
    if args.batches * args.batch_size > 800_000 {
        bail!("--batches x --batch-size must stay under 800000 per client");
    }
    let total = args.clients * args.batches * args.batch_size;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    eprintln!(
        "(a) {} clients x {} batches x {} reports over loopback gRPC...",
        args.clients, args.batches, args.batch_size
    );
    let grpc = rt.block_on(grpc_phase(args, work, base_ms))?;

    eprintln!("(b) raw SQLite, one fsync'd commit per batch...");
    let per_batch = raw_sqlite(args, &work.join("raw-per-batch"), base_ms, true)?;
    eprintln!("(c) raw SQLite, one fsync at the end...");
    let at_end = raw_sqlite(args, &work.join("raw-at-end"), base_ms, false)?;

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!();
    println!(
        "{:<52} {:>9} {:>9} {:>12}",
        "measurement", "reports", "seconds", "reports/s"
    );
    for (name, d) in [
        (
            if args.postgres {
                "(a) gRPC loopback on PostgreSQL, acked after flush"
            } else {
                "(a) gRPC loopback, acked after group-commit flush"
            },
            grpc.elapsed,
        ),
        ("(b) raw SQLite, one fsync per batch", per_batch),
        ("(c) raw SQLite, one fsync at the end", at_end),
    ] {
        println!(
            "{name:<52} {total:>9} {:>9.2} {:>12.0}",
            d.as_secs_f64(),
            rate(d)
        );
    }
    println!();
    println!(
        "ratio (a)/(b): {:.2}   (a)/(c): {:.2}",
        rate(grpc.elapsed) / rate(per_batch),
        rate(grpc.elapsed) / rate(at_end)
    );
    println!(
        "group commit: {} batches in {} flushes ({:.1} batches/flush); Ack latency p50 {:.1} ms, p99 {:.1} ms",
        grpc.batches,
        grpc.flushes,
        grpc.batches as f64 / grpc.flushes.max(1) as f64,
        grpc.p50.as_secs_f64() * 1e3,
        grpc.p99.as_secs_f64() * 1e3
    );
    Ok(())
}

fn make_batch(client: u64, b: u64, size: u64, base_ms: i64) -> ReportBatch {
    let reports = (b * size + 1..=(b + 1) * size)
        .map(|seq| {
            let start = base_ms + seq as i64 * 100;
            Report {
                boot_id: format!("boot-{client}"),
                seq,
                start_unix_ms: start,
                end_unix_ms: start + 100,
                boot_time_unix_s: base_ms / 1000 - 3600,
                uptime_s: 3600 + seq / 10,
                active_ms: 40,
                idle_ms: 60,
                cpu_util: 0.15,
                ..Default::default()
            }
        })
        .collect();
    ReportBatch {
        device_id: format!("bench-device-{client}"),
        reports,
        inventory: None,
        agent_version: veille_proto::defaults::VERSION.into(),
    }
}

struct GrpcResult {
    elapsed: Duration,
    batches: u64,
    flushes: u64,
    p50: Duration,
    p99: Duration,
}

async fn grpc_phase(args: &Args, work: &Path, base_ms: i64) -> anyhow::Result<GrpcResult> {
    let mut config = Config::defaults()?;
    config.data_dir = work.join("collector").to_string_lossy().into_owned();
    config.orgs = vec![OrgConfig {
        id: ORG.into(),
        name: "Benchmark".into(),
        token: TOKEN.into(),
        token_sha256: String::new(),
        energy: None,
        profile: Default::default(),
    }];
    // Dropped at the end of the phase: the cluster stops and its directory goes.
    let cluster = if args.postgres {
        // The sync client blocks: not on a runtime worker.
        let (cluster, url) = tokio::task::block_in_place(|| {
            let cluster = veille_collector::store::testpg::Cluster::start()?;
            let url = cluster.create_database()?;
            Ok::<_, String>((cluster, url))
        })
        .map_err(|e| anyhow::anyhow!("starting a PostgreSQL cluster: {e}"))?;
        config.store.backend = "postgres".into();
        config.store.url = url;
        Some(cluster)
    } else {
        None
    };
    let server = Server::start(&config, Listeners::loopback_ephemeral().await?).await?;
    let url = server.grpc_url();
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let client = TelemetryClient::connect(url.clone())
            .await
            .context("connecting to the collector")?;
        clients.push((c, client));
    }
    let (batches, size) = (args.batches, args.batch_size);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut client) in clients {
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(batches as usize);
            for b in 0..batches {
                let mut request = tonic::Request::new(make_batch(c, b, size, base_ms));
                let value = format!("Bearer {TOKEN}")
                    .parse()
                    .context("building the authorization header")?;
                request.metadata_mut().insert("authorization", value);
                let t = Instant::now();
                let ack = client.report(request).await?.into_inner();
                latencies.push(t.elapsed());
                if ack.stored as u64 != size {
                    bail!("client {c} batch {b}: stored {} of {size}", ack.stored);
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = start.elapsed();
    let metrics = server.metrics().snapshot();
    server.shutdown().await?;
    drop(cluster);
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Ok(GrpcResult {
        elapsed,
        batches: metrics.batches,
        flushes: metrics.flushes,
        p50: pick(0.5),
        p99: pick(0.99),
    })
}

/// Inserts the same records as the gRPC phase (same keys, same prost bytes, one row
/// per report) into a fresh SQLite table (the embedded engine, used raw), one
/// transaction per batch, clients interleaved as they would arrive; with `fsync_each`
/// every commit is synced (`synchronous = FULL`), else only the last.
fn raw_sqlite(
    args: &Args,
    path: &Path,
    base_ms: i64,
    fsync_each: bool,
) -> anyhow::Result<Duration> {
    std::fs::create_dir_all(path)?;
    let mut db = rusqlite::Connection::open(path.join("raw.sqlite"))?;
    db.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {};
         CREATE TABLE reports (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
        if fsync_each { "FULL" } else { "NORMAL" }
    ))?;
    // Rounds of client batches of (key, value) rows.
    let prepared: Vec<Vec<veille_collector::store::engine::Entries>> = (0..args.batches)
        .map(|b| {
            (0..args.clients)
                .map(|c| {
                    let batch = make_batch(c, b, args.batch_size, base_ms);
                    batch
                        .reports
                        .iter()
                        .map(|r| (report_key(ORG, &batch.device_id, r.seq), r.encode_to_vec()))
                        .collect()
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    for round in prepared {
        for rows in round {
            let tx = db.transaction()?;
            {
                let mut stmt =
                    tx.prepare_cached("INSERT INTO reports (key, value) VALUES (?1, ?2)")?;
                for (k, v) in &rows {
                    stmt.execute(rusqlite::params![k, v])?;
                }
            }
            tx.commit()?;
        }
    }
    db.execute_batch("PRAGMA wal_checkpoint(FULL);")?;
    Ok(start.elapsed())
}
