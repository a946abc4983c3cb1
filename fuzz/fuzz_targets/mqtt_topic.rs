//! MQTT topic parsing (`veille_proto::topics`): any topic a broker hands the collector.
//! Beyond not panicking: a parsed reports topic is exactly the one the builder makes
//! from its ids, so a device can never be read under another's name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veille_proto::topics::{self, TopicKind};

fuzz_target!(|data: &[u8]| {
    let topic = String::from_utf8_lossy(data);
    match topics::classify(&topic) {
        TopicKind::Reports { org, device_id } => {
            assert_eq!(topics::reports(org, device_id), topic);
            assert_eq!(topics::parse_reports_topic(&topic), Some((org, device_id)));
        }
        TopicKind::Ack { org, device_id } => assert_eq!(topics::ack(org, device_id), topic),
        TopicKind::Policy { org } => assert_eq!(topics::policy(org), topic),
        TopicKind::Meters { org, meter_id } => assert_eq!(topics::meters(org, meter_id), topic),
        TopicKind::TasmotaSensor { .. } | TopicKind::Unknown => {
            assert_eq!(topics::parse_reports_topic(&topic), None);
        }
    }
});
