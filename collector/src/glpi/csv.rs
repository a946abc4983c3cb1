//! `veille-collector import glpi FILE [--dry-run]`: the I/O edge of the GLPI import.
//!
//! Steps, each complete before the next: parse the whole file ([`veille_domain::renewal::glpi::parse`]:
//! a bad line stops everything, naming its line and column), match the rows against the
//! devices the store knows ([`veille_domain::renewal::glpi::match_rows`]), then write every matched row
//! in one transaction ([`Store::put_assets`]): an import is all or nothing, and
//! importing the same file again changes nothing.
//!
//! The store is opened directly, whether or not a collector runs: both engines take a
//! second process (the embedded one queues writers on its lock for a few seconds at
//! most; PostgreSQL is shared by design), and reports read the imported facts at their
//! next run.
//!
//! Rows that match no device are kept as assets without agent of the org the import
//! is for ([`Keep`]; [`veille_domain::renewal::fleet`]), in the same transaction: the
//! renewal report covers them and consumption counts them as unknown energy. An
//! ambiguous row matches devices, so it is not "without agent" and is not kept.
//!
//! Matching facts per device: the serial and hostname of its latest inventory, and its
//! device id as the SMBIOS UUID when it has that shape (agents use the product UUID as
//! their id when they can read it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::store::fleet::Agentless;
use crate::store::{Location, Store, StoreError};
use veille_domain::renewal::asset::AssetRecord;
use veille_domain::renewal::fleet::{AssetKind, FleetAsset};
use veille_domain::renewal::glpi::{
    self, DeviceFacts, GlpiError, GlpiExport, GlpiRow, MatchSummary,
};

/// Rows between two progress lines in the log.
pub const PROGRESS_EVERY_ROWS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is refused; nothing was applied.
    #[error("{path}: {source}; nothing was imported")]
    Glpi { path: PathBuf, source: GlpiError },
    #[error("no store in {path}: has a collector run with this data directory?")]
    NoStore { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    pub rows: usize,
    pub separator: char,
    pub ignored_columns: Vec<String>,
    pub summary: MatchSummary,
    /// Matched rows whose facts were new or different, written.
    pub written: usize,
    /// Matched rows whose facts were already stored.
    pub unchanged: usize,
    /// What became of the rows without agent; `None` when the import kept none (no
    /// org to keep them for).
    pub agentless: Option<AgentlessOutcome>,
    pub dry_run: bool,
}

/// The assets without agent of an import.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentlessOutcome {
    pub org: String,
    /// Kept assets per kind, in [`AssetKind::ALL`] order.
    pub kept: Vec<(AssetKind, usize)>,
    /// Rows with no serial, name or inventory number: not kept.
    pub unidentified: Vec<usize>,
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub duplicates: usize,
}

/// Which assets without agent an import keeps, and for which org.
#[derive(Debug, Clone)]
pub struct Keep {
    pub org: String,
    /// The kinds this import covers (replaced in the store).
    pub kinds: Vec<AssetKind>,
    /// The kind of the rows that are matched against devices.
    pub rows_kind: AssetKind,
    /// GLPI ids of the matched rows by line, when the source gives them (the API).
    pub ids: HashMap<usize, u64>,
    /// Rows never matched (no agent runs on a monitor), with their kind and GLPI id.
    pub extra: Vec<(AssetKind, u64, GlpiRow)>,
}

/// True for the canonical 8-4-4-4-12 hex form of an SMBIOS UUID.
pub fn looks_like_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The matching facts of every device in the store.
pub fn device_facts(store: &Store) -> Result<Vec<DeviceFacts>, StoreError> {
    let mut out = Vec::new();
    for record in store.devices(None)? {
        let inv = store
            .inventory(&record.org, &record.device_id)?
            .unwrap_or_default();
        out.push(DeviceFacts {
            uuid: looks_like_uuid(&record.device_id).then(|| record.device_id.clone()),
            serial: inv.serial,
            hostname: if inv.hostname.is_empty() {
                record.hostname
            } else {
                inv.hostname
            },
            org: record.org,
            device_id: record.device_id,
        });
    }
    Ok(out)
}

/// Matches `export` against `store` and, unless `dry_run`, applies every matched row in
/// one transaction.
pub fn apply(
    store: &Store,
    export: &GlpiExport,
    dry_run: bool,
    now_ms: i64,
) -> Result<ImportOutcome, StoreError> {
    apply_in(store, export, None, None, dry_run, now_ms)
}

/// [`apply`], matching only against the devices of `org` when given (the GLPI link
/// belongs to one org: another org's PC with the same serial is not this asset).
pub fn apply_in(
    store: &Store,
    export: &GlpiExport,
    org: Option<&str>,
    keep: Option<&Keep>,
    dry_run: bool,
    now_ms: i64,
) -> Result<ImportOutcome, StoreError> {
    let mut facts = device_facts(store)?;
    if let Some(org) = org {
        facts.retain(|f| f.org == org);
    }
    info!(
        rows = export.rows.len(),
        devices = facts.len(),
        "matching GLPI rows"
    );
    let summary = glpi::match_rows(&export.rows, &facts);
    let mut records = Vec::with_capacity(summary.matched.len());
    for (i, m) in summary.matched.iter().enumerate() {
        if let Some(row) = export.rows.iter().find(|r| r.line == m.line) {
            records.push((
                m.device.org.clone(),
                m.device.device_id.clone(),
                AssetRecord::from_row(row, m.matched_by, now_ms),
            ));
        }
        if (i + 1).is_multiple_of(PROGRESS_EVERY_ROWS) {
            info!(
                rows = i + 1,
                of = summary.matched.len(),
                "preparing matched rows"
            );
        }
    }
    let (agentless, mut outcome) = match keep {
        Some(k) => {
            let (assets, o) = agentless_assets(k, export, &summary, now_ms);
            (Some((k, assets)), Some(o))
        }
        None => (None, None),
    };
    let (written, unchanged) = if dry_run {
        (0, 0)
    } else {
        let batch = agentless.map(|(k, assets)| Agentless {
            org: &k.org,
            kinds: &k.kinds,
            assets,
        });
        let w = store.put_glpi(&records, batch.as_ref())?;
        if let Some(o) = outcome.as_mut() {
            o.written = w.agentless_written;
            o.unchanged = w.agentless_unchanged;
            o.removed = w.agentless_removed;
            o.duplicates = w.agentless_duplicates;
        }
        (w.written, w.unchanged)
    };
    Ok(ImportOutcome {
        rows: export.rows.len(),
        separator: export.separator,
        ignored_columns: export.ignored_columns.clone(),
        summary,
        written,
        unchanged,
        agentless: outcome,
        dry_run,
    })
}

/// The unmatched rows and the extra ones as assets without agent.
fn agentless_assets(
    keep: &Keep,
    export: &GlpiExport,
    summary: &MatchSummary,
    now_ms: i64,
) -> (Vec<FleetAsset>, AgentlessOutcome) {
    let mut out = AgentlessOutcome {
        org: keep.org.clone(),
        ..Default::default()
    };
    let unmatched = summary
        .unmatched
        .iter()
        .filter_map(|line| export.rows.iter().find(|r| r.line == *line))
        .map(|row| {
            let id = keep.ids.get(&row.line).copied().unwrap_or(0);
            (keep.rows_kind, id, row)
        });
    let extra = keep.extra.iter().map(|(k, id, row)| (*k, *id, row));
    let mut assets = Vec::new();
    for (kind, id, row) in unmatched.chain(extra) {
        match FleetAsset::from_row(row, kind, id, now_ms) {
            Some(a) => assets.push(a),
            None => out.unidentified.push(row.line),
        }
    }
    out.kept = AssetKind::ALL
        .iter()
        .map(|k| (*k, assets.iter().filter(|a| a.kind == k.as_str()).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    (assets, out)
}

/// The whole command: read and parse `file`, open the store at `location`, match,
/// apply. Returns the summary to print.
pub fn run(
    file: &Path,
    location: &Location,
    target: &Target,
    dry_run: bool,
    now_ms: i64,
) -> Result<String, ImportError> {
    let bytes = std::fs::read(file).map_err(|source| ImportError::Read {
        path: file.to_owned(),
        source,
    })?;
    info!(file = %file.display(), bytes = bytes.len(), "parsing the GLPI export");
    let export = glpi::parse(&bytes).map_err(|source| ImportError::Glpi {
        path: file.to_owned(),
        source,
    })?;
    info!(rows = export.rows.len(), "GLPI export parsed");
    if let Location::Embedded { dir, .. } = location
        && !dir.exists()
    {
        // Opening would create an empty store; every row would be "unmatched".
        return Err(ImportError::NoStore { path: dir.clone() });
    }
    let store = Store::open_location(location)?;
    let keep = target.keep_org.as_ref().map(|org| Keep {
        org: org.clone(),
        kinds: vec![target.kind],
        rows_kind: target.kind,
        ids: HashMap::new(),
        extra: Vec::new(),
    });
    // A monitor never has an agent: its rows are all kept, none matched.
    let (rows, extra): (Vec<GlpiRow>, Vec<(AssetKind, u64, GlpiRow)>) = match target.kind {
        AssetKind::Computer => (export.rows.clone(), Vec::new()),
        AssetKind::Monitor => (
            Vec::new(),
            export
                .rows
                .iter()
                .map(|r| (AssetKind::Monitor, 0, r.clone()))
                .collect(),
        ),
    };
    let keep = keep.map(|k| Keep { extra, ..k });
    let matchable = GlpiExport {
        rows,
        ..export.clone()
    };
    let mut outcome = apply_in(
        &store,
        &matchable,
        target.match_org.as_deref(),
        keep.as_ref(),
        dry_run,
        now_ms,
    )?;
    outcome.rows = export.rows.len();
    Ok(render(&outcome))
}

/// Which org a CSV import is for and what its rows are.
#[derive(Debug, Clone)]
pub struct Target {
    /// Match only this org's devices (`--org`); all orgs' when `None`.
    pub match_org: Option<String>,
    /// The org that keeps the rows without agent; `None`: not kept (several orgs and
    /// none named).
    pub keep_org: Option<String>,
    pub kind: AssetKind,
}

/// The summary for the operator: counts, then each unmatched and ambiguous line.
pub fn render(o: &ImportOutcome) -> String {
    let mut out = format!(
        "GLPI export: {} rows (separator '{}')\n",
        o.rows, o.separator
    );
    out.push_str(&render_outcome(o));
    out
}

/// Everything of [`render`] after its first line: the part `glpi sync` shares.
pub fn render_outcome(o: &ImportOutcome) -> String {
    let s = &o.summary;
    let mut out = String::new();
    if !o.ignored_columns.is_empty() {
        out.push_str(&format!(
            "ignored columns: {}\n",
            o.ignored_columns.join(", ")
        ));
    }
    out.push_str(&format!(
        "matched: {}, unmatched: {}, ambiguous: {}\n",
        s.matched.len(),
        s.unmatched.len(),
        s.ambiguous.len()
    ));
    for m in &s.matched {
        out.push_str(&format!(
            "  line {}: {} (by {})\n",
            m.line,
            m.device,
            m.matched_by.as_str()
        ));
    }
    if !s.unmatched.is_empty() {
        let lines: Vec<String> = s.unmatched.iter().map(usize::to_string).collect();
        out.push_str(&format!(
            "unmatched lines (no known device): {}\n",
            lines.join(", ")
        ));
    }
    for a in &s.ambiguous {
        out.push_str(&format!(
            "  ambiguous line {}: {} (not applied)\n",
            a.line, a.reason
        ));
    }
    match &o.agentless {
        Some(a) => {
            let kept: Vec<String> = a
                .kept
                .iter()
                .map(|(k, n)| format!("{n} {}(s)", k.as_str()))
                .collect();
            out.push_str(&format!(
                "kept without agent for org {}: {}\n",
                a.org,
                if kept.is_empty() {
                    "none".to_owned()
                } else {
                    kept.join(", ")
                }
            ));
            if !a.unidentified.is_empty() {
                let lines: Vec<String> = a.unidentified.iter().map(usize::to_string).collect();
                out.push_str(&format!(
                    "not kept (no serial, name or inventory number): lines {}\n",
                    lines.join(", ")
                ));
            }
            if !o.dry_run {
                out.push_str(&format!(
                    "without agent: {} written, {} unchanged, {} removed{}\n",
                    a.written,
                    a.unchanged,
                    a.removed,
                    if a.duplicates > 0 {
                        format!(", {} listed twice (kept once)", a.duplicates)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        None if !s.unmatched.is_empty() => out.push_str(
            "unmatched rows not kept: several orgs and none named (give --org or set glpi.org)\n",
        ),
        None => {}
    }
    if o.dry_run {
        out.push_str("dry run: nothing applied\n");
    } else {
        out.push_str(&format!(
            "applied: {} written, {} unchanged\n",
            o.written, o.unchanged
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::{Inventory, ReportBatch};

    const NOW: i64 = 1_790_000_000_000;

    /// A French GLPI export with a BOM and `;`: one row per matching rule, an unknown
    /// device, and two rows claiming one serial.
    const EXPORT: &str = "\u{feff}ID;Nom;Numéro de série;Numéro d'inventaire;Lieu;Date d'achat;UUID;Durée de vie\n\
        101;PC-ACCUEIL-01;5CG1234XYZ;INV-001;Mairie > Accueil;12/03/2019;;\n\
        102;pc-urba-03;;INV-003;Urbanisme;2020-06-01;4c4c4544-0042-3510-8052-b2c04f4b4e33;\n\
        103;portable-dg;;INV-005;Direction;01/09/2021;;7 ans\n\
        104;PC-INCONNU;ZZZ999;INV-009;Cave;2015-01-01;;\n\
        105;PC-COMPTA-A;CZC8351KQ4;INV-010;Compta;2018-01-01;;\n\
        106;PC-COMPTA-B;CZC8351KQ4;INV-011;Compta;2018-02-01;;\n";

    fn seed(store: &Store) {
        let devices = [
            ("d-accueil", "5CG1234XYZ", "pc-accueil-01.mairie.local"),
            ("4c4c4544-0042-3510-8052-b2c04f4b4e33", "", "pc-urba-03"),
            ("d-dg", "", "PORTABLE-DG"),
            ("d-compta", "CZC8351KQ4", "pc-compta"),
        ];
        for (id, serial, host) in devices {
            let batch = ReportBatch {
                device_id: id.into(),
                inventory: Some(Inventory {
                    hostname: host.into(),
                    serial: serial.into(),
                    ..Default::default()
                }),
                agent_version: "0.1.0".into(),
                ..Default::default()
            };
            store.apply_batch("mairie", &batch, NOW).unwrap();
        }
        store.flush().unwrap();
    }

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        seed(&Store::open(&store_dir).unwrap());
        let file = dir.path().join("export.csv");
        (dir, store_dir, file)
    }

    fn run(
        file: &Path,
        _data_dir: &Path,
        store_dir: &Path,
        dry_run: bool,
        now_ms: i64,
    ) -> Result<String, ImportError> {
        super::run(
            file,
            &Location::Embedded {
                dir: store_dir.to_owned(),
                cache_mib: 8,
            },
            &Target {
                match_org: None,
                keep_org: Some("mairie".into()),
                kind: AssetKind::Computer,
            },
            dry_run,
            now_ms,
        )
    }

    #[test]
    fn a_french_export_is_matched_applied_once_and_reimported_as_a_no_op() {
        let (dir, store_dir, file) = setup();
        std::fs::write(&file, EXPORT).unwrap();

        let dry = run(&file, dir.path(), &store_dir, true, NOW).unwrap();
        assert!(dry.contains("dry run: nothing applied"), "{dry}");
        {
            let store = Store::open(&store_dir).unwrap();
            assert_eq!(store.asset("mairie", "d-accueil").unwrap(), None);
        }

        let out = run(&file, dir.path(), &store_dir, false, NOW).unwrap();
        assert!(out.contains("GLPI export: 6 rows (separator ';')"), "{out}");
        assert!(
            out.contains("matched: 3, unmatched: 1, ambiguous: 2"),
            "{out}"
        );
        assert!(
            out.contains("line 2: mairie/d-accueil (by serial)"),
            "{out}"
        );
        assert!(
            out.contains("line 3: mairie/4c4c4544-0042-3510-8052-b2c04f4b4e33 (by uuid)"),
            "{out}"
        );
        assert!(out.contains("line 4: mairie/d-dg (by hostname)"), "{out}");
        assert!(
            out.contains("unmatched lines (no known device): 5"),
            "{out}"
        );
        assert!(
            out.contains("ambiguous line 6: lines 6, 7 all match"),
            "{out}"
        );
        assert!(out.contains("applied: 3 written, 0 unchanged"), "{out}");
        {
            let store = Store::open(&store_dir).unwrap();
            let a = store.asset("mairie", "d-accueil").unwrap().unwrap();
            assert_eq!(
                (
                    a.acquisition_date.as_str(),
                    a.inventory_number.as_str(),
                    a.location.as_str(),
                    a.matched_by.as_str()
                ),
                ("2019-03-12", "INV-001", "Mairie > Accueil", "serial")
            );
            let dg = store.asset("mairie", "d-dg").unwrap().unwrap();
            assert_eq!(dg.lifespan_months, 84);
            assert_eq!(store.asset("mairie", "d-compta").unwrap(), None);
            // The unknown PC is kept without agent; the ambiguous rows are not.
            let kept = store.fleet_assets(Some("mairie")).unwrap();
            assert_eq!(kept.len(), 1);
            assert_eq!(kept[0].1.identity, "serial:ZZZ999");
            assert_eq!(kept[0].1.acquisition_date, "2015-01-01");
        }
        assert!(
            out.contains("kept without agent for org mairie: 1 computer(s)"),
            "{out}"
        );
        assert!(
            out.contains("without agent: 1 written, 0 unchanged, 0 removed"),
            "{out}"
        );

        let again = run(&file, dir.path(), &store_dir, false, NOW + 1000).unwrap();
        assert!(again.contains("applied: 0 written, 3 unchanged"), "{again}");
        assert!(
            again.contains("without agent: 0 written, 1 unchanged, 0 removed"),
            "{again}"
        );
        let store = Store::open(&store_dir).unwrap();
        assert_eq!(
            store
                .asset("mairie", "d-accueil")
                .unwrap()
                .unwrap()
                .imported_at_unix_ms,
            NOW
        );
    }

    #[test]
    fn a_bad_line_names_line_and_column_and_applies_nothing() {
        let (dir, store_dir, file) = setup();
        let bad = EXPORT.replace("2020-06-01", "2020-13-45");
        std::fs::write(&file, bad).unwrap();
        let e = run(&file, dir.path(), &store_dir, false, NOW).unwrap_err();
        assert!(matches!(e, ImportError::Glpi { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("Date d'achat"), "{msg}");
        assert!(msg.contains("nothing was imported"), "{msg}");
        let store = Store::open(&store_dir).unwrap();
        // Line 2 was good, but nothing of the file is applied.
        assert_eq!(store.asset("mairie", "d-accueil").unwrap(), None);
    }

    #[test]
    fn an_import_goes_through_while_another_process_holds_the_store_open() {
        let (dir, store_dir, file) = setup();
        std::fs::write(&file, EXPORT).unwrap();
        // What a running collector holds: the store open, a reader mid-transaction.
        let held = Store::open(&store_dir).unwrap();
        let out = run(&file, dir.path(), &store_dir, false, NOW).unwrap();
        assert!(out.contains("applied: 3 written"), "{out}");
        // The holder sees the import without reopening.
        assert!(held.asset("mairie", "d-accueil").unwrap().is_some());
    }

    #[test]
    fn uuid_shape() {
        assert!(looks_like_uuid("4c4c4544-0042-3510-8052-b2c04f4b4e33"));
        assert!(!looks_like_uuid("4c4c45440042351080 52b2c04f4b4e33"));
        assert!(!looks_like_uuid("0123456789abcdef0123456789abcdef"));
        assert!(!looks_like_uuid("d-accueil"));
    }
}
