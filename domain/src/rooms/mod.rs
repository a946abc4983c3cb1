//! Server rooms: meters, load curves and what a cooling setpoint change did.
//!
//! - [`meters`]: meter payloads (Veille JSON, Tasmota) → readings in W, kWh, °C; the
//!   energy counter (increments, resets, glitches).
//! - [`loadcurve`]: utility load-curve CSV → points in W, duplicates, gaps.
//! - [`setpoint`]: before/after windows, Welch intervals, PUE, outdoor adjustment.

pub mod loadcurve;
pub mod meters;
pub mod setpoint;
