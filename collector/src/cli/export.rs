//! `veille-collector export --from D --to D --out DIR`: the raw reports and the hourly
//! rollups of a period as files, for archives and for an energy manager's data team
//! (any tool reads CSV; the store's own packed rows are not for them).
//!
//! Two files per run, `reports.csv` and `rollups.csv` (one row per report, one per
//! device-hour), each written to a temporary name and renamed when complete: an
//! interrupted export leaves no half file under the final name. Times are Unix ms and
//! UTC ISO 8601 both; the period is in the collector's time zone (`[energy] timezone`),
//! `--to` inclusive, like the reports.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use jiff::Timestamp;
use tracing::info;

use crate::cli::ConfigArgs;
use crate::config::Config;
use crate::store::{Store, StoreError};
use veille_domain::energy::rollup::HOUR_MS;
use veille_proto::v1::{EventKind, Report};

/// Devices between two progress lines in the log.
const PROGRESS_EVERY_DEVICES: usize = 1_000;

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// First day, YYYY-MM-DD (in the collector's time zone).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day, inclusive.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// Directory to write `reports.csv` and `rollups.csv` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only this org's devices (default: every org).
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// File format. Only csv for now.
    #[arg(long, value_name = "FORMAT", default_value = "csv")]
    pub format: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("format {0:?}: this version writes csv")]
    Format(String),
    #[error("period: {0}")]
    Period(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ExportError {
    /// A mistake in the command line (exit 2), not a failure of the store or disk.
    pub fn is_usage(&self) -> bool {
        matches!(self, ExportError::Format(_) | ExportError::Period(_))
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    pub devices: usize,
    pub reports: u64,
    pub rollups: u64,
}

/// Runs `export` with `config`; returns the summary line.
pub fn run(config: &Config, args: &ExportArgs) -> Result<String, ExportError> {
    if args.format != "csv" {
        return Err(ExportError::Format(args.format.clone()));
    }
    let ctx = crate::reports::context(config).map_err(|e| ExportError::Period(e.to_string()))?;
    let from_ms = ctx
        .day_start_ms(&args.from)
        .map_err(|e| ExportError::Period(format!("--from: {e}")))?;
    let to_ms = ctx
        .day_start_ms(&next_day(&args.to).map_err(ExportError::Period)?)
        .map_err(|e| ExportError::Period(format!("--to: {e}")))?;
    if to_ms <= from_ms {
        return Err(ExportError::Period(format!(
            "--to {} is before --from {}",
            args.to, args.from
        )));
    }
    let store = config.open_store()?;
    let out = export(&store, args.org.as_deref(), from_ms, to_ms, &args.out)?;
    Ok(format!(
        "exported {} reports and {} hourly rollups of {} devices to {}",
        out.reports,
        out.rollups,
        out.devices,
        args.out.display()
    ))
}

fn next_day(date: &str) -> Result<String, String> {
    let d: jiff::civil::Date = date
        .parse()
        .map_err(|e| format!("--to {date:?}: expected YYYY-MM-DD ({e})"))?;
    d.tomorrow()
        .map(|d| d.to_string())
        .map_err(|e| format!("--to {date:?}: {e}"))
}

/// Writes the reports starting in `[from_ms, to_ms)` and the rollups of the hours
/// starting in it, of `org` (all with `None`), into `dir`.
pub fn export(
    store: &Store,
    org: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    dir: &Path,
) -> Result<Exported, ExportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut out = Exported::default();

    let reports_path = dir.join("reports.csv");
    let tmp = dir.join(".reports.csv.partial");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
    writeln!(
        w,
        "org,device_id,seq,boot_id,start_unix_ms,start_utc,end_unix_ms,boot_time_unix_s,\
         uptime_s,active_ms,idle_ms,sleep_ms,activity_rule,cpu_util,measured_j,events"
    )
    .map_err(io(&tmp))?;
    let devices = store.devices(org)?;
    for (i, d) in devices.iter().enumerate() {
        for r in store.reports_between(&d.org, &d.device_id, from_ms, to_ms)? {
            write_report(&mut w, &d.org, &d.device_id, &r).map_err(io(&tmp))?;
            out.reports += 1;
        }
        if (i + 1) % PROGRESS_EVERY_DEVICES == 0 {
            info!(
                devices = i + 1,
                of = devices.len(),
                reports = out.reports,
                "exporting reports…"
            );
        }
    }
    out.devices = devices.len();
    finish(w, &tmp, &reports_path)?;

    let rollups_path = dir.join("rollups.csv");
    let tmp = dir.join(".rollups.csv.partial");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
    writeln!(
        w,
        "org,device_id,hour_unix_ms,hour_utc,covered_ms,awake_ms,measured_ms,measured_j,\
         modelled_active_ms,modelled_active_util_ms,modelled_idle_ms,sleep_ms,cpu_dram_j,\
         cpu_dram_ms,measured_active_ms"
    )
    .map_err(io(&tmp))?;
    let from_hour = from_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let mut failed = None;
    store.rollups_of_fleet(org, from_hour, to_ms, |o, d, hours| {
        for (hour, r) in hours {
            let line = format!(
                "{},{},{hour},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv(o),
                csv(d),
                utc(hour),
                r.covered_ms,
                r.awake_ms,
                r.measured_ms,
                r.measured_j,
                r.modelled_active_ms,
                r.modelled_active_util_ms,
                r.modelled_idle_ms,
                r.sleep_ms,
                r.cpu_dram_j,
                r.cpu_dram_ms,
                r.measured_active_ms
            );
            if let Err(e) = writeln!(w, "{line}") {
                failed.get_or_insert(e);
            }
            out.rollups += 1;
        }
        Ok(())
    })?;
    if let Some(e) = failed {
        return Err(ExportError::Io {
            path: tmp,
            source: e,
        });
    }
    finish(w, &tmp, &rollups_path)?;
    info!(reports = out.reports, rollups = out.rollups, devices = out.devices, dir = %dir.display(), "export written");
    Ok(out)
}

fn finish(
    mut w: std::io::BufWriter<std::fs::File>,
    tmp: &Path,
    path: &Path,
) -> Result<(), ExportError> {
    let err = |source| ExportError::Io {
        path: tmp.to_owned(),
        source,
    };
    w.flush().map_err(err)?;
    w.get_ref().sync_all().map_err(err)?;
    std::fs::rename(tmp, path).map_err(|source| ExportError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_report(w: &mut impl Write, org: &str, device: &str, r: &Report) -> std::io::Result<()> {
    // fold from +0.0: an empty f64 sum is -0.0, printed "-0".
    let measured_j = r.measurements.iter().fold(0.0, |a, m| a + m.energy_j);
    let events: Vec<String> = r
        .events
        .iter()
        .map(|e| {
            let kind = EventKind::try_from(e.kind)
                .map(|k| k.as_str_name().to_owned())
                .unwrap_or_else(|_| e.kind.to_string());
            format!("{kind}@{}", e.at_unix_ms)
        })
        .collect();
    writeln!(
        w,
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        csv(org),
        csv(device),
        r.seq,
        csv(&r.boot_id),
        r.start_unix_ms,
        utc(r.start_unix_ms),
        r.end_unix_ms,
        r.boot_time_unix_s,
        r.uptime_s,
        r.active_ms,
        r.idle_ms,
        r.sleep_ms,
        r.activity_rule,
        r.cpu_util,
        measured_j,
        csv(&events.join(" "))
    )
}

fn utc(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A CSV field, quoted when it holds a separator, a quote or a line break.
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::{Event, ReportBatch};

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn report(seq: u64, start: i64) -> Report {
        Report {
            boot_id: "b,1".into(),
            seq,
            start_unix_ms: start,
            end_unix_ms: start + 1_800_000,
            boot_time_unix_s: T0 / 1000,
            uptime_s: 60,
            active_ms: 600_000,
            idle_ms: 1_200_000,
            cpu_util: 0.25,
            ..Default::default()
        }
    }

    #[test]
    fn the_period_s_reports_and_rollups_are_written_whole_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let mut inside = report(2, T0 + 3_600_000);
        inside.events.push(Event {
            kind: EventKind::Shutdown as i32,
            at_unix_ms: T0 + 5_000_000,
            count: 1,
            detail: String::new(),
        });
        let batch = ReportBatch {
            device_id: "pc-1".into(),
            reports: vec![
                report(1, T0 - 3_600_000),
                inside,
                report(3, T0 + 2 * HOUR_MS * 24),
            ],
            ..Default::default()
        };
        store.apply_batch("acme", &batch, T0).unwrap();
        let out_dir = dir.path().join("out");
        let out = export(&store, None, T0, T0 + 24 * HOUR_MS, &out_dir).unwrap();
        assert_eq!(
            out,
            Exported {
                devices: 1,
                reports: 1,
                rollups: 1
            }
        );
        let reports = std::fs::read_to_string(out_dir.join("reports.csv")).unwrap();
        let lines: Vec<&str> = reports.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("acme,pc-1,2,\"b,1\","), "{}", lines[1]);
        assert!(lines[1].contains("2026-01-01T01:00:00Z"), "{}", lines[1]);
        assert!(
            lines[1].ends_with(",0.25,0,SHUTDOWN@1767230600000"),
            "{}",
            lines[1]
        );
        let rollups = std::fs::read_to_string(out_dir.join("rollups.csv")).unwrap();
        let lines: Vec<&str> = rollups.lines().collect();
        assert_eq!(lines.len(), 2, "{rollups}");
        assert!(
            lines[1].starts_with("acme,pc-1,1767229200000,2026-01-01T01:00:00Z,1800000,1800000,"),
            "{}",
            lines[1]
        );
        assert!(!out_dir.join(".reports.csv.partial").exists());
    }

    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("plain"), "plain");
    }
}
