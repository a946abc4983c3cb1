//! What changed between two inventories of one device, in words an operator reads: a
//! RAM upgrade, a replaced monitor, a new disk. The store keeps every replaced inventory
//! (`inventory_history`); this turns consecutive versions into short change lines for
//! the renewal report, where an upgrade explains why an old device is still fine.
//!
//! Pure. Fields that change on their own (battery wear, the agent's version) are left
//! out: they are not hardware changes.

use veille_proto::v1::{Inventory, Monitor};

/// Change lines from `old` to `new`, in a fixed order; empty when nothing that matters
/// changed.
pub fn changes(old: &Inventory, new: &Inventory) -> Vec<String> {
    let mut out = Vec::new();
    let mut text = |what: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{what}: {} → {}", or_none(a), or_none(b)));
        }
    };
    text("hostname", &old.hostname, &new.hostname);
    text(
        "OS",
        &format!("{} {}", old.os_name, old.os_version),
        &format!("{} {}", new.os_name, new.os_version),
    );
    text("CPU", &old.cpu_model, &new.cpu_model);
    text("BIOS date", &old.bios_release_date, &new.bios_release_date);
    text("serial", &old.serial, &new.serial);
    if old.ram_bytes != new.ram_bytes {
        out.push(format!(
            "RAM: {} → {}",
            gib(old.ram_bytes),
            gib(new.ram_bytes)
        ));
    }
    let disks = |i: &Inventory| {
        let mut d: Vec<String> = i
            .disks
            .iter()
            .map(|d| {
                format!(
                    "{} {} {}",
                    d.name,
                    gb(d.size_bytes),
                    if d.rotational { "HDD" } else { "SSD" }
                )
            })
            .collect();
        d.sort();
        d
    };
    list_change(&mut out, "disk", &disks(old), &disks(new));
    let monitors = |i: &Inventory| {
        let mut m: Vec<String> = i.monitors.iter().map(monitor_label).collect();
        m.sort();
        m
    };
    list_change(&mut out, "monitor", &monitors(old), &monitors(new));
    out
}

fn list_change(out: &mut Vec<String>, what: &str, old: &[String], new: &[String]) {
    for gone in old.iter().filter(|x| !new.contains(x)) {
        out.push(format!("{what} removed: {gone}"));
    }
    for added in new.iter().filter(|x| !old.contains(x)) {
        out.push(format!("{what} added: {added}"));
    }
}

/// `DEL 0xA0B1 "DELL P2419H" s/n ABC` — enough to tell two monitors apart.
pub fn monitor_label(m: &Monitor) -> String {
    let mut s = format!("{} 0x{:04X}", or_none(&m.manufacturer), m.product_code);
    if !m.name.is_empty() {
        s.push_str(&format!(" \"{}\"", m.name));
    }
    if !m.serial.is_empty() {
        s.push_str(&format!(" s/n {}", m.serial));
    }
    s
}

fn or_none(s: &str) -> &str {
    if s.trim().is_empty() {
        "(none)"
    } else {
        s.trim()
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn gb(bytes: u64) -> String {
    format!("{:.0} GB", bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::{Battery, Disk};

    #[test]
    fn a_ram_upgrade_and_a_replaced_monitor_are_named() {
        let old = Inventory {
            hostname: "pc-01".into(),
            ram_bytes: 8 << 30,
            monitors: vec![Monitor {
                manufacturer: "DEL".into(),
                product_code: 0xA0B1,
                name: "DELL P2419H".into(),
                serial: "ABC".into(),
                ..Default::default()
            }],
            disks: vec![Disk {
                name: "sda".into(),
                size_bytes: 500_000_000_000,
                rotational: true,
            }],
            battery: Some(Battery {
                design_capacity_mwh: 50_000,
                full_capacity_mwh: 45_000,
            }),
            agent_version: "0.1.0".into(),
            ..Default::default()
        };
        let mut new = old.clone();
        new.ram_bytes = 16 << 30;
        new.monitors[0].serial = "XYZ".into();
        new.battery = Some(Battery {
            design_capacity_mwh: 50_000,
            full_capacity_mwh: 44_000,
        });
        new.agent_version = "0.2.0".into();
        assert_eq!(
            changes(&old, &new),
            vec![
                "RAM: 8.0 GiB → 16.0 GiB".to_owned(),
                "monitor removed: DEL 0xA0B1 \"DELL P2419H\" s/n ABC".to_owned(),
                "monitor added: DEL 0xA0B1 \"DELL P2419H\" s/n XYZ".to_owned(),
            ]
        );
        // Battery wear and an agent upgrade alone are not hardware changes.
        let mut worn = old.clone();
        worn.battery = new.battery;
        worn.agent_version = "0.2.0".into();
        assert!(changes(&old, &worn).is_empty());
        let mut ssd = old.clone();
        ssd.disks[0].rotational = false;
        assert_eq!(
            changes(&old, &ssd),
            vec![
                "disk removed: sda 500 GB HDD".to_owned(),
                "disk added: sda 500 GB SSD".to_owned()
            ]
        );
    }
}
