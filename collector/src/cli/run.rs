//! The dispatch of every verb: what `main` calls once the command line is parsed.
//! Each verb's error becomes a [`Failure`]: a usage error (exit code 2: bad flags,
//! configuration or input) or a runtime one (exit code 1).

use crate::cli::{Cli, Command};
use crate::config::DEFAULT_CONFIG_TOML;
use crate::{Listeners, server};

pub enum Failure {
    /// Bad flags or configuration: exit code 2.
    Usage(anyhow::Error),
    /// Anything that went wrong while running: exit code 1.
    Runtime(anyhow::Error),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            runtime()?
                .block_on(crate::cli::demo::run(args))
                .map_err(|e| match e {
                    crate::cli::demo::DemoError::Config(_)
                    | crate::cli::demo::DemoError::AgentConfig(_) => Failure::Usage(e.into()),
                    e => Failure::Runtime(e.into()),
                })
        }
        Command::Report(crate::cli::ReportCommand::Consumption(args)) => {
            let config = args
                .config
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            let usage = |e: crate::reports::ReportError| Failure::Usage(e.into());
            let query = crate::reports::ConsumptionQuery {
                from: args.from,
                to: args.to,
                by: args.by.parse().map_err(
                    |e: veille_domain::energy::consumption::ConsumptionError| {
                        Failure::Usage(e.into())
                    },
                )?,
                format: crate::reports::OutputFormat::parse(&args.format).map_err(usage)?,
                dialect: crate::reports::parse_dialect(&args.csv_dialect).map_err(usage)?,
            };
            let ctx = crate::reports::context(&config).map_err(usage)?;
            for date in [&query.from, &query.to] {
                ctx.day_start_ms(date)
                    .map_err(|e| Failure::Usage(anyhow::anyhow!("report consumption: {e}")))?;
            }
            let path = format!("/api/v1/reports/consumption?{}", query.to_query_string());
            let out = runtime()?
                .block_on(crate::cli::report_via_server_or_store(
                    &config,
                    &path,
                    move |store| {
                        crate::reports::consumption_output(
                            store,
                            &ctx,
                            None,
                            &query,
                            crate::clock::now_ms(),
                        )
                    },
                ))
                .map_err(|e| match e {
                    crate::cli::CliError::Report(crate::reports::ReportError::Consumption(_)) => {
                        Failure::Usage(anyhow::anyhow!("report consumption: {e}"))
                    }
                    e => Failure::Runtime(anyhow::anyhow!("report consumption: {e}")),
                })?;
            print!("{out}");
            Ok(())
        }
        Command::Report(crate::cli::ReportCommand::Renewal(args)) => report_renewal(args),
        Command::Report(crate::cli::ReportCommand::Compare(args)) => report_compare(args),
        Command::Report(crate::cli::ReportCommand::Trajectory(args)) => report_trajectory(args),
        Command::Import(crate::cli::ImportCommand::Glpi(args)) => import_glpi(args),
        Command::Glpi(crate::cli::GlpiCommand::Sync(args)) => glpi_sync(args),
        Command::Import(crate::cli::ImportCommand::Meters(args)) => {
            rooms_out("import meters", crate::cli::rooms::import_meters(args))
        }
        Command::Import(crate::cli::ImportCommand::Carbon(args)) => printed(
            "import carbon",
            crate::cli::carbon::import_carbon(args),
            |e| e.is_usage(),
        ),
        Command::Room(cmd) => rooms_out("room", crate::cli::rooms::room_command(cmd)),
        Command::Report(crate::cli::ReportCommand::Setpoint(args)) => {
            rooms_out("report setpoint", crate::cli::rooms::setpoint_command(args))
        }
        Command::Report(crate::cli::ReportCommand::Compliance(args)) => {
            let r = runtime()?.block_on(crate::cli::policy::compliance_command(args));
            printed("report compliance", r, |e| e.is_usage())
        }
        Command::Report(crate::cli::ReportCommand::Savings(args)) => {
            let r = runtime()?.block_on(crate::cli::savings::command(args));
            printed("report savings", r, |e| e.is_usage())
        }
        Command::Policy(cmd) => {
            let r = runtime()?.block_on(crate::cli::policy::command(cmd));
            printed("policy", r, |e| e.is_usage())
        }
        Command::Export(args) => {
            let config = args
                .config
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            let line = crate::cli::export::run(&config, &args).map_err(|e| {
                if e.is_usage() {
                    Failure::Usage(anyhow::anyhow!("export: {e}"))
                } else {
                    Failure::Runtime(anyhow::anyhow!("export: {e}"))
                }
            })?;
            println!("{line}");
            Ok(())
        }
        Command::RebuildRollups(args) => {
            let config = args
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            let store = config
                .open_store()
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("rebuild-rollups: {e}")))?;
            let (reports, rollups) = store
                .rebuild_rollups(|n| tracing::info!(reports = n, "rebuilding rollups…"))
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("rebuild-rollups: {e}")))?;
            println!("rebuilt {rollups} hourly rollups from {reports} reports");
            Ok(())
        }
        Command::Wake(args) => {
            let r = runtime()?.block_on(crate::cli::wake::command(args));
            // An unknown device (404 from the server) is the operator's input too.
            printed("wake", r, |e| {
                e.is_usage()
                    || matches!(e, crate::cli::CliError::Route(r) if r.refused_status() == Some(404))
            })
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
            let issued = crate::cli::init_tls::InitTls {
                dir: config.data_dir().join(crate::cli::init_tls::TLS_DIR),
                sans: (!args.sans.is_empty()).then_some(args.sans),
                clients: args.clients,
                days: args.days,
            }
            .run()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("init-tls: {e}")))?;
            print!("{}", issued.summary());
            Ok(())
        }
        Command::Catalogue(crate::cli::CatalogueCommand::Lookup(args)) => {
            let config = args
                .config
                .load_config()
                .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
            let ctx = crate::reports::context(&config).map_err(|e| Failure::Usage(e.into()))?;
            let text = crate::cli::catalogue_lookup(&args, &ctx.catalogue)
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
                .block_on(crate::cli::devices_output(&config, args.format))
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("devices: {e}")))?;
            print!("{out}");
            Ok(())
        }
    }
}

/// `report renewal`: the running server's answer, else the store's.
fn report_renewal(args: crate::cli::RenewalArgs) -> Result<(), Failure> {
    use crate::reports::OutputFormat;
    let config = args
        .config
        .load_config()
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let format = OutputFormat::parse(&args.format).map_err(|e| Failure::Usage(e.into()))?;
    let ctx = crate::reports::renewal::context(&config.renewal)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let path = format!("/api/v1/reports/renewal?format={}", format.as_str());
    let out = runtime()?
        .block_on(crate::cli::report_via_server_or_store(
            &config,
            &path,
            move |store| {
                crate::reports::renewal::output(store, &ctx, None, format, crate::clock::now_ms())
            },
        ))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("report renewal: {e}")))?;
    print!("{out}");
    Ok(())
}

/// `report compare`: the running server's answer, else the store's.
fn report_compare(args: crate::cli::CompareArgs) -> Result<(), Failure> {
    use crate::reports::OutputFormat;
    let config = args
        .config
        .load_config()
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let usage = |e: crate::reports::ReportError| Failure::Usage(e.into());
    let format = OutputFormat::parse(&args.format).map_err(usage)?;
    let energy = crate::reports::context(&config).map_err(usage)?;
    for date in [&args.from, &args.to] {
        energy
            .day_start_ms(date)
            .map_err(|e| Failure::Usage(anyhow::anyhow!("report compare: {e}")))?;
    }
    let renewal = crate::reports::renewal::context(&config.renewal)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let mut path = format!(
        "{}?from={}&to={}&format={}",
        crate::api::COMPARE_PATH,
        args.from,
        args.to,
        format.as_str()
    );
    if let Some(org) = &args.org {
        path.push_str(&format!("&org={}", org_arg("report compare", org)?));
    }
    let profiles = config.org_profiles();
    let out = runtime()?
        .block_on(crate::cli::report_via_server_or_store(
            &config,
            &path,
            move |store| {
                crate::reports::compare::compare_output(
                    store,
                    &energy,
                    &renewal,
                    &profiles,
                    &args.from,
                    &args.to,
                    args.org.as_deref(),
                    format,
                    crate::clock::now_ms(),
                )
            },
        ))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("report compare: {e}")))?;
    print!("{out}");
    Ok(())
}

/// An `--org` value that may go in a query string: an org id is [A-Za-z0-9._-].
fn org_arg<'a>(what: &str, org: &'a str) -> Result<&'a str, Failure> {
    if org.is_empty()
        || !org
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "{what}: --org {org:?} is not an org id"
        )));
    }
    Ok(org)
}

/// `report trajectory`: the running server's answer, else the store's.
fn report_trajectory(args: crate::cli::TrajectoryArgs) -> Result<(), Failure> {
    use crate::reports::OutputFormat;
    let config = args
        .config
        .load_config()
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let usage = |e: crate::reports::ReportError| Failure::Usage(e.into());
    let format = OutputFormat::parse(&args.format).map_err(usage)?;
    let energy = crate::reports::context(&config).map_err(usage)?;
    let mut path = format!("{}?format={}", crate::api::TRAJECTORY_PATH, format.as_str());
    if let Some(org) = &args.org {
        path.push_str(&format!("&org={}", org_arg("report trajectory", org)?));
    }
    let profiles = config.org_profiles();
    let out = runtime()?
        .block_on(crate::cli::report_via_server_or_store(
            &config,
            &path,
            move |store| {
                crate::reports::trajectory::output(
                    store,
                    &energy,
                    &profiles,
                    args.org.as_deref(),
                    format,
                    crate::clock::now_ms(),
                )
            },
        ))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("report trajectory: {e}")))?;
    print!("{out}");
    Ok(())
}

/// `import glpi`: a file the import refuses is a usage error (exit 2), nothing applied.
fn import_glpi(args: crate::cli::GlpiImportArgs) -> Result<(), Failure> {
    use crate::glpi::csv::{self as import, ImportError};
    let config = args
        .config
        .load_config()
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let org_ids = config.org_ids();
    if let Some(org) = &args.org
        && !(org_ids.contains(&org.as_str())
            || (org_ids.is_empty() && org == crate::config::DEFAULT_ORG_ID))
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "import glpi: --org {org:?} is not a configured org"
        )));
    }
    let target = import::Target {
        match_org: args.org.clone(),
        // Several orgs and none named: unmatched rows have no owner and are not kept.
        keep_org: args
            .org
            .clone()
            .or_else(|| config.glpi.org_id(&org_ids).ok()),
        kind: veille_domain::renewal::fleet::AssetKind::parse(&args.kind)
            .unwrap_or(veille_domain::renewal::fleet::AssetKind::Computer),
    };
    let out = import::run(
        &args.file,
        &config.store_location(),
        &target,
        args.dry_run,
        crate::clock::now_ms(),
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

/// `glpi sync`: a refused token or a missing link is a usage error (exit 2).
fn glpi_sync(args: crate::cli::GlpiSyncArgs) -> Result<(), Failure> {
    let config = args
        .config
        .load_config()
        .map_err(|e| Failure::Usage(anyhow::anyhow!("configuration: {e}")))?;
    let now_ms = crate::clock::now_ms();
    let r = runtime()?.block_on(crate::glpi::sync(&config, args.dry_run, now_ms));
    printed("glpi sync", r, |e| e.is_usage())
}

/// Prints a rooms command's output, or maps its error to an exit code.
fn rooms_out(what: &str, r: Result<String, crate::cli::CliError>) -> Result<(), Failure> {
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

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot start the async runtime: {e}")))
}
