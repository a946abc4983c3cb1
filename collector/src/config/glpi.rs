//! `[glpi]`: the link to a GLPI server's REST API (`apirest.php`), for
//! `veille-collector glpi sync` and the server's periodic sync. Defaults and the
//! meaning of each key: `deploy/collector.toml` (embedded; the only source of the
//! default values).

use serde::Deserialize;

use crate::config::ConfigError;

/// Largest `page_size`: GLPI refuses a range wider than its `api_max` setting
/// (`Accept-Range: Computer 990` in its answers), 1000 by default.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// `[glpi]` in the collector config. Documented for users in `deploy/collector.toml`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlpiConfig {
    /// The `apirest.php` base URL (`https://glpi.example/apirest.php`); empty = no link.
    pub url: String,
    /// The API client's App-Token (GLPI: Setup → General → API); empty = not sent.
    /// Never logged.
    pub app_token: String,
    /// The GLPI user's API token ("Remote access key"). Never logged.
    pub user_token: String,
    /// The Veille org the assets belong to; empty = the only org.
    pub org: String,
    /// Minutes between two syncs in the server; 0 = no periodic sync.
    pub sync_every_minutes: u32,
    /// Items asked for per request (`range=0-<page_size - 1>`), 1..=[`MAX_PAGE_SIZE`].
    pub page_size: u32,
}

impl std::fmt::Debug for GlpiConfig {
    // Both tokens are secrets: keep them out of `{:?}` (and so out of logs and panics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlpiConfig")
            .field("url", &self.url)
            .field("app_token", &"<redacted>")
            .field("user_token", &"<redacted>")
            .field("org", &self.org)
            .field("sync_every_minutes", &self.sync_every_minutes)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl GlpiConfig {
    /// True when a GLPI URL is configured.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// Checks the section; `org_ids` are the configured orgs (empty: the default org).
    pub fn validate(&self, org_ids: &[&str]) -> Result<(), ConfigError> {
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(ConfigError::invalid(
                "glpi.page_size",
                self.page_size.to_string(),
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        if !self.enabled() {
            if self.sync_every_minutes > 0 {
                return Err(ConfigError::invalid(
                    "glpi.sync_every_minutes",
                    self.sync_every_minutes.to_string(),
                    "needs glpi.url (the apirest.php URL)",
                ));
            }
            return Ok(());
        }
        BaseUrl::parse(&self.url)
            .map_err(|reason| ConfigError::invalid("glpi.url", &self.url, reason))?;
        if self.user_token.trim().is_empty() {
            return Err(ConfigError::invalid(
                "glpi.user_token",
                "",
                "must be set when glpi.url is (the GLPI user's API token)",
            ));
        }
        for (key, value) in [
            ("glpi.user_token", &self.user_token),
            ("glpi.app_token", &self.app_token),
        ] {
            // Sent as an HTTP header value: a line break would split the request.
            if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(ConfigError::invalid(
                    key,
                    "<redacted>",
                    "must not contain spaces or control characters",
                ));
            }
        }
        self.org_id(org_ids)?;
        Ok(())
    }

    /// The org the assets belong to: `org`, else the only configured org (the
    /// default org when none is configured).
    pub fn org_id(&self, org_ids: &[&str]) -> Result<String, ConfigError> {
        match (self.org.as_str(), org_ids) {
            ("", []) => Ok(crate::config::DEFAULT_ORG_ID.to_owned()),
            ("", [only]) => Ok((*only).to_owned()),
            ("", _) => Err(ConfigError::invalid(
                "glpi.org",
                "",
                format!(
                    "must name one of the orgs ({}) when there are several",
                    org_ids.join(", ")
                ),
            )),
            (org, []) if org == crate::config::DEFAULT_ORG_ID => Ok(org.to_owned()),
            (org, ids) if ids.contains(&org) => Ok(org.to_owned()),
            (org, _) => Err(ConfigError::invalid(
                "glpi.org",
                org,
                "is not a configured org ([[orgs]] id)",
            )),
        }
    }
}

/// `glpi.url` taken apart: scheme, host, port and the path of `apirest.php`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// The path up to and including `apirest.php`, without a trailing `/`.
    pub path: String,
}

impl BaseUrl {
    /// Parses `http(s)://host[:port]/path`; no user info, query or fragment (GLPI's
    /// tokens go in headers, never in the URL).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        if rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace()) {
            return Err("must be a plain URL (no query, fragment, user or spaces)".into());
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?)
            }
            _ => (authority, if https { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("has no host".into());
        }
        Ok(Self {
            https,
            host: host.to_owned(),
            port,
            path: path.trim_end_matches('/').to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glpi_urls_are_taken_apart() {
        let u = BaseUrl::parse("https://glpi.mairie.fr/glpi/apirest.php/").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "glpi.mairie.fr", 443, "/glpi/apirest.php")
        );
        let u = BaseUrl::parse("http://127.0.0.1:8080/apirest.php").unwrap();
        assert_eq!((u.https, u.port), (false, 8080));
        for bad in [
            "glpi.example/apirest.php",
            "https:///apirest.php",
            "http://h:99999/apirest.php",
            "http://h/apirest.php?app_token=x",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod validation_tests {
    use crate::config::Config;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(None, env, toml::Table::new())
            .map(|(c, _)| c)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_is_off_and_a_set_url_needs_a_token_and_a_known_org() {
        let c = with(&[]).unwrap();
        assert!(!c.glpi.enabled());
        let c = with(&[
            ("VEILLE_GLPI__URL", "https://glpi.example/apirest.php"),
            ("VEILLE_GLPI__USER_TOKEN", "u123"),
        ])
        .unwrap();
        assert_eq!(c.glpi.org_id(&c.org_ids()).unwrap(), "default");
        assert!(!format!("{:?}", c.glpi).contains("u123"));
        let e = with(&[("VEILLE_GLPI__URL", "https://glpi.example/apirest.php")]).unwrap_err();
        assert!(e.contains("glpi.user_token"), "{e}");
        let e = with(&[("VEILLE_GLPI__URL", "glpi.example")]).unwrap_err();
        assert!(e.contains("glpi.url") && e.contains("http://"), "{e}");
        let e = with(&[
            ("VEILLE_GLPI__URL", "https://glpi.example/apirest.php"),
            ("VEILLE_GLPI__USER_TOKEN", "u123"),
            ("VEILLE_GLPI__ORG", "mairie"),
        ])
        .unwrap_err();
        assert!(
            e.contains("glpi.org") && e.contains("not a configured org"),
            "{e}"
        );
        let e = with(&[("VEILLE_GLPI__PAGE_SIZE", "0")]).unwrap_err();
        assert!(e.contains("glpi.page_size"), "{e}");
        let e = with(&[("VEILLE_GLPI__SYNC_EVERY_MINUTES", "5")]).unwrap_err();
        assert!(e.contains("needs glpi.url"), "{e}");
    }
}
