//! The machine's clocks, and a fake that tests drive by hand. Sleep is measured as the
//! growth of the boot-time clock minus the growth of the monotonic clock, so the fake
//! can advance them apart.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::Clocks;

/// The real clocks.
///
/// # Platform-specific behaviour
///
/// Linux: `CLOCK_REALTIME`, `CLOCK_BOOTTIME` (counts suspend) and `CLOCK_MONOTONIC`
/// (does not). Windows: `SystemTime`, and the interrupt times or the tick count as
/// [`WindowsClockSource`] says. Elsewhere, until a native probe exists, the wall clock is
/// [`std::time::SystemTime`] and the other two both count from the agent's start and do
/// not see sleep, so no sleep is ever measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClocks;

#[cfg(any(target_os = "linux", target_os = "android"))]
impl SystemClocks {
    /// Milliseconds of `clock`, `None` if the kernel refuses it (never for these three
    /// clocks on Linux >= 2.6.39).
    fn read_ms(clock: libc::clockid_t) -> Option<i64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        if rc != 0 {
            return None;
        }
        // time_t and c_long are 32 bits on some targets, 64 on others.
        #[allow(clippy::useless_conversion)]
        let (secs, nanos) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
        let millis = nanos / 1_000_000;
        Some(secs.saturating_mul(1000).saturating_add(millis))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Clocks for SystemClocks {
    fn wall_unix_ms(&self) -> i64 {
        Self::read_ms(libc::CLOCK_REALTIME).unwrap_or_default()
    }

    fn boottime_ms(&self) -> u64 {
        Self::read_ms(libc::CLOCK_BOOTTIME)
            .map(|ms| u64::try_from(ms).unwrap_or_default())
            // Without a boot-time clock, sleep goes unseen rather than the clock jumping.
            .unwrap_or_else(|| self.monotonic_ms())
    }

    fn monotonic_ms(&self) -> u64 {
        Self::read_ms(libc::CLOCK_MONOTONIC)
            .map(|ms| u64::try_from(ms).unwrap_or_default())
            .unwrap_or_default()
    }
}

// Windows: `win32_clock`.
#[cfg(not(any(target_os = "linux", target_os = "android", windows)))]
impl Clocks for SystemClocks {
    fn wall_unix_ms(&self) -> i64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn boottime_ms(&self) -> u64 {
        self.monotonic_ms()
    }

    fn monotonic_ms(&self) -> u64 {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        let elapsed = START.get_or_init(Instant::now).elapsed();
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The time spent asleep since boot, from Windows' interrupt time (which counts sleep
/// and hibernation) and unbiased interrupt time (which does not), both in 100-ns units,
/// rounded to the nearest second.
///
/// The two counters are read one after the other, so their difference also holds the
/// few microseconds between the reads; rounding to the second keeps that jitter from
/// showing as sleep, at the cost of sub-second precision on real sleeps.
pub fn sleep_bias_ms(interrupt_100ns: u64, unbiased_100ns: u64) -> u64 {
    const TICKS_PER_S: u64 = TICKS_100NS_PER_MS * MS_PER_S;
    let bias = interrupt_100ns.saturating_sub(unbiased_100ns);
    (bias + TICKS_PER_S / 2) / TICKS_PER_S * MS_PER_S
}

/// 100-ns units (Windows' interrupt times and FILETIMEs) in one millisecond.
pub const TICKS_100NS_PER_MS: u64 = 10_000;
const MS_PER_S: u64 = 1000;

/// Where the boot-time and monotonic clocks come from on Windows, best first. Chosen
/// once from what this Windows (or Wine) exports: the agent looks the functions up at
/// run time, because a missing import stops a Windows program before `main`, and Wine
/// 8 lacks `QueryInterruptTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowsClockSource {
    /// `QueryInterruptTime` (counts sleep and hibernation) and
    /// `QueryUnbiasedInterruptTime` (does not): one counter read two ways, so their
    /// difference is the time asleep, to the second ([`sleep_bias_ms`]). Windows 10
    /// and later.
    InterruptTime,
    /// `GetTickCount64` (counts sleep too, in milliseconds, advancing in ticks of about
    /// 16 ms) and `QueryUnbiasedInterruptTime`: two counters, so sleep is how much
    /// their difference grew since the first reading, to the second
    /// ([`tick_sleep_ms`]).
    TickCount,
    /// `GetTickCount64` for both clocks: no sleep is ever measured.
    TickCountOnly,
}

impl WindowsClockSource {
    /// The best source given which of the two interrupt-time functions exist
    /// (`GetTickCount64` always does, since Windows Vista).
    pub fn choose(interrupt_time: bool, unbiased_interrupt_time: bool) -> Self {
        match (interrupt_time, unbiased_interrupt_time) {
            (true, true) => Self::InterruptTime,
            (_, true) => Self::TickCount,
            (_, false) => Self::TickCountOnly,
        }
    }

    /// What the agent logs once at start.
    pub fn describe(self) -> &'static str {
        match self {
            Self::InterruptTime => {
                "clocks from QueryInterruptTime and QueryUnbiasedInterruptTime: sleep to the second"
            }
            Self::TickCount => {
                "QueryInterruptTime not available: clocks from GetTickCount64 and \
                 QueryUnbiasedInterruptTime, sleep to the second"
            }
            Self::TickCountOnly => {
                "QueryInterruptTime and QueryUnbiasedInterruptTime not available: both clocks \
                 from GetTickCount64, sleep not measured"
            }
        }
    }

    /// `(boottime_ms, monotonic_ms)` from `counters`, read at one instant (the ones
    /// this source does not use are ignored). `tick_baseline_ms` is
    /// [`WindowsCounters::tick_offset_ms`] at the agent's first reading (used by
    /// [`Self::TickCount`] only).
    pub fn clocks_ms(self, counters: &WindowsCounters, tick_baseline_ms: i64) -> (u64, u64) {
        let unbiased_ms = counters.unbiased_100ns / TICKS_100NS_PER_MS;
        match self {
            Self::InterruptTime => (
                unbiased_ms + sleep_bias_ms(counters.interrupt_100ns, counters.unbiased_100ns),
                unbiased_ms,
            ),
            Self::TickCount => (
                unbiased_ms + tick_sleep_ms(tick_baseline_ms, counters.tick_offset_ms()),
                unbiased_ms,
            ),
            Self::TickCountOnly => (counters.tick_ms, counters.tick_ms),
        }
    }
}

/// The Windows counters behind the clocks, read one right after the other; those the
/// [`WindowsClockSource`] in use does not read are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowsCounters {
    /// `QueryInterruptTime`, 100 ns since boot, time asleep included.
    pub interrupt_100ns: u64,
    /// `QueryUnbiasedInterruptTime`, 100 ns since boot, time asleep excluded.
    pub unbiased_100ns: u64,
    /// `GetTickCount64`, ms since boot, time asleep included.
    pub tick_ms: u64,
}

impl WindowsCounters {
    /// `GetTickCount64` minus the unbiased interrupt time, in ms: grows by the time
    /// spent asleep, otherwise constant up to the tick's granularity.
    pub fn tick_offset_ms(&self) -> i64 {
        let unbiased_ms = self.unbiased_100ns / TICKS_100NS_PER_MS;
        i64::try_from(self.tick_ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(unbiased_ms).unwrap_or(i64::MAX))
    }
}

/// The time spent asleep since the reading whose [`WindowsCounters::tick_offset_ms`]
/// was `baseline_ms`, given the offset `offset_ms` now, rounded to the nearest second.
///
/// The two counters are not one clock: `GetTickCount64` moves in ticks of about 16 ms
/// and they need not start at the same instant, so only the growth of their difference
/// is sleep, and rounding to the second keeps the tick jitter from showing as sleep.
/// Never negative.
pub fn tick_sleep_ms(baseline_ms: i64, offset_ms: i64) -> u64 {
    let grown = u64::try_from(offset_ms.saturating_sub(baseline_ms)).unwrap_or(0);
    (grown + MS_PER_S / 2) / MS_PER_S * MS_PER_S
}

/// Clocks that move only when a test says so. Shared by reference between the code
/// under test and the test (`Arc<FakeClocks>`), hence the atomics.
#[derive(Debug, Default)]
pub struct FakeClocks {
    wall_ms: AtomicI64,
    boottime_ms: AtomicU64,
    monotonic_ms: AtomicU64,
}

impl FakeClocks {
    pub fn new(wall_unix_ms: i64, boottime_ms: u64, monotonic_ms: u64) -> Self {
        Self {
            wall_ms: AtomicI64::new(wall_unix_ms),
            boottime_ms: AtomicU64::new(boottime_ms),
            monotonic_ms: AtomicU64::new(monotonic_ms),
        }
    }

    /// The machine runs for `ms`: every clock moves.
    pub fn advance_awake(&self, ms: u64) {
        self.wall_ms
            .fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
        self.boottime_ms.fetch_add(ms, Ordering::SeqCst);
        self.monotonic_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The machine is suspended for `ms`: the monotonic clock stands still.
    pub fn advance_asleep(&self, ms: u64) {
        self.wall_ms
            .fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
        self.boottime_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The wall clock is stepped (NTP, an admin) by `delta_ms`, possibly backwards; the
    /// machine's own clocks do not move.
    pub fn step_wall(&self, delta_ms: i64) {
        self.wall_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clocks for FakeClocks {
    fn wall_unix_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn boottime_ms(&self) -> u64 {
        self.boottime_ms.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> u64 {
        self.monotonic_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2020-01-01T00:00:00Z.
    const JAN_2020_MS: i64 = 1_577_836_800_000;

    #[test]
    fn system_clocks_are_plausible() {
        let clocks = SystemClocks;
        // Monotonic first: boot-time read after it can only be larger or equal.
        let monotonic = clocks.monotonic_ms();
        let boottime = clocks.boottime_ms();
        assert!(
            boottime >= monotonic,
            "boottime {boottime} < monotonic {monotonic}"
        );
        assert!(monotonic > 0);
        let wall = clocks.wall_unix_ms();
        assert!(wall > JAN_2020_MS, "wall clock {wall} is before 2020");
    }

    #[test]
    fn sleep_bias_is_rounded_to_the_second() {
        // No sleep: a few microseconds between the two reads are not sleep.
        assert_eq!(sleep_bias_ms(1_000_000_000_037, 1_000_000_000_000), 0);
        // 42 minutes asleep, read 3 µs apart either way.
        let slept = 42 * 60 * 10_000_000;
        assert_eq!(sleep_bias_ms(5_000 + slept + 30, 5_000), 2_520_000);
        assert_eq!(sleep_bias_ms(5_000 + slept - 30, 5_000), 2_520_000);
        // Unbiased read after a later interrupt time: never negative.
        assert_eq!(sleep_bias_ms(10, 20), 0);
    }

    #[test]
    fn the_windows_clock_source_is_the_best_available() {
        use WindowsClockSource::*;
        assert_eq!(WindowsClockSource::choose(true, true), InterruptTime);
        // Wine 8: no QueryInterruptTime.
        assert_eq!(WindowsClockSource::choose(false, true), TickCount);
        assert_eq!(WindowsClockSource::choose(true, false), TickCountOnly);
        assert_eq!(WindowsClockSource::choose(false, false), TickCountOnly);
    }

    #[test]
    fn windows_clocks_from_interrupt_times_see_sleep() {
        // 10 min awake, then 42 min asleep.
        let awake = 600 * 10_000_000;
        let slept = 42 * 60 * 10_000_000;
        let c = WindowsCounters {
            interrupt_100ns: awake + slept + 30,
            unbiased_100ns: awake,
            tick_ms: 0,
        };
        assert_eq!(
            WindowsClockSource::InterruptTime.clocks_ms(&c, 0),
            (600_000 + 2_520_000, 600_000)
        );
    }

    #[test]
    fn windows_clocks_from_the_tick_count_see_sleep_since_the_first_reading() {
        // The tick count started 1.3 s before the interrupt time here: not sleep.
        let first = WindowsCounters {
            interrupt_100ns: 0,
            unbiased_100ns: 5_000 * 10_000,
            tick_ms: 6_300,
        };
        let baseline = first.tick_offset_ms();
        assert_eq!(baseline, 1_300);
        let source = WindowsClockSource::TickCount;
        assert_eq!(source.clocks_ms(&first, baseline), (5_000, 5_000));
        // A minute later, the tick count 15 ms behind (its granularity): no sleep.
        let later = WindowsCounters {
            unbiased_100ns: 65_000 * 10_000,
            tick_ms: 66_285,
            ..first
        };
        assert_eq!(source.clocks_ms(&later, baseline), (65_000, 65_000));
        // Then 42 minutes asleep: the tick count ran on, the unbiased time did not.
        let woke = WindowsCounters {
            unbiased_100ns: 65_010 * 10_000,
            tick_ms: 66_310 + 2_520_000,
            ..first
        };
        assert_eq!(
            source.clocks_ms(&woke, baseline),
            (65_010 + 2_520_000, 65_010)
        );
    }

    #[test]
    fn windows_clocks_from_the_tick_count_alone_never_sleep() {
        let c = WindowsCounters {
            interrupt_100ns: 0,
            unbiased_100ns: 0,
            tick_ms: 123_456,
        };
        assert_eq!(
            WindowsClockSource::TickCountOnly.clocks_ms(&c, 99),
            (123_456, 123_456)
        );
    }

    #[test]
    fn tick_sleep_is_rounded_to_the_second_and_never_negative() {
        assert_eq!(tick_sleep_ms(1_300, 1_316), 0);
        assert_eq!(tick_sleep_ms(1_300, 1_284), 0);
        assert_eq!(tick_sleep_ms(1_300, 1_300 + 59_990), 60_000);
        assert_eq!(tick_sleep_ms(1_300, -5_000), 0);
    }

    #[test]
    fn system_monotonic_clock_does_not_go_backwards() {
        let clocks = SystemClocks;
        let first = clocks.monotonic_ms();
        let second = clocks.monotonic_ms();
        assert!(second >= first);
    }

    #[test]
    fn fake_clocks_advance_awake_and_asleep() {
        let clocks = FakeClocks::new(JAN_2020_MS, 10_000, 9_000);
        assert_eq!(clocks.wall_unix_ms(), JAN_2020_MS);
        assert_eq!(clocks.boottime_ms(), 10_000);
        assert_eq!(clocks.monotonic_ms(), 9_000);

        clocks.advance_awake(60_000);
        assert_eq!(clocks.wall_unix_ms(), JAN_2020_MS + 60_000);
        assert_eq!(clocks.boottime_ms(), 70_000);
        assert_eq!(clocks.monotonic_ms(), 69_000);

        clocks.advance_asleep(3_600_000);
        assert_eq!(clocks.wall_unix_ms(), JAN_2020_MS + 3_660_000);
        assert_eq!(clocks.boottime_ms(), 3_670_000);
        assert_eq!(clocks.monotonic_ms(), 69_000);

        clocks.step_wall(-5_000);
        assert_eq!(clocks.wall_unix_ms(), JAN_2020_MS + 3_655_000);
        assert_eq!(clocks.boottime_ms(), 3_670_000);
        assert_eq!(clocks.monotonic_ms(), 69_000);
    }

    #[test]
    fn fake_clocks_work_behind_the_trait_across_threads() {
        let clocks = std::sync::Arc::new(FakeClocks::new(0, 0, 0));
        let shared: std::sync::Arc<dyn Clocks> = clocks.clone();
        std::thread::spawn(move || clocks.advance_awake(5))
            .join()
            .unwrap();
        assert_eq!(shared.monotonic_ms(), 5);
    }
}
