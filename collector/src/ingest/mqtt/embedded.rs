//! The subscriber on the embedded broker's in-process link: no TCP, no credentials (the
//! broker's auth callback already checked the publishers').
//!
//! The link subscribes at QoS 0: the broker runs in this process and keeps messages in
//! memory only, so a broker-level acknowledgement would add nothing; what makes a report
//! safe is the agent keeping it until our Ack. Acks are published at QoS 0 for the same
//! reason (rumqttd's link has no QoS 1 publish); an Ack lost on the way makes the agent
//! resend after its ack timeout, and ingest is idempotent.

use std::sync::{Arc, Mutex};

use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use tokio::sync::{Semaphore, watch};
use veille_proto::topics;

use super::reports::{Handled, ReportHandler};
use crate::metrics::IngestMetrics;

/// Reads the link until `stop`, handling up to `max_in_flight` messages at once, then
/// waits for those in flight.
pub async fn run(
    mut link_tx: LinkTx,
    mut link_rx: LinkRx,
    handler: Arc<ReportHandler>,
    metrics: Arc<IngestMetrics>,
    max_in_flight: usize,
    policies: Option<Arc<crate::policy::cache::PolicyCache>>,
    mut stop: watch::Receiver<bool>,
) {
    for filter in [
        topics::REPORTS_FILTER,
        topics::METERS_FILTER,
        topics::TASMOTA_SENSOR_FILTER,
    ] {
        if let Err(e) = link_tx.subscribe(filter) {
            tracing::error!(filter, error = %e, "cannot subscribe on the embedded broker");
        }
    }
    let link_tx = Arc::new(Mutex::new(link_tx));
    if let Some(cache) = policies {
        tokio::spawn(super::policy::run_embedded(
            link_tx.clone(),
            cache,
            stop.clone(),
        ));
    }
    let permits = Arc::new(Semaphore::new(max_in_flight));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let notification = tokio::select! {
            n = link_rx.next() => n,
            _ = stop.wait_for(|s| *s) => break,
        };
        let forward = match notification {
            Ok(Some(Notification::Forward(f))) => f,
            // The router paused this link because its buffer filled up: say we read it
            // all, or it never forwards again.
            Ok(Some(Notification::Unschedule)) => {
                if let Err(e) = link_rx.wake().await {
                    tracing::error!(error = %e, "embedded broker link closed; MQTT ingest stopped");
                    break;
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = %e, "embedded broker link closed; MQTT ingest stopped");
                break;
            }
        };
        let handler = handler.clone();
        let link_tx = link_tx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // A topic that is not UTF-8 has no shape we know.
            let topic = String::from_utf8_lossy(&forward.publish.topic);
            if let Handled::Reply { topic, payload } =
                handler.handle(&topic, &forward.publish.payload).await
            {
                let sent = link_tx
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .publish(topic, payload);
                match sent {
                    Ok(_) => IngestMetrics::add(&metrics.mqtt_acks_published, 1),
                    Err(e) => tracing::warn!(error = %e, "cannot publish an ack"),
                }
            }
        });
    }
    // Wait for the batches in flight: their acks go out, then the ingest handle drops.
    let _ = permits.acquire_many(max_in_flight as u32).await;
    tracing::debug!("embedded MQTT subscriber stopped");
}
