//! Wake-on-LAN: waking a powered-off PC of the same subnet for its maintenance window
//! (issue 19's relay: an awake agent sends the packet on the collector's behalf, since
//! a broadcast does not cross routers).
//!
//! [`magic_packet`] is pure: 6 bytes 0xFF, then the target's MAC address 16 times
//! (AMD's "Magic Packet" white paper, 1995), 102 bytes. [`send_magic_packet`] sends it
//! in one UDP datagram, by default to the subnet's broadcast address on port 9
//! (discard), where network cards listen for it whatever the port.

use std::net::{SocketAddr, UdpSocket};

/// 6 sync bytes + 16 repetitions of a 6-byte MAC address.
pub const MAGIC_PACKET_LEN: usize = 6 + 16 * 6;
/// The customary port (discard); cards match the pattern on any port.
pub const WOL_PORT: u16 = 9;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

/// Why a MAC address does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (six hex bytes separated by ':' or '-')")]
pub struct MacError(pub String);

impl std::str::FromStr for Mac {
    type Err = MacError;

    /// `aa:bb:cc:dd:ee:ff` or `AA-BB-CC-DD-EE-FF` (Windows' form).
    fn from_str(s: &str) -> Result<Self, MacError> {
        let bad = || MacError(s.chars().take(40).collect());
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        Ok(Mac(mac))
    }
}

/// The magic packet that wakes the card with address `mac`.
pub fn magic_packet(mac: Mac) -> [u8; MAGIC_PACKET_LEN] {
    let mut packet = [0xFF; MAGIC_PACKET_LEN];
    for chunk in packet[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(&mac.0);
    }
    packet
}

/// Sends the magic packet for `mac` to `to` (a subnet broadcast address such as
/// `192.168.1.255:9`, or a unicast one) from an ephemeral UDP port, with broadcast
/// allowed. Returns once the datagram is handed to the kernel: Wake-on-LAN has no
/// answer; the proof is the device's next report.
pub fn send_magic_packet(mac: Mac, to: SocketAddr) -> std::io::Result<()> {
    let bind: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_broadcast(true)?;
    let sent = socket.send_to(&magic_packet(mac), to)?;
    if sent != MAGIC_PACKET_LEN {
        return Err(std::io::Error::other(format!(
            "sent {sent} of {MAGIC_PACKET_LEN} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]);

    #[test]
    fn the_packet_is_six_ff_then_sixteen_macs() {
        let p = magic_packet(MAC);
        assert_eq!(p.len(), 102);
        assert_eq!(p[..6], [0xFF; 6]);
        for i in 0..16 {
            assert_eq!(p[6 + i * 6..12 + i * 6], MAC.0, "repetition {i}");
        }
    }

    #[test]
    fn macs_parse_in_both_notations() {
        assert_eq!("00:1a:2b:3c:4d:5e".parse::<Mac>(), Ok(MAC));
        assert_eq!("00-1A-2B-3C-4D-5E".parse::<Mac>(), Ok(MAC));
        for bad in [
            "",
            "00:1a:2b:3c:4d",
            "00:1a:2b:3c:4d:5e:6f",
            "0:1a:2b:3c:4d:5e",
            "zz:1a:2b:3c:4d:5e",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    /// On a real socket: a receiver bound on loopback gets exactly the 102 bytes.
    #[test]
    fn the_packet_arrives_whole_on_a_real_udp_socket() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        send_magic_packet(MAC, receiver.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 512];
        let (n, from) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(n, MAGIC_PACKET_LEN);
        assert_eq!(buf[..n], magic_packet(MAC));
        assert!(
            from.ip().is_loopback() || from.ip().is_unspecified(),
            "{from}"
        );
    }
}
