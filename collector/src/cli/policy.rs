//! `policy set|show|replay` and `report compliance`: through the running server's API
//! (so its cache and the agents see a new version at once), else on the store.

use std::path::{Path, PathBuf};

use crate::cli::CliError;
use crate::cli::remote::{self, Answer, ApiCall, NoStore};
use crate::config::Config;
use crate::policy::{
    API_PATH, COMPLIANCE_PATH, PolicyError, PolicyFile, PolicyShow, REPLAY_PATH, SetOutcome,
    load_or_create_key, set, show, validate_file,
};
use crate::reports::compliance::{compliance_output, period_ms, replay_output};
use crate::store::Store;

/// `policy set --file`: through the running server (so its cache and the agents see
/// the new version at once), else on the store directly.
pub async fn set_via_server_or_store(
    config: &Config,
    file: PolicyFile,
) -> Result<SetOutcome, CliError> {
    // Checked here too: a bad file is reported the same with or without a server.
    validate_file(&file)?;
    let body =
        serde_json::to_vec(&file).map_err(|e| CliError::from(PolicyError::Parse(e.to_string())))?;
    let data_dir = config.data_dir();
    let run = via_server_or_store(config, "PUT", API_PATH, Some(body), move |store| {
        let key = load_or_create_key(&data_dir)?;
        let (p, s) = set(store, &key, &file)?;
        serde_json::to_string(&SetOutcome::of(&p, &s))
            .map_err(|e| CliError::from(PolicyError::Task(e.to_string())))
    })
    .await?;
    serde_json::from_str(&run).map_err(|e| CliError::from(PolicyError::Task(e.to_string())))
}

/// `policy show`: from the running server, else from the store.
pub async fn show_via_server_or_store(config: &Config) -> Result<PolicyShow, CliError> {
    let data_dir = config.data_dir();
    let out = via_server_or_store(config, "GET", API_PATH, None, move |store| {
        let key = load_or_create_key(&data_dir)?;
        serde_json::to_string(&show(store, &key, None)?)
            .map_err(|e| CliError::from(PolicyError::Task(e.to_string())))
    })
    .await?;
    serde_json::from_str(&out).map_err(|e| CliError::from(PolicyError::Task(e.to_string())))
}

/// The answer of `method api_path` from the running server, else of `local` on the
/// store, which this path may create (a policy can be set before the first `serve`).
async fn via_server_or_store(
    config: &Config,
    method: &str,
    api_path: &str,
    body: Option<Vec<u8>>,
    local: impl FnOnce(&Store) -> Result<String, CliError> + Send + 'static,
) -> Result<String, CliError> {
    let call = ApiCall {
        method,
        path: api_path,
        json_body: body.as_deref(),
    };
    match remote::run(config, call, NoStore::Create, local).await? {
        Answer::Server(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
        Answer::Local(out) => Ok(out),
        // NoStore::Create opens (creates) the store instead of answering this.
        Answer::NoStore(path) => {
            Err(PolicyError::Task(format!("no store in {}", path.display())).into())
        }
    }
}

/// `veille-collector policy …`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate, version, sign (with <data_dir>/policy.key) and store an org's policy
    /// from a TOML or JSON file; errors name the field. Through the running server when
    /// there is one (agents get it with their next Ack), else on the store.
    Set(PolicySetArgs),
    /// The public key and key id to pin in the agents' config (`policy_public_key`),
    /// and each org's current policy, version and mode.
    Show(PolicyShowArgs),
    /// Evaluate a draft policy (TOML or JSON file) on the recorded timelines: predicted
    /// kWh, €, kgCO2e saved and the active sessions it would have interrupted, per site.
    /// Reads the store, or the running server's API (/api/v1/policy/replay).
    Replay(PolicyReplayArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicyReplayArgs {
    #[command(flatten)]
    pub config: crate::cli::ConfigArgs,
    /// The draft policy file.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// First day, YYYY-MM-DD (local midnight in `energy.timezone`).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day, YYYY-MM-DD, included.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
}

/// `report compliance` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ComplianceArgs {
    #[command(flatten)]
    pub config: crate::cli::ConfigArgs,
    /// First day, YYYY-MM-DD (local midnight in `energy.timezone`).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day, YYYY-MM-DD, included.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
}

/// `report compliance`: through the running server, else on the store.
pub async fn compliance_command(args: ComplianceArgs) -> Result<String, CliError> {
    let config = args.config.load_config()?;
    let ctx = crate::reports::context(&config)
        .map_err(|e| CliError::from(PolicyError::Period(e.to_string())))?;
    period_ms(&ctx, &args.from, &args.to)?;
    let path = format!(
        "{COMPLIANCE_PATH}?from={}&to={}&format={}",
        args.from, args.to, args.format
    );
    via_server_or_store(&config, "GET", &path, None, move |store| {
        compliance_output(store, &ctx, None, &args.from, &args.to, &args.format)
            .map_err(CliError::from)
    })
    .await
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicySetArgs {
    #[command(flatten)]
    pub config: crate::cli::ConfigArgs,
    /// The policy file (TOML, or JSON starting with `{`); see README "Auto-shutdown policy".
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicyShowArgs {
    #[command(flatten)]
    pub config: crate::cli::ConfigArgs,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

/// Reads a policy file.
pub fn read_file(path: &Path) -> Result<PolicyFile, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::FileRead {
        path: path.to_owned(),
        source,
    })?;
    Ok(PolicyFile::parse(&text)?)
}

/// Runs a `policy` subcommand and returns what to print.
pub async fn command(cmd: PolicyCommand) -> Result<String, CliError> {
    match cmd {
        PolicyCommand::Set(args) => {
            let config = args.config.load_config()?;
            let file = read_file(&args.file)?;
            let o = set_via_server_or_store(&config, file).await?;
            Ok(format!(
                "policy of org {} set: version {}, mode {}, signed by key {}\n",
                o.org, o.version, o.mode, o.key_id
            ))
        }
        PolicyCommand::Replay(args) => {
            let config = args.config.load_config()?;
            let draft = read_file(&args.file)?;
            let ctx = crate::reports::context(&config)
                .map_err(|e| CliError::from(PolicyError::Period(e.to_string())))?;
            period_ms(&ctx, &args.from, &args.to)?;
            let body = serde_json::to_vec(&draft)
                .map_err(|e| CliError::from(PolicyError::Parse(e.to_string())))?;
            let path = format!(
                "{REPLAY_PATH}?from={}&to={}&format={}",
                args.from, args.to, args.format
            );
            via_server_or_store(&config, "POST", &path, Some(body), move |store| {
                replay_output(store, &ctx, &draft, &args.from, &args.to, &args.format)
                    .map_err(CliError::from)
            })
            .await
        }
        PolicyCommand::Show(args) => {
            let config = args.config.load_config()?;
            let shown = show_via_server_or_store(&config).await?;
            Ok(if args.format == "json" {
                serde_json::to_string_pretty(&shown).unwrap_or_default() + "\n"
            } else {
                shown.to_table()
            })
        }
    }
}
