//! The ingest path after authentication: validation, then group commit.
//!
//! One writer thread owns all writes. Handlers validate a batch, send it with a reply
//! channel over a bounded queue ([`Ingest::submit`]) and wait. The writer takes
//! everything queued (up to `group_max_batches`), applies the group in one store
//! transaction ([`Store::apply_batches`]: each batch all or nothing, the group's
//! batches one by one only if the group's transaction fails), calls [`Store::flush`]
//! **once** for the group, and only then replies to every waiter. While it flushes,
//! the next group queues up, so under load one transaction and one fsync cover many
//! requests, and no Ack ever precedes the flush that made its batch durable. A failed flush answers the whole group with
//! [`IngestError::Unavailable`]; the agents retry and idempotency makes that safe.
//!
//! The doors in front of it: [`grpc`] (the `veille.v1.Telemetry` service), [`mqtt`]
//! (embedded broker or external, same path), and [`meter_sink`] for meters over MQTT.

pub mod grpc;
pub mod meter_sink;
pub mod mqtt;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use veille_proto::v1::ReportBatch;
use veille_proto::{ValidationError, validate_batch};

use crate::metrics::IngestMetrics;
use crate::store::{BatchOutcome, Pending, Store, StoreError};

/// How the writer makes a group durable: [`Store::flush`] in production. Tests put a
/// slower one in its place ([`Ingest::start_with_flush`]) to stand for a real disk's
/// fsync, so that batches queue behind it the way they do under load and the count of
/// flushes shows whether groups really share one.
pub type FlushFn = dyn Fn(&Store) -> Result<(), StoreError> + Send + Sync;

/// Tuning of the writer; see `ingest_queue_batches` and `group_commit_max_batches` in
/// `deploy/collector.toml`.
#[derive(Debug, Clone, Copy)]
pub struct IngestConfig {
    /// Capacity of the handler → writer queue, in batches.
    pub queue_batches: usize,
    /// Most batches per flush.
    pub group_max_batches: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            queue_batches: 1024,
            group_max_batches: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch breaks the contract; nothing was stored.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// The store could not make the batch durable; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The writer has stopped (the collector is shutting down); retry later.
    #[error("the collector is shutting down")]
    ShuttingDown,
}

struct Job {
    org: String,
    batch: ReportBatch,
    received_unix_ms: i64,
    reply: oneshot::Sender<Result<BatchOutcome, IngestError>>,
}

/// Handle to the writer; clone one per handler. The writer stops once every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
    metrics: Arc<IngestMetrics>,
}

impl Ingest {
    /// Starts the writer on tokio's blocking pool (store calls and fsync block). The
    /// returned task ends after the last handle is dropped and the queue is drained.
    pub fn start(
        store: Arc<Store>,
        config: IngestConfig,
        metrics: Arc<IngestMetrics>,
    ) -> (Self, JoinHandle<()>) {
        Self::start_with_flush(store, config, metrics, Box::new(Store::flush))
    }

    /// [`Ingest::start`] with `flush` in place of [`Store::flush`] (see [`FlushFn`]).
    pub fn start_with_flush(
        store: Arc<Store>,
        config: IngestConfig,
        metrics: Arc<IngestMetrics>,
        flush: Box<FlushFn>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_batches.max(1));
        let writer_metrics = metrics.clone();
        let max = config.group_max_batches.max(1);
        let task = tokio::task::spawn_blocking(move || {
            writer_loop(&store, &*flush, rx, max, &writer_metrics)
        });
        (Self { tx, metrics }, task)
    }

    /// Validates `batch` against the collector's clock, queues it for `org` and waits
    /// until it is durably stored.
    pub async fn submit(&self, org: &str, batch: ReportBatch) -> Result<BatchOutcome, IngestError> {
        self.submit_at(org, batch, crate::clock::now_ms()).await
    }

    /// [`Ingest::submit`] with an explicit receive time (tests, replays).
    pub async fn submit_at(
        &self,
        org: &str,
        batch: ReportBatch,
        received_unix_ms: i64,
    ) -> Result<BatchOutcome, IngestError> {
        if let Err(e) = validate_batch(&batch, received_unix_ms) {
            IngestMetrics::add(&self.metrics.rejected_invalid, 1);
            return Err(e.into());
        }
        let (reply, wait) = oneshot::channel();
        let job = Job {
            org: org.to_owned(),
            batch,
            received_unix_ms,
            reply,
        };
        let result = match self.tx.send(job).await {
            Ok(()) => wait.await.unwrap_or(Err(IngestError::ShuttingDown)),
            Err(_) => Err(IngestError::ShuttingDown),
        };
        if result.is_err() {
            IngestMetrics::add(&self.metrics.rejected_unavailable, 1);
        }
        result
    }
}

/// Tells the log when the store stops taking writes and when it takes them again, with
/// one line each (and a reminder a minute), not one per refused batch: during a full
/// disk or a lost database every agent retries, thousands of batches a second.
#[derive(Debug, Default)]
struct StoreHealth {
    /// Batches refused since the store last took one, and when the last line was logged.
    refused: u64,
    last_logged: Option<std::time::Instant>,
}

impl StoreHealth {
    const REMIND_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

    fn failed(&mut self, org: &str, device_id: &str, e: &crate::store::StoreError) {
        self.refused += 1;
        let due = self
            .last_logged
            .is_none_or(|t| t.elapsed() >= Self::REMIND_EVERY);
        if due {
            tracing::error!(%org, %device_id, error = %e, refused = self.refused,
                transient = e.is_transient(),
                "the store refuses writes: ingest answers UNAVAILABLE and agents keep their \
                 spools until it takes them again");
            self.last_logged = Some(std::time::Instant::now());
        }
    }

    fn succeeded(&mut self) {
        if self.refused > 0 {
            tracing::info!(refused = self.refused, "the store takes writes again");
            *self = Self::default();
        }
    }
}

fn writer_loop(
    store: &Store,
    flush: &FlushFn,
    mut rx: mpsc::Receiver<Job>,
    max_group: usize,
    metrics: &IngestMetrics,
) {
    let mut group: Vec<Job> = Vec::with_capacity(max_group);
    let mut health = StoreHealth::default();
    let mut results: Vec<Result<BatchOutcome, IngestError>> = Vec::with_capacity(max_group);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let pending: Vec<Pending<'_>> = group
            .iter()
            .map(|job| Pending {
                org: &job.org,
                batch: &job.batch,
                received_unix_ms: job.received_unix_ms,
            })
            .collect();
        let applied = store.apply_batches(&pending);
        drop(pending);
        for (job, result) in group.iter().zip(applied) {
            let result = result.map_err(|e| {
                health.failed(&job.org, &job.batch.device_id, &e);
                IngestError::Unavailable(e.to_string())
            });
            if result.is_ok() {
                health.succeeded();
            }
            if let Ok(o) = &result
                && o.new_conflicts > 0
            {
                tracing::warn!(
                    org = %job.org,
                    device_id = %job.batch.device_id,
                    first_seq = o.first_conflict_seq.unwrap_or_default(),
                    conflicts = o.new_conflicts,
                    "reports reuse stored seqs with different content (reinstalled agent or \
                     cloned device id?); kept apart in the conflicts tree"
                );
            }
            results.push(result);
        }
        if results.iter().any(Result::is_ok) {
            IngestMetrics::add(&metrics.flushes, 1);
            if let Err(e) = flush(store) {
                IngestMetrics::add(&metrics.flush_errors, 1);
                tracing::error!(error = %e, batches = group.len(),
                    "flush failed; answering the group as unavailable");
                for r in results.iter_mut() {
                    if r.is_ok() {
                        *r = Err(IngestError::Unavailable(format!("flush failed: {e}")));
                    }
                }
            }
        }
        for (job, result) in group.drain(..).zip(results.drain(..)) {
            if let Ok(o) = &result {
                IngestMetrics::add(&metrics.batches, 1);
                IngestMetrics::add(&metrics.reports_stored, u64::from(o.stored));
                IngestMetrics::add(&metrics.duplicates, u64::from(o.duplicates));
                IngestMetrics::add(&metrics.conflicts, u64::from(o.conflicts));
            }
            // The handler may have gone (client cancelled); the batch is stored anyway
            // and the agent's resend will be counted as a duplicate.
            let _ = job.reply.send(result);
        }
    }
    tracing::debug!("ingest writer stopped: queue closed and drained");
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::Report;

    const NOW: i64 = 1_790_000_000_000;

    fn batch(device: &str, seqs: std::ops::RangeInclusive<u64>) -> ReportBatch {
        let reports = seqs
            .map(|seq| {
                let start = NOW - 1_000_000 + seq as i64 * 1_000;
                Report {
                    boot_id: "b1".into(),
                    seq,
                    start_unix_ms: start,
                    end_unix_ms: start + 1_000,
                    boot_time_unix_s: (NOW - 3_600_000) / 1000,
                    uptime_s: 100,
                    active_ms: 1_000,
                    ..Default::default()
                }
            })
            .collect();
        ReportBatch {
            device_id: device.into(),
            reports,
            inventory: None,
            agent_version: "0.1.0".into(),
        }
    }

    /// How long the test's flush takes: a slow disk's fsync, long enough that every
    /// submitter has queued its next batch before the flush returns.
    const SLOW_FLUSH: std::time::Duration = std::time::Duration::from_millis(25);

    /// Issue 23: the old version asserted only `flushes <= batches`, which a
    /// flush-per-batch writer passes. Here the flush is slow, so while one group is
    /// being flushed the other submitters queue, and the next flush covers them all:
    /// 16 submitters × 5 batches take about 2 flushes per round (≈ 10 in all), where a
    /// flush per batch takes 80. The bound (a quarter of the batches) sits far from both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_submissions_share_flushes_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let metrics = Arc::new(IngestMetrics::default());
        let slow_flush = Box::new(|s: &Store| {
            std::thread::sleep(SLOW_FLUSH);
            s.flush()
        });
        let (ingest, writer) = Ingest::start_with_flush(
            store.clone(),
            IngestConfig::default(),
            metrics.clone(),
            slow_flush,
        );
        let (submitters, rounds) = (16u64, 5u64);
        let mut tasks = Vec::new();
        for d in 0..submitters {
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                for b in 0..rounds {
                    let o = ingest
                        .submit_at(
                            "acme",
                            batch(&format!("dev-{d}"), b * 10 + 1..=b * 10 + 10),
                            NOW,
                        )
                        .await
                        .unwrap();
                    assert_eq!((o.stored, o.highest_durable_seq), (10, b * 10 + 10));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        drop(ingest);
        writer.await.unwrap();
        let m = metrics.snapshot();
        assert_eq!(m.batches, submitters * rounds);
        assert_eq!(m.reports_stored, submitters * rounds * 10);
        assert!(
            m.flushes >= rounds && m.flushes * 4 <= m.batches,
            "{} flushes for {} batches: groups do not share flushes",
            m.flushes,
            m.batches
        );
        assert_eq!(store.report_count() as u64, submitters * rounds * 10);
    }

    #[tokio::test]
    async fn invalid_batches_never_reach_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let metrics = Arc::new(IngestMetrics::default());
        let (ingest, _writer) =
            Ingest::start(store.clone(), IngestConfig::default(), metrics.clone());
        let mut b = batch("dev-1", 1..=2);
        b.reports[1].cpu_util = 7.0;
        let e = ingest.submit_at("acme", b, NOW).await.unwrap_err();
        assert!(e.to_string().contains("reports[1].cpu_util"), "{e}");
        assert_eq!(store.report_count(), 0);
        assert_eq!(metrics.snapshot().rejected_invalid, 1);
    }
}
