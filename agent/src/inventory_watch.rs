//! When to send the inventory again: it is sent at start, then re-probed every
//! [`REPROBE_INTERVAL`] and sent only when it changed (a RAM upgrade, a new monitor),
//! so the collector's inventory history records real changes and the network does
//! not carry the same inventory every hour.
//!
//! A change is a different hash of the prost encoding: the same message always encodes
//! to the same bytes (fields in tag order), so equal inventories hash equally. Pure.

use std::time::Duration;

use prost::Message;
use veille_proto::v1::Inventory;

/// How often the inventory is probed again. Hardware changes rarely; an hour bounds
/// how late the collector learns of one at the cost of a few file reads.
pub const REPROBE_INTERVAL: Duration = Duration::from_secs(3600);

/// FNV-1a 64 of the inventory's prost encoding: stable across Rust versions and runs,
/// unlike `DefaultHasher`, so it could be persisted later.
pub fn inventory_hash(inventory: &Inventory) -> u64 {
    inventory
        .encode_to_vec()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Remembers the hash of the inventory last handed to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryWatch {
    last_hash: u64,
}

impl InventoryWatch {
    /// Starts from the inventory sent at start.
    pub fn new(sent: &Inventory) -> Self {
        Self {
            last_hash: inventory_hash(sent),
        }
    }

    /// `Some(inventory)` when it differs from the last one handed over (which it now
    /// becomes), `None` when it is the same.
    pub fn observe(&mut self, inventory: Inventory) -> Option<Inventory> {
        let h = inventory_hash(&inventory);
        if h == self.last_hash {
            return None;
        }
        self.last_hash = h;
        Some(inventory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::Monitor;

    #[test]
    fn only_a_changed_inventory_is_handed_over() {
        let first = Inventory {
            hostname: "pc-01".into(),
            ram_bytes: 8 << 30,
            ..Default::default()
        };
        let mut watch = InventoryWatch::new(&first);
        assert_eq!(watch.observe(first.clone()), None);
        let upgraded = Inventory {
            ram_bytes: 16 << 30,
            ..first.clone()
        };
        assert_eq!(watch.observe(upgraded.clone()), Some(upgraded.clone()));
        assert_eq!(watch.observe(upgraded.clone()), None);
        let with_monitor = Inventory {
            monitors: vec![Monitor {
                manufacturer: "DEL".into(),
                ..Default::default()
            }],
            ..upgraded
        };
        assert!(watch.observe(with_monitor).is_some());
        // Back to the first: a change too.
        assert!(watch.observe(first.clone()).is_some());
        assert_eq!(inventory_hash(&first), inventory_hash(&first.clone()));
        assert_ne!(
            inventory_hash(&first),
            inventory_hash(&Inventory::default())
        );
    }
}
