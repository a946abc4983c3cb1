//! What a storage engine gives the store: transactions over four kinds of data, in
//! the shapes the collector reads them in. The rules (idempotency, rollups, boot
//! sessions, purge) live once in [`crate::store::Store`]; an engine only keeps bytes.
//!
//! - **kv**: registries, small and read by key or key prefix (devices, boot sessions,
//!   inventories and their history, assets, policies, meters, rooms, conflicts). Keys
//!   are the byte strings of [`crate::store::keys`]; values are opaque.
//! - **raw hours**: the raw reports of one device whose start falls in one hour,
//!   packed into one value ([`crate::store::codec`]), with the seq range they hold so a
//!   resend is found without unpacking the device's history.
//! - **rollup days**: the hourly rollups of one device for one UTC day, packed. A
//!   month's report over a fleet reads them in a few ordered scans, one per span of
//!   devices ([`Tx::rollup_days_all`]).
//! - **readings**: meter readings, one row each (their volume is small beside reports).
//!
//! Every write happens inside [`Engine::write`], atomically; [`Engine::flush`] is the
//! durability point (an Ack is sent only after it). Several processes may open one
//! store (a CLI import while the server runs, collectors sharing PostgreSQL): an engine
//! serialises writers to the same device with [`Tx::lock_device`].

use crate::store::StoreError;

/// The registries kept in kv, by name: the one list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    /// The store's own facts (its format version).
    Meta,
    Devices,
    BootSessions,
    Inventory,
    InventoryHistory,
    Asset,
    Policies,
    Meters,
    Rooms,
    Conflicts,
    /// Hourly grid carbon intensity per zone (`import carbon`).
    GridIntensity,
    /// Wake-on-LAN requests waiting for their relay's Ack (`policy::wake`), keyed
    /// `org \0 relay \0 id`. Shared so a CLI or a second collector can queue one.
    Wake,
    /// Assets without agent (GLPI), the `fleet` module.
    FleetAsset,
}

impl Tree {
    /// Append only: PostgreSQL's registry locks are keyed by the index here.
    pub const ALL: [Tree; 13] = [
        Tree::Meta,
        Tree::Devices,
        Tree::BootSessions,
        Tree::Inventory,
        Tree::InventoryHistory,
        Tree::Asset,
        Tree::Policies,
        Tree::Meters,
        Tree::Rooms,
        Tree::Conflicts,
        Tree::GridIntensity,
        Tree::Wake,
        Tree::FleetAsset,
    ];

    /// The name stored in the engine (and shown in corruption errors).
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Devices => "devices",
            Tree::BootSessions => "boot_sessions",
            Tree::Inventory => "inventory",
            Tree::InventoryHistory => "inventory_history",
            Tree::Asset => "asset",
            Tree::Policies => "policies",
            Tree::Meters => "meters",
            Tree::Rooms => "rooms",
            Tree::Conflicts => "conflicts",
            Tree::GridIntensity => "grid_intensity",
            Tree::Wake => "wake_requests",
            Tree::FleetAsset => "fleet_asset",
        }
    }
}

/// The packed raw reports of one device-hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHour {
    /// Start of the hour (Unix ms, UTC): the hour of each report's start.
    pub hour: i64,
    pub seq_min: u64,
    pub seq_max: u64,
    /// Reports packed in `data`.
    pub reports: u64,
    /// [`crate::store::codec::encode_reports`].
    pub data: Vec<u8>,
}

/// kv entries: (key, value).
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One meter reading: (timestamp Unix ms, value in the quantity's unit, flags).
pub type Reading = (i64, f64, u8);

/// A device's identity in the engine.
#[derive(Debug, Clone, Copy)]
pub struct Dev<'a> {
    pub org: &'a str,
    pub device: &'a str,
}

/// Devices in a range of (org, device) order: from `first` (included) up to `end`
/// (excluded; `None`: to the last), of `org` only when it is given. A fleet's scan is
/// cut into spans so that several readers, each on its own connection and core, read
/// one fleet in parallel, and a caller can still put their devices back in order.
#[derive(Debug, Clone, Copy)]
pub struct DevSpan<'a> {
    pub org: Option<&'a str>,
    pub first: Dev<'a>,
    pub end: Option<Dev<'a>>,
}

impl<'a> DevSpan<'a> {
    /// Every device of `org` (all orgs with `None`).
    pub fn fleet(org: Option<&'a str>) -> Self {
        Self {
            org,
            first: Dev {
                org: org.unwrap_or(""),
                device: "",
            },
            end: None,
        }
    }
}

/// Callback of the set-oriented scans: (org, device, value).
pub type EachRaw<'a> = dyn FnMut(&str, &str, RawHour) -> Result<(), StoreError> + 'a;
pub type EachDay<'a> = dyn FnMut(&str, &str, i64, &[u8]) -> Result<(), StoreError> + 'a;

/// One transaction's view: reads see the transaction's own writes.
pub trait Tx {
    /// Serialises this transaction with any other writer to `dev` until it ends (a
    /// second collector on the same database, a CLI). Engines that run one writer at a
    /// time make it a no-op.
    fn lock_device(&mut self, dev: Dev<'_>) -> Result<(), StoreError>;

    fn kv_get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn kv_scan(&mut self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError>;
    fn kv_put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn kv_delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError>;

    fn raw_get(&mut self, dev: Dev<'_>, hour: i64) -> Result<Option<RawHour>, StoreError>;
    /// The device's raw hours holding any seq in `[lo, hi]`, by hour.
    fn raw_by_seq(&mut self, dev: Dev<'_>, lo: u64, hi: u64) -> Result<Vec<RawHour>, StoreError>;
    /// The device's raw hours starting in `[from_hour, to_hour)`, by hour.
    fn raw_range(
        &mut self,
        dev: Dev<'_>,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<RawHour>, StoreError>;
    fn raw_put(&mut self, dev: Dev<'_>, raw: &RawHour) -> Result<(), StoreError>;
    fn raw_delete(&mut self, dev: Dev<'_>, hour: i64) -> Result<(), StoreError>;
    /// Every raw hour of every device, by (org, device, hour).
    fn raw_for_each(&mut self, each: &mut EachRaw<'_>) -> Result<(), StoreError>;
    /// Raw reports stored, all devices.
    fn raw_report_count(&mut self) -> Result<u64, StoreError>;

    fn rollup_day_get(&mut self, dev: Dev<'_>, day: i64) -> Result<Option<Vec<u8>>, StoreError>;
    fn rollup_day_put(&mut self, dev: Dev<'_>, day: i64, data: &[u8]) -> Result<(), StoreError>;
    fn rollup_day_delete(&mut self, dev: Dev<'_>, day: i64) -> Result<(), StoreError>;
    /// The device's packed days starting in `[from_day, to_day)`, by day.
    fn rollup_days(
        &mut self,
        dev: Dev<'_>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError>;
    /// Every packed day in `[from_day, to_day)` of the devices in `span`, by (org,
    /// device, day): one scan for a fleet's period, or a part of it.
    fn rollup_days_all(
        &mut self,
        span: DevSpan<'_>,
        from_day: i64,
        to_day: i64,
        each: &mut EachDay<'_>,
    ) -> Result<(), StoreError>;

    /// Inserts or replaces a reading.
    fn reading_put(
        &mut self,
        org: &str,
        meter: &str,
        quantity: &str,
        reading: Reading,
    ) -> Result<(), StoreError>;
    fn reading_exists(
        &mut self,
        org: &str,
        meter: &str,
        quantity: &str,
        ts_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Readings of one series in `[from_ms, to_ms)`, by time.
    fn readings(
        &mut self,
        org: &str,
        meter: &str,
        quantity: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Reading>, StoreError>;
}

/// A transaction body: gets the transaction, returns `Ok` to commit.
pub type Body<'a> = dyn FnMut(&mut dyn Tx) -> Result<(), StoreError> + 'a;

/// An engine's write ([`Engine::write`]) handed to code that runs before the engine
/// takes calls (the format check of a database reached after start).
pub type Write<'a> = dyn FnMut(&mut Body<'_>) -> Result<(), StoreError> + 'a;

/// A storage engine. Shared behind an `Arc` by every task of the collector.
pub trait Engine: Send + Sync {
    /// `embedded` or `postgres`, for logs and `/metrics`.
    fn name(&self) -> &'static str;
    /// Runs `body` in a write transaction: committed when it returns `Ok`, rolled back
    /// otherwise. Visible to readers once it returns; durable after [`Self::flush`].
    /// An engine may roll back and run `body` again (PostgreSQL does after creating a
    /// time partition the body needed), so every effect of a body must go through its
    /// transaction.
    fn write(&self, body: &mut Body<'_>) -> Result<(), StoreError>;
    /// Runs `body` on a consistent snapshot (its writes, if any, are refused or
    /// discarded: readers must not write).
    fn read(&self, body: &mut Body<'_>) -> Result<(), StoreError>;
    /// Makes every committed write durable. Returns once it is on disk.
    fn flush(&self) -> Result<(), StoreError>;
    /// Bytes the store takes (files, or the database's relations).
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// After a purge: gives back whole periods that end by `cutoff_ms` and hold no raw
    /// report any more (PostgreSQL drops such day partitions). Returns how many. An
    /// engine without time partitions has nothing to do.
    fn release_raw_before(&self, _cutoff_ms: i64) -> Result<u64, StoreError> {
        Ok(0)
    }
}
