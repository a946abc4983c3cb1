//! Which awake agent can wake a powered-off device with a Wake-on-LAN packet (issue
//! 19's relay). A magic packet is a broadcast and does not cross routers, so the relay
//! must be on one of the target's IPv4 subnets (from the inventories' `interfaces`),
//! and awake: it reported recently. Pure: the collector passes the inventories and
//! the last report times it read, and `now`.
//!
//! A request waits in the collector's store ([`QueuedWake`]) until it expires
//! ([`WAKE_TTL_MS`]); every Ack to its relay carries it ([`deliverable`]) and the agent
//! sends each id once, so a lost MQTT Ack costs nothing. The agent's sender is
//! `veille_agent::wol`.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use veille_proto::v1::NetworkInterface;

/// A device is awake (may relay; needs no wake-up) when its latest batch reached the
/// collector within this time: five default report intervals (60 s), so one lost batch
/// or a slow network does not make it look asleep.
pub const AWAKE_WITHIN_MS: i64 = 5 * 60_000;

/// How long a wake request waits for its relay's next Ack. A relay reports at least
/// every report interval (60 s by default); past ten minutes the relay has likely gone
/// to sleep itself and the operator should ask again (another relay will be picked).
pub const WAKE_TTL_MS: i64 = 10 * 60_000;

/// A wake request waiting in the collector's store for its relay's next Ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedWake {
    /// `<target>@<requested ms>`: unique enough, since a second request for a target
    /// with one pending is not queued ([`pending_for_target`]).
    pub id: String,
    pub org: String,
    pub target_device_id: String,
    pub relay_device_id: String,
    pub mac: String,
    pub subnet: String,
    pub broadcast: Ipv4Addr,
    pub requested_unix_ms: i64,
    pub expires_unix_ms: i64,
    /// Who asked: `cli`, `api`, `maintenance[<i>]`.
    pub reason: String,
}

impl QueuedWake {
    /// The request for `relay` (chosen by [`choose_relay`]) to wake `target_device_id`.
    pub fn new(
        org: &str,
        target_device_id: &str,
        relay: &Relay,
        now_ms: i64,
        reason: &str,
    ) -> Self {
        Self {
            id: format!("{target_device_id}@{now_ms}"),
            org: org.to_owned(),
            target_device_id: target_device_id.to_owned(),
            relay_device_id: relay.relay_device_id.clone(),
            mac: relay.mac.clone(),
            subnet: relay.subnet.clone(),
            broadcast: relay.broadcast,
            requested_unix_ms: now_ms,
            expires_unix_ms: now_ms.saturating_add(WAKE_TTL_MS),
            reason: reason.to_owned(),
        }
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_unix_ms <= now_ms
    }

    /// The contract form the relay's Ack carries (signed by the collector).
    pub fn to_proto(&self) -> veille_proto::v1::WakeRequest {
        veille_proto::v1::WakeRequest {
            id: self.id.clone(),
            org: self.org.clone(),
            relay_device_id: self.relay_device_id.clone(),
            target_device_id: self.target_device_id.clone(),
            mac: self.mac.clone(),
            broadcast: self.broadcast.to_string(),
            expires_unix_ms: self.expires_unix_ms,
        }
    }
}

/// Whether a device whose latest batch arrived at `last_seen_ms` counts as awake.
pub fn is_awake(last_seen_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(last_seen_ms) <= AWAKE_WITHIN_MS
}

/// The unexpired requests `relay` should carry out, oldest first.
pub fn deliverable<'a>(
    queue: &'a [QueuedWake],
    org: &str,
    relay: &str,
    now_ms: i64,
) -> Vec<&'a QueuedWake> {
    let mut out: Vec<_> = queue
        .iter()
        .filter(|q| q.org == org && q.relay_device_id == relay && !q.is_expired(now_ms))
        .collect();
    out.sort_by_key(|q| q.requested_unix_ms);
    out
}

/// An unexpired request already waiting to wake `target`: asking again (a second
/// collector's scheduler, an impatient operator) returns it instead of queuing another.
pub fn pending_for_target<'a>(
    queue: &'a [QueuedWake],
    org: &str,
    target: &str,
    now_ms: i64,
) -> Option<&'a QueuedWake> {
    queue
        .iter()
        .find(|q| q.org == org && q.target_device_id == target && !q.is_expired(now_ms))
}

/// A device that may relay.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub device_id: &'a str,
    pub interfaces: &'a [NetworkInterface],
    /// End of its latest report, unix ms.
    pub last_report_ms: i64,
}

/// Who sends which packet where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub relay_device_id: String,
    /// The target's hardware address (the packet's payload).
    pub mac: String,
    /// The shared subnet, CIDR.
    pub subnet: String,
    /// Its broadcast address, where the relay sends the packet (UDP port 9).
    pub broadcast: Ipv4Addr,
}

/// Why no relay can wake the target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRelay {
    #[error("the device reported no network interface with a MAC address and an IPv4 subnet")]
    NoAddress,
    #[error("no agent on {subnets} reported in the last {awake_within_s} s")]
    NoAwakeAgent {
        subnets: String,
        awake_within_s: i64,
    },
}

/// `a.b.c.d/len` → (network, prefix length), the network's host bits cleared.
pub fn parse_subnet(cidr: &str) -> Option<(Ipv4Addr, u32)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some((Ipv4Addr::from(u32::from(addr) & mask), len))
}

/// The broadcast address of a subnet (all host bits set).
pub fn broadcast(network: Ipv4Addr, len: u32) -> Ipv4Addr {
    let host_bits = u32::MAX.checked_shr(len).unwrap_or(0);
    Ipv4Addr::from(u32::from(network) | host_bits)
}

/// The relay for `target` (its interfaces): among `candidates` other than
/// `target_id` that reported within `awake_within_ms` of `now_ms` and share one of the
/// target's subnets, the one heard from last. The target's interfaces are tried in
/// their order.
pub fn choose_relay(
    target_id: &str,
    target: &[NetworkInterface],
    candidates: &[Candidate<'_>],
    now_ms: i64,
    awake_within_ms: i64,
) -> Result<Relay, NoRelay> {
    let mut subnets = Vec::new();
    for iface in target.iter().filter(|i| !i.mac.is_empty()) {
        for cidr in &iface.ipv4_subnets {
            let Some((network, len)) = parse_subnet(cidr) else {
                continue;
            };
            subnets.push(cidr.clone());
            let same = |c: &Candidate<'_>| {
                c.interfaces.iter().any(|ci| {
                    ci.ipv4_subnets
                        .iter()
                        .any(|s| parse_subnet(s) == Some((network, len)))
                })
            };
            let relay = candidates
                .iter()
                .filter(|c| c.device_id != target_id)
                .filter(|c| now_ms - c.last_report_ms <= awake_within_ms)
                .filter(|c| same(c))
                .max_by_key(|c| (c.last_report_ms, std::cmp::Reverse(c.device_id)));
            if let Some(r) = relay {
                return Ok(Relay {
                    relay_device_id: r.device_id.to_owned(),
                    mac: iface.mac.clone(),
                    subnet: format!("{network}/{len}"),
                    broadcast: broadcast(network, len),
                });
            }
        }
    }
    if subnets.is_empty() {
        return Err(NoRelay::NoAddress);
    }
    Err(NoRelay::NoAwakeAgent {
        subnets: subnets.join(", "),
        awake_within_s: awake_within_ms / 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(mac: &str, subnets: &[&str]) -> NetworkInterface {
        NetworkInterface {
            name: "eth0".into(),
            mac: mac.into(),
            ipv4_subnets: subnets.iter().map(|s| s.to_string()).collect(),
        }
    }

    const MIN: i64 = 60_000;

    fn queued(target: &str, relay: &str, at: i64) -> QueuedWake {
        let r = Relay {
            relay_device_id: relay.into(),
            mac: "02:00:00:00:00:01".into(),
            subnet: "192.168.1.0/24".into(),
            broadcast: Ipv4Addr::new(192, 168, 1, 255),
        };
        QueuedWake::new("acme", target, &r, at, "cli")
    }

    #[test]
    fn a_relay_gets_its_unexpired_requests_oldest_first() {
        let t0 = 1_800_000_000_000;
        let queue = [
            queued("pc-2", "pc-a", t0 + MIN),
            queued("pc-1", "pc-a", t0),
            queued("pc-3", "pc-b", t0),
            QueuedWake {
                org: "other".into(),
                ..queued("pc-4", "pc-a", t0)
            },
        ];
        let ids = |v: Vec<&QueuedWake>| v.into_iter().map(|q| q.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(deliverable(&queue, "acme", "pc-a", t0 + 2 * MIN)),
            [format!("pc-1@{t0}"), format!("pc-2@{}", t0 + MIN)]
        );
        // pc-1's request expires WAKE_TTL_MS after it was made, pc-2's a minute later.
        assert_eq!(
            ids(deliverable(&queue, "acme", "pc-a", t0 + WAKE_TTL_MS)),
            [format!("pc-2@{}", t0 + MIN)]
        );
        assert!(deliverable(&queue, "acme", "pc-a", t0 + MIN + WAKE_TTL_MS).is_empty());
        assert_eq!(queue[1].to_proto().broadcast, "192.168.1.255");
        assert_eq!(queue[1].to_proto().expires_unix_ms, t0 + WAKE_TTL_MS);
    }

    #[test]
    fn a_target_with_a_pending_request_is_not_queued_twice_until_it_expires() {
        let t0 = 1_800_000_000_000;
        let queue = [queued("pc-1", "pc-a", t0)];
        assert_eq!(
            pending_for_target(&queue, "acme", "pc-1", t0 + MIN),
            Some(&queue[0])
        );
        assert_eq!(pending_for_target(&queue, "other", "pc-1", t0 + MIN), None);
        assert_eq!(
            pending_for_target(&queue, "acme", "pc-1", t0 + WAKE_TTL_MS),
            None
        );
        assert!(is_awake(t0, t0 + AWAKE_WITHIN_MS));
        assert!(!is_awake(t0, t0 + AWAKE_WITHIN_MS + 1));
    }

    #[test]
    fn subnets_and_broadcasts() {
        assert_eq!(
            parse_subnet("192.168.1.23/24"),
            Some((Ipv4Addr::new(192, 168, 1, 0), 24))
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(192, 168, 1, 0), 24),
            Ipv4Addr::new(192, 168, 1, 255)
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 8, 0, 0), 16),
            Ipv4Addr::new(10, 8, 255, 255)
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 0, 0, 1), 32),
            Ipv4Addr::new(10, 0, 0, 1)
        );
        assert_eq!(parse_subnet("0.0.0.0/0"), Some((Ipv4Addr::UNSPECIFIED, 0)));
        for bad in ["192.168.1.0", "192.168.1.0/33", "300.1.1.1/8", "x/8"] {
            assert_eq!(parse_subnet(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_most_recently_heard_awake_agent_on_the_subnet_relays() {
        let target = [iface("00:1a:2b:3c:4d:5e", &["192.168.1.0/24"])];
        let same = [iface("aa:aa:aa:aa:aa:01", &["192.168.1.0/24"])];
        let other = [iface("aa:aa:aa:aa:aa:02", &["10.8.0.0/16"])];
        let now = 1_800_000_000_000;
        let c = |id, interfaces, ago_min: i64| Candidate {
            device_id: id,
            interfaces,
            last_report_ms: now - ago_min * MIN,
        };
        let candidates = [
            c("pc-target", &target[..], 0),
            c("pc-other-subnet", &other[..], 0),
            c("pc-asleep", &same[..], 30),
            c("pc-a", &same[..], 2),
            c("pc-b", &same[..], 1),
        ];
        let relay = choose_relay("pc-target", &target, &candidates, now, 5 * MIN).unwrap();
        assert_eq!(
            relay,
            Relay {
                relay_device_id: "pc-b".into(),
                mac: "00:1a:2b:3c:4d:5e".into(),
                subnet: "192.168.1.0/24".into(),
                broadcast: Ipv4Addr::new(192, 168, 1, 255),
            }
        );
        // Nobody awake on the subnet; no address at all.
        let e = choose_relay("pc-target", &target, &candidates[..3], now, 5 * MIN).unwrap_err();
        assert_eq!(
            e,
            NoRelay::NoAwakeAgent {
                subnets: "192.168.1.0/24".into(),
                awake_within_s: 300
            }
        );
        assert_eq!(
            choose_relay(
                "pc-x",
                &[iface("00:1a:2b:3c:4d:5f", &[])],
                &candidates,
                now,
                MIN
            ),
            Err(NoRelay::NoAddress)
        );
    }
}
