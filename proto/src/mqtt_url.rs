//! MQTT broker URLs, read the same way by the agent (`collector = "mqtts://…"`) and the
//! collector (`[mqtt] broker = "mqtts://…"`): the scheme alone selects TLS.

use crate::defaults::{MQTT_PORT, MQTTS_PORT};

/// A parsed `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or IP address (IPv6 without brackets); also the TLS server name.
    pub host: String,
    /// The URL's port, else 1883 (`mqtt://`) or 8883 (`mqtts://`).
    pub port: u16,
    /// `mqtts://`.
    pub tls: bool,
}

/// What a broker URL must look like, for error messages.
pub const EXPECTED: &str = "expected mqtt://host:port or mqtts://host:port";

/// Parses a broker URL; `None` when it is not one (wrong scheme, no host, bad port).
pub fn parse(url: &str) -> Option<BrokerUrl> {
    let (rest, default_port, tls) = match url.strip_prefix("mqtts://") {
        Some(rest) => (rest, MQTTS_PORT, true),
        None => (url.strip_prefix("mqtt://")?, MQTT_PORT, false),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 address without a port ("[::1]") has colons but ends with ']'.
        Some((h, p)) if !p.ends_with(']') => (h, p.parse().ok()?),
        _ => (rest, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty() && !host.contains('/')).then(|| BrokerUrl {
        host: host.to_owned(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(url: &str) -> Option<(String, u16, bool)> {
        parse(url).map(|u| (u.host, u.port, u.tls))
    }

    #[test]
    fn hosts_ports_and_scheme_defaults() {
        assert_eq!(
            hp("mqtt://broker:1999"),
            Some(("broker".into(), 1999, false))
        );
        assert_eq!(hp("mqtt://broker/"), Some(("broker".into(), 1883, false)));
        assert_eq!(hp("mqtts://broker"), Some(("broker".into(), 8883, true)));
        assert_eq!(
            hp("mqtts://10.0.0.1:18883"),
            Some(("10.0.0.1".into(), 18883, true))
        );
        assert_eq!(hp("mqtt://[::1]:1884"), Some(("::1".into(), 1884, false)));
        assert_eq!(hp("mqtts://[::1]"), Some(("::1".into(), 8883, true)));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "http://x:1",
            "mqtt://",
            "mqtts://",
            "mqtt://x:port",
            "mqtt://x:99999",
            "mqtt://a/b",
            "x:1883",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
