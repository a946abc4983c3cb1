//! What the firmware says about the machine (SMBIOS, exposed by Linux under
//! `/sys/class/dmi/id`): maker, model, serial, chassis and BIOS date.
//!
//! Many of these strings are left at the board vendor's template values ("To be filled
//! by O.E.M.", "Default string"): those are reported as empty, with a note, rather than
//! sent as if they identified the machine.

use veille_proto::v1::ChassisClass;

#[cfg(target_os = "linux")]
use super::Host;
#[cfg(target_os = "linux")]
use super::inventory::{Notes, read_trimmed};

#[cfg(target_os = "linux")]
const DMI_DIR: &str = "sys/class/dmi/id";

/// The DMI part of the inventory; empty strings where the firmware gives nothing usable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmi {
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub chassis: ChassisClass,
    /// The SMBIOS chassis type code behind `chassis` (lock bit cleared), when the
    /// firmware gives one: the collector's class rules tell a tower from a small form
    /// factor or a mini PC with it, which the class alone cannot.
    pub chassis_code: Option<u8>,
    /// `YYYY-MM-DD` or empty.
    pub bios_release_date: String,
}

/// Reads the DMI fields, noting each one it cannot use in `notes`.
///
/// # Platform-specific behaviour
///
/// Linux: `/sys/class/dmi/id/*`. `product_serial` is readable by root only (a
/// permission error is noted as "root only", not as a failure). Machines without
/// SMBIOS (most ARM boards, some VMs and containers) have no `dmi` directory at all:
/// that is one note, not one per field.
#[cfg(target_os = "linux")]
pub fn dmi(host: &Host, notes: &mut Notes) -> Dmi {
    if !host.path(DMI_DIR).is_dir() {
        notes.push(format!(
            "dmi: {} absent (no SMBIOS on this machine): manufacturer, model, serial, \
             chassis and BIOS date unknown",
            host.path(DMI_DIR).display()
        ));
        return Dmi::default();
    }
    let manufacturer = field(host, notes, "manufacturer", "sys_vendor").unwrap_or_default();
    let product_name = field(host, notes, "model", "product_name").unwrap_or_default();
    // product_version is optional context: its absence is not worth a note.
    let product_version = host
        .read_to_string(&format!("{DMI_DIR}/product_version"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let serial = field(host, notes, "serial", "product_serial").unwrap_or_default();
    let chassis_code =
        match field(host, notes, "chassis", "chassis_type").map(|code| code.parse::<u8>()) {
            Some(Ok(code)) => Some(code & 0x7F),
            Some(Err(_)) => {
                notes.push("chassis: chassis_type is not a number".into());
                None
            }
            None => None,
        };
    let chassis = chassis_code.map_or(ChassisClass::Unknown, |code| {
        let class = chassis_class(code);
        if class == ChassisClass::Unknown {
            notes.push(format!("chassis: SMBIOS type {code} has no class"));
        }
        class
    });
    let bios_release_date = match field(host, notes, "bios_release_date", "bios_date") {
        Some(raw) => iso_bios_date(&raw).unwrap_or_else(|| {
            notes.push(format!(
                "bios_release_date: {:?} is not MM/DD/YYYY",
                raw.chars().take(40).collect::<String>()
            ));
            String::new()
        }),
        None => String::new(),
    };
    Dmi {
        manufacturer,
        model: model(&product_name, &product_version),
        serial,
        chassis,
        chassis_code,
        bios_release_date,
    }
}

/// One DMI string, or `None` (with a note) when unreadable or a placeholder.
#[cfg(target_os = "linux")]
fn field(host: &Host, notes: &mut Notes, name: &str, file: &str) -> Option<String> {
    let value = read_trimmed(host, &format!("{DMI_DIR}/{file}"), name, notes)?;
    if is_placeholder(&value) {
        notes.push(format!("{name}: firmware placeholder {value:?}"));
        return None;
    }
    Some(value)
}

/// SMBIOS "System Enclosure or Chassis Type" (type 3, byte 05h, bit 7 = lock flag
/// masked off by the kernel) → [`ChassisClass`]. Codes per DMTF DSP0134:
///
/// | code | SMBIOS name                        | class      |
/// |------|------------------------------------|------------|
/// | 3    | Desktop                            | Desktop    |
/// | 4    | Low Profile Desktop                | Desktop    |
/// | 5    | Pizza Box                          | Desktop    |
/// | 6    | Mini Tower                         | Desktop    |
/// | 7    | Tower                              | Desktop    |
/// | 15   | Space-saving                       | Desktop    |
/// | 16   | Lunch Box                          | Desktop    |
/// | 24   | Sealed-case PC                     | Desktop    |
/// | 8    | Portable                           | Laptop     |
/// | 9    | Laptop                             | Laptop     |
/// | 10   | Notebook                           | Laptop     |
/// | 14   | Sub Notebook                       | Laptop     |
/// | 31   | Convertible                        | Laptop     |
/// | 32   | Detachable                         | Laptop     |
/// | 13   | All in One                         | AllInOne   |
/// | 17   | Main Server Chassis                | Server     |
/// | 23   | Rack Mount Chassis                 | Server     |
/// | 28   | Blade                              | Server     |
/// | 29   | Blade Enclosure                    | Server     |
/// | 30   | Tablet                             | Tablet     |
/// | 35   | Mini PC                            | MiniPc     |
/// | 36   | Stick PC                           | MiniPc     |
/// | else | Other (1), Unknown (2), Hand Held (11), Docking Station (12), expansion and sub-chassis (18–22), multi-system (25), CompactPCI (26), AdvancedTCA (27), IoT Gateway (33), Embedded PC (34), later codes | Unknown |
///
/// Thin clients and workstations have no SMBIOS code of their own (they report
/// Desktop or Tower); telling them apart needs the model, which is the collector's job.
pub fn chassis_class(code: u8) -> ChassisClass {
    match code & 0x7F {
        3..=7 | 15 | 16 | 24 => ChassisClass::Desktop,
        8..=10 | 14 | 31 | 32 => ChassisClass::Laptop,
        13 => ChassisClass::AllInOne,
        17 | 23 | 28 | 29 => ChassisClass::Server,
        30 => ChassisClass::Tablet,
        35 | 36 => ChassisClass::MiniPc,
        _ => ChassisClass::Unknown,
    }
}

/// `MM/DD/YYYY` (the only format SMBIOS allows from 2.3 on) → `YYYY-MM-DD`; `None` for
/// anything else, including the two-digit years of older firmware and impossible
/// months or days.
pub fn iso_bios_date(raw: &str) -> Option<String> {
    let mut parts = raw.trim().split('/');
    let (month, day, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || month.len() != 2
        || day.len() != 2
        || year.len() != 4
        || ![month, day, year]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let (m, d) = (month.parse::<u8>().ok()?, day.parse::<u8>().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(format!("{year}-{month}-{day}"))
}

/// The model as a person would name it.
///
/// Most makers put it in `product_name`. Lenovo puts the machine type there
/// ("20HRCTO1WW") and the marketing name in `product_version` ("ThinkPad X1 Carbon
/// 5th"); others leave a revision or a placeholder in `product_version`. Rule: the
/// version is meaningful when it is not a placeholder, contains a letter and a space
/// (a name, not a revision code like "1.0" or "SBKPF") and is not already part of the
/// name; then the model is `"{version} ({name})"`, else it is `product_name` alone.
pub fn model(product_name: &str, product_version: &str) -> String {
    let version = product_version.trim();
    let meaningful = !is_placeholder(version)
        && version.chars().any(char::is_alphabetic)
        && version.contains(' ')
        && !product_name.contains(version);
    match (product_name.is_empty(), meaningful) {
        (_, false) => product_name.to_owned(),
        (true, true) => version.to_owned(),
        (false, true) => format!("{version} ({product_name})"),
    }
}

/// Template values firmware vendors leave in DMI strings (compared case-insensitively).
const PLACEHOLDERS: &[&str] = &[
    "",
    "0",
    "none",
    "n/a",
    "na",
    "oem",
    "o.e.m.",
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "not specified",
    "not applicable",
    "not available",
    "unknown",
    "invalid",
    "system manufacturer",
    "system product name",
    "system version",
    "system serial number",
    "0123456789",
    "123456789",
    "1234567890",
    "type1productconfigid",
];

/// Whether `value` is a firmware template value rather than real data.
pub fn is_placeholder(value: &str) -> bool {
    let value = value.trim();
    PLACEHOLDERS.iter().any(|p| value.eq_ignore_ascii_case(p))
        || value.bytes().all(|b| b == b'0' || b == b' ' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_table() {
        use ChassisClass::*;
        let expected = [
            (1, Unknown),
            (2, Unknown),
            (3, Desktop),
            (4, Desktop),
            (5, Desktop),
            (6, Desktop),
            (7, Desktop),
            (8, Laptop),
            (9, Laptop),
            (10, Laptop),
            (11, Unknown),
            (12, Unknown),
            (13, AllInOne),
            (14, Laptop),
            (15, Desktop),
            (16, Desktop),
            (17, Server),
            (18, Unknown),
            (22, Unknown),
            (23, Server),
            (24, Desktop),
            (25, Unknown),
            (28, Server),
            (29, Server),
            (30, Tablet),
            (31, Laptop),
            (32, Laptop),
            (33, Unknown),
            (34, Unknown),
            (35, MiniPc),
            (36, MiniPc),
            (37, Unknown),
            (0, Unknown),
            (0x80 | 10, Laptop),
        ];
        for (code, class) in expected {
            assert_eq!(chassis_class(code), class, "code {code}");
        }
    }

    #[test]
    fn bios_dates() {
        assert_eq!(iso_bios_date("11/23/2021").as_deref(), Some("2021-11-23"));
        assert_eq!(
            iso_bios_date(" 01/02/2009\n").as_deref(),
            Some("2009-01-02")
        );
        for bad in [
            "",
            "2021-11-23",
            "11/23/21",
            "13/01/2020",
            "00/10/2020",
            "01/32/2020",
            "1/2/2020",
            "ab/cd/efgh",
            "01/02/2020/1",
            "01/02/+202",
            "１1/23/2021",
        ] {
            assert_eq!(iso_bios_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn model_uses_lenovo_style_versions_only() {
        assert_eq!(
            model("20HRCTO1WW", "ThinkPad X1 Carbon 5th"),
            "ThinkPad X1 Carbon 5th (20HRCTO1WW)"
        );
        assert_eq!(model("OptiPlex 7050", ""), "OptiPlex 7050");
        assert_eq!(model("HP EliteBook 840 G5", "SBKPF"), "HP EliteBook 840 G5");
        assert_eq!(model("Latitude 5490", "1.0"), "Latitude 5490");
        assert_eq!(model("X570 AORUS", "System Version"), "X570 AORUS");
        assert_eq!(model("Surface Pro", "Surface Pro"), "Surface Pro");
        assert_eq!(model("", "ThinkPad T14 Gen 1"), "ThinkPad T14 Gen 1");
    }

    #[test]
    fn placeholders() {
        for p in [
            "To be filled by O.E.M.",
            "Default string",
            "0000000",
            " ",
            "None",
        ] {
            assert!(is_placeholder(p), "{p:?}");
        }
        for real in ["Dell Inc.", "PF1ABCDE", "LENOVO"] {
            assert!(!is_placeholder(real), "{real:?}");
        }
    }
}
