//! Carrying out the collector's Wake-on-LAN requests (`Ack.wake`, issue 19): this
//! agent is awake on the subnet of a sleeping device, so it sends the magic packet to
//! the subnet's broadcast address for the collector, whose packets would not cross the
//! routers.
//!
//! A request counts only if it verifies against the policy key this agent pinned
//! (`veille_proto::signing::verify_wake`: signed, for this device as relay, not
//! expired); anyone able to publish an Ack on the broker could otherwise make agents
//! flood their subnets. A refused request is logged once and not sent. The collector
//! repeats a request in every Ack until it expires, so each id is sent once; a sent
//! packet is reported as a `WOL_SENT` event.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use tracing::{info, warn};

/// How long a refused request is remembered (not logged again): a request's lifetime
/// on the collector (`veille_domain`'s `WAKE_TTL_MS`, which the agent does not depend on).
const REFUSED_REMEMBERED_MS: i64 = 10 * 60_000;
use veille_proto::signing::{self, VerifyingKey};
use veille_proto::v1::{EventKind, SignedWakeRequest};

use crate::policy::PolicyEvent;
use crate::wol::{Mac, send_magic_packet};

/// Sends what the collector asks, once per request id.
#[derive(Debug)]
pub struct WolRelay {
    port: u16,
    /// Request ids handled (sent or refused) → when they expire (unix ms), so a
    /// request repeated by the next Acks is not sent or logged again.
    handled: Mutex<HashMap<Vec<u8>, i64>>,
}

impl WolRelay {
    /// Sends packets to UDP `port` (config `wol_port`).
    pub fn new(port: u16) -> Self {
        Self {
            port,
            handled: Mutex::default(),
        }
    }

    /// Verifies and carries out `wakes` from an Ack. `pinned`: the policy key (none
    /// pinned yet: every request is refused). Returns the events for the next report.
    pub fn on_ack(
        &self,
        wakes: &[SignedWakeRequest],
        pinned: Option<&VerifyingKey>,
        device_id: &str,
        now_ms: i64,
    ) -> Vec<PolicyEvent> {
        let mut events = Vec::new();
        let mut handled = self.handled.lock().unwrap_or_else(|e| e.into_inner());
        handled.retain(|_, expires| *expires > now_ms);
        for signed in wakes {
            // Keyed by the signature: a forged copy of a good request's id is still
            // checked (and refused) on its own.
            if handled.contains_key(&signed.signature) {
                continue;
            }
            let Some(key) = pinned else {
                // Not remembered: once a policy pins the key, the next Ack's copy counts.
                tracing::debug!("wake-on-lan request ignored: no policy key pinned yet");
                continue;
            };
            let request = match signing::verify_wake(signed, key, device_id, now_ms) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, key_id = %signed.key_id, "wake-on-lan request refused");
                    // Refused requests are remembered a while so a repeating forger
                    // costs one log line per request, not one per Ack.
                    handled.insert(signed.signature.clone(), now_ms + REFUSED_REMEMBERED_MS);
                    continue;
                }
            };
            handled.insert(signed.signature.clone(), request.expires_unix_ms);
            match send(&request.mac, &request.broadcast, self.port) {
                Ok(to) => {
                    info!(request = %request.id, target = %request.target_device_id,
                        mac = %request.mac, %to, "wake-on-lan magic packet sent");
                    events.push(PolicyEvent {
                        kind: EventKind::WolSent,
                        at_ms: now_ms,
                        detail: format!(
                            "{} {} to {to} request {}",
                            request.target_device_id, request.mac, request.id
                        ),
                    });
                }
                Err(e) => {
                    warn!(request = %request.id, mac = %request.mac,
                        broadcast = %request.broadcast, error = %e,
                        "cannot send the wake-on-lan magic packet")
                }
            }
        }
        events
    }
}

fn send(mac: &str, broadcast: &str, port: u16) -> Result<SocketAddr, String> {
    let mac: Mac = mac
        .parse()
        .map_err(|e: crate::wol::MacError| e.to_string())?;
    let ip: Ipv4Addr = broadcast
        .parse()
        .map_err(|_| format!("{broadcast:?} is not an IPv4 address"))?;
    let to = SocketAddr::new(IpAddr::V4(ip), port);
    send_magic_packet(mac, to).map_err(|e| e.to_string())?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;
    use veille_proto::signing::{SigningKey, sign_wake};
    use veille_proto::v1::WakeRequest;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn request(relay: &str, expires_unix_ms: i64) -> WakeRequest {
        WakeRequest {
            id: "pc-off@1".into(),
            org: "acme".into(),
            relay_device_id: relay.into(),
            target_device_id: "pc-off".into(),
            mac: "02:00:00:00:00:01".into(),
            broadcast: "127.0.0.1".into(),
            expires_unix_ms,
        }
    }

    fn listener() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    }

    #[test]
    fn a_signed_request_sends_one_packet_however_many_acks_repeat_it() {
        let rx = listener();
        let relay = WolRelay::new(rx.local_addr().unwrap().port());
        let signed = sign_wake(&request("pc-a", 10_000), &key());
        let pinned = key().verifying_key();
        let events = relay.on_ack(std::slice::from_ref(&signed), Some(&pinned), "pc-a", 1_000);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::WolSent);
        assert!(
            events[0]
                .detail
                .starts_with("pc-off 02:00:00:00:00:01 to 127.0.0.1:")
        );
        let mut buf = [0u8; 200];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(
            buf[..n],
            crate::wol::magic_packet("02:00:00:00:00:01".parse().unwrap())
        );
        assert!(
            relay
                .on_ack(&[signed], Some(&pinned), "pc-a", 2_000)
                .is_empty()
        );
        assert!(rx.recv(&mut buf).is_err(), "sent twice");
    }

    #[test]
    fn forged_expired_foreign_and_unpinned_requests_send_nothing() {
        let rx = listener();
        let relay = WolRelay::new(rx.local_addr().unwrap().port());
        let pinned = key().verifying_key();
        let forger = SigningKey::from_bytes(&[9; 32]);
        let mut forged = sign_wake(&request("pc-a", 10_000), &forger);
        // Claims the collector's key id: the signature still does not verify.
        forged.key_id = signing::key_id(&pinned);
        let mut unsigned = sign_wake(&request("pc-a", 10_000), &key());
        unsigned.signature.clear();
        let cases = [
            forged,
            unsigned,
            sign_wake(&request("pc-a", 1_000), &key()),
            sign_wake(&request("pc-b", 10_000), &key()),
        ];
        assert!(
            relay
                .on_ack(&cases, Some(&pinned), "pc-a", 1_000)
                .is_empty()
        );
        let good = sign_wake(&request("pc-a", 10_000), &key());
        assert!(relay.on_ack(&[good], None, "pc-a", 1_000).is_empty());
        let mut buf = [0u8; 200];
        assert!(rx.recv(&mut buf).is_err(), "a refused request was sent");
    }
}
