//! Gap inference: for one device and a period, what was every millisecond?
//!
//! - **covered** by a report (the energy model then says measured or modelled);
//! - **off**, inferred: from the end of a boot session's last report to the
//!   `boot_time` of the next boot session, or, for the last session known, after a
//!   report that carries a `SHUTDOWN` event;
//! - **unknown**: everything else. Silence inside one boot session (agent killed,
//!   restarted, upgraded) is never off; nor is the time before the first report ever,
//!   after the last report of a session that did not say `SHUTDOWN`, or between a
//!   boot and the agent's first report of that boot (the agent starting).
//!
//! One refinement of DESIGN.md's rule: when the last report of a session carries
//! `AGENT_STOP` and no `SHUTDOWN`, the agent told us it stopped *while the machine kept
//! running* (the contract says `AGENT_STOP` is "not evidence of power state"), so the
//! silence up to the next boot is unknown, not off.
//!
//! Totals are integer milliseconds and add up to the period length exactly. Shares are
//! computed from them as unrounded percentages; rounding for display is the consumer's
//! job (e.g. largest remainder, so that displayed shares still sum to 100).
//!
//! Pure: no I/O, no clock.

use veille_proto::v1::{EventKind, Report};

/// What a segment of time was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Covered by `reports[i]` (index into the slice given to [`classify`]).
    Report(usize),
    /// Inferred off: between two boot sessions, or after a `SHUTDOWN`.
    Off,
    /// No evidence either way: a coverage gap.
    Unknown,
}

/// A half-open interval `[start_ms, end_ms)` of wall-clock Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub kind: SegmentKind,
}

impl Segment {
    pub fn len_ms(&self) -> u64 {
        self.end_ms.abs_diff(self.start_ms)
    }
}

/// Milliseconds of the period per kind; `covered_ms + off_ms + unknown_ms` equals the
/// period length exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub covered_ms: u64,
    pub off_ms: u64,
    pub unknown_ms: u64,
}

/// Percentages of the period, unrounded; they sum to 100 up to floating-point error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    pub covered_pct: f64,
    pub off_pct: f64,
    pub unknown_pct: f64,
}

impl Totals {
    pub fn period_ms(&self) -> u64 {
        self.covered_ms + self.off_ms + self.unknown_ms
    }

    /// `None` for an empty period.
    pub fn shares(&self) -> Option<Shares> {
        let total = self.period_ms();
        if total == 0 {
            return None;
        }
        let pct = |ms: u64| ms as f64 * 100.0 / total as f64;
        Some(Shares {
            covered_pct: pct(self.covered_ms),
            off_pct: pct(self.off_ms),
            unknown_pct: pct(self.unknown_ms),
        })
    }
}

/// The classification of a period `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub from_ms: i64,
    pub to_ms: i64,
    /// In time order, contiguous, non-empty, clipped to the period; adjacent `Off` or
    /// `Unknown` segments are merged.
    pub segments: Vec<Segment>,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GapError {
    #[error("period ends before it starts: from_ms = {from_ms}, to_ms = {to_ms}")]
    InvertedPeriod { from_ms: i64, to_ms: i64 },
}

/// Classifies every millisecond of `[from_ms, to_ms)` for one device.
///
/// `reports` are that device's reports (any order: they are ordered by start time,
/// then seq). Reports with `end_ms <= start_ms` are ignored; a report overlapping an
/// earlier one (the contract forbids it) only covers what was not already covered, so
/// no millisecond is counted twice.
///
/// The caller should clip `to_ms` to "now": a trailing session that ended with
/// `SHUTDOWN` is inferred off up to `to_ms`, future included.
pub fn classify(reports: &[Report], from_ms: i64, to_ms: i64) -> Result<Coverage, GapError> {
    if to_ms < from_ms {
        return Err(GapError::InvertedPeriod { from_ms, to_ms });
    }
    let mut order: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].end_unix_ms > reports[i].start_unix_ms)
        .collect();
    order.sort_by_key(|&i| (reports[i].start_unix_ms, reports[i].seq));

    // The whole timeline, unclipped, from -inf to +inf.
    let mut raw: Vec<Segment> = Vec::new();
    let mut prev: Option<usize> = None;
    let mut cursor = i64::MIN;
    for i in order {
        let r = &reports[i];
        let start = r.start_unix_ms.max(cursor);
        if start >= r.end_unix_ms {
            continue;
        }
        match prev {
            None => raw.push(seg(i64::MIN, start, SegmentKind::Unknown)),
            Some(p) if start > cursor => {
                let last = &reports[p];
                if last.boot_id == r.boot_id || stopped_agent_only(last) {
                    raw.push(seg(cursor, start, SegmentKind::Unknown));
                } else {
                    // Off until this boot; from boot to the first report, the agent
                    // was starting: unknown. A boot time outside the gap (clock
                    // skew) is clamped into it.
                    let boot_ms = r.boot_time_unix_s.saturating_mul(1000).clamp(cursor, start);
                    raw.push(seg(cursor, boot_ms, SegmentKind::Off));
                    raw.push(seg(boot_ms, start, SegmentKind::Unknown));
                }
            }
            Some(_) => {}
        }
        raw.push(seg(start, r.end_unix_ms, SegmentKind::Report(i)));
        cursor = r.end_unix_ms;
        prev = Some(i);
    }
    let trailing = match prev {
        Some(p) if has_event(&reports[p], EventKind::Shutdown) => SegmentKind::Off,
        _ => SegmentKind::Unknown,
    };
    raw.push(seg(cursor, i64::MAX, trailing));

    // Clip to the period, drop empties, merge neighbours of the same inferred kind.
    let mut segments: Vec<Segment> = Vec::new();
    let mut totals = Totals::default();
    for s in raw {
        let (start, end) = (s.start_ms.max(from_ms), s.end_ms.min(to_ms));
        if start >= end {
            continue;
        }
        let s = seg(start, end, s.kind);
        match s.kind {
            SegmentKind::Report(_) => totals.covered_ms += s.len_ms(),
            SegmentKind::Off => totals.off_ms += s.len_ms(),
            SegmentKind::Unknown => totals.unknown_ms += s.len_ms(),
        }
        match segments.last_mut() {
            Some(last) if last.kind == s.kind && !matches!(s.kind, SegmentKind::Report(_)) => {
                last.end_ms = s.end_ms;
            }
            _ => segments.push(s),
        }
    }
    // The trailing segment reaches i64::MAX, so the period is always fully covered;
    // only a period ending at i64::MAX itself would lose its last millisecond.
    debug_assert!(to_ms == i64::MAX || totals.period_ms() == to_ms.abs_diff(from_ms));
    Ok(Coverage {
        from_ms,
        to_ms,
        segments,
        totals,
    })
}

fn seg(start_ms: i64, end_ms: i64, kind: SegmentKind) -> Segment {
    Segment {
        start_ms,
        end_ms,
        kind,
    }
}

fn has_event(r: &Report, kind: EventKind) -> bool {
    r.events.iter().any(|e| e.kind == kind as i32)
}

/// The agent said it stopped and the machine did not say it was shutting down.
fn stopped_agent_only(r: &Report) -> bool {
    has_event(r, EventKind::AgentStop) && !has_event(r, EventKind::Shutdown)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use veille_proto::v1::Event;

    pub(crate) const H: i64 = 3_600_000;
    /// 2025-03-03 00:00:00 UTC, a Monday.
    pub(crate) const DAY0: i64 = 1_740_960_000_000;

    /// A report of boot `boot` (booted at `boot_ms`), all idle.
    pub(crate) fn rep(seq: u64, boot: &str, boot_ms: i64, start: i64, end: i64) -> Report {
        Report {
            boot_id: boot.to_owned(),
            seq,
            start_unix_ms: start,
            end_unix_ms: end,
            boot_time_unix_s: boot_ms / 1000,
            idle_ms: (end - start) as u64,
            ..Default::default()
        }
    }

    pub(crate) fn with_event(mut r: Report, kind: EventKind) -> Report {
        let at = r.end_unix_ms - 1;
        r.events.push(Event {
            kind: kind as i32,
            at_unix_ms: at,
            count: 1,
            detail: String::new(),
        });
        r
    }

    fn kinds(c: &Coverage) -> Vec<(i64, i64, SegmentKind)> {
        c.segments
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.kind))
            .collect()
    }

    fn assert_exact(c: &Coverage) {
        assert_eq!(c.totals.period_ms(), (c.to_ms - c.from_ms) as u64);
        let sum: u64 = c.segments.iter().map(Segment::len_ms).sum();
        assert_eq!(sum, c.totals.period_ms());
        // Contiguous.
        let mut at = c.from_ms;
        for s in &c.segments {
            assert_eq!(s.start_ms, at);
            at = s.end_ms;
        }
        if !c.segments.is_empty() {
            assert_eq!(at, c.to_ms);
        }
    }

    #[test]
    fn clean_shutdown_then_boot_next_morning_is_off() {
        let d = DAY0;
        let reports = vec![
            rep(1, "a", d + 8 * H, d + 8 * H + 60_000, d + 12 * H),
            with_event(
                rep(2, "a", d + 8 * H, d + 12 * H, d + 18 * H),
                EventKind::Shutdown,
            ),
            // Booted at 08:00 next day, agent's first report starts 1 min later.
            rep(3, "b", d + 32 * H, d + 32 * H + 60_000, d + 33 * H),
        ];
        let c = classify(&reports, d, d + 34 * H).unwrap();
        assert_eq!(
            kinds(&c),
            vec![
                (d, d + 8 * H + 60_000, SegmentKind::Unknown),
                (d + 8 * H + 60_000, d + 12 * H, SegmentKind::Report(0)),
                (d + 12 * H, d + 18 * H, SegmentKind::Report(1)),
                (d + 18 * H, d + 32 * H, SegmentKind::Off),
                (d + 32 * H, d + 32 * H + 60_000, SegmentKind::Unknown),
                (d + 32 * H + 60_000, d + 33 * H, SegmentKind::Report(2)),
                (d + 33 * H, d + 34 * H, SegmentKind::Unknown),
            ]
        );
        assert_eq!(c.totals.off_ms, 14 * H as u64);
        assert_eq!(c.totals.covered_ms, (10 * H + H - 120_000) as u64);
        assert_exact(&c);
    }

    #[test]
    fn a_next_boot_is_evidence_of_off_even_without_shutdown() {
        // Power cut: no SHUTDOWN, but a new boot exists.
        let reports = vec![rep(1, "a", 0, 1000, 2000), rep(2, "b", 5000, 6000, 7000)];
        let c = classify(&reports, 1000, 7000).unwrap();
        assert_eq!(
            kinds(&c),
            vec![
                (1000, 2000, SegmentKind::Report(0)),
                (2000, 5000, SegmentKind::Off),
                (5000, 6000, SegmentKind::Unknown),
                (6000, 7000, SegmentKind::Report(1)),
            ]
        );
    }

    #[test]
    fn agent_killed_mid_session_then_restarted_same_boot_is_unknown() {
        let reports = vec![rep(1, "a", 0, 1000, 2000), rep(2, "a", 0, 9000, 10_000)];
        let c = classify(&reports, 1000, 10_000).unwrap();
        assert_eq!(
            kinds(&c),
            vec![
                (1000, 2000, SegmentKind::Report(0)),
                (2000, 9000, SegmentKind::Unknown),
                (9000, 10_000, SegmentKind::Report(1)),
            ]
        );
        assert_eq!(c.totals.off_ms, 0);
        assert_exact(&c);
    }

    #[test]
    fn agent_stop_without_shutdown_is_never_off() {
        // Same boot: restart (an upgrade).
        let reports = vec![
            with_event(rep(1, "a", 0, 1000, 2000), EventKind::AgentStop),
            rep(2, "a", 0, 3000, 4000),
        ];
        let c = classify(&reports, 0, 4000).unwrap();
        assert_eq!(c.totals.off_ms, 0);
        assert_eq!(c.totals.unknown_ms, 2000);
        // Trailing after AGENT_STOP: unknown.
        let c = classify(&reports[..1], 0, 4000).unwrap();
        assert_eq!(c.totals.unknown_ms, 3000);
        // Agent stopped, machine kept running, rebooted later: still unknown.
        let reports = vec![
            with_event(rep(1, "a", 0, 1000, 2000), EventKind::AgentStop),
            rep(2, "b", 5000, 6000, 7000),
        ];
        let c = classify(&reports, 0, 7000).unwrap();
        assert_eq!(c.totals.off_ms, 0);
        assert_eq!(c.totals.unknown_ms, 1000 + 4000);
        // Both events: SHUTDOWN wins.
        let mut last = with_event(rep(1, "a", 0, 1000, 2000), EventKind::AgentStop);
        last = with_event(last, EventKind::Shutdown);
        let c = classify(&[last, rep(2, "b", 5000, 6000, 7000)], 0, 7000).unwrap();
        assert_eq!(c.totals.off_ms, 3000);
    }

    #[test]
    fn trailing_silence_is_unknown_unless_shutdown() {
        let reports = vec![rep(1, "a", 0, 1000, 2000)];
        let c = classify(&reports, 0, 10_000).unwrap();
        assert_eq!(
            kinds(&c),
            vec![
                (0, 1000, SegmentKind::Unknown),
                (1000, 2000, SegmentKind::Report(0)),
                (2000, 10_000, SegmentKind::Unknown),
            ]
        );
        let reports = vec![with_event(rep(1, "a", 0, 1000, 2000), EventKind::Shutdown)];
        let c = classify(&reports, 0, 10_000).unwrap();
        assert_eq!(c.totals.off_ms, 8000);
        assert_eq!(c.totals.unknown_ms, 1000);
    }

    #[test]
    fn no_reports_is_all_unknown_and_empty_period_has_no_shares() {
        let c = classify(&[], 0, 5000).unwrap();
        assert_eq!(kinds(&c), vec![(0, 5000, SegmentKind::Unknown)]);
        let s = c.totals.shares().unwrap();
        assert_eq!((s.covered_pct, s.off_pct, s.unknown_pct), (0.0, 0.0, 100.0));
        let c = classify(&[], 5000, 5000).unwrap();
        assert!(c.segments.is_empty());
        assert_eq!(c.totals.shares(), None);
        assert_eq!(
            classify(&[], 5, 4).unwrap_err(),
            GapError::InvertedPeriod {
                from_ms: 5,
                to_ms: 4
            }
        );
    }

    #[test]
    fn period_clipping_cuts_reports_and_gaps() {
        let reports = vec![
            with_event(rep(1, "a", 0, 1000, 3000), EventKind::Shutdown),
            rep(2, "b", 6000, 7000, 9000),
        ];
        let c = classify(&reports, 2000, 8000).unwrap();
        assert_eq!(
            kinds(&c),
            vec![
                (2000, 3000, SegmentKind::Report(0)),
                (3000, 6000, SegmentKind::Off),
                (6000, 7000, SegmentKind::Unknown),
                (7000, 8000, SegmentKind::Report(1)),
            ]
        );
        assert_exact(&c);
        // A period entirely inside the off gap.
        let c = classify(&reports, 4000, 5000).unwrap();
        assert_eq!(kinds(&c), vec![(4000, 5000, SegmentKind::Off)]);
        // Entirely before the first report.
        let c = classify(&reports, 0, 500).unwrap();
        assert_eq!(kinds(&c), vec![(0, 500, SegmentKind::Unknown)]);
    }

    #[test]
    fn unsorted_overlapping_and_empty_reports_never_double_count() {
        let reports = vec![
            rep(3, "a", 0, 5000, 6000),
            rep(1, "a", 0, 1000, 3000),
            rep(2, "a", 0, 2500, 4000), // overlaps the previous one
            rep(4, "a", 0, 7000, 7000), // empty
        ];
        let c = classify(&reports, 0, 8000).unwrap();
        assert_eq!(
            kinds(&c),
            vec![
                (0, 1000, SegmentKind::Unknown),
                (1000, 3000, SegmentKind::Report(1)),
                (3000, 4000, SegmentKind::Report(2)),
                (4000, 5000, SegmentKind::Unknown),
                (5000, 6000, SegmentKind::Report(0)),
                (6000, 8000, SegmentKind::Unknown),
            ]
        );
        assert_exact(&c);
    }

    #[test]
    fn boot_time_outside_the_gap_is_clamped() {
        // Next boot claims to predate the previous session's end (clock skew).
        let reports = vec![rep(1, "a", 0, 1000, 4000), rep(2, "b", 2000, 6000, 7000)];
        let c = classify(&reports, 1000, 7000).unwrap();
        assert_eq!(c.totals.off_ms, 0);
        assert_eq!(c.totals.unknown_ms, 2000);
        assert_exact(&c);
    }

    #[test]
    fn shares_sum_to_one_hundred() {
        let reports = vec![
            with_event(rep(1, "a", 0, 1000, 2001), EventKind::Shutdown),
            rep(2, "b", 4000, 4003, 7000),
        ];
        let c = classify(&reports, 0, 7777).unwrap();
        assert_exact(&c);
        let s = c.totals.shares().unwrap();
        assert!((s.covered_pct + s.off_pct + s.unknown_pct - 100.0).abs() < 1e-9);
    }
}
