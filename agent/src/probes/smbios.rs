//! A pure parser for the raw SMBIOS structure table (DMTF DSP0134), the firmware's
//! description of the machine: maker, model, serial, UUID, chassis type, BIOS date.
//!
//! Linux exposes the decoded fields under `/sys/class/dmi/id` ([`super::dmi`]); Windows
//! hands out the raw table (`GetSystemFirmwareTable('RSMB')`, the same data WMI's
//! `Win32_BIOS`, `Win32_ComputerSystemProduct` and `Win32_SystemEnclosure` are views
//! of). This module turns that table into the same [`Dmi`] with the same rules
//! (chassis table, BIOS date format, placeholder strings, Lenovo model names), so both
//! platforms report a machine identically. No I/O: tested here on Linux with built
//! tables.

use veille_proto::v1::ChassisClass;

use super::dmi::{Dmi, chassis_class, is_placeholder, iso_bios_date, model};

/// What the table holds that the agent uses; raw strings, before any cleaning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmbiosFacts {
    /// Type 0 (BIOS), string at 08h, `MM/DD/YYYY`.
    pub bios_date: String,
    /// Type 1 (System), strings at 04h–07h.
    pub manufacturer: String,
    pub product_name: String,
    pub product_version: String,
    pub serial: String,
    /// Type 1, bytes 08h–17h, lowercase; `None` when absent, unset (all 00 or all FF)
    /// or a known placeholder.
    pub uuid: Option<String>,
    /// Type 3 (Chassis), byte 05h with the lock bit masked off.
    pub chassis_type: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmbiosError {
    #[error("raw SMBIOS data truncated: {len} bytes, header says {declared} after 8")]
    Truncated { len: usize, declared: usize },
}

/// SMBIOS UUIDs that firmware ships unset or as a placeholder: thousands of boards share
/// each one, so using them as a device id would merge unrelated devices.
const JUNK_UUIDS: &[&str] = &[
    // AMI / Gigabyte / many whitebox boards' default.
    "03000200-0400-0500-0006-000700080009",
    "12345678-1234-5678-90ab-cddeefaabbcc",
    "4c4c4544-0000-2010-8020-80c04f202020",
];

/// Whether a lowercase, UUID-shaped SMBIOS UUID identifies nothing: one digit repeated
/// (all zeros, all F) or a known placeholder.
pub fn is_junk_uuid(uuid: &str) -> bool {
    let hex: Vec<char> = uuid.chars().filter(|c| *c != '-').collect();
    hex.windows(2).all(|w| w.first() == w.last()) || JUNK_UUIDS.contains(&uuid)
}

/// Parses Windows' `RawSMBIOSData` (what `GetSystemFirmwareTable('RSMB', 0, ..)`
/// returns): an 8-byte header (calling method, major, minor, DMI revision, u32 LE
/// length) and the structure table.
pub fn parse_raw_smbios_data(blob: &[u8]) -> Result<SmbiosFacts, SmbiosError> {
    let declared = blob
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(SmbiosError::Truncated {
            len: blob.len(),
            declared: 0,
        })?;
    let table = blob
        .get(8..8usize.saturating_add(declared))
        .ok_or(SmbiosError::Truncated {
            len: blob.len(),
            declared,
        })?;
    Ok(parse_table(table, (blob[1], blob[2])))
}

/// Walks the structure table (`version`: SMBIOS major, minor). The first structure of
/// each type wins; a truncated structure ends the walk with what was found so far.
pub fn parse_table(table: &[u8], version: (u8, u8)) -> SmbiosFacts {
    let mut facts = SmbiosFacts::default();
    let (mut seen_bios, mut seen_system, mut seen_chassis) = (false, false, false);
    let mut at = 0usize;
    while at + 4 <= table.len() {
        let kind = table[at];
        let len = usize::from(table[at + 1]);
        if len < 4 || at + len > table.len() {
            break;
        }
        let formatted = &table[at..at + len];
        // The string set: NUL-terminated strings, ended by an extra NUL (two NULs when
        // the structure has no strings).
        let strings_start = at + len;
        let mut end = strings_start;
        while end + 1 < table.len() && !(table[end] == 0 && table[end + 1] == 0) {
            end += 1;
        }
        let strings: Vec<&[u8]> = if end > strings_start {
            table[strings_start..end].split(|b| *b == 0).collect()
        } else {
            Vec::new()
        };
        let string = |offset: usize| -> String {
            let index = usize::from(formatted.get(offset).copied().unwrap_or(0));
            index
                .checked_sub(1)
                .and_then(|i| strings.get(i))
                .map(|s| String::from_utf8_lossy(s).trim().to_owned())
                .unwrap_or_default()
        };
        match kind {
            0 if !seen_bios => {
                seen_bios = true;
                facts.bios_date = string(0x08);
            }
            1 if !seen_system => {
                seen_system = true;
                facts.manufacturer = string(0x04);
                facts.product_name = string(0x05);
                facts.product_version = string(0x06);
                facts.serial = string(0x07);
                facts.uuid = formatted.get(0x08..0x18).and_then(|b| uuid(b, version));
            }
            3 if !seen_chassis => {
                seen_chassis = true;
                facts.chassis_type = formatted.get(0x05).map(|b| b & 0x7F);
            }
            127 => break,
            _ => {}
        }
        at = end + 2;
    }
    facts
}

/// The 16 UUID bytes as text. From SMBIOS 2.6 on, the first three fields are stored
/// little-endian (as Windows and Linux both display them); before, big-endian.
fn uuid(b: &[u8], version: (u8, u8)) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(b);
    if version >= (2, 6) {
        bytes[0..4].reverse();
        bytes[4..6].reverse();
        bytes[6..8].reverse();
    }
    let hex: String = bytes.iter().map(|x| format!("{x:02x}")).collect();
    let text = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    (!is_junk_uuid(&text)).then_some(text)
}

/// The inventory's DMI fields from the raw facts, by the same rules as Linux's
/// [`super::dmi::dmi`]; what is unusable is noted in `notes`.
pub fn to_dmi(facts: &SmbiosFacts, notes: &mut Vec<String>) -> Dmi {
    let mut clean = |name: &str, value: &str| -> String {
        if value.is_empty() {
            notes.push(format!("{name}: not in the SMBIOS table"));
            String::new()
        } else if is_placeholder(value) {
            notes.push(format!("{name}: firmware placeholder {value:?}"));
            String::new()
        } else {
            value.to_owned()
        }
    };
    let manufacturer = clean("manufacturer", &facts.manufacturer);
    let product_name = clean("model", &facts.product_name);
    let serial = clean("serial", &facts.serial);
    let bios_release_date = match clean("bios_release_date", &facts.bios_date) {
        raw if raw.is_empty() => raw,
        raw => iso_bios_date(&raw).unwrap_or_else(|| {
            notes.push(format!(
                "bios_release_date: {:?} is not MM/DD/YYYY",
                raw.chars().take(40).collect::<String>()
            ));
            String::new()
        }),
    };
    let chassis = match facts.chassis_type {
        Some(code) => {
            let class = chassis_class(code);
            if class == ChassisClass::Unknown {
                notes.push(format!("chassis: SMBIOS type {code} has no class"));
            }
            class
        }
        None => {
            notes.push("chassis: no type 3 structure in the SMBIOS table".into());
            ChassisClass::Unknown
        }
    };
    Dmi {
        manufacturer,
        model: model(&product_name, &facts.product_version),
        serial,
        chassis,
        chassis_code: facts.chassis_type,
        bios_release_date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One structure: header, formatted bytes after it, then its strings.
    fn structure(kind: u8, handle: u16, body: &[u8], strings: &[&str]) -> Vec<u8> {
        let len = u8::try_from(4 + body.len()).unwrap();
        let mut s = vec![kind, len];
        s.extend_from_slice(&handle.to_le_bytes());
        s.extend_from_slice(body);
        for text in strings {
            s.extend_from_slice(text.as_bytes());
            s.push(0);
        }
        if strings.is_empty() {
            s.push(0);
        }
        s.push(0);
        s
    }

    const UUID_BYTES: [u8; 16] = [
        0x44, 0x33, 0x22, 0x11, 0x66, 0x55, 0x88, 0x77, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
        0x00,
    ];

    /// A ThinkPad-like table: BIOS, system, an OEM structure, chassis, end.
    fn thinkpad() -> Vec<u8> {
        let mut t = Vec::new();
        // Type 0: vendor(1) version(2) start segment(2) release date(3 at 08h) ...
        t.extend(structure(
            0,
            0,
            &[1, 2, 0x00, 0xe0, 3, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0],
            &["LENOVO", "N1MET77W (1.62 )", "04/12/2019"],
        ));
        // Type 1: manufacturer(1) product(2) version(3) serial(4) uuid wake sku family
        let mut system = vec![1, 2, 3, 4];
        system.extend_from_slice(&UUID_BYTES);
        system.extend_from_slice(&[6, 5, 6]);
        t.extend(structure(
            1,
            1,
            &system,
            &[
                "LENOVO",
                "20HRCTO1WW",
                "ThinkPad X1 Carbon 5th",
                "PF0ABCDE",
                "LENOVO_MT_20HR",
                "ThinkPad X1 Carbon 5th",
            ],
        ));
        // An OEM structure without strings must be stepped over.
        t.extend(structure(0x85, 2, &[1, 2, 3], &[]));
        // Type 3: manufacturer(1) type(05h, lock bit set) version serial asset ...
        t.extend(structure(
            3,
            3,
            &[1, 0x80 | 10, 0, 2, 0],
            &["LENOVO", "PF0ABCDE"],
        ));
        t.extend(structure(127, 4, &[], &[]));
        t
    }

    #[test]
    fn a_full_table_gives_every_field() {
        let facts = parse_table(&thinkpad(), (3, 2));
        assert_eq!(
            facts,
            SmbiosFacts {
                bios_date: "04/12/2019".into(),
                manufacturer: "LENOVO".into(),
                product_name: "20HRCTO1WW".into(),
                product_version: "ThinkPad X1 Carbon 5th".into(),
                serial: "PF0ABCDE".into(),
                uuid: Some("11223344-5566-7788-99aa-bbccddeeff00".into()),
                chassis_type: Some(10),
            }
        );
        let mut notes = Vec::new();
        let dmi = to_dmi(&facts, &mut notes);
        assert_eq!(
            dmi,
            Dmi {
                manufacturer: "LENOVO".into(),
                model: "ThinkPad X1 Carbon 5th (20HRCTO1WW)".into(),
                serial: "PF0ABCDE".into(),
                chassis: ChassisClass::Laptop,
                chassis_code: Some(10),
                bios_release_date: "2019-04-12".into(),
            }
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn windows_raw_smbios_data_header_is_skipped() {
        let table = thinkpad();
        let mut blob = vec![0, 2, 5, 0];
        blob.extend_from_slice(&u32::try_from(table.len()).unwrap().to_le_bytes());
        blob.extend_from_slice(&table);
        // Before 2.6 the UUID is read big-endian, byte for byte.
        let facts = parse_raw_smbios_data(&blob).unwrap();
        assert_eq!(
            facts.uuid.as_deref(),
            Some("44332211-6655-8877-99aa-bbccddeeff00")
        );
        assert_eq!(facts.chassis_type, Some(10));
        blob.truncate(blob.len() - 1);
        assert_eq!(
            parse_raw_smbios_data(&blob),
            Err(SmbiosError::Truncated {
                len: blob.len(),
                declared: table.len()
            })
        );
        assert!(parse_raw_smbios_data(&[0, 3]).is_err());
    }

    #[test]
    fn placeholders_and_missing_structures_are_noted_not_reported() {
        let mut system = vec![1, 2, 0, 3];
        system.extend_from_slice(&[0xff; 16]);
        let mut t = structure(
            1,
            1,
            &system,
            &[
                "To be filled by O.E.M.",
                "System Product Name",
                "Default string",
            ],
        );
        t.extend(structure(0, 0, &[0, 0, 0, 0, 1], &["12/31/99"]));
        let facts = parse_table(&t, (3, 0));
        assert_eq!(facts.uuid, None, "all-FF UUID is unset");
        let mut notes = Vec::new();
        let dmi = to_dmi(&facts, &mut notes);
        assert_eq!(dmi.manufacturer, "");
        assert_eq!(dmi.serial, "");
        assert_eq!(dmi.chassis, ChassisClass::Unknown);
        assert_eq!(dmi.bios_release_date, "");
        let text = notes.join("\n");
        for expected in [
            "manufacturer: firmware placeholder",
            "serial: firmware placeholder",
            "chassis: no type 3",
            "\"12/31/99\" is not MM/DD/YYYY",
        ] {
            assert!(text.contains(expected), "{expected} missing in {text}");
        }
    }

    #[test]
    fn truncated_tables_end_the_walk_without_panicking() {
        let full = thinkpad();
        for cut in 0..full.len() {
            let _ = parse_table(&full[..cut], (3, 2));
        }
        // Cut inside the chassis structure: BIOS and system are still read.
        let cut = full.len() - 12;
        let facts = parse_table(&full[..cut], (3, 2));
        assert_eq!(facts.serial, "PF0ABCDE");
        assert_eq!(facts.bios_date, "04/12/2019");
        // A structure announcing a length below its header stops the walk.
        assert_eq!(
            parse_table(&[1, 2, 0, 0, 0, 0], (3, 0)),
            SmbiosFacts::default()
        );
    }

    #[test]
    fn junk_uuids() {
        assert!(is_junk_uuid("00000000-0000-0000-0000-000000000000"));
        assert!(is_junk_uuid("03000200-0400-0500-0006-000700080009"));
        assert!(!is_junk_uuid("11223344-5566-7788-99aa-bbccddeeff00"));
    }
}
