//! Server rooms in the store: the `rooms` kv tree, one JSON [`Room`] per `org \0 name`.
//! A room names its member devices (a tag or hostnames), its meters by role and its
//! cooling setpoint changes; the setpoint report reads them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::engine::Tree;
use crate::store::{Store, StoreError, decode_json, device_key, encode_json, prefix};

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
    match store.read(|tx| tx.kv_get(Tree::Rooms, &key))? {
        None => Ok(None),
        Some(v) => decode_json(Tree::Rooms, &key, &v).map(Some),
    }
}

pub fn put_room(store: &Store, room: &Room) -> Result<(), StoreError> {
    let v = encode_json(room);
    store.write(|tx| tx.kv_put(Tree::Rooms, &device_key(&room.org, &room.name), &v))?;
    store.flush()
}

pub fn rooms_of(store: &Store, org: Option<&str>) -> Result<Vec<Room>, StoreError> {
    let p = org.map(prefix).unwrap_or_default();
    store
        .read(|tx| tx.kv_scan(Tree::Rooms, &p))?
        .iter()
        .map(|(k, v)| decode_json(Tree::Rooms, k, v))
        .collect()
}
