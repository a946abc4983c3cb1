//! `[metrics]`: the Prometheus endpoint's settings.

use serde::Deserialize;

/// `[metrics]` in the collector config. Documented for users in
/// `deploy/collector.toml`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// Bearer token Prometheus must send; empty = open (the HTTP listener is bound to
    /// loopback by default).
    pub token: String,
    /// Most `site` label values per family; the rest is summed into `other`.
    pub max_sites: usize,
    /// A device whose latest report ended longer ago than this is silent (its state
    /// is then `off` after a SHUTDOWN, else `unknown`).
    pub silent_after_minutes: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token: String::new(),
            max_sites: 20,
            silent_after_minutes: 15,
        }
    }
}

impl std::fmt::Debug for MetricsConfig {
    // The token is a secret: keep it out of `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("max_sites", &self.max_sites)
            .field("silent_after_minutes", &self.silent_after_minutes)
            .finish()
    }
}
