//! The Veille contract: what agent and collector say to each other, and the rules both
//! sides must apply the same way.
//!
//! # Layout
//! - [`v1`]: the generated `veille.v1` protobuf messages and gRPC service
//!   (`veille/v1/telemetry.proto` is the only place the wire format is defined).
//! - [`validate`]: checks a batch must pass before it is spooled by the agent or stored by
//!   the collector; errors name the field and the value.
//! - [`json_enums`]: enum fields print their names in JSON, not their numbers.
//! - [`defaults`]: ports, limits and names both binaries use (one source of truth).
//! - [`topics`]: MQTT topic names, filters and their parsing (pure).
//! - [`mqtt_url`]: `mqtt://` and `mqtts://` broker URLs.
//! - [`tls`]: TLS as a client (CA file or system roots, client certificate), for the
//!   agent towards the collector and the collector towards an external broker.
//! - [`policy`]: the auto-shutdown policy: validation and the pure evaluation (window in
//!   local time over DST, exclusions, server double opt-in, warn → postpone → shut down)
//!   that the agent enforces and the collector reports and replays.
//! - [`signing`]: ed25519 signing and verification of policies, key ids and key text form.
//! - [`units`]: milliseconds per second, minute, hour and day (one definition).
//! - [`settings`]: layering of TOML file, `VEILLE_*` environment and flags, shared by both
//!   binaries so they behave the same.

pub mod defaults;
pub mod json_enums;
pub mod mqtt_url;
pub mod policy;
pub mod settings;
pub mod signing;
pub mod tls;
pub mod topics;
pub mod units;
pub mod validate;

/// Generated code for protobuf package `veille.v1`.
pub mod v1 {
    #![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]
    tonic::include_proto!("veille.v1");
}

pub use policy::{Action, Decision, DeviceFacts, SkipReason, evaluate, validate_policy};
pub use signing::{PolicyRejected, sign, verify};
pub use topics::{TopicKind, parse_reports_topic};
pub use validate::{ValidationError, validate_batch};
