//! Closure calendars from iCalendar (RFC 5545) files: the days a site is closed (school
//! holidays by zone, a town hall's bridge days), each one whole shutdown day.
//!
//! Only what closure calendars use is read, tolerantly: `VEVENT`s with `DTSTART` and
//! optional `DTEND` (exclusive, RFC 5545 §3.6.1) or `DURATION` in days, as dates
//! (`VALUE=DATE`, `YYYYMMDD`) or date-times (the date part is taken: a closure is a day),
//! `SUMMARY` for the name, folded lines (CRLF or LF followed by a space or tab), and
//! `\,` `\;` `\n` escapes. Everything else (`VTIMEZONE`, `VALARM`, unknown properties)
//! is skipped. A malformed event is an error naming its line: a calendar that silently
//! loses a week would shut nothing down that week. For the same reason a recurring
//! event (`RRULE`, `RDATE`) is refused rather than read as its first occurrence: export
//! the calendar with its occurrences expanded, or list the days.

use jiff::civil::Date;

/// Longest event accepted, in days: a school year. A longer one is likely a typo (an
/// end year off by ten) that would switch a site off for a decade.
pub const MAX_EVENT_DAYS: i64 = 366;

/// One closure event: every day in `[first, last]` (both included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureEvent {
    pub first: Date,
    pub last: Date,
    /// `SUMMARY`, unescaped ("Vacances de Noël - Zone C"); empty when absent.
    pub name: String,
}

impl ClosureEvent {
    /// Every day of the event.
    pub fn days(&self) -> impl Iterator<Item = Date> + '_ {
        self.first
            .series(jiff::Span::new().days(1))
            .take_while(move |d| *d <= self.last)
    }
}

/// Why an ICS text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcsError {
    #[error("not an iCalendar file: no BEGIN:VCALENDAR")]
    NotCalendar,
    #[error("line {line}: {reason}")]
    Event { line: usize, reason: String },
}

/// The events of an ICS text, in file order.
pub fn parse_ics(text: &str) -> Result<Vec<ClosureEvent>, IcsError> {
    let lines = unfold(text);
    if !lines
        .iter()
        .any(|(_, l)| l.trim().eq_ignore_ascii_case("BEGIN:VCALENDAR"))
    {
        return Err(IcsError::NotCalendar);
    }
    let mut events = Vec::new();
    let mut current: Option<Partial> = None;
    // Nesting inside an event (VALARM): its properties are not the event's.
    let mut depth_in_event = 0usize;
    for (line_no, line) in lines {
        let Some((name, params, value)) = split_property(&line) else {
            continue;
        };
        match (name.as_str(), current.as_mut()) {
            ("BEGIN", None) if value.eq_ignore_ascii_case("VEVENT") => {
                current = Some(Partial {
                    line: line_no,
                    ..Partial::default()
                });
                depth_in_event = 0;
            }
            ("BEGIN", Some(_)) => depth_in_event += 1,
            ("END", Some(_)) if depth_in_event > 0 => depth_in_event -= 1,
            ("END", Some(_)) if value.eq_ignore_ascii_case("VEVENT") => {
                if let Some(p) = current.take() {
                    events.push(p.finish()?);
                }
            }
            (_, Some(p)) if depth_in_event == 0 => {
                let bad = |reason: String| IcsError::Event {
                    line: line_no,
                    reason,
                };
                match name.as_str() {
                    "DTSTART" => p.start = Some(parse_date(&value, &params).map_err(bad)?),
                    "DTEND" => p.end = Some(parse_date(&value, &params).map_err(bad)?),
                    "DURATION" => p.duration_days = Some(parse_duration_days(&value).map_err(bad)?),
                    "SUMMARY" => p.name = unescape(&value),
                    "RRULE" | "RDATE" => {
                        return Err(bad(format!(
                            "recurring events ({name}) are not read: expand them, or list the days"
                        )));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let Some(p) = current {
        return Err(IcsError::Event {
            line: p.line,
            reason: "BEGIN:VEVENT without END:VEVENT".into(),
        });
    }
    Ok(events)
}

#[derive(Default)]
struct Partial {
    line: usize,
    start: Option<(Date, bool)>,
    end: Option<(Date, bool)>,
    duration_days: Option<i64>,
    name: String,
}

impl Partial {
    fn finish(self) -> Result<ClosureEvent, IcsError> {
        let bad = |reason: &str| IcsError::Event {
            line: self.line,
            reason: format!("event {:?}: {reason}", self.name),
        };
        let (first, _) = self.start.ok_or_else(|| bad("no DTSTART"))?;
        // DTEND is exclusive: a date, or a date-time at midnight, is the day after the
        // last one; any other date-time ends during its day, which is the last one.
        let last = match (self.end, self.duration_days) {
            (Some((end, _)), _) if end < first => return Err(bad("DTEND before DTSTART")),
            // An empty event (DTEND = DTSTART) still names its day.
            (Some((end, _)), _) if end == first => Some(first),
            (Some((end, true)), _) => end.yesterday().ok(),
            (Some((end, false)), _) => Some(end),
            // Checked before the span is built: a span of more days than jiff
            // represents (about 20,000 years) panics instead of failing.
            (None, Some(days)) if days > MAX_EVENT_DAYS => {
                return Err(bad(&format!("longer than {MAX_EVENT_DAYS} days")));
            }
            (None, Some(days)) if days > 1 => {
                first.checked_add(jiff::Span::new().days(days - 1)).ok()
            }
            // RFC 5545: a date DTSTART alone lasts one day; a date-time one, an instant.
            (None, _) => Some(first),
        }
        .ok_or_else(|| bad("end out of range"))?;
        let days = first.until(last).map(|s| s.get_days()).unwrap_or(i32::MAX);
        if i64::from(days) >= MAX_EVENT_DAYS {
            return Err(bad(&format!("longer than {MAX_EVENT_DAYS} days")));
        }
        Ok(ClosureEvent {
            first,
            last,
            name: self.name,
        })
    }
}

/// Joins folded lines (RFC 5545 §3.1: a line break followed by one space or tab
/// continues the line); keeps each logical line's first physical line number.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t'])
            && let Some((_, last)) = out.last_mut()
        {
            last.push_str(rest);
        } else if !raw.trim().is_empty() {
            out.push((i + 1, raw.to_owned()));
        }
    }
    out
}

/// `NAME;P1=V1;P2=V2:VALUE` → (upper-case name, upper-case params, value).
fn split_property(line: &str) -> Option<(String, Vec<String>, String)> {
    let colon = line.find(':')?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut parts = head.split(';');
    let name = parts.next()?.trim().to_ascii_uppercase();
    let params = parts.map(|p| p.trim().to_ascii_uppercase()).collect();
    Some((name, params, value.trim().to_owned()))
}

/// A `DATE` (`20261219`) or `DATE-TIME` (`20261219T000000[Z]`) value: its date and
/// whether it starts that day (a plain date, or a date-time at midnight). A `TZID`
/// does not move the date: closure calendars are written in the site's own zone.
fn parse_date(value: &str, params: &[String]) -> Result<(Date, bool), String> {
    let is_date_param = params.iter().any(|p| p == "VALUE=DATE");
    let digits = value
        .get(..8)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
    let Some(digits) = digits else {
        return Err(format!("{value:?} is not a date (YYYYMMDD)"));
    };
    let rest = &value[8..];
    let is_date = rest.is_empty();
    let at_midnight = rest
        .get(1..7)
        .is_some_and(|t| t == "000000" && matches!(&rest[7..], "" | "Z" | "z"));
    if !is_date && !rest.starts_with(['T', 't']) {
        return Err(format!("{value:?} is not a date (YYYYMMDD)"));
    }
    if is_date_param && !is_date {
        return Err(format!("{value:?}: VALUE=DATE with a time"));
    }
    let num = |r: std::ops::Range<usize>| digits[r].parse::<i16>().unwrap_or(0);
    let date = Date::new(num(0..4), num(4..6) as i8, num(6..8) as i8)
        .map_err(|_| format!("{value:?} is not a calendar date"))?;
    Ok((date, is_date || at_midnight))
}

/// `P3D`, `P1W`, `P1DT2H` (hours ignored): whole days.
fn parse_duration_days(value: &str) -> Result<i64, String> {
    let bad = || format!("{value:?}: only durations in days or weeks (P3D, P1W)");
    let v = value.strip_prefix('+').unwrap_or(value);
    let v = v.strip_prefix(['P', 'p']).ok_or_else(bad)?;
    let v = v.split(['T', 't']).next().unwrap_or("");
    if v.is_empty() {
        return Ok(0);
    }
    // The unit is the last character, which may be any character (not one byte).
    let Some((at, unit)) = v.char_indices().next_back() else {
        return Ok(0);
    };
    let n: i64 = v[..at].parse().map_err(|_| bad())?;
    match unit {
        'D' | 'd' => Ok(n),
        'W' | 'w' => n.checked_mul(7).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push(' '),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// Shaped like the French education ministry's published calendar
    /// (data.education.gouv.fr, "Calendrier scolaire", zone C): CRLF, a VTIMEZONE, a
    /// folded summary, DTEND exclusive, and an event with date-times.
    const ZONE_C: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//education.gouv.fr//Calendrier scolaire//FR\r\n\
X-WR-CALNAME:Vacances scolaires - Zone C\r\n\
BEGIN:VTIMEZONE\r\n\
TZID:Europe/Paris\r\n\
BEGIN:STANDARD\r\n\
DTSTART:19701025T030000\r\n\
TZOFFSETFROM:+0200\r\n\
TZOFFSETTO:+0100\r\n\
END:STANDARD\r\n\
END:VTIMEZONE\r\n\
BEGIN:VEVENT\r\n\
UID:noel-2026-zone-c@education.gouv.fr\r\n\
DTSTAMP:20260601T120000Z\r\n\
DTSTART;VALUE=DATE:20261219\r\n\
DTEND;VALUE=DATE:20270104\r\n\
SUMMARY:Vacances de No\u{eb}l - Zone C (Cr\u{e9}teil\\, Montpellier\\, Paris\r\n\
\x20\\, Toulouse\\, Versailles)\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
UID:hiver-2027-zone-c@education.gouv.fr\r\n\
DTSTART;TZID=Europe/Paris:20270213T000000\r\n\
DTEND;TZID=Europe/Paris:20270301T000000\r\n\
SUMMARY:Vacances d'Hiver - Zone C\r\n\
BEGIN:VALARM\r\n\
TRIGGER:-P1D\r\n\
DTSTART:19990101T000000Z\r\n\
ACTION:DISPLAY\r\n\
END:VALARM\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";

    /// The `ics_calendar` fuzz target's crash: a DURATION ending in a multi-byte
    /// character was split inside it (a panic); a number of weeks past i64 / 7 overflowed.
    #[test]
    fn a_duration_ending_in_any_character_is_an_error_not_a_panic() {
        let cal = |duration: &str| {
            format!(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260515\nDURATION:{duration}\nEND:VEVENT\nEND:VCALENDAR\n"
            )
        };
        for d in ["P1é", "Pé", "P9223372036854775807W"] {
            let e = parse_ics(&cal(d)).unwrap_err();
            assert!(matches!(e, IcsError::Event { line: 4, .. }), "{d}: {e:?}");
        }
        assert_eq!(parse_ics(&cal("P2W")).unwrap()[0].days().count(), 14);
    }

    /// CI's 20-s run of `ics_calendar` found this: a DURATION of more days than jiff's
    /// spans hold (`P21203203888888888D`) panicked while building the span.
    #[test]
    fn a_duration_past_any_date_is_an_error_not_a_panic() {
        let cal = |duration: &str| {
            format!(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260515\nDURATION:{duration}\nEND:VEVENT\nEND:VCALENDAR\n"
            )
        };
        for d in ["P21203203888888888D", "P7304485D", "P367D", "P1000000W"] {
            let e = parse_ics(&cal(d)).unwrap_err();
            assert!(e.to_string().contains("longer than 366 days"), "{d}: {e}");
        }
        let last = parse_ics(&cal("P366D")).unwrap()[0].last;
        assert_eq!(last, date(2027, 5, 15));
    }

    #[test]
    fn reads_a_school_holiday_calendar() {
        let events = parse_ics(ZONE_C).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].first, date(2026, 12, 19));
        assert_eq!(events[0].last, date(2027, 1, 3));
        assert_eq!(
            events[0].name,
            "Vacances de Noël - Zone C (Créteil, Montpellier, Paris, Toulouse, Versailles)"
        );
        assert_eq!(events[0].days().count(), 16);
        // A date-time end at midnight: the day before is the last one; the VALARM's
        // DTSTART is not the event's.
        assert_eq!(events[1].first, date(2027, 2, 13));
        assert_eq!(events[1].last, date(2027, 2, 28));
    }

    #[test]
    fn one_day_events_lf_endings_and_durations() {
        let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261224\n\
SUMMARY:Fermeture mairie\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART:20260814\nDURATION:P3D\n\
SUMMARY:Pont\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261231\n\
DTEND;VALUE=DATE:20270101\nEND:VEVENT\nEND:VCALENDAR\n";
        let events = parse_ics(text).unwrap();
        let spans: Vec<(Date, Date)> = events.iter().map(|e| (e.first, e.last)).collect();
        assert_eq!(
            spans,
            vec![
                (date(2026, 12, 24), date(2026, 12, 24)),
                (date(2026, 8, 14), date(2026, 8, 16)),
                (date(2026, 12, 31), date(2026, 12, 31)),
            ]
        );
        assert_eq!(events[2].name, "");
    }

    #[test]
    fn bad_calendars_name_the_line() {
        assert_eq!(parse_ics("hello"), Err(IcsError::NotCalendar));
        let cal = |body: &str| {
            format!("BEGIN:VCALENDAR\nBEGIN:VEVENT\n{body}END:VEVENT\nEND:VCALENDAR\n")
        };
        let err = |body: &str| parse_ics(&cal(body)).unwrap_err().to_string();
        assert!(
            err("SUMMARY:x\n").contains("no DTSTART"),
            "{}",
            err("SUMMARY:x\n")
        );
        assert!(err("DTSTART;VALUE=DATE:20261340\n").starts_with("line 3:"));
        assert!(err("DTSTART;VALUE=DATE:2026-12-24\n").contains("not a date"));
        assert!(
            err("DTSTART;VALUE=DATE:20261224\nDTEND;VALUE=DATE:20261220\n")
                .contains("DTEND before DTSTART")
        );
        assert!(
            err("DTSTART;VALUE=DATE:20261224\nDTEND;VALUE=DATE:20361224\n").contains("longer than")
        );
        assert!(err("DTSTART;VALUE=DATE:20261224\nRRULE:FREQ=YEARLY\n").contains("recurring"));
        assert!(
            parse_ics("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261224\n")
                .unwrap_err()
                .to_string()
                .contains("without END:VEVENT")
        );
    }
}
