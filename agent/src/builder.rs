//! Accumulates samples into reports that tile time exactly.
//!
//! A report's end is its start plus the sum of its samples' durations (measured on
//! CLOCK_BOOTTIME), and the next report starts where the previous one ended, so within
//! a running agent there is neither overlap nor hole by construction. The wall clock
//! only anchors the first report; if it is later stepped by more than
//! [`REANCHOR_THRESHOLD_MS`] forward, the builder re-anchors and leaves the skipped
//! time as a hole (the collector then counts it as unknown, which is honest); a step
//! backwards cannot be followed without overlapping, so reports keep their own time
//! base and a warning is logged by the caller.

use veille_proto::v1::{ActivityRule, Event, EventKind, Report};

use crate::sampler::Sample;

/// A wall-clock step larger than this (between the builder's time base and the real
/// wall clock) moves the time base.
pub const REANCHOR_THRESHOLD_MS: i64 = 5_000;

/// Identity of the boot session reports belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct BootSession {
    pub boot_id: String,
    pub boot_time_unix_s: i64,
}

#[derive(Debug)]
pub struct Builder {
    session: BootSession,
    start_unix_ms: i64,
    acc: Sample,
    rules: (bool, bool),
    events: Vec<Event>,
}

/// What [`Builder::reanchor`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reanchor {
    Kept,
    /// The wall clock jumped forward: the time base moved, leaving a hole of this length.
    MovedForward {
        hole_ms: i64,
    },
    /// The wall clock is behind the time base by this much; the base was kept.
    WallBehind {
        by_ms: i64,
    },
}

impl Builder {
    pub fn new(session: BootSession, start_unix_ms: i64) -> Self {
        Self {
            session,
            start_unix_ms,
            acc: Sample::default(),
            rules: (false, false),
            events: Vec::new(),
        }
    }

    pub fn add(&mut self, s: &Sample) {
        self.acc.elapsed_ms += s.elapsed_ms;
        self.acc.sleep_ms += s.sleep_ms;
        self.acc.active_ms += s.active_ms;
        self.acc.idle_ms += s.idle_ms;
        self.acc.cpu_busy_ticks += s.cpu_busy_ticks;
        self.acc.cpu_total_ticks += s.cpu_total_ticks;
        match s.rule {
            Some(ActivityRule::UserInput) => self.rules.0 = true,
            Some(ActivityRule::CpuBusy) => self.rules.1 = true,
            _ => {}
        }
    }

    pub fn push_event(&mut self, kind: EventKind, at_unix_ms: i64, count: u64, detail: &str) {
        self.events.push(Event {
            kind: kind as i32,
            at_unix_ms,
            count,
            detail: detail.to_owned(),
        });
    }

    /// Time accumulated since the last cut.
    pub fn accumulated_ms(&self) -> u64 {
        self.acc.elapsed_ms
    }

    /// Where the report being built would end now.
    pub fn projected_end_unix_ms(&self) -> i64 {
        self.start_unix_ms
            .saturating_add(i64::try_from(self.acc.elapsed_ms).unwrap_or(i64::MAX))
    }

    /// Ends the current report and starts the next where it ended. Returns `None` when
    /// no time has accumulated (events then wait for the next report).
    pub fn cut(&mut self, seq: u64, uptime_s: u64) -> Option<Report> {
        if self.acc.elapsed_ms == 0 {
            return None;
        }
        let end = self.projected_end_unix_ms();
        let awake_ticks = self.acc.cpu_total_ticks;
        let report = Report {
            boot_id: self.session.boot_id.clone(),
            seq,
            start_unix_ms: self.start_unix_ms,
            end_unix_ms: end,
            boot_time_unix_s: self.session.boot_time_unix_s,
            uptime_s,
            active_ms: self.acc.active_ms,
            idle_ms: self.acc.idle_ms,
            sleep_ms: self.acc.sleep_ms,
            activity_rule: match self.rules {
                (true, true) => ActivityRule::Mixed,
                (true, false) => ActivityRule::UserInput,
                (false, true) => ActivityRule::CpuBusy,
                (false, false) => ActivityRule::Unspecified,
            } as i32,
            events: std::mem::take(&mut self.events),
            cpu_util: if awake_ticks > 0 {
                veille_proto::units::cpu_permille(
                    self.acc.cpu_busy_ticks as f64 / awake_ticks as f64,
                )
            } else {
                0.0
            },
            measurements: Vec::new(),
            temperatures: Vec::new(),
        };
        self.start_unix_ms = end;
        self.acc = Sample::default();
        self.rules = (false, false);
        Some(report)
    }

    /// Compares the time base with the wall clock right after a cut.
    pub fn reanchor(&mut self, wall_unix_ms: i64) -> Reanchor {
        let projected = self.projected_end_unix_ms();
        let drift = wall_unix_ms - projected;
        if self.acc.elapsed_ms != 0 || drift.abs() <= REANCHOR_THRESHOLD_MS {
            Reanchor::Kept
        } else if drift > 0 {
            self.start_unix_ms = wall_unix_ms;
            Reanchor::MovedForward { hole_ms: drift }
        } else {
            Reanchor::WallBehind { by_ms: -drift }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> BootSession {
        BootSession {
            boot_id: "boot-a".into(),
            boot_time_unix_s: 1_700_000_000,
        }
    }

    fn awake(ms: u64, active: bool) -> Sample {
        Sample {
            elapsed_ms: ms,
            active_ms: if active { ms } else { 0 },
            idle_ms: if active { 0 } else { ms },
            cpu_busy_ticks: if active { 50 } else { 1 },
            cpu_total_ticks: 100,
            rule: Some(ActivityRule::UserInput),
            ..Default::default()
        }
    }

    #[test]
    fn reports_tile_time_without_overlap_or_hole() {
        let t0 = 1_700_000_100_000;
        let mut b = Builder::new(session(), t0);
        let mut reports = Vec::new();
        for seq in 1..=5 {
            for i in 0..6 {
                // Irregular sample lengths, as a loaded machine produces.
                b.add(&awake(9_990 + (i * 7) % 30, i % 2 == 0));
            }
            reports.push(b.cut(seq, 0).unwrap());
        }
        assert_eq!(reports[0].start_unix_ms, t0);
        for pair in reports.windows(2) {
            assert_eq!(pair[0].end_unix_ms, pair[1].start_unix_ms);
        }
        for r in &reports {
            let len = (r.end_unix_ms - r.start_unix_ms) as u64;
            assert_eq!(r.active_ms + r.idle_ms + r.sleep_ms, len);
            assert!(
                veille_proto::validate::validate_report("r", r, r.end_unix_ms).is_ok(),
                "{r:?}"
            );
        }
    }

    #[test]
    fn cpu_util_is_the_mean_over_awake_ticks_and_rules_are_merged() {
        let mut b = Builder::new(session(), 1_700_000_100_000);
        b.add(&awake(10_000, true));
        let mut cpu = awake(10_000, false);
        cpu.rule = Some(ActivityRule::CpuBusy);
        b.add(&cpu);
        let r = b.cut(1, 42).unwrap();
        assert!((r.cpu_util - 51.0 / 200.0).abs() < 1e-9);
        assert_eq!(r.activity_rule, ActivityRule::Mixed as i32);
        assert_eq!(r.uptime_s, 42);
    }

    #[test]
    fn an_empty_cut_keeps_events_for_the_next_report() {
        let mut b = Builder::new(session(), 1_700_000_100_000);
        b.push_event(EventKind::AgentStart, 1_700_000_100_000, 1, "");
        assert!(b.cut(1, 0).is_none());
        b.add(&awake(1_000, false));
        let r = b.cut(1, 0).unwrap();
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].kind, EventKind::AgentStart as i32);
        b.add(&awake(1_000, false));
        assert!(b.cut(2, 0).unwrap().events.is_empty());
    }

    #[test]
    fn a_forward_clock_step_leaves_a_hole_a_backward_one_is_reported() {
        let t0 = 1_700_000_100_000;
        let mut b = Builder::new(session(), t0);
        b.add(&awake(60_000, true));
        let r1 = b.cut(1, 0).unwrap();
        assert_eq!(b.reanchor(r1.end_unix_ms + 1_000), Reanchor::Kept);
        assert_eq!(
            b.reanchor(r1.end_unix_ms + 3_600_000),
            Reanchor::MovedForward { hole_ms: 3_600_000 }
        );
        b.add(&awake(60_000, true));
        let r2 = b.cut(2, 0).unwrap();
        assert_eq!(r2.start_unix_ms, r1.end_unix_ms + 3_600_000);
        assert_eq!(
            b.reanchor(r2.end_unix_ms - 60_000),
            Reanchor::WallBehind { by_ms: 60_000 }
        );
        b.add(&awake(1_000, true));
        assert_eq!(
            b.cut(3, 0).unwrap().start_unix_ms,
            r2.end_unix_ms,
            "no overlap"
        );
    }
}
