//! `veille-collector`: parses the command line, sets up logging, calls the library and
//! maps errors to exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.

use std::process::ExitCode;

use clap::Parser;
use veille_collector::cli::{Cli, Command};
use veille_collector::config::DEFAULT_CONFIG_TOML;
use veille_collector::{Listeners, server};

enum Failure {
    /// Bad flags or configuration: exit code 2.
    Usage(anyhow::Error),
    /// Anything that went wrong while running: exit code 1.
    Runtime(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // exits 2 on usage errors, 0 on --help/--version
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("veille-collector: {}", one_line(&e));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("veille-collector: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Demo(args) => runtime()?
            .block_on(veille_collector::demo::run(args))
            .map_err(|e| match e {
                veille_collector::demo::DemoError::Config(_)
                | veille_collector::demo::DemoError::AgentConfig(_) => Failure::Usage(e.into()),
                e => Failure::Runtime(e.into()),
            }),
        Command::Report(veille_collector::cli::ReportCommand::Consumption(args)) => {
            let config = args
                .config
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            let usage = |e: veille_collector::reports::ReportError| Failure::Usage(e.into());
            let query = veille_collector::reports::ConsumptionQuery {
                from: args.from,
                to: args.to,
                by: args.by.parse().map_err(
                    |e: veille_domain::energy::consumption::ConsumptionError| {
                        Failure::Usage(e.into())
                    },
                )?,
                format: veille_collector::reports::OutputFormat::parse(&args.format)
                    .map_err(usage)?,
                dialect: veille_collector::reports::parse_dialect(&args.csv_dialect)
                    .map_err(usage)?,
            };
            let ctx = veille_collector::reports::context(&config).map_err(usage)?;
            for date in [&query.from, &query.to] {
                ctx.day_start_ms(date)
                    .map_err(|e| Failure::Usage(anyhow::anyhow!("report consumption: {e}")))?;
            }
            let path = format!("/api/v1/reports/consumption?{}", query.to_query_string());
            let out = runtime()?
                .block_on(veille_collector::reports::via_server_or_store(
                    &config,
                    &path,
                    move |store| {
                        veille_collector::reports::consumption_output(
                            store,
                            &ctx,
                            None,
                            &query,
                            veille_collector::reports::now_ms(),
                        )
                    },
                ))
                .map_err(|e| match e {
                    veille_collector::reports::ReportError::Consumption(_) => {
                        Failure::Usage(anyhow::anyhow!("report consumption: {e}"))
                    }
                    e => Failure::Runtime(anyhow::anyhow!("report consumption: {e}")),
                })?;
            print!("{out}");
            Ok(())
        }
        Command::Report(veille_collector::cli::ReportCommand::Renewal(args)) => {
            report_renewal(args)
        }
        Command::Import(veille_collector::cli::ImportCommand::Glpi(args)) => import_glpi(args),
        Command::Import(veille_collector::cli::ImportCommand::Meters(args)) => rooms_out(
            "import meters",
            veille_collector::rooms::import_meters(args),
        ),
        Command::Room(cmd) => rooms_out("room", veille_collector::rooms::room_command(cmd)),
        Command::Report(veille_collector::cli::ReportCommand::Setpoint(args)) => rooms_out(
            "report setpoint",
            veille_collector::rooms::setpoint_command(args),
        ),
        Command::Report(veille_collector::cli::ReportCommand::Compliance(args)) => {
            let r = runtime()?.block_on(veille_collector::policy::compliance_command(args));
            printed("report compliance", r, |e| e.is_usage())
        }
        Command::Policy(cmd) => {
            let r = runtime()?.block_on(veille_collector::policy::command(cmd));
            printed("policy", r, |e| e.is_usage())
        }
        Command::RebuildRollups(args) => {
            let config = args
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            let dir = config.data_dir().join(veille_collector::server::STORE_DIR);
            let store = veille_collector::store::Store::open(&dir)
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("rebuild-rollups: {e}")))?;
            let (reports, rollups) = store
                .rebuild_rollups(|n| tracing::info!(reports = n, "rebuilding rollups…"))
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("rebuild-rollups: {e}")))?;
            println!("rebuilt {rollups} hourly rollups from {reports} reports");
            Ok(())
        }
        Command::InitTls(args) => {
            let config = args
                .config
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            if !(1..=36_500).contains(&args.days) {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "init-tls: --days must be between 1 and 36500"
                )));
            }
            let issued = veille_collector::init_tls::InitTls {
                dir: config.data_dir().join(veille_collector::init_tls::TLS_DIR),
                sans: (!args.sans.is_empty()).then_some(args.sans),
                clients: args.clients,
                days: args.days,
            }
            .run()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("init-tls: {e}")))?;
            print!("{}", issued.summary());
            Ok(())
        }
        Command::Catalogue(veille_collector::cli::CatalogueCommand::Lookup(args)) => {
            let config = args
                .config
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            let ctx = veille_collector::reports::context(&config)
                .map_err(|e| Failure::Usage(e.into()))?;
            let text = veille_collector::cli::catalogue_lookup(&args, &ctx.catalogue)
                .map_err(|e| Failure::Usage(anyhow::anyhow!(e)))?;
            print!("{text}");
            Ok(())
        }
        Command::PrintConfig => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(())
        }
        Command::Serve(args) => {
            let config = args
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            runtime()?.block_on(async {
                let listeners = Listeners::bind(&config)
                    .await
                    .map_err(|e| Failure::Runtime(e.into()))?;
                server::run(&config, listeners, server::shutdown_signal())
                    .await
                    .map_err(|e| Failure::Runtime(e.into()))
            })
        }
        Command::Devices(args) => {
            let config = args
                .config
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            let out = runtime()?
                .block_on(veille_collector::cli::devices_output(&config, args.format))
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("devices: {e}")))?;
            print!("{out}");
            Ok(())
        }
    }
}

/// `report renewal`: the running server's answer, else the store's.
fn report_renewal(args: veille_collector::cli::RenewalArgs) -> Result<(), Failure> {
    use veille_collector::reports::{self, OutputFormat};
    let config = args
        .config
        .load_config()
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let format = OutputFormat::parse(&args.format).map_err(|e| Failure::Usage(e.into()))?;
    let ctx = veille_collector::renewal_io::context(&config.renewal)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let path = format!("/api/v1/reports/renewal?format={}", format.as_str());
    let out = runtime()?
        .block_on(reports::via_server_or_store(&config, &path, move |store| {
            veille_collector::renewal_io::output(store, &ctx, None, format, reports::now_ms())
        }))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("report renewal: {e}")))?;
    print!("{out}");
    Ok(())
}

/// `import glpi`: a file the import refuses is a usage error (exit 2), nothing applied.
fn import_glpi(args: veille_collector::cli::GlpiImportArgs) -> Result<(), Failure> {
    use veille_collector::import::{self, ImportError};
    let config = args
        .config
        .load_config()
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let data_dir = config.data_dir();
    let store_dir = data_dir.join(veille_collector::server::STORE_DIR);
    let out = import::run(
        &args.file,
        &data_dir,
        &store_dir,
        args.dry_run,
        veille_collector::reports::now_ms(),
    )
    .map_err(|e| match e {
        ImportError::Glpi { .. } | ImportError::Read { .. } => {
            Failure::Usage(anyhow::anyhow!("import glpi: {e}"))
        }
        e => Failure::Runtime(anyhow::anyhow!("import glpi: {e}")),
    })?;
    print!("{out}");
    Ok(())
}

/// Prints a rooms command's output, or maps its error to an exit code.
fn rooms_out(
    what: &str,
    r: Result<String, veille_collector::rooms::RoomError>,
) -> Result<(), Failure> {
    printed(what, r, |e| e.is_usage())
}

/// Prints a verb's output; its error becomes exit code 2 when `is_usage` says the
/// operator's input is at fault, 1 otherwise.
fn printed<E: std::fmt::Display>(
    what: &str,
    r: Result<String, E>,
    is_usage: impl FnOnce(&E) -> bool,
) -> Result<(), Failure> {
    match r {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(e) if is_usage(&e) => Err(Failure::Usage(anyhow::anyhow!("{what}: {e}"))),
        Err(e) => Err(Failure::Runtime(anyhow::anyhow!("{what}: {e}"))),
    }
}

/// The library's errors already include their causes in their message, so only the
/// outermost layer is printed (`{:#}` would repeat them), on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot start the async runtime: {e}")))
}

/// Default log filter: rumqttd logs every MQTT connection at INFO, which drowns the
/// collector's own lines with thousands of agents.
const DEFAULT_LOG: &str = "info,rumqttd=warn";

/// Logs go to stderr. Filter from `VEILLE_LOG`, else `RUST_LOG`, else [`DEFAULT_LOG`].
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let spec = std::env::var("VEILLE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_LOG.to_owned());
    let (filter, bad) = match EnvFilter::try_new(&spec) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new(DEFAULT_LOG), Some(e)),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
    if let Some(e) = bad {
        tracing::warn!(filter = %spec, error = %e, "invalid log filter; using info");
    }
}
