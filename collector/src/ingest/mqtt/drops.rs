//! Why an MQTT message was dropped, and a log that says so at most once per device per
//! minute: a broken agent publishing every second must not flood the collector's log,
//! while the counters still count every drop. Pure apart from the caller's clock.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::metrics::IngestMetrics;

/// One log line per (reason, device) per this period.
pub const LOG_PERIOD: Duration = Duration::from_secs(60);

/// Entries kept before old ones are forgotten (bounds memory under a flood of ids).
const MAX_KEYS: usize = 10_000;

/// Why a message on a reports topic was dropped. Its `as_str` is the `reason=` field of
/// the log line and the suffix of the counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The topic is not `veille/v1/{org}/devices/{device_id}/reports`.
    BadTopic,
    /// The payload does not decode as a `ReportBatch`.
    BadProtobuf,
    /// The payload exceeds `MAX_BATCH_BYTES`.
    TooLarge,
    /// The device id in the topic differs from the payload's.
    DeviceMismatch,
    /// The org in the topic is not a configured org.
    UnknownOrg,
    /// `validate_batch` refused the content (the agent gets an Ack with `rejected`).
    Invalid,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadTopic => "bad_topic",
            Self::BadProtobuf => "bad_protobuf",
            Self::TooLarge => "too_large",
            Self::DeviceMismatch => "device_mismatch",
            Self::UnknownOrg => "unknown_org",
            Self::Invalid => "invalid",
        }
    }

    /// The counter of this reason in [`IngestMetrics`].
    pub fn counter(self, m: &IngestMetrics) -> &AtomicU64 {
        match self {
            Self::BadTopic => &m.mqtt_bad_topic,
            Self::BadProtobuf => &m.mqtt_bad_protobuf,
            Self::TooLarge => &m.mqtt_too_large,
            Self::DeviceMismatch => &m.mqtt_device_mismatch,
            Self::UnknownOrg => &m.mqtt_unknown_org,
            Self::Invalid => &m.mqtt_invalid,
        }
    }
}

/// Remembers when each (reason, key) was last logged.
#[derive(Debug, Default)]
pub struct DropLog {
    last: HashMap<(DropReason, String), Instant>,
}

impl DropLog {
    /// Whether a drop for `key` (a device id, or the topic when there is none) should be
    /// logged now; records it if so.
    pub fn should_log(&mut self, reason: DropReason, key: &str, now: Instant) -> bool {
        if let Some(at) = self.last.get(&(reason, key.to_owned()))
            && now.saturating_duration_since(*at) < LOG_PERIOD
        {
            return false;
        }
        if self.last.len() >= MAX_KEYS {
            self.last
                .retain(|_, at| now.saturating_duration_since(*at) < LOG_PERIOD);
            if self.last.len() >= MAX_KEYS {
                self.last.clear();
            }
        }
        self.last.insert((reason, key.to_owned()), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_device_and_reason_per_minute() {
        let mut log = DropLog::default();
        let t0 = Instant::now();
        assert!(log.should_log(DropReason::BadProtobuf, "dev-1", t0));
        assert!(!log.should_log(
            DropReason::BadProtobuf,
            "dev-1",
            t0 + Duration::from_secs(59)
        ));
        assert!(log.should_log(DropReason::DeviceMismatch, "dev-1", t0));
        assert!(log.should_log(DropReason::BadProtobuf, "dev-2", t0));
        assert!(log.should_log(DropReason::BadProtobuf, "dev-1", t0 + LOG_PERIOD));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut log = DropLog::default();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 2) {
            log.should_log(DropReason::BadTopic, &i.to_string(), t0);
        }
        assert!(log.last.len() <= MAX_KEYS);
    }
}
