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
//! and simpler files from other meter tools: `Horodate;Valeur (kW)`,
//! `timestamp,power (W)`, `horodate ISO fin de pas;puissance moyenne (W)`,
//! `horodatage;valeur`, `Date et heure;Puissance (kW)`, `valeur;horodate`, tab-separated.
//! - Encoding: UTF-8 with or without BOM; a file that is not UTF-8 is read as Latin-1
//!   (Excel's French re-saves). Line ends `\n` or `\r\n`; blank lines are skipped.
//! - Columns: the **time column** is one whose name starts with `horodat` (horodate,
//!   horodatage), `timestamp`, `date`, `time` or `heure`; the **value column** one
//!   whose name starts with `valeur`, `value`, `puissance`, `power`, `load` or `mesure`.
//!   The header is the first line holding a time column and either a value column or,
//!   when the time column comes first, any second column (the value, as Enedis files
//!   have it). Lines before it are metadata; a metadata line with a `Unite`/`Unité`
//!   column gives the unit in the same column of the next line. Two time (or value)
//!   columns on the header are refused as ambiguous (`Date de début;Date de fin`: the
//!   end is meant but cannot be told): name the column.
//! - The caller may name either column ([`LoadCurveOptions::time_column`],
//!   [`LoadCurveOptions::value_column`]; `--time-column`, `--value-column`) by its
//!   header text (case and accents ignored) or its 1-based position; the header is
//!   then the first line where the named columns are found (a position alone matches
//!   any line that has a field there and the other column).
//! - Delimiter: given ([`LoadCurveOptions::delimiter`], `--delimiter`), else per line
//!   `;` if it has one, else a tab if it has one, else `,`.
//! - Unit: `W` or `kW`, from the value column's header (`Valeur (kW)`, `power W`) or
//!   the metadata; if the file does not say, the caller must pass it
//!   ([`LoadCurveOptions::unit`]); if both say and disagree, it is an error. Energy
//!   units (Wh, kWh) are refused: this module reads average power.
//! - Data: the timestamp is ISO 8601 with its UTC offset (`2024-01-15T00:30:00+01:00`;
//!   `Z` too), and marks the **end** of the step (Enedis's convention: the first point
//!   of a day, 00:30, covers 00:00–00:30). A local time without offset is refused:
//!   around DST it is ambiguous. The value is a number within ±[`MAX_POWER_W`]; an
//!   empty value is a missing step (Enedis writes those), reported in the gaps. A comma
//!   is read as the decimal mark when the delimiter is not a comma (`1,5`). With
//!   [`LoadCurveOptions::decimal_comma`] (`--decimal-comma`, French Excel) the comma is
//!   the decimal mark and dots and spaces group thousands (`1 234,5`, `1.234,5`);
//!   without it a value with both marks is refused rather than guessed.
//!
//! Duplicate lines (same timestamp, same value: overlapping exports) are ignored and
//! listed; the same timestamp with another value is an error naming both lines. Any
//! broken line is an error naming its line and column: nothing is returned, so a file is
//! imported whole or not at all.
//!
//! Pure: bytes in, values out.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::text::{decode, fold};
use serde::Serialize;

/// Largest average power accepted, W (either sign), 10 GW: above any metered site (a
/// large nuclear plant is 5 GW), so a larger number is a wrong column or unit; it also
/// keeps every power and energy finite.
pub const MAX_POWER_W: f64 = 1e10;

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

/// A column named by the caller: its header text or its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// Matched against header fields with case, accents and surrounding spaces ignored.
    Name(String),
    /// 1-based, as a spreadsheet user counts.
    Position(usize),
}

impl std::str::FromStr for Column {
    type Err = LoadCurveError;
    /// Digits only: a position (from 1); anything else: a header name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(LoadCurveError::BadOption {
                reason: "a column name or position cannot be empty".into(),
            });
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return match t.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Column::Position(n)),
                _ => Err(LoadCurveError::BadOption {
                    reason: format!("column position {t:?}: positions count from 1"),
                }),
            };
        }
        Ok(Column::Name(t.to_owned()))
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Name(n) => write!(f, "{n:?}"),
            Column::Position(p) => write!(f, "position {p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadCurveOptions {
    /// The unit when the file does not say; checked against the file when it does.
    pub unit: Option<PowerUnit>,
    /// The step, in minutes (Enedis: 30 by default; 10 or 60 on some meters).
    pub step_minutes: u32,
    /// The timestamp column, when its name is not one this module knows.
    pub time_column: Option<Column>,
    /// The value column, when its name is not one this module knows.
    pub value_column: Option<Column>,
    /// The field delimiter; `None`: detected per line (`;`, tab, `,`).
    pub delimiter: Option<char>,
    /// Values use a decimal comma and may group thousands with dots or spaces.
    pub decimal_comma: bool,
}

impl LoadCurveOptions {
    /// Enedis's step; what `import meters` takes without `--step-minutes`.
    pub const DEFAULT_STEP_MINUTES: u32 = 30;
}

impl Default for LoadCurveOptions {
    fn default() -> Self {
        LoadCurveOptions {
            unit: None,
            step_minutes: Self::DEFAULT_STEP_MINUTES,
            time_column: None,
            value_column: None,
            delimiter: None,
            decimal_comma: false,
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
        "no header line was found: none has a time column (Horodate, Horodatage, timestamp, date, time, heure) and a value column (Valeur, value, puissance, power){hint}"
    )]
    NoHeader { hint: String },
    #[error(
        "line {line}: columns {first:?} and {second:?} could both be the {role} column: name it (--{role}-column)"
    )]
    AmbiguousColumn {
        line: usize,
        role: &'static str,
        first: String,
        second: String,
    },
    #[error("{reason}")]
    BadOption { reason: String },
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

/// Names a time column starts with (folded: lower case, no accents).
const TIME_NAMES: [&str; 5] = ["horodat", "timestamp", "date", "time", "heure"];
/// Names a value column starts with (folded).
const VALUE_NAMES: [&str; 6] = ["valeur", "value", "puissance", "power", "load", "mesure"];

fn named(field: &str, names: &[&str]) -> bool {
    let f = fold(field);
    names.iter().any(|p| f.starts_with(p))
}

/// The delimiter of `line`: the caller's, else `;`, tab or `,` by presence.
fn delimiter_of(line: &str, given: Option<char>) -> char {
    given.unwrap_or(if line.contains(';') {
        ';'
    } else if line.contains('\t') {
        '\t'
    } else {
        ','
    })
}

/// The header's time and value column indexes, if `fields` (line `line`) is the
/// header; `next` is the next non-blank line's fields, which a time column given by
/// position needs (the header is then the line just before the first timestamp).
fn header_columns(
    fields: &[&str],
    next: Option<&[&str]>,
    line: usize,
    opts: &LoadCurveOptions,
) -> Result<Option<(usize, usize)>, LoadCurveError> {
    let by_name = |name: &str| fields.iter().position(|f| fold(f) == fold(name));
    let candidates = |names: &[&str], except: Option<usize>| -> Vec<usize> {
        (0..fields.len())
            .filter(|&i| Some(i) != except && named(fields[i], names))
            .collect()
    };
    let time = match &opts.time_column {
        Some(Column::Name(n)) => by_name(n).into_iter().collect(),
        Some(Column::Position(p)) => {
            let i = p - 1;
            let data_next = next
                .and_then(|f| f.get(i))
                .is_some_and(|v| v.trim().parse::<Timestamp>().is_ok());
            let not_data_here = fields
                .get(i)
                .is_some_and(|v| v.trim().parse::<Timestamp>().is_err());
            if data_next && not_data_here {
                vec![i]
            } else {
                vec![]
            }
        }
        None => candidates(&TIME_NAMES, None),
    };
    let Some(&t) = time.first() else {
        return Ok(None);
    };
    let value = match &opts.value_column {
        Some(Column::Name(n)) => by_name(n).into_iter().collect(),
        Some(Column::Position(p)) => (p - 1 < fields.len())
            .then_some(p - 1)
            .into_iter()
            .collect(),
        None => {
            let named_values = candidates(&VALUE_NAMES, Some(t));
            if named_values.is_empty() && t == 0 && fields.len() >= 2 {
                vec![1]
            } else {
                named_values
            }
        }
    };
    let Some(&v) = value.first() else {
        return Ok(None);
    };
    for (role, found) in [("time", &time), ("value", &value)] {
        if let [first, second, ..] = found[..] {
            return Err(LoadCurveError::AmbiguousColumn {
                line,
                role,
                first: fields[first].trim().to_owned(),
                second: fields[second].trim().to_owned(),
            });
        }
    }
    if t == v {
        return Err(LoadCurveError::BadOption {
            reason: format!(
                "line {line}: the time and value columns are the same column ({})",
                fields[t].trim()
            ),
        });
    }
    Ok(Some((t, v)))
}

/// A value as written: see the module documentation for the decimal marks accepted.
fn parse_value(raw: &str, delim: char, decimal_comma: bool) -> Option<f64> {
    let text: String = if decimal_comma {
        raw.chars()
            .filter(|c| !matches!(c, '.' | ' ' | '\u{a0}' | '\u{202f}'))
            .map(|c| if c == ',' { '.' } else { c })
            .collect()
    } else if delim != ',' && !raw.contains('.') {
        raw.replace(',', ".")
    } else {
        raw.to_owned()
    };
    text.parse().ok().filter(|v: &f64| v.is_finite())
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

    if opts.decimal_comma && opts.delimiter == Some(',') {
        return Err(LoadCurveError::BadOption {
            reason: "a comma cannot be both the delimiter and the decimal mark".into(),
        });
    }

    // Metadata and header.
    let mut file_unit: Option<(PowerUnit, usize)> = None;
    let mut header: Option<(usize, char, usize, usize)> = None;
    let mut idx = 0;
    while idx < lines.len() {
        let (n, l) = lines[idx];
        let delim = delimiter_of(l, opts.delimiter);
        let fields: Vec<&str> = l.split(delim).collect();
        let next: Option<Vec<&str>> = lines[idx + 1..]
            .iter()
            .find(|(_, l)| !l.trim().is_empty())
            .map(|(_, l)| l.split(delim).collect());
        if fields.len() >= 2
            && let Some((t, v)) = header_columns(&fields, next.as_deref(), n, opts)?
        {
            if let Some(u) = unit_in(fields[v], n)? {
                merge_unit(&mut file_unit, u, n)?;
            }
            header = Some((idx, delim, t, v));
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
    let (header_idx, delim, time_col, value_col) = header.ok_or_else(|| {
        let given: Vec<String> = [("time", &opts.time_column), ("value", &opts.value_column)]
            .into_iter()
            .filter_map(|(role, c)| c.as_ref().map(|c| format!("{role} column {c}")))
            .collect();
        LoadCurveError::NoHeader {
            hint: if given.is_empty() {
                " (name them: --time-column, --value-column)".into()
            } else {
                format!(" (with {})", given.join(" and "))
            },
        }
    })?;
    if opts.decimal_comma && delim == ',' {
        return Err(LoadCurveError::BadOption {
            reason: format!(
                "line {}: the file is comma-delimited, so a comma cannot also be the decimal mark (--decimal-comma)",
                lines[header_idx].0
            ),
        });
    }
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
        let Some(ts_raw) = fields.get(time_col).map(|v| v.trim()) else {
            return Err(parse_err(
                fields.len().saturating_sub(1),
                format!(
                    "{} fields, the time column is field {}",
                    fields.len(),
                    time_col + 1
                ),
            ));
        };
        let ts: Timestamp = ts_raw.parse().map_err(|e: jiff::Error| {
            parse_err(
                time_col,
                format!("timestamp {ts_raw:?}: expected ISO 8601 with a UTC offset ({e})"),
            )
        })?;
        let Some(raw_value) = fields.get(value_col).map(|v| v.trim()) else {
            return Err(parse_err(
                fields.len().saturating_sub(1),
                format!(
                    "{} fields, the value column is field {}",
                    fields.len(),
                    value_col + 1
                ),
            ));
        };
        if raw_value.is_empty() {
            empty_lines.push(n);
            continue;
        }
        let value = parse_value(raw_value, delim, opts.decimal_comma).ok_or_else(|| {
            let hint = if !opts.decimal_comma && raw_value.contains(',') && raw_value.contains('.')
            {
                " (thousands separators with a decimal comma? pass --decimal-comma)"
            } else {
                ""
            };
            parse_err(
                value_col,
                format!("value {raw_value:?} is not a number{hint}"),
            )
        })?;
        // Also refuses what would overflow in W (1e308 kW) or in kWh once summed.
        let watts = unit.to_w(value).abs();
        if watts.is_nan() || watts > MAX_POWER_W {
            return Err(parse_err(
                value_col,
                format!(
                    "value {raw_value:?} {unit} is beyond ±{} GW: not a site's average power (wrong column or unit?)",
                    MAX_POWER_W / 1e9
                ),
            ));
        }
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

    /// The `load_curve` fuzz target's invariants (every point and the energy finite)
    /// caught it: 1e308 in a kW file became an infinite power, 1e300 W an infinite
    /// energy.
    #[test]
    fn a_value_that_overflows_in_watts_is_refused_with_its_line() {
        let e = parse_load_curve(
            b"Horodate;Valeur (kW)\n2024-01-15T00:30:00+01:00;1e308\n",
            &LoadCurveOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                LoadCurveError::Parse {
                    line: 2,
                    column: 27,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = parse_load_curve(
            b"Horodate;Valeur (W)\n2024-01-15T00:30:00+01:00;-1e300\n",
            &LoadCurveOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("beyond ±10 GW"), "{e}");
    }

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
        assert!(matches!(
            parse_load_curve(b"just;text\n", &opts),
            Err(LoadCurveError::NoHeader { .. })
        ));
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

    const HORODATAGE: &[u8] = include_bytes!("../../tests/data/meters/loadcurve-horodatage.csv");
    const DEBUT_FIN: &[u8] =
        include_bytes!("../../tests/data/meters/loadcurve-debut-fin-10min.csv");
    const EXCEL_FR: &[u8] =
        include_bytes!("../../tests/data/meters/loadcurve-excel-fr-thousands.csv");
    const TAB: &[u8] = include_bytes!("../../tests/data/meters/loadcurve-tab.csv");
    const VALUE_FIRST: &[u8] = include_bytes!("../../tests/data/meters/loadcurve-value-first.csv");
    const START_END: &[u8] = include_bytes!("../../tests/data/meters/loadcurve-start-end.csv");

    fn powers(c: &LoadCurve) -> Vec<(i64, f64)> {
        c.points.iter().map(|p| (p.end_ms, p.power_w)).collect()
    }

    /// Issue 21: `horodatage;valeur` (no unit: the caller's), decimal commas, an
    /// empty step.
    #[test]
    fn horodatage_valeur_is_a_header() {
        let kw = LoadCurveOptions {
            unit: Some(PowerUnit::KW),
            ..Default::default()
        };
        let c = parse_load_curve(HORODATAGE, &kw).unwrap();
        assert_eq!(
            powers(&c),
            [
                (ms("2024-02-05T00:30:00+01:00"), 3250.0),
                (ms("2024-02-05T01:00:00+01:00"), 3500.0),
                (ms("2024-02-05T02:00:00+01:00"), 3125.0),
            ]
        );
        assert_eq!(c.empty_lines, [4]);
        assert_eq!(c.gaps.len(), 1);
    }

    #[test]
    fn value_first_and_tab_separated_files() {
        let c = parse_load_curve(VALUE_FIRST, &LoadCurveOptions::default()).unwrap();
        assert_eq!(c.unit, PowerUnit::W);
        assert_eq!(
            powers(&c),
            [
                (ms("2024-02-05T00:30:00+01:00"), 410.0),
                (ms("2024-02-05T01:00:00+01:00"), 420.0)
            ]
        );
        let c = parse_load_curve(TAB, &LoadCurveOptions::default()).unwrap();
        assert_eq!((c.unit, c.unit_source), (PowerUnit::W, UnitSource::File));
        assert_eq!(
            powers(&c),
            [
                (ms("2024-02-05T00:30:00Z"), 1500.5),
                (ms("2024-02-05T01:00:00Z"), 1499.0)
            ]
        );
        // Named explicitly, the same delimiter gives the same curve.
        let tab = LoadCurveOptions {
            delimiter: Some('\t'),
            ..Default::default()
        };
        assert_eq!(parse_load_curve(TAB, &tab).unwrap(), c);
    }

    /// Columns the module does not know by name, found by the caller's names or
    /// positions: a 10-minute export with start and end columns (the end is the
    /// step's timestamp), comma-delimited with decimal dots.
    #[test]
    fn named_or_numbered_columns() {
        assert!(matches!(
            parse_load_curve(DEBUT_FIN, &LoadCurveOptions::default()),
            Err(LoadCurveError::NoHeader { .. })
        ));
        let by_name = LoadCurveOptions {
            unit: Some(PowerUnit::W),
            step_minutes: 10,
            time_column: Some("fin".parse().unwrap()),
            ..Default::default()
        };
        let c = parse_load_curve(DEBUT_FIN, &by_name).unwrap();
        let want = [
            (ms("2024-02-05T00:10:00Z"), 812.5),
            (ms("2024-02-05T00:20:00Z"), 790.0),
            (ms("2024-02-05T00:30:00Z"), 805.25),
        ];
        assert_eq!(powers(&c), want);
        assert_eq!(c.points[0].start_ms, ms("2024-02-05T00:00:00Z"));
        let by_position = LoadCurveOptions {
            time_column: Some("3".parse().unwrap()),
            value_column: Some("4".parse().unwrap()),
            ..by_name.clone()
        };
        assert_eq!(parse_load_curve(DEBUT_FIN, &by_position).unwrap(), c);
        // A wrong name says which column was looked for.
        let wrong = LoadCurveOptions {
            time_column: Some(Column::Name("Horodate de fin".into())),
            ..by_name
        };
        let e = parse_load_curve(DEBUT_FIN, &wrong).unwrap_err();
        assert!(
            e.to_string().contains("time column \"Horodate de fin\""),
            "{e}"
        );
        assert_eq!(
            "0".parse::<Column>().map_err(|e| e.to_string()),
            Err("column position \"0\": positions count from 1".into())
        );
    }

    /// Start and end columns both look like time: refused rather than guessed (the
    /// start taken for the end would shift every step by one), accepted once named.
    #[test]
    fn two_time_columns_must_be_named() {
        let e = parse_load_curve(START_END, &LoadCurveOptions::default()).unwrap_err();
        assert_eq!(
            e,
            LoadCurveError::AmbiguousColumn {
                line: 1,
                role: "time",
                first: "Date de début".into(),
                second: "Date de fin".into(),
            }
        );
        let end = LoadCurveOptions {
            time_column: Some("DATE DE FIN".parse().unwrap()),
            ..Default::default()
        };
        let c = parse_load_curve(START_END, &end).unwrap();
        assert_eq!(
            powers(&c),
            [
                (ms("2024-02-05T00:30:00+01:00"), 600.0),
                (ms("2024-02-05T01:00:00+01:00"), 640.0)
            ]
        );
    }

    /// French Excel: metadata lines, a BOM, "1 234,5" and "1.240,25". Without
    /// `--decimal-comma` the grouped values are refused, naming the flag.
    #[test]
    fn decimal_comma_with_thousands_separators() {
        let e = parse_load_curve(EXCEL_FR, &LoadCurveOptions::default()).unwrap_err();
        assert_eq!(
            e,
            LoadCurveError::Parse {
                line: 5,
                column: 27,
                reason: "value \"1 234,5\" is not a number".into()
            }
        );
        let fr = LoadCurveOptions {
            decimal_comma: true,
            ..Default::default()
        };
        let c = parse_load_curve(EXCEL_FR, &fr).unwrap();
        assert_eq!((c.unit, c.unit_source), (PowerUnit::KW, UnitSource::File));
        assert_eq!(
            powers(&c),
            [
                (ms("2024-07-01T00:30:00+02:00"), 1_234_500.0),
                (ms("2024-07-01T01:00:00+02:00"), 1_240_250.0),
                (ms("2024-07-01T01:30:00+02:00"), 1_198_000.0),
            ]
        );
        let dotted = b"Horodate;Valeur (W)\n2024-01-15T00:30:00+01:00;1.240,25\n";
        let e = parse_load_curve(dotted, &LoadCurveOptions::default()).unwrap_err();
        assert!(e.to_string().contains("pass --decimal-comma"), "{e}");
        let comma_twice = LoadCurveOptions {
            decimal_comma: true,
            delimiter: Some(','),
            ..Default::default()
        };
        assert!(matches!(
            parse_load_curve(TAB, &comma_twice),
            Err(LoadCurveError::BadOption { .. })
        ));
        // A comma-delimited file found as such is refused the same way.
        let csv_fr = LoadCurveOptions {
            time_column: Some("fin".parse().unwrap()),
            unit: Some(PowerUnit::W),
            step_minutes: 10,
            ..fr
        };
        assert!(matches!(
            parse_load_curve(DEBUT_FIN, &csv_fr),
            Err(LoadCurveError::BadOption { .. })
        ));
    }
}
