//! Utility load curves: an Enedis-style export of average power per 30-minute step →
//! points in W, with duplicates dropped, conflicts refused and gaps reported
//! (`import meters FILE`, issue 8).
//!
//! # Accepted format
//! What Enedis's customer portal ("Mes données / suivi de mesures", courbe de charge)
//! exports, as seen in public parsers and their test files:
//! ```text
//! Identifiant PRM;Type de donnees;Date de debut;Date de fin;Grandeur physique;Grandeur metier;Etape metier;Unite
//! 12345678901234;Courbe de charge;15/01/2024;17/01/2024;Energie active;Consommation;Comptage Brut;W
//! Horodate;Valeur
//! 2024-01-15T00:30:00+01:00;1200
//! 2024-01-15T01:00:00+01:00;
//! ```
//! and simpler two-column files: `Horodate;Valeur (kW)`, `timestamp,power (W)`,
//! `horodate ISO fin de pas;puissance moyenne (W)`.
//! - Encoding: UTF-8 with or without BOM; a file that is not UTF-8 is read as Latin-1
//!   (Excel's French re-saves). Line ends `\n` or `\r\n`; blank lines are skipped.
//! - The header is the first line whose first field starts with `horodate`,
//!   `timestamp`, `date` or `time`; its delimiter (`;` if it has one, else `,`) is the
//!   file's. Lines before it are metadata; a metadata line with a `Unite`/`Unité`
//!   column gives the unit in the same column of the next line.
//! - Unit: `W` or `kW`, from the value column's header (`Valeur (kW)`, `power W`) or
//!   the metadata; if the file does not say, the caller must pass it
//!   ([`LoadCurveOptions::unit`]); if both say and disagree, it is an error. Energy
//!   units (Wh, kWh) are refused: this module reads average power.
//! - Data: `timestamp<delim>value[<delim>ignored…]`. The timestamp is ISO 8601 with its
//!   UTC offset (`2024-01-15T00:30:00+01:00`; `Z` too), and marks the **end** of the
//!   step (Enedis's convention: the first point of a day, 00:30, covers 00:00–00:30).
//!   A local time without offset is refused: around DST it is ambiguous. The value is
//!   a number (a decimal comma is accepted with `;`); an empty value is a missing step
//!   (Enedis writes those), reported in the gaps.
//!
//! Duplicate lines (same timestamp, same value: overlapping exports) are ignored and
//! listed; the same timestamp with another value is an error naming both lines. Any
//! broken line is an error naming its line and column: nothing is returned, so a file is
//! imported whole or not at all.
//!
//! Pure: bytes in, values out.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

/// The unit of a load curve's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PowerUnit {
    W,
    #[serde(rename = "kW")]
    KW,
}

impl PowerUnit {
    fn to_w(self, v: f64) -> f64 {
        match self {
            PowerUnit::W => v,
            PowerUnit::KW => v * 1_000.0,
        }
    }
}

impl std::fmt::Display for PowerUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PowerUnit::W => "W",
            PowerUnit::KW => "kW",
        })
    }
}

/// Where the unit came from, for the import summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitSource {
    File,
    Caller,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadCurveOptions {
    /// The unit when the file does not say; checked against the file when it does.
    pub unit: Option<PowerUnit>,
    /// The step, in minutes (Enedis: 30 by default; 10 or 60 on some meters).
    pub step_minutes: u32,
}

impl Default for LoadCurveOptions {
    fn default() -> Self {
        LoadCurveOptions {
            unit: None,
            step_minutes: 30,
        }
    }
}

/// One step's average power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadPoint {
    /// Start of the step, Unix ms (the file's timestamp minus the step).
    pub start_ms: i64,
    /// End of the step, Unix ms: the file's timestamp.
    pub end_ms: i64,
    /// Average power over the step, W.
    pub power_w: f64,
    /// 1-based line in the file.
    pub line: usize,
}

/// Missing steps between two points: `[from_ms, to_ms)` has no data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub from_ms: i64,
    pub to_ms: i64,
    pub missing_steps: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadCurve {
    pub unit: PowerUnit,
    pub unit_source: UnitSource,
    /// Sorted by time, one per step.
    pub points: Vec<LoadPoint>,
    /// Lines ignored because an identical line came before them.
    pub duplicate_lines: Vec<usize>,
    /// Lines with a timestamp and an empty value (a step the meter did not record).
    pub empty_lines: Vec<usize>,
    /// Missing steps between the first and the last point, in time order.
    pub gaps: Vec<Gap>,
}

impl LoadCurve {
    /// Energy over the points present, kWh (average W × step).
    pub fn energy_kwh(&self) -> f64 {
        self.points
            .iter()
            .map(|p| p.power_w * (p.end_ms - p.start_ms) as f64 / 3_600_000.0 / 1_000.0)
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadCurveError {
    #[error(
        "no header line (a first field starting with Horodate, timestamp, date or time) was found"
    )]
    NoHeader,
    #[error("no data lines after the header (line {header_line})")]
    Empty { header_line: usize },
    #[error("the file does not say whether values are W or kW: pass the unit")]
    NoUnit,
    #[error("line {line}: unit {found:?}: expected W or kW (average power){hint}")]
    UnknownUnit {
        line: usize,
        found: String,
        hint: &'static str,
    },
    #[error("the file says {file} but {caller} was given")]
    UnitMismatch { file: PowerUnit, caller: PowerUnit },
    #[error("line {line}, column {column}: {reason}")]
    Parse {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error(
        "lines {first_line} and {second_line}: same timestamp {timestamp} with different values ({first_value} and {second_value})"
    )]
    Conflict {
        first_line: usize,
        second_line: usize,
        timestamp: String,
        first_value: String,
        second_value: String,
    },
    #[error(
        "lines {first_line} and {second_line}: {minutes} min apart, shorter than the {step} min step (another step in the file?)"
    )]
    Step {
        first_line: usize,
        second_line: usize,
        minutes: f64,
        step: u32,
    },
    #[error("step_minutes must be at least 1")]
    BadStep,
}

/// Decodes the file: UTF-8 (BOM stripped), else Latin-1.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

fn fold(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .replace(['é', 'è', 'ê'], "e")
        .replace('\u{a0}', " ")
}

fn is_header(first_field: &str) -> bool {
    let f = fold(first_field);
    ["horodate", "timestamp", "date", "time"]
        .iter()
        .any(|p| f.starts_with(p))
}

/// The unit a header or metadata field names, if any: `Ok(None)` when it names none.
fn unit_in(field: &str, line: usize) -> Result<Option<PowerUnit>, LoadCurveError> {
    let f = fold(field);
    let tokens: Vec<&str> = f
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.iter().any(|t| *t == "wh" || *t == "kwh") {
        return Err(LoadCurveError::UnknownUnit {
            line,
            found: field.trim().to_owned(),
            hint: ": this is energy per step, not average power",
        });
    }
    if tokens.contains(&"kw") {
        return Ok(Some(PowerUnit::KW));
    }
    if tokens.contains(&"w") {
        return Ok(Some(PowerUnit::W));
    }
    Ok(None)
}

/// 1-based character column where field `index` of `line` starts.
fn column_of(line: &str, delim: char, index: usize) -> usize {
    let mut col = 1;
    for (i, field) in line.split(delim).enumerate() {
        if i == index {
            return col;
        }
        col += field.chars().count() + 1;
    }
    col
}

/// Parses a load-curve export (see the module documentation for what is accepted).
pub fn parse_load_curve(
    bytes: &[u8],
    opts: &LoadCurveOptions,
) -> Result<LoadCurve, LoadCurveError> {
    if opts.step_minutes == 0 {
        return Err(LoadCurveError::BadStep);
    }
    let step_ms = i64::from(opts.step_minutes) * 60_000;
    let text = decode(bytes);
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .collect();

    // Metadata and header.
    let mut file_unit: Option<(PowerUnit, usize)> = None;
    let mut header: Option<(usize, char)> = None;
    let mut idx = 0;
    while idx < lines.len() {
        let (n, l) = lines[idx];
        let delim = if l.contains(';') { ';' } else { ',' };
        let fields: Vec<&str> = l.split(delim).collect();
        if fields.len() >= 2 && is_header(fields[0]) {
            if let Some(u) = unit_in(fields[1], n)? {
                merge_unit(&mut file_unit, u, n)?;
            }
            header = Some((idx, delim));
            break;
        }
        if let Some(col) = fields
            .iter()
            .position(|f| matches!(fold(f).as_str(), "unite" | "unit"))
            && let Some(&(n2, next)) = lines.get(idx + 1)
        {
            let value = next.split(delim).nth(col).unwrap_or("");
            if !value.trim().is_empty() {
                match unit_in(value, n2)? {
                    Some(u) => merge_unit(&mut file_unit, u, n2)?,
                    None => {
                        return Err(LoadCurveError::UnknownUnit {
                            line: n2,
                            found: value.trim().to_owned(),
                            hint: "",
                        });
                    }
                }
            }
        }
        idx += 1;
    }
    let (header_idx, delim) = header.ok_or(LoadCurveError::NoHeader)?;
    let (unit, unit_source) = match (file_unit, opts.unit) {
        (Some((f, _)), Some(c)) if f != c => {
            return Err(LoadCurveError::UnitMismatch { file: f, caller: c });
        }
        (Some((f, _)), _) => (f, UnitSource::File),
        (None, Some(c)) => (c, UnitSource::Caller),
        (None, None) => return Err(LoadCurveError::NoUnit),
    };

    // Data.
    let mut by_end: BTreeMap<i64, (usize, f64, String)> = BTreeMap::new();
    let mut duplicate_lines = Vec::new();
    let mut empty_lines = Vec::new();
    let mut any_data = false;
    for &(n, l) in &lines[header_idx + 1..] {
        if l.trim().is_empty() {
            continue;
        }
        any_data = true;
        let fields: Vec<&str> = l.split(delim).collect();
        let parse_err = |index: usize, reason: String| LoadCurveError::Parse {
            line: n,
            column: column_of(l, delim, index),
            reason,
        };
        let ts_raw = fields[0].trim();
        let ts: Timestamp = ts_raw.parse().map_err(|e: jiff::Error| {
            parse_err(
                0,
                format!("timestamp {ts_raw:?}: expected ISO 8601 with a UTC offset ({e})"),
            )
        })?;
        let Some(raw_value) = fields.get(1).map(|v| v.trim()) else {
            return Err(parse_err(
                1,
                format!("expected timestamp{delim}value, found one field"),
            ));
        };
        if raw_value.is_empty() {
            empty_lines.push(n);
            continue;
        }
        let normalised = if delim == ';' {
            raw_value.replace(',', ".")
        } else {
            raw_value.to_owned()
        };
        let value: f64 = normalised
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| parse_err(1, format!("value {raw_value:?} is not a number")))?;
        let end_ms = ts.as_millisecond();
        match by_end.get(&end_ms) {
            Some((first_line, first_value, first_raw)) => {
                if *first_value == value {
                    duplicate_lines.push(n);
                } else {
                    return Err(LoadCurveError::Conflict {
                        first_line: *first_line,
                        second_line: n,
                        timestamp: ts_raw.to_owned(),
                        first_value: first_raw.clone(),
                        second_value: raw_value.to_owned(),
                    });
                }
            }
            None => {
                by_end.insert(end_ms, (n, value, raw_value.to_owned()));
            }
        }
    }
    if !any_data {
        return Err(LoadCurveError::Empty {
            header_line: lines[header_idx].0,
        });
    }

    let points: Vec<LoadPoint> = by_end
        .into_iter()
        .map(|(end_ms, (line, v, _))| LoadPoint {
            start_ms: end_ms - step_ms,
            end_ms,
            power_w: unit.to_w(v),
            line,
        })
        .collect();
    let mut gaps = Vec::new();
    for w in points.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let dt = b.end_ms - a.end_ms;
        if dt < step_ms {
            return Err(LoadCurveError::Step {
                first_line: a.line.min(b.line),
                second_line: a.line.max(b.line),
                minutes: dt as f64 / 60_000.0,
                step: opts.step_minutes,
            });
        }
        if dt > step_ms {
            gaps.push(Gap {
                from_ms: a.end_ms,
                to_ms: b.start_ms,
                missing_steps: u32::try_from((dt - 1) / step_ms).unwrap_or(u32::MAX),
            });
        }
    }
    Ok(LoadCurve {
        unit,
        unit_source,
        points,
        duplicate_lines,
        empty_lines,
        gaps,
    })
}

fn merge_unit(
    current: &mut Option<(PowerUnit, usize)>,
    found: PowerUnit,
    line: usize,
) -> Result<(), LoadCurveError> {
    match *current {
        Some((u, _)) if u != found => Err(LoadCurveError::UnknownUnit {
            line,
            found: found.to_string(),
            hint: ": the file names two different units",
        }),
        _ => {
            *current = Some((found, line));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENEDIS_W: &[u8] = include_bytes!("../../tests/data/meters/enedis-30min-w.csv");
    const KW_DST: &[u8] = include_bytes!("../../tests/data/meters/loadcurve-kw-comma-dst.csv");
    const NO_UNIT: &[u8] = include_bytes!("../../tests/data/meters/loadcurve-no-unit.csv");
    const BAD_TS: &[u8] = include_bytes!("../../tests/data/meters/loadcurve-bad-timestamp.csv");
    const CONFLICT: &[u8] = include_bytes!("../../tests/data/meters/loadcurve-conflict.csv");

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn enedis_export_with_metadata_bom_duplicate_and_gap() {
        let c = parse_load_curve(ENEDIS_W, &LoadCurveOptions::default()).unwrap();
        assert_eq!((c.unit, c.unit_source), (PowerUnit::W, UnitSource::File));
        // 2 days × 48 steps, minus 3 missing (two absent lines, one empty value).
        assert_eq!(c.points.len(), 96 - 3);
        let first = &c.points[0];
        assert_eq!(first.end_ms, ms("2024-01-15T00:30:00+01:00"));
        assert_eq!(first.start_ms, ms("2024-01-15T00:00:00+01:00"));
        assert_eq!(first.power_w, 1200.0);
        assert_eq!(c.duplicate_lines, vec![12]);
        assert_eq!(c.empty_lines.len(), 1);
        assert_eq!(
            c.gaps,
            vec![
                Gap {
                    from_ms: ms("2024-01-15T10:00:00+01:00"),
                    to_ms: ms("2024-01-15T11:00:00+01:00"),
                    missing_steps: 2,
                },
                Gap {
                    from_ms: ms("2024-01-16T12:00:00+01:00"),
                    to_ms: ms("2024-01-16T12:30:00+01:00"),
                    missing_steps: 1,
                },
            ]
        );
    }

    #[test]
    fn kw_with_commas_across_the_spring_dst_change() {
        let c = parse_load_curve(KW_DST, &LoadCurveOptions::default()).unwrap();
        assert_eq!(c.unit, PowerUnit::KW);
        // 3 days, one of 23 hours: no false gap at the change from +01:00 to +02:00.
        assert_eq!(c.points.len(), 48 + 46 + 48);
        assert!(c.gaps.is_empty(), "{:?}", c.gaps);
        assert_eq!(c.points[0].power_w, 1500.0);
        assert!(
            (c.energy_kwh() - c.points.iter().map(|p| p.power_w).sum::<f64>() / 2000.0).abs()
                < 1e-9
        );
    }

    #[test]
    fn unit_must_be_known_and_consistent() {
        assert_eq!(
            parse_load_curve(NO_UNIT, &LoadCurveOptions::default()),
            Err(LoadCurveError::NoUnit)
        );
        let given = LoadCurveOptions {
            unit: Some(PowerUnit::KW),
            ..Default::default()
        };
        let c = parse_load_curve(NO_UNIT, &given).unwrap();
        assert_eq!(
            (c.unit_source, c.points[0].power_w),
            (UnitSource::Caller, 2500.0)
        );
        assert_eq!(
            parse_load_curve(ENEDIS_W, &given),
            Err(LoadCurveError::UnitMismatch {
                file: PowerUnit::W,
                caller: PowerUnit::KW
            })
        );
        let energy = b"Horodate;Valeur (kWh)\n2024-01-15T00:30:00+01:00;1\n";
        assert!(matches!(
            parse_load_curve(energy, &LoadCurveOptions::default()),
            Err(LoadCurveError::UnknownUnit { line: 1, .. })
        ));
    }

    #[test]
    fn broken_line_names_line_and_column() {
        let err = parse_load_curve(BAD_TS, &LoadCurveOptions::default()).unwrap_err();
        match &err {
            LoadCurveError::Parse { line, column, .. } => assert_eq!((*line, *column), (6, 1)),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().starts_with("line 6, column 1: timestamp"));
        let bad_value = b"timestamp,power (W)\n2024-01-15T00:30:00+01:00,12x\n";
        assert_eq!(
            parse_load_curve(bad_value, &LoadCurveOptions::default()),
            Err(LoadCurveError::Parse {
                line: 2,
                column: 27,
                reason: "value \"12x\" is not a number".into()
            })
        );
        let no_offset = b"Horodate;Valeur (W)\n2024-01-15T00:30:00;5\n";
        assert!(matches!(
            parse_load_curve(no_offset, &LoadCurveOptions::default()),
            Err(LoadCurveError::Parse {
                line: 2,
                column: 1,
                ..
            })
        ));
    }

    #[test]
    fn same_timestamp_different_value_names_both_lines() {
        let err = parse_load_curve(CONFLICT, &LoadCurveOptions::default()).unwrap_err();
        assert_eq!(
            err,
            LoadCurveError::Conflict {
                first_line: 4,
                second_line: 7,
                timestamp: "2024-01-15T01:30:00+01:00".into(),
                first_value: "900".into(),
                second_value: "950".into(),
            }
        );
    }

    #[test]
    fn other_steps_headers_and_latin1() {
        let ten_min =
            b"Horodate;Valeur (W)\n2024-01-15T00:30:00+01:00;1\n2024-01-15T00:40:00+01:00;1\n";
        assert!(matches!(
            parse_load_curve(ten_min, &LoadCurveOptions::default()),
            Err(LoadCurveError::Step {
                first_line: 2,
                second_line: 3,
                ..
            })
        ));
        let opts = LoadCurveOptions {
            step_minutes: 10,
            ..Default::default()
        };
        assert_eq!(parse_load_curve(ten_min, &opts).unwrap().points.len(), 2);
        assert_eq!(
            parse_load_curve(b"just;text\n", &opts),
            Err(LoadCurveError::NoHeader)
        );
        assert!(matches!(
            parse_load_curve(b"Horodate;Valeur (W)\n\n", &opts),
            Err(LoadCurveError::Empty { header_line: 1 })
        ));
        // "Unité" in Latin-1, as Excel re-saves it.
        let latin1 =
            b"Identifiant PRM;Unit\xe9\n123;kW\nHorodate;Valeur\n2024-01-15T00:30:00+01:00;1,5\n";
        let c = parse_load_curve(latin1, &LoadCurveOptions::default()).unwrap();
        assert_eq!(c.points[0].power_w, 1500.0);
    }
}
