//! Veille's rules, with no I/O: what a report means in kWh, € and kgCO2e, whether a
//! fleet follows its auto-shutdown policy, when a device is due for renewal, what a
//! server room's setpoint change did. Everything here is a function of its arguments:
//! the collector reads the store, the files and the clock, and passes what it read.
//!
//! The crate names no runtime, storage engine, socket or CLI crate (see `Cargo.toml`),
//! and `clippy.toml` forbids `std::fs`, `std::net` and the system clock, so "pure" is a
//! rule the tooling checks, not a comment.
//!
//! # Layout (read from the bottom up)
//! - [`devices`]: the device record as operators see it, and its table/CSV/JSON.
//! - [`energy`]: power catalogue → energy model → gaps → hourly rollups → carbon and
//!   cost → the consumption report.
//! - [`policy`]: the policy file format and compliance/replay from rollups.
//! - [`renewal`]: ages and horizons, embodied carbon, GLPI parsing and matching, asset
//!   facts, inventory changes, the renewal report.
//! - [`rooms`]: meter payloads, utility load curves, the setpoint statistics.
//! - `text`: decoding and header folding shared by the file parsers.
//! - [`compare`]: the operator's comparison between bodies (indicators per org,
//!   anonymised peer quartiles), from the consumption and renewal figures.
//! - [`trajectory`]: per-org kWh targets and the last twelve months against them.

pub mod compare;
pub mod devices;
pub mod energy;
pub mod policy;
pub mod renewal;
pub mod rooms;
mod text;
pub mod trajectory;
