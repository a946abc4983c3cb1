//! The collector's configuration: the annotated defaults in `deploy/collector.toml`
//! (embedded), an optional file, `VEILLE_*` environment variables and flags, layered by
//! [`veille_proto::settings::load`]. Values that are "unset" in the file (empty strings)
//! are resolved here, from the shared constants in [`veille_proto::defaults`].

pub mod glpi;
pub mod meters;
pub mod metrics;
pub mod store;
pub mod tls;
pub mod web;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::TokenHash;
use veille_proto::defaults::{GRPC_PORT, HTTP_PORT, MQTT_PORT, MQTT_V5_PORT};
use veille_proto::settings::{self, Provenance, SettingsError};

/// The annotated default configuration, printed by `veille-collector print-config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../deploy/collector.toml");

/// Data directory used when `data_dir` is empty, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "veille-data";

/// Org created when the configuration names none.
pub const DEFAULT_ORG_ID: &str = "default";

/// Shortest organisation token accepted from the configuration.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest organisation id accepted.
pub const MAX_ORG_ID_LEN: usize = 64;

/// Collector configuration, as read from TOML. Every field is documented for users in
/// `deploy/collector.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of the store, token files and `listen.json`. Empty = [`DEFAULT_DATA_DIR`]
    /// relative to the working directory. Use [`Config::data_dir`] to read it.
    pub data_dir: String,
    /// gRPC listen address `IP:port`; empty = `127.0.0.1:GRPC_PORT`. Port 0 allowed.
    pub grpc_listen: String,
    /// HTTP listen address `IP:port`; empty = `127.0.0.1:HTTP_PORT`. Port 0 allowed.
    pub http_listen: String,
    /// Days raw reports are kept before only rollups remain (the store's retention task);
    /// 0 keeps them forever.
    pub raw_retention_days: u32,
    /// Capacity of the handler → writer queue, in batches (back-pressure beyond it).
    pub ingest_queue_batches: usize,
    /// Most batches applied before one flush (group commit).
    pub group_commit_max_batches: usize,
    /// Organisations and their enrollment tokens. Empty = org `default` with a token
    /// generated at first start (see the `tokens` module).
    pub orgs: Vec<OrgConfig>,
    /// The MQTT transport: embedded broker or external broker (`[mqtt]`).
    pub mqtt: MqttConfig,
    /// Time zone, working hours, tariff, grid factor and power profiles (`[energy]`).
    pub energy: veille_domain::energy::consumption::EnergyConfig,
    /// The renewal report's approaching window and overrides file (`[renewal]`).
    pub renewal: veille_domain::renewal::report::RenewalConfig,
    /// Meters over MQTT: Tasmota topic → meter mapping, counter glitch tolerance
    /// (`[meters]`).
    #[serde(default)]
    pub meters: crate::config::meters::MetersConfig,
    /// The built-in web page: on or off, session length (`[web]`).
    #[serde(default)]
    pub web: crate::config::web::WebConfig,
    /// `/metrics` for Prometheus: on or off, token, label caps (`[metrics]`).
    #[serde(default)]
    pub metrics: crate::config::metrics::MetricsConfig,
    /// TLS on every port (`[tls]`).
    #[serde(default)]
    pub tls: crate::config::tls::TlsConfig,
    /// The storage engine and where it keeps the data (`[store]`).
    pub store: crate::config::store::StoreConfig,
    /// The GLPI REST API link: URL, tokens, org, sync period (`[glpi]`).
    pub glpi: crate::config::glpi::GlpiConfig,
}

/// `[mqtt]`: how agents reach the collector over MQTT. Documented for users in
/// `deploy/collector.toml`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Run the embedded broker (rumqttd). Ignored when `broker` is set.
    pub embedded: bool,
    /// MQTT 3.1.1 listener `IP:port` of the embedded broker; empty = `127.0.0.1:MQTT_PORT`.
    pub listen: String,
    /// MQTT 5 listener of the embedded broker; empty = `listen`'s IP and port + 1 (port 0
    /// stays 0).
    pub listen_v5: String,
    /// External broker `mqtt://host:port`, or `mqtts://host:port` for TLS; empty =
    /// embedded mode.
    pub broker: String,
    /// Username on the external broker.
    pub username: String,
    /// Password on the external broker. Never logged.
    pub password: String,
    /// Client id on the external broker (persistent session); empty =
    /// `veille-collector-<hostname>`.
    pub client_id: String,
    /// Batches processed at once by the subscriber (each waits for its group commit).
    pub max_in_flight: usize,
    /// With `mqtts://`: PEM CA bundle the broker's certificate must chain to; empty =
    /// the system's roots.
    pub ca_cert: String,
    /// With `mqtts://`: PEM client certificate chain, for brokers that require one.
    pub client_cert: String,
    /// Its PEM private key. Never logged (only the path is in the config).
    pub client_key: String,
}

impl MqttConfig {
    /// The TLS files for `mqtts://` (shared rules with the agent's).
    pub fn tls_files(&self) -> veille_proto::tls::TlsFiles {
        veille_proto::tls::TlsFiles {
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }

    /// The first TLS file key that is set, with its value.
    fn tls_files_set(&self) -> Option<(&'static str, &str)> {
        [
            ("mqtt.ca_cert", &self.ca_cert),
            ("mqtt.client_cert", &self.client_cert),
            ("mqtt.client_key", &self.client_key),
        ]
        .into_iter()
        .find(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.as_str()))
    }
}

impl std::fmt::Debug for MqttConfig {
    // The password is a secret: keep it out of `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("embedded", &self.embedded)
            .field("listen", &self.listen)
            .field("listen_v5", &self.listen_v5)
            .field("broker", &self.broker)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("client_id", &self.client_id)
            .field("max_in_flight", &self.max_in_flight)
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}

/// Where the collector's MQTT side runs, resolved from [`MqttConfig`].
#[derive(Debug, Clone, PartialEq)]
pub enum MqttMode {
    /// No MQTT at all (`embedded = false` and no `broker`).
    Off,
    /// The embedded broker on these listeners (ports may be 0: resolved at bind time).
    Embedded { v4: SocketAddr, v5: SocketAddr },
    /// An external broker at `host:port`, over TLS when `tls` (`mqtts://`).
    External { host: String, port: u16, tls: bool },
}

/// One organisation (a public body) and the token its agents present.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// Identifier used in the store and in MQTT topics: 1–64 of `[A-Za-z0-9._-]`.
    pub id: String,
    /// Human-readable name; free text, may be empty.
    #[serde(default)]
    pub name: String,
    /// Enrollment token, at least [`MIN_TOKEN_LEN`] characters. Never logged. Empty when
    /// `token_sha256` is given instead.
    #[serde(default)]
    pub token: String,
    /// The token's SHA-256 as 64 hex digits (`printf %s "$TOKEN" | sha256sum`), so that
    /// the file need not hold the token itself; exactly one of `token`/`token_sha256`.
    #[serde(default)]
    pub token_sha256: String,
    /// This org's own time zone, working hours, tariff or grid factor (`[orgs.energy]`);
    /// absent keys keep `[energy]`'s.
    #[serde(default)]
    pub energy: Option<veille_domain::energy::consumption::OrgEnergy>,
    /// What kind of body this is, for the comparison between bodies (`[orgs.profile]`).
    #[serde(default)]
    pub profile: OrgProfileConfig,
}

/// `[orgs.profile]`: who the org is, so that `report compare` sets it beside similar
/// bodies. Every key optional: an org without one is of kind `other`, size unknown.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OrgProfileConfig {
    /// One of [`veille_domain::compare::ORG_KINDS`]: commune, epci, departement,
    /// region, etat (a State service), other.
    pub kind: String,
    /// One of [`veille_domain::compare::POPULATION_BANDS`] (inhabitants), empty =
    /// unknown.
    pub population_band: String,
    /// Staff headcount; 0 = unknown.
    pub headcount: u32,
    /// A kWh target (`report trajectory`); none by default.
    pub target: Option<OrgTargetConfig>,
}

/// `[orgs.profile.target]`: cut kWh by `kwh_reduction_pct` percent from
/// `baseline_year` to `target_year`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrgTargetConfig {
    pub baseline_year: i32,
    pub target_year: i32,
    pub kwh_reduction_pct: f64,
}

impl OrgTargetConfig {
    pub fn target(&self) -> veille_domain::trajectory::Target {
        veille_domain::trajectory::Target {
            baseline_year: self.baseline_year,
            target_year: self.target_year,
            kwh_reduction_pct: self.kwh_reduction_pct,
        }
    }
}

impl Default for OrgProfileConfig {
    fn default() -> Self {
        Self {
            kind: "other".to_owned(),
            population_band: String::new(),
            headcount: 0,
            target: None,
        }
    }
}

impl std::fmt::Debug for OrgConfig {
    // The token is a secret: keep it out of `{:?}` (and so out of logs and panics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("token_sha256", &self.token_sha256)
            .finish()
    }
}

impl OrgConfig {
    /// The digest the collector verifies this org's tokens against (valid once
    /// [`Config::validate`]-d: exactly one of `token`/`token_sha256` is set).
    pub fn token_hash(&self) -> Option<TokenHash> {
        if self.token_sha256.is_empty() {
            (!self.token.is_empty()).then(|| TokenHash::of(&self.token))
        } else {
            TokenHash::from_hex(&self.token_sha256)
        }
    }
}

/// A configuration that cannot be used. Always names the key and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{key} = {value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    fn invalid(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// The embedded defaults alone (no file, no environment, no flags).
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load(None, std::iter::empty(), toml::Table::new()).map(|(c, _)| c)
    }

    /// Layers defaults < `file` < `env` (`VEILLE_*` pairs) < `flags` and checks the result.
    /// Build `flags` with [`veille_proto::settings::set_flag`].
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: toml::Table,
    ) -> Result<(Self, Provenance), ConfigError> {
        let (config, provenance): (Config, Provenance) =
            settings::load(DEFAULT_CONFIG_TOML, file, env, flags)?;
        config.validate()?;
        Ok((config, provenance))
    }

    /// Checks values serde cannot: addresses, limits, org ids and tokens.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.grpc_listen()?;
        self.http_listen()?;
        self.mqtt_mode()?;
        self.store.validate()?;
        self.glpi.validate(&self.org_ids())?;
        if self.mqtt.max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "mqtt.max_in_flight",
                "0",
                "must be at least 1",
            ));
        }
        if self.ingest_queue_batches == 0 {
            return Err(ConfigError::invalid(
                "ingest_queue_batches",
                "0",
                "must be at least 1",
            ));
        }
        if self.group_commit_max_batches == 0 {
            return Err(ConfigError::invalid(
                "group_commit_max_batches",
                "0",
                "must be at least 1",
            ));
        }
        let mut ids = HashSet::new();
        let mut tokens = HashSet::new();
        for (i, org) in self.orgs.iter().enumerate() {
            check_org_id(&format!("orgs[{i}].id"), &org.id)?;
            let p = &org.profile;
            if !veille_domain::compare::ORG_KINDS.contains(&p.kind.as_str()) {
                return Err(ConfigError::invalid(
                    format!("orgs[{i}].profile.kind"),
                    &p.kind,
                    format!(
                        "must be one of {}",
                        veille_domain::compare::ORG_KINDS.join(", ")
                    ),
                ));
            }
            if let Some(t) = &p.target {
                t.target().check().map_err(|e| {
                    ConfigError::invalid(
                        format!("orgs[{i}].profile.target"),
                        format!("{t:?}"),
                        e.to_string(),
                    )
                })?;
            }
            if !(p.population_band.is_empty()
                || veille_domain::compare::POPULATION_BANDS.contains(&p.population_band.as_str()))
            {
                return Err(ConfigError::invalid(
                    format!("orgs[{i}].profile.population_band"),
                    &p.population_band,
                    format!(
                        "must be empty (unknown) or one of {}",
                        veille_domain::compare::POPULATION_BANDS.join(", ")
                    ),
                ));
            }
            if !ids.insert(org.id.as_str()) {
                return Err(ConfigError::invalid(
                    format!("orgs[{i}].id"),
                    &org.id,
                    "is used by another org",
                ));
            }
            // Token values are secrets: errors describe them without quoting them.
            let key = format!("orgs[{i}].token");
            match (org.token.is_empty(), org.token_sha256.is_empty()) {
                (false, false) => {
                    return Err(ConfigError::invalid(
                        key,
                        "<redacted>",
                        "give either token or token_sha256, not both",
                    ));
                }
                (true, true) => {
                    return Err(ConfigError::invalid(
                        key,
                        "",
                        "is required (or token_sha256, the token's SHA-256 in hex)",
                    ));
                }
                (true, false) => {
                    if TokenHash::from_hex(&org.token_sha256).is_none() {
                        return Err(ConfigError::invalid(
                            format!("orgs[{i}].token_sha256"),
                            &org.token_sha256,
                            "must be 64 hex digits (`printf %s \"$TOKEN\" | sha256sum`)",
                        ));
                    }
                }
                (false, true) => {
                    if org.token.chars().count() < MIN_TOKEN_LEN {
                        return Err(ConfigError::invalid(
                            key,
                            format!("<{} characters>", org.token.chars().count()),
                            format!("must be at least {MIN_TOKEN_LEN} characters"),
                        ));
                    }
                    if org
                        .token
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(ConfigError::invalid(
                            key,
                            "<redacted>",
                            "must not contain spaces or control characters",
                        ));
                    }
                }
            }
            // By digest, so a token and another org's token_sha256 of it collide too.
            if let Some(hash) = org.token_hash()
                && !tokens.insert(hash.to_hex())
            {
                return Err(ConfigError::invalid(
                    format!("orgs[{i}].token"),
                    "<redacted>",
                    "is the same as another org's token",
                ));
            }
        }
        Ok(())
    }

    /// Every org's profile for the comparison between bodies (configured orgs, in file
    /// order).
    pub fn org_profiles(&self) -> Vec<veille_domain::compare::OrgProfile> {
        self.orgs
            .iter()
            .map(|o| veille_domain::compare::OrgProfile {
                org: o.id.clone(),
                kind: o.profile.kind.clone(),
                population_band: o.profile.population_band.clone(),
                headcount: o.profile.headcount,
                target: o.profile.target.map(|t| t.target()),
            })
            .collect()
    }

    /// The configured org ids, in file order (empty: only the default org exists).
    pub fn org_ids(&self) -> Vec<&str> {
        self.orgs.iter().map(|o| o.id.as_str()).collect()
    }

    /// Where the store is (`[store]`), its embedded directory resolved.
    pub fn store_location(&self) -> crate::store::Location {
        self.store.location(&self.data_dir())
    }

    /// Opens the store the config names (blocking: call it off the async runtime).
    /// A data directory still holding Veille 0.1's sled store (`db/`) is refused with
    /// what to do, rather than silently starting an empty store beside it.
    pub fn open_store(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        self.refuse_old_sled()?;
        crate::store::Store::open_location(&self.store_location())
    }

    fn refuse_old_sled(&self) -> Result<(), crate::store::StoreError> {
        let old = self.data_dir().join(crate::store::OLD_SLED_DIR);
        if self.store.backend == "embedded" && old.join("conf").is_file() {
            return Err(crate::store::StoreError::OldSled { path: old });
        }
        Ok(())
    }

    /// [`Config::open_store`] for the server: a PostgreSQL database unreachable at
    /// start is waited for in the background ([`crate::store::Store::open_serving`]).
    pub fn open_store_serving(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        self.refuse_old_sled()?;
        crate::store::Store::open_serving(&self.store_location())
    }

    /// The data directory, with the empty default resolved.
    pub fn data_dir(&self) -> PathBuf {
        if self.data_dir.is_empty() {
            PathBuf::from(DEFAULT_DATA_DIR)
        } else {
            PathBuf::from(&self.data_dir)
        }
    }

    /// The gRPC listen address, with the empty default resolved.
    pub fn grpc_listen(&self) -> Result<SocketAddr, ConfigError> {
        listen_addr("grpc_listen", &self.grpc_listen, GRPC_PORT)
    }

    /// The HTTP listen address, with the empty default resolved.
    pub fn http_listen(&self) -> Result<SocketAddr, ConfigError> {
        listen_addr("http_listen", &self.http_listen, HTTP_PORT)
    }

    /// The MQTT side, with empty defaults resolved.
    pub fn mqtt_mode(&self) -> Result<MqttMode, ConfigError> {
        let m = &self.mqtt;
        if !m.broker.is_empty() {
            let url = veille_proto::mqtt_url::parse(&m.broker).ok_or_else(|| {
                ConfigError::invalid("mqtt.broker", &m.broker, veille_proto::mqtt_url::EXPECTED)
            })?;
            if !url.tls
                && let Some((key, value)) = m.tls_files_set()
            {
                // A CA file with a plaintext URL is a half-done move to TLS: say so rather
                // than silently sending the password in clear.
                return Err(ConfigError::invalid(
                    key,
                    value,
                    "is set but mqtt.broker is mqtt:// (plaintext): use mqtts://",
                ));
            }
            return Ok(MqttMode::External {
                host: url.host,
                port: url.port,
                tls: url.tls,
            });
        }
        if !m.embedded {
            return Ok(MqttMode::Off);
        }
        let v4 = listen_addr("mqtt.listen", &m.listen, MQTT_PORT)?;
        let v5 = if m.listen_v5.is_empty() {
            let port = if v4.port() == 0 {
                0
            } else {
                v4.port().saturating_add(1)
            };
            SocketAddr::new(v4.ip(), port)
        } else {
            listen_addr("mqtt.listen_v5", &m.listen_v5, MQTT_V5_PORT)?
        };
        if v4.port() != 0 && v4 == v5 {
            return Err(ConfigError::invalid(
                "mqtt.listen_v5",
                v5.to_string(),
                "must differ from mqtt.listen (one protocol version per listener)",
            ));
        }
        Ok(MqttMode::Embedded { v4, v5 })
    }

    /// The client id on an external broker, with the empty default resolved.
    pub fn mqtt_client_id(&self) -> String {
        if !self.mqtt.client_id.is_empty() {
            return self.mqtt.client_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        format!("veille-collector-{host}")
    }
}

fn listen_addr(key: &str, value: &str, default_port: u16) -> Result<SocketAddr, ConfigError> {
    if value.is_empty() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, default_port)));
    }
    value.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            value,
            "expected IP:port, e.g. 127.0.0.1:7401 or [::]:7401 (port 0 = any free port)",
        )
    })
}

/// Org ids are path segments of MQTT topics and parts of store keys (separated by NUL),
/// hence the narrow alphabet.
pub fn check_org_id(key: &str, id: &str) -> Result<(), ConfigError> {
    if id.is_empty() || id.len() > MAX_ORG_ID_LEN {
        return Err(ConfigError::invalid(
            key,
            id,
            format!("must be 1 to {MAX_ORG_ID_LEN} characters"),
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(ConfigError::invalid(
            key,
            id,
            "may contain only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::settings::set_flag;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_resolve_to_loopback_default_ports() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("veille-data"));
        assert_eq!(
            c.grpc_listen().unwrap().to_string(),
            format!("127.0.0.1:{GRPC_PORT}")
        );
        assert_eq!(
            c.http_listen().unwrap().to_string(),
            format!("127.0.0.1:{HTTP_PORT}")
        );
        assert_eq!(c.raw_retention_days, 90);
        assert!(c.orgs.is_empty());
    }

    #[test]
    fn an_org_may_override_energy_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[[orgs]]\nid = \"far\"\ntoken = \"0123456789abcdef\"\n[orgs.energy]\n\
             timezone = \"America/Cayenne\"\ntariff = { base_eur_per_kwh = 0.25 }\n",
        )
        .unwrap();
        let (c, _) = Config::load(Some(&file), env(&[]), toml::Table::new()).unwrap();
        let e = c.orgs[0].energy.as_ref().unwrap();
        assert_eq!(e.timezone.as_deref(), Some("America/Cayenne"));
        assert_eq!(e.tariff.as_ref().unwrap().base_eur_per_kwh, 0.25);
        let merged = c.energy.with_org(e);
        assert_eq!(merged.working_hours, c.energy.working_hours);
        std::fs::write(
            &file,
            "[[orgs]]\nid = \"far\"\ntoken = \"0123456789abcdef\"\n[orgs.energy]\ntimezon = \"UTC\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&file), env(&[]), toml::Table::new()).unwrap_err();
        assert!(err.to_string().contains("timezon"), "{err}");
    }

    #[test]
    fn flags_beat_env_and_orgs_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "http_listen = \"127.0.0.1:1\"\n[[orgs]]\nid = \"acme\"\nname = \"ACME\"\ntoken = \"0123456789abcdef\"\n",
        )
        .unwrap();
        let mut flags = toml::Table::new();
        set_flag(&mut flags, "grpc_listen", "127.0.0.1:0");
        let (c, _) = Config::load(
            Some(&file),
            env(&[
                ("VEILLE_GRPC_LISTEN", "127.0.0.1:9"),
                ("VEILLE_HTTP_LISTEN", "127.0.0.1:2"),
            ]),
            flags,
        )
        .unwrap();
        assert_eq!(c.grpc_listen().unwrap().port(), 0);
        assert_eq!(c.http_listen().unwrap().port(), 2);
        assert_eq!(c.orgs.len(), 1);
        assert_eq!(c.orgs[0].id, "acme");
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "token in Debug output"
        );
    }

    #[test]
    fn mqtt_defaults_and_modes() {
        let c = Config::defaults().unwrap();
        assert_eq!(
            c.mqtt_mode().unwrap(),
            MqttMode::Embedded {
                v4: format!("127.0.0.1:{MQTT_PORT}").parse().unwrap(),
                v5: format!("127.0.0.1:{MQTT_V5_PORT}").parse().unwrap(),
            }
        );
        let mut flags = toml::Table::new();
        set_flag(&mut flags, "mqtt.listen", "127.0.0.1:0");
        let (c, _) = Config::load(None, env(&[]), flags).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(
            c.mqtt_mode().unwrap(),
            MqttMode::Embedded { v4: any, v5: any }
        );
        let (c, _) = Config::load(
            None,
            env(&[
                ("VEILLE_MQTT__BROKER", "mqtt://broker.example:1999"),
                ("VEILLE_MQTT__PASSWORD", "s3cret-password"),
            ]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(
            c.mqtt_mode().unwrap(),
            MqttMode::External {
                host: "broker.example".into(),
                port: 1999,
                tls: false,
            }
        );
        let (c, _) = Config::load(
            None,
            env(&[
                ("VEILLE_MQTT__BROKER", "mqtts://broker.example"),
                ("VEILLE_MQTT__CA_CERT", "/etc/veille/broker-ca.pem"),
            ]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(
            c.mqtt_mode().unwrap(),
            MqttMode::External {
                host: "broker.example".into(),
                port: veille_proto::defaults::MQTTS_PORT,
                tls: true,
            }
        );
        assert_eq!(c.mqtt.tls_files().ca_cert, "/etc/veille/broker-ca.pem");
        // A CA for a plaintext broker URL is a mistake, named by key.
        let e = Config::load(
            None,
            env(&[
                ("VEILLE_MQTT__BROKER", "mqtt://broker.example"),
                ("VEILLE_MQTT__CA_CERT", "/etc/veille/broker-ca.pem"),
            ]),
            toml::Table::new(),
        )
        .and_then(|(c, _)| c.mqtt_mode())
        .unwrap_err()
        .to_string();
        assert!(e.contains("mqtt.ca_cert") && e.contains("mqtts://"), "{e}");
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = Config::load(
            None,
            env(&[("VEILLE_MQTT__BROKER", "http://x:1")]),
            toml::Table::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mqtt.broker"), "{e}");
        let (c, _) = Config::load(
            None,
            env(&[("VEILLE_MQTT__EMBEDDED", "false")]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(c.mqtt_mode().unwrap(), MqttMode::Off);
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut flags = toml::Table::new();
        set_flag(&mut flags, "grpc_listen", "localhost");
        let e = Config::load(None, env(&[]), flags).unwrap_err().to_string();
        assert!(e.contains("grpc_listen") && e.contains("localhost"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[[orgs]]\nid = \"a/b\"\ntoken = \"0123456789abcdef\"\n",
        )
        .unwrap();
        let e = Config::load(Some(&file), env(&[]), toml::Table::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("orgs[0].id"), "{e}");
        std::fs::write(&file, "[[orgs]]\nid = \"a\"\ntoken = \"short\"\n").unwrap();
        let e = Config::load(Some(&file), env(&[]), toml::Table::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("orgs[0].token") && !e.contains("short"), "{e}");
        // The token's SHA-256 instead of the token: the file then holds no secret.
        let hex = TokenHash::of("0123456789abcdef").to_hex();
        std::fs::write(
            &file,
            format!("[[orgs]]\nid = \"a\"\ntoken_sha256 = \"{hex}\"\n"),
        )
        .unwrap();
        let (c, _) = Config::load(Some(&file), env(&[]), toml::Table::new()).unwrap();
        assert_eq!(
            c.orgs[0].token_hash(),
            Some(TokenHash::of("0123456789abcdef"))
        );
        for (body, key) in [
            (
                format!("token_sha256 = \"{hex}\"\ntoken = \"0123456789abcdef\""),
                "orgs[0].token",
            ),
            ("token_sha256 = \"abc\"".to_owned(), "orgs[0].token_sha256"),
            (String::new(), "orgs[0].token"),
        ] {
            std::fs::write(&file, format!("[[orgs]]\nid = \"a\"\n{body}\n")).unwrap();
            let e = Config::load(Some(&file), env(&[]), toml::Table::new())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && !e.contains("0123456789abcdef"), "{e}");
        }
        // A token and another org's digest of the same token collide.
        std::fs::write(
            &file,
            format!(
                "[[orgs]]\nid = \"a\"\ntoken = \"0123456789abcdef\"\n\
                 [[orgs]]\nid = \"b\"\ntoken_sha256 = \"{hex}\"\n"
            ),
        )
        .unwrap();
        let e = Config::load(Some(&file), env(&[]), toml::Table::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("orgs[1].token") && e.contains("another org"),
            "{e}"
        );
        std::fs::write(&file, "data_dri = \"x\"\n").unwrap();
        let e = Config::load(Some(&file), env(&[]), toml::Table::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("data_dri"), "{e}");
    }
}
