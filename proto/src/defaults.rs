//! Numbers and names shared by agent and collector. Change them here only.

/// Default gRPC port of the collector (agents' default `--collector` points here).
pub const GRPC_PORT: u16 = 7401;
/// Default HTTP port of the collector (API, `/healthz`, later `/metrics` and the web page).
pub const HTTP_PORT: u16 = 7402;
/// Default port of the collector's embedded MQTT broker.
pub const MQTT_PORT: u16 = 1883;
/// Default port of the embedded broker's MQTT 5 listener (rumqttd serves one protocol
/// version per listener; agents speak MQTT 5 unless configured otherwise).
pub const MQTT_V5_PORT: u16 = MQTT_PORT + 1;

/// MQTT over TLS (`mqtts://`), the IANA port; an `mqtts://host` URL without a port uses it.
pub const MQTTS_PORT: u16 = 8883;

/// Version of agent and collector, sent in every batch.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How far in the future of the receiver's clock a timestamp may be (clock skew
/// between a PC and the collector). Beyond this a report is refused rather than
/// stored with a time that has not happened yet.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// Oldest timestamp accepted: 2000-01-01. A machine whose RTC battery died boots in
/// 1970 or 2000; such reports are refused instead of polluting history.
pub const MIN_TIMESTAMP_MS: i64 = 946_684_800_000;

/// Upper bound on reports in one batch (the agent sends at most this many).
pub const MAX_REPORTS_PER_BATCH: usize = 500;
/// Upper bound on one report's interval: a report never spans more than a day.
pub const MAX_INTERVAL_MS: i64 = 24 * 3600 * 1000;
/// Upper bound on identifiers (device id, boot id, sensor names).
pub const MAX_ID_LEN: usize = 128;
/// Upper bound on free-text strings (inventory fields, event details).
pub const MAX_TEXT_LEN: usize = 256;
/// Upper bound on repeated fields inside one report or inventory.
pub const MAX_ITEMS: usize = 64;
/// Highest SMBIOS chassis type code (`Inventory.chassis_type`): the byte's bit 7 is a
/// lock flag, cleared by the agent, so a code is 0..=127.
pub const MAX_CHASSIS_TYPE: u8 = 0x7F;

/// Largest encoded batch a collector accepts (gRPC message limit, MQTT payload).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Environment variable prefix for configuration overrides.
pub const ENV_PREFIX: &str = "VEILLE_";
