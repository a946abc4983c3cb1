//! MQTT topic names: the one place agent, collector, tests and the Mosquitto ACL in
//! `deploy/mosquitto/acl` take them from. Pure.
//!
//! ```text
//! veille/v1/{org}/devices/{device_id}/reports   agent → collector, protobuf ReportBatch, QoS 1
//! veille/v1/{org}/devices/{device_id}/ack       collector → agent, protobuf Ack, QoS 1
//! veille/v1/{org}/policy                        collector → agents, retained
//! veille/v1/{org}/meters/{meter_id}             meters → collector, JSON
//! tele/{topic}/SENSOR                           Tasmota plugs → collector, JSON
//! ```
//!
//! Org and device ids are topic *segments*: they must not contain `/` (a separator) nor
//! `+`, `#` (wildcards) nor NUL, or a device could publish under another's name. Ids are
//! checked with [`valid_segment`] before a topic is built; the collector's org ids are
//! already restricted to `[A-Za-z0-9._-]`.

use crate::defaults::MAX_ID_LEN;

/// First two segments of every Veille topic (the contract's major version).
pub const PREFIX: &str = "veille/v1";

/// Every agent's reports, for a subscriber that serves all orgs.
pub const REPORTS_FILTER: &str = "veille/v1/+/devices/+/reports";
/// Every device's acks (the collector publishes them; a broker needs the filter known).
pub const ACK_FILTER: &str = "veille/v1/+/devices/+/ack";
/// Every org's signed policy (retained; the collector publishes it).
pub const POLICY_FILTER: &str = "veille/v1/+/policy";
/// Every org's meters.
pub const METERS_FILTER: &str = "veille/v1/+/meters/+";
/// Tasmota's periodic sensor telemetry (`tele/{topic}/SENSOR`).
pub const TASMOTA_SENSOR_FILTER: &str = "tele/+/SENSOR";

/// Share group of collectors on an external broker: brokers deliver each message of a
/// `$share/veille/...` subscription to one member of the group only.
pub const SHARE_GROUP: &str = "veille";

/// `$share/veille/{filter}`: the shared form of `filter`.
pub fn shared(filter: &str) -> String {
    format!("$share/{SHARE_GROUP}/{filter}")
}

/// Where an agent publishes its batches.
pub fn reports(org: &str, device_id: &str) -> String {
    format!("{PREFIX}/{org}/devices/{device_id}/reports")
}

/// Where the collector publishes the Ack of a device's batch once it is durable.
pub fn ack(org: &str, device_id: &str) -> String {
    format!("{PREFIX}/{org}/devices/{device_id}/ack")
}

/// The org's policy, a retained message.
pub fn policy(org: &str) -> String {
    format!("{PREFIX}/{org}/policy")
}

/// Where a third-party meter publishes its readings.
pub fn meters(org: &str, meter_id: &str) -> String {
    format!("{PREFIX}/{org}/meters/{meter_id}")
}

/// Whether `s` can be one topic segment: 1..=[`MAX_ID_LEN`] bytes, no `/`, `+`, `#`,
/// NUL or other control character.
pub fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && !s
            .chars()
            .any(|c| matches!(c, '/' | '+' | '#') || c.is_control())
}

/// `(org, device_id)` of a reports topic; `None` for any other shape (extra or missing
/// segments, empty or wildcard segments).
pub fn parse_reports_topic(topic: &str) -> Option<(&str, &str)> {
    match classify(topic) {
        TopicKind::Reports { org, device_id } => Some((org, device_id)),
        _ => None,
    }
}

/// What a topic a collector received is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind<'a> {
    /// `veille/v1/{org}/devices/{device_id}/reports`
    Reports { org: &'a str, device_id: &'a str },
    /// `veille/v1/{org}/devices/{device_id}/ack`
    Ack { org: &'a str, device_id: &'a str },
    /// `veille/v1/{org}/policy`
    Policy { org: &'a str },
    /// `veille/v1/{org}/meters/{meter_id}`
    Meters { org: &'a str, meter_id: &'a str },
    /// `tele/{topic}/SENSOR`
    TasmotaSensor { topic: &'a str },
    /// Anything else, including Veille topics with a bad segment.
    Unknown,
}

/// Parses `topic` into its kind and ids; never panics, whatever the input.
pub fn classify(topic: &str) -> TopicKind<'_> {
    let parts: Vec<&str> = topic.split('/').collect();
    let ok = |s: &&str| valid_segment(s);
    match parts.as_slice() {
        ["veille", "v1", org, "devices", device_id, "reports"] if ok(org) && ok(device_id) => {
            TopicKind::Reports { org, device_id }
        }
        ["veille", "v1", org, "devices", device_id, "ack"] if ok(org) && ok(device_id) => {
            TopicKind::Ack { org, device_id }
        }
        ["veille", "v1", org, "policy"] if ok(org) => TopicKind::Policy { org },
        ["veille", "v1", org, "meters", meter_id] if ok(org) && ok(meter_id) => {
            TopicKind::Meters { org, meter_id }
        }
        ["tele", t, "SENSOR"] if ok(t) => TopicKind::TasmotaSensor { topic: t },
        _ => TopicKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every filter matches the topics the builders above make (a filter written by
    /// hand elsewhere drifted once; now each lives here only).
    #[test]
    fn filters_cover_the_topics_built_here() {
        let matches = |filter: &str, topic: &str| {
            let (f, t): (Vec<_>, Vec<_>) =
                (filter.split('/').collect(), topic.split('/').collect());
            f.len() == t.len() && f.iter().zip(&t).all(|(a, b)| *a == "+" || a == b)
        };
        assert!(matches(ACK_FILTER, &ack("acme", "dev-1")));
        assert!(matches(POLICY_FILTER, &policy("acme")));
        assert!(matches(REPORTS_FILTER, &reports("acme", "dev-1")));
        assert!(matches(METERS_FILTER, &meters("acme", "m1")));
        assert!(!matches(ACK_FILTER, &policy("acme")));
    }

    #[test]
    fn builders_and_parsers_agree() {
        let t = reports("acme", "dev-1");
        assert_eq!(t, "veille/v1/acme/devices/dev-1/reports");
        assert_eq!(parse_reports_topic(&t), Some(("acme", "dev-1")));
        assert_eq!(
            classify(&ack("acme", "dev-1")),
            TopicKind::Ack {
                org: "acme",
                device_id: "dev-1"
            }
        );
        assert_eq!(classify(&policy("acme")), TopicKind::Policy { org: "acme" });
        assert_eq!(
            classify(&meters("acme", "m1")),
            TopicKind::Meters {
                org: "acme",
                meter_id: "m1"
            }
        );
        assert_eq!(
            classify("tele/plug-3/SENSOR"),
            TopicKind::TasmotaSensor { topic: "plug-3" }
        );
        assert_eq!(
            shared(REPORTS_FILTER),
            "$share/veille/veille/v1/+/devices/+/reports"
        );
    }

    #[test]
    fn malformed_topics_are_unknown() {
        for t in [
            "",
            "veille/v1/acme/devices/dev-1",
            "veille/v1/acme/devices/dev-1/reports/extra",
            "veille/v1//devices/dev-1/reports",
            "veille/v1/acme/devices//reports",
            "veille/v1/+/devices/dev-1/reports",
            "veille/v1/acme/devices/#/reports",
            "veille/v2/acme/devices/dev-1/reports",
            "/veille/v1/acme/devices/dev-1/reports",
            "veille/v1/acme/device/dev-1/reports",
            "veille/v1/ac\0me/devices/dev-1/reports",
            "tele//SENSOR",
        ] {
            assert_eq!(classify(t), TopicKind::Unknown, "{t:?}");
            assert_eq!(parse_reports_topic(t), None, "{t:?}");
        }
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(parse_reports_topic(&reports("acme", &long)), None);
    }

    #[test]
    fn segments_refuse_separators_and_wildcards() {
        assert!(valid_segment("4c4c4544-0042-3510-8051-b4c04f4e4d32"));
        for bad in ["", "a/b", "a+", "#", "a\nb"] {
            assert!(!valid_segment(bad), "{bad:?}");
        }
    }
}
