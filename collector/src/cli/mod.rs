//! The command line (DESIGN.md "Command-line surface"): argument definitions, the
//! mapping of flags onto configuration keys, and every verb. `main.rs` only parses,
//! calls [`run::run`] and maps its [`run::Failure`] to an exit code.
//!
//! - [`run`]: the dispatch of every verb.
//! - [`remote`]: a verb's call to the running server's API, else the store directly;
//!   [`http_client`] is its HTTP/1.1 client.
//! - [`policy`], [`rooms`], [`import`]: `policy …`, `room …` / `import meters` /
//!   `report setpoint`, `import glpi`.
//! - [`init_tls`]: a private CA and certificates; [`demo`] (feature `demo`): the
//!   collector, this machine's agent and a simulated fleet in one process.

pub mod carbon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod export;
pub mod init_tls;
pub mod parquet;
pub mod policy;
pub mod remote;
pub mod rooms;
pub mod run;
pub mod savings;
pub mod wake;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use veille_proto::settings::set_flag;

use crate::cli::remote::{Answer, ApiCall, NoStore, RouteError};
use crate::config::{Config, ConfigError};
use crate::policy::PolicyError;
use crate::reports::ReportError;
use crate::reports::setpoint::RoomError;
use crate::store::{Store, StoreError};
use veille_domain::devices::{self, DeviceRecord, Format};

/// Veille collector: receives agents' reports, stores them, serves the fleet registry.
#[derive(Debug, Parser)]
#[command(name = "veille-collector", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector (gRPC ingest and HTTP API) until SIGTERM or Ctrl-C.
    ///
    /// Logs `listening grpc=ADDR http=ADDR` once both are bound and writes them to
    /// <data_dir>/listen.json. With no org configured, the first start creates org
    /// "default" and logs its enrollment token.
    Serve(ServeArgs),
    /// Print the annotated default configuration (every key, its default and meaning).
    PrintConfig,
    /// List the devices known to the collector.
    ///
    /// Asks the running server through its HTTP API (found via <data_dir>/listen.json,
    /// authenticated with <data_dir>/operator.token); when no server runs, reads the
    /// store directly.
    Devices(DevicesArgs),
    /// Reports for energy managers and management.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Recompute every hourly rollup from the raw reports (one device at a time: ingest
    /// goes on meanwhile).
    ///
    /// Rollups are maintained at ingest; this rebuilds them identically, e.g. after
    /// restoring raw reports from a backup.
    RebuildRollups(ConfigArgs),
    /// Import asset facts or meter readings from another tool (with the collector
    /// running or not).
    #[command(subcommand)]
    Import(ImportCommand),
    /// The GLPI REST link (`[glpi]`): read the asset inventory from GLPI's API.
    #[command(subcommand)]
    Glpi(GlpiCommand),
    /// Auto-shutdown policies: set (signed with <data_dir>/policy.key), show.
    #[command(subcommand)]
    Policy(crate::cli::policy::PolicyCommand),
    /// Write a period's raw reports and hourly rollups as CSV files, for archives and
    /// data teams (works with the collector running).
    Export(crate::cli::export::ExportArgs),
    /// Server rooms: members, meters and cooling setpoint changes (`report setpoint`).
    #[command(subcommand)]
    Room(crate::cli::rooms::RoomCommand),
    /// Run the collector and an agent for this machine in one process, on embedded
    /// defaults (data in ./veille-demo-data unless --data-dir), and print the URLs.
    #[cfg(feature = "demo")]
    Demo(ServeArgs),
    /// The power catalogue: which profile a device gets and why.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// Create a private CA and a server certificate for sites without a PKI.
    ///
    /// Writes <data_dir>/tls/ca.pem, ca.key, server.pem, server.key (keys mode 0600)
    /// and prints the [tls] lines for the collector's config and what to give agents
    /// (ca.pem). The CA is created once and reused by later runs; the server
    /// certificate is (re)issued when missing or when --san is given.
    InitTls(InitTlsArgs),
    /// Wake a powered-off device with Wake-on-LAN: an awake agent on its subnet sends
    /// the magic packet at its next report (requests expire after 10 minutes).
    ///
    /// Through the running server when there is one, else queued in the store. Needs
    /// the device's MAC and subnet (from its inventory) and an agent of the same
    /// subnet that reported in the last 5 minutes and pinned the policy key; says so
    /// (exit code 2) when there is none.
    Wake(crate::cli::wake::WakeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct InitTlsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// A name agents use to reach the collector: DNS name or IP address (repeat the
    /// flag for several). Default: this host's name, localhost and 127.0.0.1.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Also issue a client certificate for agents with this name, into
    /// <data_dir>/tls/clients/ (for [tls] client_ca; repeatable).
    #[arg(long = "client", value_name = "NAME")]
    pub clients: Vec<String>,
    /// Validity of the server and client certificates, in days (the CA: 10 years).
    /// At most 100 years: X.509 dates end in 9999, and a span beyond that is a typo.
    #[arg(long, value_name = "DAYS", default_value_t = 825,
          value_parser = clap::value_parser!(i64).range(1..=36_500))]
    pub days: i64,
}

#[derive(Debug, Subcommand)]
pub enum CatalogueCommand {
    /// The profile a device would get: the class chosen, how it matched (model entry,
    /// model-family rule, chassis code, display size, class default, fallback), the
    /// powers per state with their sources, and the yearly TEC with its range.
    Lookup(CatalogueLookupArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CatalogueLookupArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Maker as SMBIOS or EDID gives it ("Dell Inc.", "LENOVO", "DEL").
    #[arg(long)]
    pub manufacturer: String,
    /// Model as the inventory gives it ("OptiPlex 7090", "ThinkCentre M720q (10T7…)").
    #[arg(long)]
    pub model: String,
    /// SMBIOS chassis type number (3 desktop, 7 tower, 10 notebook, 35 mini PC, …).
    #[arg(long, value_name = "CODE")]
    pub chassis: Option<u8>,
    /// Chassis class: desktop, laptop, all_in_one, thin_client, workstation, server,
    /// mini_pc, tablet, monitor, unknown. Default: from --chassis, else unknown.
    #[arg(long, value_name = "C")]
    pub class: Option<String>,
    /// A display's diagonal in inches.
    #[arg(long, value_name = "S")]
    pub screen_in: Option<f64>,
    /// Output format: table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// `catalogue lookup`: the text to print, or a usage error (bad class or format).
pub fn catalogue_lookup(
    args: &CatalogueLookupArgs,
    catalogue: &veille_domain::energy::catalogue::Catalogue,
) -> Result<String, String> {
    use veille_domain::energy::catalogue::{DeviceClass, Query};
    let class = match (&args.class, args.chassis) {
        (Some(c), _) => {
            DeviceClass::parse(c).ok_or_else(|| format!("--class {c:?}: unknown class"))?
        }
        (None, Some(code)) => catalogue
            .rules()
            .chassis(code)
            .map_or(DeviceClass::Unknown, |d| d.class.device_class()),
        (None, None) => DeviceClass::Unknown,
    };
    let q = Query {
        class,
        chassis_code: args.chassis,
        manufacturer: &args.manufacturer,
        model: &args.model,
        screen_in: args.screen_in,
    };
    let report = catalogue.lookup(&q).report(&q);
    match args.format.as_str() {
        "table" => Ok(report.table()),
        "json" => serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        f => Err(format!("--format {f:?}: expected table or json")),
    }
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// kWh, €, kgCO2e, hours on (and outside working hours) and how each figure was
    /// obtained (measured, modelled, inferred off, unknown), per group.
    ///
    /// Asks the running server when there is one (its API:
    /// /api/v1/reports/consumption), else reads the store.
    Consumption(ConsumptionArgs),
    /// Device age and its source, horizon, ok / approaching / past by site and class,
    /// devices past their horizon, the reuse list (working devices, loi REEN) and the
    /// recycling list, with embodied kgCO2e per year of service.
    ///
    /// Age: GLPI acquisition date, else BIOS release date (an estimate), else first
    /// seen (a lower bound); monitors from their EDID date of manufacture. "Working" =
    /// reported within the last 30 days. Asks the running server when there is one (its
    /// API: /api/v1/reports/renewal), else reads the store.
    Renewal(RenewalArgs),
    /// What a room's cooling setpoint change did: daily means before and after (equal
    /// windows, the day of the change excluded), difference with a 95 % Welch interval,
    /// PUE, cooling energy saved and IT power added; "insufficient data" with its reason
    /// when a side has too few days. Asks the running server when there is one (its API:
    /// /api/v1/reports/setpoint), else reads the store.
    Setpoint(crate::cli::rooms::SetpointArgs),
    /// Auto-shutdown policy compliance per org and site: devices left on inside the
    /// policy's windows and their wasted kWh, €, kgCO2e; shutdowns done, warned,
    /// postponed, skipped (by reason) and policies rejected, as the agents reported them.
    /// Asks the running server when there is one (its API: /api/v1/reports/compliance),
    /// else reads the store.
    Compliance(crate::cli::policy::ComplianceArgs),
    /// Proof of savings of an enforced policy version, per site: mean daily kWh per
    /// device in the baseline (the dry-run days before it, else as many days before it)
    /// and while enforced, the difference with a 95 % Welch interval and whether it is
    /// significant. Holidays and closure days of the policy are left out, and so are
    /// the days each version took effect. Asks the running server when there is one
    /// (its API: /api/v1/reports/savings), else reads the store.
    Savings(crate::cli::savings::SavingsArgs),
    /// The comparison between bodies: per org, kWh and kgCO2e per device-year, share of
    /// on-time outside working hours, median age, share past the renewal horizon, reuse
    /// share, measured/modelled coverage, devices per staff; beside the quartiles of
    /// its peers (same kind and population band, else kind, else all; at least 3
    /// orgs). Without --org: every org, ranked by kWh per device-year (the operator's
    /// view). With --org: what that org's token sees (its line and its peers'
    /// quartiles, no other org's name). Kinds and sizes: `[orgs.profile]`.
    ///
    /// Asks the running server when there is one (its API: /api/v1/reports/compare),
    /// else reads the store.
    Compare(CompareArgs),
    /// kWh targets and trajectories: for each org with `[orgs.profile.target]` (e.g.
    /// −20 % kWh by 2028 against 2025), its baseline, target, the last twelve complete
    /// months against the straight line from baseline to target, on track or not.
    ///
    /// Asks the running server when there is one (its API: /api/v1/reports/trajectory),
    /// else reads the store.
    Trajectory(TrajectoryArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TrajectoryArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// This org only.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// First day, YYYY-MM-DD (local midnight in `energy.timezone`).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day, YYYY-MM-DD, included.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// Show this org's view only (its own line and its peers' quartiles).
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
}

#[derive(Debug, Clone, Args)]
pub struct RenewalArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a GLPI computer export (CSV, French or English headers, `;` or `,`, with or
    /// without BOM): acquisition date, inventory number, location, lifespan.
    ///
    /// Rows are matched to known devices by serial, then UUID, then hostname; the
    /// summary lists matched, unmatched (by line) and ambiguous rows (with the reason).
    /// Unmatched rows are kept as assets without agent of the org (--org, else
    /// glpi.org, else the only org): the renewal report lists them, consumption counts
    /// them as unknown energy, and the next import of the same kind replaces them.
    /// Every row is applied in one transaction; a bad line applies nothing and
    /// exits 2 naming its line and column. Importing the same file again changes
    /// nothing. Works with the collector running: reports see the facts at once.
    Glpi(GlpiImportArgs),
    /// Import a meter's load curve (Enedis-style CSV: `Horodate;Valeur`, average power
    /// per 30-min step, W or kW): units checked, duplicate lines ignored, gaps reported;
    /// a broken line names its line and column and nothing is stored. Works with the
    /// collector running.
    Meters(crate::cli::rooms::ImportMetersArgs),
    /// Import hourly grid carbon intensity for a zone: RTE éCO2mix downloads (national
    /// or regional, 15- or 30-min `Taux de Co2`), ODRÉ open-data CSVs, or plain
    /// `timestamp;gCO2eq/kWh` files. Samples are averaged per hour; an hour already
    /// stored is replaced. Reports weigh each hour's kWh by its intensity where
    /// `[energy] grid_zone` (or `site_grid_zones`) names the zone, and say which share
    /// of kWh was weighed so. A broken line names its file, line and column and nothing
    /// is stored. Works with the collector running.
    Carbon(crate::cli::carbon::ImportCarbonArgs),
}

#[derive(Debug, Subcommand)]
pub enum GlpiCommand {
    /// Run one sync now: every computer and monitor of GLPI (with its financial
    /// dates), deleted and decommissioned ones left out, matched to known devices like
    /// `import glpi` and applied in one transaction; prints the same summary.
    ///
    /// A refusal (wrong token: exit 2; API disabled, a bad page, GLPI gone: exit 1)
    /// names the request and GLPI's message, and applies nothing. Works with the
    /// collector running.
    Sync(GlpiSyncArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GlpiSyncArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Read GLPI and match, print the summary, apply nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GlpiImportArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The CSV file exported from GLPI (Parc → Ordinateurs → export CSV).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Parse and match, print the summary, apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The org the export belongs to: only its devices are matched, and its rows
    /// without agent are kept for it. Default: glpi.org, else the only org.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// What the export lists: `computer` (matched to agents) or `monitor` (GLPI's
    /// monitor list: never matched, all kept without agent).
    #[arg(long, default_value = "computer", value_parser = ["computer", "monitor"])]
    pub kind: String,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumptionArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// First day, YYYY-MM-DD (local midnight in `energy.timezone`).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day, YYYY-MM-DD, included.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// One row per org, site, group (tag), class, device or month.
    #[arg(long, default_value = "org", value_parser = ["org", "site", "group", "class", "device", "month"])]
    pub by: String,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
    /// CSV dialect: `excel-fr` uses `;`, a decimal comma and a UTF-8 BOM for French Excel.
    #[arg(long, default_value = "plain", value_parser = ["plain", "excel-fr"])]
    pub csv_dialect: String,
}

/// Where the configuration comes from.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML; see `print-config`). Without it: embedded defaults,
    /// then VEILLE_* environment variables.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// gRPC listen address IP:port (overrides `grpc_listen`; port 0 = any free port).
    #[arg(long, value_name = "ADDR")]
    pub grpc_listen: Option<String>,
    /// HTTP listen address IP:port (overrides `http_listen`; port 0 = any free port).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// Embedded MQTT broker's 3.1.1 listener IP:port (overrides `mqtt.listen`; the MQTT 5
    /// listener defaults to the next port; port 0 = any free ports).
    #[arg(long, value_name = "ADDR")]
    pub mqtt_listen: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format: aligned table, CSV with a header line, or a JSON array.
    #[arg(long, default_value = "table",
        value_parser = clap::builder::TypedValueParser::try_map(
            clap::builder::PossibleValuesParser::new(Format::NAMES), |s| s.parse::<Format>()))]
    pub format: Format,
}

impl ServeArgs {
    /// Loads the configuration with these flags on top.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut flags = self.config.flags();
        if let Some(a) = &self.grpc_listen {
            set_flag(&mut flags, "grpc_listen", a.as_str());
        }
        if let Some(a) = &self.http_listen {
            set_flag(&mut flags, "http_listen", a.as_str());
        }
        if let Some(a) = &self.mqtt_listen {
            set_flag(&mut flags, "mqtt.listen", a.as_str());
        }
        load_config(self.config.config.as_deref(), flags)
    }
}

impl ConfigArgs {
    fn flags(&self) -> toml::Table {
        let mut flags = toml::Table::new();
        if let Some(d) = &self.data_dir {
            // TOML strings are UTF-8: a non-UTF-8 path is passed lossily.
            set_flag(&mut flags, "data_dir", d.to_string_lossy().into_owned());
        }
        flags
    }

    /// Loads the configuration with these flags on top.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        load_config(self.config.as_deref(), self.flags())
    }
}

/// Layers defaults < file < process environment < flags, and logs what was applied.
pub fn load_config(file: Option<&Path>, flags: toml::Table) -> Result<Config, ConfigError> {
    // `vars_os` + lossless filter: `std::env::vars` would panic on a non-UTF-8 value.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let (config, provenance) = Config::load(file, env, flags)?;
    if let Some(f) = &provenance.file {
        tracing::debug!(file = %f.display(), "configuration file read");
    }
    for name in &provenance.env_applied {
        tracing::info!(variable = %name, "configuration from the environment");
    }
    for name in provenance
        .env_ignored
        .iter()
        .filter(|n| n.as_str() != "VEILLE_LOG")
    {
        tracing::debug!(variable = %name, "environment variable names no collector setting; ignored");
    }
    Ok(config)
}

/// Why a command-line verb failed: its own layer's error, or the call to the running
/// server. The lower layers' errors are wrapped here, never the reverse.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Wake(#[from] crate::policy::wake::WakeError),
}

impl CliError {
    /// Whether the operator's input is at fault (exit code 2): a bad flag, file or
    /// period, or a 400/409 from the running server.
    pub fn is_usage(&self) -> bool {
        match self {
            CliError::Route(r) => matches!(r.refused_status(), Some(400 | 409)),
            CliError::Report(ReportError::Consumption(_) | ReportError::Format { .. }) => true,
            CliError::Report(_) => false,
            CliError::Policy(e) => e.is_usage(),
            CliError::Room(e) => e.is_usage(),
            CliError::Config(_) => true,
            CliError::Store(_) => false,
            CliError::Wake(e) => e.is_usage() || e.is_not_found(),
        }
    }
}

/// The output of `api_path` (a GET) from the running server, or, when no server runs,
/// of `local` on the store opened directly (see [`remote`]).
pub async fn report_via_server_or_store(
    config: &Config,
    api_path: &str,
    local: impl FnOnce(&Store) -> Result<String, ReportError> + Send + 'static,
) -> Result<String, CliError> {
    let answer = remote::run(
        config,
        ApiCall::get(api_path),
        NoStore::Report,
        move |store| local(store).map_err(CliError::from),
    )
    .await?;
    match answer {
        Answer::Server(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
        Answer::Local(out) => Ok(out),
        Answer::NoStore(path) => Err(ReportError::NoStore { path }.into()),
    }
}

/// Why `devices` could not list devices.
#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("the running collector sent a device list that is not valid JSON: {0}")]
    BadJson(serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The device list, from the running server if there is one, else from the store.
/// Sorted by (org, device_id).
pub async fn list_devices(config: &Config) -> Result<Vec<DeviceRecord>, DevicesError> {
    let call = ApiCall::get("/api/v1/devices?format=json");
    let answer = remote::run(config, call, NoStore::Report, |store| {
        store.devices(None).map_err(DevicesError::from)
    })
    .await?;
    let mut records = match answer {
        Answer::Server(body) => serde_json::from_slice(&body).map_err(DevicesError::BadJson)?,
        Answer::Local(records) => records,
        // Nothing stored yet: an empty fleet.
        Answer::NoStore(_) => Vec::new(),
    };
    devices::sort(&mut records);
    Ok(records)
}

/// `devices` rendered in `format`.
pub async fn devices_output(config: &Config, format: Format) -> Result<String, DevicesError> {
    let records = list_devices(config).await?;
    Ok(devices::render(&records, format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::STORE_DIR;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent_and_every_subcommand_has_help() {
        Cli::command().debug_assert();
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            let help = sub.render_long_help().to_string();
            assert!(help.len() > 40, "{} has no help", sub.get_name());
        }
        for args in [
            &["veille-collector", "serve", "--help"][..],
            &["veille-collector", "devices", "--help"],
            &["veille-collector", "print-config", "--help"],
            &["veille-collector", "report", "renewal", "--help"],
            &["veille-collector", "report", "compare", "--help"],
            &["veille-collector", "report", "trajectory", "--help"],
            &["veille-collector", "import", "glpi", "--help"],
            &["veille-collector", "glpi", "sync", "--help"],
            &["veille-collector", "import", "meters", "--help"],
            &["veille-collector", "room", "add", "--help"],
            &["veille-collector", "room", "list", "--help"],
            &["veille-collector", "room", "setpoint", "--help"],
            &["veille-collector", "report", "setpoint", "--help"],
            &["veille-collector", "policy", "set", "--help"],
            &["veille-collector", "policy", "show", "--help"],
            &["veille-collector", "policy", "replay", "--help"],
            &["veille-collector", "policy", "holidays", "--help"],
            &["veille-collector", "report", "compliance", "--help"],
            &["veille-collector", "wake", "--help"],
            &["veille-collector", "report", "savings", "--help"],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        }
    }

    #[test]
    fn serve_flags_override_the_configuration() {
        let cli = Cli::try_parse_from([
            "veille-collector",
            "serve",
            "--data-dir",
            "/tmp/x",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let c = args.load_config().unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("/tmp/x"));
        assert_eq!(c.grpc_listen().unwrap().port(), 0);
        let e =
            Cli::try_parse_from(["veille-collector", "devices", "--format", "xml"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[tokio::test]
    async fn devices_without_server_or_store_is_an_empty_list_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::defaults().unwrap();
        c.data_dir = dir.path().to_string_lossy().into_owned();
        assert!(list_devices(&c).await.unwrap().is_empty());
        assert!(!dir.path().join(STORE_DIR).exists());
    }
}
