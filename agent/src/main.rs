//! `veille-agent`: parse the command line, load the config, call the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use veille_agent::config::{AgentConfig, DEFAULT_CONFIG};
use veille_agent::probes::{Host, SystemClocks};
use veille_agent::run::{self, ActivitySource};
use veille_proto::settings::set_flag;

#[derive(Parser)]
#[command(
    name = "veille-agent",
    version,
    about = "Reports this device's uptime, power states and activity to a Veille collector",
    long_about = "Reports this device's uptime, power states (active, idle, asleep) and \
                  boot sessions to a Veille collector. Reports are written to a local spool \
                  before they are sent and kept until the collector has stored them.\n\n\
                  Configuration: flags > VEILLE_* environment > --config file > defaults \
                  (see `veille-agent print-config`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// TOML configuration file (see `print-config` for every key)
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the spool and the agent's state
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or Ctrl-C
    Run {
        #[command(flatten)]
        common: Common,
        /// Transport to the collector
        #[arg(long, value_name = "grpc")]
        transport: Option<String>,
        /// Collector URL: http://host:port for gRPC
        #[arg(long, value_name = "URL")]
        collector: Option<String>,
        /// The organisation's enrollment token
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        /// Seconds covered by one report
        #[arg(long, value_name = "N")]
        report_interval_s: Option<u64>,
        /// Seconds between two samples
        #[arg(long, value_name = "N")]
        sample_interval_s: Option<u64>,
    },
    /// Sample this machine briefly and print one report and its inventory
    Once {
        #[command(flatten)]
        common: Common,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Seconds to sample
        #[arg(long, default_value_t = 1)]
        seconds: u64,
    },
    /// Show the spool, the last acknowledgement and the state
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Postpone the pending auto-shutdown (refused beyond the policy's allowed count)
    Postpone {
        #[command(flatten)]
        common: Common,
    },
    /// Show the agent's shutdown warnings as desktop notifications, with "postpone"
    ///
    /// Runs in a graphical session as its user, started there by the XDG autostart
    /// entry /etc/xdg/autostart/veille-notifier.desktop; without one connected, the
    /// agent warns through `wall`.
    #[cfg(unix)]
    Notifier {
        /// The agent's notify socket
        #[arg(long, value_name = "PATH", default_value = veille_agent::notify::NOTIFY_SOCKET)]
        socket: PathBuf,
    },
    /// Print the annotated default configuration
    PrintConfig,
    /// Check that the configuration is complete (collector URL, token, TLS files):
    /// exit 0 if so, 1 with what is missing, 2 if it is invalid. The systemd unit's
    /// ExecCondition, so that an unconfigured agent stays inactive.
    CheckConfig {
        #[command(flatten)]
        common: Common,
    },
    /// Run as the Windows service `veille-agent` (the service manager starts this;
    /// logs go to %ProgramData%\Veille\agent.log)
    #[cfg(windows)]
    Service {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
}

/// The agent's runtime: one thread. Its work is a sample every few seconds and a send
/// now and then; a worker thread beside the main one only added its stack and
/// scheduler to the agent's memory (issue 21: RSS).
///
/// # Platform-specific behaviour
/// Windows keeps a multi-thread runtime with one worker: the service dispatcher takes
/// the thread that `block_in_place` frees, which a current-thread runtime cannot do.
fn runtime() -> tokio::runtime::Builder {
    #[cfg(windows)]
    {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(1);
        b
    }
    #[cfg(not(windows))]
    {
        tokio::runtime::Builder::new_current_thread()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(windows)]
    let log_file = matches!(cli.command, Command::Service { .. })
        .then(|| veille_agent::windows::data_dir().join("agent.log"));
    #[cfg(not(windows))]
    let log_file: Option<PathBuf> = None;
    let logs_to_file = log_file.is_some();
    init_logging(log_file);
    let runtime = match runtime().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("veille-agent: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if logs_to_file {
                // A service's stderr goes nowhere: the log file is where an admin looks.
                tracing::error!("{e:#}");
            }
            eprintln!("veille-agent: {e:#}");
            if e.downcast_ref::<veille_agent::config::ConfigError>()
                .is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The log filter: `VEILLE_LOG`, else `RUST_LOG`, else `info`. A comma-separated list
/// of `level` (the default for every target) and `target=level` directives, e.g.
/// `debug` or `info,veille_agent=debug`. A variable that does not parse is passed over
/// like an unset one, and named in the second value: the caller logs it once logging
/// runs, so a typo in a GPO's environment is seen rather than silently ignored.
///
/// tracing-subscriber's `Targets` rather than its `EnvFilter`: `EnvFilter` brings the
/// regex engine for span-field and regex directives the agent never needs, about a
/// fifth of the agent's binary (issue 21: an agent of a few MiB).
fn log_filter(
    env: impl Fn(&str) -> Option<String>,
) -> (tracing_subscriber::filter::Targets, Vec<String>) {
    let mut refused = Vec::new();
    for var in ["VEILLE_LOG", "RUST_LOG"] {
        let Some(value) = env(var) else { continue };
        match value.parse() {
            Ok(filter) => return (filter, refused),
            Err(e) => refused.push(format!("{var}={value:?} is not a log filter ({e})")),
        }
    }
    let info = tracing_subscriber::filter::Targets::new()
        .with_default(tracing_subscriber::filter::LevelFilter::INFO);
    (info, refused)
}

/// Logs to stderr, or appended to `file` (a Windows service has no console); a log file
/// that cannot be opened falls back to stderr and says so there.
fn init_logging(file: Option<PathBuf>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, mut problems) = log_filter(|var| std::env::var(var).ok());
    let mut to_file = None;
    if let Some(path) = file {
        let opened = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
            });
        match opened {
            Ok(log) => to_file = Some(log),
            Err(e) => problems.push(format!(
                "cannot open the log file {}: {e}; logging to stderr",
                path.display()
            )),
        }
    }
    if let Some(log) = to_file {
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(log))
                    .with_ansi(false),
            )
            .with(filter)
            .init();
    } else {
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .with(filter)
            .init();
    }
    for problem in problems {
        tracing::warn!("{problem}");
    }
}

fn load(common: &Common, mut flags: toml::Table) -> anyhow::Result<AgentConfig> {
    if let Some(dir) = &common.state_dir {
        set_flag(&mut flags, "state_dir", dir.display().to_string());
    }
    #[cfg(windows)]
    let (file, flags) = veille_agent::windows::config_layers(common.config.clone(), flags);
    #[cfg(not(windows))]
    let file = common.config.clone();
    let (config, provenance) = AgentConfig::load(file.as_deref(), std::env::vars(), flags)?;
    for name in &provenance.env_ignored {
        tracing::debug!(variable = %name, "environment variable names no config key; ignored");
    }
    Ok(config)
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::PrintConfig => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
        Command::Run {
            common,
            transport,
            collector,
            token,
            report_interval_s,
            sample_interval_s,
        } => {
            let mut flags = toml::Table::new();
            if let Some(v) = transport {
                set_flag(&mut flags, "transport", v);
            }
            if let Some(v) = collector {
                set_flag(&mut flags, "collector", v);
            }
            if let Some(v) = token {
                set_flag(&mut flags, "token", v);
            }
            if let Some(v) = report_interval_s {
                set_flag(&mut flags, "report_interval_s", v as i64);
            }
            if let Some(v) = sample_interval_s {
                set_flag(&mut flags, "sample_interval_s", v as i64);
            }
            let config = load(&common, flags)?;
            let activity = ActivitySource::detect().await;
            run::run(
                config,
                Host::real(),
                Arc::new(SystemClocks),
                activity,
                shutdown_signal(),
            )
            .await
            .context("agent failed")
        }
        Command::Once {
            common,
            format: Format::Json,
            seconds,
        } => {
            let config = load(&common, toml::Table::new())?;
            let activity = ActivitySource::detect().await;
            let batch = run::once(
                &config,
                &Host::real(),
                &SystemClocks,
                &activity,
                Duration::from_secs(seconds.clamp(1, 3600)),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&batch)?);
            Ok(())
        }
        Command::CheckConfig { common } => {
            let config = load(&common, toml::Table::new())?;
            let missing = veille_agent::check::missing(&config);
            if missing.is_empty() {
                println!(
                    "configuration complete: collector {}",
                    config.collector_url()
                );
                Ok(())
            } else {
                anyhow::bail!("not configured yet: {}", missing.join("; "))
            }
        }
        Command::Postpone { common } => {
            let config = load(&common, toml::Table::new())?;
            let deadline = veille_agent::policy::request_postpone(&config.state_dir())?;
            println!(
                "shutdown postponed until {}",
                deadline
                    .to_zoned(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M")
            );
            Ok(())
        }
        #[cfg(unix)]
        Command::Notifier { socket } => {
            let bus = zbus::Connection::session()
                .await
                .context("no session bus: the notifier runs inside a desktop session")?;
            let e = veille_agent::notifier::run(&socket, &bus).await;
            Err(e).context("notifier stopped")
        }
        #[cfg(windows)]
        Command::Service { common } => {
            let config = load(&common, toml::Table::new())?;
            let handle = tokio::runtime::Handle::current();
            // The service manager takes this thread; the agent runs on its thread.
            tokio::task::block_in_place(|| {
                veille_agent::windows::service::run(move |stop| {
                    handle.block_on(async move {
                        let activity = ActivitySource::detect().await;
                        run::run(config, Host::real(), Arc::new(SystemClocks), activity, stop)
                            .await
                            .map_err(|e| e.to_string())
                    })
                })
            })
            .context("not started by the Windows service manager (use `run` in a console)")
        }
        Command::Status { common } => {
            let config = load(&common, toml::Table::new())?;
            let mut status = veille_agent::status::read(&config.state_dir())?;
            status.configured_key =
                Some(config.policy_public_key.clone()).filter(|k| !k.trim().is_empty());
            status.power_meter =
                Some(veille_agent::probes::power_meter::status_line(&Host::real()));
            print!("{status}");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM (systemd stop, shutdown) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stop requested");
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn veille_log_wins_and_an_unset_environment_logs_info() {
        let (f, problems) = log_filter(env(&[("VEILLE_LOG", "debug"), ("RUST_LOG", "error")]));
        assert!(f.would_enable("veille_agent::run", &Level::DEBUG));
        assert!(problems.is_empty());
        let (f, problems) = log_filter(env(&[]));
        assert!(f.would_enable("veille_agent::run", &Level::INFO));
        assert!(!f.would_enable("veille_agent::run", &Level::DEBUG));
        assert!(problems.is_empty());
    }

    /// A typo in the environment a GPO set is reported, not silently ignored.
    #[test]
    fn a_filter_that_does_not_parse_is_passed_over_and_named() {
        let (f, problems) = log_filter(env(&[
            ("VEILLE_LOG", "veille_agent=loud"),
            ("RUST_LOG", "warn"),
        ]));
        assert!(f.would_enable("veille_agent", &Level::WARN));
        assert!(!f.would_enable("veille_agent", &Level::INFO));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("VEILLE_LOG=\"veille_agent=loud\""),
            "{problems:?}"
        );
        let (f, problems) = log_filter(env(&[("VEILLE_LOG", "=x"), ("RUST_LOG", "a=b")]));
        assert!(f.would_enable("veille_agent", &Level::INFO));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
