//! `veille-sim`: a simulated fleet speaking the real protocol to a collector.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use jiff::tz::TimeZone;
use veille_sim::send::{self, Backfill, Pool, Realtime, Stats, Summary, now_ms};
use veille_sim::{Cut, FleetSpec, Mode};

/// Simulates a fleet of Veille agents (office desktops, laptops, thin clients, kiosks,
/// servers; with monitors, sites and groups) and sends their reports to a collector
/// over the real gRPC contract.
///
/// The fleet is deterministic: the same --seed and --devices give the same devices,
/// days and reports (seq = report start in Unix seconds), so re-sending history is
/// harmless: the collector counts the repeats as duplicates.
///
/// Examples:
///   veille-sim --token $TOKEN --devices 200 --days 30            # a month of history
///   veille-sim --token $TOKEN --devices 50 --realtime             # live, every 60 s
///   veille-sim --token $TOKEN --devices 30000 --realtime --keep-awake --duration-s 600
#[derive(Debug, Parser)]
#[command(name = "veille-sim", version, verbatim_doc_comment)]
struct Args {
    /// Collector gRPC URL.
    #[arg(long, default_value_t = format!("http://127.0.0.1:{}", veille_proto::defaults::GRPC_PORT))]
    collector: String,
    /// Organisation token (the collector's `<data-dir>/default-org.token` for the
    /// default organisation).
    #[arg(long, env = "VEILLE_TOKEN", hide_env_values = true)]
    token: String,
    /// Number of simulated devices.
    #[arg(long, default_value_t = 50)]
    devices: usize,
    /// Seed of the fleet: same seed, same devices and history.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Backfill this many days of history ending now, at full speed.
    #[arg(long)]
    days: Option<u32>,
    /// Report in real time (after the backfill, if --days is given).
    #[arg(long)]
    realtime: bool,
    /// Real time for this many seconds, then exit (default: until Ctrl-C).
    #[arg(long)]
    duration_s: Option<u64>,
    /// Load testing: every device is on and reports every interval (its day plan still
    /// says when it is active); without it, machines are off at night, asleep, etc.
    #[arg(long)]
    keep_awake: bool,
    /// Transport. Only gRPC is implemented (MQTT goes through the same collector
    /// ingest; see README).
    #[arg(long, default_value = "grpc", value_parser = ["grpc"])]
    transport: String,
    /// Sites, comma-separated (devices are spread over them round-robin).
    #[arg(long, value_delimiter = ',')]
    sites: Vec<String>,
    /// Length of real-time reports, seconds (agents' default is 60).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    report_interval_s: i64,
    /// Length of backfilled reports, seconds: history in hourly reports is far smaller
    /// and sums to the same state times (a report never crosses a boot session).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    history_interval_s: i64,
    /// Time zone of the fleet's working hours (IANA name).
    #[arg(long, default_value = "Europe/Paris")]
    time_zone: String,
    /// gRPC channels (HTTP/2 connections) the simulated agents share.
    #[arg(long, default_value_t = 4)]
    channels: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Print the final summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn print_summary(what: &str, s: &Summary, json: bool, period: (i64, i64)) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "phase": what, "devices": s.devices, "batches": s.batches, "reports": s.reports,
                "stored": s.stored, "duplicates": s.duplicates, "conflicts": s.conflicts,
                "ack_p50_ms": s.ack_p50_ms, "ack_p99_ms": s.ack_p99_ms,
                "from_ms": period.0, "to_ms": period.1,
            })
        );
    } else {
        println!(
            "{what}: {} devices, {} reports in {} batches: {} stored, {} duplicates, {} conflicts; ack p50 {:.2} ms p99 {:.2} ms",
            s.devices,
            s.reports,
            s.batches,
            s.stored,
            s.duplicates,
            s.conflicts,
            s.ack_p50_ms,
            s.ack_p99_ms
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.days.is_none() && !args.realtime {
        bail!("nothing to do: give --days D (history), --realtime, or both");
    }
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let tz = TimeZone::get(&args.time_zone)
        .with_context(|| format!("--time-zone {:?}", args.time_zone))?;
    let mut fleet = FleetSpec::new(args.seed, args.devices);
    if !args.sites.is_empty() {
        fleet.sites = args.sites.clone();
    }
    let pool = Pool::new(&args.collector, &args.token, args.channels)?;
    let now = now_ms();
    if let Some(days) = args.days {
        let plan = Backfill {
            fleet: fleet.clone(),
            tz: tz.clone(),
            from_ms: now - i64::from(days) * 86_400_000,
            to_ms: now,
            cut: Cut {
                interval_s: args.history_interval_s,
            },
            concurrency: args.concurrency,
        };
        let total = args.devices as u64;
        let step = (total / 10).max(1);
        let t0 = std::time::Instant::now();
        let summary = send::backfill(&pool, &plan, move |done, reports| {
            if done.is_multiple_of(step) || done == total {
                eprintln!("history: {done}/{total} devices, {reports} reports");
            }
        })
        .await
        .with_context(|| format!("backfill to {}", args.collector))?;
        eprintln!("history sent in {:.1} s", t0.elapsed().as_secs_f64());
        print_summary("history", &summary, args.json, (plan.from_ms, plan.to_ms));
    }
    if args.realtime {
        let plan = Realtime {
            fleet,
            tz,
            mode: if args.keep_awake {
                Mode::KeepAwake {
                    since_ms: now - 86_400_000,
                }
            } else {
                Mode::Realistic
            },
            cut: Cut {
                interval_s: args.report_interval_s,
            },
            duration: args.duration_s.map(Duration::from_secs),
            concurrency: args.concurrency,
        };
        eprintln!(
            "real time: {} devices reporting every {} s (Ctrl-C to stop)",
            args.devices, args.report_interval_s
        );
        let stats = Arc::new(Stats::default());
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let summary = send::realtime(&pool, &plan, stats, stop)
            .await
            .with_context(|| format!("real time to {}", args.collector))?;
        print_summary("realtime", &summary, args.json, (now, now_ms()));
    }
    Ok(())
}
