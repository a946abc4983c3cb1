//! Energy: from a report's states to kWh, € and kgCO2e, with provenance.
//!
//! - [`catalogue`]: watts per state per device class and model, each with its source.
//! - [`classify`]: which power class a device is in (maker, model, chassis code, EDID).
//! - [`model`]: watt-hours for one report and for a device over a period.
//! - [`gaps`]: every millisecond of a period: covered, inferred off, or unknown.
//! - [`rollup`]: hourly sufficient statistics per device, kept at ingest.
//! - [`carbon`]: kgCO2e from the grid factor, cost from the tariff and its hours.
//! - [`intensity`]: hourly grid carbon intensity from éCO2mix and plain files.
//! - [`consumption`]: the consumption report (kWh, €, kgCO2e, coverage) from rollups.

pub mod carbon;
pub mod catalogue;
pub mod classify;
pub mod consumption;
pub mod gaps;
pub mod intensity;
pub mod model;
pub mod rollup;
