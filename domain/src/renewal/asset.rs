//! What the asset inventory (GLPI) says about one device: the facts the agent cannot
//! probe, above all the acquisition date that gives the device its real age.
//!
//! Stored as JSON in the `asset` tree (`org \0 device_id`), written only by
//! `veille-collector import glpi` (the collector's `import`) and `glpi sync` (the REST
//! link, same path), and read by the renewal report.
//! The JSON field names are a stable interface; new fields may be added, none renamed.

use serde::{Deserialize, Serialize};

use crate::renewal::glpi::{GlpiRow, MatchedBy};
use crate::renewal::horizon::Date;

/// One device's asset facts, as last imported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetRecord {
    /// Purchase date, else delivery, else startup date (`YYYY-MM-DD`); empty when the
    /// export had none of them.
    pub acquisition_date: String,
    /// The organisation's inventory number (`Numéro d'inventaire`).
    pub inventory_number: String,
    /// GLPI location (`Lieu`), e.g. "Mairie > Accueil".
    pub location: String,
    /// A user-set lifespan in months; 0 = none (the class horizon applies).
    pub lifespan_months: u32,
    /// The identifier that matched the row: `serial`, `uuid` or `hostname`.
    pub matched_by: String,
    /// Name of the computer in GLPI, to help an operator check the match.
    pub glpi_name: String,
    /// Collector clock when this record was imported, Unix ms. Not compared when deciding
    /// whether a re-import changed anything, so importing the same file twice is a no-op.
    pub imported_at_unix_ms: i64,
}

impl AssetRecord {
    /// The record for a matched GLPI row.
    pub fn from_row(row: &GlpiRow, matched_by: MatchedBy, imported_at_unix_ms: i64) -> Self {
        Self {
            acquisition_date: row
                .acquisition_date()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            inventory_number: row.inventory_number.clone().unwrap_or_default(),
            location: row.location.clone().unwrap_or_default(),
            lifespan_months: row.lifespan_months.unwrap_or(0),
            matched_by: matched_by.as_str().to_owned(),
            glpi_name: row.name.clone().unwrap_or_default(),
            imported_at_unix_ms,
        }
    }

    /// The acquisition date, when set and well-formed.
    pub fn acquisition(&self) -> Option<Date> {
        Date::parse_iso(&self.acquisition_date)
    }

    /// The per-device lifespan, when set.
    pub fn lifespan(&self) -> Option<u32> {
        (self.lifespan_months > 0).then_some(self.lifespan_months)
    }

    /// Same facts, whenever imported.
    pub fn same_facts(&self, other: &AssetRecord) -> bool {
        Self {
            imported_at_unix_ms: 0,
            ..self.clone()
        } == Self {
            imported_at_unix_ms: 0,
            ..other.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_becomes_a_record_and_reimport_time_is_not_a_change() {
        let row = GlpiRow {
            line: 3,
            name: Some("PC-01".into()),
            purchase_date: Date::from_ymd(2019, 3, 12),
            startup_date: Date::from_ymd(2019, 4, 1),
            inventory_number: Some("INV-42".into()),
            lifespan_months: Some(84),
            ..Default::default()
        };
        let a = AssetRecord::from_row(&row, MatchedBy::Hostname, 1);
        assert_eq!(a.acquisition_date, "2019-03-12");
        assert_eq!(a.acquisition(), Date::from_ymd(2019, 3, 12));
        assert_eq!(a.lifespan(), Some(84));
        assert_eq!(a.matched_by, "hostname");
        let b = AssetRecord::from_row(&row, MatchedBy::Hostname, 2);
        assert!(a.same_facts(&b));
        assert_ne!(a, b);
        let c = AssetRecord {
            location: "elsewhere".into(),
            ..b
        };
        assert!(!a.same_facts(&c));
        assert_eq!(AssetRecord::default().lifespan(), None);
        assert_eq!(AssetRecord::default().acquisition(), None);
    }
}
