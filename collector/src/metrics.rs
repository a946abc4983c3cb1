//! Counters of the ingest path, shared by the gRPC handlers and the store writer, read
//! by a later `/metrics` endpoint (Prometheus text) and by the benchmark.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Monotonic counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// Batches stored (acknowledged).
    pub batches: AtomicU64,
    /// New reports stored.
    pub reports_stored: AtomicU64,
    /// Reports received again with identical content.
    pub duplicates: AtomicU64,
    /// Reports received under a stored seq with different content.
    pub conflicts: AtomicU64,
    /// Requests refused: missing or unknown token.
    pub rejected_unauthenticated: AtomicU64,
    /// Batches refused by `validate_batch`.
    pub rejected_invalid: AtomicU64,
    /// Batches answered `unavailable` (flush or store error, shutting down).
    pub rejected_unavailable: AtomicU64,
    /// Flushes (fsyncs) done by the writer; `batches / flushes` is the group size.
    pub flushes: AtomicU64,
    /// Flushes that failed.
    pub flush_errors: AtomicU64,
    /// MQTT messages dropped: topic not of the expected shape.
    pub mqtt_bad_topic: AtomicU64,
    /// MQTT messages dropped: payload is not a `ReportBatch`.
    pub mqtt_bad_protobuf: AtomicU64,
    /// MQTT messages dropped: device id in the topic differs from the payload's.
    pub mqtt_device_mismatch: AtomicU64,
    /// MQTT messages dropped: org in the topic is not a configured org.
    pub mqtt_unknown_org: AtomicU64,
    /// MQTT messages dropped: payload larger than `MAX_BATCH_BYTES`.
    pub mqtt_too_large: AtomicU64,
    /// MQTT batches refused by `validate_batch` (also counted in `rejected_invalid`).
    pub mqtt_invalid: AtomicU64,
    /// MQTT connections refused by the embedded broker: wrong org or token.
    pub mqtt_auth_refused: AtomicU64,
    /// Embedded-broker connections closed for a publish, will or subscription outside
    /// their token's org (`mqtt::guard`).
    pub mqtt_cross_org_refused: AtomicU64,
    /// Acks published on a device's ack topic.
    pub mqtt_acks_published: AtomicU64,
    /// Meter payloads received but not handled yet (see `mqtt::meters_hook`).
    pub mqtt_meters_unhandled: AtomicU64,
}

/// A point-in-time copy of [`IngestMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestSnapshot {
    pub batches: u64,
    pub reports_stored: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub rejected_unauthenticated: u64,
    pub rejected_invalid: u64,
    pub rejected_unavailable: u64,
    pub flushes: u64,
    pub flush_errors: u64,
    pub mqtt_bad_topic: u64,
    pub mqtt_bad_protobuf: u64,
    pub mqtt_device_mismatch: u64,
    pub mqtt_unknown_org: u64,
    pub mqtt_too_large: u64,
    pub mqtt_invalid: u64,
    pub mqtt_auth_refused: u64,
    pub mqtt_cross_org_refused: u64,
    pub mqtt_acks_published: u64,
    pub mqtt_meters_unhandled: u64,
}

impl IngestMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> IngestSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IngestSnapshot {
            batches: get(&self.batches),
            reports_stored: get(&self.reports_stored),
            duplicates: get(&self.duplicates),
            conflicts: get(&self.conflicts),
            rejected_unauthenticated: get(&self.rejected_unauthenticated),
            rejected_invalid: get(&self.rejected_invalid),
            rejected_unavailable: get(&self.rejected_unavailable),
            flushes: get(&self.flushes),
            flush_errors: get(&self.flush_errors),
            mqtt_bad_topic: get(&self.mqtt_bad_topic),
            mqtt_bad_protobuf: get(&self.mqtt_bad_protobuf),
            mqtt_device_mismatch: get(&self.mqtt_device_mismatch),
            mqtt_unknown_org: get(&self.mqtt_unknown_org),
            mqtt_too_large: get(&self.mqtt_too_large),
            mqtt_invalid: get(&self.mqtt_invalid),
            mqtt_auth_refused: get(&self.mqtt_auth_refused),
            mqtt_cross_org_refused: get(&self.mqtt_cross_org_refused),
            mqtt_acks_published: get(&self.mqtt_acks_published),
            mqtt_meters_unhandled: get(&self.mqtt_meters_unhandled),
        }
    }
}
