//! Platform probes. Each reads one fact from an injectable root so that tests run on a
//! fake `/proc`, `/sys` and `/etc` tree; a probe that cannot read its source returns a
//! [`ProbeError`] (or `None`) and the agent goes on: probes never panic.
//!
//! One file per fact: [`device_id`] (stable identity), [`boot`] (boot id, boot time,
//! uptime), [`cpu`] (CPU time counters), [`clock`] (wall, boot-time and monotonic
//! clocks), [`activity`] (is a user present), [`rapl`] (CPU+DRAM energy, never
//! whole-system), [`battery_power`] (whole-system power while on battery) and [`hwmon`]
//! (temperatures: CPU package, inlet, others), [`network`] (interfaces, MACs and IPv4
//! subnets, for Wake-on-LAN), [`power_meter`] (servers' whole-system power: which
//! meter, and its integration into joules) over [`acpi_power_meter`] (hwmon
//! `power_meter`) and [`ipmi_dcmi`] (the BMC, through `ipmitool`).
//!
//! Windows: `console_activity` is the activity probe (the console session through the
//! WTS API); `win32` provides `boot_id`, `boot_time_unix_s`, `uptime_s`, `cpu_times`,
//! `device_id` and `probe_inventory` under the same names (ignoring the [`Host`] root),
//! from Win32 calls; `win32_clock` gives the clocks (interrupt-time functions looked up
//! at run time, with fallbacks); `registry` reads `HKLM` (also for the MSI's properties
//! and the enforcer's wide strings: the Windows edges above build on it, never the
//! other way round). What they parse is in shared modules tested on Linux: [`smbios`]
//! (the raw SMBIOS table), [`console_session`] (user activity seen from a service),
//! [`windows_version`], [`clock`]. RAPL, battery, hwmon and power-meter readers look
//! for Linux sysfs files and devices and find none there.

use std::path::{Path, PathBuf};

pub mod acpi_power_meter;
pub mod activity;
pub mod battery_power;
#[cfg(target_os = "linux")]
pub mod boot;
pub mod clock;
#[cfg(windows)]
pub mod console_activity;
pub mod console_session;
#[cfg(target_os = "linux")]
pub mod cpu;
#[cfg(target_os = "linux")]
pub mod device_id;
pub mod dmi;
pub mod edid;
#[cfg(target_os = "linux")]
pub mod hardware;
pub mod hwmon;
#[cfg(target_os = "linux")]
pub mod inventory;
pub mod ipmi_dcmi;
#[cfg(target_os = "linux")]
pub mod network;
pub mod power_meter;
pub mod rapl;
#[cfg(windows)]
pub mod registry;
pub mod smbios;
#[cfg(windows)]
mod win32;
#[cfg(windows)]
mod win32_clock;
pub mod windows_version;

pub use activity::{
    Activity, ActivityProbe, DEFAULT_CPU_BUSY_THRESHOLD, FakeActivity, Logind, cpu_busy,
};
pub use battery_power::{BatteryMeter, EnergyIntegrator};
#[cfg(target_os = "linux")]
pub use boot::{boot_id, boot_time_unix_s, uptime_s};
pub use clock::{FakeClocks, SystemClocks, WindowsClockSource};
#[cfg(target_os = "linux")]
pub use cpu::cpu_times;
#[cfg(target_os = "linux")]
pub use device_id::device_id;
pub use edid::{Edid, EdidError, parse_edid};
pub use hwmon::{SensorRole, Thermometers};
#[cfg(target_os = "linux")]
pub use inventory::{inventory, probe_inventory};
pub use power_meter::{MeanPowerIntegrator, WholeSystemMeter};
pub use rapl::{RaplDomain, RaplMeter, RaplUnavailable};
// Windows: the same facts under the same names, from Win32 calls.
#[cfg(windows)]
pub use win32::{boot_id, boot_time_unix_s, cpu_times, device_id, probe_inventory, uptime_s};

/// Where a [`DeviceId`] came from, so the collector knows how far to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceIdSource {
    /// The SMBIOS system UUID: set by the maker, survives an OS reinstall.
    SmbiosUuid,
    /// The OS installation's machine-id: changes with a reinstall and is shared by
    /// every machine cloned from one image that was not reset.
    MachineId,
    /// Windows' `MachineGuid` (`HKLM\SOFTWARE\Microsoft\Cryptography`), created at
    /// setup: like a machine-id, shared by clones that were not sysprepped.
    MachineGuid,
}

/// A device identity, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId {
    pub id: String,
    pub source: DeviceIdSource,
}

/// The inventory and what it lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryReport {
    /// `agent_version`, `site` and `tags` are left empty for the caller to fill.
    pub inventory: veille_proto::v1::Inventory,
    /// Why some fields are empty, e.g. `"serial: unavailable (root only)"`.
    pub unavailable: Vec<String>,
}

/// Where the probes look: `/` on a real machine, a tempdir in tests.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    /// The real machine.
    pub fn real() -> Self {
        Self::at("/")
    }

    /// A tree laid out like `/` under `root` (`root/proc/stat`, `root/sys/...`).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Absolute path of `relative` (written without a leading slash: `proc/stat`).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative.trim_start_matches('/'))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The whole of a small text file (`/proc` and `/sys` files are read in one go so
    /// that a value is never torn between two reads).
    pub fn read_to_string(&self, relative: &str) -> Result<String, ProbeError> {
        let path = self.path(relative);
        std::fs::read_to_string(&path).map_err(|source| ProbeError::Unavailable { path, source })
    }
}

/// Why a probe could not give its fact.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{path}: not available ({source})")]
    Unavailable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unexpected content: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

impl ProbeError {
    pub(crate) fn malformed(path: PathBuf, reason: impl Into<String>) -> Self {
        Self::Malformed {
            path,
            reason: reason.into(),
        }
    }
}

/// Whether `s` looks like `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits, any case).
pub(crate) fn is_uuid_shaped(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Aggregate CPU time counters from `/proc/stat`'s `cpu` line, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq + steal.
    pub busy: u64,
    /// busy + idle + iowait.
    pub total: u64,
}

impl CpuTimes {
    /// Utilisation in [0, 1] between `earlier` and `self`; `None` when no tick elapsed
    /// or the counters went backwards (a new boot).
    pub fn util_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        if total == 0 {
            return None;
        }
        Some((busy as f64 / total as f64).clamp(0.0, 1.0))
    }
}

/// The clocks the sampler needs, behind a trait so tests drive time by hand.
pub trait Clocks: Send + Sync {
    /// Wall clock, Unix milliseconds.
    fn wall_unix_ms(&self) -> i64;
    /// CLOCK_BOOTTIME in milliseconds: time since boot, including time asleep.
    fn boottime_ms(&self) -> u64;
    /// CLOCK_MONOTONIC in milliseconds: time since boot, excluding time asleep.
    fn monotonic_ms(&self) -> u64;
}
