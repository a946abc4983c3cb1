//! From day plans to a device's timeline (spans of one power state, Unix ms) and its
//! boot sessions. Pure.
//!
//! Any period `[from, to)` is rebuilt from [`LOOKBACK_DAYS`] before `from`, long enough
//! to contain a patch-night reboot (see [`crate::archetype`]) and a workday evening, so
//! the sessions seen in `[from, to)` (boot times included) are the same whatever
//! `from` is: history generated in two runs over overlapping periods agrees.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::archetype::{Power, day_plan};
use crate::fleet::SimDevice;
use crate::rng::Rng;

pub const LOOKBACK_DAYS: i64 = 40;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start_ms: i64,
    pub end_ms: i64,
    pub power: Power,
}

/// A boot session: `[boot_ms, end_ms)` with the indices of its spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub boot_ms: i64,
    pub end_ms: i64,
    /// The machine was shut down at `end_ms` (false when the session runs past the
    /// timeline's horizon).
    pub shutdown: bool,
    pub spans: std::ops::Range<usize>,
}

/// Spans covering `[start_ms, horizon_ms)` with no two neighbours in the same state.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub spans: Vec<Span>,
    pub start_ms: i64,
    pub horizon_ms: i64,
}

/// The local date of an instant.
pub fn local_date(ms: i64, tz: &TimeZone) -> Date {
    Timestamp::from_millisecond(ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
        .date()
}

fn day_start_ms(date: Date, tz: &TimeZone) -> i64 {
    date.to_zoned(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(0)
}

/// How the timeline is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Day plans as they are (off at night, asleep, ...).
    Realistic,
    /// Load testing: booted at this instant and never off or asleep again; the day
    /// plans still say when the machine is active.
    KeepAwake { since_ms: i64 },
}

/// The timeline of `dev` from before `from_ms` (see the module doc) to the end of
/// `to_ms`'s local day.
pub fn timeline(dev: &SimDevice, tz: &TimeZone, from_ms: i64, to_ms: i64, mode: Mode) -> Timeline {
    let (first_day, clip, mut carried) = match mode {
        Mode::Realistic => {
            let d = local_date(from_ms, tz)
                .checked_sub(LOOKBACK_DAYS.days())
                .unwrap_or(Date::MIN);
            (d, i64::MIN, Power::Off)
        }
        Mode::KeepAwake { since_ms } => (local_date(since_ms, tz), since_ms, Power::Idle),
    };
    let last_day = local_date(to_ms, tz);
    let mut spans: Vec<Span> = Vec::new();
    let mut date = first_day;
    let mut start = day_start_ms(date, tz);
    let timeline_start = start.max(clip);
    while date <= last_day {
        let next_date = date.tomorrow().unwrap_or(Date::MAX);
        let next = day_start_ms(next_date, tz);
        let regular = next - start == DAY_MS;
        let at = |minute: u32| -> i64 {
            if regular {
                start + i64::from(minute) * 60_000
            } else {
                date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
                    .to_zoned(tz.clone())
                    .map(|z| z.timestamp().as_millisecond())
                    .unwrap_or(start + i64::from(minute) * 60_000)
                    .clamp(start, next)
            }
        };
        let day_key = (start + DAY_MS / 2).div_euclid(DAY_MS) as u64;
        let mut rng = Rng::new(&[dev.key(&[0xDA7, day_key])]);
        let (plan, end) = day_plan(dev.archetype, dev.habits, &mut rng, date, carried);
        carried = end;
        for (i, (minute, power)) in plan.iter().enumerate() {
            let s = at(*minute);
            let e = plan.get(i + 1).map(|x| at(x.0)).unwrap_or(next);
            let power = match (mode, power) {
                (Mode::KeepAwake { .. }, Power::Off | Power::Sleep) => Power::Idle,
                _ => *power,
            };
            // Never before the previous span's end: on the spring-forward day, plan
            // minutes inside the missing hour map past later ones (02:58 → 03:58 but
            // 03:00 → 03:00), which would make spans overlap and reports count more
            // time than they cover.
            let floor = spans
                .last()
                .map_or(timeline_start, |l| l.end_ms.max(timeline_start));
            let (s, e) = (s.max(floor), e.max(floor));
            if e <= s {
                continue;
            }
            match spans.last_mut() {
                Some(last) if last.power == power && last.end_ms == s => last.end_ms = e,
                _ => spans.push(Span {
                    start_ms: s,
                    end_ms: e,
                    power,
                }),
            }
        }
        date = next_date;
        start = next;
        if next_date == Date::MAX {
            break;
        }
    }
    Timeline {
        spans,
        start_ms: timeline_start,
        horizon_ms: start,
    }
}

impl Timeline {
    /// Maximal runs of spans that are not off.
    pub fn sessions(&self) -> Vec<Session> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.spans.len() {
            if !self.spans[i].power.is_on() {
                i += 1;
                continue;
            }
            let first = i;
            while i < self.spans.len() && self.spans[i].power.is_on() {
                i += 1;
            }
            let end_ms = self.spans[i - 1].end_ms;
            out.push(Session {
                boot_ms: self.spans[first].start_ms,
                end_ms,
                shutdown: end_ms < self.horizon_ms,
                spans: first..i,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archetype::Archetype;
    use crate::fleet::FleetSpec;

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn spans_tile_the_timeline_and_sessions_are_bounded() {
        // Across both DST changes: spring forward (29 March 2026: 02:00–03:00 does not
        // exist, and plan minutes inside it once made spans overlap) and fall back.
        // The demo's fleet (seed 1, 50 devices) is among them.
        let periods = [
            ("2026-03-01T00:00:00Z", "2026-04-15T00:00:00Z"),
            ("2026-10-01T00:00:00Z", "2026-11-20T00:00:00Z"),
        ];
        let (a, b) = (FleetSpec::new(3, 40), FleetSpec::new(1, 50));
        for (dev, (from, to)) in a
            .iter()
            .chain(b.iter())
            .flat_map(|d| periods.map(|(f, t)| (d.clone(), (ms(f), ms(t)))))
        {
            let tl = timeline(&dev, &paris(), from, to, Mode::Realistic);
            assert_eq!(tl.spans[0].start_ms, tl.start_ms);
            assert_eq!(tl.spans.last().unwrap().end_ms, tl.horizon_ms);
            for w in tl.spans.windows(2) {
                assert_eq!(w[0].end_ms, w[1].start_ms);
                assert_ne!(w[0].power, w[1].power);
            }
            for s in tl.sessions() {
                assert!(s.end_ms - s.boot_ms <= 36 * DAY_MS, "{dev:?}: {s:?}");
            }
        }
    }

    #[test]
    fn overlapping_periods_agree() {
        let fleet = FleetSpec::new(9, 30);
        let to = ms("2026-11-20T00:00:00Z");
        for dev in fleet.iter() {
            let a = timeline(
                &dev,
                &paris(),
                ms("2026-09-01T00:00:00Z"),
                to,
                Mode::Realistic,
            );
            let b = timeline(
                &dev,
                &paris(),
                ms("2026-11-01T00:00:00Z"),
                to,
                Mode::Realistic,
            );
            let from = ms("2026-11-01T00:00:00Z");
            let after = |t: &Timeline| -> Vec<Session> {
                t.sessions()
                    .into_iter()
                    .filter(|s| s.end_ms > from)
                    .map(|s| Session { spans: 0..0, ..s })
                    .collect()
            };
            assert_eq!(after(&a), after(&b), "{:?}", dev.archetype);
        }
    }

    #[test]
    fn servers_run_for_weeks_and_keep_awake_never_stops() {
        let fleet = FleetSpec::new(1, 10);
        let server = fleet
            .iter()
            .find(|d| d.archetype == Archetype::Server)
            .unwrap();
        let (from, to) = (ms("2026-11-01T00:00:00Z"), ms("2026-11-20T00:00:00Z"));
        let tl = timeline(&server, &paris(), from, to, Mode::Realistic);
        let sessions: Vec<_> = tl
            .sessions()
            .into_iter()
            .filter(|s| s.end_ms > from)
            .collect();
        // One reboot at patch night (11 November), otherwise on.
        assert_eq!(sessions.len(), 2, "{sessions:?}");
        let desktop = fleet
            .iter()
            .find(|d| d.archetype == Archetype::Desktop)
            .unwrap();
        let tl = timeline(
            &desktop,
            &paris(),
            from,
            to,
            Mode::KeepAwake {
                since_ms: from - 3_600_000,
            },
        );
        assert_eq!(tl.sessions().len(), 1);
        assert_eq!(tl.start_ms, from - 3_600_000);
    }
}
