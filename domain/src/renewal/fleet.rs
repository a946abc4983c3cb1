//! The assets of the inventory that no agent reports: monitors, and computers no agent
//! runs on (yet). Renewal is about the whole fleet, so a GLPI row that matches no
//! device is kept as a [`FleetAsset`] rather than dropped; its energy stays unknown
//! (never invented): no agent, no evidence.
//!
//! # Identity
//! An asset is known by its kind and [`identity`]: the usable serial, else the host
//! part of its name, else its inventory number, compared the way
//! [`crate::renewal::glpi::match_rows`] compares them. The same identity whatever the
//! source (CSV export or REST API), so switching from one to the other does not count
//! an asset twice. A row with none of the three cannot be followed from one import to
//! the next and is not kept (the summary counts it).
//!
//! # Re-import
//! An import or sync is GLPI's view of the org's fleet for the kinds it covers
//! ([`plan`]): agentless assets of those kinds that it no longer lists are removed
//! (matched by an agent since, decommissioned, deleted), the others are written when
//! their facts changed, and each keeps the day it was first imported (the lower bound
//! of its age when GLPI has no acquisition date).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::energy::catalogue::DeviceClass;
use crate::renewal::glpi::{GlpiRow, host_key, serial_key};
use crate::renewal::horizon::Date;

/// The kinds of asset kept without an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssetKind {
    Computer,
    Monitor,
}

impl AssetKind {
    pub const ALL: [AssetKind; 2] = [AssetKind::Computer, AssetKind::Monitor];

    /// The key used in the store, reports and the CLI's `--kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Computer => "computer",
            AssetKind::Monitor => "monitor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The renewal class: a computer nobody probed has an unknown chassis (the
    /// `unknown` horizon and embodied figures of `deploy/renewal.toml`).
    pub fn class(self) -> DeviceClass {
        match self {
            AssetKind::Computer => DeviceClass::Unknown,
            AssetKind::Monitor => DeviceClass::Monitor,
        }
    }
}

/// One asset without an agent, as last imported. Stored as JSON in the `fleet_asset`
/// tree (`org \0 kind \0 identity`); field names are a stable interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FleetAsset {
    /// [`AssetKind::as_str`].
    pub kind: String,
    /// See [`identity`].
    pub identity: String,
    /// GLPI's id (per itemtype) when the source gave it (the REST API); 0 = unknown.
    pub glpi_id: u64,
    pub name: String,
    pub serial: String,
    pub inventory_number: String,
    pub location: String,
    pub manufacturer: String,
    pub model: String,
    /// Purchase, else delivery, else startup date (`YYYY-MM-DD`); empty if none.
    pub acquisition_date: String,
    /// A user-set lifespan in months; 0 = none.
    pub lifespan_months: u32,
    /// When an import first listed it, Unix ms: kept across re-imports.
    pub first_imported_unix_ms: i64,
    /// When it was last written, Unix ms. Not compared by [`FleetAsset::same_facts`].
    pub imported_at_unix_ms: i64,
}

/// The identity of a row (see the module documentation), `None` when it has none.
pub fn identity(row: &GlpiRow) -> Option<String> {
    if let Some(s) = row.serial.as_deref().and_then(serial_key) {
        return Some(format!("serial:{s}"));
    }
    if let Some(h) = row.name.as_deref().and_then(host_key) {
        return Some(format!("name:{h}"));
    }
    row.inventory_number
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|i| format!("inventory:{}", i.to_uppercase()))
}

impl FleetAsset {
    /// The asset for an unmatched row; `None` when the row has no [`identity`].
    pub fn from_row(row: &GlpiRow, kind: AssetKind, glpi_id: u64, now_ms: i64) -> Option<Self> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Some(Self {
            kind: kind.as_str().to_owned(),
            identity: identity(row)?,
            glpi_id,
            name: text(&row.name),
            serial: text(&row.serial),
            inventory_number: text(&row.inventory_number),
            location: text(&row.location),
            manufacturer: text(&row.manufacturer),
            model: text(&row.model),
            acquisition_date: row
                .acquisition_date()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            lifespan_months: row.lifespan_months.unwrap_or(0),
            first_imported_unix_ms: now_ms,
            imported_at_unix_ms: now_ms,
        })
    }

    pub fn asset_kind(&self) -> Option<AssetKind> {
        AssetKind::parse(&self.kind)
    }

    pub fn acquisition(&self) -> Option<Date> {
        Date::parse_iso(&self.acquisition_date)
    }

    pub fn lifespan(&self) -> Option<u32> {
        (self.lifespan_months > 0).then_some(self.lifespan_months)
    }

    /// Same facts, whenever imported.
    pub fn same_facts(&self, other: &FleetAsset) -> bool {
        let strip = |a: &FleetAsset| FleetAsset {
            imported_at_unix_ms: 0,
            ..a.clone()
        };
        strip(self) == strip(other)
    }
}

/// What to write for one org: the outcome of [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetPlan {
    /// New or changed assets (first import time carried over).
    pub put: Vec<FleetAsset>,
    /// (kind, identity) of stored assets the import no longer lists.
    pub remove: Vec<(String, String)>,
    pub unchanged: usize,
    /// Rows of the import with an identity already taken by an earlier row (kept once).
    pub duplicates: usize,
}

/// Merges an import's agentless assets (`new`, in row order) into the stored ones of
/// the same org (`old`), replacing those of the `kinds` the import covers.
pub fn plan(kinds: &[AssetKind], old: &[FleetAsset], new: Vec<FleetAsset>) -> FleetPlan {
    let old_by_key: BTreeMap<(&str, &str), &FleetAsset> = old
        .iter()
        .map(|a| ((a.kind.as_str(), a.identity.as_str()), a))
        .collect();
    let mut out = FleetPlan::default();
    let mut seen: BTreeMap<(String, String), ()> = BTreeMap::new();
    for mut a in new {
        let key = (a.kind.clone(), a.identity.clone());
        if seen.insert(key, ()).is_some() {
            out.duplicates += 1;
            continue;
        }
        match old_by_key.get(&(a.kind.as_str(), a.identity.as_str())) {
            Some(prev) => {
                a.first_imported_unix_ms = prev.first_imported_unix_ms;
                if prev.same_facts(&a) {
                    out.unchanged += 1;
                } else {
                    out.put.push(a);
                }
            }
            None => out.put.push(a),
        }
    }
    for a in old {
        let covered = a.asset_kind().is_some_and(|k| kinds.contains(&k));
        if covered && !seen.contains_key(&(a.kind.clone(), a.identity.clone())) {
            out.remove.push((a.kind.clone(), a.identity.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, serial: &str, inv: &str) -> GlpiRow {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        GlpiRow {
            line: 2,
            name: opt(name),
            serial: opt(serial),
            inventory_number: opt(inv),
            purchase_date: Date::from_ymd(2016, 1, 15),
            ..Default::default()
        }
    }

    #[test]
    fn identity_is_serial_then_name_then_inventory_number() {
        assert_eq!(
            identity(&row("PC-1.mairie.local", " ab12 ", "INV-1")).as_deref(),
            Some("serial:AB12")
        );
        // A placeholder serial identifies nothing: the name does.
        assert_eq!(
            identity(&row("PC-1.mairie.local", "To Be Filled By O.E.M.", "")).as_deref(),
            Some("name:pc-1")
        );
        assert_eq!(
            identity(&row("", "", "inv-9")).as_deref(),
            Some("inventory:INV-9")
        );
        assert_eq!(identity(&row("", "", " ")), None);
        assert_eq!(
            FleetAsset::from_row(&row("", "", ""), AssetKind::Monitor, 1, 5),
            None
        );
    }

    #[test]
    fn a_row_becomes_an_asset_with_its_dates() {
        let a = FleetAsset::from_row(&row("ECRAN-1", "CN0X", "INV-7"), AssetKind::Monitor, 42, 9)
            .unwrap();
        assert_eq!(
            (a.kind.as_str(), a.identity.as_str(), a.glpi_id),
            ("monitor", "serial:CN0X", 42)
        );
        assert_eq!(a.acquisition(), Date::from_ymd(2016, 1, 15));
        assert_eq!((a.first_imported_unix_ms, a.imported_at_unix_ms), (9, 9));
        assert_eq!(
            a.asset_kind().map(AssetKind::class),
            Some(DeviceClass::Monitor)
        );
        assert_eq!(AssetKind::Computer.class(), DeviceClass::Unknown);
        assert_eq!(a.lifespan(), None);
    }

    #[test]
    fn a_reimport_keeps_first_import_times_removes_what_is_gone_and_skips_other_kinds() {
        let mk = |kind, name: &str, serial: &str, at| {
            FleetAsset::from_row(&row(name, serial, ""), kind, 0, at).unwrap()
        };
        let old = vec![
            mk(AssetKind::Computer, "PC-A", "SA", 1),
            mk(AssetKind::Computer, "PC-B", "SB", 1),
            mk(AssetKind::Monitor, "M-1", "SM", 1),
        ];
        // PC-A unchanged, PC-B now has an agent (not listed), PC-C is new, PC-A again
        // on a second row.
        let mut moved = mk(AssetKind::Computer, "PC-C", "SC", 2);
        moved.location = "Ecole".into();
        let new = vec![
            mk(AssetKind::Computer, "PC-A", "SA", 2),
            moved,
            mk(AssetKind::Computer, "PC-A bis", "SA", 2),
        ];
        let p = plan(&[AssetKind::Computer], &old, new);
        assert_eq!(p.unchanged, 1);
        assert_eq!(p.duplicates, 1);
        assert_eq!(p.put.len(), 1);
        assert_eq!(p.put[0].identity, "serial:SC");
        assert_eq!(p.put[0].first_imported_unix_ms, 2);
        // The monitor is of a kind this import does not cover: kept.
        assert_eq!(p.remove, [("computer".to_owned(), "serial:SB".to_owned())]);

        // A changed fact is written, with the first import time of the stored one.
        let mut relocated = mk(AssetKind::Computer, "PC-A", "SA", 3);
        relocated.location = "Cave".into();
        let p = plan(&[AssetKind::Computer], &old[..1], vec![relocated]);
        assert_eq!(p.put.len(), 1);
        assert_eq!(p.put[0].first_imported_unix_ms, 1);
        assert_eq!(p.put[0].imported_at_unix_ms, 3);
    }
}
