//! Network interfaces for the inventory: name, hardware address and the IPv4 subnets
//! each one is directly on. What a Wake-on-LAN relay needs (issue 19): the device to
//! wake is known by its MAC, and an awake agent on one of its subnets can reach it with
//! a broadcast.
//!
//! Read from `sys/class/net/*/address` and the kernel's routing table `proc/net/route`
//! under the probe root, so tests use a fake tree. Loopback, interfaces without a
//! hardware address (tunnels, WireGuard) and all-zero addresses are left out.

use veille_proto::v1::NetworkInterface;

use super::Host;
use super::inventory::Notes;

/// Most interfaces reported: a workstation has a handful; a hypervisor's hundreds of
/// virtual ports are of no use to a relay and would bloat every inventory.
pub const MAX_INTERFACES: usize = 16;

/// Most IPv4 subnets reported per interface: with the interface cap, the inventory
/// stays well inside the contract's per-list bound (a rejected inventory would reject
/// its whole batch).
pub const MAX_SUBNETS: usize = 16;

/// The interfaces of `host`, sorted by name.
pub fn interfaces(host: &Host, notes: &mut Notes) -> Vec<NetworkInterface> {
    let names = match std::fs::read_dir(host.path("sys/class/net")) {
        Ok(dir) => {
            let mut names: Vec<String> = dir
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
        Err(e) => {
            notes.push(format!("interfaces: sys/class/net not available ({e})"));
            return Vec::new();
        }
    };
    let routes = host
        .read_to_string("proc/net/route")
        .map(|t| connected_subnets(&t))
        .unwrap_or_else(|e| {
            notes.push(format!("interfaces: no IPv4 subnets ({e})"));
            Vec::new()
        });
    names
        .into_iter()
        .filter(|n| n != "lo")
        .filter_map(|name| {
            let mac = host
                .read_to_string(&format!("sys/class/net/{name}/address"))
                .ok()?
                .trim()
                .to_ascii_lowercase();
            if !is_mac(&mac) || mac == "00:00:00:00:00:00" {
                return None;
            }
            let ipv4_subnets = routes
                .iter()
                .filter(|(iface, _)| *iface == name)
                .map(|(_, subnet)| subnet.clone())
                .take(MAX_SUBNETS)
                .collect();
            Some(NetworkInterface {
                name,
                mac,
                ipv4_subnets,
            })
        })
        .take(MAX_INTERFACES)
        .collect()
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.char_indices().all(|(i, c)| {
            if i % 3 == 2 {
                c == ':'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// `(interface, "a.b.c.d/len")` for each directly connected IPv4 route of a
/// `/proc/net/route` text: gateway 0, destination and mask not 0 (the default route
/// is not a subnet). Addresses there are hex in the host's byte order.
fn connected_subnets(text: &str) -> Vec<(String, String)> {
    // The file prints each address's four bytes (network order in memory) as one
    // native-endian u32: its native bytes are the octets.
    let addr = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
    };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        let (Some(iface), Some(dest), Some(gw), Some(mask)) =
            (f.first(), f.get(1), f.get(2), f.get(7))
        else {
            continue;
        };
        let (Some(dest), Some(gw), Some(mask)) = (addr(dest), addr(gw), addr(mask)) else {
            continue;
        };
        if gw != 0 || mask == 0 || dest == 0 {
            continue;
        }
        let len = mask.leading_ones();
        if mask.count_ones() != len {
            continue;
        }
        let subnet = format!("{}/{len}", std::net::Ipv4Addr::from(dest));
        let entry = ((*iface).to_owned(), subnet);
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A laptop's `/proc/net/route` (little-endian x86): the default route through
    /// 192.168.1.254 on wlp2s0, 192.168.1.0/24 on it, 10.8.0.0/16 on enp3s0.
    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
wlp2s0\t00000000\tFE01A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
wlp2s0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n\
enp3s0\t0000080A\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n";

    #[test]
    fn interfaces_come_with_their_mac_and_subnets_from_a_fake_tree() {
        let root = tempfile::tempdir().unwrap();
        let host = Host::at(root.path());
        for (name, mac) in [
            ("lo", "00:00:00:00:00:00"),
            ("wlp2s0", "A4:C3:F0:11:22:33"),
            ("enp3s0", "00:1a:2b:3c:4d:5e"),
            ("wg0", ""),
        ] {
            let dir = host.path(&format!("sys/class/net/{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("address"), format!("{mac}\n")).unwrap();
        }
        std::fs::create_dir_all(host.path("proc/net")).unwrap();
        std::fs::write(host.path("proc/net/route"), ROUTE).unwrap();
        let mut notes = Notes::new();
        let found = interfaces(&host, &mut notes);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            found,
            vec![
                NetworkInterface {
                    name: "enp3s0".into(),
                    mac: "00:1a:2b:3c:4d:5e".into(),
                    ipv4_subnets: vec!["10.8.0.0/16".into()],
                },
                NetworkInterface {
                    name: "wlp2s0".into(),
                    mac: "a4:c3:f0:11:22:33".into(),
                    ipv4_subnets: vec!["192.168.1.0/24".into()],
                },
            ]
        );
    }

    #[test]
    fn no_sysfs_is_a_note_not_a_failure() {
        let root = tempfile::tempdir().unwrap();
        let mut notes = Notes::new();
        assert!(interfaces(&Host::at(root.path()), &mut notes).is_empty());
        assert_eq!(notes.len(), 1);
    }
}
