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
/// (does not). Elsewhere, until a native probe exists, the wall clock is
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

// Windows: `win32`.
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
    const TICKS_PER_S: u64 = 10_000_000;
    let bias = interrupt_100ns.saturating_sub(unbiased_100ns);
    (bias + TICKS_PER_S / 2) / TICKS_PER_S * 1000
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
