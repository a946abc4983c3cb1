//! The device registry as operators see it: one [`DeviceRecord`] per (org, device), and
//! its renderings as an aligned table, CSV and JSON. Pure: the records come from
//! the collector's store or from the HTTP API.

use serde::{Deserialize, Serialize};

/// What the collector knows about one device. Stored as JSON in the `devices` tree and
/// served as-is by `GET /api/v1/devices` and `veille-collector devices --format json`.
///
/// The JSON field names are a stable interface (tests and scripts parse them); new
/// fields may be added, none renamed. All times are Unix epoch **milliseconds**, UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceRecord {
    /// Organisation the device reports under (from the token it used).
    pub org: String,
    /// Stable device identity sent by the agent.
    pub device_id: String,
    /// Hostname from the latest inventory; empty until an inventory was received.
    pub hostname: String,
    /// Agent version from the latest batch (or its inventory).
    pub agent_version: String,
    /// Collector clock when the first accepted batch of this device arrived.
    pub first_seen_unix_ms: i64,
    /// Collector clock when the latest accepted batch arrived (duplicates count: the
    /// device is alive).
    pub last_seen_unix_ms: i64,
    /// Largest `end_unix_ms` among stored reports (agent clock).
    pub last_report_end_unix_ms: i64,
    /// Highest stored seq; an Ack's `highest_durable_seq`.
    pub highest_seq: u64,
    /// Reports stored (duplicates and conflicts not counted).
    pub reports: u64,
    /// Reports refused as conflicts (same seq, different content), kept apart.
    pub conflicts: u64,
    /// Boot id of the stored report with the highest seq.
    pub last_boot_id: String,
    /// Distinct boot sessions seen.
    pub boot_sessions: u64,
    /// Reports with a seq up to this one were purged after `raw_retention_days`; their
    /// hours live on in the rollups. A resend of one counts as a duplicate, so a purged
    /// report can never be counted twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_purged_through_seq: Option<u64>,
    /// Rollups of the hours before this instant are closed: their raw reports are gone,
    /// so `rebuild-rollups` keeps them as they are. 0 = nothing purged.
    #[serde(skip_serializing_if = "is_zero")]
    pub rollups_closed_before_unix_ms: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Output formats of `devices` (CLI) and `/api/v1/devices` (`?format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// Header line and one row per device (RFC 4180 quoting).
    Csv,
    /// JSON array of device records (stable field names).
    Json,
}

impl Format {
    /// Every format's name, as `--format` and `?format=` take them.
    pub const NAMES: [&'static str; 3] = ["table", "csv", "json"];
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown format {other:?}: expected table, csv or json"
            )),
        }
    }
}

/// Renders `devices` in `format`; the output ends with a newline unless empty-table.
pub fn render(devices: &[DeviceRecord], format: Format) -> String {
    match format {
        Format::Table => render_table(devices),
        Format::Csv => render_csv(devices),
        Format::Json => render_json(devices),
    }
}

/// Sorts records for display: by org, then device id.
pub fn sort(devices: &mut [DeviceRecord]) {
    devices.sort_by(|a, b| (&a.org, &a.device_id).cmp(&(&b.org, &b.device_id)));
}

const TABLE_HEADER: [&str; 9] = [
    "ORG",
    "DEVICE_ID",
    "HOSTNAME",
    "FIRST_SEEN",
    "LAST_SEEN",
    "HIGHEST_SEQ",
    "REPORTS",
    "BOOT_SESSIONS",
    "LAST_BOOT_ID",
];

/// Columns separated by two spaces, padded to the widest cell; numbers right-aligned.
pub fn render_table(devices: &[DeviceRecord]) -> String {
    let rows: Vec<[String; 9]> = devices
        .iter()
        .map(|d| {
            [
                d.org.clone(),
                d.device_id.clone(),
                d.hostname.clone(),
                rfc3339_utc(d.first_seen_unix_ms),
                rfc3339_utc(d.last_seen_unix_ms),
                d.highest_seq.to_string(),
                d.reports.to_string(),
                d.boot_sessions.to_string(),
                d.last_boot_id.clone(),
            ]
        })
        .collect();
    let mut widths = TABLE_HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = [false, false, false, false, false, true, true, true, false];
    let mut out = String::new();
    let header = TABLE_HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if numeric[i] && !std::ptr::eq(row, &header) {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// CSV column names, in order. Times are RFC 3339 UTC (empty when unknown).
pub const CSV_HEADER: [&str; 12] = [
    "org",
    "device_id",
    "hostname",
    "agent_version",
    "first_seen",
    "last_seen",
    "last_report_end",
    "highest_seq",
    "reports",
    "conflicts",
    "boot_sessions",
    "last_boot_id",
];

/// RFC 4180 CSV with CRLF-free `\n` line ends.
pub fn render_csv(devices: &[DeviceRecord]) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push('\n');
    for d in devices {
        let cells = [
            d.org.clone(),
            d.device_id.clone(),
            d.hostname.clone(),
            d.agent_version.clone(),
            rfc3339_utc(d.first_seen_unix_ms),
            rfc3339_utc(d.last_seen_unix_ms),
            rfc3339_utc(d.last_report_end_unix_ms),
            d.highest_seq.to_string(),
            d.reports.to_string(),
            d.conflicts.to_string(),
            d.boot_sessions.to_string(),
            d.last_boot_id.clone(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// JSON array of records, pretty-printed, with a final newline.
pub fn render_json(devices: &[DeviceRecord]) -> String {
    // Serialising plain structs of strings and integers cannot fail.
    let mut s = serde_json::to_string_pretty(devices).unwrap_or_else(|_| "[]".to_owned());
    s.push('\n');
    s
}

/// Quotes a CSV field when it holds a comma, a quote or a line break.
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// `2026-11-23T05:17:00Z` for a Unix time in milliseconds (truncated to the second);
/// empty for 0 (unknown).
pub fn rfc3339_utc(unix_ms: i64) -> String {
    if unix_ms == 0 {
        return String::new();
    }
    let secs = unix_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(device_id: &str, hostname: &str) -> DeviceRecord {
        DeviceRecord {
            org: "acme".into(),
            device_id: device_id.into(),
            hostname: hostname.into(),
            agent_version: "0.1.0".into(),
            first_seen_unix_ms: 1_790_000_000_000,
            last_seen_unix_ms: 1_790_000_060_500,
            last_report_end_unix_ms: 1_790_000_060_000,
            highest_seq: 12,
            reports: 12,
            conflicts: 0,
            last_boot_id: "boot-1".into(),
            boot_sessions: 2,
            ..Default::default()
        }
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_utc(0), "");
        assert_eq!(rfc3339_utc(1_000), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_790_000_060_999), "2026-09-21T14:14:20Z");
        assert_eq!(rfc3339_utc(-1_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn table_columns_are_aligned() {
        let t = render_table(&[rec("d1", "pc-01"), rec("device-long-id", "")]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("ORG   DEVICE_ID       HOSTNAME  FIRST_SEEN"),
            "{t}"
        );
        let col = lines[0].find("LAST_SEEN").unwrap();
        assert_eq!(&lines[1][col..col + 20], "2026-09-21T14:14:20Z");
        assert_eq!(&lines[2][col..col + 20], "2026-09-21T14:14:20Z");
        assert!(lines[1].ends_with("boot-1"));
        // Empty table: header only.
        assert_eq!(render_table(&[]).lines().count(), 1);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let csv = render_csv(&[rec("d1", "pc, \"main\" hall")]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER.join(","));
        assert_eq!(
            lines[1],
            "acme,d1,\"pc, \"\"main\"\" hall\",0.1.0,2026-09-21T14:13:20Z,2026-09-21T14:14:20Z,2026-09-21T14:14:20Z,12,12,0,2,boot-1"
        );
    }

    #[test]
    fn json_has_stable_snake_case_fields_and_round_trips() {
        let records = vec![rec("d1", "pc-01")];
        let json = render_json(&records);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let obj = v[0].as_object().unwrap();
        for key in [
            "org",
            "device_id",
            "hostname",
            "agent_version",
            "first_seen_unix_ms",
            "last_seen_unix_ms",
            "last_report_end_unix_ms",
            "highest_seq",
            "reports",
            "conflicts",
            "last_boot_id",
            "boot_sessions",
        ] {
            assert!(obj.contains_key(key), "missing {key}");
        }
        let back: Vec<DeviceRecord> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, records);
    }

    #[test]
    fn formats_parse_from_query_strings() {
        assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
        assert!("xml".parse::<Format>().unwrap_err().contains("xml"));
    }
}
