//! The MQTT transport of the collector: agents publish batches on
//! `veille/v1/{org}/devices/{device_id}/reports`, the collector stores them through the
//! same [`crate::ingest::Ingest`] as gRPC and answers on `.../ack` once durable.
//!
//! # Layout
//! - [`broker`]: the embedded rumqttd broker (default), its listeners and auth callback.
//! - [`embedded`]: the subscriber on the embedded broker's in-process link.
//! - [`guard`]: the proxy in front of the embedded broker that keeps each connection
//!   to its own org's topics (rumqttd cannot).
//! - [`external`]: the subscriber on an external broker (shared subscription, manual
//!   acks, persistent session), for scale-out.
//! - [`reports`]: one message → checks → ingest → the Ack to publish (both modes).
//! - [`drops`]: drop reasons and the once-per-device-per-minute log.
//! - [`policy`]: the retained policy message per org (`veille/v1/{org}/policy`).
//!
//! Topic names come from [`veille_proto::topics`].

pub mod broker;
pub mod drops;
pub mod embedded;
pub mod external;
pub mod guard;
pub mod policy;
pub mod reports;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::ingest::Ingest;
use crate::metrics::IngestMetrics;
pub use broker::BrokerError;
use external::ExternalBroker;
use reports::ReportHandler;

/// Meter readings (`veille/v1/{org}/meters/{meter_id}`, Tasmota's `tele/+/SENSOR`;
/// `org` is empty for Tasmota topics) arrive here when the handler has no
/// [`crate::ingest::meter_sink::MeterSink`] (tools and tests that only ingest reports): counted
/// in `mqtt_meters_unhandled` and logged at debug. The server always gives it one.
pub fn meters_hook(org: &str, topic: &str, payload: &[u8], metrics: &IngestMetrics) {
    IngestMetrics::add(&metrics.mqtt_meters_unhandled, 1);
    tracing::debug!(org = ?org, topic = ?broker::truncate(topic), bytes = payload.len(),
        "meters not handled yet");
}

/// Where the MQTT side runs.
pub enum MqttStart {
    /// The embedded broker on these listeners (ports resolved: see [`broker::reserve_pair`]).
    Embedded { v4: SocketAddr, v5: SocketAddr },
    /// An external broker.
    External(ExternalBroker),
}

/// The running MQTT side.
pub struct Mqtt {
    /// Bound listeners `(MQTT 3.1.1, MQTT 5)` of the embedded broker.
    pub embedded: Option<(SocketAddr, SocketAddr)>,
    /// What the `listening` line shows after `mqtt=`.
    pub label: String,
    /// Ends after the stop signal, once the batches in flight are acked. The embedded
    /// broker's thread cannot be stopped and lives on until the process exits.
    pub task: JoinHandle<()>,
}

/// Starts the broker (embedded mode), the subscriber and the policy publisher.
#[allow(clippy::too_many_arguments)] // each is a distinct part the server owns
pub fn start(
    how: MqttStart,
    auth: Arc<Auth>,
    ingest: Ingest,
    metrics: Arc<IngestMetrics>,
    max_in_flight: usize,
    meters: Option<Arc<crate::ingest::meter_sink::MeterSink>>,
    policies: Option<Arc<crate::policy::cache::PolicyCache>>,
    stop: watch::Receiver<bool>,
) -> Result<Mqtt, BrokerError> {
    let orgs: Vec<String> = auth.org_ids().map(str::to_owned).collect();
    let mut handler = ReportHandler::new(ingest, orgs, metrics.clone());
    if let Some(sink) = meters {
        handler = handler.with_meters(sink);
    }
    if let Some(p) = &policies {
        handler = handler.with_wakes(p.clone());
    }
    let handler = Arc::new(handler);
    let max_in_flight = max_in_flight.max(1);
    match how {
        MqttStart::Embedded { v4, v5 } => {
            let b = broker::start(v4, v5, auth, metrics.clone())?;
            let task = tokio::spawn(embedded::run(
                b.link_tx,
                b.link_rx,
                handler,
                metrics,
                max_in_flight,
                policies,
                stop,
            ));
            Ok(Mqtt {
                embedded: Some((b.v4, b.v5)),
                label: b.v4.to_string(),
                task,
            })
        }
        MqttStart::External(ext) => {
            let label = format!("mqtt://{}:{}", ext.host, ext.port);
            let task = tokio::spawn(external::run(
                ext,
                handler,
                metrics,
                max_in_flight,
                policies,
                stop,
            ));
            Ok(Mqtt {
                embedded: None,
                label,
                task,
            })
        }
    }
}
