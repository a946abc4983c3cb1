//! The GLPI import's writes: matched devices' asset facts (`asset` tree) and the
//! assets without agent (`fleet_asset` tree, one JSON [`FleetAsset`] per
//! `org \0 kind \0 identity`), in one transaction, so an import or sync is applied
//! whole or not at all. What to write for the agentless ones is
//! [`veille_domain::renewal::fleet::plan`]'s decision; this file only keeps bytes.

use veille_domain::renewal::asset::AssetRecord;
use veille_domain::renewal::fleet::{self, AssetKind, FleetAsset};

use crate::store::engine::{Tree, Tx};
use crate::store::{Store, StoreError, decode_json, device_key, encode_json, prefix};

/// An import's assets without agent for one org.
#[derive(Debug, Clone)]
pub struct Agentless<'a> {
    pub org: &'a str,
    /// The kinds the import covers: stored assets of these kinds that it no longer
    /// lists are removed.
    pub kinds: &'a [AssetKind],
    pub assets: Vec<FleetAsset>,
}

/// What [`Store::put_glpi`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlpiWrite {
    /// Matched devices' records written / already equal.
    pub written: usize,
    pub unchanged: usize,
    /// Assets without agent written / already equal / removed / listed twice.
    pub agentless_written: usize,
    pub agentless_unchanged: usize,
    pub agentless_removed: usize,
    pub agentless_duplicates: usize,
}

fn fleet_key(org: &str, kind: &str, identity: &str) -> Vec<u8> {
    let mut k = prefix(org);
    k.extend_from_slice(kind.as_bytes());
    k.push(0);
    k.extend_from_slice(identity.as_bytes());
    k
}

fn scan(tx: &mut dyn Tx, org: Option<&str>) -> Result<Vec<(String, FleetAsset)>, StoreError> {
    let p = org.map(prefix).unwrap_or_default();
    tx.kv_scan(Tree::FleetAsset, &p)?
        .iter()
        .map(|(k, v)| {
            let org = k
                .split(|&b| b == 0)
                .next()
                .map(|o| String::from_utf8_lossy(o).into_owned())
                .unwrap_or_default();
            Ok((org, decode_json(Tree::FleetAsset, k, v)?))
        })
        .collect()
}

impl Store {
    /// The assets without agent of `org` (all orgs with `None`), as (org, asset), in
    /// (org, kind, identity) order.
    pub fn fleet_assets(&self, org: Option<&str>) -> Result<Vec<(String, FleetAsset)>, StoreError> {
        self.read(|tx| scan(tx, org))
    }

    /// Writes matched devices' asset records (a record whose facts equal the stored
    /// ones is left as it is) and, when given, replaces one org's assets without agent
    /// of the import's kinds; all in one transaction, then flushes.
    pub fn put_glpi(
        &self,
        records: &[(String, String, AssetRecord)],
        agentless: Option<&Agentless<'_>>,
    ) -> Result<GlpiWrite, StoreError> {
        let out = self.write(|tx| {
            let mut w = GlpiWrite::default();
            for (org, device_id, record) in records {
                let key = device_key(org, device_id);
                let same = match tx.kv_get(Tree::Asset, &key)? {
                    Some(v) => {
                        decode_json::<AssetRecord>(Tree::Asset, &key, &v)?.same_facts(record)
                    }
                    None => false,
                };
                if same {
                    w.unchanged += 1;
                } else {
                    tx.kv_put(Tree::Asset, &key, &encode_json(record))?;
                    w.written += 1;
                }
            }
            if let Some(a) = agentless {
                let old: Vec<FleetAsset> =
                    scan(tx, Some(a.org))?.into_iter().map(|(_, f)| f).collect();
                let plan = fleet::plan(a.kinds, &old, a.assets.clone());
                for f in &plan.put {
                    tx.kv_put(
                        Tree::FleetAsset,
                        &fleet_key(a.org, &f.kind, &f.identity),
                        &encode_json(f),
                    )?;
                }
                for (kind, identity) in &plan.remove {
                    tx.kv_delete(Tree::FleetAsset, &fleet_key(a.org, kind, identity))?;
                }
                w.agentless_written = plan.put.len();
                w.agentless_unchanged = plan.unchanged;
                w.agentless_removed = plan.remove.len();
                w.agentless_duplicates = plan.duplicates;
            }
            Ok(w)
        })?;
        self.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_domain::renewal::glpi::GlpiRow;

    fn asset(kind: AssetKind, name: &str, at: i64) -> FleetAsset {
        let row = GlpiRow {
            name: Some(name.into()),
            ..Default::default()
        };
        FleetAsset::from_row(&row, kind, 0, at).unwrap()
    }

    #[test]
    fn agentless_assets_are_replaced_per_org_and_kind_with_the_matched_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let kinds = [AssetKind::Computer, AssetKind::Monitor];
        let first = Agentless {
            org: "mairie",
            kinds: &kinds,
            assets: vec![
                asset(AssetKind::Computer, "PC-A", 1),
                asset(AssetKind::Monitor, "ECRAN-1", 1),
            ],
        };
        let matched = [("mairie".into(), "d-1".into(), AssetRecord::default())];
        let w = store.put_glpi(&matched, Some(&first)).unwrap();
        assert_eq!((w.written, w.agentless_written), (1, 2));
        // Another org's asset is not touched by mairie's imports.
        let other = Agentless {
            org: "ecole",
            kinds: &kinds,
            assets: vec![asset(AssetKind::Computer, "PC-A", 1)],
        };
        store.put_glpi(&[], Some(&other)).unwrap();

        // PC-A got an agent: no longer listed without one, so removed; the monitor
        // stays, with its first import time.
        let second = Agentless {
            org: "mairie",
            kinds: &kinds,
            assets: vec![asset(AssetKind::Monitor, "ECRAN-1", 2)],
        };
        let w = store.put_glpi(&[], Some(&second)).unwrap();
        assert_eq!(
            (
                w.agentless_written,
                w.agentless_unchanged,
                w.agentless_removed
            ),
            (0, 1, 1)
        );
        let mairie = store.fleet_assets(Some("mairie")).unwrap();
        assert_eq!(mairie.len(), 1);
        assert_eq!(
            (mairie[0].0.as_str(), mairie[0].1.identity.as_str()),
            ("mairie", "name:ecran-1")
        );
        assert_eq!(mairie[0].1.first_imported_unix_ms, 1);
        let all = store.fleet_assets(None).unwrap();
        let orgs: Vec<&str> = all.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(orgs, ["ecole", "mairie"]);
    }
}
