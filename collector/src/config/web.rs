//! `[web]`: the built-in web page's settings.

use serde::Deserialize;

/// `[web]` in the collector config. Documented for users in `deploy/collector.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the web page at all.
    pub enabled: bool,
    /// How long a login lasts, in minutes.
    pub session_minutes: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_minutes: 480,
        }
    }
}
