//! `veille-collector export --from D --to D --out DIR [--format csv|parquet]`: the raw
//! reports and the hourly rollups of a period as files, for archives and for an energy
//! manager's data team (any tool reads CSV or Parquet; the store's own packed rows are
//! not for them).
//!
//! Two files per run, `reports.<csv|parquet>` and `rollups.<csv|parquet>` (one row per
//! report, one per device-hour), with the same columns in both formats
//! ([`REPORT_COLUMNS`], [`ROLLUP_COLUMNS`]), each written to a temporary name and
//! renamed when complete: an interrupted export leaves no half file under the final
//! name. Times are Unix ms and
//! UTC ISO 8601 both; the period is in the collector's time zone (`[energy] timezone`),
//! `--to` inclusive, like the reports.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use jiff::Timestamp;
use tracing::info;

use crate::cli::ConfigArgs;
use crate::cli::parquet::{Kind, Table, Value};
use crate::config::Config;
use crate::store::{Store, StoreError};
use veille_domain::energy::rollup::{HOUR_MS, HourRollup};
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
    /// Directory to write `reports.<format>` and `rollups.<format>` into (created if
    /// missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only this org's devices (default: every org).
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// File format: csv, or parquet (typed columns, snappy-compressed; read by
    /// DuckDB, pandas, Spark, R's arrow).
    #[arg(long, value_name = "FORMAT", default_value = "csv")]
    pub format: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("format {0:?}: expected csv or parquet")]
    Format(String),
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
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
    let format = Format::parse(&args.format)?;
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
    let out = export(
        &store,
        args.org.as_deref(),
        from_ms,
        to_ms,
        &args.out,
        format,
    )?;
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

/// The columns of `reports.*`, in order: the CSV header and the Parquet schema.
pub const REPORT_COLUMNS: [(&str, Kind); 16] = [
    ("org", Kind::Text),
    ("device_id", Kind::Text),
    ("seq", Kind::UInt),
    ("boot_id", Kind::Text),
    ("start_unix_ms", Kind::Int),
    ("start_utc", Kind::Text),
    ("end_unix_ms", Kind::Int),
    ("boot_time_unix_s", Kind::Int),
    ("uptime_s", Kind::UInt),
    ("active_ms", Kind::UInt),
    ("idle_ms", Kind::UInt),
    ("sleep_ms", Kind::UInt),
    ("activity_rule", Kind::Int32),
    ("cpu_util", Kind::Float),
    ("measured_j", Kind::Float),
    ("events", Kind::Text),
];

/// The columns of `rollups.*`, in order.
pub const ROLLUP_COLUMNS: [(&str, Kind); 15] = [
    ("org", Kind::Text),
    ("device_id", Kind::Text),
    ("hour_unix_ms", Kind::Int),
    ("hour_utc", Kind::Text),
    ("covered_ms", Kind::Float),
    ("awake_ms", Kind::Float),
    ("measured_ms", Kind::Float),
    ("measured_j", Kind::Float),
    ("modelled_active_ms", Kind::Float),
    ("modelled_active_util_ms", Kind::Float),
    ("modelled_idle_ms", Kind::Float),
    ("sleep_ms", Kind::Float),
    ("cpu_dram_j", Kind::Float),
    ("cpu_dram_ms", Kind::Float),
    ("measured_active_ms", Kind::Float),
];

/// The files' format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self, ExportError> {
        match s {
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            _ => Err(ExportError::Format(s.to_owned())),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }
}

/// One output file, under its temporary name until [`Sink::finish`].
enum Sink {
    Csv(std::io::BufWriter<std::fs::File>),
    Parquet(Box<Table>),
}

impl Sink {
    fn create(
        format: Format,
        tmp: &Path,
        name: &str,
        columns: &[(&str, Kind)],
    ) -> Result<Self, ExportError> {
        let file = std::fs::File::create(tmp).map_err(|source| ExportError::Io {
            path: tmp.to_owned(),
            source,
        })?;
        match format {
            Format::Csv => {
                let mut w = std::io::BufWriter::new(file);
                let header: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
                writeln!(w, "{}", header.join(",")).map_err(|source| ExportError::Io {
                    path: tmp.to_owned(),
                    source,
                })?;
                Ok(Self::Csv(w))
            }
            Format::Parquet => Table::create(file, name, columns)
                .map(|t| Self::Parquet(Box::new(t)))
                .map_err(|source| ExportError::Parquet {
                    path: tmp.to_owned(),
                    source,
                }),
        }
    }

    fn row(&mut self, tmp: &Path, values: Vec<Value>) -> Result<(), ExportError> {
        match self {
            Self::Csv(w) => {
                let cells: Vec<String> = values
                    .iter()
                    .map(|v| match v {
                        Value::Text(s) => csv(s),
                        Value::Int(i) => i.to_string(),
                        Value::UInt(u) => u.to_string(),
                        Value::Int32(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                    })
                    .collect();
                writeln!(w, "{}", cells.join(",")).map_err(|source| ExportError::Io {
                    path: tmp.to_owned(),
                    source,
                })
            }
            Self::Parquet(t) => t.push(values).map_err(|source| ExportError::Parquet {
                path: tmp.to_owned(),
                source,
            }),
        }
    }

    /// Completes the file, syncs it and renames it to `path`.
    fn finish(self, tmp: &Path, path: &Path) -> Result<(), ExportError> {
        let err = |source| ExportError::Io {
            path: tmp.to_owned(),
            source,
        };
        let file = match self {
            Self::Csv(w) => w.into_inner().map_err(|e| err(e.into_error()))?,
            Self::Parquet(t) => t.finish().map_err(|source| ExportError::Parquet {
                path: tmp.to_owned(),
                source,
            })?,
        };
        file.sync_all().map_err(err)?;
        std::fs::rename(tmp, path).map_err(|source| ExportError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// Writes the reports starting in `[from_ms, to_ms)` and the rollups of the hours
/// starting in it, of `org` (all with `None`), into `dir` as `format`.
pub fn export(
    store: &Store,
    org: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    dir: &Path,
    format: Format,
) -> Result<Exported, ExportError> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let ext = format.extension();
    let mut out = Exported::default();

    let reports_path = dir.join(format!("reports.{ext}"));
    let tmp = dir.join(format!(".reports.{ext}.partial"));
    let mut sink = Sink::create(format, &tmp, "reports", &REPORT_COLUMNS)?;
    let devices = store.devices(org)?;
    for (i, d) in devices.iter().enumerate() {
        for r in store.reports_between(&d.org, &d.device_id, from_ms, to_ms)? {
            sink.row(&tmp, report_row(&d.org, &d.device_id, &r))?;
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
    sink.finish(&tmp, &reports_path)?;

    let rollups_path = dir.join(format!("rollups.{ext}"));
    let tmp = dir.join(format!(".rollups.{ext}.partial"));
    let mut sink = Sink::create(format, &tmp, "rollups", &ROLLUP_COLUMNS)?;
    let from_hour = from_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let mut failed = None;
    store.rollups_of_fleet(org, from_hour, to_ms, |o, d, hours| {
        for (hour, r) in hours {
            if failed.is_none()
                && let Err(e) = sink.row(&tmp, rollup_row(o, d, hour, &r))
            {
                failed = Some(e);
            }
            out.rollups += 1;
        }
        Ok(())
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    sink.finish(&tmp, &rollups_path)?;
    info!(reports = out.reports, rollups = out.rollups, devices = out.devices, dir = %dir.display(), "export written");
    Ok(out)
}

/// A report as a row of [`REPORT_COLUMNS`].
fn report_row(org: &str, device: &str, r: &Report) -> Vec<Value> {
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
    vec![
        Value::Text(org.to_owned()),
        Value::Text(device.to_owned()),
        Value::UInt(r.seq),
        Value::Text(r.boot_id.clone()),
        Value::Int(r.start_unix_ms),
        Value::Text(utc(r.start_unix_ms)),
        Value::Int(r.end_unix_ms),
        Value::Int(r.boot_time_unix_s),
        Value::UInt(r.uptime_s),
        Value::UInt(r.active_ms),
        Value::UInt(r.idle_ms),
        Value::UInt(r.sleep_ms),
        Value::Int32(r.activity_rule),
        Value::Float(r.cpu_util),
        Value::Float(measured_j),
        Value::Text(events.join(" ")),
    ]
}

/// A device-hour's rollup as a row of [`ROLLUP_COLUMNS`].
fn rollup_row(org: &str, device: &str, hour: i64, r: &HourRollup) -> Vec<Value> {
    vec![
        Value::Text(org.to_owned()),
        Value::Text(device.to_owned()),
        Value::Int(hour),
        Value::Text(utc(hour)),
        Value::Float(r.covered_ms),
        Value::Float(r.awake_ms),
        Value::Float(r.measured_ms),
        Value::Float(r.measured_j),
        Value::Float(r.modelled_active_ms),
        Value::Float(r.modelled_active_util_ms),
        Value::Float(r.modelled_idle_ms),
        Value::Float(r.sleep_ms),
        Value::Float(r.cpu_dram_j),
        Value::Float(r.cpu_dram_ms),
        Value::Float(r.measured_active_ms),
    ]
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
        let out = export(&store, None, T0, T0 + 24 * HOUR_MS, &out_dir, Format::Csv).unwrap();
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

    /// Each Parquet row, rendered as the CSV renders values.
    fn parquet_as_csv(path: &Path) -> (Vec<String>, Vec<String>) {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let names = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let rows = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                let row = row.unwrap();
                let cells: Vec<String> = row
                    .get_column_iter()
                    .map(|(_, f)| match f {
                        Field::Str(s) => csv(s),
                        Field::Long(i) => i.to_string(),
                        Field::ULong(u) => u.to_string(),
                        Field::Int(i) => i.to_string(),
                        Field::Double(d) => d.to_string(),
                        other => panic!("unexpected field {other:?}"),
                    })
                    .collect();
                cells.join(",")
            })
            .collect();
        (names, rows)
    }

    #[test]
    fn parquet_holds_the_csv_rows_typed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        // Two devices, several hours, a report with events and a quoted boot id, odd
        // values (a fractional cpu_util, a large seq).
        for (dev, first_seq) in [("pc,1", 7u64), ("pc-2", u64::from(u32::MAX) + 3)] {
            let mut reports: Vec<Report> = (0..30)
                .map(|i| report(first_seq + i, T0 + i as i64 * 1_800_000))
                .collect();
            reports[3].cpu_util = 0.123;
            reports[4].events.push(Event {
                kind: EventKind::AgentStop as i32,
                at_unix_ms: T0 + 4 * 1_800_000 + 5,
                count: 1,
                detail: String::new(),
            });
            let batch = ReportBatch {
                device_id: dev.into(),
                reports,
                ..Default::default()
            };
            store.apply_batch("acme", &batch, T0).unwrap();
        }
        let (csv_dir, pq_dir) = (dir.path().join("csv"), dir.path().join("pq"));
        let period = (T0, T0 + 24 * HOUR_MS);
        let a = export(&store, None, period.0, period.1, &csv_dir, Format::Csv).unwrap();
        let b = export(&store, None, period.0, period.1, &pq_dir, Format::Parquet).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.reports, a.rollups), (60, 30));
        for name in ["reports", "rollups"] {
            let text = std::fs::read_to_string(csv_dir.join(format!("{name}.csv"))).unwrap();
            let mut lines = text.lines().map(str::to_owned);
            let header = lines.next().unwrap();
            let (columns, rows) = parquet_as_csv(&pq_dir.join(format!("{name}.parquet")));
            assert_eq!(columns.join(","), header, "{name}");
            assert_eq!(rows, lines.collect::<Vec<_>>(), "{name}");
            assert!(!pq_dir.join(format!(".{name}.parquet.partial")).exists());
        }
    }

    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("plain"), "plain");
    }
}
