//! Fleet-scale benchmarks of the collector (see BENCHMARKS.md):
//!
//! - `ingest`: the real `veille-collector` release binary on port 0, N simulated
//!   devices (kept awake) reporting every 60 s in real time over gRPC for a duration;
//!   collector CPU % and RSS sampled from /proc, p50/p99 ack latency, store bytes per
//!   device-hour; at the end the stored report count (from `veille-collector devices`)
//!   must equal what was acknowledged. Baseline in the same run: the same load against a
//!   counting no-op gRPC server (this binary, `noop-server`).
//! - `backfill`: D days of N devices' history at full speed: wall time, store size, then
//!   the consumption report (`report consumption --by month`) time and peak RSS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use jiff::tz::TimeZone;
use veille_proto::v1::telemetry_server::{Telemetry, TelemetryServer};
use veille_proto::v1::{Ack, ReportBatch};
use veille_sim::send::{self, Backfill, Pool, Realtime, Stats, Summary, now_ms};
use veille_sim::{Cut, FleetSpec, Mode};

#[derive(Debug, Parser)]
#[command(
    name = "veille-bench-fleet",
    about = "Fleet-scale benchmarks of veille-collector (figures in BENCHMARKS.md)"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// N devices reporting every interval in real time against one collector.
    Ingest {
        /// Fleet sizes, comma-separated: one run each.
        #[arg(long, value_delimiter = ',', default_value = "1000")]
        devices: Vec<usize>,
        #[arg(long, default_value_t = 600)]
        duration_s: u64,
        #[arg(long, default_value_t = 60)]
        interval_s: i64,
        /// Duration of the no-op baseline run (0: none).
        #[arg(long, default_value_t = 120)]
        baseline_duration_s: u64,
        #[arg(long, default_value_t = 8)]
        channels: usize,
        #[arg(long, default_value_t = 512)]
        concurrency: usize,
        #[command(flatten)]
        common: Common,
    },
    /// D days of history of N devices, then the consumption report over it.
    Backfill {
        #[arg(long, default_value_t = 1000)]
        devices: usize,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 3600)]
        history_interval_s: i64,
        #[arg(long, default_value_t = 8)]
        channels: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[command(flatten)]
        common: Common,
    },
    /// A gRPC Telemetry server that counts and acknowledges without storing (baseline).
    #[command(hide = true)]
    NoopServer,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The collector binary (default: `veille-collector` next to this one).
    #[arg(long)]
    collector_bin: Option<PathBuf>,
    /// Where data directories are created (and deleted afterwards).
    #[arg(long, default_value = "/var/tmp")]
    work_dir: PathBuf,
    /// Keep the data directories.
    #[arg(long)]
    keep: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.parent().context("exe dir")?.join(name);
    if !p.exists() {
        bail!(
            "{} is missing: cargo build --release --workspace --bins",
            p.display()
        );
    }
    Ok(p)
}

/// A child process whose output is drained; `listening` is the line announcing its
/// gRPC address.
struct Server {
    child: Child,
    grpc: String,
}

impl Server {
    fn start(mut cmd: Command) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1");
        let mut child = cmd.spawn().context("start server")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .context("no `listening grpc=` line from the server")?;
            if let Some(i) = line.find("listening grpc=") {
                let rest = &line[i + "listening grpc=".len()..];
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_owned();
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return Ok(Self {
                    child,
                    grpc: format!("http://{addr}"),
                });
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let status = self.child.wait()?;
        if !status.success() {
            bail!("server exited with {status}");
        }
        Ok(())
    }
}

/// CPU time (s) and RSS (bytes) of a process, from /proc.
fn proc_sample(pid: i32) -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / tck;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            * 1024
    };
    Some((cpu, kb("VmRSS:"), kb("VmHWM:")))
}

/// Samples a process every second until stopped: CPU seconds used, mean and peak RSS.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(f64, f64, u64, f64)>,
}

impl Sampler {
    fn start(pid: i32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let (cpu0, _, _) = proc_sample(pid).unwrap_or((0.0, 0, 0));
            let (mut cpu, mut sum, mut n, mut peak) = (cpu0, 0u64, 0u64, 0u64);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                if let Some((c, rss, hwm)) = proc_sample(pid) {
                    cpu = c;
                    sum += rss;
                    n += 1;
                    peak = peak.max(hwm);
                }
            }
            let wall = t0.elapsed().as_secs_f64();
            (cpu - cpu0, wall, peak, sum as f64 / n.max(1) as f64)
        });
        Self { stop, handle }
    }

    /// (CPU seconds, wall seconds, peak RSS bytes, mean RSS bytes)
    fn finish(self) -> (f64, f64, u64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or((0.0, 0.0, 0, 0.0))
    }
}

fn du(path: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if meta.is_dir() {
            std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0)
        } else {
            meta.blocks() * 512
        }
    }
    walk(path)
}

fn collector_cmd(bin: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
        ])
        .env("VEILLE_LOG", "warn,veille_collector::server=info");
    cmd
}

fn token(data: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(data.join("default-org.token"))
        .context("default-org.token in the data dir")?
        .trim()
        .to_owned())
}

/// (devices, reports) the store holds, from `veille-collector devices --format json`.
fn stored_counts(bin: &Path, data: &Path) -> anyhow::Result<(u64, u64)> {
    let out = Command::new(bin)
        .args(["devices", "--format", "json", "--data-dir"])
        .arg(data)
        .output()?;
    if !out.status.success() {
        bail!("devices: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    let reports = v.iter().map(|d| d["reports"].as_u64().unwrap_or(0)).sum();
    Ok((v.len() as u64, reports))
}

struct Run {
    summary: Summary,
    cpu_s: f64,
    wall_s: f64,
    peak_rss: u64,
    mean_rss: f64,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    grpc: &str,
    token: &str,
    pid: i32,
    devices: usize,
    duration: Duration,
    interval_s: i64,
    channels: usize,
    concurrency: usize,
    seed: u64,
) -> anyhow::Result<Run> {
    let pool = Pool::new(grpc, token, channels)?;
    let plan = Realtime {
        fleet: FleetSpec::new(seed, devices),
        tz: TimeZone::get("Europe/Paris")?,
        mode: Mode::KeepAwake {
            since_ms: now_ms() - 86_400_000,
        },
        cut: Cut { interval_s },
        duration: Some(duration),
        concurrency,
    };
    let stats = Arc::new(Stats::default());
    let sampler = Sampler::start(pid);
    let progress = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let s = stats.summary();
                eprintln!(
                    "  {:>4.0} s: {} reports acked",
                    t0.elapsed().as_secs_f64(),
                    s.reports
                );
            }
        })
    };
    let summary = send::realtime(&pool, &plan, stats, std::future::pending()).await?;
    progress.abort();
    let (cpu_s, wall_s, peak_rss, mean_rss) = sampler.finish();
    Ok(Run {
        summary,
        cpu_s,
        wall_s,
        peak_rss,
        mean_rss,
    })
}

const MIB: f64 = 1024.0 * 1024.0;

#[allow(clippy::too_many_arguments)]
async fn ingest(
    devices: Vec<usize>,
    duration_s: u64,
    interval_s: i64,
    baseline_s: u64,
    channels: usize,
    concurrency: usize,
    c: Common,
) -> anyhow::Result<()> {
    let bin = match &c.collector_bin {
        Some(b) => b.clone(),
        None => sibling("veille-collector")?,
    };
    let mut rows = Vec::new();
    for n in devices {
        eprintln!("== {n} devices every {interval_s} s for {duration_s} s");
        let data = c
            .work_dir
            .join(format!("veille-bench-fleet-{n}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let server = Server::start(collector_cmd(&bin, &data))?;
        let empty = du(&data);
        let run = drive(
            &server.grpc,
            &token(&data)?,
            server.pid(),
            n,
            Duration::from_secs(duration_s),
            interval_s,
            channels,
            concurrency,
            c.seed,
        )
        .await?;
        server.stop()?;
        let bytes = du(&data).saturating_sub(empty);
        let (stored_devices, stored_reports) = stored_counts(&bin, &data)?;
        let ok = stored_reports == run.summary.stored
            && run.summary.stored == run.summary.reports
            && stored_devices == n as u64;
        let device_hours = n as f64 * run.wall_s / 3600.0;
        eprintln!(
            "collector: {} reports acked ({} stored, store says {} reports of {} devices: {}), CPU {:.1} % of one core, RSS mean {:.0} MiB peak {:.0} MiB, ack p50 {:.2} ms p99 {:.2} ms, store +{:.1} MiB = {:.0} B/device-hour",
            run.summary.reports,
            run.summary.stored,
            stored_reports,
            stored_devices,
            if ok {
                "count check OK"
            } else {
                "COUNT MISMATCH"
            },
            100.0 * run.cpu_s / run.wall_s,
            run.mean_rss / MIB,
            run.peak_rss as f64 / MIB,
            run.summary.ack_p50_ms,
            run.summary.ack_p99_ms,
            bytes as f64 / MIB,
            bytes as f64 / device_hours,
        );
        if !c.keep {
            let _ = std::fs::remove_dir_all(&data);
        }
        let base = if baseline_s > 0 {
            let noop = Server::start({
                let mut cmd = Command::new(std::env::current_exe()?);
                cmd.arg("noop-server");
                cmd
            })?;
            let b = drive(
                &noop.grpc,
                "bench",
                noop.pid(),
                n,
                Duration::from_secs(baseline_s),
                interval_s,
                channels,
                concurrency,
                c.seed,
            )
            .await?;
            noop.stop()?;
            eprintln!(
                "no-op baseline ({baseline_s} s): {} reports, CPU {:.1} %, RSS peak {:.0} MiB, ack p50 {:.2} ms p99 {:.2} ms",
                b.summary.reports,
                100.0 * b.cpu_s / b.wall_s,
                b.peak_rss as f64 / MIB,
                b.summary.ack_p50_ms,
                b.summary.ack_p99_ms
            );
            Some(b)
        } else {
            None
        };
        rows.push((n, run, bytes, device_hours, ok, base));
    }
    println!(
        "\n| devices | duration | reports/s | collector CPU % (1 core = 100) | RSS mean / peak MiB | ack p50 / p99 ms | store B per device-hour | count check | no-op baseline: CPU % / RSS MiB / ack p50 / p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for (n, r, bytes, dh, ok, base) in rows {
        let base = base
            .map(|b| {
                format!(
                    "{:.1} / {:.0} / {:.2} / {:.2} ({:.0} s)",
                    100.0 * b.cpu_s / b.wall_s,
                    b.peak_rss as f64 / MIB,
                    b.summary.ack_p50_ms,
                    b.summary.ack_p99_ms,
                    b.wall_s
                )
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "| {n} | {:.0} s | {:.0} | {:.1} | {:.0} / {:.0} | {:.2} / {:.2} | {:.0} | {} | {base} |",
            r.wall_s,
            r.summary.reports as f64 / r.wall_s,
            100.0 * r.cpu_s / r.wall_s,
            r.mean_rss / MIB,
            r.peak_rss as f64 / MIB,
            r.summary.ack_p50_ms,
            r.summary.ack_p99_ms,
            bytes as f64 / dh,
            if ok {
                format!("{} = {} OK", r.summary.stored, r.summary.reports)
            } else {
                "MISMATCH".into()
            },
        );
    }
    Ok(())
}

async fn backfill(
    devices: usize,
    days: u32,
    interval_s: i64,
    channels: usize,
    concurrency: usize,
    c: Common,
) -> anyhow::Result<()> {
    let bin = match &c.collector_bin {
        Some(b) => b.clone(),
        None => sibling("veille-collector")?,
    };
    let data = c.work_dir.join(format!(
        "veille-bench-backfill-{devices}x{days}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(collector_cmd(&bin, &data))?;
    let pool = Pool::new(&server.grpc, &token(&data)?, channels)?;
    let now = now_ms();
    let tz = TimeZone::get("Europe/Paris")?;
    let plan = Backfill {
        fleet: FleetSpec::new(c.seed, devices),
        tz: tz.clone(),
        from_ms: now - i64::from(days) * 86_400_000,
        to_ms: now,
        cut: Cut { interval_s },
        concurrency,
    };
    let sampler = Sampler::start(server.pid());
    let t0 = Instant::now();
    let step = (devices as u64 / 20).max(1);
    let last = Arc::new(AtomicU64::new(0));
    let summary = send::backfill(&pool, &plan, move |done, reports| {
        if done.is_multiple_of(step) && last.swap(done, Ordering::Relaxed) != done {
            eprintln!(
                "  {:>5.0} s: {done}/{devices} devices, {reports} reports",
                t0.elapsed().as_secs_f64()
            );
        }
    })
    .await?;
    let wall = t0.elapsed().as_secs_f64();
    let (cpu_s, _, peak, _) = sampler.finish();
    server.stop()?;
    let bytes = du(&data);
    let (_, stored) = stored_counts(&bin, &data)?;
    eprintln!(
        "backfill {devices} devices x {days} days: {} reports in {wall:.1} s ({:.0} reports/s), stored {} (store says {stored}), collector CPU {cpu_s:.0} s, peak RSS {:.0} MiB, store {:.2} GiB = {:.0} B/device-day",
        summary.reports,
        summary.reports as f64 / wall,
        summary.stored,
        peak as f64 / MIB,
        bytes as f64 / (MIB * 1024.0),
        bytes as f64 / (devices as f64 * f64::from(days))
    );
    // The consumption report over the period, by month.
    let from = jiff::Timestamp::from_millisecond(now - i64::from(days) * 86_400_000)?
        .to_zoned(tz.clone())
        .date();
    let to = jiff::Timestamp::from_millisecond(now)?
        .to_zoned(tz)
        .date()
        .tomorrow()?;
    let t1 = Instant::now();
    let mut child = Command::new(&bin)
        .args([
            "report",
            "consumption",
            "--by",
            "month",
            "--format",
            "csv",
            "--data-dir",
        ])
        .arg(&data)
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id() as i32;
    let mut hwm = 0u64;
    let out = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some((_, _, h)) = proc_sample(pid) {
            hwm = hwm.max(h);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut csv = String::new();
    if let Some(mut so) = child.stdout.take() {
        use std::io::Read;
        so.read_to_string(&mut csv)?;
    }
    let report_s = t1.elapsed().as_secs_f64();
    if !out.success() {
        bail!("report consumption failed: {out}");
    }
    eprintln!("{}", csv.lines().take(6).collect::<Vec<_>>().join("\n"));
    println!(
        "\n| devices | days | reports | backfill wall s | reports/s | store GiB | B per device-day | consumption --by month s | its peak RSS MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| {devices} | {days} | {} | {wall:.1} | {:.0} | {:.2} | {:.0} | {report_s:.1} | {:.0} |",
        summary.reports,
        summary.reports as f64 / wall,
        bytes as f64 / (MIB * 1024.0),
        bytes as f64 / (devices as f64 * f64::from(days)),
        hwm as f64 / MIB
    );
    if !c.keep {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}

/// Counts and acknowledges; stores nothing.
#[derive(Default)]
struct Noop {
    reports: AtomicU64,
}

#[tonic::async_trait]
impl Telemetry for Noop {
    async fn report(
        &self,
        request: tonic::Request<ReportBatch>,
    ) -> Result<tonic::Response<Ack>, tonic::Status> {
        let batch = request.into_inner();
        self.reports
            .fetch_add(batch.reports.len() as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(Ack {
            highest_durable_seq: batch.reports.last().map(|r| r.seq).unwrap_or(0),
            stored: batch.reports.len() as u32,
            acked_from_seq: batch.reports.first().map(|r| r.seq).unwrap_or(0),
            ..Default::default()
        }))
    }
}

async fn noop_server() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    eprintln!("listening grpc={}", listener.local_addr()?);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tonic::transport::Server::builder()
        .add_service(
            TelemetryServer::new(Noop::default())
                .max_decoding_message_size(veille_proto::defaults::MAX_BATCH_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, async move {
            term.recv().await;
        })
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::Ingest {
            devices,
            duration_s,
            interval_s,
            baseline_duration_s,
            channels,
            concurrency,
            common,
        } => {
            ingest(
                devices,
                duration_s,
                interval_s,
                baseline_duration_s,
                channels,
                concurrency,
                common,
            )
            .await
        }
        Cmd::Backfill {
            devices,
            days,
            history_interval_s,
            channels,
            concurrency,
            common,
        } => {
            backfill(
                devices,
                days,
                history_interval_s,
                channels,
                concurrency,
                common,
            )
            .await
        }
        Cmd::NoopServer => noop_server().await,
    }
}
