//! The MQTT transport: publishes a batch on `veille/v1/{org}/devices/{device_id}/reports`
//! (QoS 1) and waits for the collector's Ack on `.../ack`.
//!
//! A broker's PUBACK only says the broker has the message; the batch counts as sent
//! only when the collector's Ack (published once the batch is durable) arrives, matched
//! to the batch by `acked_from_seq`. No Ack within `ack_timeout_s` → `Unavailable`, and
//! the send loop sends the batch again (ingest is idempotent). One batch at a time.
//!
//! MQTT 5 and 3.1.1 are two rumqttc clients with different types; rather than
//! duplicate the transport, [`Client`] wraps the two publish/subscribe handles and one
//! driver task turns either event loop into the same [`Incoming`] stream.
//!
//! Version fallback: the driver starts with `[mqtt] version` (5 by default) and, when
//! the broker does not speak it, tries the other one. A broker says so in a CONNACK
//! (Mosquitto) or just closes the connection at CONNECT (rumqttd, the collector's
//! embedded broker, which serves 3.1.1 and 5 on two ports), so a connection closed
//! before any CONNACK also counts as "maybe the other version". The version that got a
//! CONNACK is kept for reconnections. Every failure is logged with its cause
//! ([`Cause`]): unreachable, TLS, refused credentials, protocol version.
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

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V5,
    V311,
}

impl Version {
    /// From `[mqtt] version` (checked by the config: 4 or 5).
    pub fn from_config(v: u8) -> Self {
        if v == 4 { Self::V311 } else { Self::V5 }
    }

    fn other(self) -> Self {
        match self {
            Self::V5 => Self::V311,
            Self::V311 => Self::V5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::V5 => "MQTT 5",
            Self::V311 => "MQTT 3.1.1",
        }
    }
}

/// What the driver needs to (re)build a client of either version.
struct Connect {
    id: String,
    host: String,
    port: u16,
    username: String,
    token: String,
    keep_alive: Duration,
    tls: Option<rumqttc::TlsConfiguration>,
}

/// Largest packet either way: the largest batch plus protocol overhead.
const MAX_PACKET_BYTES: usize = MAX_BATCH_BYTES + 64 * 1024;

impl Connect {
    fn v4(&self) -> (Client, rumqttc::EventLoop) {
        let mut o = rumqttc::MqttOptions::new(&self.id, &self.host, self.port);
        o.set_credentials(self.username.clone(), self.token.clone())
            .set_keep_alive(self.keep_alive)
            .set_clean_session(false)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if let Some(tls) = self.tls.clone() {
            o.set_transport(rumqttc::Transport::tls_with_config(tls));
        }
        let (c, events) = rumqttc::AsyncClient::new(o, 16);
        (Client::V4(c), events)
    }

    fn v5(&self) -> (Client, rumqttc::v5::EventLoop) {
        let mut o = rumqttc::v5::MqttOptions::new(&self.id, &self.host, self.port);
        o.set_credentials(self.username.clone(), self.token.clone())
            .set_keep_alive(self.keep_alive)
            .set_clean_start(false)
            // Keep the session (ack subscription, queued acks) for a week offline.
            .set_session_expiry_interval(Some(7 * 86_400))
            .set_max_packet_size(Some(u32::try_from(MAX_PACKET_BYTES).unwrap_or(u32::MAX)));
        if let Some(tls) = self.tls.clone() {
            o.set_transport(rumqttc::Transport::tls_with_config(tls));
        }
        let (c, events) = rumqttc::v5::AsyncClient::new(o, 16);
        (Client::V5(c), events)
    }
}

pub struct MqttTransport {
    /// The connected client, `None` while the driver has no connection.
    connected: watch::Receiver<Option<Client>>,
    incoming: mpsc::Receiver<Incoming>,
    reports_topic: String,
    ack_timeout: Duration,
    driver: JoinHandle<()>,
}

impl Drop for MqttTransport {
    fn drop(&mut self) {
        if let Some(client) = self.connected.borrow().as_ref() {
            client.try_disconnect();
        }
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
        let subs = Subscriptions {
            ack: topics::ack(&s.org, &s.device_id),
            policy: s.policy_tx.clone().map(|tx| (topics::policy(&s.org), tx)),
        };
        let connect = Connect {
            id: client_id(&s.org, &s.device_id),
            host,
            port,
            username: s.org.clone(),
            token: s.token.clone(),
            keep_alive: s.keep_alive,
            tls,
        };
        let (tx, incoming) = mpsc::channel(64);
        let (connected_tx, connected) = watch::channel(None);
        let driver = tokio::spawn(drive(
            connect,
            Version::from_config(s.version),
            subs,
            tx,
            connected_tx,
        ));
        Ok(Self {
            connected,
            incoming,
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
        let client =
            match tokio::time::timeout(wait, self.connected.wait_for(|c| c.is_some())).await {
                Ok(Ok(client)) => client.clone(),
                _ => None,
            };
        let Some(client) = client else {
            return Err(SendError::Unavailable(
                "not connected to the MQTT broker".into(),
            ));
        };
        // Acks of earlier sends that arrived late would be mistaken for this one's.
        while self.incoming.try_recv().is_ok() {}
        client
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

/// Why a connection attempt failed, as far as the agent can tell from its side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// No TCP connection: refused, no route, name not resolved, timed out.
    Unreachable,
    /// The TLS handshake failed; what to fix.
    Tls(String),
    /// The broker's CONNACK refused the username (org) or password (token).
    Credentials,
    /// The broker said it does not speak this protocol version, or answered with
    /// something that is not a CONNACK of it.
    Version,
    /// The broker closed the connection before any CONNACK: a broker that does not
    /// speak this version, or rumqttd refusing credentials (it sends no CONNACK).
    ClosedAtConnect,
    /// Anything else (a connection lost once established, a broker error code).
    Other,
}

impl Cause {
    /// Whether trying the other protocol version may help.
    fn may_be_version(&self) -> bool {
        matches!(self, Self::Version | Self::ClosedAtConnect)
    }

    /// The sentence an operator reads; `tried` is the version of the attempt.
    fn explain(&self, tried: Version) -> String {
        match self {
            Self::Unreachable => {
                "MQTT broker unreachable (no TCP connection: wrong host or port, broker down, \
                 or a firewall)"
                    .into()
            }
            Self::Tls(hint) => hint.clone(),
            Self::Credentials => {
                "the MQTT broker refused our credentials: check token (and org, sent as the \
                 MQTT username)"
                    .into()
            }
            Self::Version => format!("the MQTT broker does not speak {}", tried.name()),
            Self::ClosedAtConnect => format!(
                "the MQTT broker closed the connection at CONNECT ({})",
                tried.name()
            ),
            Self::Other => "MQTT connection failed".into(),
        }
    }
}

/// What both versions' failures at CONNECT say together.
fn explain_both(a: &Cause, b: &Cause) -> String {
    if *a == Cause::Version && *b == Cause::Version {
        "the MQTT broker speaks neither MQTT 5 nor 3.1.1 (wrong protocol version: is this \
         port an MQTT listener?)"
            .into()
    } else {
        "the MQTT broker closed the connection at CONNECT in MQTT 5 and in 3.1.1: it \
         refused our credentials (the collector's embedded broker answers a wrong token or \
         org this way: check token and org) or speaks neither version"
            .into()
    }
}

fn io_cause(e: &std::io::Error) -> Cause {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NotFound
        | K::TimedOut
        | K::AddrNotAvailable
        | K::NetworkDown => Cause::Unreachable,
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            Cause::ClosedAtConnect
        }
        // getaddrinfo failures come as `Other` or `Uncategorized` with this text.
        _ if e.to_string().contains("failed to lookup address") => Cause::Unreachable,
        _ => Cause::Other,
    }
}

/// The cause of a 3.1.1 connection error. `connected`: a CONNACK was received since the
/// last error (a loss after that is never a version problem).
fn cause_v4(e: &rumqttc::ConnectionError, connected: bool) -> Cause {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E, StateError as S};
    let cause = match e {
        E::Tls(_) => Cause::Tls(tls_hint(e)),
        E::Io(io) | E::MqttState(S::Io(io)) => io_cause(io),
        E::MqttState(S::ConnectionAborted) => Cause::ClosedAtConnect,
        E::MqttState(S::Deserialization(_)) | E::NotConnAck(_) => Cause::Version,
        E::NetworkTimeout => Cause::Unreachable,
        E::ConnectionRefused(C::RefusedProtocolVersion) => Cause::Version,
        E::ConnectionRefused(C::BadUserNamePassword | C::NotAuthorized) => Cause::Credentials,
        _ => Cause::Other,
    };
    refine(cause, e, connected)
}

/// The cause of an MQTT 5 connection error (see [`cause_v4`]).
fn cause_v5(e: &rumqttc::v5::ConnectionError, connected: bool) -> Cause {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    use rumqttc::v5::{ConnectionError as E, StateError as S};
    let cause = match e {
        E::Tls(_) => Cause::Tls(tls_hint(e)),
        E::Io(io) | E::MqttState(S::Io(io)) => io_cause(io),
        E::MqttState(S::ConnectionAborted) => Cause::ClosedAtConnect,
        E::MqttState(S::Deserialization(_)) | E::NotConnAck(_) => Cause::Version,
        E::Timeout(_) => Cause::Unreachable,
        E::ConnectionRefused(C::RefusedProtocolVersion | C::UnsupportedProtocolVersion) => {
            Cause::Version
        }
        E::ConnectionRefused(
            C::BadUserNamePassword | C::NotAuthorized | C::Banned | C::BadAuthenticationMethod,
        ) => Cause::Credentials,
        _ => Cause::Other,
    };
    refine(cause, e, connected)
}

/// TLS wins wherever it hides in the error; after a CONNACK, a closed connection or a
/// bad packet is a lost connection, not a version mismatch.
fn refine(cause: Cause, e: &(dyn std::error::Error + 'static), connected: bool) -> Cause {
    if !matches!(cause, Cause::Tls(_))
        && let Some(hint) =
            crate::tls::explain(e).or_else(|| crate::tls::explain_text(&format!("{e:?}")))
    {
        return Cause::Tls(hint);
    }
    if connected && cause.may_be_version() {
        return Cause::Other;
    }
    cause
}

/// rumqttc keeps the rustls error in its chain, or only in its Debug text.
fn tls_hint(e: &(dyn std::error::Error + 'static)) -> String {
    crate::tls::explain(e)
        .or_else(|| crate::tls::explain_text(&format!("{e:?}")))
        .unwrap_or_else(|| format!("TLS handshake with the MQTT broker failed: {e}"))
}

/// The driver's memory across attempts and versions.
struct Attempts {
    /// The version to try next.
    version: Version,
    /// Consecutive failures (for the reconnect pause and logging once).
    failures: u32,
    /// The other version's failure at CONNECT, when it was just tried and may not be
    /// the broker's.
    other_failed: Option<Cause>,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Try the other version now.
    Switch,
    /// Wait, then retry (with the version in `Attempts::version`).
    Wait(Duration),
}

impl Attempts {
    fn on_connack(&mut self) {
        self.failures = 0;
        self.other_failed = None;
    }

    /// Decides the next step after `cause` with `self.version`, and logs the failure
    /// once per streak with its cause.
    fn on_failure(&mut self, cause: Cause, error: &dyn std::fmt::Display) -> Next {
        let tried = self.version;
        if cause.may_be_version() {
            match self.other_failed.take() {
                None => {
                    tracing::info!(error = %error, "{}; trying {}", cause.explain(tried), tried.other().name());
                    self.other_failed = Some(cause);
                    self.version = tried.other();
                    return Next::Switch;
                }
                Some(other) => {
                    // Both versions failed at CONNECT: report, wait, and go on alternating.
                    self.version = tried.other();
                    return self.wait(&explain_both(&other, &cause), error);
                }
            }
        }
        self.other_failed = None;
        self.wait(&cause.explain(tried), error)
    }

    fn wait(&mut self, why: &str, error: &dyn std::fmt::Display) -> Next {
        self.failures += 1;
        if self.failures == 1 {
            tracing::warn!(error = %error, "{why}; reports stay in the spool");
        } else {
            tracing::debug!(error = %error, failures = self.failures, "{why}");
        }
        Next::Wait(reconnect_delay(self.failures - 1))
    }
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

/// Runs the connection for the life of the transport, one client at a time, switching
/// protocol version as [`Attempts`] decides.
async fn drive(
    connect: Connect,
    first: Version,
    subs: Subscriptions,
    tx: mpsc::Sender<Incoming>,
    connected: watch::Sender<Option<Client>>,
) {
    let mut attempts = Attempts {
        version: first,
        failures: 0,
        other_failed: None,
    };
    loop {
        let done = match attempts.version {
            Version::V5 => {
                let (client, events) = connect.v5();
                drive_v5(events, client, &subs, &tx, &connected, &mut attempts).await
            }
            Version::V311 => {
                let (client, events) = connect.v4();
                drive_v4(events, client, &subs, &tx, &connected, &mut attempts).await
            }
        };
        if done {
            return;
        }
    }
}

/// Polls one 3.1.1 client until the transport is gone (`true`) or the other version is
/// to be tried (`false`).
async fn drive_v4(
    mut events: rumqttc::EventLoop,
    client: Client,
    subs: &Subscriptions,
    tx: &mpsc::Sender<Incoming>,
    connected: &watch::Sender<Option<Client>>,
    attempts: &mut Attempts,
) -> bool {
    use rumqttc::{ConnectReturnCode, Event, Packet};
    let mut up = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(c))) if c.code == ConnectReturnCode::Success => {
                tracing::info!(
                    session_present = c.session_present,
                    "connected to the MQTT broker (3.1.1)"
                );
                up = true;
                attempts.on_connack();
                subs.subscribe(&client);
                let _ = connected.send(Some(client.clone()));
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == subs.ack => {
                on_ack_payload(&p.payload, tx);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                subs.on_policy(p.topic.as_bytes(), &p.payload);
            }
            Ok(_) => {}
            Err(e) => {
                let _ = connected.send(None);
                let cause = cause_v4(&e, up);
                up = false;
                match attempts.on_failure(cause, &e) {
                    Next::Switch => return false,
                    Next::Wait(delay) => tokio::time::sleep(delay).await,
                }
                if attempts.version != Version::V311 {
                    return tx.is_closed();
                }
            }
        }
        if tx.is_closed() {
            return true;
        }
    }
}

/// [`drive_v4`] for MQTT 5.
async fn drive_v5(
    mut events: rumqttc::v5::EventLoop,
    client: Client,
    subs: &Subscriptions,
    tx: &mpsc::Sender<Incoming>,
    connected: &watch::Sender<Option<Client>>,
    attempts: &mut Attempts,
) -> bool {
    use rumqttc::v5::Event;
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
    let mut up = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(c))) if c.code == ConnectReturnCode::Success => {
                tracing::info!(
                    session_present = c.session_present,
                    "connected to the MQTT broker (MQTT 5)"
                );
                up = true;
                attempts.on_connack();
                subs.subscribe(&client);
                let _ = connected.send(Some(client.clone()));
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == subs.ack.as_bytes() => {
                on_ack_payload(&p.payload, tx);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                subs.on_policy(&p.topic, &p.payload);
            }
            Ok(_) => {}
            Err(e) => {
                let _ = connected.send(None);
                let cause = cause_v5(&e, up);
                up = false;
                match attempts.on_failure(cause, &e) {
                    Next::Switch => return false,
                    Next::Wait(delay) => tokio::time::sleep(delay).await,
                }
                if attempts.version != Version::V5 {
                    return tx.is_closed();
                }
            }
        }
        if tx.is_closed() {
            return true;
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

    fn attempts(version: Version) -> Attempts {
        Attempts {
            version,
            failures: 0,
            other_failed: None,
        }
    }

    #[test]
    fn a_version_refused_at_connect_switches_once_then_waits() {
        let mut a = attempts(Version::V5);
        assert_eq!(a.on_failure(Cause::ClosedAtConnect, &"eof"), Next::Switch);
        assert_eq!(a.version, Version::V311);
        // Both refused: wait, and keep alternating.
        assert!(matches!(
            a.on_failure(Cause::ClosedAtConnect, &"eof"),
            Next::Wait(_)
        ));
        assert_eq!(a.version, Version::V5);
        assert_eq!(a.on_failure(Cause::Version, &"v"), Next::Switch);
        assert_eq!(a.version, Version::V311);
        // The version that answers is kept.
        a.on_connack();
        assert_eq!((a.version, a.failures), (Version::V311, 0));
        // Unreachable, credentials, TLS never switch.
        for cause in [
            Cause::Unreachable,
            Cause::Credentials,
            Cause::Tls("x".into()),
        ] {
            assert!(matches!(a.on_failure(cause, &"e"), Next::Wait(_)));
            assert_eq!(a.version, Version::V311);
        }
    }

    #[test]
    fn failures_are_classified_by_cause() {
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C5;
        use std::io::{Error, ErrorKind};
        let refused = rumqttc::ConnectionError::Io(Error::from(ErrorKind::ConnectionRefused));
        assert_eq!(cause_v4(&refused, false), Cause::Unreachable);
        let closed = rumqttc::ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted);
        assert_eq!(cause_v4(&closed, false), Cause::ClosedAtConnect);
        // A connection lost after its CONNACK is not a version problem.
        assert_eq!(cause_v4(&closed, true), Cause::Other);
        let bad_password = rumqttc::ConnectionError::ConnectionRefused(
            rumqttc::ConnectReturnCode::BadUserNamePassword,
        );
        assert_eq!(cause_v4(&bad_password, false), Cause::Credentials);
        let v = rumqttc::v5::ConnectionError::ConnectionRefused(C5::UnsupportedProtocolVersion);
        assert_eq!(cause_v5(&v, false), Cause::Version);
        let auth = rumqttc::v5::ConnectionError::ConnectionRefused(C5::NotAuthorized);
        assert_eq!(cause_v5(&auth, false), Cause::Credentials);
        assert!(
            Cause::Credentials
                .explain(Version::V5)
                .contains("credentials")
        );
        assert!(explain_both(&Cause::ClosedAtConnect, &Cause::ClosedAtConnect).contains("token"));
    }

    #[test]
    fn reconnect_delay_grows_and_caps() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(500));
        assert_eq!(reconnect_delay(1), Duration::from_secs(1));
        assert_eq!(reconnect_delay(20), Duration::from_secs(30));
    }
}
