//! The Veille collector: receives agents' report batches over gRPC, stores them durably
//! and idempotently, and serves the fleet registry over HTTP and the command line.
//!
//! # Layout
//! - [`config`]: the configuration struct; defaults are `deploy/collector.toml`,
//!   embedded, layered by `veille_proto::settings`.
//! - [`cli`]: command-line arguments, flags → config keys, the `devices` subcommand.
//! - [`server`]: start-up and graceful shutdown ([`server::Server`], [`server::run`]).
//! - [`grpc`]: the `veille.v1.Telemetry` service (auth → ingest → `Ack`).
//! - [`ingest`]: validation and the group-commit writer (one flush per group of batches).
//! - [`store`]: sled trees and keys; the storage contract a PostgreSQL backend would
//!   implement later.
//! - [`http`]: `/healthz` and the `/api/v1/` read API.
//! - [`devices`]: the device record and its table/CSV/JSON renderings (pure).
//! - [`auth`]: tokens → principals, constant-time comparison (pure).
//! - [`tokens`]: the operator and `default` org token files in the data directory.
//! - [`listen_file`]: `<data_dir>/listen.json`, the running server's addresses.
//! - [`http_client`]: a tiny HTTP/1.1 GET client for the CLI.
//! - [`demo`]: `veille-collector demo`, the collector plus this machine's real agent.
//! - [`mqtt`]: the MQTT transport (embedded rumqttd or an external broker), same ingest.
//! - [`policy`]: auto-shutdown policies: the signing key, the policy file, the
//!   `policies` tree, the cache the gRPC Ack reads, `policy set/show` (CLI and HTTP).
//! - [`compliance`]: policy compliance (devices left on in the windows, wasted kWh,
//!   shutdowns and skips reported) and `policy replay` savings, from rollups (pure).
//! - [`metrics`]: ingest counters (for `/metrics` later, and the benchmark).
//! - [`catalogue`]: power profiles per chassis class and model, each figure with its
//!   source; defaults are `deploy/power-profiles.toml`, embedded (pure).
//! - [`energy`]: the energy model, Wh per report and per period by provenance (pure).
//! - [`gaps`]: every millisecond of a period: covered, inferred off, or unknown (pure).
//! - [`consumption`]: the consumption report (kWh, €, kgCO2e, coverage) from rollups (pure).
//! - [`reports`]: the I/O edge of reports (store → consumption → table/CSV/JSON).
//! - [`rollup`]: hourly sufficient statistics per device, kept at ingest (pure).
//! - [`carbon`]: kgCO2e from the grid factor, cost from the tariff and its hours (pure).
//! - [`glpi`]: GLPI computer export CSV → rows, and their match to known devices (pure).
//! - [`renewal`]: device age and its source, horizons per class, ok / approaching /
//!   past, reuse and recycling (loi REEN); defaults are `deploy/renewal.toml` (pure).
//! - [`embodied`]: embodied kgCO2e per class, amortised per year of service (pure).
//! - [`renewal_report`]: the renewal report (age, status, reuse, recycling, embodied
//!   carbon per year) by site and class, and its table/CSV/JSON renderings (pure).
//! - [`asset`]: the asset facts imported from GLPI for one device (`asset` tree).
//! - [`import`]: `import glpi`: parse, match against the store, apply in one transaction.
//! - [`renewal_io`]: store → renewal report (the report's I/O edge).
//! - [`inventory_diff`]: what changed between two inventories (a RAM upgrade, a
//!   replaced monitor), for the inventory history (pure).
//! - [`meters`]: meter payloads (Veille JSON, Tasmota `tele/…/SENSOR`) → readings in
//!   W, kWh, °C; the energy counter (increments, resets, glitches) (pure).
//! - [`loadcurve`]: utility load-curve CSV (Enedis-style 30-min average power) →
//!   points in W, duplicates, gaps (pure).
//! - [`meter_store`]: meter readings and the meter registry in the store; the MQTT
//!   meter sink (parse → counter → store).
//! - [`rooms`]: server rooms (members, meters, setpoint changes), `room`, `import
//!   meters` and the setpoint report's I/O edge (CLI and HTTP).
//! - [`web`]: the built-in web page (login, overview, consumption with its CSV,
//!   devices and their timelines), server-rendered HTML and inline SVG, FR/EN.
//! - [`prometheus`]: the Prometheus text exposition format (pure).
//! - [`fleet_metrics`]: `GET /metrics`: ingest health and bounded fleet gauges.
//! - [`tls`]: `[tls]`, rustls on every port (gRPC, HTTP, embedded MQTT), plaintext
//!   refused or allowed per `require`, optional client certificates.
//! - [`init_tls`]: `init-tls`, a private CA and server/client certificates (rcgen).
//! - [`setpoint`]: the setpoint report's statistics: before/after windows, Welch
//!   intervals, PUE, outdoor-temperature adjustment (pure).

pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod ingest;
pub mod listen_file;
pub mod metrics;
pub mod policy;
pub mod reports;
pub mod server;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod web;

pub use config::Config;
pub use server::{Listeners, Server, run};
