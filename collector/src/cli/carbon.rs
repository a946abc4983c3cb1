//! `import carbon`: hourly grid carbon intensity from RTE éCO2mix downloads or plain
//! `timestamp;gCO2eq/kWh` files into the store, per zone. Every file is parsed before
//! anything is stored: one broken line (named by file, line and column) stores nothing.

use std::path::PathBuf;

use clap::Args;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use veille_domain::energy::intensity::{self, IntensityError};

use crate::cli::ConfigArgs;
use crate::config::ConfigError;
use crate::store::StoreError;
use crate::store::intensity::{intensity_between, put_intensity};

#[derive(Debug, Clone, Args)]
pub struct ImportCarbonArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The zone these intensities are for, as `[energy] grid_zone` and
    /// `site_grid_zones` name it (e.g. `FR` for the national file, `ARA` for a region's).
    #[arg(long)]
    pub zone: String,
    /// Time zone of local times in the files (éCO2mix downloads are in French local
    /// time; ODRÉ CSVs and times with an offset ignore it).
    #[arg(long, default_value = "Europe/Paris")]
    pub timezone: String,
    /// Parse and summarise, store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// éCO2mix downloads (`.xls`: tab-separated text), ODRÉ CSVs, or two-column
    /// `timestamp;gCO2eq/kWh` files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CarbonImportError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}; nothing stored", path.display())]
    Parse {
        path: PathBuf,
        source: IntensityError,
    },
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CarbonImportError {
    /// The operator's input is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Usage(_) | Self::Parse { .. } | Self::Config(_) | Self::Read { .. }
        )
    }
}

/// A zone names a file's scope in config keys: short, printable, no separators.
fn check_zone(zone: &str) -> Result<(), CarbonImportError> {
    let ok = !zone.is_empty()
        && zone.len() <= 32
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CarbonImportError::Usage(format!(
            "--zone {zone:?}: 1-32 letters, digits, '-' or '_'"
        )))
    }
}

fn utc(ms: i64) -> String {
    Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

pub fn import_carbon(a: ImportCarbonArgs) -> Result<String, CarbonImportError> {
    check_zone(&a.zone)?;
    let tz = TimeZone::get(&a.timezone)
        .map_err(|e| CarbonImportError::Usage(format!("--timezone {:?}: {e}", a.timezone)))?;
    let config = a.config.load_config()?;
    let mut out = String::new();
    let mut all: Vec<(i64, f64)> = Vec::new();
    for path in &a.files {
        let bytes = std::fs::read(path).map_err(|source| CarbonImportError::Read {
            path: path.clone(),
            source,
        })?;
        let p = intensity::parse(&bytes, &tz).map_err(|source| CarbonImportError::Parse {
            path: path.clone(),
            source,
        })?;
        let (min, max, sum) = p.hours.iter().fold(
            (f64::INFINITY, f64::NEG_INFINITY, 0.0),
            |(lo, hi, s), &(_, g)| (lo.min(g), hi.max(g), s + g),
        );
        out.push_str(&format!(
            "{}: {:?}, {} samples ({} empty), {} hours {} – {}, mean {:.1} g/kWh (min {:.1}, max {:.1})\n",
            path.display(),
            p.layout,
            p.samples,
            p.empty,
            p.hours.len(),
            utc(p.hours[0].0),
            utc(p.hours[p.hours.len() - 1].0),
            sum / p.hours.len() as f64,
            min,
            max
        ));
        all.extend(p.hours);
    }
    // Files given together may overlap (real-time then consolidated): the later file's
    // hour wins, as a later import would.
    all.reverse();
    all.sort_by_key(|&(h, _)| h);
    all.dedup_by_key(|&mut (h, _)| h);
    if a.dry_run {
        out.push_str(&format!(
            "dry run: {} hours for zone {:?}, nothing stored\n",
            all.len(),
            a.zone
        ));
        return Ok(out);
    }
    let store = config.open_store()?;
    put_intensity(&store, &a.zone, &all)?;
    let held = intensity_between(&store, &a.zone, i64::MIN, i64::MAX)?;
    out.push_str(&format!(
        "stored {} hours for zone {:?}; it now holds {} hours, {} – {}\n",
        all.len(),
        a.zone,
        held.len(),
        held.first().map_or_else(String::new, |h| utc(h.0)),
        held.last().map_or_else(String::new, |h| utc(h.0)),
    ));
    let used = config.energy.grid_zone == a.zone
        || config.energy.site_grid_zones.values().any(|z| *z == a.zone)
        || config.orgs.iter().any(|o| {
            o.energy.as_ref().is_some_and(|e| {
                e.grid_zone.as_deref() == Some(a.zone.as_str())
                    || e.site_grid_zones
                        .as_ref()
                        .is_some_and(|m| m.values().any(|z| *z == a.zone))
            })
        });
    if !used {
        out.push_str(&format!(
            "note: no `grid_zone` or `site_grid_zones` in the configuration names {:?}: reports do not use it yet\n",
            a.zone
        ));
    }
    Ok(out)
}
