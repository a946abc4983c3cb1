//! Consumption-report benchmark: `reports::consumption_output` (by site, JSON) over a
//! synthetic store of hourly rollups, one month and one year, with its time and peak
//! memory, against the time of a plain scan of the same rollup bytes in the same run.
//!
//! ```text
//! cargo run --release -p veille-collector --bin veille-bench-consumption -- \
//!     --month-devices 2000 --year-devices 200 --dir /var/tmp
//! ```
//!
//! The store is filled through the public API (`Store::apply_batch`): rollups cannot be
//! written directly. Each device sends contiguous reports `--report-hours` long (default
//! 24 h, the contract's maximum interval); ingest splits each into hourly rollups, so
//! every hour of the period has exactly one rollup per device, as with minute reports,
//! for 24× fewer reports to generate. One boot session per device per week, ending
//! with SHUTDOWN and a minute off before the next boot.
//!
//! Baselines, in the same run and on the same store:
//! - `Store::rollups` for every device over the period, summing `covered_ms` (the
//!   public API: the same range scans and decoding `load_devices` does, nothing else);
//! - the engine's own scan of every packed rollup row (`SELECT count(*), sum(length(data))
//!   FROM rollup_days`, in SQLite or, with `--postgres`, in PostgreSQL). This is the
//!   floor: bytes only.
//!
//! CPU: the process's user + system time during the report (all its threads), from
//! /proc/self/stat: on a shared machine, what the report costs beside how long it waited.
//!
//! Peak memory: VmHWM from /proc/self/status. It is reset (`/proc/self/clear_refs` = 5)
//! after generation when the kernel allows it; otherwise it includes generation. The
//! store is closed and reopened after generation; its page cache fills again while the
//! report reads (that is part of the report's cost).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Parser;
use veille_collector::reports::{self, ConsumptionQuery, OutputFormat};
use veille_collector::store::{Location, Store};
use veille_domain::energy::catalogue::Catalogue;
use veille_domain::energy::consumption::{Context, CsvDialect, EnergyConfig, GroupBy};
use veille_domain::energy::rollup::{HOUR_MS, HourRollup};
use veille_proto::v1::{ChassisClass, Event, EventKind, Inventory, Report, ReportBatch};

const ORG: &str = "bench";
/// 2025-01-01 00:00:00 UTC.
const YEAR_START_MS: i64 = 1_735_689_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Times the consumption report over synthetic hourly rollups.
#[derive(Debug, Parser)]
#[command(name = "veille-bench-consumption")]
struct Args {
    /// Devices for the one-month store (0 = skip). Generation through apply_batch runs
    /// at ~30k rollups/s on 2 cores: 30,000 devices (22M rollups) takes ~15 min.
    #[arg(long, default_value_t = 30_000)]
    month_devices: u64,
    /// Devices for the one-year store (0 = skip). 30,000 × a year is 263M rollups
    /// (~3 GB embedded): raise it if you have the disk and the time.
    #[arg(long, default_value_t = 3_000)]
    year_devices: u64,
    /// Write hourly rollups directly (`Store::put_rollups`, the bulk-load path) after
    /// one real report per device for its registry entry, instead of ingesting
    /// reports that cover the whole period (slow: ~30k rollups/s). The report reads
    /// the same bytes either way.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    direct: bool,
    /// Length of each generated report, in hours (1..=24).
    #[arg(long, default_value_t = 24)]
    report_hours: i64,
    /// Sites the devices are spread over (the report groups by site).
    #[arg(long, default_value_t = 50)]
    sites: u64,
    /// Parent directory for the scratch stores (removed afterwards).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Keep the scratch stores.
    #[arg(long)]
    keep: bool,
    /// Reuse the stores kept by an earlier `--keep` run in this directory (the
    /// `veille-bench-consumption-<pid>` one it printed) instead of generating them:
    /// a report's before and after on the same bytes. Implies `--keep`.
    #[arg(long)]
    reuse: Option<PathBuf>,
    /// Run on PostgreSQL (`[store] backend = "postgres"`): a throwaway cluster started
    /// from Debian's `postgresql` binaries (`store::testpg`, under the system temp
    /// dir, stopped and removed at the end), one database per scenario. The engine's
    /// own scan is then the same `sum(length(data))` in PostgreSQL. Not with `--reuse`.
    #[arg(long)]
    postgres: bool,
    /// Run the month scenario on this existing PostgreSQL database instead (a cluster
    /// started by hand): generated there when it holds no device yet, reused as it is
    /// otherwise. PostgreSQL's `--reuse`: generating the month takes minutes, and a
    /// read path's before and after should read the same rows. Month only.
    #[arg(long, conflicts_with_all = ["postgres", "reuse"])]
    postgres_url: Option<String>,
}

struct Row {
    scenario: &'static str,
    devices: u64,
    rollups: u64,
    store_mb: f64,
    gen_s: f64,
    report_s: f64,
    report_hwm_mb: f64,
    report_bytes: usize,
    api_scan_s: f64,
    raw_scan_s: f64,
    raw_scan_bytes: u64,
    check: (f64, f64),
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(1..=24).contains(&args.report_hours) {
        bail!("--report-hours must be within 1..=24");
    }
    if args.sites == 0 {
        bail!("--sites must be at least 1");
    }
    if args.postgres_url.is_some() && args.year_devices > 0 {
        bail!("--postgres-url holds the month scenario only: add --year-devices 0");
    }
    if args.postgres && args.reuse.is_some() {
        bail!("--reuse keeps embedded stores only: not with --postgres");
    }
    let work = match &args.reuse {
        Some(dir) => dir.clone(),
        None => args
            .dir
            .join(format!("veille-bench-consumption-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = run(&args, &work);
    if !args.keep && args.reuse.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("stores kept in {}", work.display());
    }
    let rows = result?;
    print_table(&rows);
    Ok(())
}

fn run(args: &Args, work: &Path) -> anyhow::Result<Vec<Row>> {
    // Dropped at the end of the run: the cluster stops and its directory goes.
    let cluster = if args.postgres {
        let cluster = veille_collector::store::testpg::Cluster::start()
            .map_err(|e| anyhow::anyhow!("starting a PostgreSQL cluster: {e}"))?;
        Some(cluster)
    } else {
        None
    };
    let open = |dir: &Path| -> anyhow::Result<Bench> {
        if let Some(url) = &args.postgres_url {
            return Ok(Bench::Postgres { url: url.clone() });
        }
        match &cluster {
            Some(cluster) => {
                let url = cluster
                    .create_database()
                    .map_err(|e| anyhow::anyhow!("creating a database: {e}"))?;
                Ok(Bench::Postgres { url })
            }
            None => Ok(Bench::Embedded {
                dir: dir.to_owned(),
            }),
        }
    };
    let mut rows = Vec::new();
    if args.month_devices > 0 {
        // January 2025 (31 days).
        rows.push(scenario(
            args,
            &open(&work.join("month"))?,
            "month",
            args.month_devices,
            31,
            ("2025-01-01", "2025-01-31"),
        )?);
    }
    if args.year_devices > 0 {
        rows.push(scenario(
            args,
            &open(&work.join("year"))?,
            "year",
            args.year_devices,
            365,
            ("2025-01-01", "2025-12-31"),
        )?);
    }
    Ok(rows)
}

/// Where a scenario's store lives.
enum Bench {
    Embedded { dir: PathBuf },
    Postgres { url: String },
}

impl Bench {
    fn open(&self) -> anyhow::Result<Store> {
        Ok(match self {
            Bench::Embedded { dir } => Store::open(dir)?,
            Bench::Postgres { url } => {
                Store::open_location(&Location::Postgres { url: url.clone() })?
            }
        })
    }

    /// Bytes on disk: the directory's allocated blocks, or the database's size.
    fn size(&self, store: &Store) -> anyhow::Result<u64> {
        match self {
            Bench::Embedded { dir } => Ok(dir_size(dir)),
            Bench::Postgres { .. } => Ok(store.size_on_disk()?),
        }
    }

    /// The engine's own plain scan of every packed rollup row: (rows, bytes).
    fn raw_scan(&self) -> anyhow::Result<(i64, i64)> {
        const SQL: &str = "SELECT count(*), COALESCE(sum(length(data)), 0) FROM rollup_days";
        match self {
            Bench::Embedded { dir } => {
                let db =
                    rusqlite::Connection::open(dir.join(veille_collector::store::sqlite::FILE))?;
                Ok(db.query_row(SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))?)
            }
            Bench::Postgres { url } => {
                let mut client = postgres::Client::connect(url, postgres::NoTls)?;
                // sum() of PostgreSQL's int `length` is a bigint: the same query reads as i64.
                let row = client.query_one(SQL, &[])?;
                Ok((row.get(0), row.get(1)))
            }
        }
    }
}

fn scenario(
    args: &Args,
    bench: &Bench,
    name: &'static str,
    devices: u64,
    days: i64,
    (from, to): (&str, &str),
) -> anyhow::Result<Row> {
    let t = Instant::now();
    let reused = match bench {
        Bench::Embedded { dir } => {
            args.reuse.is_some() && dir.join(veille_collector::store::sqlite::FILE).is_file()
        }
        Bench::Postgres { .. } => {
            args.postgres_url.is_some() && !bench.open()?.devices(Some(ORG))?.is_empty()
        }
    };
    if reused {
        eprintln!("[{name}] reusing the kept store");
    } else {
        eprintln!("[{name}] generating {devices} devices × {days} days ...");
        // The report's period is local (Europe/Paris): start a day early so that its
        // first hours (23:00 UTC the day before) have rollups too.
        let start_ms = YEAR_START_MS - DAY_MS;
        let end_ms = YEAR_START_MS + days * DAY_MS;
        let store = bench.open()?;
        generate(&store, args, devices, start_ms, end_ms)?;
        store.flush()?;
    }
    let gen_s = t.elapsed().as_secs_f64();
    let store_mb = bench.size(&bench.open()?)? as f64 / 1e6;
    eprintln!("[{name}] generated in {gen_s:.1} s ({store_mb:.0} MB on disk)");

    let config = EnergyConfig::default();
    let ctx = Context::new(&config, Catalogue::builtin())?;
    let q = ConsumptionQuery {
        from: from.into(),
        to: to.into(),
        by: GroupBy::Site,
        format: OutputFormat::Json,
        dialect: CsvDialect::Plain,
    };

    let store = bench.open()?;
    let reset = reset_hwm();
    let rss_before = status_kb("VmRSS:").unwrap_or(0);
    let cpu_before = cpu_s();
    let server_before = server_cpu(bench);
    let t = Instant::now();
    let out = reports::consumption_output(
        &store,
        &ctx,
        Some(ORG),
        &q,
        veille_collector::clock::now_ms(),
    )?;
    let report_s = t.elapsed().as_secs_f64();
    let report_cpu_s = cpu_s().zip(cpu_before).map(|(a, b)| a - b);
    // Read while the report's connections are still open (the store is dropped later).
    let server_cpu_s = server_before
        .zip(server_cpu(bench))
        .map(|(b, a)| server_cpu_delta(&b, &a));
    let hwm = status_kb("VmHWM:").unwrap_or(0);
    let json: serde_json::Value = serde_json::from_str(&out)?;
    let report_devices = json["total"]["devices"].as_u64().unwrap_or(0);
    if report_devices != devices {
        bail!("the report counted {report_devices} devices, expected {devices}");
    }
    let hours_on = json["total"]["hours_on"].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "[{name}] report in {report_s:.2} s (CPU {}{}), VmRSS before {} MB, VmHWM {} MB{}",
        report_cpu_s.map_or("unknown".into(), |c| format!("{c:.2} s")),
        server_cpu_s.map_or(String::new(), |c| format!(", server CPU {c:.2} s")),
        rss_before / 1024,
        hwm / 1024,
        if reset {
            " (reset after generation)"
        } else {
            " (includes generation)"
        }
    );

    // Baseline 1: the public API's range scans over the same hours.
    let from_ms = ctx.day_start_ms(from)?;
    let to_ms = ctx.day_start_ms(&next_day(to))?;
    let from_hour = from_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let t = Instant::now();
    let mut awake_ms = 0.0;
    let mut rollups = 0u64;
    for d in store.devices(Some(ORG))? {
        for (_, r) in store.rollups(&d.org, &d.device_id, from_hour, to_ms)? {
            awake_ms += r.awake_ms;
            rollups += 1;
        }
    }
    let api_scan_s = t.elapsed().as_secs_f64();
    drop(store);

    // Baseline 2: the engine's own plain scan of every packed rollup row, a sum() in
    // SQL (includes the days around the period: a little more than the report reads).
    let t = Instant::now();
    let (raw_rows, raw_bytes) = bench.raw_scan()?;
    let raw_scan_s = t.elapsed().as_secs_f64();
    std::hint::black_box(raw_rows);
    let raw_bytes = raw_bytes as u64;

    Ok(Row {
        scenario: name,
        devices,
        rollups,
        store_mb,
        gen_s,
        report_s,
        report_hwm_mb: hwm as f64 / 1024.0,
        report_bytes: out.len(),
        api_scan_s,
        raw_scan_s,
        raw_scan_bytes: raw_bytes,
        check: (hours_on, awake_ms / 3_600_000.0),
    })
}

/// Devices `dev-000000`…, each on one of `--sites` sites, class desktop or laptop,
/// contiguous reports of `--report-hours` from `start_ms` to `end_ms`, a boot session
/// per week ending with SHUTDOWN and one minute off.
fn generate(
    store: &Store,
    args: &Args,
    devices: u64,
    start_ms: i64,
    end_ms: i64,
) -> anyhow::Result<()> {
    let len_ms = args.report_hours * HOUR_MS;
    let max_batch = veille_proto::defaults::MAX_REPORTS_PER_BATCH;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*: deterministic and dependency-free.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let t = Instant::now();
    if args.direct {
        return generate_direct(store, args, devices, start_ms, end_ms, &mut next);
    }
    for d in 0..devices {
        let device_id = format!("dev-{d:06}");
        let mut reports: Vec<Report> = Vec::new();
        let mut seq = 0u64;
        let mut at = start_ms;
        let mut week = 0;
        while at < end_ms {
            let boot_ms = at;
            let week_end = (start_ms + (week + 1) * 7 * DAY_MS).min(end_ms);
            week += 1;
            while at < week_end {
                let end = (at + len_ms).min(week_end);
                let last = end == week_end;
                // A minute off before the next boot: the session's last report ends
                // a minute early.
                let end = if last && end - at > 120_000 {
                    end - 60_000
                } else {
                    end
                };
                let len = (end - at) as u64;
                let r = next();
                let active = len * (r % 400) / 1000;
                let sleep = (len - active) * ((r >> 10) % 300) / 1000;
                seq += 1;
                reports.push(Report {
                    boot_id: format!("b{week}"),
                    seq,
                    start_unix_ms: at,
                    end_unix_ms: end,
                    boot_time_unix_s: boot_ms / 1000,
                    uptime_s: ((at - boot_ms) / 1000) as u64,
                    active_ms: active,
                    idle_ms: len - active - sleep,
                    sleep_ms: sleep,
                    cpu_util: ((r >> 20) % 1000) as f64 / 1000.0,
                    events: if last {
                        vec![Event {
                            kind: EventKind::Shutdown as i32,
                            at_unix_ms: end - 1,
                            count: 1,
                            detail: String::new(),
                        }]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                });
                at = if last { week_end } else { end };
            }
        }
        let mut first = true;
        for chunk in reports.chunks(max_batch) {
            let batch = ReportBatch {
                device_id: device_id.clone(),
                reports: chunk.to_vec(),
                inventory: first.then(|| Inventory {
                    hostname: format!("{device_id}.bench.test"),
                    chassis: if d % 3 == 0 {
                        ChassisClass::Laptop
                    } else {
                        ChassisClass::Desktop
                    } as i32,
                    site: format!("site-{:03}", d % args.sites),
                    tags: vec![format!("floor-{}", d % 7)],
                    ..Default::default()
                }),
                agent_version: "bench".into(),
            };
            first = false;
            store.apply_batch(ORG, &batch, end_ms)?;
        }
        if (d + 1) % 5_000 == 0 {
            eprintln!("  {} devices in {:.1} s", d + 1, t.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// One real week-long boot session start per device (registry, inventory, boot
/// session), then one rollup per hour of the period written directly.
fn generate_direct(
    store: &Store,
    args: &Args,
    devices: u64,
    start_ms: i64,
    end_ms: i64,
    next: &mut impl FnMut() -> u64,
) -> anyhow::Result<()> {
    let t = Instant::now();
    for d in 0..devices {
        let device_id = format!("dev-{d:06}");
        let first = Report {
            boot_id: "b1".into(),
            seq: 1,
            start_unix_ms: start_ms,
            end_unix_ms: start_ms + 60_000,
            boot_time_unix_s: start_ms / 1000,
            idle_ms: 60_000,
            ..Default::default()
        };
        let batch = ReportBatch {
            device_id: device_id.clone(),
            reports: vec![first],
            inventory: Some(Inventory {
                hostname: format!("{device_id}.bench.test"),
                chassis: if d % 3 == 0 {
                    ChassisClass::Laptop
                } else {
                    ChassisClass::Desktop
                } as i32,
                site: format!("site-{:03}", d % args.sites),
                tags: vec![format!("floor-{}", d % 7)],
                ..Default::default()
            }),
            agent_version: "bench".into(),
        };
        store.apply_batch(ORG, &batch, end_ms)?;
        let mut hours = Vec::new();
        let mut h = start_ms;
        while h < end_ms {
            let r = next();
            let active = 3_600_000.0 * ((r % 400) as f64 / 1000.0);
            let sleep = (3_600_000.0 - active) * (((r >> 10) % 300) as f64 / 1000.0);
            let idle = 3_600_000.0 - active - sleep;
            let u = ((r >> 20) % 1000) as f64 / 1000.0;
            hours.push((
                h,
                HourRollup {
                    covered_ms: 3_600_000.0,
                    awake_ms: active + idle,
                    modelled_active_ms: active,
                    modelled_active_util_ms: active * u,
                    modelled_idle_ms: idle,
                    sleep_ms: sleep,
                    ..Default::default()
                },
            ));
            h += HOUR_MS;
        }
        store.put_rollups(ORG, &device_id, &hours)?;
        if (d + 1) % 5_000 == 0 {
            eprintln!("  {} devices in {:.1} s", d + 1, t.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

fn next_day(date: &str) -> String {
    let d: jiff::civil::Date = date.parse().expect("a date");
    d.tomorrow().expect("a next day").to_string()
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false if not allowed.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat` (100 on every
/// architecture Linux exports to user space).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system) of this process, all threads, in seconds: on a shared
/// machine it says what a report costs apart from the time it waited for a core.
fn cpu_s() -> Option<f64> {
    cpu_of("self")
}

/// CPU time (user + system) of process `pid` ("self" for this one), from /proc.
fn cpu_of(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state):
    // utime is field 14, stime 15.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / USER_HZ)
}

/// CPU time of each server process serving the bench's database (PostgreSQL on this
/// machine), by pid: what the server spends on a report is half of its cost on a
/// 2-core machine, and unlike its wall time it does not depend on the load. `None`
/// for the embedded engine, or when the server's processes cannot be read.
fn server_cpu(bench: &Bench) -> Option<std::collections::HashMap<i32, f64>> {
    let Bench::Postgres { url } = bench else {
        return None;
    };
    let mut client = postgres::Client::connect(url, postgres::NoTls).ok()?;
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .ok()?;
    rows.iter()
        .map(|r| {
            let pid: i32 = r.get(0);
            cpu_of(&pid.to_string()).map(|c| (pid, c))
        })
        .collect()
}

/// The server's CPU between two [`server_cpu`] readings (a backend started in between
/// counts from zero).
fn server_cpu_delta(
    before: &std::collections::HashMap<i32, f64>,
    after: &std::collections::HashMap<i32, f64>,
) -> f64 {
    after
        .iter()
        .map(|(pid, c)| c - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<6} {:>8} {:>12} {:>9} {:>8} {:>10} {:>11} {:>10} {:>11} {:>11} {:>9} {:>8}",
        "period",
        "devices",
        "rollups",
        "store MB",
        "gen s",
        "report s",
        "report HWM",
        "json KB",
        "API scan s",
        "raw scan s",
        "raw MB",
        "ratio"
    );
    for r in rows {
        println!(
            "{:<6} {:>8} {:>12} {:>9.0} {:>8.1} {:>10.3} {:>8.0} MB {:>10.1} {:>11.3} {:>11.3} {:>9.1} {:>7.1}×",
            r.scenario,
            r.devices,
            r.rollups,
            r.store_mb,
            r.gen_s,
            r.report_s,
            r.report_hwm_mb,
            r.report_bytes as f64 / 1024.0,
            r.api_scan_s,
            r.raw_scan_s,
            r.raw_scan_bytes as f64 / 1e6,
            r.report_s / r.raw_scan_s.max(1e-9),
        );
    }
    for r in rows {
        println!(
            "check {}: report hours_on {:.1} vs API scan awake hours {:.1}",
            r.scenario, r.check.0, r.check.1
        );
    }
    println!(
        "ratio = report time / raw scan time. report HWM: VmHWM after the report (reset \
         after generation when /proc/self/clear_refs allows it; includes the store's page cache)."
    );
}
