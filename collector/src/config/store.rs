//! `[store]`: which engine keeps the data, and where.

use std::path::Path;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::store::{Location, STORE_DIR};

/// `[store]` in the collector config. Documented for users in `deploy/collector.toml`,
/// whose values are the defaults.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `embedded` (one file in the data directory) or `postgres`.
    pub backend: String,
    /// With `postgres`: `postgres://user:password@host:port/database`. Never logged
    /// with its password.
    pub url: String,
    /// Embedded: page cache per connection, MiB (memory use grows with it).
    pub cache_mib: u32,
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.backend.as_str() {
            "embedded" => {}
            "postgres" => {
                if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
                    return Err(ConfigError::invalid(
                        "store.url",
                        crate::store::postgres::redact(&self.url),
                        "backend = \"postgres\" needs url = \"postgres://user:password@host:port/db\"",
                    ));
                }
            }
            other => {
                return Err(ConfigError::invalid(
                    "store.backend",
                    other,
                    "expected \"embedded\" or \"postgres\"",
                ));
            }
        }
        if self.cache_mib == 0 {
            return Err(ConfigError::invalid(
                "store.cache_mib",
                "0",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Where the store is, for a collector whose data directory is `data_dir`.
    pub fn location(&self, data_dir: &Path) -> Location {
        match self.backend.as_str() {
            "postgres" => Location::Postgres {
                url: self.url.clone(),
            },
            _ => Location::Embedded {
                dir: data_dir.join(STORE_DIR),
                cache_mib: self.cache_mib,
            },
        }
    }
}
