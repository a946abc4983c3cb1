//! `veille-collector`: parses the command line, sets up logging, calls the library and
//! maps errors to exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.

use std::process::ExitCode;

use clap::Parser;
use veille_collector::cli::Cli;
use veille_collector::cli::run::{Failure, run};

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

/// The library's errors already include their causes in their message, so only the
/// outermost layer is printed (`{:#}` would repeat them), on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
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
