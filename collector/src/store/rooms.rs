//! Server rooms in the store: the `rooms` tree, one JSON [`Room`] per `org \0 name`.
//! A room names its member devices (a tag or hostnames), its meters by role and its
//! cooling setpoint changes; the setpoint report reads them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, device_key, prefix};

/// The meter roles of a room.
pub const ROLES: [&str; 5] = ["it", "total", "cooling", "inlet", "outdoor"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetpointChange {
    /// When the setpoint changed, Unix ms.
    pub at_ms: i64,
    pub from_c: f64,
    pub to_c: f64,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Room {
    pub org: String,
    pub name: String,
    pub site: String,
    /// Member devices: those whose inventory has this tag…
    pub tag: String,
    /// …or these hostnames (or device ids).
    pub hosts: Vec<String>,
    /// Role (`it`, `total`, `cooling`, `inlet`, `outdoor`) → meter id.
    pub meters: BTreeMap<String, String>,
    /// In time order.
    pub setpoints: Vec<SetpointChange>,
}

pub fn get_room(store: &Store, org: &str, name: &str) -> Result<Option<Room>, StoreError> {
    let key = device_key(org, name);
    match store.rooms()?.get(&key)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                tree: "rooms",
                key: format!("{org}/{name}"),
                reason: e.to_string(),
            }),
    }
}

pub fn put_room(store: &Store, room: &Room) -> Result<(), StoreError> {
    let v = serde_json::to_vec(room).unwrap_or_default();
    store
        .rooms()?
        .insert(device_key(&room.org, &room.name), v)?;
    store.flush()
}

pub fn rooms_of(store: &Store, org: Option<&str>) -> Result<Vec<Room>, StoreError> {
    let tree = store.rooms()?;
    let iter = match org {
        Some(o) => tree.scan_prefix(prefix(o)),
        None => tree.iter(),
    };
    let mut out = Vec::new();
    for e in iter {
        let (k, v) = e?;
        out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
            tree: "rooms",
            key: String::from_utf8_lossy(&k).replace('\0', "/"),
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}
