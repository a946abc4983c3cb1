//! The Veille agent: watches one device and reports how long it was active, idle,
//! asleep, and when it booted and shut down.
//!
//! # Layout
//! - [`probes`]: one file per platform fact (device id, boot, CPU, sleep, user activity),
//!   each reading an injectable root so tests use fake `/proc` and `/sys` trees.
//! - [`sampler`]: turns two successive probe readings into one [`sampler::Sample`].
//! - [`measure`]: RAPL and battery-discharge energy per report, where the hardware has them.
//! - [`builder`]: pure; accumulates samples into reports that tile time exactly.
//! - [`spool`]: the disk queue; every report is fsync'd before any send and removed
//!   only once the collector's Ack covers it.
//! - [`state`]: the agent's small persistent state (next seq, last boot id).
//! - [`status`]: what `veille-agent status` shows, read without disturbing a running agent.
//! - [`backoff`]: pure; exponential backoff with jitter for reconnects.
//! - [`transport`]: the [`transport::Transport`] trait the send loop drives, with its
//!   gRPC client and its MQTT client (MQTT 5 or 3.1.1; an Ack on the ack topic, not a
//!   PUBACK), one file each.
//! - [`inventory_watch`]: pure; re-probe the inventory hourly, send it only when its
//!   hash changed.
//! - [`policy`]: the auto-shutdown policy on the agent: verify against the pinned key,
//!   keep the last valid one on disk, evaluate every tick, `postpone` requests.
//! - [`enforcer`]: warnings and power-off, hibernate, sleep behind a trait (real, and
//!   recording for tests).
//! - [`notify`] (Unix): the local socket that desktop notifiers connect to; warnings
//!   go to them, or through `wall` when none is connected; their postpones come back.
//! - [`notifier`] (Unix): `veille-agent notifier`, run in each graphical session: shows
//!   the warnings on the session bus with a "postpone" button.
//! - [`wake`]: the RTC wake-up armed for the next maintenance window (real on a sysfs
//!   root, and recording).
//! - [`never_interrupt`]: work a policy must not interrupt (named processes from
//!   `/proc`, OS updates: dpkg locks, unattended-upgrades).
//! - [`wol`]: Wake-on-LAN magic packets (pure builder, UDP broadcast sender).
//! - [`wol_relay`]: the collector's signed wake requests (`Ack.wake`), verified and sent.
//! - [`config`]: the TOML config (`deploy/agent.toml` is the annotated default).
//! - [`run`]: wires it together for `veille-agent run` and `once`.
//! - [`resident`] (Linux): once started, hands start-up's code pages back to the
//!   kernel, then unmaps the code each tick ran until it runs again (most of the
//!   agent's memory was its own binary's and the libraries' pages).
//! - [`console_prompt`]: pure; the Windows console warning's "Postpone?" question
//!   and what its answer means.
//! - [`msi_properties`]: pure; the Windows installer's properties (written to the
//!   registry by the MSI) as a config layer.
//! - `windows` (Windows only): the Win32 edges above the probes: service, enforcer,
//!   config and state locations. The Windows probes themselves (Win32 calls, `HKLM`
//!   reads) are in [`probes`], like the Linux ones.

pub mod backoff;
pub mod builder;
pub mod check;
pub mod config;
pub mod console_prompt;
pub mod enforcer;
pub mod inventory_watch;
pub mod measure;
pub mod msi_properties;
pub mod never_interrupt;
#[cfg(unix)]
pub mod notifier;
#[cfg(unix)]
pub mod notify;
pub mod policy;
pub mod policy_state;
pub mod power_caps;
pub mod probes;
#[cfg(target_os = "linux")]
pub mod resident;
pub mod run;
pub mod sampler;
pub mod spool;
pub mod state;
pub mod status;
#[cfg(all(test, target_os = "linux"))]
mod test_bus;
pub mod tls;
pub mod transport;
pub mod wake;
#[cfg(windows)]
pub mod windows;
pub mod wol;
pub mod wol_relay;
