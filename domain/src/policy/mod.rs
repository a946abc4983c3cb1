//! Auto-shutdown policy rules.
//!
//! - [`file`]: the TOML policy file operators write ⇄ the signed contract's `Policy`.
//! - [`holidays`]: public holidays computed (France, Easter-based ones, Alsace-Moselle).
//! - [`ics`]: closure calendars (school holidays, closing days) from iCalendar text.
//! - [`compliance`]: devices left on inside the windows, wasted kWh, and `policy replay`
//!   savings, from hourly rollups and the agents' policy events.
//! - [`wake_relay`]: which awake agent on a device's subnet can send it a Wake-on-LAN
//!   packet.

pub mod compliance;
pub mod file;
pub mod holidays;
pub mod ics;
pub mod savings;
pub mod wake_relay;
