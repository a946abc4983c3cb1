//! A pure parser for the 128-byte base block of an EDID 1.3/1.4 (VESA E-EDID), the
//! identity a monitor hands to the graphics card: who made it, which model, its serial
//! number, when it was made and how big it is. Extension blocks (CTA-861 and others)
//! are ignored: nothing the inventory needs lives there.
//!
//! A blob whose checksum does not match is rejected, not half-trusted: a bad EDID
//! usually comes from a flaky cable or KVM switch, and its "serial number" would then
//! create a phantom monitor in the fleet inventory.

use veille_proto::v1::Monitor;

/// Length of the base block; extension blocks follow it in the same blob.
pub const EDID_BLOCK_LEN: usize = 128;

/// Every EDID starts with this fixed pattern.
const HEADER: [u8; 8] = [0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];

/// The four 18-byte descriptor slots of the base block.
const DESCRIPTOR_OFFSETS: [usize; 4] = [54, 72, 90, 108];
const DESCRIPTOR_LEN: usize = 18;
/// Display descriptor tags (byte 3 of a descriptor whose first three bytes are zero).
const TAG_SERIAL: u8 = 0xFF;
const TAG_NAME: u8 = 0xFC;

/// Serial numbers that mean "none": 0, and 0x01010101, the filler many panel makers
/// write when the real serial is in the 0xFF string descriptor (or nowhere).
const PLACEHOLDER_SERIALS: [u32; 2] = [0, 0x0101_0101];

/// What the base block says about the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edid {
    /// Three-letter PNP id ("DEL", "SAM", "GSM"); empty when the packed field holds a
    /// value outside A–Z.
    pub manufacturer: String,
    /// Manufacturer's product code (little-endian at bytes 10–11).
    pub product_code: u16,
    /// Numeric serial (little-endian at bytes 12–15); 0 when absent.
    pub serial_number: u32,
    /// Text of the serial string descriptor (tag 0xFF), trimmed; empty when absent.
    pub serial_text: String,
    /// Week of manufacture, 1–54; `None` when unspecified (0) or when the year is a
    /// model year (0xFF).
    pub week: Option<u8>,
    /// Year of manufacture (or model year, see [`Edid::is_model_year`]): byte 17 + 1990.
    pub year: u16,
    /// True when byte 16 is 0xFF: `year` is the model year, not the year of manufacture.
    pub is_model_year: bool,
    /// Maximum image size in cm; `None` when unknown (projectors write 0, and EDID 1.4
    /// stores an aspect ratio instead when only one of the two is 0).
    pub size_cm: Option<(u8, u8)>,
    /// Text of the monitor name descriptor (tag 0xFC), trimmed; empty when absent.
    pub name: String,
}

/// Why a blob is not a usable EDID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdidError {
    #[error("EDID truncated: {len} bytes, the base block needs {EDID_BLOCK_LEN}")]
    Truncated { len: usize },
    #[error("not an EDID: header is {found:02x?}, expected 00 ff ff ff ff ff ff 00")]
    BadHeader { found: [u8; 8] },
    #[error("EDID checksum mismatch: byte 127 is {actual:#04x}, expected {expected:#04x}")]
    BadChecksum { expected: u8, actual: u8 },
}

/// Parses the base block of `bytes` (a whole `/sys/class/drm/*/edid` file: trailing
/// extension blocks are allowed and ignored).
///
/// Errors: fewer than 128 bytes, a wrong header, or a base-block checksum that does not
/// make the 128 bytes sum to 0 mod 256.
pub fn parse_edid(bytes: &[u8]) -> Result<Edid, EdidError> {
    let block: &[u8; EDID_BLOCK_LEN] = bytes
        .first_chunk()
        .ok_or(EdidError::Truncated { len: bytes.len() })?;
    // From here on, every index is a constant below 128 into a `[u8; 128]`: an
    // out-of-range constant would be a compile error, so none of them can panic.
    let header: &[u8; 8] = block.first_chunk().unwrap_or(&[0; 8]);
    if *header != HEADER {
        return Err(EdidError::BadHeader { found: *header });
    }
    let sum_without_last = block
        .iter()
        .take(EDID_BLOCK_LEN - 1)
        .fold(0u8, |acc, b| acc.wrapping_add(*b));
    let expected = 0u8.wrapping_sub(sum_without_last);
    let actual = block[EDID_BLOCK_LEN - 1];
    if expected != actual {
        return Err(EdidError::BadChecksum { expected, actual });
    }

    let week_byte = block[16];
    let (width, height) = (block[21], block[22]);
    let mut serial_text = String::new();
    let mut name = String::new();
    for offset in DESCRIPTOR_OFFSETS {
        let Some(descriptor) = block.get(offset..offset + DESCRIPTOR_LEN) else {
            continue;
        };
        // A display descriptor starts with a zero pixel clock and a zero byte; a
        // detailed timing descriptor (non-zero clock) carries no text.
        let Some(([0, 0, 0, tag, _], text)) = descriptor.split_first_chunk::<5>() else {
            continue;
        };
        match *tag {
            TAG_SERIAL if serial_text.is_empty() => serial_text = descriptor_text(text),
            TAG_NAME if name.is_empty() => name = descriptor_text(text),
            _ => {}
        }
    }
    Ok(Edid {
        manufacturer: pnp_id(u16::from_be_bytes([block[8], block[9]])),
        product_code: u16::from_le_bytes([block[10], block[11]]),
        serial_number: u32::from_le_bytes([block[12], block[13], block[14], block[15]]),
        serial_text,
        week: match week_byte {
            0 | 0xFF => None,
            week => Some(week),
        },
        year: 1990 + u16::from(block[17]),
        is_model_year: week_byte == 0xFF,
        size_cm: (width != 0 && height != 0).then_some((width, height)),
        name,
    })
}

impl Edid {
    /// The serial to report: the string descriptor when present (it is what is printed
    /// on the label), else the numeric serial in decimal, else empty (0 and 0x01010101
    /// are fillers, not serials).
    pub fn serial(&self) -> String {
        if !self.serial_text.is_empty() {
            self.serial_text.clone()
        } else if PLACEHOLDER_SERIALS.contains(&self.serial_number) {
            String::new()
        } else {
            self.serial_number.to_string()
        }
    }

    /// The contract's view. `year_of_manufacture` carries the model year when that is
    /// all the EDID gives (the best age estimate there is); week and size are 0 when
    /// unknown.
    pub fn to_monitor(&self) -> Monitor {
        let (width_cm, height_cm) = self.size_cm.unwrap_or((0, 0));
        Monitor {
            manufacturer: self.manufacturer.clone(),
            product_code: u32::from(self.product_code),
            serial: self.serial(),
            year_of_manufacture: u32::from(self.year),
            week_of_manufacture: self.week.map_or(0, u32::from),
            width_cm: u32::from(width_cm),
            height_cm: u32::from(height_cm),
            name: self.name.clone(),
        }
    }
}

/// Three letters packed 5 bits each into a big-endian u16 (bit 15 reserved), 1 = 'A'.
fn pnp_id(packed: u16) -> String {
    let letters = [(packed >> 10) & 0x1F, (packed >> 5) & 0x1F, packed & 0x1F];
    if letters.iter().all(|l| (1..=26).contains(l)) {
        letters
            .iter()
            .filter_map(|l| char::from_u32(u32::from(b'A') + u32::from(*l) - 1))
            .collect()
    } else {
        String::new()
    }
}

/// Descriptor text: up to 13 bytes, ended by 0x0A and padded with spaces. Bytes outside
/// printable ASCII are dropped rather than trusted.
fn descriptor_text(text: &[u8]) -> String {
    text.iter()
        .take_while(|b| **b != 0x0A)
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| char::from(*b))
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real base blocks (plus extensions where present) from the public collection
    /// <https://github.com/linuxhw/EDID>, which stores `edid-decode` output with the hex
    /// dump on top.
    ///
    /// Source: linuxhw/EDID, `Digital/Dell/DEL200B/1AFCD3FC51C8` (Dell D3218HN, 2 blocks).
    const DELL_D3218HN: &str = "
        00 ff ff ff ff ff ff 00 10 ac 0b 20 01 01 01 01
        20 1c 01 03 80 46 27 78 2a cd e5 a0 59 4e a1 25
        0e 50 54 a5 4b 00 71 4f 81 80 a9 c0 d1 c0 01 01
        01 01 01 01 01 01 02 3a 80 18 71 38 2d 40 58 2c
        45 00 ba 89 21 00 00 1e 00 00 00 ff 00 58 39 52
        35 4b 38 38 36 34 4d 31 45 0a 00 00 00 fc 00 44
        33 32 31 38 48 4e 0a 20 20 20 20 20 00 00 00 fd
        00 38 4c 1e 53 11 00 0a 20 20 20 20 20 20 01 ce
        02 03 1a b1 4f 90 05 04 03 02 07 06 1f 14 13 12
        11 16 15 01 65 03 0c 00 10 00 02 3a 80 18 71 38
        2d 40 58 2c 45 00 ba 89 21 00 00 1e 01 1d 80 18
        71 1c 16 20 58 2c 25 00 ba 89 21 00 00 9e 01 1d
        00 72 51 d0 1e 20 6e 28 55 00 ba 89 21 00 00 1e
        02 3a 80 d0 72 38 2d 40 10 2c 45 80 ba 89 21 00
        00 1e 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 42";

    /// Source: linuxhw/EDID, `Digital/Samsung/SAM00E5/23C6C1DE4956` (Samsung SyncMaster,
    /// 1 block).
    const SAMSUNG_SYNCMASTER: &str = "
        00 ff ff ff ff ff ff 00 4c 2d e5 00 37 31 53 44
        29 0e 01 03 80 22 1b 78 2a 6f 8b a2 5a 4d 94 24
        1a 51 56 bf ef 00 81 80 01 01 01 01 01 01 01 01
        01 01 01 01 01 01 30 2a 00 98 51 00 2a 40 30 70
        13 00 52 0e 11 00 00 1e 00 00 00 fd 00 38 4b 1e
        51 0e 00 0a 20 20 20 20 20 20 00 00 00 fc 00 53
        79 6e 63 4d 61 73 74 65 72 0a 20 20 00 00 00 ff
        00 48 4d 45 58 41 30 30 30 33 37 0a 20 20 00 db";

    /// Source: linuxhw/EDID, `Digital/Goldstar/GSM0001/0381DC198A8B` (LG TV, base block
    /// only; no serial string descriptor, filler numeric serial).
    const LG_TV: &str = "
        00 ff ff ff ff ff ff 00 1e 6d 01 00 01 01 01 01
        01 15 01 03 80 10 09 78 0a ee 91 a3 54 4c 99 26
        0f 50 54 a1 08 00 81 c0 61 40 45 40 31 40 01 01
        01 01 01 01 01 01 1b 21 50 a0 51 00 1e 30 48 88
        35 00 a0 5a 00 00 00 1c 01 1d 00 72 51 d0 1e 20
        6e 28 55 00 a0 5a 00 00 00 1e 00 00 00 fd 00 3a
        3e 1f 46 10 00 0a 20 20 20 20 20 20 00 00 00 fc
        00 4c 47 20 54 56 0a 20 20 20 20 20 20 20 01 b4";

    pub(crate) fn hex(dump: &str) -> Vec<u8> {
        dump.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn dell_with_extension_block() {
        let bytes = hex(DELL_D3218HN);
        assert_eq!(bytes.len(), 256);
        let edid = parse_edid(&bytes).unwrap();
        assert_eq!(
            edid,
            Edid {
                manufacturer: "DEL".into(),
                product_code: 0x200B,
                serial_number: 0x0101_0101,
                serial_text: "X9R5K8864M1E".into(),
                week: Some(32),
                year: 2018,
                is_model_year: false,
                size_cm: Some((70, 39)),
                name: "D3218HN".into(),
            }
        );
        assert_eq!(
            edid.to_monitor(),
            Monitor {
                manufacturer: "DEL".into(),
                product_code: 8203,
                serial: "X9R5K8864M1E".into(),
                year_of_manufacture: 2018,
                week_of_manufacture: 32,
                width_cm: 70,
                height_cm: 39,
                name: "D3218HN".into(),
            }
        );
    }

    #[test]
    fn samsung_prefers_the_serial_string() {
        let edid = parse_edid(&hex(SAMSUNG_SYNCMASTER)).unwrap();
        assert_eq!(edid.manufacturer, "SAM");
        assert_eq!(edid.product_code, 229);
        assert_eq!(edid.serial_number, 0x4453_3137);
        assert_eq!(edid.serial(), "HMEXA00037");
        assert_eq!((edid.week, edid.year), (Some(41), 2004));
        assert_eq!(edid.size_cm, Some((34, 27)));
        assert_eq!(edid.name, "SyncMaster");
    }

    #[test]
    fn lg_without_serial_string_has_no_serial() {
        let edid = parse_edid(&hex(LG_TV)).unwrap();
        assert_eq!(edid.manufacturer, "GSM");
        assert_eq!(edid.product_code, 1);
        assert_eq!(edid.serial_text, "");
        assert_eq!(edid.serial(), "", "0x01010101 is a filler");
        assert_eq!((edid.week, edid.year), (Some(1), 2011));
        assert_eq!(edid.size_cm, Some((16, 9)));
        assert_eq!(edid.name, "LG TV");
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut bytes = hex(SAMSUNG_SYNCMASTER);
        bytes[20] ^= 0x01;
        // 0x80 -> 0x81 adds one to the sum, so the expected checksum drops by one.
        assert_eq!(
            parse_edid(&bytes),
            Err(EdidError::BadChecksum {
                expected: 0xda,
                actual: 0xdb,
            })
        );
        let message = parse_edid(&bytes).unwrap_err().to_string();
        assert!(
            message.contains("0xda") && message.contains("0xdb"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_extension_block_does_not_matter() {
        let mut bytes = hex(DELL_D3218HN);
        bytes[200] ^= 0xFF;
        assert_eq!(parse_edid(&bytes).unwrap().name, "D3218HN");
    }

    #[test]
    fn truncated_input_is_rejected() {
        let bytes = hex(SAMSUNG_SYNCMASTER);
        for len in [0, 1, 8, 127] {
            assert_eq!(
                parse_edid(&bytes[..len]),
                Err(EdidError::Truncated { len }),
                "{len}"
            );
        }
    }

    #[test]
    fn a_bad_header_is_rejected() {
        let mut bytes = hex(SAMSUNG_SYNCMASTER);
        bytes[0] = 0x01;
        assert!(matches!(
            parse_edid(&bytes),
            Err(EdidError::BadHeader { found }) if found[0] == 0x01
        ));
        assert!(matches!(
            parse_edid(&[0u8; 128]),
            Err(EdidError::BadHeader { .. })
        ));
    }

    /// Sets byte `index` and fixes the checksum, so the change is the only difference.
    fn patched(mut bytes: Vec<u8>, index: usize, value: u8) -> Vec<u8> {
        bytes[index] = value;
        let sum = bytes[..127].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        bytes[127] = 0u8.wrapping_sub(sum);
        bytes.truncate(128);
        bytes
    }

    #[test]
    fn model_year_and_unknown_size() {
        let bytes = patched(hex(LG_TV), 16, 0xFF);
        let bytes = patched(bytes, 21, 0);
        let edid = parse_edid(&bytes).unwrap();
        assert_eq!(
            (edid.week, edid.year, edid.is_model_year),
            (None, 2011, true)
        );
        assert_eq!(edid.size_cm, None);
        let monitor = edid.to_monitor();
        assert_eq!(
            (
                monitor.week_of_manufacture,
                monitor.width_cm,
                monitor.height_cm
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn invalid_pnp_letters_give_an_empty_maker() {
        assert_eq!(pnp_id(0x10AC), "DEL");
        assert_eq!(pnp_id(0), "");
        assert_eq!(pnp_id(0b0_11011_00001_00001), "", "27 is not a letter");
    }
}
