//! What the collector does with one MQTT message, whichever broker it came through:
//! check the topic, decode, check the org and device id, then the SAME
//! [`Ingest::submit`] as gRPC (validation, idempotent durable store), then build the
//! Ack to publish on the device's ack topic.
//!
//! The broker already checked the publisher's credentials (embedded: the auth callback;
//! external: the broker's password file and ACL); the topic says which org the batch is
//! filed under, and only configured orgs are accepted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prost::Message;
use veille_proto::defaults::MAX_BATCH_BYTES;
use veille_proto::topics::{self, TopicKind};
use veille_proto::v1::{Ack, ReportBatch};

use super::drops::{DropLog, DropReason};
use super::meters_hook;
use crate::ingest::mqtt::broker::truncate;
use crate::ingest::{Ingest, IngestError};
use crate::metrics::IngestMetrics;

/// What to do after handling a message.
#[derive(Debug, PartialEq)]
pub enum Handled {
    /// Publish `payload` (an encoded [`Ack`]) on `topic` with QoS 1, then acknowledge the
    /// message to the broker.
    Reply { topic: String, payload: Vec<u8> },
    /// Nothing to publish (dropped and counted, or handed to the meters hook):
    /// acknowledge the message to the broker so it is not delivered again.
    Done,
    /// Neither stored nor refused (store unavailable, collector stopping): do not
    /// acknowledge to the broker; the agent resends after its ack timeout.
    Retry,
}

/// Handles messages for every configured org; shared by the subscriber's tasks.
pub struct ReportHandler {
    ingest: Ingest,
    orgs: HashSet<String>,
    metrics: Arc<IngestMetrics>,
    drops: Mutex<DropLog>,
    /// Where meter payloads go; `None`: counted as unhandled ([`meters_hook`]).
    meters: Option<Arc<crate::ingest::meter_sink::MeterSink>>,
    /// Wake-on-LAN requests for relays (signed: safe on a topic anyone may forge).
    wakes: Option<Arc<crate::policy::cache::PolicyCache>>,
}

impl ReportHandler {
    pub fn new(
        ingest: Ingest,
        orgs: impl IntoIterator<Item = String>,
        metrics: Arc<IngestMetrics>,
    ) -> Self {
        Self {
            ingest,
            orgs: orgs.into_iter().collect(),
            metrics,
            drops: Mutex::new(DropLog::default()),
            meters: None,
            wakes: None,
        }
    }

    /// Adds the relays' wake requests from `policies` to their Acks.
    pub fn with_wakes(mut self, policies: Arc<crate::policy::cache::PolicyCache>) -> Self {
        self.wakes = Some(policies);
        self
    }

    /// Stores meter payloads through `sink` (parse, counter, store) instead of
    /// counting them as unhandled.
    pub fn with_meters(mut self, sink: Arc<crate::ingest::meter_sink::MeterSink>) -> Self {
        self.meters = Some(sink);
        self
    }

    /// A meter payload: stored through the sink (acknowledged once durable, or when
    /// dropped as unreadable), retried if the store failed.
    fn meter(&self, org: &str, meter_id: &str, topic: &str, payload: &[u8]) -> Handled {
        match &self.meters {
            Some(sink) => {
                if sink.handle(org, meter_id, topic, payload) {
                    Handled::Done
                } else {
                    Handled::Retry
                }
            }
            None => {
                meters_hook(org, topic, payload, &self.metrics);
                Handled::Done
            }
        }
    }

    /// Handles one message; never panics on its content.
    pub async fn handle(&self, topic: &str, payload: &[u8]) -> Handled {
        match topics::classify(topic) {
            TopicKind::Reports { org, device_id } => self.report(org, device_id, payload).await,
            TopicKind::Meters { org, meter_id } => self.meter(org, meter_id, topic, payload),
            TopicKind::TasmotaSensor { .. } => self.meter("", "", topic, payload),
            _ => self.drop(DropReason::BadTopic, topic, topic, ""),
        }
    }

    async fn report(&self, org: &str, device_id: &str, payload: &[u8]) -> Handled {
        if !self.orgs.contains(org) {
            return self.drop(DropReason::UnknownOrg, device_id, org, "");
        }
        if payload.len() > MAX_BATCH_BYTES {
            return self.drop(DropReason::TooLarge, device_id, org, "");
        }
        let batch = match ReportBatch::decode(payload) {
            Ok(b) => b,
            Err(e) => return self.drop(DropReason::BadProtobuf, device_id, org, &e.to_string()),
        };
        if batch.device_id != device_id {
            let detail = format!("payload device_id = {:?}", truncate(&batch.device_id));
            return self.drop(DropReason::DeviceMismatch, device_id, org, &detail);
        }
        let acked_from_seq = batch.reports.first().map_or(0, |r| r.seq);
        let ack = match self.ingest.submit(org, batch).await {
            Ok(o) => Ack {
                highest_durable_seq: o.highest_durable_seq,
                stored: o.stored,
                duplicates: o.duplicates,
                conflicts: o.conflicts,
                acked_from_seq,
                rejected: String::new(),
                wake: self.wakes.as_ref().map_or_else(Vec::new, |p| {
                    p.wakes.for_relay(org, device_id, crate::clock::now_ms())
                }),
                ..Ack::default()
            },
            Err(IngestError::Invalid(e)) => {
                let reason = e.to_string();
                self.drop(DropReason::Invalid, device_id, org, &reason);
                // The agent moves the batch's bad report aside instead of resending it.
                Ack {
                    acked_from_seq,
                    rejected: reason,
                    ..Ack::default()
                }
            }
            Err(e) => {
                tracing::debug!(%org, device_id = ?device_id, error = %e,
                    "batch not stored; the agent will resend");
                return Handled::Retry;
            }
        };
        Handled::Reply {
            topic: topics::ack(org, device_id),
            payload: ack.encode_to_vec(),
        }
    }

    /// Counts a drop and logs it at most once per device (or topic) per minute.
    fn drop(&self, reason: DropReason, key: &str, org: &str, detail: &str) -> Handled {
        let counter = reason.counter(&self.metrics);
        IngestMetrics::add(counter, 1);
        let total = counter.load(std::sync::atomic::Ordering::Relaxed);
        let log = self
            .drops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .should_log(reason, key, Instant::now());
        if log {
            // `?` escapes control characters a hostile topic could hold.
            tracing::warn!(reason = reason.as_str(), total, org = ?truncate(org),
                key = ?truncate(key), detail, "MQTT message dropped");
        }
        Handled::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::IngestConfig;
    use crate::store::Store;
    use veille_proto::v1::Report;

    fn batch(device: &str, seq: u64) -> ReportBatch {
        let now = crate::clock::now_ms();
        ReportBatch {
            device_id: device.into(),
            reports: vec![Report {
                boot_id: "b1".into(),
                seq,
                start_unix_ms: now - 60_000,
                end_unix_ms: now,
                boot_time_unix_s: (now - 3_600_000) / 1000,
                uptime_s: 3600,
                active_ms: 60_000,
                ..Default::default()
            }],
            inventory: None,
            agent_version: "0.1.0".into(),
        }
    }

    fn ack_of(h: Handled) -> (String, Ack) {
        match h {
            Handled::Reply { topic, payload } => (topic, Ack::decode(&payload[..]).unwrap()),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn good_bad_and_foreign_messages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let metrics = Arc::new(IngestMetrics::default());
        let (ingest, _w) = Ingest::start(store.clone(), IngestConfig::default(), metrics.clone());
        let h = ReportHandler::new(ingest, ["acme".to_owned()], metrics.clone());

        let good = batch("dev-1", 7).encode_to_vec();
        let (topic, ack) = ack_of(h.handle(&topics::reports("acme", "dev-1"), &good).await);
        assert_eq!(topic, "veille/v1/acme/devices/dev-1/ack");
        assert_eq!(
            (ack.highest_durable_seq, ack.stored, ack.acked_from_seq),
            (7, 1, 7)
        );
        let (_, again) = ack_of(h.handle(&topics::reports("acme", "dev-1"), &good).await);
        assert_eq!((again.stored, again.duplicates), (0, 1));

        let reports = topics::reports("acme", "dev-1");
        assert_eq!(h.handle(&reports, b"\xff\xff garbage").await, Handled::Done);
        let other = topics::reports("acme", "dev-2");
        assert_eq!(h.handle(&other, &good).await, Handled::Done);
        let foreign = topics::reports("globex", "dev-1");
        assert_eq!(h.handle(&foreign, &good).await, Handled::Done);
        assert_eq!(
            h.handle("veille/v1/acme/devices/x", &good).await,
            Handled::Done
        );
        let meters = topics::meters("acme", "m1");
        assert_eq!(h.handle(&meters, b"{}").await, Handled::Done);

        let mut bad = batch("dev-1", 8);
        bad.reports[0].cpu_util = 3.0;
        let (_, refused) = ack_of(h.handle(&reports, &bad.encode_to_vec()).await);
        assert!(
            refused.rejected.contains("cpu_util"),
            "{}",
            refused.rejected
        );
        assert_eq!(refused.acked_from_seq, 8);

        let m = metrics.snapshot();
        assert_eq!(
            (
                m.mqtt_bad_protobuf,
                m.mqtt_device_mismatch,
                m.mqtt_unknown_org
            ),
            (1, 1, 1)
        );
        assert_eq!(
            (m.mqtt_bad_topic, m.mqtt_invalid, m.mqtt_meters_unhandled),
            (1, 1, 1)
        );
        assert_eq!(store.report_count(), 1);
    }

    /// README, "Bad input": a payload over `MAX_BATCH_BYTES` is dropped and counted as
    /// `mqtt_too_large`, before any decoding. The payload is a valid batch padded past
    /// the limit, so only the size check can refuse it (without it, it would be stored),
    /// and the largest payload the limit allows still goes through.
    #[tokio::test]
    async fn an_oversized_payload_is_refused_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let metrics = Arc::new(IngestMetrics::default());
        let (ingest, _w) = Ingest::start(store.clone(), IngestConfig::default(), metrics.clone());
        let h = ReportHandler::new(ingest, ["acme".to_owned()], metrics.clone());
        let topic = topics::reports("acme", "dev-1");

        let good = batch("dev-1", 1).encode_to_vec();
        // `good` plus one field unknown to `ReportBatch` (number 15, bytes) sized so the
        // payload is exactly `len` bytes: prost skips unknown fields, so it decodes.
        let padded = |len: usize| {
            let varint = |mut v: usize| {
                let mut out = Vec::new();
                while v >= 0x80 {
                    out.push((v as u8 & 0x7f) | 0x80);
                    v >>= 7;
                }
                out.push(v as u8);
                out
            };
            let room = len - good.len() - 1;
            let body = (1..=5)
                .map(|n| room - n)
                .find(|&body| varint(body).len() == room - body)
                .expect("a length whose varint fits");
            let mut p = good.clone();
            p.push(15 << 3 | 2);
            p.extend(varint(body));
            p.resize(len, 0);
            p
        };
        let too_large = padded(MAX_BATCH_BYTES + 1);
        assert_eq!(too_large.len(), MAX_BATCH_BYTES + 1);
        assert_eq!(
            ReportBatch::decode(&too_large[..]).map(|b| b.device_id),
            Ok("dev-1".to_owned()),
            "the padding keeps the payload a valid batch"
        );
        assert_eq!(h.handle(&topic, &too_large).await, Handled::Done);
        let m = metrics.snapshot();
        assert_eq!(m.mqtt_too_large, 1);
        assert_eq!((m.mqtt_bad_protobuf, m.batches), (0, 0));
        assert_eq!(store.report_count(), 0);

        let at_limit = padded(MAX_BATCH_BYTES);
        let (_, ack) = ack_of(h.handle(&topic, &at_limit).await);
        assert_eq!((ack.stored, ack.highest_durable_seq), (1, 1));
        assert_eq!(metrics.snapshot().mqtt_too_large, 1);
        assert_eq!(store.report_count(), 1);
    }
}
