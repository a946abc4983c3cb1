//! The I/O edge of the renewal report: reads what [`veille_domain::renewal::report`] needs from
//! the store (device records, latest inventories, their history, GLPI asset facts, the
//! assets without agent) and
//! renders it; `report renewal` and `GET /api/v1/reports/renewal` both end here.

use veille_proto::v1::Inventory;

use crate::reports::{OutputFormat, ReportError};
use crate::store::{Store, StoreError};
use veille_domain::energy::catalogue::DeviceClass;
use veille_domain::renewal::horizon::Date;
use veille_domain::renewal::inventory_diff;
use veille_domain::renewal::report::{
    self as renewal_report, ComputerFacts, InventoryChange, MonitorFacts, RenewalConfig,
    RenewalConfigError, RenewalContext, RenewalReport,
};

/// The renewal settings of the configuration, with the overrides file (if named) read
/// from disk: the domain takes its text.
pub fn context(config: &RenewalConfig) -> Result<RenewalContext, RenewalConfigError> {
    let text = if config.overrides.is_empty() {
        None
    } else {
        Some(
            std::fs::read_to_string(&config.overrides).map_err(|source| {
                RenewalConfigError::Read {
                    path: config.overrides.clone(),
                    source,
                }
            })?,
        )
    };
    RenewalContext::from_config(config, text.as_deref())
}

/// The facts of every computer of `org` (or of all orgs).
pub fn load(store: &Store, org: Option<&str>) -> Result<Vec<ComputerFacts>, StoreError> {
    let mut out = Vec::new();
    for record in store.devices(org)? {
        let inv = store
            .inventory(&record.org, &record.device_id)?
            .unwrap_or_default();
        let history = store.inventory_history(&record.org, &record.device_id)?;
        out.push(ComputerFacts {
            hostname: if inv.hostname.is_empty() {
                record.hostname.clone()
            } else {
                inv.hostname.clone()
            },
            site: inv.site.clone(),
            class: DeviceClass::from_wire(inv.chassis),
            bios_release: Date::parse_iso(&inv.bios_release_date),
            first_seen_unix_ms: record.first_seen_unix_ms,
            last_seen_unix_ms: record.last_seen_unix_ms,
            asset: store.asset(&record.org, &record.device_id)?,
            monitors: inv
                .monitors
                .iter()
                .map(|m| MonitorFacts {
                    label: inventory_diff::monitor_label(m),
                    year: m.year_of_manufacture,
                    week: m.week_of_manufacture,
                })
                .collect(),
            inventory_changes: changes(&history, &inv),
            org: record.org,
            device_id: record.device_id,
        });
    }
    Ok(out)
}

/// Each replaced inventory against the one that replaced it; versions that differ only
/// in fields that are not hardware (battery wear, agent version) are left out.
fn changes(history: &[(i64, Inventory)], latest: &Inventory) -> Vec<InventoryChange> {
    let mut out = Vec::new();
    for (i, (at_ms, old)) in history.iter().enumerate() {
        let new = history.get(i + 1).map_or(latest, |(_, inv)| inv);
        let lines = inventory_diff::changes(old, new);
        if !lines.is_empty() {
            out.push(InventoryChange {
                at: Date::from_days_since_epoch(at_ms.div_euclid(86_400_000) as i32).to_string(),
                changes: lines,
            });
        }
    }
    out
}

/// The report on `store` at `now_ms`.
pub fn report(
    store: &Store,
    ctx: &RenewalContext,
    org: Option<&str>,
    now_ms: i64,
) -> Result<RenewalReport, StoreError> {
    Ok(renewal_report::report_fleet(
        &load(store, org)?,
        &store.fleet_assets(org)?,
        ctx,
        now_ms,
    ))
}

/// The report rendered in `format`.
pub fn output(
    store: &Store,
    ctx: &RenewalContext,
    org: Option<&str>,
    format: OutputFormat,
    now_ms: i64,
) -> Result<String, ReportError> {
    let r = report(store, ctx, org, now_ms)?;
    Ok(match format {
        OutputFormat::Table => renewal_report::to_table(&r),
        OutputFormat::Csv => renewal_report::to_csv(&r),
        OutputFormat::Json => renewal_report::to_json(&r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::{ChassisClass, Monitor, ReportBatch};

    #[test]
    fn the_store_feeds_the_report_with_history_and_monitors() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = 1_790_000_000_000;
        let inv = |ram_gib: u64| Inventory {
            hostname: "pc-01".into(),
            chassis: ChassisClass::Laptop as i32,
            bios_release_date: "2020-02-03".into(),
            ram_bytes: ram_gib << 30,
            monitors: vec![Monitor {
                manufacturer: "DEL".into(),
                year_of_manufacture: 2018,
                ..Default::default()
            }],
            ..Default::default()
        };
        for (ram, at) in [(8, now - 10_000_000), (16, now - 5_000_000)] {
            let b = ReportBatch {
                device_id: "dev-1".into(),
                inventory: Some(inv(ram)),
                ..Default::default()
            };
            store.apply_batch("acme", &b, at).unwrap();
        }
        let ctx = context(&RenewalConfig {
            approaching_months: 6,
            overrides: String::new(),
        })
        .unwrap();
        let r = report(&store, &ctx, None, now).unwrap();
        assert_eq!(r.devices.len(), 2);
        let pc = &r.devices[0];
        assert_eq!((pc.class, pc.age_source), ("laptop", "bios_estimate"));
        assert_eq!(pc.inventory_changes.len(), 1);
        assert_eq!(pc.inventory_changes[0].changes, ["RAM: 8.0 GiB → 16.0 GiB"]);
        assert_eq!(r.devices[1].age_source, "edid_manufacture");
        assert!(
            report(&store, &ctx, Some("other"), now)
                .unwrap()
                .devices
                .is_empty()
        );
    }

    #[test]
    fn an_overrides_file_is_read_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("renewal.toml");
        std::fs::write(
            &path,
            "[horizons]\nlaptop = { years = 8, source = \"our policy\" }\n",
        )
        .unwrap();
        let ctx = context(&RenewalConfig {
            approaching_months: 6,
            overrides: path.to_string_lossy().into_owned(),
        })
        .unwrap();
        assert_eq!(ctx.policy.horizon(DeviceClass::Laptop).years, 8);
        let e = context(&RenewalConfig {
            approaching_months: 6,
            overrides: "/nonexistent/renewal.toml".into(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/renewal.toml"), "{e}");
    }
}
