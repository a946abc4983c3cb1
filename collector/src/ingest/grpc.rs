//! The `veille.v1.Telemetry` gRPC service: bearer-token authentication, then
//! [`Ingest::submit`], then the `Ack`.
//!
//! Status codes an agent sees:
//! - `unauthenticated`: missing or unknown token (logged at warn with the peer address;
//!   the token itself is never logged);
//! - `invalid_argument`: the batch breaks the contract; the message names the field and
//!   value (`reports[0].end_unix_ms = ...: must be after start_unix_ms`); nothing stored;
//! - `unavailable`: the store could not make the batch durable or the collector is
//!   stopping; retry (ingest is idempotent);
//! - tonic's own codes for a body that is not a `ReportBatch` (`internal`, "failed to
//!   decode") or is larger than [`MAX_BATCH_BYTES`] (`out_of_range`).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use veille_proto::defaults::MAX_BATCH_BYTES;
use veille_proto::v1::telemetry_server::{Telemetry, TelemetryServer};
use veille_proto::v1::{Ack, ReportBatch};

use crate::auth::{Auth, bearer_token};
use crate::ingest::{Ingest, IngestError};
use crate::metrics::IngestMetrics;
use crate::policy::cache::PolicyCache;

/// The service behind [`TelemetryServer`].
pub struct TelemetryService {
    auth: Arc<Auth>,
    ingest: Ingest,
    metrics: Arc<IngestMetrics>,
    /// The org's current signed policy rides on every Ack (a map lookup).
    policies: Arc<PolicyCache>,
}

impl TelemetryService {
    pub fn new(auth: Arc<Auth>, ingest: Ingest, metrics: Arc<IngestMetrics>) -> Self {
        Self {
            auth,
            ingest,
            metrics,
            policies: Arc::new(PolicyCache::default()),
        }
    }

    /// Answers with the org's current policy from `policies` (shared with the HTTP API,
    /// which updates it on `PUT /api/v1/policy`).
    pub fn with_policies(mut self, policies: Arc<PolicyCache>) -> Self {
        self.policies = policies;
        self
    }

    /// The tonic service, accepting messages up to [`MAX_BATCH_BYTES`].
    pub fn into_server(self) -> TelemetryServer<Self> {
        TelemetryServer::new(self).max_decoding_message_size(MAX_BATCH_BYTES)
    }
}

#[tonic::async_trait]
impl Telemetry for TelemetryService {
    async fn report(&self, request: Request<ReportBatch>) -> Result<Response<Ack>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let org = match token.map(|t| self.auth.org_for_token(t)) {
            Some(Some(org)) => org.to_owned(),
            found => {
                IngestMetrics::add(&self.metrics.rejected_unauthenticated, 1);
                let reason = if found.is_none() {
                    "missing bearer token"
                } else {
                    "unknown token"
                };
                tracing::warn!(%peer, reason, "refused report: unauthenticated");
                return Err(Status::unauthenticated(format!(
                    "{reason}: send metadata `authorization: Bearer <organisation token>`"
                )));
            }
        };
        let batch = request.into_inner();
        let device_id = batch.device_id.clone();
        match self.ingest.submit(&org, batch).await {
            Ok(o) => {
                tracing::debug!(%org, device_id = ?device_id, stored = o.stored,
                    duplicates = o.duplicates, conflicts = o.conflicts, "batch stored");
                let policy = self.policies.get(&org);
                // The key goes with a policy only: an agent pins it to verify one.
                let policy_key = match &policy {
                    Some(_) => self.policies.public_key().to_owned(),
                    None => String::new(),
                };
                Ok(Response::new(Ack {
                    highest_durable_seq: o.highest_durable_seq,
                    stored: o.stored,
                    duplicates: o.duplicates,
                    conflicts: o.conflicts,
                    policy,
                    policy_key,
                    wake: self
                        .policies
                        .wakes
                        .for_relay(&org, &device_id, crate::clock::now_ms()),
                    // A reply needs no matching (MQTT acks do), and gRPC says
                    // "refused" with a status code.
                    ..Ack::default()
                }))
            }
            Err(IngestError::Invalid(e)) => {
                // `?` escapes control characters a hostile device id could hold.
                tracing::warn!(%peer, %org, device_id = ?truncate(&device_id), error = %e,
                    "refused invalid batch");
                Err(Status::invalid_argument(e.to_string()))
            }
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
