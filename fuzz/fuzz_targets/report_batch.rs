//! The collector's ingest path for a batch from the network (gRPC body or MQTT payload):
//! protobuf decode, then the shared validation, then the JSON the CLI prints. None may
//! panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use veille_proto::v1::ReportBatch;

/// A fixed "now" (2026-11-01), so a run is reproducible.
const NOW_MS: i64 = 1_793_491_200_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = ReportBatch::decode(data) {
        let _ = veille_proto::validate_batch(&batch, NOW_MS);
        let _ = serde_json::to_string(&batch);
    }
});
