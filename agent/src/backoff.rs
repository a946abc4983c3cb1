//! Exponential backoff with jitter for reconnecting to the collector.
//!
//! Thousands of agents lose the collector at the same moment (a reboot, a network
//! cut) and would all come back on the same tick; "equal jitter" (a delay drawn in
//! [d/2, d]) spreads them out while keeping a floor so none hammers the server.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The next delay, with `unit` a random number in [0, 1) (injected for tests).
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let d = self.current;
        let delay = d.mul_f64(0.5 + 0.5 * unit);
        self.current = (d * 2).min(self.max);
        delay
    }

    /// After a success the next failure starts from the initial delay again.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(b.next_delay(1.0), Duration::from_secs(1));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(1));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(2));
        assert_eq!(b.next_delay(1.0), Duration::from_secs(8));
        assert_eq!(b.next_delay(1.0), Duration::from_secs(8), "capped");
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_millis(750));
    }

    #[test]
    fn bad_random_input_or_zero_config_does_not_break_it() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(b.next_delay(f64::NAN) > Duration::ZERO);
        assert!(b.next_delay(7.0) <= Duration::from_millis(2));
    }
}
