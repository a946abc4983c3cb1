//! A simulated Veille fleet.
//!
//! Pure generation (no I/O, no clock): [`archetype`] (what a desktop, laptop, thin
//! client, kiosk or server does on a given day), [`fleet`] (N devices with identities,
//! sites, groups and inventories from a seed), [`timeline`] (day plans → power spans
//! and boot sessions), [`reports`] (sessions → the reports an agent would send).
//! I/O at the edge: [`send`] delivers them to a collector over the real gRPC contract,
//! as history at full speed ([`send::backfill`]) or in real time ([`send::realtime`]).

pub mod archetype;
pub mod fleet;
pub mod reports;
pub mod rng;
pub mod send;
pub mod timeline;

pub use archetype::{Archetype, Power};
pub use fleet::{FleetSpec, SimDevice};
pub use reports::Cut;
pub use timeline::Mode;
