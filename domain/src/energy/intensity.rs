//! Hourly grid carbon intensity: RTE éCO2mix downloads and plain
//! `timestamp;gCO2eq/kWh` files → one intensity per UTC hour (`import carbon`).
//!
//! The annual factor ([`crate::energy::carbon::GridFactor`]) weighs a kWh drawn at 3 a.m.
//! like one drawn at 7 p.m.; the French grid's intensity moves by a factor of 2–4
//! within a day and across seasons, and what auto-shutdown saves is mostly night and
//! weekend kWh. With hourly intensities the report weighs each hour's kWh by its own
//! hour, and falls back to the annual factor only where no intensity is known (and
//! says how much of the kWh that is).
//!
//! # Accepted formats
//! - **éCO2mix downloads** (rte-france.com "Télécharger les indicateurs": national or
//!   regional, real-time, consolidated or definitive): tab-separated text (`.xls` by
//!   name), Latin-1 or UTF-8, a header with `Date`, `Heures` and `Taux de Co2`, one
//!   row per 15 or 30 minutes in French local time, empty cells (or `ND`) where
//!   nothing was published, and a closing disclaimer line. Local times are read in the
//!   time zone the caller gives (Europe/Paris for RTE); the hour repeated when DST ends
//!   maps to its first occurrence, so its samples are averaged together.
//! - **ODRÉ open-data CSV** (`eco2mix-national-tr`, `…-cons-def`, regional sets):
//!   `;`-separated with `Date - Heure` as ISO 8601 with its offset and
//!   `Taux de CO2 (g/kWh)`: the offset is used, the local columns ignored.
//! - **Plain**: two columns, a time and g/kWh (`timestamp;gCO2eq/kWh`,
//!   `datetime,carbon_intensity`; `;`, tab or `,`), a header line first. Times are
//!   ISO 8601 with offset (`2026-01-15T13:00:00+01:00`, `…Z`) or local
//!   (`2026-01-15 13:00[:00]`, `2026-01-15T13:00`), read in the caller's zone.
//!
//! Values are grams CO2e per kWh, 0–2000 (a comma as decimal mark is read). The
//! intensity of an hour is the mean of the samples that fall in it. A broken line is an
//! error naming its line and column, and nothing is returned: a file imports whole or
//! not at all.
//!
//! Pure: bytes and a time zone in, values out.

use std::collections::BTreeMap;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::Serialize;
use veille_proto::units::MS_PER_HOUR;

use crate::text::{decode, fold};

/// Highest intensity accepted, g/kWh: above any grid's hourly figure (lignite plants
/// emit about 1,100 g/kWh), so a larger number is a wrong column or unit.
pub const MAX_G_PER_KWH: f64 = 2_000.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntensityError {
    #[error(
        "no header found: expected éCO2mix columns (`Date`, `Heures`, `Taux de Co2`), \
         ODRÉ's (`Date - Heure`, `Taux de CO2 (g/kWh)`) or two columns `timestamp;gCO2eq/kWh`"
    )]
    NoHeader,
    #[error("line {line}, column {column} ({name}): {value:?} {reason}")]
    Field {
        line: usize,
        column: usize,
        name: String,
        value: String,
        reason: &'static str,
    },
    #[error("line {line}: {found} fields, the header has {expected}")]
    Fields {
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("no intensity in the file (every value empty)")]
    Empty,
}

/// Which layout the header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    Eco2mix,
    OdreCsv,
    Plain,
}

/// What a file gave: intensities per UTC hour start, and what was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parsed {
    pub layout: Layout,
    /// (hour start, Unix ms UTC; g CO2e per kWh), by hour.
    pub hours: Vec<(i64, f64)>,
    /// Samples read (one per data line with a value).
    pub samples: usize,
    /// Data lines with no value (not published yet, `ND`).
    pub empty: usize,
}

enum Time {
    /// One column, ISO with offset or local.
    One(usize),
    /// A local date column and a local time column.
    DateAndTime(usize, usize),
}

struct Header {
    layout: Layout,
    line: usize,
    delim: char,
    fields: usize,
    names: Vec<String>,
    time: Time,
    value: usize,
}

fn split(line: &str, delim: char) -> Vec<&str> {
    line.split(delim)
        .map(|f| f.trim().trim_matches('"'))
        .collect()
}

fn find_header(lines: &[&str]) -> Option<Header> {
    for (i, raw) in lines.iter().enumerate().take(50) {
        let delim = if raw.contains('\t') {
            '\t'
        } else if raw.contains(';') {
            ';'
        } else {
            ','
        };
        let names: Vec<String> = split(raw, delim).iter().map(|f| fold(f)).collect();
        let pos = |pred: &dyn Fn(&str) -> bool| names.iter().position(|n| pred(n));
        let co2 = pos(&|n| n.starts_with("taux de co2"));
        let odre_time = pos(&|n| n == "date - heure" || n == "date_heure");
        let date = pos(&|n| n == "date");
        let hours = pos(&|n| n == "heures" || n == "heure");
        let mk = |layout, time, value| Header {
            layout,
            line: i,
            delim,
            fields: names.len(),
            names: split(raw, delim).iter().map(|s| s.to_string()).collect(),
            time,
            value,
        };
        match (co2, odre_time, date, hours) {
            (Some(v), Some(t), _, _) => return Some(mk(Layout::OdreCsv, Time::One(t), v)),
            (Some(v), None, Some(d), Some(h)) => {
                return Some(mk(Layout::Eco2mix, Time::DateAndTime(d, h), v));
            }
            _ => {}
        }
        // Plain: exactly two columns, a time name first and a carbon name second.
        if names.len() == 2 {
            let time_like = ["timestamp", "time", "date", "datetime", "horodat", "heure"]
                .iter()
                .any(|p| names[0].starts_with(p));
            let value_like = ["gco2", "co2", "carbon", "intensit", "taux"]
                .iter()
                .any(|p| names[1].starts_with(p) || names[1].contains("co2"));
            if time_like && value_like {
                return Some(mk(Layout::Plain, Time::One(0), 1));
            }
        }
    }
    None
}

/// A local or offset time → Unix ms; `None` if neither.
fn instant(text: &str, tz: &TimeZone) -> Option<i64> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t.as_millisecond());
    }
    if let Ok(z) = text.parse::<Zoned>() {
        return Some(z.timestamp().as_millisecond());
    }
    let normal = text.replacen(' ', "T", 1);
    let dt: DateTime = normal.parse().ok()?;
    // `compatible`: a time in the spring-forward gap moves on by the gap; one of the
    // repeated autumn hour is its first occurrence.
    let z = dt.to_zoned(tz.clone()).ok()?;
    Some(z.timestamp().as_millisecond())
}

fn value_of(raw: &str) -> Option<f64> {
    raw.replace(',', ".").parse::<f64>().ok()
}

/// Parses an intensity file. `tz` reads local times (éCO2mix's, a plain file's
/// without offset).
pub fn parse(bytes: &[u8], tz: &TimeZone) -> Result<Parsed, IntensityError> {
    let text = decode(bytes);
    let lines: Vec<&str> = text.lines().collect();
    let header = find_header(&lines).ok_or(IntensityError::NoHeader)?;
    let mut sums: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
    let (mut samples, mut empty) = (0, 0);
    for (i, raw) in lines.iter().enumerate().skip(header.line + 1) {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields = split(raw, header.delim);
        // RTE closes its downloads with a one-field disclaimer ("RTE ne pourra être
        // tenu responsable…"): prose, not data.
        if fields.len() == 1 && header.fields > 2 {
            continue;
        }
        if fields.len() < header.fields.min(header.value + 1) {
            return Err(IntensityError::Fields {
                line,
                found: fields.len(),
                expected: header.fields,
            });
        }
        let field_err = |column: usize, reason| IntensityError::Field {
            line,
            column: column + 1,
            name: header.names.get(column).cloned().unwrap_or_default(),
            value: fields.get(column).unwrap_or(&"").chars().take(40).collect(),
            reason,
        };
        let v = fields.get(header.value).copied().unwrap_or("");
        if v.is_empty() || v.eq_ignore_ascii_case("nd") || v == "-" {
            empty += 1;
            continue;
        }
        let g = value_of(v).ok_or_else(|| field_err(header.value, "is not a number"))?;
        if !(0.0..=MAX_G_PER_KWH).contains(&g) {
            return Err(field_err(
                header.value,
                "is not an intensity in g/kWh (0–2000)",
            ));
        }
        let ms = match header.time {
            Time::One(c) => instant(fields.get(c).copied().unwrap_or(""), tz)
                .ok_or_else(|| field_err(c, "is not a time (ISO 8601, with offset or local)"))?,
            Time::DateAndTime(d, h) => {
                let text = format!(
                    "{} {}",
                    fields.get(d).copied().unwrap_or(""),
                    fields.get(h).copied().unwrap_or("")
                );
                instant(&text, tz)
                    .ok_or_else(|| field_err(d, "with its hour is not a local date and time"))?
            }
        };
        let hour = ms.div_euclid(MS_PER_HOUR) * MS_PER_HOUR;
        let e = sums.entry(hour).or_insert((0.0, 0));
        e.0 += g;
        e.1 += 1;
        samples += 1;
    }
    if samples == 0 {
        return Err(IntensityError::Empty);
    }
    Ok(Parsed {
        layout: header.layout,
        hours: sums
            .into_iter()
            .map(|(h, (sum, n))| (h, sum / f64::from(n)))
            .collect(),
        samples,
        empty,
    })
}

/// Hourly intensities of one zone over a report's period, kg CO2e per kWh by UTC hour
/// start: what the report weighs each hour's kWh by.
///
/// Dense: one slot per hour from the first known hour to the last (NaN where
/// unknown), so that the report's lookup for each device-hour is an index, not a tree
/// search. A period's hours are contiguous, so the slots are nearly all filled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourlyIntensity {
    /// Index of the first slot's hour (hour start / [`MS_PER_HOUR`]).
    first: i64,
    kg_per_kwh: Vec<f64>,
}

impl HourlyIntensity {
    /// From (hour start, g/kWh) pairs as [`parse`] gives them and the store keeps them.
    /// A time that is not an hour start is not an hour of the table (never looked up).
    pub fn from_g_per_kwh(hours: impl IntoIterator<Item = (i64, f64)>) -> Self {
        let hours: Vec<(i64, f64)> = hours
            .into_iter()
            .filter(|(h, g)| h.rem_euclid(MS_PER_HOUR) == 0 && g.is_finite())
            .map(|(h, g)| (h.div_euclid(MS_PER_HOUR), g / 1000.0))
            .collect();
        let (Some(first), Some(last)) = (
            hours.iter().map(|(i, _)| *i).min(),
            hours.iter().map(|(i, _)| *i).max(),
        ) else {
            return Self::default();
        };
        let len = usize::try_from(last - first + 1).unwrap_or(0);
        let mut kg_per_kwh = vec![f64::NAN; len];
        for (i, kg) in hours {
            if let Some(slot) = usize::try_from(i - first)
                .ok()
                .and_then(|k| kg_per_kwh.get_mut(k))
            {
                *slot = kg;
            }
        }
        Self { first, kg_per_kwh }
    }

    /// kg CO2e per kWh of the hour starting at `hour`, where known.
    pub fn at(&self, hour: i64) -> Option<f64> {
        if hour.rem_euclid(MS_PER_HOUR) != 0 {
            return None;
        }
        let k = usize::try_from(hour.div_euclid(MS_PER_HOUR).checked_sub(self.first)?).ok()?;
        self.kg_per_kwh.get(k).copied().filter(|kg| !kg.is_nan())
    }

    pub fn is_empty(&self) -> bool {
        self.kg_per_kwh.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }

    /// 2026-01-15T00:00:00+01:00 = 2026-01-14T23:00Z.
    const JAN15_LOCAL_MIDNIGHT: i64 = 1_768_431_600_000;
    const H: i64 = 3_600_000;

    /// An éCO2mix download as RTE serves it: Latin-1, tab-separated, 15-minute rows,
    /// empty values, the disclaimer at the end.
    fn eco2mix() -> Vec<u8> {
        let text = "Périmètre\tNature\tDate\tHeures\tConsommation\tPrévision J-1\tTaux de Co2\tFioul\n\
France\tDonnées temps réel\t2026-01-15\t00:00\t70123\t70000\t30\t100\n\
France\tDonnées temps réel\t2026-01-15\t00:15\t70100\t70000\t34\t100\n\
France\tDonnées temps réel\t2026-01-15\t00:30\t70000\t70000\t\t100\n\
France\tDonnées temps réel\t2026-01-15\t00:45\t69000\t70000\t38\t100\n\
France\tDonnées temps réel\t2026-01-15\t01:00\t68000\t70000\t41,5\t100\n\
France\tDonnées temps réel\t2026-01-15\t01:15\t\t70000\tND\t\n\
RTE ne pourra être tenu responsable de l'utilisation des données\n";
        text.chars().map(|c| c as u32 as u8).collect()
    }

    #[test]
    fn an_eco2mix_download_gives_hourly_means_in_utc() {
        let p = parse(&eco2mix(), &paris()).unwrap();
        assert_eq!(p.layout, Layout::Eco2mix);
        assert_eq!(p.samples, 4);
        assert_eq!(p.empty, 2);
        // 00:00–01:00 Paris = 23:00–00:00Z: mean of 30, 34, 38; then 41.5 alone.
        assert_eq!(
            p.hours,
            vec![
                (JAN15_LOCAL_MIDNIGHT, 34.0),
                (JAN15_LOCAL_MIDNIGHT + H, 41.5)
            ]
        );
    }

    #[test]
    fn odre_csv_uses_its_offsets_and_plain_files_their_own() {
        let odre = "Périmètre;Nature;Date;Heure;Date - Heure;Consommation (MW);Taux de CO2 (g/kWh)\n\
France;Données temps réel;2026-07-01;02:00;2026-07-01T02:00:00+02:00;40000;18\n\
France;Données temps réel;2026-07-01;02:30;2026-07-01T02:30:00+02:00;40000;22\n";
        let p = parse(odre.as_bytes(), &TimeZone::UTC).unwrap();
        assert_eq!(p.layout, Layout::OdreCsv);
        // 2026-07-01T00:00Z.
        assert_eq!(p.hours, vec![(1_782_864_000_000, 20.0)]);
        let plain = "timestamp;gCO2eq/kWh\n2026-01-15 00:00;50\n2026-01-15T01:00:00Z;70\n";
        let p = parse(plain.as_bytes(), &paris()).unwrap();
        assert_eq!(p.layout, Layout::Plain);
        assert_eq!(
            p.hours,
            vec![
                (JAN15_LOCAL_MIDNIGHT, 50.0),
                (JAN15_LOCAL_MIDNIGHT + 2 * H, 70.0)
            ]
        );
    }

    #[test]
    fn a_broken_line_names_its_line_and_column_and_nothing_is_returned() {
        let bad = "timestamp;gCO2eq/kWh\n2026-01-15 00:00;50\n2026-01-15 01:00;abc\n";
        let e = parse(bad.as_bytes(), &paris()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3, column 2 (gCO2eq/kWh): \"abc\" is not a number"
        );
        let bad = "timestamp;gCO2eq/kWh\n15/01/2026 00h;50\n";
        let e = parse(bad.as_bytes(), &paris()).unwrap_err();
        assert!(
            matches!(
                e,
                IntensityError::Field {
                    line: 2,
                    column: 1,
                    ..
                }
            ),
            "{e}"
        );
        let bad = "timestamp;gCO2eq/kWh\n2026-01-15 00:00;50000\n";
        assert!(
            parse(bad.as_bytes(), &paris())
                .unwrap_err()
                .to_string()
                .contains("0–2000")
        );
        // An éCO2mix line cut short: the value's column is missing.
        let short = "Date\tHeures\tTaux de Co2\n2026-01-15\t00:00\n";
        assert_eq!(
            parse(short.as_bytes(), &paris()).unwrap_err(),
            IntensityError::Fields {
                line: 2,
                found: 2,
                expected: 3
            }
        );
        assert_eq!(
            parse(b"a;b;c\n1;2;3\n", &paris()),
            Err(IntensityError::NoHeader)
        );
        assert_eq!(
            parse(b"timestamp;gCO2eq/kWh\n2026-01-15 00:00;\n", &paris()),
            Err(IntensityError::Empty)
        );
    }

    /// The autumn DST change repeats 02:00–03:00 in Paris: both occurrences land in
    /// the first, averaged; the spring gap moves on.
    #[test]
    fn dst_changes_neither_fail_nor_invent_hours() {
        let text = "Date\tHeures\tTaux de Co2\n\
2026-10-25\t02:00\t10\n2026-10-25\t02:00\t20\n2026-03-29\t02:30\t40\n";
        let p = parse(text.as_bytes(), &paris()).unwrap();
        assert_eq!(p.samples, 3);
        // 2026-03-29 02:30 does not exist in Paris: read as 03:30 CEST = 01:30Z.
        // 2026-10-25 02:00 CEST (first occurrence) = 00:00Z.
        assert_eq!(
            p.hours,
            vec![(1_774_746_000_000, 40.0), (1_792_886_400_000, 15.0)]
        );
    }

    #[test]
    fn hourly_intensity_is_kg_per_kwh_by_hour() {
        let h = HourlyIntensity::from_g_per_kwh([(0, 50.0), (H, 20.0)]);
        assert_eq!(h.at(0), Some(0.05));
        assert_eq!(h.at(H), Some(0.02));
        assert_eq!(h.at(2 * H), None);
        assert_eq!(h.at(-H), None);
        assert_eq!(h.at(H / 2), None);
        assert!(HourlyIntensity::default().is_empty());
        // A gap inside the table is unknown, never a neighbour's value.
        let gap = HourlyIntensity::from_g_per_kwh([(10 * H, 50.0), (13 * H, 20.0)]);
        assert_eq!(gap.at(10 * H), Some(0.05));
        assert_eq!(gap.at(11 * H), None);
        assert_eq!(gap.at(12 * H), None);
        assert_eq!(gap.at(13 * H), Some(0.02));
        assert_eq!(gap.at(14 * H), None);
        // Negative hours (before 1970) index like any other.
        let old = HourlyIntensity::from_g_per_kwh([(-3 * H, 80.0)]);
        assert_eq!(old.at(-3 * H), Some(0.08));
        assert_eq!(old.at(-2 * H), None);
    }
}
