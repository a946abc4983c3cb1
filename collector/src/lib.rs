//! The Veille collector: the edges around [`veille_domain`]'s rules. Agents' reports
//! come in over gRPC or MQTT, are stored durably and idempotently, and go out again as
//! reports, policies, a web page and metrics, over HTTP and the command line.
//!
//! # Layout (folders are edges, files are features; imports only point down)
//!
//! ```text
//! main.rs -> cli -> server -> api, web -> ingest, reports -> policy -> tokens, auth
//!         -> config -> store -> clock              (all of them -> veille_domain -> veille_proto)
//! ```
//!
//! - [`cli`]: every verb (`serve`, `devices`, `report …`, `policy …`, `room …`,
//!   `import …`, `init-tls`, `demo`), dispatched in [`cli::run`]; the calls to a running
//!   server ([`cli::remote`]) and one [`cli::CliError`].
//! - [`server`]: wiring only: listeners, tasks, graceful shutdown.
//! - [`api`]: `/healthz` and every `/api/v1` route in one router on one
//!   [`api::AppState`], one authentication extractor ([`api::caller::Caller`]), one
//!   [`api::error::ApiError`]; `/metrics`.
//! - [`web`]: the server-rendered web page (login, overview, consumption, devices).
//! - [`ingest`]: validation and group commit, the gRPC service, MQTT (embedded broker or
//!   external), the meter sink.
//! - [`reports`]: the I/O edge of the domain's reports: consumption, renewal,
//!   compliance and replay, setpoint.
//! - [`policy`]: the signing key, signed policies in the store, the cache agents read.
//! - [`tokens`], [`auth`]: token files in the data directory; token → principal.
//! - [`tls`]: rustls on every port, certificate reload.
//! - [`config`]: a leaf: the configuration and every section of it.
//! - [`store`]: the only code that names a storage engine: the store's rules over an
//!   engine interface, the embedded (SQLite) and PostgreSQL engines, packed formats,
//!   records (meters, rooms), retention.
//! - [`glpi`]: GLPI's data in: the CSV export's import and the REST link (session,
//!   paging, sync through the same path).
//! - [`http_client`]: the HTTP(S) client the CLI and the GLPI link speak with;
//!   [`security`]: the headers, body limit and client address every HTTP response and
//!   request of the server gets.
//! - [`clock`]: the one wall clock; [`metrics`]: ingest counters; [`listen_file`]:
//!   `<data_dir>/listen.json`, the running server's addresses.

pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod glpi;
pub mod http_client;
pub mod ingest;
pub mod listen_file;
pub mod metrics;
pub mod policy;
pub mod reports;
pub mod security;
pub mod server;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod web;

pub use config::Config;
pub use server::{Listeners, Server, run};
