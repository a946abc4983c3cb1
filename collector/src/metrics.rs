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
        }
    }
}
