//! The collector's configuration: the annotated defaults in `deploy/collector.toml`
//! (embedded), an optional file, `VEILLE_*` environment variables and flags, layered by
//! [`veille_proto::settings::load`]. Values that are "unset" in the file (empty strings)
//! are resolved here, from the shared constants in [`veille_proto::defaults`].

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use veille_proto::defaults::{GRPC_PORT, HTTP_PORT};
use veille_proto::settings::{self, Provenance, SettingsError};

/// The annotated default configuration, printed by `veille-collector print-config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../deploy/collector.toml");

/// Data directory used when `data_dir` is empty, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "veille-data";

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
    /// Days raw reports are kept before only rollups remain (not enforced yet).
    pub raw_retention_days: u32,
    /// Capacity of the handler → writer queue, in batches (back-pressure beyond it).
    pub ingest_queue_batches: usize,
    /// Most batches applied before one flush (group commit).
    pub group_commit_max_batches: usize,
    /// Organisations and their enrollment tokens. Empty = org `default` with a token
    /// generated at first start (see [`crate::tokens`]).
    pub orgs: Vec<OrgConfig>,
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
    /// Enrollment token, at least [`MIN_TOKEN_LEN`] characters. Never logged.
    pub token: String,
}

impl std::fmt::Debug for OrgConfig {
    // The token is a secret: keep it out of `{:?}` (and so out of logs and panics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .finish()
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
            if !ids.insert(org.id.as_str()) {
                return Err(ConfigError::invalid(
                    format!("orgs[{i}].id"),
                    &org.id,
                    "is used by another org",
                ));
            }
            // Token values are secrets: errors describe them without quoting them.
            if org.token.chars().count() < MIN_TOKEN_LEN {
                return Err(ConfigError::invalid(
                    format!("orgs[{i}].token"),
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
                    format!("orgs[{i}].token"),
                    "<redacted>",
                    "must not contain spaces or control characters",
                ));
            }
            if !tokens.insert(org.token.as_str()) {
                return Err(ConfigError::invalid(
                    format!("orgs[{i}].token"),
                    "<redacted>",
                    "is the same as another org's token",
                ));
            }
        }
        Ok(())
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
        std::fs::write(&file, "data_dri = \"x\"\n").unwrap();
        let e = Config::load(Some(&file), env(&[]), toml::Table::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("data_dri"), "{e}");
    }
}
