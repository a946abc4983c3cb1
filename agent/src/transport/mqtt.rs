//! The MQTT transport: publishes a batch on `veille/v1/{org}/devices/{device_id}/reports`
//! (QoS 1) and waits for the collector's Ack on `.../ack`.
//!
//! A broker's PUBACK only says the broker has the message; the batch counts as sent
//! only when the collector's Ack (published once the batch is durable) arrives, matched
//! to the batch by `acked_from_seq`. No Ack within `ack_timeout_s` → `Unavailable`, and
//! the send loop sends the batch again (ingest is idempotent). One batch at a time.
//!
//! MQTT 5 (default) and 3.1.1 are two rumqttc clients with different types; rather than
//! duplicate the transport, [`Client`] wraps the two publish/subscribe handles and one
//! driver task per version turns its event loop into the same [`Incoming`] stream.
//!
//! Persistent session: the client id is derived from org and device id and the session
//! is kept, so the ack subscription and unacknowledged QoS 1 messages survive
//! reconnects. `mqtts://` speaks TLS (rumqttc's rustls transport, ring provider) with
//! the CA and client certificate of [`crate::tls::TlsFiles`].
//!
//! Policy channel: with [`MqttSettings::policy_tx`], the agent also subscribes to its
//! org's retained `veille/v1/{org}/policy` and hands each payload, as received, to that
//! channel (the run loop decodes and verifies it like a gRPC Ack's policy; a broker
//! message never pins a key).

use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use veille_proto::defaults::MAX_BATCH_BYTES;
use veille_proto::mqtt_url::{self, BrokerUrl};
use veille_proto::topics;
use veille_proto::v1::{Ack, ReportBatch};

use super::{SendError, Transport};

/// Everything the transport needs, from the agent's config and identity.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub url: String,
    /// 5 or 4 (3.1.1).
    pub version: u8,
    pub org: String,
    pub token: String,
    pub device_id: String,
    pub keep_alive: Duration,
    pub ack_timeout: Duration,
    /// Where payloads received on the org's policy topic go; `None`: not subscribed.
    pub policy_tx: Option<mpsc::Sender<Vec<u8>>>,
    /// CA and client certificate for `mqtts://`.
    pub tls: crate::tls::TlsFiles,
}

/// The topics a driver subscribes to, and where policy payloads go.
struct Subscriptions {
    ack: String,
    policy: Option<(String, mpsc::Sender<Vec<u8>>)>,
}

impl Subscriptions {
    fn subscribe(&self, client: &Client) {
        if let Err(e) = client.try_subscribe(&self.ack) {
            tracing::error!(error = %e, "cannot subscribe to the ack topic");
        }
        if let Some((topic, _)) = &self.policy
            && let Err(e) = client.try_subscribe(topic)
        {
            tracing::error!(error = %e, "cannot subscribe to the policy topic");
        }
    }

    /// A payload on the policy topic goes to the policy channel; other topics are ignored.
    fn on_policy(&self, topic: &[u8], payload: &[u8]) {
        if let Some((t, tx)) = &self.policy
            && t.as_bytes() == topic
            && tx.try_send(payload.to_vec()).is_err()
        {
            tracing::warn!("policy message dropped: the policy holder is busy or gone");
        }
    }
}

/// The client id of a device: stable (persistent session), one per org and device.
pub fn client_id(org: &str, device_id: &str) -> String {
    format!("veille-{org}-{device_id}")
}

/// What the driver tasks report, whatever the protocol version.
#[derive(Debug)]
enum Incoming {
    Ack(Ack),
}

#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

impl Client {
    async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
        match self {
            Self::V4(c) => c
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .map_err(|e| e.to_string()),
            Self::V5(c) => c
                .publish(
                    topic,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Non-blocking: called from the driver, which must keep polling its event loop.
    fn try_subscribe(&self, topic: &str) -> Result<(), String> {
        match self {
            Self::V4(c) => c
                .try_subscribe(topic, rumqttc::QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
            Self::V5(c) => c
                .try_subscribe(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
        }
    }

    fn try_disconnect(&self) {
        let _ = match self {
            Self::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Self::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

pub struct MqttTransport {
    client: Client,
    incoming: mpsc::Receiver<Incoming>,
    connected: watch::Receiver<bool>,
    reports_topic: String,
    ack_timeout: Duration,
    driver: JoinHandle<()>,
}

impl Drop for MqttTransport {
    fn drop(&mut self) {
        self.client.try_disconnect();
        self.driver.abort();
    }
}

impl MqttTransport {
    /// Starts the connection in the background (the agent starts and spools while the
    /// broker is down). Fails only on a bad URL or ids that cannot be topic segments.
    pub fn start(s: MqttSettings) -> Result<Self, SendError> {
        let bad = |reason: &str| SendError::BadUrl {
            url: s.url.clone(),
            reason: reason.to_owned(),
        };
        let BrokerUrl {
            host,
            port,
            tls: use_tls,
        } = mqtt_url::parse(&s.url).ok_or_else(|| bad(mqtt_url::EXPECTED))?;
        let tls = if use_tls {
            let config = s.tls.client_config().map_err(|e| SendError::BadUrl {
                url: s.url.clone(),
                reason: e.to_string(),
            })?;
            Some(rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(
                config,
            )))
        } else {
            None
        };
        if !topics::valid_segment(&s.device_id) || !topics::valid_segment(&s.org) {
            return Err(bad(
                "org and device id must be valid MQTT topic segments (no '/', '+', '#')",
            ));
        }
        let id = client_id(&s.org, &s.device_id);
        let subs = Subscriptions {
            ack: topics::ack(&s.org, &s.device_id),
            policy: s.policy_tx.clone().map(|tx| (topics::policy(&s.org), tx)),
        };
        let (tx, incoming) = mpsc::channel(64);
        let (connected_tx, connected) = watch::channel(false);
        let max = MAX_BATCH_BYTES + 64 * 1024;
        let (client, driver) = if s.version == 4 {
            let mut o = rumqttc::MqttOptions::new(id, host, port);
            o.set_credentials(s.org.clone(), s.token.clone())
                .set_keep_alive(s.keep_alive)
                .set_clean_session(false)
                .set_max_packet_size(max, max);
            if let Some(tls) = tls.clone() {
                o.set_transport(rumqttc::Transport::tls_with_config(tls));
            }
            let (c, events) = rumqttc::AsyncClient::new(o, 16);
            let client = Client::V4(c);
            let driver = tokio::spawn(drive_v4(events, client.clone(), subs, tx, connected_tx));
            (client, driver)
        } else {
            let mut o = rumqttc::v5::MqttOptions::new(id, host, port);
            o.set_credentials(s.org.clone(), s.token.clone())
                .set_keep_alive(s.keep_alive)
                .set_clean_start(false)
                // Keep the session (ack subscription, queued acks) for a week offline.
                .set_session_expiry_interval(Some(7 * 86_400))
                .set_max_packet_size(Some(u32::try_from(max).unwrap_or(u32::MAX)));
            if let Some(tls) = tls {
                o.set_transport(rumqttc::Transport::tls_with_config(tls));
            }
            let (c, events) = rumqttc::v5::AsyncClient::new(o, 16);
            let client = Client::V5(c);
            let driver = tokio::spawn(drive_v5(events, client.clone(), subs, tx, connected_tx));
            (client, driver)
        };
        Ok(Self {
            client,
            incoming,
            connected,
            reports_topic: topics::reports(&s.org, &s.device_id),
            ack_timeout: s.ack_timeout,
            driver,
        })
    }
}

/// Whether `ack` answers a batch whose reports span `first..=last` (`None` for a batch
/// with only an inventory).
pub fn ack_matches(ack: &Ack, span: Option<(u64, u64)>) -> bool {
    match span {
        Some((first, last)) => {
            ack.acked_from_seq == first
                || (ack.rejected.is_empty() && ack.highest_durable_seq >= last)
        }
        None => ack.acked_from_seq == 0,
    }
}

impl Transport for MqttTransport {
    async fn send(&mut self, batch: ReportBatch) -> Result<Ack, SendError> {
        let span = batch
            .reports
            .first()
            .zip(batch.reports.last())
            .map(|(a, b)| (a.seq, b.seq));
        let payload = batch.encode_to_vec();
        if payload.len() > MAX_BATCH_BYTES {
            return Err(SendError::Invalid(format!(
                "batch of {} bytes exceeds {MAX_BATCH_BYTES}",
                payload.len()
            )));
        }
        let wait = self.ack_timeout.min(Duration::from_secs(10));
        let up = tokio::time::timeout(wait, self.connected.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok());
        if !up {
            return Err(SendError::Unavailable(
                "not connected to the MQTT broker".into(),
            ));
        }
        // Acks of earlier sends that arrived late would be mistaken for this one's.
        while self.incoming.try_recv().is_ok() {}
        self.client
            .publish(self.reports_topic.clone(), payload)
            .await
            .map_err(SendError::Unavailable)?;
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(Incoming::Ack(ack))) if ack_matches(&ack, span) => {
                    if !ack.rejected.is_empty() {
                        return Err(SendError::Invalid(ack.rejected));
                    }
                    return Ok(ack);
                }
                Ok(Some(Incoming::Ack(stale))) => {
                    tracing::debug!(
                        acked_from_seq = stale.acked_from_seq,
                        "ack of an earlier send; ignored"
                    );
                }
                Ok(None) => {
                    return Err(SendError::Unavailable("MQTT connection task ended".into()));
                }
                Err(_) => {
                    return Err(SendError::Unavailable(format!(
                        "no ack from the collector within {:?} (the broker has the batch, \
                         the collector may be down)",
                        self.ack_timeout
                    )));
                }
            }
        }
    }
}

/// Reconnect pause after the `n`th consecutive failure: 0.5 s doubling to 30 s.
fn reconnect_delay(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << n.min(6)).min(30_000))
}

fn on_failure(failures: &mut u32, error: &(dyn std::error::Error + 'static)) -> Duration {
    *failures += 1;
    if *failures == 1 {
        // rumqttc keeps the rustls error in its chain, or only in its Debug text.
        let hint =
            crate::tls::explain(error).or_else(|| crate::tls::explain_text(&format!("{error:?}")));
        if let Some(hint) = hint {
            tracing::warn!(error = %error, "{hint}; reports stay in the spool");
        } else {
            tracing::warn!(error = %error, "MQTT broker unreachable or refused us; reports stay in the spool");
        }
    } else {
        tracing::debug!(error = %error, failures = *failures, "MQTT broker still unreachable");
    }
    reconnect_delay(*failures - 1)
}

fn on_ack_payload(payload: &[u8], tx: &mpsc::Sender<Incoming>) {
    match Ack::decode(payload) {
        Ok(ack) => {
            // Full only if nobody reads: the next send drains stale acks anyway.
            let _ = tx.try_send(Incoming::Ack(ack));
        }
        Err(e) => tracing::warn!(error = %e, "ack topic carried something that is not an Ack"),
    }
}

async fn drive_v4(
    mut events: rumqttc::EventLoop,
    client: Client,
    subs: Subscriptions,
    tx: mpsc::Sender<Incoming>,
    connected: watch::Sender<bool>,
) {
    use rumqttc::{ConnectReturnCode, Event, Packet};
    let mut failures = 0u32;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(c))) if c.code == ConnectReturnCode::Success => {
                tracing::info!(
                    session_present = c.session_present,
                    "connected to the MQTT broker (3.1.1)"
                );
                failures = 0;
                subs.subscribe(&client);
                let _ = connected.send(true);
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == subs.ack => {
                on_ack_payload(&p.payload, &tx);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                subs.on_policy(p.topic.as_bytes(), &p.payload);
            }
            Ok(_) => {}
            Err(e) => {
                let _ = connected.send(false);
                let delay = on_failure(&mut failures, &e);
                tokio::time::sleep(delay).await;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

async fn drive_v5(
    mut events: rumqttc::v5::EventLoop,
    client: Client,
    subs: Subscriptions,
    tx: mpsc::Sender<Incoming>,
    connected: watch::Sender<bool>,
) {
    use rumqttc::v5::Event;
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
    let mut failures = 0u32;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(c))) if c.code == ConnectReturnCode::Success => {
                tracing::info!(
                    session_present = c.session_present,
                    "connected to the MQTT broker (MQTT 5)"
                );
                failures = 0;
                subs.subscribe(&client);
                let _ = connected.send(true);
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == subs.ack.as_bytes() => {
                on_ack_payload(&p.payload, &tx);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                subs.on_policy(&p.topic, &p.payload);
            }
            Ok(_) => {}
            Err(e) => {
                let _ = connected.send(false);
                let delay = on_failure(&mut failures, &e);
                tokio::time::sleep(delay).await;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_match_their_batch_only() {
        let ack = |from, highest, rejected: &str| Ack {
            acked_from_seq: from,
            highest_durable_seq: highest,
            rejected: rejected.into(),
            ..Ack::default()
        };
        assert!(ack_matches(&ack(10, 12, ""), Some((10, 12))));
        // A later ack that covers the batch is as good.
        assert!(ack_matches(&ack(13, 15, ""), Some((10, 12))));
        // An earlier batch's ack does not cover this one.
        assert!(!ack_matches(&ack(7, 9, ""), Some((10, 12))));
        // A refusal counts only for its own batch.
        assert!(ack_matches(&ack(10, 0, "bad"), Some((10, 12))));
        assert!(!ack_matches(&ack(7, 20, "bad"), Some((10, 12))));
        assert!(ack_matches(&ack(0, 3, ""), None));
        assert!(!ack_matches(&ack(4, 3, ""), None));
    }

    #[test]
    fn reconnect_delay_grows_and_caps() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(500));
        assert_eq!(reconnect_delay(1), Duration::from_secs(1));
        assert_eq!(reconnect_delay(20), Duration::from_secs(30));
    }
}
