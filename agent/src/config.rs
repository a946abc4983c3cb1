//! The agent's configuration. `deploy/agent.toml` is both the documentation and the
//! defaults layer (see `veille_proto::settings`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use veille_proto::defaults::GRPC_PORT;
use veille_proto::settings::{self, Provenance, SettingsError};

/// The annotated default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("../../deploy/agent.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Collector URL; empty means this machine's collector on the default port.
    pub collector: String,
    /// "grpc" or "mqtt"; empty: from the collector URL's scheme (see [`Self::transport`]).
    pub transport: String,
    /// Organisation id: the MQTT username and the org segment of the MQTT topics.
    pub org: String,
    /// Enrollment token of the organisation (bearer token).
    pub token: String,
    /// PEM CA bundle trusted for `https://` / `mqtts://`; empty: the system roots.
    pub ca_cert: String,
    /// PEM client certificate for collectors that require one; empty: none.
    pub client_cert: String,
    /// PEM private key of `client_cert`.
    pub client_key: String,
    /// Device id override; empty means probe it.
    pub device_id: String,
    /// Spool and state directory; empty means the platform default.
    pub state_dir: String,
    /// Seconds between samples.
    pub sample_interval_s: u64,
    /// Seconds per report.
    pub report_interval_s: u64,
    /// Reports per batch at most.
    pub batch_max_reports: usize,
    /// Seconds without input after which a user counts as gone.
    pub idle_threshold_s: u64,
    /// CPU share above which awake time counts as active when no session info exists.
    pub cpu_busy_threshold: f64,
    /// Site of this device.
    pub site: String,
    /// Free tags of this device.
    pub tags: Vec<String>,
    /// The collector's policy public key (base64, from `veille-collector policy show`).
    /// Empty: pinned on first contact over gRPC and kept in state.json.
    pub policy_public_key: String,
    /// The local half of the servers' double opt-in: a server (or unknown chassis) is
    /// shut down by a policy only if the policy names it and this is true.
    pub allow_shutdown: bool,
    /// UDP port of the Wake-on-LAN packets sent for the collector (`wol::WOL_PORT` by
    /// default; cards match the packet on any port).
    pub wol_port: u16,
    pub spool: SpoolConfig,
    pub backoff: BackoffConfig,
    pub mqtt: MqttConfig,
    pub enforcer: EnforcerConfig,
}

/// `[enforcer]`: how policy decisions are carried out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforcerConfig {
    /// Empty: the platform enforcer (wall, logind, systemctl). Otherwise a program run
    /// instead, without a shell: `PROGRAM warn <deadline-unix-s> <message>` and
    /// `PROGRAM poweroff`.
    pub command: String,
}

/// `[mqtt]`: options of the MQTT transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Protocol version: 5 (MQTT 5) or 4 (MQTT 3.1.1).
    pub version: u8,
    /// Seconds to wait for the collector's Ack of a batch before sending it again.
    pub ack_timeout_s: u64,
    /// MQTT keep-alive, seconds.
    pub keep_alive_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Bytes on disk at most.
    pub max_bytes: u64,
    /// Days a report may wait at most.
    pub max_age_days: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    pub initial_ms: u64,
    pub max_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{key} = {value}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl AgentConfig {
    /// Loads defaults < file < `VEILLE_*` environment < `flags`, then checks ranges.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: toml::Table,
    ) -> Result<(Self, Provenance), ConfigError> {
        let (config, provenance): (AgentConfig, _) =
            settings::load(DEFAULT_CONFIG, file, env, flags)?;
        config.check()?;
        Ok((config, provenance))
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: String, reason| Err(ConfigError::Invalid { key, value, reason });
        if crate::policy::parse_key(&self.policy_public_key).is_err() {
            return invalid(
                "policy_public_key",
                self.policy_public_key.clone(),
                "must be the base64 public key shown by `veille-collector policy show`",
            );
        }
        let url = self.collector_url();
        match self.transport() {
            "grpc" => {
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return invalid(
                        "collector",
                        url,
                        "must be http://host:port, or https://host:port for gRPC over TLS",
                    );
                }
            }
            "mqtt" => {
                if veille_proto::mqtt_url::parse(&url).is_none() {
                    return invalid(
                        "collector",
                        url,
                        "must be mqtt://host:port (or mqtts://host:port, TLS) with transport = \"mqtt\"",
                    );
                }
                if !veille_proto::topics::valid_segment(&self.org) {
                    return invalid(
                        "org",
                        self.org.clone(),
                        "must be the organisation id (no '/', '+', '#')",
                    );
                }
                if !matches!(self.mqtt.version, 4 | 5) {
                    return invalid(
                        "mqtt.version",
                        self.mqtt.version.to_string(),
                        "must be 5 (MQTT 5) or 4 (MQTT 3.1.1)",
                    );
                }
                if self.mqtt.ack_timeout_s == 0 || self.mqtt.keep_alive_s < 5 {
                    return invalid(
                        "mqtt.ack_timeout_s",
                        self.mqtt.ack_timeout_s.to_string(),
                        "ack_timeout_s must be at least 1 and keep_alive_s at least 5",
                    );
                }
            }
            other => {
                return invalid(
                    "transport",
                    other.to_owned(),
                    "must be \"grpc\" or \"mqtt\"",
                );
            }
        }
        if self.sample_interval_s == 0 || self.sample_interval_s > 3600 {
            return invalid(
                "sample_interval_s",
                self.sample_interval_s.to_string(),
                "must be between 1 and 3600",
            );
        }
        if self.report_interval_s < self.sample_interval_s || self.report_interval_s > 3600 {
            return invalid(
                "report_interval_s",
                self.report_interval_s.to_string(),
                "must be at least sample_interval_s and at most 3600",
            );
        }
        if self.batch_max_reports == 0
            || self.batch_max_reports > veille_proto::defaults::MAX_REPORTS_PER_BATCH
        {
            return invalid(
                "batch_max_reports",
                self.batch_max_reports.to_string(),
                "must be between 1 and 500",
            );
        }
        if !(0.0..=1.0).contains(&self.cpu_busy_threshold) {
            return invalid(
                "cpu_busy_threshold",
                self.cpu_busy_threshold.to_string(),
                "must be within [0, 1]",
            );
        }
        Ok(())
    }

    /// The transport in force: `transport` when set, else the collector URL's scheme
    /// (`mqtt://`, `mqtts://`: MQTT; anything else, or no URL: gRPC), so that a URL
    /// alone says how to reach the collector.
    pub fn transport(&self) -> &str {
        if !self.transport.is_empty() {
            &self.transport
        } else if self.collector.starts_with("mqtt://") || self.collector.starts_with("mqtts://") {
            "mqtt"
        } else {
            "grpc"
        }
    }

    pub fn collector_url(&self) -> String {
        if self.collector.is_empty() && self.transport() == "mqtt" {
            // The embedded broker serves each protocol version on its own port.
            let port = if self.mqtt.version == 4 {
                veille_proto::defaults::MQTT_PORT
            } else {
                veille_proto::defaults::MQTT_V5_PORT
            };
            format!("mqtt://127.0.0.1:{port}")
        } else if self.collector.is_empty() {
            format!("http://127.0.0.1:{GRPC_PORT}")
        } else {
            self.collector.trim_end_matches('/').to_owned()
        }
    }

    /// The state directory, resolving the platform default.
    ///
    /// # Platform-specific behaviour
    /// On Linux under systemd, `$STATE_DIRECTORY` (set by `StateDirectory=`) wins.
    /// On Windows: `%ProgramData%\Veille\state`.
    pub fn state_dir(&self) -> PathBuf {
        if !self.state_dir.is_empty() {
            return PathBuf::from(&self.state_dir);
        }
        #[cfg(windows)]
        {
            crate::windows::data_dir().join("state")
        }
        #[cfg(not(windows))]
        {
            if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
                return PathBuf::from(dir);
            }
            // SAFETY: geteuid has no preconditions and cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                return PathBuf::from("/var/lib/veille-agent");
            }
            match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".local/state/veille-agent"),
                None => PathBuf::from("veille-agent-state"),
            }
        }
    }

    /// The TLS files of the config (used only with `https://` / `mqtts://` URLs).
    pub fn tls(&self) -> crate::tls::TlsFiles {
        crate::tls::TlsFiles {
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }

    pub fn sample_interval(&self) -> Duration {
        Duration::from_secs(self.sample_interval_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_make_a_valid_config() {
        let (c, _) = AgentConfig::load(None, Vec::new(), toml::Table::new()).unwrap();
        assert_eq!(c.sample_interval_s, 10);
        assert_eq!(c.report_interval_s, 60);
        // The annotated file and the sender agree on the customary port.
        assert_eq!(c.wol_port, crate::wol::WOL_PORT);
        assert_eq!(c.collector_url(), format!("http://127.0.0.1:{GRPC_PORT}"));
        // At one report a minute, the default spool holds well over 7 days even at one
        // 4 KiB block per report.
        let per_week = 7 * 24 * 60 * 4096;
        assert!(
            c.spool.max_bytes >= per_week,
            "{} < {per_week}",
            c.spool.max_bytes
        );
        assert!(c.spool.max_age_days >= 7);
    }

    #[test]
    fn bad_values_are_named() {
        let env = vec![("VEILLE_REPORT_INTERVAL_S".to_string(), "5".to_string())];
        let e = AgentConfig::load(None, env, toml::Table::new()).unwrap_err();
        assert!(e.to_string().starts_with("report_interval_s = 5"), "{e}");
        let env = vec![
            ("VEILLE_TRANSPORT".to_string(), "grpc".to_string()),
            ("VEILLE_COLLECTOR".to_string(), "mqtt://x:1".to_string()),
        ];
        let e = AgentConfig::load(None, env, toml::Table::new()).unwrap_err();
        assert!(e.to_string().contains("collector = mqtt://x:1"), "{e}");
    }

    #[test]
    fn the_url_scheme_chooses_the_transport_when_none_is_set() {
        for (url, transport) in [
            ("mqtt://x:1", "mqtt"),
            ("mqtts://x:1", "mqtt"),
            ("http://x:1", "grpc"),
            ("https://x:1", "grpc"),
            ("", "grpc"),
        ] {
            let env = vec![("VEILLE_COLLECTOR".to_string(), url.to_string())];
            let (c, _) = AgentConfig::load(None, env, toml::Table::new()).unwrap();
            assert_eq!(c.transport(), transport, "{url}");
        }
    }

    #[test]
    fn mqtt_transport_takes_mqtt_urls() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let (c, _) = AgentConfig::load(
            None,
            env(&[("VEILLE_TRANSPORT", "mqtt")]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(c.collector_url(), "mqtt://127.0.0.1:1884");
        assert_eq!((c.org.as_str(), c.mqtt.version), ("default", 5));
        let (c, _) = AgentConfig::load(
            None,
            env(&[
                ("VEILLE_TRANSPORT", "mqtt"),
                ("VEILLE_COLLECTOR", "mqtt://broker:1999"),
                ("VEILLE_MQTT__VERSION", "4"),
            ]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(c.collector_url(), "mqtt://broker:1999");
        for (k, v) in [
            ("VEILLE_COLLECTOR", "http://x:1"),
            ("VEILLE_MQTT__VERSION", "3"),
            ("VEILLE_ORG", "a/b"),
        ] {
            let e = AgentConfig::load(
                None,
                env(&[("VEILLE_TRANSPORT", "mqtt"), (k, v)]),
                toml::Table::new(),
            )
            .unwrap_err();
            assert!(e.to_string().contains(v), "{e}");
        }
    }
}
