//! The Windows installer's properties as a configuration layer.
//!
//! IT ops set `COLLECTOR_URL`, `ORG`, `TOKEN`, `SITE`, `TAGS` and `CA_CERT` on the
//! `msiexec` command line or in a transform (`deploy/windows/README.md`). The MSI writes
//! each one, verbatim, as a string value of the same name under
//! [`REGISTRY_KEY`]; the agent on Windows reads that key and maps it here to config
//! keys. Why the registry rather than a generated `agent.toml`: Windows Installer has
//! no table that writes a text file from properties (wixl has no `IniFile`), it
//! removes its registry values cleanly on uninstall and rewrites them on upgrade, and an
//! admin can read what a PC got with `reg query`.
//!
//! [`PROPERTIES`] is the one list of them: `deploy/windows/veille-agent.wxs` has one
//! `RegistryValue` per entry and the MSI test checks the package against it.
//!
//! Precedence on Windows: flags > these values > `VEILLE_*` environment > the file
//! `C:\ProgramData\Veille\agent.toml` > defaults. (A service has no environment an
//! admin sets by GPO, so the MSI's properties come right after the command line.)
//!
//! Pure, tested on Linux: the Windows edge (`windows::config_layers`) reads the
//! registry through `probes::registry` and hands the values to [`layer`].

use toml::{Table, Value};

/// `HKEY_LOCAL_MACHINE\` + this: where the MSI writes the properties.
pub const REGISTRY_KEY: &str = r"SOFTWARE\Veille\Agent";

/// MSI property (also the registry value name) → config key.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("COLLECTOR_URL", "collector"),
    ("ORG", "org"),
    ("TOKEN", "token"),
    ("SITE", "site"),
    ("TAGS", "tags"),
    ("CA_CERT", "ca_cert"),
];

/// The config layer from the registry values `(name, value)`. An empty value (a
/// property the install did not set) sets nothing, so the file and defaults still
/// apply. `TAGS` is a comma-separated list. A collector URL starting with `mqtt`
/// (`mqtt://`, `mqtts://`) also selects `transport = "mqtt"`, since the MSI has no
/// separate transport property. Unknown names are ignored.
pub fn layer(values: impl IntoIterator<Item = (String, String)>) -> Table {
    let mut table = Table::new();
    for (name, value) in values {
        let value = value.trim();
        let Some((_, key)) = PROPERTIES
            .iter()
            .find(|(property, _)| property.eq_ignore_ascii_case(&name))
        else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let value = match *key {
            "tags" => Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_owned()))
                    .collect(),
            ),
            _ => Value::String(value.to_owned()),
        };
        if *key == "collector"
            && value
                .as_str()
                .is_some_and(|url| url.to_ascii_lowercase().starts_with("mqtt"))
        {
            table.insert("transport".into(), Value::String("mqtt".into()));
        }
        table.insert((*key).to_owned(), value);
    }
    table
}

/// `flags` over `layer`: the table to pass as the flags layer of
/// `AgentConfig::load`, so the command line still wins. Flags are top-level keys.
pub fn under_flags(mut layer: Table, flags: Table) -> Table {
    for (key, value) in flags {
        layer.insert(key, value);
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_property_maps_to_its_key() {
        let t = layer(values(&[
            ("COLLECTOR_URL", "https://veille.cd42.fr:7401"),
            ("ORG", "cd42"),
            ("TOKEN", "tok-123"),
            ("SITE", "Mairie annexe"),
            ("TAGS", " accueil, kiosque ,,"),
            ("CA_CERT", r"C:\ProgramData\Veille\ca.pem"),
        ]));
        let expected: Table = toml::from_str(
            r#"
            collector = "https://veille.cd42.fr:7401"
            org = "cd42"
            token = "tok-123"
            site = "Mairie annexe"
            tags = ["accueil", "kiosque"]
            ca_cert = 'C:\ProgramData\Veille\ca.pem'
            "#,
        )
        .unwrap();
        assert_eq!(t, expected);
    }

    #[test]
    fn empty_and_unknown_values_set_nothing() {
        let t = layer(values(&[
            ("COLLECTOR_URL", ""),
            ("TOKEN", "   "),
            ("InstallDir", r"C:\Program Files\Veille"),
        ]));
        assert!(t.is_empty(), "{t:?}");
    }

    #[test]
    fn an_mqtt_url_selects_the_mqtt_transport() {
        let t = layer(values(&[("collector_url", "mqtts://broker.example:8883")]));
        assert_eq!(t["transport"].as_str(), Some("mqtt"));
        let t = layer(values(&[("COLLECTOR_URL", "http://c:7401")]));
        assert!(!t.contains_key("transport"));
    }

    #[test]
    fn flags_win_over_the_registry() {
        let registry = layer(values(&[("COLLECTOR_URL", "http://a:1"), ("ORG", "o")]));
        let mut flags = Table::new();
        flags.insert("collector".into(), Value::String("http://b:2".into()));
        let t = under_flags(registry, flags);
        assert_eq!(t["collector"].as_str(), Some("http://b:2"));
        assert_eq!(t["org"].as_str(), Some("o"));
    }

    #[test]
    fn the_layer_loads_as_an_agent_config() {
        // Without ca_cert (a key the TLS transport adds to the config), the layer is a
        // valid flags table for the agent's real config loader.
        let t = layer(values(&[
            ("COLLECTOR_URL", "mqtt://broker:1883"),
            ("ORG", "cd42"),
            ("TAGS", "a,b"),
        ]));
        let (c, _) = crate::config::AgentConfig::load(None, Vec::new(), t).unwrap();
        assert_eq!(c.transport, "mqtt");
        assert_eq!(c.collector_url(), "mqtt://broker:1883");
        assert_eq!(c.tags, vec!["a".to_string(), "b".to_string()]);
    }
}
