//! How a batch reaches the collector: the [`Transport`] trait the send loop drives
//! (one batch at a time, an Ack or a classified error back, so the caller knows whether
//! to retry, isolate a bad report, or wait), and its two implementations, one file each:
//! [`grpc::GrpcTransport`] and [`mqtt::MqttTransport`].

use std::future::Future;

use veille_proto::v1::{Ack, ReportBatch};

pub mod grpc;
pub mod mqtt;

pub use grpc::GrpcTransport;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The collector refused the batch's content; resending it as is will not help.
    #[error("collector refused the batch: {0}")]
    Invalid(String),
    /// Wrong or missing token: an operator must fix the config.
    #[error("collector refused the token: {0}")]
    Unauthenticated(String),
    /// Network, timeout, collector unavailable: retry later.
    #[error("collector unreachable: {0}")]
    Unavailable(String),
    #[error("invalid collector URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
}

/// Sends one batch and returns the collector's Ack once the batch is durably stored.
/// The spool logic lives in the caller (`run::send_loop`), once for every transport.
pub trait Transport: Send {
    fn send(&mut self, batch: ReportBatch) -> impl Future<Output = Result<Ack, SendError>> + Send;

    /// Whether an Ack from this transport comes from the collector itself (a reply on
    /// the channel authenticated with our token), so the policy key it announces may be
    /// pinned on first contact. Not MQTT: any broker client could publish an Ack.
    fn trusted_for_key_pinning(&self) -> bool {
        false
    }
}
