//! Renewal: how old each device is, where that age comes from, and what to do with it.
//!
//! - [`horizon`]: `deploy/renewal.toml` types, ages, horizons per class (loi REEN).
//! - [`embodied`]: embodied kgCO2e per class, amortised per year of service.
//! - [`glpi`]: GLPI computer export CSV → rows, and their match to known devices.
//! - [`glpi_api`]: GLPI REST API pages → the same rows, deleted and decommissioned
//!   items left out; paging and error bodies.
//! - [`asset`]: the asset facts imported from GLPI for one device.
//! - [`fleet`]: the assets no agent reports (monitors, PCs without agent), kept.
//! - [`inventory_diff`]: what changed between two inventories (a RAM upgrade…).
//! - [`report`]: the renewal report by site and class, and its renderings.

pub mod asset;
pub mod embodied;
pub mod fleet;
pub mod glpi;
pub mod glpi_api;
pub mod horizon;
pub mod inventory_diff;
pub mod report;
