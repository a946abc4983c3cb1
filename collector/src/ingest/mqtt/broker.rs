//! The embedded broker (rumqttd 0.20), for the default single-machine deployment.
//!
//! rumqttd's quirks shape this file:
//! - `Broker::start` blocks forever and has no shutdown: it runs on its own thread for
//!   the life of the process; a stopping collector only stops subscribing and acking.
//! - It cannot report the address a port-0 listener got, and a listener that fails to
//!   bind only logs inside rumqttd: so the port is chosen (and checked free) here, by
//!   binding and releasing it, and the listeners are probed after start.
//! - `RouterConfig::default()` is all zeros: every limit is set explicitly.
//! - It stores messages per *subscription filter*, and disconnects a client that
//!   publishes on a topic no filter matches: the filters the collector publishes to or
//!   reads from are created at start (`initialized_filters`).
//! - Credentials go through an auth callback (password = org token, username = its org
//!   id or empty);
//!   rumqttd has no per-user topic ACL (its tenant prefixes need TLS client
//!   certificates), so it listens on loopback only and clients reach it through the
//!   collector's org guard (`guard.rs`), which keeps each connection to its token's
//!   org's topics.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings};
use veille_proto::defaults::MAX_BATCH_BYTES;
use veille_proto::topics;

use crate::auth::Auth;
use crate::metrics::IngestMetrics;

/// Client id of the collector's in-process link.
pub const LINK_CLIENT_ID: &str = "veille-collector";

/// Connections the embedded broker accepts (agents, meters). rumqttd reserves slab
/// capacity for them up front (virtual memory, touched as connections come).
pub const MAX_CONNECTIONS: usize = 100_000;

/// Per-filter in-memory log of the embedded broker, for filters not listed below: every
/// agent's own ack filter gets one, so keep it small (rumqttd rotates segments, a
/// message larger than a segment still fits).
const SMALL_SEGMENT_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen for MQTT on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the embedded MQTT broker did not open {addr} (see rumqttd's log above)")]
    NotListening { addr: SocketAddr },
    #[error("cannot link to the embedded MQTT broker: {0}")]
    Link(String),
    #[error("cannot start the embedded MQTT broker thread: {0}")]
    Thread(std::io::Error),
}

/// The running embedded broker: its bound addresses and the collector's link.
pub struct EmbeddedBroker {
    pub v4: SocketAddr,
    pub v5: SocketAddr,
    pub link_tx: LinkTx,
    pub link_rx: LinkRx,
}

/// Resolves port 0 to a free port by binding and releasing it, for both listeners at
/// once (two port-0 requests get two ports); also fails early, with a clear error, when
/// a fixed port is taken (rumqttd would only log it).
pub fn reserve_pair(
    v4: SocketAddr,
    v5: SocketAddr,
) -> Result<(SocketAddr, SocketAddr), BrokerError> {
    let bind = |addr| TcpListener::bind(addr).map_err(|source| BrokerError::Bind { addr, source });
    let (a, b) = (bind(v4)?, bind(v5)?);
    let addr = |l: &TcpListener, at| {
        l.local_addr()
            .map_err(|source| BrokerError::Bind { addr: at, source })
    };
    Ok((addr(&a, v4)?, addr(&b, v5)?))
}

/// Starts rumqttd with an MQTT 3.1.1 listener on `v4` and an MQTT 5 listener on `v5`
/// (ports already resolved by [`reserve_pair`]), authenticating clients against `auth`.
pub fn start(
    v4: SocketAddr,
    v5: SocketAddr,
    auth: Arc<Auth>,
    metrics: Arc<IngestMetrics>,
) -> Result<EmbeddedBroker, BrokerError> {
    let config = broker_config(v4, v5, &auth, &metrics);
    let mut broker = Broker::new(config);
    let (link_tx, link_rx) = broker
        .link(LINK_CLIENT_ID)
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            // Returns only on a configuration error; listeners run on their own threads.
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    for addr in [v4, v5] {
        wait_listening(addr)?;
    }
    Ok(EmbeddedBroker {
        v4,
        v5,
        link_tx,
        link_rx,
    })
}

/// Waits until rumqttd listens on `addr`.
///
/// # Platform-specific behaviour
/// On Linux, reads `/proc/net/tcp{,6}` for a socket in LISTEN state on the port (a TCP
/// probe would make rumqttd log an error for the aborted connection). Elsewhere, gives
/// the listener threads a moment and trusts [`reserve_pair`]'s check.
fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    if !cfg!(target_os = "linux") {
        std::thread::sleep(Duration::from_millis(200));
        return Ok(());
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if listening_on(addr.port()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::NotListening { addr })
}

/// Whether `/proc/net/tcp` or `tcp6` lists a socket in LISTEN state (`0A`) on `port`.
fn listening_on(port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let mut cols = line.split_whitespace().skip(1);
                let local = cols.next().unwrap_or_default();
                let state = cols.nth(1).unwrap_or_default();
                local.ends_with(&wanted) && state == "0A"
            })
        })
    })
}

fn broker_config(
    v4: SocketAddr,
    v5: SocketAddr,
    auth: &Arc<Auth>,
    metrics: &Arc<IngestMetrics>,
) -> Config {
    let big = |mib: usize, count: usize| SegmentConfig {
        max_segment_size: mib * 1024 * 1024,
        max_segment_count: count,
    };
    let mut custom = HashMap::new();
    // All reports share one log (rumqttd stores per filter): room for a burst of full
    // batches while the writer flushes.
    custom.insert(topics::REPORTS_FILTER.to_owned(), big(32, 4));
    custom.insert(topics::METERS_FILTER.to_owned(), big(4, 2));
    custom.insert(topics::TASMOTA_SENSOR_FILTER.to_owned(), big(4, 2));
    let router = RouterConfig {
        max_connections: MAX_CONNECTIONS,
        max_outgoing_packet_count: 200,
        max_segment_size: SMALL_SEGMENT_BYTES,
        max_segment_count: 2,
        custom_segment: Some(custom),
        initialized_filters: Some(vec![
            topics::REPORTS_FILTER.to_owned(),
            topics::METERS_FILTER.to_owned(),
            topics::TASMOTA_SENSOR_FILTER.to_owned(),
            // The collector publishes acks before (or without) the agent subscribing;
            // a publish that matches no filter would disconnect the collector's link.
            topics::ACK_FILTER.to_owned(),
            topics::POLICY_FILTER.to_owned(),
        ]),
        ..RouterConfig::default()
    };
    let server = |name: &str, listen: SocketAddr| {
        let mut connections = ConnectionSettings {
            connection_timeout_ms: 10_000,
            // Protocol overhead on top of the largest batch.
            max_payload_size: MAX_BATCH_BYTES + 64 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            // A client publishing on a topic no one reads is disconnected instead of
            // growing a new in-memory log per topic.
            dynamic_filters: false,
        };
        let auth = auth.clone();
        let metrics = metrics.clone();
        connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
            // The token names its org (as over gRPC): the username may be empty, the
            // token again, or that org (Mosquitto's ACL needs the org as username).
            let ok = auth
                .org_for_token(&pass)
                .is_some_and(|org| user.is_empty() || user == pass || user == org);
            if !ok {
                IngestMetrics::add(&metrics.mqtt_auth_refused, 1);
                let total = metrics
                    .mqtt_auth_refused
                    .load(std::sync::atomic::Ordering::Relaxed);
                // `?` escapes control characters; the password is never logged.
                tracing::warn!(client_id = ?truncate(&client_id), org = ?truncate(&user),
                    reason = "auth_refused", total,
                    "MQTT connection refused: password must be an org token (username empty or that org)");
            }
            async move { ok }
        });
        ServerSettings {
            name: name.to_owned(),
            listen,
            tls: None,
            next_connection_delay_ms: 0,
            connections,
        }
    };
    Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("v4".to_owned(), server("v4", v4))])),
        v5: Some(HashMap::from([("v5".to_owned(), server("v5", v5))])),
        ..Config::default()
    }
}

pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
