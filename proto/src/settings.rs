//! Configuration layering shared by both binaries: defaults < file < `VEILLE_*`
//! environment < command-line flags.
//!
//! The defaults layer is the annotated example config shipped in `deploy/` and embedded
//! in the binary: the file a user reads (`print-config`) is the very text the defaults
//! come from, so documentation and behaviour cannot drift apart. Every key therefore
//! appears in that file; a key with no value is written as an empty string.
//!
//! Environment: `VEILLE_REPORT_INTERVAL_S=30` sets `report_interval_s`;
//! `VEILLE_SPOOL__MAX_BYTES=1000` sets `max_bytes` in table `[spool]` (a double
//! underscore separates tables). A value is read as TOML when it parses (numbers,
//! booleans, arrays) and as a string otherwise. Variables naming no known key are
//! returned to the caller, which logs them, instead of failing: `VEILLE_LOG` and the
//! like belong to other layers.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use crate::defaults::ENV_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration ({origin}): {source}")]
    Invalid {
        origin: String,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
}

/// The layers that were applied, for `tracing` at start-up.
#[derive(Debug, Default)]
pub struct Provenance {
    pub file: Option<PathBuf>,
    pub env_applied: Vec<String>,
    pub env_ignored: Vec<String>,
}

/// Builds a configuration of type `T` from the embedded defaults, an optional file,
/// the process environment and flag overrides (already shaped as a table).
pub fn load<T: DeserializeOwned>(
    defaults_toml: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: Table,
) -> Result<(T, Provenance), SettingsError> {
    let mut provenance = Provenance::default();
    let mut merged: Table = defaults_toml.parse().map_err(|e| SettingsError::Invalid {
        origin: "embedded defaults".into(),
        source: Box::new(e),
    })?;
    let known = merged.clone();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table: Table = text.parse().map_err(|e| SettingsError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        merge(&mut merged, table);
        provenance.file = Some(path.to_owned());
    }
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    env.sort();
    for (name, raw) in env {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if !has_path(&known, &path) {
            provenance.env_ignored.push(name);
            continue;
        }
        let value = parse_value(&raw);
        set_path(&mut merged, &path, value).map_err(|reason| SettingsError::Env {
            name: name.clone(),
            reason,
        })?;
        provenance.env_applied.push(name);
    }
    merge(&mut merged, flags);
    let origin = match &provenance.file {
        Some(p) => format!("file {}, environment and flags", p.display()),
        None => "defaults, environment and flags".into(),
    };
    let config = T::deserialize(Value::Table(merged)).map_err(|e| SettingsError::Invalid {
        origin,
        source: Box::new(e),
    })?;
    Ok((config, provenance))
}

/// Sets `dotted.key` in a table of flag overrides.
pub fn set_flag(flags: &mut Table, dotted: &str, value: impl Into<Value>) {
    let path: Vec<String> = dotted.split('.').map(str::to_owned).collect();
    // A fresh flags table has no scalars in the way, so this cannot fail; ignore the
    // impossible error rather than panic.
    let _ = set_path(flags, &path, value.into());
}

fn parse_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

fn has_path(table: &Table, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => table.contains_key(last),
        [first, rest @ ..] => match table.get(first) {
            Some(Value::Table(t)) => has_path(t, rest),
            _ => false,
        },
    }
}

fn set_path(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            match entry {
                Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("{first} is not a table")),
            }
        }
    }
}

fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const DEFAULTS: &str = r#"
# the interval
interval_s = 60
name = ""
[spool]
max_bytes = 100
"#;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        interval_s: u64,
        name: String,
        spool: Spool,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Spool {
        max_bytes: u64,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_alone_make_a_config() {
        let (c, _): (Conf, _) = load(DEFAULTS, None, env(&[]), Table::new()).unwrap();
        assert_eq!(c.interval_s, 60);
        assert_eq!(c.spool.max_bytes, 100);
    }

    #[test]
    fn precedence_is_flags_then_env_then_file_then_defaults() {
        let dir = tempfile_dir();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "interval_s = 10\nname = \"file\"\n[spool]\nmax_bytes = 5\n",
        )
        .unwrap();
        let mut flags = Table::new();
        set_flag(&mut flags, "interval_s", 1i64);
        let (c, p): (Conf, _) = load(
            DEFAULTS,
            Some(&file),
            env(&[
                ("VEILLE_INTERVAL_S", "20"),
                ("VEILLE_SPOOL__MAX_BYTES", "7"),
                ("VEILLE_LOG", "debug"),
                ("HOME", "/root"),
            ]),
            flags,
        )
        .unwrap();
        assert_eq!(c.interval_s, 1, "flag wins over env and file");
        assert_eq!(c.spool.max_bytes, 7, "env wins over file");
        assert_eq!(c.name, "file", "file wins over defaults");
        assert_eq!(p.env_ignored, vec!["VEILLE_LOG".to_string()]);
        assert_eq!(p.env_applied.len(), 2);
    }

    #[test]
    fn unknown_keys_and_bad_types_are_clear_errors() {
        let dir = tempfile_dir();
        let file = dir.join("c.toml");
        std::fs::write(&file, "intervl_s = 10\n").unwrap();
        let e = load::<Conf>(DEFAULTS, Some(&file), env(&[]), Table::new()).unwrap_err();
        assert!(e.to_string().contains("intervl_s"), "{e}");
        let e = load::<Conf>(
            DEFAULTS,
            None,
            env(&[("VEILLE_INTERVAL_S", "soon")]),
            Table::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("interval_s"), "{e}");
        std::fs::write(&file, "interval_s = \n").unwrap();
        let e = load::<Conf>(DEFAULTS, Some(&file), env(&[]), Table::new()).unwrap_err();
        assert!(matches!(e, SettingsError::Parse { .. }), "{e}");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "veille-settings-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
