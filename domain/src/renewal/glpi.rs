//! GLPI computer exports: parse the CSV of GLPI's search list ("Export → CSV") and
//! match its rows to the devices the collector knows.
//!
//! Parsing is all or nothing: the first bad line stops it with an error naming the line,
//! the column and the value, so an import is never half-applied. Matching is a separate
//! pure step ([`match_rows`]) whose summary the caller shows before applying anything.
//!
//! # Accepted files
//! - UTF-8, with or without a BOM (GLPI writes one). Other encodings are refused with
//!   the line where the invalid bytes are.
//! - Separator `;` (GLPI's default) or `,`, detected on the header line: whichever
//!   occurs more often outside quotes. Fields may be quoted (`"…"`, `""` for a quote)
//!   and may then hold separators and line breaks. A trailing separator at the end of
//!   every line (older GLPI versions write one) is accepted. Blank lines are skipped.
//! - Line numbers are physical lines of the file, 1 being the header; a record that
//!   spans lines is numbered by its first line.
//!
//! # Accepted columns (case-insensitive, `'` or `’`)
//! | field | French (GLPI `fr_FR`) | English (GLPI `en_GB`) |
//! |---|---|---|
//! | name | Nom | Name |
//! | serial | Numéro de série | Serial number |
//! | inventory number | Numéro d'inventaire | Inventory number |
//! | location | Lieu | Location |
//! | purchase date | Date d'achat | Date of purchase, Purchase date |
//! | delivery date | Date de livraison | Delivery date |
//! | startup date | Date de mise en service | Startup date |
//! | UUID | UUID | UUID |
//! | manufacturer | Fabricant | Manufacturer |
//! | model | Modèle | Model |
//! | lifespan | Durée de vie, Durée de vie (années), Durée de vie (ans) | Lifespan, Lifespan (years), Life expectancy, Life expectancy (years) |
//!
//! GLPI has no lifespan field: the lifespan column is a user-made one (e.g. with the
//! *Fields* plugin). Infocom's "Durée d'amortissement" / "Amortization duration" is
//! deliberately not read as a lifespan: accounting depreciation (3–5 years) is exactly
//! the short cycle the renewal horizon exists to question. Other columns (ID, Entité,
//! Statut, …) are ignored and listed in [`GlpiExport::ignored_columns`]. At least one
//! of name, serial and UUID is required.
//!
//! # Prefixed columns
//! GLPI names a column of a linked tab or item "group - field": "Informations
//! financières et administratives - Date d'achat" (the Infocom tab), "Moniteur -
//! Numéro de série", "Système d'exploitation - Nom", a *Fields* plugin container's
//! "Cycle de vie - Durée de vie (années)". A prefixed column whose last part (after the
//! last " - ") is a purchase, delivery or startup date or a lifespan is read as that
//! field, whatever the prefix: these only ever describe the computer's own acquisition,
//! and the prefixes vary by language, GLPI version and plugin. The other fields (name,
//! serial, inventory number, location, UUID, manufacturer, model) are never taken from
//! a prefixed column: there they belong to the linked item (the monitor's serial, the
//! operating system's name), not to the computer. An unprefixed column wins over a
//! prefixed one for the same field; two prefixed ones for one field are refused.
//!
//! # Accepted values
//! - Dates: `YYYY-MM-DD`, `DD/MM/YYYY`, `DD-MM-YYYY`, each optionally followed by a time
//!   (`HH:MM` or `HH:MM:SS`, ignored); empty and `0000-00-00` (older GLPI's empty date)
//!   mean no date. GLPI's `MM-DD-YYYY` user preference cannot be told apart from
//!   `DD-MM-YYYY`: export with the `YYYY-MM-DD` or `DD-MM-YYYY` preference.
//! - Lifespan: years, whole or decimal (`5`, `5.5`, `5,5`), optionally followed by
//!   `an`, `ans`, `année(s)`, `y`, `year(s)`; 1–30 years; kept in months.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;

use crate::renewal::horizon::Date;

/// One computer of the export.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlpiRow {
    /// Line of the file where this record starts (the header is line 1).
    pub line: usize,
    pub name: Option<String>,
    pub serial: Option<String>,
    pub inventory_number: Option<String>,
    pub location: Option<String>,
    pub purchase_date: Option<Date>,
    pub delivery_date: Option<Date>,
    pub startup_date: Option<Date>,
    pub uuid: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// A user-set lifespan, in months.
    pub lifespan_months: Option<u32>,
}

impl GlpiRow {
    /// The date the device was acquired: purchase, else delivery, else startup (each
    /// later than the previous, so the first known one is the closest to the real age).
    pub fn acquisition_date(&self) -> Option<Date> {
        self.purchase_date
            .or(self.delivery_date)
            .or(self.startup_date)
    }
}

/// A parsed export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlpiExport {
    /// The separator found on the header line.
    pub separator: char,
    /// Header names that are not read, in file order (for the import summary).
    pub ignored_columns: Vec<String>,
    pub rows: Vec<GlpiRow>,
}

/// Why an export was refused. Nothing is returned with an error.
#[derive(Debug, thiserror::Error)]
pub enum GlpiError {
    #[error("cannot read the GLPI export: {0}")]
    Io(#[from] std::io::Error),
    #[error("the GLPI export is empty (no header line)")]
    Empty,
    #[error("line {line}: not valid UTF-8 (export the CSV from GLPI as UTF-8)")]
    Encoding { line: usize },
    #[error("line {line}: a quoted field is never closed")]
    UnterminatedQuote { line: usize },
    #[error("line {line}: text after the closing quote of a field")]
    TextAfterQuote { line: usize },
    #[error(
        "the header has none of the columns that identify a computer (name, serial number, UUID); found: {found}"
    )]
    NoIdentifyingColumn { found: String },
    #[error("columns \"{first}\" and \"{second}\" both give the {field}")]
    DuplicateColumn {
        field: &'static str,
        first: String,
        second: String,
    },
    #[error("line {line}: {found} fields, the header has {expected}")]
    FieldCount {
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("line {line}, column \"{column}\": \"{value}\" {reason}")]
    BadValue {
        line: usize,
        column: String,
        value: String,
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Field {
    Name,
    Serial,
    InventoryNumber,
    Location,
    PurchaseDate,
    DeliveryDate,
    StartupDate,
    Uuid,
    Manufacturer,
    Model,
    Lifespan,
}

impl Field {
    fn describe(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Serial => "serial number",
            Field::InventoryNumber => "inventory number",
            Field::Location => "location",
            Field::PurchaseDate => "purchase date",
            Field::DeliveryDate => "delivery date",
            Field::StartupDate => "startup date",
            Field::Uuid => "UUID",
            Field::Manufacturer => "manufacturer",
            Field::Model => "model",
            Field::Lifespan => "lifespan",
        }
    }

    /// GLPI's French and English labels (see the module documentation).
    fn from_header(header: &str) -> Option<Field> {
        let h = header
            .trim()
            .replace('’', "'")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        Some(match h.as_str() {
            "nom" | "name" => Field::Name,
            "numéro de série" | "numero de serie" | "serial number" => Field::Serial,
            "numéro d'inventaire" | "numero d'inventaire" | "inventory number" => {
                Field::InventoryNumber
            }
            "lieu" | "location" => Field::Location,
            "date d'achat" | "date of purchase" | "purchase date" => Field::PurchaseDate,
            "date de livraison" | "delivery date" => Field::DeliveryDate,
            "date de mise en service" | "startup date" => Field::StartupDate,
            "uuid" => Field::Uuid,
            "fabricant" | "manufacturer" => Field::Manufacturer,
            "modèle" | "modele" | "model" => Field::Model,
            "durée de vie"
            | "durée de vie (années)"
            | "durée de vie (ans)"
            | "lifespan"
            | "lifespan (years)"
            | "life expectancy"
            | "life expectancy (years)" => Field::Lifespan,
            _ => return None,
        })
    }
}

impl Field {
    /// The field of a "group - field" column, for the fields that may come prefixed
    /// (see "Prefixed columns" in the module documentation).
    fn from_prefixed_header(header: &str) -> Option<Field> {
        let normalised = header.replace(['–', '—'], "-");
        let (_, last) = normalised.rsplit_once(" - ")?;
        Field::from_header(last).filter(|f| {
            matches!(
                f,
                Field::PurchaseDate | Field::DeliveryDate | Field::StartupDate | Field::Lifespan
            )
        })
    }
}

/// Parses an export from a reader (the whole file is read first: nothing is returned
/// unless every line is good).
pub fn parse_reader(mut reader: impl Read) -> Result<GlpiExport, GlpiError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    parse(&bytes)
}

/// Parses an export held in memory. Deterministic: the same bytes give the same rows.
pub fn parse(bytes: &[u8]) -> Result<GlpiExport, GlpiError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let separator = detect_separator(bytes);
    let mut records = Records {
        bytes,
        pos: 0,
        line: 1,
        sep: separator,
    };

    let (_, header) = loop {
        match records.next_record()? {
            None => return Err(GlpiError::Empty),
            Some((_, fields)) if is_blank(&fields) => continue,
            Some(rec) => break rec,
        }
    };
    let header = header_strings(&header, 1)?;
    // Trailing empty header cells (a trailing separator) are not columns.
    let width = header
        .iter()
        .rposition(|h| !h.trim().is_empty())
        .map_or(0, |i| i + 1);

    let mut columns: BTreeMap<usize, Field> = BTreeMap::new();
    let mut seen: HashMap<Field, usize> = HashMap::new();
    let mut ignored: BTreeMap<usize, String> = BTreeMap::new();
    let mut prefixed = Vec::new();
    let duplicate = |field: Field, first: usize, second: usize| GlpiError::DuplicateColumn {
        field: field.describe(),
        first: header[first].trim().to_owned(),
        second: header[second].trim().to_owned(),
    };
    for (i, h) in header.iter().enumerate().take(width) {
        match Field::from_header(h) {
            Some(field) => {
                if let Some(&first) = seen.get(&field) {
                    return Err(duplicate(field, first, i));
                }
                seen.insert(field, i);
                columns.insert(i, field);
            }
            None => match Field::from_prefixed_header(h) {
                Some(field) => prefixed.push((i, field)),
                None => {
                    ignored.insert(i, h.trim().to_owned());
                }
            },
        }
    }
    // Unprefixed columns first: a prefixed one only fills a field they left empty.
    let exact: Vec<Field> = seen.keys().copied().collect();
    for (i, field) in prefixed {
        if exact.contains(&field) {
            ignored.insert(i, header[i].trim().to_owned());
        } else if let Some(&first) = seen.get(&field) {
            return Err(duplicate(field, first, i));
        } else {
            seen.insert(field, i);
            columns.insert(i, field);
        }
    }
    let ignored_columns: Vec<String> = ignored.into_values().collect();
    if ![Field::Name, Field::Serial, Field::Uuid]
        .iter()
        .any(|f| seen.contains_key(f))
    {
        let found: Vec<_> = header
            .iter()
            .take(width)
            .map(|h| format!("\"{}\"", h.trim()))
            .collect();
        return Err(GlpiError::NoIdentifyingColumn {
            found: found.join(", "),
        });
    }

    let mut rows = Vec::new();
    while let Some((line, fields)) = records.next_record()? {
        if is_blank(&fields) {
            continue;
        }
        let extra_non_empty = fields
            .iter()
            .skip(width)
            .any(|f| !f.iter().all(u8::is_ascii_whitespace));
        if fields.len() < width || extra_non_empty {
            return Err(GlpiError::FieldCount {
                line,
                found: fields.len(),
                expected: width,
            });
        }
        let mut row = GlpiRow {
            line,
            ..GlpiRow::default()
        };
        for (&i, &field) in &columns {
            let value =
                std::str::from_utf8(&fields[i]).map_err(|_| GlpiError::Encoding { line })?;
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let bad = |reason| GlpiError::BadValue {
                line,
                column: header[i].trim().to_owned(),
                value: value.to_owned(),
                reason,
            };
            let text = || Some(value.to_owned());
            match field {
                Field::Name => row.name = text(),
                Field::Serial => row.serial = text(),
                Field::InventoryNumber => row.inventory_number = text(),
                Field::Location => row.location = text(),
                Field::Uuid => row.uuid = text(),
                Field::Manufacturer => row.manufacturer = text(),
                Field::Model => row.model = text(),
                Field::PurchaseDate => {
                    row.purchase_date = parse_date(value).ok_or_else(|| bad("is not a date"))?
                }
                Field::DeliveryDate => {
                    row.delivery_date = parse_date(value).ok_or_else(|| bad("is not a date"))?
                }
                Field::StartupDate => {
                    row.startup_date = parse_date(value).ok_or_else(|| bad("is not a date"))?
                }
                Field::Lifespan => {
                    row.lifespan_months = Some(
                        parse_lifespan_months(value)
                            .ok_or_else(|| bad("is not a lifespan in years (1–30)"))?,
                    )
                }
            }
        }
        rows.push(row);
    }
    Ok(GlpiExport {
        separator: char::from(separator),
        ignored_columns,
        rows,
    })
}

fn is_blank(fields: &[Vec<u8>]) -> bool {
    fields.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

fn header_strings(fields: &[Vec<u8>], line: usize) -> Result<Vec<String>, GlpiError> {
    fields
        .iter()
        .map(|f| {
            std::str::from_utf8(f)
                .map(str::to_owned)
                .map_err(|_| GlpiError::Encoding { line })
        })
        .collect()
}

/// `;` or `,`, whichever appears more often outside quotes on the first line; `;`
/// (GLPI's default) on a tie.
fn detect_separator(bytes: &[u8]) -> u8 {
    let (mut semi, mut comma, mut quoted) = (0usize, 0usize, false);
    for &b in bytes {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            b';' if !quoted => semi += 1,
            b',' if !quoted => comma += 1,
            _ => {}
        }
    }
    if comma > semi { b',' } else { b';' }
}

/// A record: the line it starts on and its raw fields.
type Record = (usize, Vec<Vec<u8>>);

/// An RFC 4180 record reader over bytes, counting physical lines.
struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    sep: u8,
}

impl Records<'_> {
    /// The next record and the line it starts on; `None` at the end of the input.
    fn next_record(&mut self) -> Result<Option<Record>, GlpiError> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let start_line = self.line;
        let mut fields = Vec::new();
        let mut field = Vec::new();
        loop {
            // At the start of a field.
            if self.bytes.get(self.pos) == Some(&b'"') {
                self.pos += 1;
                loop {
                    match self.bytes.get(self.pos) {
                        None => return Err(GlpiError::UnterminatedQuote { line: start_line }),
                        Some(b'"') if self.bytes.get(self.pos + 1) == Some(&b'"') => {
                            field.push(b'"');
                            self.pos += 2;
                        }
                        Some(b'"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(&b) => {
                            if b == b'\n' {
                                self.line += 1;
                            }
                            field.push(b);
                            self.pos += 1;
                        }
                    }
                }
                // Only spaces may follow a closing quote before the separator.
                while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t')) {
                    self.pos += 1;
                }
                match self.bytes.get(self.pos) {
                    None | Some(b'\n' | b'\r') => {}
                    Some(&b) if b == self.sep => {}
                    Some(_) => return Err(GlpiError::TextAfterQuote { line: self.line }),
                }
            } else {
                while let Some(&b) = self.bytes.get(self.pos) {
                    if b == self.sep || b == b'\n' || b == b'\r' {
                        break;
                    }
                    field.push(b);
                    self.pos += 1;
                }
            }
            fields.push(std::mem::take(&mut field));
            match self.bytes.get(self.pos) {
                Some(&b) if b == self.sep => self.pos += 1,
                Some(b'\r') => {
                    self.pos += 1;
                    if self.bytes.get(self.pos) == Some(&b'\n') {
                        self.pos += 1;
                    }
                    self.line += 1;
                    return Ok(Some((start_line, fields)));
                }
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                    return Ok(Some((start_line, fields)));
                }
                _ => return Ok(Some((start_line, fields))),
            }
        }
    }
}

/// See the module documentation for the accepted forms. `Some(None)` is "no date".
pub(crate) fn parse_date(value: &str) -> Option<Option<Date>> {
    let day_part = value.split_whitespace().next()?;
    if let Some(time) = value.split_whitespace().nth(1) {
        let ok = time.split(':').count() >= 2
            && time.split(':').count() <= 3
            && time
                .split(':')
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()));
        if !ok || value.split_whitespace().count() > 2 {
            return None;
        }
    }
    if day_part == "0000-00-00" {
        return Some(None);
    }
    let nums: Vec<&str> = day_part.split(['-', '/']).collect();
    if nums.len() != 3
        || !nums
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let sep_ok = |sep: char| day_part.chars().filter(|&c| c == sep).count() == 2;
    let (y, m, d) = if nums[0].len() == 4 && sep_ok('-') {
        (nums[0], nums[1], nums[2])
    } else if nums[2].len() == 4
        && nums[0].len() <= 2
        && nums[1].len() <= 2
        && (sep_ok('/') || sep_ok('-'))
    {
        (nums[2], nums[1], nums[0])
    } else {
        return None;
    };
    Date::from_ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).map(Some)
}

fn parse_lifespan_months(value: &str) -> Option<u32> {
    let lower = value.to_lowercase();
    let number_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_end);
    if !matches!(
        unit.trim(),
        "" | "an" | "ans" | "année" | "années" | "y" | "year" | "years"
    ) {
        return None;
    }
    let years: f64 = number.replace(',', ".").parse().ok()?;
    if !(1.0..=30.0).contains(&years) {
        return None;
    }
    Some((years * 12.0).round() as u32)
}

/// What the collector knows about a device, for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    pub org: String,
    pub device_id: String,
    /// SMBIOS system serial; may be empty or a vendor placeholder, which never match.
    pub serial: String,
    /// SMBIOS system UUID (`product_uuid`) when known; placeholders never match.
    pub uuid: Option<String>,
    pub hostname: String,
}

/// A device's identity in the collector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    pub org: String,
    pub device_id: String,
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org, self.device_id)
    }
}

/// Which identifier matched a row to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchedBy {
    Serial,
    Uuid,
    Hostname,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Serial => "serial",
            MatchedBy::Uuid => "uuid",
            MatchedBy::Hostname => "hostname",
        }
    }
}

/// One row matched to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMatch {
    pub line: usize,
    pub device: DeviceKey,
    pub matched_by: MatchedBy,
}

/// A row that cannot be applied safely, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguous {
    pub line: usize,
    pub reason: String,
}

/// The outcome of [`match_rows`]; every row is in exactly one list, each sorted by line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatchSummary {
    pub matched: Vec<RowMatch>,
    pub unmatched: Vec<usize>,
    pub ambiguous: Vec<Ambiguous>,
}

/// Serials that firmware ships when nobody filled the field in; they identify nothing.
const PLACEHOLDER_SERIALS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "system serial number",
    "chassis serial number",
    "not specified",
    "not applicable",
    "not available",
    "none",
    "n/a",
    "na",
    "null",
    "invalid",
    "oem",
    "unknown",
    "123456789",
    "0123456789",
    "1234567890",
];

/// A usable serial (trimmed, upper-cased), or `None` for empty and placeholder ones
/// (see [`PLACEHOLDER_SERIALS`]; also any run of one repeated character, "00000000").
pub(crate) fn serial_key(s: &str) -> Option<String> {
    let t = s.trim();
    let mut chars = t.chars();
    let first = chars.next()?;
    if chars.all(|c| c == first) || PLACEHOLDER_SERIALS.contains(&t.to_lowercase().as_str()) {
        return None;
    }
    Some(t.to_uppercase())
}

/// A usable UUID: hex digits only, lower-cased; `None` for empty, all-zero, all-F and
/// the well-known `03000200-0400-0500-0006-000700080009` firmware placeholder.
fn uuid_key(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_lowercase();
    let mut chars = hex.chars();
    let first = chars.next()?;
    if chars.all(|c| c == first) || hex == "03000200040005000006000700080009" {
        return None;
    }
    Some(hex)
}

/// The host part of a name (before the first dot), trimmed and lower-cased: GLPI
/// holds "PC-COMPTA-01" where the agent may say "pc-compta-01.mairie.local".
pub(crate) fn host_key(s: &str) -> Option<String> {
    let h = s.trim().split('.').next()?.trim().to_lowercase();
    (!h.is_empty()).then_some(h)
}

/// Matches GLPI rows to devices: by serial, else UUID, else hostname (each compared
/// trimmed and ignoring case).
///
/// A weaker identifier never overrides a stronger one: a device whose usable serial
/// differs from the row's is not a candidate for its UUID or hostname (a replaced PC
/// that took its predecessor's hostname must not inherit the old PC's purchase date);
/// likewise for UUIDs against hostnames. Empty and placeholder serials and UUIDs never
/// match. A row matching several devices, and rows claiming the same device, are all
/// [`Ambiguous`]: nothing is applied for them.
pub fn match_rows(rows: &[GlpiRow], devices: &[DeviceFacts]) -> MatchSummary {
    struct Keys {
        serial: Option<String>,
        uuid: Option<String>,
        host: Option<String>,
    }
    let dev_keys: Vec<Keys> = devices
        .iter()
        .map(|d| Keys {
            serial: serial_key(&d.serial),
            uuid: d.uuid.as_deref().and_then(uuid_key),
            host: host_key(&d.hostname),
        })
        .collect();
    let conflicts =
        |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(x), Some(y)) if x != y);

    let mut summary = MatchSummary::default();
    let mut claims: BTreeMap<usize, Vec<(usize, MatchedBy)>> = BTreeMap::new(); // device index → rows
    let mut row_matches = Vec::new();
    for (ri, row) in rows.iter().enumerate() {
        let rk = Keys {
            serial: row.serial.as_deref().and_then(serial_key),
            uuid: row.uuid.as_deref().and_then(uuid_key),
            host: row.name.as_deref().and_then(host_key),
        };
        let tiers: [(MatchedBy, &Option<String>); 3] = [
            (MatchedBy::Serial, &rk.serial),
            (MatchedBy::Uuid, &rk.uuid),
            (MatchedBy::Hostname, &rk.host),
        ];
        let mut outcome = None;
        for (by, key) in tiers {
            let Some(key) = key else { continue };
            let cands: Vec<usize> = dev_keys
                .iter()
                .enumerate()
                .filter(|(_, dk)| match by {
                    MatchedBy::Serial => dk.serial.as_ref() == Some(key),
                    MatchedBy::Uuid => {
                        dk.uuid.as_ref() == Some(key) && !conflicts(&dk.serial, &rk.serial)
                    }
                    MatchedBy::Hostname => {
                        dk.host.as_ref() == Some(key)
                            && !conflicts(&dk.serial, &rk.serial)
                            && !conflicts(&dk.uuid, &rk.uuid)
                    }
                })
                .map(|(i, _)| i)
                .collect();
            match cands.as_slice() {
                [] => continue,
                [one] => outcome = Some(Ok((*one, by))),
                many => {
                    let names: Vec<String> = many
                        .iter()
                        .map(|&i| key_of(&devices[i]).to_string())
                        .collect();
                    outcome = Some(Err(format!(
                        "{} \"{key}\" matches {} devices: {}",
                        by.as_str(),
                        many.len(),
                        names.join(", ")
                    )));
                }
            }
            break;
        }
        match outcome {
            None => summary.unmatched.push(row.line),
            Some(Err(reason)) => summary.ambiguous.push(Ambiguous {
                line: row.line,
                reason,
            }),
            Some(Ok((di, by))) => {
                claims.entry(di).or_default().push((ri, by));
                row_matches.push((ri, di, by));
            }
        }
    }
    for (ri, di, by) in row_matches {
        let claimants = &claims[&di];
        if claimants.len() > 1 {
            // In line order whatever the order of the rows given (issue 23: the reason
            // followed the input order).
            let mut lines: Vec<usize> = claimants.iter().map(|&(r, _)| rows[r].line).collect();
            lines.sort_unstable();
            let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
            summary.ambiguous.push(Ambiguous {
                line: rows[ri].line,
                reason: format!(
                    "lines {} all match device {} (by {})",
                    lines.join(", "),
                    key_of(&devices[di]),
                    by.as_str()
                ),
            });
        } else {
            summary.matched.push(RowMatch {
                line: rows[ri].line,
                device: key_of(&devices[di]),
                matched_by: by,
            });
        }
    }
    summary.matched.sort_by_key(|m| m.line);
    summary.unmatched.sort_unstable();
    summary.ambiguous.sort_by_key(|a| a.line);
    summary
}

fn key_of(d: &DeviceFacts) -> DeviceKey {
    DeviceKey {
        org: d.org.clone(),
        device_id: d.device_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FR_EXPORT: &[u8] = include_bytes!("../../tests/data/glpi/computers-fr.csv");
    const EN_EXPORT: &[u8] = include_bytes!("../../tests/data/glpi/computers-en.csv");

    fn d(y: i32, m: u32, day: u32) -> Option<Date> {
        Date::from_ymd(y, m, day)
    }

    fn dev(id: &str, serial: &str, uuid: Option<&str>, hostname: &str) -> DeviceFacts {
        DeviceFacts {
            org: "mairie".into(),
            device_id: id.into(),
            serial: serial.into(),
            uuid: uuid.map(Into::into),
            hostname: hostname.into(),
        }
    }

    /// The fleet the French export is matched against.
    fn fleet() -> Vec<DeviceFacts> {
        vec![
            dev(
                "d-accueil-01",
                "5CG1234XYZ",
                None,
                "PC-ACCUEIL-01.mairie.local",
            ),
            dev("d-compta-02", "CZC8351KQ4", None, "pc-compta-02"),
            dev(
                "d-urba-03",
                "PF2ABCDE",
                Some("4C4C4544-0042-3510-8052-B2C04F4B4E33"),
                "pc-urba-03",
            ),
            dev(
                "d-rh-04",
                "To Be Filled By O.E.M.",
                Some("1f0e7c2a-9b3d-4e5f-8a6b-7c8d9e0f1a2b"),
                "PC-RH-04",
            ),
            dev("d-dg-05", "", None, "portable-dg"),
            dev("d-ecole-06", "MXL0412ABC", None, "PC-ECOLE-06"),
            dev("d-srv-07", "CZJ93201RT", None, "srv-fichiers"),
        ]
    }

    #[test]
    fn parses_a_french_export_with_bom_and_semicolons() {
        assert!(FR_EXPORT.starts_with(b"\xEF\xBB\xBF"));
        let export = parse(FR_EXPORT).unwrap();
        assert_eq!(export.separator, ';');
        assert_eq!(export.ignored_columns, ["ID", "Entité", "Statut", "Type"]);
        assert_eq!(export.rows.len(), 9);
        let r = &export.rows[0];
        assert_eq!(r.line, 2);
        assert_eq!(r.name.as_deref(), Some("PC-ACCUEIL-01"));
        assert_eq!(r.serial.as_deref(), Some("5CG1234XYZ"));
        assert_eq!(r.inventory_number.as_deref(), Some("INV-2019-0042"));
        assert_eq!(
            r.location.as_deref(),
            Some("Hôtel de ville > Rez-de-chaussée > Accueil")
        );
        assert_eq!(r.manufacturer.as_deref(), Some("HP"));
        assert_eq!(r.model.as_deref(), Some("ProBook 450 G8"));
        assert_eq!(r.purchase_date, d(2021, 3, 15));
        assert_eq!(r.startup_date, d(2021, 4, 1));
        assert_eq!(r.acquisition_date(), d(2021, 3, 15));
        assert_eq!(r.lifespan_months, None);
        // DD/MM/YYYY, a GLPI date-time, a decimal-comma lifespan, the old empty date.
        let by_name = |n: &str| {
            export
                .rows
                .iter()
                .find(|r| r.name.as_deref() == Some(n))
                .unwrap()
        };
        assert_eq!(by_name("PC-COMPTA-02").purchase_date, d(2018, 11, 20));
        assert_eq!(by_name("PC-URBA-03").purchase_date, d(2019, 6, 4));
        assert_eq!(by_name("PC-URBA-03").lifespan_months, Some(84));
        assert_eq!(by_name("PC-ECOLE-06").lifespan_months, Some(66));
        let rh = by_name("PC-RH-04");
        assert_eq!(rh.purchase_date, None);
        assert_eq!(rh.acquisition_date(), d(2017, 9, 12));
        assert_eq!(
            rh.uuid.as_deref(),
            Some("1F0E7C2A-9B3D-4E5F-8A6B-7C8D9E0F1A2B")
        );
    }

    #[test]
    fn the_french_export_matches_with_duplicates_and_unknowns_reported() {
        let export = parse(FR_EXPORT).unwrap();
        let s = match_rows(&export.rows, &fleet());
        let matched: Vec<(usize, &str, MatchedBy)> = s
            .matched
            .iter()
            .map(|m| (m.line, m.device.device_id.as_str(), m.matched_by))
            .collect();
        assert_eq!(
            matched,
            [
                (2, "d-accueil-01", MatchedBy::Serial),
                (4, "d-urba-03", MatchedBy::Serial),
                (5, "d-rh-04", MatchedBy::Uuid),
                (6, "d-dg-05", MatchedBy::Hostname),
                (9, "d-srv-07", MatchedBy::Serial),
            ]
        );
        // Line 8: a PC the collector has never heard of. Line 10: a replaced PC whose
        // old serial contradicts the hostname's new owner.
        assert_eq!(s.unmatched, [8, 10]);
        // Lines 3 and 7 carry the same serial (a copy-paste in GLPI).
        let amb: Vec<usize> = s.ambiguous.iter().map(|a| a.line).collect();
        assert_eq!(amb, [3, 7]);
        assert!(
            s.ambiguous[0].reason.contains("lines 3, 7"),
            "{}",
            s.ambiguous[0].reason
        );
        assert!(s.ambiguous[0].reason.contains("mairie/d-compta-02"));
        assert_eq!(
            s.matched.len() + s.unmatched.len() + s.ambiguous.len(),
            export.rows.len()
        );
    }

    #[test]
    fn parses_an_english_export_with_commas_and_no_bom() {
        let export = parse(EN_EXPORT).unwrap();
        assert_eq!(export.separator, ',');
        assert_eq!(export.rows.len(), 4);
        let r = &export.rows[0];
        assert_eq!(r.name.as_deref(), Some("LAB-WS-01"));
        assert_eq!(r.serial.as_deref(), Some("J2X7K93"));
        assert_eq!(r.location.as_deref(), Some("Building A, Floor 2"));
        assert_eq!(r.model.as_deref(), Some("Precision 3660 Tower, 500W"));
        assert_eq!(r.purchase_date, d(2022, 1, 31));
        assert_eq!(r.lifespan_months, Some(72));
        // A quoted field may hold the separator, a quote and a line break; the next
        // record is numbered by its physical line.
        let r = &export.rows[1];
        assert_eq!(
            r.model.as_deref(),
            Some("OptiPlex 7010 \"Micro\"\nrefurbished")
        );
        assert_eq!(export.rows[2].line, 5);
        assert_eq!(export.rows[2].startup_date, d(2020, 2, 29));
        assert_eq!(
            export.rows[3].uuid.as_deref(),
            Some("a1b2c3d4-e5f6-4789-abcd-ef0123456789")
        );
    }

    #[test]
    fn a_bad_date_names_the_line_and_the_column_and_nothing_is_returned() {
        let mut bad = FR_EXPORT.to_vec();
        bad.extend_from_slice("11;PC-ECOLE-09;Mairie;5CG9999ABC;INV-2021-0700;Ecole;31/02/2021;;;HP;EliteBook;En service;Portable;\r\n".as_bytes());
        let err = parse(&bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 11, column \"Date d'achat\": \"31/02/2021\" is not a date"
        );
        assert!(matches!(err, GlpiError::BadValue { line: 11, .. }));

        let en = "Name,Serial number,Purchase date\nA,S1,2021-01-01\nB,S2,2021-13-01\n";
        let err = parse(en.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3, column \"Purchase date\": \"2021-13-01\" is not a date"
        );
        let en = "Name,Lifespan (years)\nA,forever\n";
        let err = parse(en.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column \"Lifespan (years)\": \"forever\" is not a lifespan in years (1–30)"
        );
    }

    #[test]
    fn structural_errors_name_their_line() {
        let err = parse(b"Name;Serial number\nA;\"S1\nB;S2\n").unwrap_err();
        assert!(
            matches!(err, GlpiError::UnterminatedQuote { line: 2 }),
            "{err}"
        );
        let err = parse(b"Name;Serial number\nA;\"S1\"x\n").unwrap_err();
        assert!(
            matches!(err, GlpiError::TextAfterQuote { line: 2 }),
            "{err}"
        );
        let err = parse(b"Name;Serial number;Lieu\nA;S1\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: 2 fields, the header has 3");
        let err = parse(b"Name;Serial\nA;S1;extra\n").unwrap_err();
        assert!(
            matches!(err, GlpiError::FieldCount { line: 2, .. }),
            "{err}"
        );
        let err = parse(b"Name;Serial number\nA;S\xE9rie\n").unwrap_err();
        assert!(matches!(err, GlpiError::Encoding { line: 2 }), "{err}");
        assert!(matches!(parse(b"").unwrap_err(), GlpiError::Empty));
        assert!(matches!(
            parse(b"\xEF\xBB\xBF\r\n\r\n").unwrap_err(),
            GlpiError::Empty
        ));
    }

    #[test]
    fn a_file_without_an_identifying_column_is_refused() {
        let err = parse("Lieu;Date d'achat;Modèle\nAccueil;2021-01-01;X\n".as_bytes()).unwrap_err();
        assert!(matches!(err, GlpiError::NoIdentifyingColumn { .. }));
        assert!(
            err.to_string()
                .contains("\"Lieu\", \"Date d'achat\", \"Modèle\""),
            "{err}"
        );
        // A linked item's serial is not the computer's.
        let err = parse("Moniteur - Numéro de série;Lieu\nX;Y\n".as_bytes()).unwrap_err();
        assert!(matches!(err, GlpiError::NoIdentifyingColumn { .. }));
        let err = parse("Nom;Name\nA;B\n".as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "columns \"Nom\" and \"Name\" both give the name"
        );
    }

    #[test]
    fn optional_columns_may_be_missing() {
        let export = parse("Numéro de série\r\nABC123\r\n\r\nDEF456".as_bytes()).unwrap();
        let serials: Vec<_> = export
            .rows
            .iter()
            .map(|r| (r.line, r.serial.clone()))
            .collect();
        assert_eq!(
            serials,
            [(2, Some("ABC123".into())), (4, Some("DEF456".into()))]
        );
        assert_eq!(export.rows[0].purchase_date, None);
    }

    /// Reads one byte per call: the export arrives in pieces, as from a pipe.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            match buf.first_mut() {
                Some(b) => *b = *first,
                None => return Ok(0),
            }
            self.0 = rest;
            Ok(1)
        }
    }

    /// The outcome worked out by hand from `computers-fr.csv` and `fleet()` (see
    /// `the_french_export_matches_with_duplicates_and_unknowns_reported` for why).
    fn hand_derived(s: &MatchSummary) {
        let matched: Vec<(usize, &str, MatchedBy)> = s
            .matched
            .iter()
            .map(|m| (m.line, m.device.device_id.as_str(), m.matched_by))
            .collect();
        assert_eq!(
            matched,
            [
                (2, "d-accueil-01", MatchedBy::Serial),
                (4, "d-urba-03", MatchedBy::Serial),
                (5, "d-rh-04", MatchedBy::Uuid),
                (6, "d-dg-05", MatchedBy::Hostname),
                (9, "d-srv-07", MatchedBy::Serial),
            ]
        );
        assert_eq!(s.unmatched, [8, 10]);
        let amb: Vec<usize> = s.ambiguous.iter().map(|a| a.line).collect();
        assert_eq!(amb, [3, 7]);
    }

    #[test]
    fn reparsing_and_rematching_are_deterministic() {
        // The rows, by hand: (line, serial) of each record of the file, in file order.
        let want_rows = [
            (2, Some("5CG1234XYZ")),
            (3, Some("CZC8351KQ4")),
            (4, Some("PF2ABCDE")),
            (5, Some("To Be Filled By O.E.M.")),
            (6, None),
            (7, Some("CZC8351KQ4")),
            (8, Some("8CG0507QRS")),
            (9, Some("CZJ93201RT")),
            (10, Some("MXL9999OLD")),
        ];
        let a = parse(FR_EXPORT).unwrap();
        let b = parse_reader(Trickle(FR_EXPORT)).unwrap();
        for export in [&a, &b] {
            let rows: Vec<(usize, Option<&str>)> = export
                .rows
                .iter()
                .map(|r| (r.line, r.serial.as_deref()))
                .collect();
            assert_eq!(rows, want_rows);
        }
        assert_eq!(a, b);
        // Whatever the order of the devices and of the rows, the same hand-derived
        // outcome, and the same reasons word for word.
        let first = match_rows(&a.rows, &fleet());
        hand_derived(&first);
        let mut rows_reversed = a.rows.clone();
        rows_reversed.reverse();
        for k in 0..fleet().len() {
            let mut devices = fleet();
            devices.rotate_left(k);
            for devices in [devices.clone(), devices.into_iter().rev().collect()] {
                for rows in [&a.rows, &rows_reversed] {
                    let s = match_rows(rows, &devices);
                    hand_derived(&s);
                    assert_eq!(s, first, "devices rotated by {k}");
                }
            }
        }
    }

    #[test]
    fn dates_in_every_accepted_form() {
        for (s, want) in [
            ("2021-03-15", d(2021, 3, 15)),
            ("2021-03-15 10:42:00", d(2021, 3, 15)),
            ("2021-03-15 10:42", d(2021, 3, 15)),
            ("15/03/2021", d(2021, 3, 15)),
            ("5/3/2021", d(2021, 3, 5)),
            ("15-03-2021", d(2021, 3, 15)),
            ("29/02/2024", d(2024, 2, 29)),
            ("0000-00-00", None),
            ("0000-00-00 00:00:00", None),
        ] {
            assert_eq!(parse_date(s), Some(want), "{s}");
        }
        for s in [
            "31/02/2021",
            "29/02/2023",
            "2021/03/15",
            "15.03.2021",
            "2021-03-15T10:00",
            "03/2021",
            "2021-03-15 10h",
            "x",
        ] {
            assert_eq!(parse_date(s), None, "{s}");
        }
    }

    #[test]
    fn placeholders_never_match_and_one_row_on_two_devices_is_ambiguous() {
        for s in [
            "",
            "  ",
            "To Be Filled By O.E.M.",
            "Default string",
            "0000000000",
            "System Serial Number",
        ] {
            assert_eq!(serial_key(s), None, "{s:?}");
        }
        assert_eq!(serial_key(" cz12 "), Some("CZ12".into()));
        assert_eq!(uuid_key("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(uuid_key("03000200-0400-0500-0006-000700080009"), None);
        assert_eq!(uuid_key("{4C4C4544-0042}"), Some("4c4c45440042".into()));

        let rows = [GlpiRow {
            line: 2,
            serial: Some("Default string".into()),
            name: Some("kiosk".into()),
            ..GlpiRow::default()
        }];
        let devices = [
            dev("a", "Default string", None, "kiosk.site-a"),
            dev("b", "Default string", None, "KIOSK"),
        ];
        let s = match_rows(&rows, &devices);
        assert!(s.matched.is_empty() && s.unmatched.is_empty());
        assert_eq!(s.ambiguous[0].line, 2);
        assert!(
            s.ambiguous[0]
                .reason
                .contains("hostname \"kiosk\" matches 2 devices"),
            "{}",
            s.ambiguous[0].reason
        );
    }

    const FR_PREFIXED: &[u8] =
        include_bytes!("../../tests/data/glpi/computers-fr-glpi10-prefixed.csv");

    /// Issue 21: GLPI 10 names the Infocom tab's columns "Informations financières et
    /// administratives - Date d'achat"; they are read on their last part, while the
    /// OS's name and a disk's or monitor's serial stay the linked item's.
    #[test]
    fn prefixed_columns_are_read_on_their_last_part() {
        let export = parse(FR_PREFIXED).unwrap();
        assert_eq!(
            export.ignored_columns,
            [
                "Entité",
                "Système d'exploitation - Nom",
                "Composants - Disque dur - Numéro de série",
                "Moniteur - Numéro de série",
                "Informations financières et administratives - Durée d'amortissement",
            ]
        );
        let got: Vec<_> = export
            .rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.name.as_deref(),
                    r.serial.as_deref(),
                    r.purchase_date,
                    r.delivery_date,
                    r.lifespan_months,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    2,
                    Some("PC-ACCUEIL-01"),
                    Some("5CG1234XYZ"),
                    d(2021, 3, 15),
                    d(2021, 3, 29),
                    Some(72)
                ),
                (
                    3,
                    Some("PC-URBA-03"),
                    Some("PF2ABCDE"),
                    d(2019, 6, 15),
                    None,
                    None
                ),
            ]
        );
        // English labels and an en dash, as a spreadsheet may rewrite the hyphen.
        let en = parse(
            "Name,Financial and administrative information – Date of purchase\nPC-1,2020-01-02\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(en.rows[0].purchase_date, d(2020, 1, 2));
    }

    #[test]
    fn an_unprefixed_column_wins_and_two_prefixed_ones_are_refused() {
        let both = "Nom;Infocom - Date d'achat;Date d'achat\nPC-1;2001-01-01;2021-05-06\n";
        let export = parse(both.as_bytes()).unwrap();
        assert_eq!(export.rows[0].purchase_date, d(2021, 5, 6));
        assert_eq!(export.ignored_columns, ["Infocom - Date d'achat"]);
        let two = "Nom;Infocom - Date d'achat;Achats - Date d'achat\nPC-1;2001-01-01;2021-05-06\n";
        assert_eq!(
            parse(two.as_bytes()).unwrap_err().to_string(),
            "columns \"Infocom - Date d'achat\" and \"Achats - Date d'achat\" both give the purchase date"
        );
        // Identity never comes prefixed: the OS's name does not name the computer.
        let err = parse("Système d'exploitation - Nom;Lieu\nDebian;Y\n".as_bytes()).unwrap_err();
        assert!(matches!(err, GlpiError::NoIdentifyingColumn { .. }));
    }
}
