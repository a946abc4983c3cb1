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
//! - [`wake`]: the waitable timer that wakes the machine for its maintenance window.

pub mod enforcer;
pub mod service;
pub mod wake;

use std::path::PathBuf;

use windows_sys::Win32::System::Com::CoTaskMemFree;
use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
use windows_sys::core::PWSTR;

use crate::msi_properties::{self, PROPERTIES, REGISTRY_KEY};
use crate::probes::registry;

/// `%ProgramData%\Veille`: the config file `agent.toml`, the `state` directory and
/// the service's log `agent.log`.
///
/// # Platform-specific behaviour
/// The folder is `FOLDERID_ProgramData` (`SHGetKnownFolderPath`), the `ProgramData`
/// variable only when that fails: the service's environment is not an admin's (under
/// Wine, services get `C:\users\Public`, a console `C:\ProgramData`), and the
/// service and the commands typed at a prompt (`status`, `postpone`) must agree.
pub fn data_dir() -> PathBuf {
    known_program_data()
        .or_else(|| std::env::var_os("ProgramData").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("Veille")
}

/// `SHGetKnownFolderPath(FOLDERID_ProgramData)`, `None` when it fails.
fn known_program_data() -> Option<PathBuf> {
    let mut path: PWSTR = std::ptr::null_mut();
    // SAFETY: a valid folder id and out-pointer; a null token is the process's own.
    let hr =
        unsafe { SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut path) };
    let found = (hr >= 0 && !path.is_null()).then(|| {
        // SAFETY: on success `path` is a NUL-terminated UTF-16 string.
        let len = (0..).take_while(|&i| unsafe { *path.add(i) } != 0).count();
        // SAFETY: `len` units were just read from `path`.
        let units = unsafe { std::slice::from_raw_parts(path, len) };
        PathBuf::from(String::from_utf16_lossy(units))
    });
    // SAFETY: the string is the caller's to free, also on failure (null is allowed).
    unsafe { CoTaskMemFree(path.cast()) };
    found
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
