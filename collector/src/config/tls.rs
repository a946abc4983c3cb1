//! `[tls]`: certificates and whether plaintext is still accepted.

use serde::Deserialize;

/// `[tls]`: documented for users in `deploy/collector.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM server certificate chain; empty: TLS off.
    pub cert: String,
    /// PEM private key of `cert`.
    pub key: String,
    /// PEM CA bundle agents' client certificates must chain to (gRPC, MQTT); empty:
    /// no client certificate asked.
    pub client_ca: String,
    /// Refuse plaintext connections when TLS is on.
    pub require: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: String::new(),
            key: String::new(),
            client_ca: String::new(),
            require: true,
        }
    }
}
