//! The device inventory (`veille.v1.Inventory`): identity and hardware facts that
//! change rarely, sent at start and whenever they change.
//!
//! [`probe_inventory`] never fails: a field it cannot read stays empty (or 0) and the
//! reason is added to [`InventoryReport::unavailable`], which the caller logs once.
//! DMI fields live in [`super::dmi`], CPU, memory, disks, battery and monitors in
//! [`super::hardware`], EDID decoding in [`super::edid`].

use veille_proto::v1::Inventory;

use super::{Host, InventoryReport, ProbeError, dmi, hardware};

/// Human-readable notes on what could not be read, one per field or source.
pub type Notes = Vec<String>;

/// Reads the whole inventory from `host`.
///
/// # Platform-specific behaviour
///
/// Linux: `/proc`, `/sys` and `/etc/os-release`. Run as an unprivileged user, the
/// serial number is missing (noted "root only"). In a VM or container without SMBIOS
/// the DMI fields are empty and noted once.
pub fn probe_inventory(host: &Host) -> InventoryReport {
    let mut notes = Notes::new();
    let hostname = read_trimmed(host, "proc/sys/kernel/hostname", "hostname", &mut notes);
    let kernel = read_trimmed(host, "proc/sys/kernel/osrelease", "kernel", &mut notes);
    let (os_name, os_version) = os_release(host, &mut notes);
    let dmi = dmi::dmi(host, &mut notes);
    let (cpu_model, cpu_cores) = hardware::cpu(host, &mut notes);
    let inventory = Inventory {
        hostname: hostname.unwrap_or_default(),
        os_name,
        os_version,
        kernel: kernel.unwrap_or_default(),
        manufacturer: dmi.manufacturer,
        model: dmi.model,
        serial: dmi.serial,
        chassis: dmi.chassis.into(),
        chassis_type: dmi.chassis_code.map_or(0, u32::from),
        cpu_model,
        cpu_cores,
        ram_bytes: hardware::ram_bytes(host, &mut notes),
        bios_release_date: dmi.bios_release_date,
        monitors: hardware::monitors(host, &mut notes),
        disks: hardware::disks(host, &mut notes),
        battery: hardware::battery(host, &mut notes),
        agent_version: String::new(),
        site: String::new(),
        tags: Vec::new(),
        interfaces: super::network::interfaces(host, &mut notes),
    };
    InventoryReport {
        inventory,
        unavailable: notes,
    }
}

/// [`probe_inventory`] without the notes.
pub fn inventory(host: &Host) -> Inventory {
    probe_inventory(host).inventory
}

/// `NAME` and `VERSION_ID` from `etc/os-release`, or `usr/lib/os-release` when the
/// former cannot be read (the os-release(5) lookup order). Rolling distributions have no
/// `VERSION_ID`: the version is then empty, with a note.
fn os_release(host: &Host, notes: &mut Notes) -> (String, String) {
    let text = match host.read_to_string("etc/os-release") {
        Ok(text) => text,
        Err(_) => match host.read_to_string("usr/lib/os-release") {
            Ok(text) => text,
            Err(e) => {
                note_unavailable(notes, "os_name", &e);
                note_unavailable(notes, "os_version", &e);
                return (String::new(), String::new());
            }
        },
    };
    let mut get = |key: &str, field: &str| {
        os_release_value(&text, key).unwrap_or_else(|| {
            notes.push(format!("{field}: no {key} in os-release"));
            String::new()
        })
    };
    (get("NAME", "os_name"), get("VERSION_ID", "os_version"))
}

/// The value of `key` in an os-release file: shell-style assignments, values
/// unquoted, in single quotes (literal) or in double quotes (where `\"`, `\\`, `\$` and
/// `` \` `` are escapes). Comments and blank lines are skipped; the last assignment
/// wins, as in a shell. An empty value counts as absent.
pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, raw)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        found = Some(unquote(raw.trim()));
    }
    found.filter(|v| !v.is_empty())
}

fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('\'') {
        return inner.strip_suffix('\'').unwrap_or(inner).to_owned();
    }
    let Some(inner) = raw.strip_prefix('"') else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// A small text file, trimmed; `None` (with a note naming `field`) when unreadable or
/// empty.
pub(crate) fn read_trimmed(
    host: &Host,
    relative: &str,
    field: &str,
    notes: &mut Notes,
) -> Option<String> {
    match host.read_to_string(relative) {
        Ok(text) if text.trim().is_empty() => {
            notes.push(format!(
                "{field}: {} is empty",
                host.path(relative).display()
            ));
            None
        }
        Ok(text) => Some(text.trim().to_owned()),
        Err(e) => {
            note_unavailable(notes, field, &e);
            None
        }
    }
}

pub(crate) fn note_unavailable(notes: &mut Notes, field: &str, error: &ProbeError) {
    notes.push(unavailable_note(field, error));
}

/// The note for a field whose source could not be read. A permission error is the
/// expected outcome for root-only files (`product_serial`) when the agent does not run
/// as root, so it is worded as such rather than as a failure.
pub fn unavailable_note(field: &str, error: &ProbeError) -> String {
    match error {
        ProbeError::Unavailable { path, source }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            format!("{field}: unavailable (root only: {})", path.display())
        }
        ProbeError::Unavailable { path, source }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            format!("{field}: {} absent", path.display())
        }
        other => format!("{field}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;
    use veille_proto::v1::{Battery, ChassisClass, Disk};

    fn write(root: &Path, relative: &str, content: impl AsRef<[u8]>) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\n\
        model name\t: Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz\nphysical id\t: 0\ncore id\t\t: 0\n\n\
        processor\t: 1\nmodel name\t: Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz\nphysical id\t: 0\ncore id\t\t: 1\n\n\
        processor\t: 2\nmodel name\t: Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz\nphysical id\t: 0\ncore id\t\t: 0\n\n\
        processor\t: 3\nmodel name\t: Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz\nphysical id\t: 0\ncore id\t\t: 1\n\n";

    /// A laptop: every source present.
    fn full_tree(root: &Path) {
        write(root, "proc/sys/kernel/hostname", "pc-compta-07\n");
        write(root, "proc/sys/kernel/osrelease", "6.8.0-45-generic\n");
        write(
            root,
            "etc/os-release",
            "# comment\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\n",
        );
        let dmi = "sys/class/dmi/id";
        write(root, &format!("{dmi}/sys_vendor"), "LENOVO\n");
        write(root, &format!("{dmi}/product_name"), "20HRCTO1WW\n");
        write(
            root,
            &format!("{dmi}/product_version"),
            "ThinkPad X1 Carbon 5th\n",
        );
        write(root, &format!("{dmi}/product_serial"), "PF0ABCDE\n");
        write(root, &format!("{dmi}/chassis_type"), "10\n");
        write(root, &format!("{dmi}/bios_date"), "11/23/2021\n");
        write(root, "proc/cpuinfo", CPUINFO);
        write(
            root,
            "proc/meminfo",
            "MemTotal:       16314112 kB\nMemFree:         1234567 kB\n",
        );
        for (name, sectors, rot) in [
            ("nvme0n1", "1000215216", "0"),
            ("sda", "3907029168", "1"),
            ("loop0", "1000", "0"),
            ("zram0", "1000", "0"),
            ("dm-0", "1000", "0"),
            ("sdb", "0", "1"),
        ] {
            write(
                root,
                &format!("sys/block/{name}/size"),
                format!("{sectors}\n"),
            );
            write(
                root,
                &format!("sys/block/{name}/queue/rotational"),
                format!("{rot}\n"),
            );
        }
        let ps = "sys/class/power_supply";
        write(root, &format!("{ps}/AC/type"), "Mains\n");
        write(root, &format!("{ps}/BAT0/type"), "Battery\n");
        write(root, &format!("{ps}/BAT0/energy_full_design"), "57000000\n");
        write(root, &format!("{ps}/BAT0/energy_full"), "45123000\n");
        write(root, &format!("{ps}/hidpp_battery_0/type"), "Battery\n");
        write(root, &format!("{ps}/hidpp_battery_0/scope"), "Device\n");
        let drm = "sys/class/drm";
        write(root, &format!("{drm}/version"), "drm 1.1.0\n");
        write(root, &format!("{drm}/card0-eDP-1/status"), "connected\n");
        write(root, &format!("{drm}/card0-eDP-1/edid"), samsung());
        write(
            root,
            &format!("{drm}/card0-HDMI-A-1/status"),
            "disconnected\n",
        );
        write(root, &format!("{drm}/card0-HDMI-A-1/edid"), b"");
        write(root, &format!("{drm}/card0-DP-1/status"), "connected\n");
        let mut bad = samsung();
        bad[20] ^= 1;
        write(root, &format!("{drm}/card0-DP-1/edid"), bad);
        write(
            root,
            "sys/class/net/lo/address",
            "00:00:00:00:00:00
",
        );
        write(
            root,
            "sys/class/net/enp0s31f6/address",
            "54:e1:ad:12:34:56
",
        );
        write(
            root,
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
             enp0s31f6\t0000A8C0\t00000000\t0001\t0\t0\t100\t0000FFFF\n",
        );
    }

    /// Source: linuxhw/EDID, `Digital/Samsung/SAM00E5/23C6C1DE4956`.
    fn samsung() -> Vec<u8> {
        "00 ff ff ff ff ff ff 00 4c 2d e5 00 37 31 53 44 29 0e 01 03 80 22 1b 78 2a 6f 8b a2
         5a 4d 94 24 1a 51 56 bf ef 00 81 80 01 01 01 01 01 01 01 01 01 01 01 01 01 01 30 2a
         00 98 51 00 2a 40 30 70 13 00 52 0e 11 00 00 1e 00 00 00 fd 00 38 4b 1e 51 0e 00 0a
         20 20 20 20 20 20 00 00 00 fc 00 53 79 6e 63 4d 61 73 74 65 72 0a 20 20 00 00 00 ff
         00 48 4d 45 58 41 30 30 30 33 37 0a 20 20 00 db"
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn every_field_is_read_from_a_full_tree() {
        let dir = tempfile::tempdir().unwrap();
        full_tree(dir.path());
        let report = probe_inventory(&Host::at(dir.path()));
        let inv = &report.inventory;
        assert_eq!(inv.hostname, "pc-compta-07");
        assert_eq!(inv.kernel, "6.8.0-45-generic");
        assert_eq!(
            (inv.os_name.as_str(), inv.os_version.as_str()),
            ("Ubuntu", "24.04")
        );
        assert_eq!(inv.manufacturer, "LENOVO");
        assert_eq!(inv.model, "ThinkPad X1 Carbon 5th (20HRCTO1WW)");
        assert_eq!(inv.serial, "PF0ABCDE");
        assert_eq!(inv.chassis(), ChassisClass::Laptop);
        assert_eq!(
            inv.chassis_type, 10,
            "the SMBIOS code travels with its class"
        );
        assert_eq!(inv.bios_release_date, "2021-11-23");
        assert_eq!(inv.cpu_model, "Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz");
        assert_eq!(inv.cpu_cores, 2, "4 threads on 2 cores");
        assert_eq!(inv.ram_bytes, 16_314_112 * 1024);
        assert_eq!(
            inv.disks,
            vec![
                Disk {
                    name: "nvme0n1".into(),
                    size_bytes: 1_000_215_216 * 512,
                    rotational: false
                },
                Disk {
                    name: "sda".into(),
                    size_bytes: 3_907_029_168 * 512,
                    rotational: true
                },
            ]
        );
        assert_eq!(
            inv.battery,
            Some(Battery {
                design_capacity_mwh: 57_000,
                full_capacity_mwh: 45_123
            })
        );
        assert_eq!(inv.monitors.len(), 1, "{:?}", inv.monitors);
        let monitor = &inv.monitors[0];
        assert_eq!(monitor.manufacturer, "SAM");
        assert_eq!(monitor.serial, "HMEXA00037");
        assert_eq!(monitor.year_of_manufacture, 2004);
        assert_eq!(monitor.name, "SyncMaster");
        assert!((inv.agent_version.is_empty() && inv.site.is_empty() && inv.tags.is_empty()));
        assert_eq!(inv.interfaces.len(), 1, "loopback left out");
        assert_eq!(inv.interfaces[0].mac, "54:e1:ad:12:34:56");
        assert_eq!(inv.interfaces[0].ipv4_subnets, ["192.168.0.0/16"]);
        // The only note is the DP-1 monitor with a corrupted EDID.
        assert_eq!(report.unavailable.len(), 1, "{:?}", report.unavailable);
        assert!(
            report.unavailable[0].starts_with("monitor card0-DP-1: skipped, EDID checksum"),
            "{:?}",
            report.unavailable
        );
    }

    #[test]
    fn charge_based_battery_and_usr_lib_os_release() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ps = "sys/class/power_supply/BAT1";
        write(root, &format!("{ps}/type"), "Battery\n");
        write(root, &format!("{ps}/charge_full_design"), "4000000\n"); // 4000 mAh
        write(root, &format!("{ps}/charge_full"), "3000000\n");
        write(root, &format!("{ps}/voltage_min_design"), "11400000\n"); // 11.4 V
        write(root, "usr/lib/os-release", "NAME='Arch Linux'\nID=arch\n");
        let report = probe_inventory(&Host::at(root));
        assert_eq!(
            report.inventory.battery,
            Some(Battery {
                design_capacity_mwh: 45_600,
                full_capacity_mwh: 34_200
            })
        );
        assert_eq!(report.inventory.os_name, "Arch Linux");
        assert_eq!(report.inventory.os_version, "");
        assert!(
            report
                .unavailable
                .contains(&"os_version: no VERSION_ID in os-release".into()),
            "{:?}",
            report.unavailable
        );
    }

    #[test]
    fn an_empty_root_gives_an_empty_inventory_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let report = probe_inventory(&Host::at(dir.path()));
        assert_eq!(
            report.inventory,
            Inventory {
                chassis: ChassisClass::Unknown.into(),
                ..Inventory::default()
            }
        );
        let notes = report.unavailable.join("\n");
        for expected in [
            "hostname:",
            "kernel:",
            "os_name:",
            "os_version:",
            "dmi: ",
            "no SMBIOS",
            "cpu_model:",
            "cpu_cores:",
            "ram_bytes:",
            "disks:",
            "monitors:",
            "interfaces:",
        ] {
            assert!(
                notes.contains(expected),
                "{expected:?} missing from\n{notes}"
            );
        }
        // One DMI note, not one per DMI field; no battery note on a desktop.
        assert!(
            !report
                .unavailable
                .iter()
                .any(|n| n.starts_with("serial") || n.starts_with("battery")),
            "{notes}"
        );
    }

    #[test]
    fn malformed_values_are_emptied_and_noted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        full_tree(root);
        let dmi = "sys/class/dmi/id";
        write(
            root,
            &format!("{dmi}/sys_vendor"),
            "To be filled by O.E.M.\n",
        );
        write(root, &format!("{dmi}/chassis_type"), "laptop\n");
        write(root, &format!("{dmi}/bios_date"), "2021-11-23\n");
        write(root, &format!("{dmi}/product_version"), "1.0\n");
        // As root, permission bits are not enforced: a directory stands for an
        // unreadable serial (the permission case is tested on `unavailable_note`).
        fs::remove_file(root.join(format!("{dmi}/product_serial"))).unwrap();
        fs::create_dir(root.join(format!("{dmi}/product_serial"))).unwrap();
        write(root, "proc/meminfo", "MemTotal: lots\n");
        write(
            root,
            "proc/cpuinfo",
            "processor : 0\nprocessor : 1\nprocessor : 2\n",
        );
        write(root, "sys/block/sda/size", "big\n");
        write(root, "proc/sys/kernel/hostname", "\n");
        let report = probe_inventory(&Host::at(root));
        let inv = &report.inventory;
        assert_eq!(inv.manufacturer, "");
        assert_eq!(inv.model, "20HRCTO1WW");
        assert_eq!(inv.serial, "");
        assert_eq!(inv.chassis(), ChassisClass::Unknown);
        assert_eq!(inv.chassis_type, 0, "not a number: unknown, not guessed");
        assert_eq!(inv.bios_release_date, "");
        assert_eq!(inv.ram_bytes, 0);
        assert_eq!(inv.cpu_model, "");
        assert_eq!(inv.cpu_cores, 3, "no topology: logical CPUs");
        assert_eq!(inv.hostname, "");
        assert_eq!(inv.disks.len(), 1, "nvme0n1 only: {:?}", inv.disks);
        let notes = report.unavailable.join("\n");
        for expected in [
            "manufacturer: firmware placeholder \"To be filled by O.E.M.\"",
            "chassis: chassis_type is not a number",
            "bios_release_date: \"2021-11-23\" is not MM/DD/YYYY",
            "serial: ",
            "ram_bytes: no \"MemTotal",
            "cpu_model: no \"model name\"",
            "disk sda: size \"big\"",
            "hostname: ",
        ] {
            assert!(
                notes.contains(expected),
                "{expected:?} missing from\n{notes}"
            );
        }
    }

    #[test]
    fn permission_denied_reads_as_root_only() {
        let error = ProbeError::Unavailable {
            path: "/sys/class/dmi/id/product_serial".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            unavailable_note("serial", &error),
            "serial: unavailable (root only: /sys/class/dmi/id/product_serial)"
        );
        let missing = ProbeError::Unavailable {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(unavailable_note("kernel", &missing), "kernel: /x absent");
    }

    #[test]
    fn os_release_quoting() {
        let text = "NAME=\"Fedora Linux\"\nVERSION_ID=40\n\
                    PRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\n\
                    VARIANT=\"Say \\\"hi\\\" for \\$5 \\\\ done\"\n\
                    # NAME=commented\n  \nEMPTY=\"\"\nID=first\nID=second\n";
        assert_eq!(
            os_release_value(text, "NAME").as_deref(),
            Some("Fedora Linux")
        );
        assert_eq!(os_release_value(text, "VERSION_ID").as_deref(), Some("40"));
        assert_eq!(
            os_release_value(text, "PRETTY_NAME").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            os_release_value(text, "VARIANT").as_deref(),
            Some("Say \"hi\" for $5 \\ done")
        );
        assert_eq!(os_release_value(text, "EMPTY"), None);
        assert_eq!(os_release_value(text, "ID").as_deref(), Some("second"));
        assert_eq!(os_release_value(text, "MISSING"), None);
        assert_eq!(
            os_release_value("NAME=\"unterminated", "NAME").as_deref(),
            Some("unterminated")
        );
    }

    /// This VM has no DMI and no DRM: the probe must still give the basics.
    #[test]
    fn the_real_machine_does_not_panic() {
        let report = probe_inventory(&Host::real());
        let inv = &report.inventory;
        assert!(!inv.hostname.is_empty(), "{:?}", report.unavailable);
        assert!(!inv.kernel.is_empty(), "{:?}", report.unavailable);
        assert!(inv.cpu_cores > 0, "{:?}", report.unavailable);
        assert!(inv.ram_bytes > 0, "{:?}", report.unavailable);
    }
}
