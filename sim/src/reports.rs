//! From a timeline to the reports the device's agent would have sent. Pure.
//!
//! Like the real agent (`agent/src/builder.rs`): the agent starts 20–60 s after boot,
//! its first report carries `BOOT` (at the boot time) and `AGENT_START`; reports of one
//! boot session tile it exactly (each starts where the previous ended); a sleep is
//! reported as `SLEEP` + `RESUME` in the report being built at resume; the last report
//! of a session ends at the shutdown and carries `SHUTDOWN`; nothing is reported while
//! off. Report boundaries fall on a per-device grid of `interval` (e.g. every 60 s in
//! real time, every hour for backfilled history — real agents cut every 60 s; longer
//! reports keep history small and sum to the same state times).
//!
//! `seq` is the report's start in Unix seconds: strictly increasing per device, and
//! the same report gets the same seq in every run, so re-sending history is harmless
//! (the collector dedups on (org, device, seq)). Every time is a whole second.

use jiff::tz::TimeZone;
use veille_proto::v1::{Event, EventKind, Report};

use crate::archetype::Power;
use crate::fleet::SimDevice;
use crate::rng::{Rng, uuid_like};
use crate::timeline::{Mode, Timeline, timeline};

/// How reports are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Report length on the grid, in whole seconds (≥ 1, ≤ one day).
    pub interval_s: i64,
}

impl Cut {
    /// Where this device's grid is offset (spreads a fleet's sends over the interval).
    pub fn phase_ms(&self, dev: &SimDevice) -> i64 {
        (dev.key(&[0x9A5E]) % self.interval_s.max(1) as u64) as i64 * 1000
    }

    fn next_grid(&self, t: i64, phase: i64) -> i64 {
        let i = self.interval_s.max(1) * 1000;
        t + i - (t - phase).rem_euclid(i)
    }
}

/// The reports of `dev` lying entirely in `[from_ms, to_ms)`.
pub fn reports(
    dev: &SimDevice,
    tz: &TimeZone,
    from_ms: i64,
    to_ms: i64,
    mode: Mode,
    cut: Cut,
) -> Vec<Report> {
    let tl = timeline(dev, tz, from_ms, to_ms, mode);
    reports_of(dev, &tl, from_ms, to_ms, cut)
}

/// [`reports`] over an already built timeline.
pub fn reports_of(
    dev: &SimDevice,
    tl: &Timeline,
    from_ms: i64,
    to_ms: i64,
    cut: Cut,
) -> Vec<Report> {
    let phase = cut.phase_ms(dev);
    let (util_active, util_idle) = dev.archetype.cpu_util();
    let rule = dev.archetype.activity_rule() as i32;
    let mut out = Vec::new();
    for session in tl.sessions() {
        if session.end_ms <= from_ms || session.boot_ms >= to_ms {
            continue;
        }
        let spans = &tl.spans[session.spans.clone()];
        let mut rng = Rng::new(&[dev.key(&[0xB007, session.boot_ms as u64])]);
        let first = session.boot_ms + i64::from(rng.range(20, 61)) * 1000;
        if first >= session.end_ms {
            continue; // shut down before the agent started
        }
        let boot_id = uuid_like(&[dev.key(&[0xB1D, session.boot_ms as u64])]);
        let mut t = first;
        if from_ms > first {
            // Jump to the last cut at or before `from`; earlier reports are not wanted.
            let g = cut.next_grid(from_ms, phase) - cut.interval_s * 1000;
            t = t.max(g);
        }
        let mut k = spans.partition_point(|s| s.end_ms <= t);
        while t < session.end_ms && t < to_ms {
            let next = cut.next_grid(t, phase).min(session.end_ms);
            if next > to_ms {
                break;
            }
            if t >= from_ms {
                let (mut active, mut idle, mut sleep) = (0u64, 0u64, 0u64);
                let mut events = Vec::new();
                let event = |kind: EventKind, at: i64| Event {
                    kind: kind as i32,
                    at_unix_ms: at,
                    count: 1,
                    detail: String::new(),
                };
                if t == first {
                    events.push(event(EventKind::Boot, session.boot_ms));
                    events.push(Event {
                        detail: veille_proto::defaults::VERSION.into(),
                        ..event(EventKind::AgentStart, first)
                    });
                }
                let mut j = k;
                while j < spans.len() && spans[j].start_ms < next {
                    let s = &spans[j];
                    let len = (s.end_ms.min(next) - s.start_ms.max(t)).max(0) as u64;
                    match s.power {
                        Power::Active => active += len,
                        Power::Idle => idle += len,
                        Power::Sleep => {
                            sleep += len;
                            let resume = s.end_ms;
                            if resume > t
                                && (resume < next || next == session.end_ms)
                                && resume <= next
                            {
                                events.push(event(EventKind::Sleep, s.start_ms));
                                events.push(event(EventKind::Resume, resume));
                            }
                        }
                        Power::Off => {}
                    }
                    j += 1;
                }
                if session.shutdown && next == session.end_ms {
                    events.push(event(EventKind::Shutdown, next));
                }
                let awake = active + idle;
                // Rounded to a thousandth, as the agent sends it.
                let cpu_util = if awake == 0 {
                    0.0
                } else {
                    veille_proto::units::cpu_permille(
                        (active as f64 * util_active + idle as f64 * util_idle) / awake as f64,
                    )
                };
                out.push(Report {
                    boot_id: boot_id.clone(),
                    seq: (t / 1000) as u64,
                    start_unix_ms: t,
                    end_unix_ms: next,
                    boot_time_unix_s: session.boot_ms / 1000,
                    uptime_s: ((next - session.boot_ms) / 1000) as u64,
                    active_ms: active,
                    idle_ms: idle,
                    sleep_ms: sleep,
                    activity_rule: rule,
                    events,
                    cpu_util,
                    measurements: Vec::new(),
                    temperatures: Vec::new(),
                });
            }
            t = next;
            while k < spans.len() && spans[k].end_ms <= t {
                k += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archetype::Archetype;
    use crate::fleet::FleetSpec;
    use jiff::Timestamp;
    use veille_proto::v1::ReportBatch;

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }
    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }
    const HOUR: Cut = Cut { interval_s: 3600 };
    const MINUTE: Cut = Cut { interval_s: 60 };

    fn has(r: &Report, k: EventKind) -> bool {
        r.events.iter().any(|e| e.kind == k as i32)
    }

    #[test]
    fn reports_tile_sessions_pass_validation_and_are_deterministic() {
        let fleet = FleetSpec::new(5, 60);
        let (from, to) = (ms("2026-10-20T00:00:00Z"), ms("2026-11-20T00:00:00Z"));
        let now = to;
        for dev in fleet.iter() {
            let rs = reports(&dev, &paris(), from, to, Mode::Realistic, HOUR);
            assert!(!rs.is_empty(), "{:?}", dev.archetype);
            assert_eq!(rs, reports(&dev, &paris(), from, to, Mode::Realistic, HOUR));
            for chunk in rs.chunks(veille_proto::defaults::MAX_REPORTS_PER_BATCH) {
                let batch = ReportBatch {
                    device_id: dev.device_id.clone(),
                    reports: chunk.to_vec(),
                    inventory: Some(dev.inventory("0.1.0")),
                    agent_version: "0.1.0".into(),
                };
                veille_proto::validate_batch(&batch, now).unwrap();
            }
            for w in rs.windows(2) {
                assert!(w[0].seq < w[1].seq);
                if w[0].boot_id == w[1].boot_id {
                    assert_eq!(
                        w[0].end_unix_ms, w[1].start_unix_ms,
                        "a hole inside a session"
                    );
                    assert!(!has(&w[0], EventKind::Shutdown));
                    assert!(!has(&w[1], EventKind::Boot));
                } else {
                    // Off in between: the session ended with SHUTDOWN, the next began with BOOT.
                    assert!(has(&w[0], EventKind::Shutdown), "{:?}", w[0]);
                    assert!(has(&w[1], EventKind::Boot));
                    assert!(w[1].boot_time_unix_s * 1000 > w[0].end_unix_ms);
                }
            }
        }
    }

    #[test]
    fn a_later_start_or_a_finer_window_gives_the_same_reports() {
        let fleet = FleetSpec::new(11, 20);
        let to = ms("2026-11-20T00:00:00Z");
        for dev in fleet.iter() {
            let all = reports(
                &dev,
                &paris(),
                ms("2026-10-01T00:00:00Z"),
                to,
                Mode::Realistic,
                HOUR,
            );
            let tail = reports(
                &dev,
                &paris(),
                ms("2026-11-10T00:00:00Z"),
                to,
                Mode::Realistic,
                HOUR,
            );
            let cut = ms("2026-11-10T00:00:00Z");
            let expected: Vec<_> = all
                .iter()
                .filter(|r| r.start_unix_ms >= cut)
                .cloned()
                .collect();
            assert_eq!(tail, expected);
            // Real time sends window after window: they add up to the whole.
            let day = ms("2026-11-18T00:00:00Z");
            let whole = reports(
                &dev,
                &paris(),
                day,
                day + 86_400_000,
                Mode::Realistic,
                MINUTE,
            );
            let mut pieces = Vec::new();
            let mut t = day;
            while t < day + 86_400_000 {
                pieces.extend(reports(
                    &dev,
                    &paris(),
                    t,
                    t + 3_600_000,
                    Mode::Realistic,
                    MINUTE,
                ));
                t += 3_600_000;
            }
            assert!(pieces.len() <= whole.len() && pieces.iter().all(|r| whole.contains(r)));
        }
    }

    #[test]
    fn state_times_follow_the_archetype() {
        let fleet = FleetSpec::new(2, 200);
        let (from, to) = (ms("2026-11-02T00:00:00Z"), ms("2026-11-30T00:00:00Z"));
        let share = |a: Archetype, f: fn(&Report) -> u64| -> f64 {
            let mut part = 0u64;
            let mut n = 0;
            for d in fleet.iter().filter(|d| d.archetype == a) {
                for r in reports(&d, &paris(), from, to, Mode::Realistic, HOUR) {
                    part += f(&r);
                }
                n += 1;
            }
            part as f64 / (n as f64 * (to - from) as f64)
        };
        let on = |r: &Report| r.active_ms + r.idle_ms + r.sleep_ms;
        let server_on = share(Archetype::Server, on);
        assert!(server_on > 0.98, "servers on {server_on}");
        let desktop_on = share(Archetype::Desktop, on);
        assert!((0.2..0.8).contains(&desktop_on), "desktops on {desktop_on}");
        let laptop_sleep = share(Archetype::Laptop, |r| r.sleep_ms);
        assert!(laptop_sleep > 0.05, "laptops asleep {laptop_sleep}");
        let kiosk_on = share(Archetype::Kiosk, on);
        assert!((0.5..0.65).contains(&kiosk_on), "kiosks on {kiosk_on}");
    }

    #[test]
    fn keep_awake_reports_every_interval() {
        let fleet = FleetSpec::new(4, 50);
        let t0 = ms("2026-11-21T02:00:00Z"); // a Saturday night
        for dev in fleet.iter() {
            let rs = reports(
                &dev,
                &paris(),
                t0,
                t0 + 600_000,
                Mode::KeepAwake {
                    since_ms: t0 - 86_400_000,
                },
                MINUTE,
            );
            assert!((9..=10).contains(&rs.len()), "{}", rs.len());
            assert!(
                rs.iter()
                    .all(|r| r.sleep_ms == 0 && r.end_unix_ms - r.start_unix_ms == 60_000)
            );
        }
    }
}
