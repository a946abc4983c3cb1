//! Hourly grid carbon intensity in the store: the `grid_intensity` kv tree, one entry
//! per `zone \0 hour` (hour start as Unix ms, big-endian with the sign bit flipped, so
//! a zone's hours scan in time order) holding g CO2e/kWh as an f64. Written by `import carbon`, read by the
//! consumption report for the zones its orgs and sites name.

use crate::store::engine::Tree;
use crate::store::{Store, StoreError};

fn zone_prefix(zone: &str) -> Vec<u8> {
    let mut k = zone.as_bytes().to_vec();
    k.push(0);
    k
}

fn key(zone: &str, hour: i64) -> Vec<u8> {
    let mut k = zone_prefix(zone);
    k.extend_from_slice(&((hour as u64) ^ SIGN).to_be_bytes());
    k
}

const SIGN: u64 = 1 << 63;

fn hour_of(bytes: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(bytes)
        .ok()
        .map(|b| (u64::from_be_bytes(b) ^ SIGN) as i64)
}

/// Stores `hours` ((hour start, g/kWh)) for `zone`, replacing hours already there (a
/// consolidated or definitive file supersedes the real-time one), in one transaction,
/// then makes it durable.
pub fn put_intensity(store: &Store, zone: &str, hours: &[(i64, f64)]) -> Result<(), StoreError> {
    store.write(|tx| {
        for &(hour, g) in hours {
            tx.kv_put(Tree::GridIntensity, &key(zone, hour), &g.to_le_bytes())?;
        }
        Ok(())
    })?;
    store.flush()
}

/// `zone`'s hours starting in `[from, to)`, by hour.
pub fn intensity_between(
    store: &Store,
    zone: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, f64)>, StoreError> {
    let p = zone_prefix(zone);
    let entries = store.read(|tx| tx.kv_scan(Tree::GridIntensity, &p))?;
    let mut out = Vec::new();
    for (k, v) in entries {
        let (Some(hour), Ok(g)) = (
            hour_of(&k[p.len()..]),
            <[u8; 8]>::try_from(v.as_slice()).map(f64::from_le_bytes),
        ) else {
            return Err(StoreError::Corrupt {
                tree: Tree::GridIntensity.name(),
                key: crate::store::printable(&k),
                reason: "not an hour and a g/kWh value".to_owned(),
            });
        };
        if (from..to).contains(&hour) {
            out.push((hour, g));
        }
    }
    Ok(out)
}

/// Zones with intensities, each with its number of hours and first and last hour.
pub fn zones(store: &Store) -> Result<Vec<(String, usize, i64, i64)>, StoreError> {
    let entries = store.read(|tx| tx.kv_scan(Tree::GridIntensity, b""))?;
    let mut out: Vec<(String, usize, i64, i64)> = Vec::new();
    for (k, _) in entries {
        let Some(nul) = k.iter().position(|&b| b == 0) else {
            continue;
        };
        let zone = String::from_utf8_lossy(&k[..nul]).into_owned();
        let Some(hour) = hour_of(&k[nul + 1..]) else {
            continue;
        };
        match out.last_mut() {
            Some(z) if z.0 == zone => {
                z.1 += 1;
                z.3 = hour;
            }
            _ => out.push((zone, 1, hour, hour)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_round_trip_by_zone_and_a_new_file_replaces_old_hours() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put_intensity(&store, "FR", &[(0, 30.0), (3_600_000, 45.5)]).unwrap();
        put_intensity(&store, "FR-ARA", &[(0, 12.0)]).unwrap();
        put_intensity(&store, "FR", &[(3_600_000, 44.0), (-3_600_000, 10.0)]).unwrap();
        assert_eq!(
            intensity_between(&store, "FR", -3_600_000, 7_200_000).unwrap(),
            [(-3_600_000, 10.0), (0, 30.0), (3_600_000, 44.0)]
        );
        assert_eq!(
            intensity_between(&store, "FR", 0, 3_600_000).unwrap(),
            [(0, 30.0)]
        );
        assert_eq!(
            zones(&store).unwrap(),
            [
                ("FR".to_owned(), 3, -3_600_000, 3_600_000),
                ("FR-ARA".to_owned(), 1, 0, 0)
            ]
        );
    }
}
