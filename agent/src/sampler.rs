//! Turns two successive probe readings into one [`Sample`]: how long passed, how much of
//! it the machine slept, and whether the awake part was active or idle, with the rule
//! that decided it.
//!
//! Durations come from CLOCK_BOOTTIME (which counts suspend) and sleep from the growth
//! of CLOCK_BOOTTIME − CLOCK_MONOTONIC (which does not): a suspend that happened
//! between two samples shows up exactly, even though the agent was frozen during it.
//! The wall clock is not used for durations, so an NTP step cannot create or erase time.

use veille_proto::v1::ActivityRule;

use crate::probes::{Activity, CpuTimes};

/// What the sampler reads at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub boottime_ms: u64,
    pub monotonic_ms: u64,
    /// `None` when `/proc/stat` could not be read.
    pub cpu: Option<CpuTimes>,
    pub activity: Activity,
}

/// One sampling period, classified.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub elapsed_ms: u64,
    pub sleep_ms: u64,
    pub active_ms: u64,
    pub idle_ms: u64,
    /// CPU ticks over the period (awake time only: ticks do not advance in suspend).
    pub cpu_busy_ticks: u64,
    pub cpu_total_ticks: u64,
    pub rule: Option<ActivityRule>,
}

/// Classifies the period between `prev` and `now`.
///
/// The activity seen at `now` is attributed to the whole awake part of the period (the
/// sampling interval, 10 s by default, bounds the error). Without session information,
/// awake time counts as active when the CPU was busier than `cpu_busy_threshold`.
pub fn sample(prev: &Reading, now: &Reading, cpu_busy_threshold: f64) -> Sample {
    let elapsed_ms = now.boottime_ms.saturating_sub(prev.boottime_ms);
    let asleep_before = prev.boottime_ms.saturating_sub(prev.monotonic_ms);
    let asleep_now = now.boottime_ms.saturating_sub(now.monotonic_ms);
    let sleep_ms = asleep_now.saturating_sub(asleep_before).min(elapsed_ms);
    let awake_ms = elapsed_ms - sleep_ms;

    let (busy, total) = match (prev.cpu, now.cpu) {
        (Some(a), Some(b)) if b.total >= a.total && b.busy >= a.busy => {
            (b.busy - a.busy, b.total - a.total)
        }
        _ => (0, 0),
    };
    let util = (total > 0).then(|| busy as f64 / total as f64);

    let (active, rule) = match now.activity {
        Activity::UserActive => (true, ActivityRule::UserInput),
        Activity::UserIdle => (false, ActivityRule::UserInput),
        Activity::NoSessionInfo => (
            util.is_some_and(|u| crate::probes::cpu_busy(u, cpu_busy_threshold)),
            ActivityRule::CpuBusy,
        ),
    };
    let (active_ms, idle_ms) = if active { (awake_ms, 0) } else { (0, awake_ms) };
    Sample {
        elapsed_ms,
        sleep_ms,
        active_ms,
        idle_ms,
        cpu_busy_ticks: busy,
        cpu_total_ticks: total,
        rule: (awake_ms > 0).then_some(rule),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(boot: u64, mono: u64, busy: u64, total: u64, activity: Activity) -> Reading {
        Reading {
            boottime_ms: boot,
            monotonic_ms: mono,
            cpu: Some(CpuTimes { busy, total }),
            activity,
        }
    }

    #[test]
    fn awake_period_with_a_user_is_active() {
        let s = sample(
            &reading(1_000, 1_000, 0, 0, Activity::UserActive),
            &reading(11_000, 11_000, 10, 1000, Activity::UserActive),
            0.1,
        );
        assert_eq!(
            (s.elapsed_ms, s.sleep_ms, s.active_ms, s.idle_ms),
            (10_000, 0, 10_000, 0)
        );
        assert_eq!(s.rule, Some(ActivityRule::UserInput));
    }

    #[test]
    fn suspend_between_samples_is_measured_as_sleep() {
        // 10 s awake then 3600 s asleep: boottime grew by 3610 s, monotonic by 10 s.
        let s = sample(
            &reading(5_000, 4_000, 0, 0, Activity::UserIdle),
            &reading(3_615_000, 14_000, 5, 1000, Activity::UserIdle),
            0.1,
        );
        assert_eq!(s.elapsed_ms, 3_610_000);
        assert_eq!(s.sleep_ms, 3_600_000);
        assert_eq!(s.idle_ms, 10_000);
        assert_eq!(s.active_ms + s.idle_ms + s.sleep_ms, s.elapsed_ms);
    }

    #[test]
    fn without_sessions_the_cpu_rule_decides() {
        let busy = sample(
            &reading(0, 0, 0, 0, Activity::NoSessionInfo),
            &reading(10_000, 10_000, 500, 1000, Activity::NoSessionInfo),
            0.1,
        );
        assert_eq!(
            (busy.active_ms, busy.rule),
            (10_000, Some(ActivityRule::CpuBusy))
        );
        let quiet = sample(
            &reading(0, 0, 0, 0, Activity::NoSessionInfo),
            &reading(10_000, 10_000, 50, 1000, Activity::NoSessionInfo),
            0.1,
        );
        assert_eq!(quiet.idle_ms, 10_000);
    }

    #[test]
    fn counters_going_backwards_or_missing_give_idle_not_garbage() {
        let mut prev = reading(0, 0, 900, 1000, Activity::NoSessionInfo);
        let now = reading(10_000, 10_000, 10, 20, Activity::NoSessionInfo);
        let s = sample(&prev, &now, 0.1);
        assert_eq!((s.cpu_total_ticks, s.idle_ms), (0, 10_000));
        prev.cpu = None;
        assert_eq!(sample(&prev, &now, 0.1).idle_ms, 10_000);
    }

    #[test]
    fn clocks_going_backwards_yield_an_empty_sample() {
        let s = sample(
            &reading(10_000, 10_000, 0, 0, Activity::UserActive),
            &reading(9_000, 9_000, 0, 0, Activity::UserActive),
            0.1,
        );
        assert_eq!(
            s,
            Sample {
                rule: None,
                ..Default::default()
            }
        );
    }
}
