//! The hardware part of the inventory read from the kernel: CPU, memory, disks,
//! battery wear and attached monitors. Each reader notes what it could not read in the
//! shared [`Notes`] and returns an empty value; none of them fails.

use std::collections::BTreeSet;

use veille_proto::v1::{Battery, Disk, Monitor};

use super::Host;
use super::edid::parse_edid;
use super::inventory::{Notes, note_unavailable, read_trimmed};

/// CPU model (first `model name` of `/proc/cpuinfo`) and physical core count.
///
/// Cores are the distinct (`physical id`, `core id`) pairs, so hyper-threads are not
/// counted twice; kernels and architectures that print no topology (most ARM, some VMs)
/// fall back to the number of `processor` entries, i.e. logical CPUs.
///
/// # Platform-specific behaviour
///
/// Linux: `/proc/cpuinfo`. ARM kernels have no `model name` line on older versions:
/// the model is then empty, with a note.
pub fn cpu(host: &Host, notes: &mut Notes) -> (String, u32) {
    const FILE: &str = "proc/cpuinfo";
    let Ok(cpuinfo) = host.read_to_string(FILE).map_err(|e| {
        note_unavailable(notes, "cpu_model", &e);
        note_unavailable(notes, "cpu_cores", &e);
    }) else {
        return (String::new(), 0);
    };
    let mut model = None;
    let mut processors = 0u32;
    let mut cores = BTreeSet::new();
    for entry in cpuinfo.split("\n\n") {
        let mut physical = None;
        let mut core = None;
        for line in entry.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "processor" => processors = processors.saturating_add(1),
                "model name" if model.is_none() && !value.is_empty() => {
                    model = Some(value.to_owned())
                }
                "physical id" => physical = Some(value),
                "core id" => core = Some(value),
                _ => {}
            }
        }
        if let (Some(physical), Some(core)) = (physical, core) {
            cores.insert((physical, core));
        }
    }
    let cores = match u32::try_from(cores.len()) {
        Ok(n) if n > 0 => n,
        _ => processors,
    };
    if model.is_none() {
        notes.push(format!("cpu_model: no \"model name\" in {FILE}"));
    }
    if cores == 0 {
        notes.push(format!("cpu_cores: no processor entries in {FILE}"));
    }
    (model.unwrap_or_default(), cores)
}

/// Installed memory visible to the kernel (`MemTotal`), in bytes: slightly less than
/// the DIMMs' size, since firmware and the kernel image are not counted.
pub fn ram_bytes(host: &Host, notes: &mut Notes) -> u64 {
    const FILE: &str = "proc/meminfo";
    let Ok(meminfo) = host
        .read_to_string(FILE)
        .map_err(|e| note_unavailable(notes, "ram_bytes", &e))
    else {
        return 0;
    };
    let kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .and_then(|kib| kib.checked_mul(1024));
    kib.unwrap_or_else(|| {
        notes.push(format!("ram_bytes: no \"MemTotal: <n> kB\" line in {FILE}"));
        0
    })
}

/// Block devices that are not physical disks: loop, RAM and compressed-RAM disks,
/// device-mapper and software RAID (their members are already listed), optical drives,
/// floppies, network block devices.
const VIRTUAL_DISK_PREFIXES: &[&str] =
    &["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd", "zd"];

/// Physical disks from `/sys/block`, sorted by name: size from `size` (always in
/// 512-byte sectors, whatever the device's block size), rotational from
/// `queue/rotational`. Devices of size 0 (empty card readers) and eMMC boot/RPMB
/// partitions are skipped.
pub fn disks(host: &Host, notes: &mut Notes) -> Vec<Disk> {
    let Some(names) = dir_names(host, "sys/block", "disks", notes) else {
        return Vec::new();
    };
    let mut disks = Vec::new();
    for name in names {
        if VIRTUAL_DISK_PREFIXES.iter().any(|p| name.starts_with(p))
            || (name.starts_with("mmcblk") && (name.contains("boot") || name.contains("rpmb")))
        {
            continue;
        }
        let size_file = format!("sys/block/{name}/size");
        let Some(sectors) = read_trimmed(host, &size_file, &format!("disk {name}"), notes) else {
            continue;
        };
        let Some(size_bytes) = sectors.parse::<u64>().ok().and_then(|s| s.checked_mul(512)) else {
            notes.push(format!(
                "disk {name}: size {sectors:?} is not a sector count"
            ));
            continue;
        };
        if size_bytes == 0 {
            continue;
        }
        let rotational = host
            .read_to_string(&format!("sys/block/{name}/queue/rotational"))
            .is_ok_and(|r| r.trim() == "1");
        disks.push(Disk {
            name,
            size_bytes,
            rotational,
        });
    }
    disks
}

/// The first system battery's design and current full capacity, in mWh; `None` when
/// the machine has none (no note: desktops have no battery).
///
/// Peripheral batteries (`scope` = `Device`: mice, keyboards) are skipped. Drivers give
/// energy (`energy_full_design`, `energy_full`, µWh) or charge (`charge_full_design`,
/// `charge_full`, µAh); charge is converted with `voltage_min_design` (µV), the voltage
/// the maker rates the capacity at.
pub fn battery(host: &Host, notes: &mut Notes) -> Option<Battery> {
    const DIR: &str = "sys/class/power_supply";
    if !host.path(DIR).is_dir() {
        return None;
    }
    let names = dir_names(host, DIR, "battery", notes)?;
    let name = names.into_iter().find(|name| {
        let attr = |a: &str| host.read_to_string(&format!("{DIR}/{name}/{a}"));
        attr("type").is_ok_and(|t| t.trim() == "Battery")
            && !attr("scope").is_ok_and(|s| s.trim() == "Device")
    })?;
    let number = |attr: &str| -> Option<u64> {
        host.read_to_string(&format!("{DIR}/{name}/{attr}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let energy = |attr: &str| number(attr).map(|uwh| uwh / 1000);
    let voltage_uv = number("voltage_min_design");
    let charge = |attr: &str| {
        let uah = u128::from(number(attr)?);
        let uv = u128::from(voltage_uv?);
        // µAh × µV = 1e-12 Wh = 1e-9 mWh.
        u64::try_from(uah * uv / 1_000_000_000).ok()
    };
    let design = energy("energy_full_design").or_else(|| charge("charge_full_design"));
    let full = energy("energy_full").or_else(|| charge("charge_full"));
    if design.is_none() && full.is_none() {
        notes.push(format!(
            "battery: {DIR}/{name} gives neither energy_full* nor charge_full* with \
             voltage_min_design"
        ));
        return None;
    }
    Some(Battery {
        design_capacity_mwh: design.unwrap_or(0),
        full_capacity_mwh: full.unwrap_or(0),
    })
}

/// Monitors attached to DRM connectors (`/sys/class/drm/card*-*/edid`), sorted by
/// connector name. A connector whose `status` file says anything but `connected` is
/// skipped; an empty `edid` means nothing is plugged in. An EDID that fails to parse
/// (bad checksum, truncated) is skipped and noted: its content cannot be trusted.
///
/// # Platform-specific behaviour
///
/// Linux with a DRM/KMS driver. Proprietary drivers without KMS, headless servers and
/// most VMs have no `/sys/class/drm`: noted, empty list.
pub fn monitors(host: &Host, notes: &mut Notes) -> Vec<Monitor> {
    const DIR: &str = "sys/class/drm";
    let Some(names) = dir_names(host, DIR, "monitors", notes) else {
        return Vec::new();
    };
    let mut monitors = Vec::new();
    for name in names {
        let edid_path = host.path(&format!("{DIR}/{name}/edid"));
        if !edid_path.is_file() {
            continue; // card0, renderD128, version: not connectors
        }
        if let Ok(status) = host.read_to_string(&format!("{DIR}/{name}/status"))
            && status.trim() != "connected"
        {
            continue;
        }
        let bytes = match std::fs::read(&edid_path) {
            Ok(bytes) if bytes.is_empty() => continue,
            Ok(bytes) => bytes,
            Err(e) => {
                notes.push(format!("monitor {name}: {}: {e}", edid_path.display()));
                continue;
            }
        };
        match parse_edid(&bytes) {
            Ok(edid) => monitors.push(edid.to_monitor()),
            Err(e) => notes.push(format!("monitor {name}: skipped, {e}")),
        }
    }
    monitors
}

/// Sorted entry names of a directory (sorted so the inventory, and its hash, do not
/// change with readdir order); `None` with a note when it cannot be listed.
fn dir_names(host: &Host, dir: &str, field: &str, notes: &mut Notes) -> Option<Vec<String>> {
    let path = host.path(dir);
    match std::fs::read_dir(&path) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            names.sort();
            Some(names)
        }
        Err(source) => {
            note_unavailable(
                notes,
                field,
                &super::ProbeError::Unavailable { path, source },
            );
            None
        }
    }
}
