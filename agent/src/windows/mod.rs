//! The Windows edges of the agent that are not probes: the service control manager,
//! the enforcer's side effects, and where config and state live. Everything they feed
//! (the MSI properties' config layer, the console-session rules) lives in shared
//! modules tested on Linux.
//!
//! The probes' own Win32 calls (boot, CPU, device id, inventory, clocks, console
//! activity) and the `HKLM` reader are below, in [`crate::probes`]: this module
//! builds on them, and nothing below imports it.
//!
//! - [`enforcer`]: message box in the console session, planned shutdown.
//! - [`service`]: the SCM glue (start, stop, recovery actions).

pub mod enforcer;
pub mod service;

use std::path::PathBuf;

use crate::msi_properties::{self, PROPERTIES, REGISTRY_KEY};
use crate::probes::registry;

/// `%ProgramData%\Veille`: the config file `agent.toml`, the `state` directory and
/// the service's log `agent.log`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("Veille")
}

/// The config file and flags layer on Windows: `file` (from `--config`), else
/// `%ProgramData%\Veille\agent.toml` when it exists; the MSI's properties from
/// `HKLM\SOFTWARE\Veille\Agent` under `flags` ([`msi_properties`]).
pub fn config_layers(file: Option<PathBuf>, flags: toml::Table) -> (Option<PathBuf>, toml::Table) {
    let file = file.or_else(|| {
        let default = data_dir().join("agent.toml");
        default.is_file().then_some(default)
    });
    let values = PROPERTIES.iter().filter_map(|(name, _)| {
        registry::hklm_string(REGISTRY_KEY, name).map(|v| ((*name).to_owned(), v))
    });
    (
        file,
        msi_properties::under_flags(msi_properties::layer(values), flags),
    )
}
