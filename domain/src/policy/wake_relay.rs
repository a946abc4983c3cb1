//! Which awake agent can wake a powered-off device with a Wake-on-LAN packet (issue
//! 19's relay). A magic packet is a broadcast and does not cross routers, so the relay
//! must be on one of the target's IPv4 subnets (from the inventories' `interfaces`),
//! and awake: it reported recently. Pure: the collector passes the inventories and
//! the last report times it read, and `now`.
//!
//! The collector side that queues the request for the relay's next Ack is not wired
//! yet; the agent's sender is `veille_agent::wol`.

use std::net::Ipv4Addr;

use veille_proto::v1::NetworkInterface;

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
