//! Auto-shutdown policy rules.
//!
//! - [`file`]: the TOML policy file operators write ⇄ the signed contract's `Policy`.
//! - [`compliance`]: devices left on inside the windows, wasted kWh, and `policy replay`
//!   savings, from hourly rollups and the agents' policy events.

pub mod compliance;
pub mod file;
