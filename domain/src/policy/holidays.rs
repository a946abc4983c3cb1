//! Public holidays, computed rather than listed: a policy file says `holidays = "FR"`
//! and each French public holiday becomes one whole-day shutdown window (a PC left on
//! over 14 July wastes a day, not a night).
//!
//! # Rules (France, Code du travail L3133-1)
//! Fixed days: 1 January, 1 May, 8 May, 14 July, 15 August, 1 November, 11 November,
//! 25 December. Days that move with Easter Sunday (not itself listed: always a Sunday):
//! Easter Monday (+1), Ascension Thursday (+39), Whit Monday (+50).
//!
//! Alsace-Moselle (Bas-Rhin, Haut-Rhin, Moselle; local law, L3134-13) adds Good Friday
//! (Easter −2) and 26 December (Saint-Étienne).
//!
//! Easter Sunday is the Gregorian computus in its "anonymous" form (Meeus/Jones/Butcher),
//! exact for every Gregorian year; the date type bounds the year to 1583..=9999.

use jiff::civil::Date;

/// The calendars `holidays = "…"` accepts (ISO 3166-1 alpha-2).
pub const COUNTRIES: [&str; 1] = ["FR"];

/// The Gregorian calendar (and so this computus) starts in October 1582.
pub const FIRST_YEAR: i16 = 1583;
/// The last year jiff's civil dates can hold.
pub const LAST_YEAR: i16 = 9999;

/// One public holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub date: Date,
    /// The French name as printed on calendars (`Lundi de Pâques`).
    pub name: &'static str,
}

/// Why holidays cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolidayError {
    #[error("unknown holiday calendar {0:?}: known calendars are FR")]
    UnknownCountry(String),
    #[error("year {0} is outside {FIRST_YEAR}..={LAST_YEAR}")]
    YearOutOfRange(i64),
    #[error("alsace-moselle applies to the FR calendar only")]
    AlsaceMoselleOutsideFrance,
}

/// Easter Sunday of a Gregorian `year` (anonymous Gregorian algorithm, also called
/// Meeus/Jones/Butcher). `year` must be in [`FIRST_YEAR`]..=[`LAST_YEAR`]: outside, the
/// date type cannot hold the answer.
pub fn easter_sunday(year: i16) -> Result<Date, HolidayError> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return Err(HolidayError::YearOutOfRange(year.into()));
    }
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // month is 3 or 4 and day 1..=31 by construction: Date::new cannot fail here, and
    // if it ever did the error says which year.
    Date::new(year, month as i8, day as i8).map_err(|_| HolidayError::YearOutOfRange(y.into()))
}

/// French public holidays of `year`, sorted by date; with `alsace_moselle`, also Good
/// Friday and 26 December.
pub fn french_holidays(year: i16, alsace_moselle: bool) -> Result<Vec<Holiday>, HolidayError> {
    let easter = easter_sunday(year)?;
    // In range (checked by easter_sunday): every fixed date exists.
    let fixed = |month: i8, day: i8, name| -> Result<Holiday, HolidayError> {
        Date::new(year, month, day)
            .map(|date| Holiday { date, name })
            .map_err(|_| HolidayError::YearOutOfRange(year.into()))
    };
    let moving = |days: i64, name| -> Result<Holiday, HolidayError> {
        easter
            .checked_add(jiff::Span::new().days(days))
            .map(|date| Holiday { date, name })
            .map_err(|_| HolidayError::YearOutOfRange(year.into()))
    };
    let mut days = vec![
        fixed(1, 1, "Jour de l'an")?,
        moving(1, "Lundi de Pâques")?,
        fixed(5, 1, "Fête du Travail")?,
        fixed(5, 8, "Victoire 1945")?,
        moving(39, "Ascension")?,
        moving(50, "Lundi de Pentecôte")?,
        fixed(7, 14, "Fête nationale")?,
        fixed(8, 15, "Assomption")?,
        fixed(11, 1, "Toussaint")?,
        fixed(11, 11, "Armistice 1918")?,
        fixed(12, 25, "Noël")?,
    ];
    if alsace_moselle {
        days.push(moving(-2, "Vendredi saint")?);
        days.push(fixed(12, 26, "Saint-Étienne")?);
    }
    // Ascension can fall on 1 or 8 May (2008: 1 May): one day off, listed once, under
    // the fixed name.
    days.sort_by_key(|h| h.date);
    days.dedup_by_key(|h| h.date);
    Ok(days)
}

/// The holidays of `country` (one of [`COUNTRIES`], case-insensitive) in `year`.
pub fn holidays(
    country: &str,
    year: i64,
    alsace_moselle: bool,
) -> Result<Vec<Holiday>, HolidayError> {
    let year = i16::try_from(year)
        .ok()
        .filter(|y| (FIRST_YEAR..=LAST_YEAR).contains(y))
        .ok_or(HolidayError::YearOutOfRange(year))?;
    if country.eq_ignore_ascii_case("FR") {
        french_holidays(year, alsace_moselle)
    } else if country.is_empty() && !alsace_moselle {
        Ok(Vec::new())
    } else if country.is_empty() {
        Err(HolidayError::AlsaceMoselleOutsideFrance)
    } else {
        Err(HolidayError::UnknownCountry(country.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// Easter Sunday 2026–2030, from the published tables of the Paris observatory
    /// (IMCCE) and checked against the algorithm by hand for 2026 below.
    const EASTER: [(i16, i8, i8); 5] = [
        (2026, 4, 5),
        (2027, 3, 28),
        (2028, 4, 16),
        (2029, 4, 1),
        (2030, 4, 21),
    ];

    #[test]
    fn easter_matches_the_tables_and_known_edge_years() {
        for (y, m, d) in EASTER {
            assert_eq!(easter_sunday(y).unwrap(), date(y, m, d), "{y}");
        }
        // The earliest and latest possible Easters, and a few checked years.
        assert_eq!(easter_sunday(1818).unwrap(), date(1818, 3, 22));
        assert_eq!(easter_sunday(2285).unwrap(), date(2285, 3, 22));
        assert_eq!(easter_sunday(1943).unwrap(), date(1943, 4, 25));
        assert_eq!(easter_sunday(2038).unwrap(), date(2038, 4, 25));
        assert_eq!(easter_sunday(2000).unwrap(), date(2000, 4, 23));
        assert_eq!(easter_sunday(2024).unwrap(), date(2024, 3, 31));
        assert_eq!(easter_sunday(2025).unwrap(), date(2025, 4, 20));
        for y in FIRST_YEAR..=LAST_YEAR {
            let e = easter_sunday(y).unwrap();
            assert_eq!(e.weekday(), jiff::civil::Weekday::Sunday, "{y}");
            assert!(e >= date(y, 3, 22) && e <= date(y, 4, 25), "{y}: {e}");
        }
        assert_eq!(easter_sunday(1582), Err(HolidayError::YearOutOfRange(1582)));
    }

    /// 2026 by hand (anonymous Gregorian algorithm):
    /// a = 2026 mod 19 = 12; b = 20, c = 26; d = 5, e = 0; f = 1; g = 6;
    /// h = (228 + 20 − 5 − 6 + 15) mod 30 = 252 mod 30 = 12; i = 6, k = 2;
    /// l = (32 + 0 + 12 − 12 − 2) mod 7 = 30 mod 7 = 2; m = (12 + 132 + 44) / 451 = 0;
    /// month = (12 + 2 + 114) / 31 = 128 / 31 = 4; day = 128 mod 31 + 1 = 5 → 5 April.
    /// Then Easter Monday 6 April, Ascension 5 April + 39 = 14 May (a Thursday), Whit
    /// Monday 5 April + 50 = 25 May.
    ///
    /// 2027 by hand: a = 13, b = 20, c = 27, d = 5, e = 0, f = 1, g = 6;
    /// h = (247 + 20 − 5 − 6 + 15) mod 30 = 271 mod 30 = 1; i = 6, k = 3;
    /// l = (32 + 12 − 1 − 3) mod 7 = 40 mod 7 = 5; m = (13 + 11 + 110) / 451 = 0;
    /// month = (1 + 5 + 114) / 31 = 3; day = 120 mod 31 + 1 = 28 → 28 March; Easter
    /// Monday 29 March, Ascension 6 May, Whit Monday 17 May.
    #[test]
    fn french_holidays_2026_to_2030_match_the_rules() {
        // Built from the rules: the fixed days, and Easter + 1, + 39, + 50 from the
        // Easter table above, written out as dates.
        let moving: [(i16, [(i8, i8); 3]); 5] = [
            (2026, [(4, 6), (5, 14), (5, 25)]),
            (2027, [(3, 29), (5, 6), (5, 17)]),
            (2028, [(4, 17), (5, 25), (6, 5)]),
            (2029, [(4, 2), (5, 10), (5, 21)]),
            (2030, [(4, 22), (5, 30), (6, 10)]),
        ];
        for (year, [monday, ascension, whit]) in moving {
            let mut expected = vec![
                date(year, 1, 1),
                date(year, monday.0, monday.1),
                date(year, 5, 1),
                date(year, 5, 8),
                date(year, ascension.0, ascension.1),
                date(year, whit.0, whit.1),
                date(year, 7, 14),
                date(year, 8, 15),
                date(year, 11, 1),
                date(year, 11, 11),
                date(year, 12, 25),
            ];
            expected.sort();
            let got: Vec<Date> = french_holidays(year, false)
                .unwrap()
                .into_iter()
                .map(|h| h.date)
                .collect();
            assert_eq!(got, expected, "{year}");
            assert_eq!(got[1].weekday(), jiff::civil::Weekday::Monday);
        }
    }

    #[test]
    fn alsace_moselle_adds_good_friday_and_saint_etienne() {
        let plain = french_holidays(2026, false).unwrap();
        let local = french_holidays(2026, true).unwrap();
        assert_eq!(local.len(), plain.len() + 2);
        let extra: Vec<&Holiday> = local.iter().filter(|h| !plain.contains(h)).collect();
        assert_eq!(extra[0].date, date(2026, 4, 3));
        assert_eq!(extra[0].name, "Vendredi saint");
        assert_eq!(extra[1].date, date(2026, 12, 26));
        assert_eq!(
            french_holidays(2027, true).unwrap()[1].date,
            date(2027, 3, 26)
        );
    }

    #[test]
    fn a_holiday_on_the_same_day_as_another_is_listed_once() {
        // 2008: Ascension on 1 May.
        let days = french_holidays(2008, false).unwrap();
        assert_eq!(days.len(), 10);
        let may1: Vec<&Holiday> = days.iter().filter(|h| h.date == date(2008, 5, 1)).collect();
        assert_eq!(may1.len(), 1);
    }

    #[test]
    fn countries_and_years_are_checked() {
        assert_eq!(holidays("fr", 2026, false).unwrap().len(), 11);
        assert_eq!(holidays("", 2026, false).unwrap(), vec![]);
        assert_eq!(
            holidays("DE", 2026, false),
            Err(HolidayError::UnknownCountry("DE".into()))
        );
        assert_eq!(
            holidays("FR", 100_000, false),
            Err(HolidayError::YearOutOfRange(100_000))
        );
        assert_eq!(
            holidays("", 2026, true),
            Err(HolidayError::AlsaceMoselleOutsideFrance)
        );
    }
}
