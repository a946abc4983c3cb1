//! The subscriber on an external broker (Mosquitto, EMQX, VerneMQ), MQTT 3.1.1.
//!
//! - Shared subscription `$share/veille/...`: the broker gives each message to one
//!   collector of the group, so several collectors split the load.
//! - Persistent session (clean session off, stable client id) and manual acks: the
//!   PUBACK goes out only after the batch is durable and its Ack published, so a
//!   collector that crashes mid-batch gets the message again when it reconnects.
//! - On a clean stop it unsubscribes first, so the broker stops routing messages to a
//!   session that may never come back (agents resend what was not acked).

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::{Semaphore, watch};
use veille_proto::defaults::MAX_BATCH_BYTES;
use veille_proto::topics;

use super::reports::{Handled, ReportHandler};
use crate::metrics::IngestMetrics;

/// Request channel capacity of the rumqttc client: see `run`.
const REQUEST_CAPACITY: usize = 2 * 65_536 + 1_024;

/// Where and who the collector is on the external broker.
#[derive(Clone)]
pub struct ExternalBroker {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub client_id: String,
    /// `mqtts://`: the rustls client config (CA, optional client certificate).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The filters a collector subscribes to, shared.
pub fn shared_filters() -> [String; 3] {
    [
        topics::shared(topics::REPORTS_FILTER),
        topics::shared(topics::METERS_FILTER),
        topics::shared(topics::TASMOTA_SENSOR_FILTER),
    ]
}

fn options(b: &ExternalBroker, max_in_flight: usize) -> MqttOptions {
    let mut o = MqttOptions::new(b.client_id.clone(), b.host.clone(), b.port);
    if !b.username.is_empty() {
        o.set_credentials(b.username.clone(), b.password.clone());
    }
    let max = MAX_BATCH_BYTES + 64 * 1024;
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(max, max)
        .set_inflight(u16::try_from(max_in_flight).unwrap_or(u16::MAX));
    if let Some(tls) = &b.tls {
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    o
}

/// What to tell the operator when the broker's TLS handshake fails; `None` when the
/// failure is not about TLS. rumqttc keeps rustls' error only in its Debug text.
fn tls_hint(error: &rumqttc::ConnectionError) -> Option<&'static str> {
    use veille_proto::tls::{HandshakeFailure, classify_text};
    Some(match classify_text(&format!("{error:?}"))? {
        HandshakeFailure::UnknownCa => {
            "the broker's certificate is signed by an unknown authority; check [mqtt] ca_cert"
        }
        HandshakeFailure::WrongName => {
            "the broker's certificate does not name the host of [mqtt] broker"
        }
        HandshakeFailure::ClientCertRequired => {
            "the broker requires a client certificate; set [mqtt] client_cert and client_key"
        }
        HandshakeFailure::NotTls => {
            "the broker does not speak TLS on this port; use mqtt:// or its TLS port"
        }
    })
}

/// Subscribes and handles messages until `stop`; reconnects on its own.
pub async fn run(
    broker: ExternalBroker,
    handler: Arc<ReportHandler>,
    metrics: Arc<IngestMetrics>,
    max_in_flight: usize,
    policies: Option<Arc<crate::policy::cache::PolicyCache>>,
    mut stop: watch::Receiver<bool>,
) {
    // Handler tasks queue two requests per message (Ack publish, PUBACK) and the event
    // loop drains one request per poll: a channel that could fill would deadlock (tasks
    // blocked on it hold the permits the poll loop waits for). Messages unacked by us are
    // bounded by the broker's in-flight window (at most 65,535 packet ids), so this
    // capacity is never reached; flume allocates as it fills.
    let (client, mut events) = AsyncClient::new(options(&broker, max_in_flight), REQUEST_CAPACITY);
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut failures = 0u32;
    let mut policy_changes = policies.as_ref().map(|c| c.changes());
    let mut policies_sent = super::policy::Sent::new();
    loop {
        let event = tokio::select! {
            e = events.poll() => e,
            _ = stop.wait_for(|s| *s) => break,
            _ = super::policy::changed(&mut policy_changes) => {
                if let Some(cache) = &policies {
                    super::policy::publish_external(&client, cache, &mut policies_sent);
                }
                continue;
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(broker = %format!("{}:{}", broker.host, broker.port),
                    client_id = %broker.client_id, session_present = ack.session_present,
                    "connected to the MQTT broker");
                failures = 0;
                for filter in shared_filters() {
                    // try_: awaiting here would stop polling the event loop that drains
                    // the request channel.
                    if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(%filter, error = %e, "cannot subscribe");
                    }
                }
                // Every connection: a broker restarted without persistence lost them.
                if let Some(cache) = &policies {
                    policies_sent.clear();
                    super::policy::publish_external(&client, cache, &mut policies_sent);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                tracing::debug!(codes = ?s.return_codes, "subscribed");
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // Waiting for a permit while not polling is the back-pressure: the broker
                // holds further messages once its in-flight window is full.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (handler, client, metrics) = (handler.clone(), client.clone(), metrics.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match handler.handle(&p.topic, &p.payload).await {
                        Handled::Reply { topic, payload } => {
                            match client
                                .publish(topic, QoS::AtLeastOnce, false, payload)
                                .await
                            {
                                Ok(()) => IngestMetrics::add(&metrics.mqtt_acks_published, 1),
                                Err(e) => tracing::warn!(error = %e, "cannot publish an ack"),
                            }
                            let _ = client.ack(&p).await;
                        }
                        Handled::Done => {
                            let _ = client.ack(&p).await;
                        }
                        Handled::Retry => {}
                    }
                });
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    match tls_hint(&e) {
                        Some(hint) => tracing::error!(error = %e,
                            broker = %format!("{}:{}", broker.host, broker.port),
                            "TLS handshake with the MQTT broker failed: {hint}; retrying"),
                        None => tracing::warn!(error = %e,
                            broker = %format!("{}:{}", broker.host, broker.port),
                            "MQTT broker unreachable; retrying"),
                    }
                } else {
                    tracing::debug!(error = %e, failures, "MQTT broker still unreachable");
                }
                let delay = Duration::from_millis(200 * u64::from(failures.min(25)));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }
    }
    drain_and_leave(client, events, permits, max_in_flight).await;
}

/// Lets the batches in flight finish (their Acks and PUBACKs need the event loop), then
/// unsubscribes and disconnects, within a bounded time.
async fn drain_and_leave(
    client: AsyncClient,
    mut events: EventLoop,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
) {
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    let drained = permits.acquire_many(max_in_flight as u32);
    tokio::pin!(drained);
    let mut connected = true;
    loop {
        tokio::select! {
            _ = &mut drained => break,
            _ = &mut deadline => {
                tracing::warn!("MQTT batches still in flight at shutdown; the agents will resend");
                return;
            }
            e = events.poll(), if connected => if e.is_err() { connected = false },
        }
    }
    if !connected {
        return;
    }
    for filter in shared_filters() {
        let _ = client.try_unsubscribe(filter);
    }
    let _ = client.try_disconnect();
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            e = events.poll() => match e {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            },
        }
    }
}
