//! `policy set|show|replay` and `report compliance`: through the running server's API
//! (so its cache and the agents see a new version at once), else on the store.
//! `policy holidays` lists computed public holidays and needs neither.

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
    /// List the public holidays a policy with `holidays = "FR"` turns into whole-day
    /// shutdown windows, computed for one year (Easter-based ones included). Needs no
    /// store and no server.
    Holidays(PolicyHolidaysArgs),
}

/// `policy holidays` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyHolidaysArgs {
    /// Calendar year, e.g. 2027.
    #[arg(long, value_name = "YEAR")]
    pub year: i64,
    /// Holiday calendar (ISO 3166-1 alpha-2): the policy file's `holidays` key.
    #[arg(long, default_value = "FR", value_parser = ["FR", "fr"])]
    pub country: String,
    /// Add Alsace-Moselle's local holidays: Good Friday and 26 December (the policy
    /// file's `alsace_moselle = true`).
    #[arg(long)]
    pub alsace_moselle: bool,
    /// Output format: `table` (date, weekday, name) or `json` (a list of
    /// {"date", "weekday", "name"}).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

/// `policy holidays`: what to print.
pub fn holidays_output(args: &PolicyHolidaysArgs) -> Result<String, PolicyError> {
    let days =
        veille_domain::policy::holidays::holidays(&args.country, args.year, args.alsace_moselle)
            // A usage error (exit 2) that names the year: no policy file is involved.
            .map_err(|e| PolicyError::Period(e.to_string()))?;
    let weekday = |d: jiff::civil::Date| d.strftime("%a").to_string().to_ascii_lowercase();
    if args.format == "json" {
        let rows: Vec<serde_json::Value> = days
            .iter()
            .map(|h| {
                serde_json::json!({
                    "date": h.date.to_string(),
                    "weekday": weekday(h.date),
                    "name": h.name,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n");
    }
    let mut out = String::from("date        day  name\n");
    for h in &days {
        out.push_str(&format!("{}  {}  {}\n", h.date, weekday(h.date), h.name));
    }
    Ok(out)
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

/// Reads a policy file and the closure calendars it names (relative paths from the
/// file's folder), folded into its `closure_days`: what the server receives never names
/// a file.
pub fn read_file(path: &Path) -> Result<PolicyFile, PolicyError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| PolicyError::FileRead {
            path: p.to_owned(),
            source,
        })
    };
    let file = PolicyFile::parse(&read(path)?)?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut calendars = Vec::new();
    for name in &file.closure_calendars {
        calendars.push((name.clone(), read(&folder.join(name))?));
    }
    Ok(file.with_calendars(&calendars)?)
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
        PolicyCommand::Holidays(args) => Ok(holidays_output(&args)?),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(year: i64, alsace_moselle: bool, format: &str) -> PolicyHolidaysArgs {
        PolicyHolidaysArgs {
            year,
            country: "FR".into(),
            alsace_moselle,
            format: format.into(),
        }
    }

    #[test]
    fn holidays_list_as_table_and_json() {
        let table = holidays_output(&args(2027, false, "table")).unwrap();
        assert_eq!(table.lines().count(), 1 + 11);
        assert!(
            table.contains("2027-03-29  mon  Lundi de Pâques"),
            "{table}"
        );
        assert!(table.contains("2027-05-06  thu  Ascension"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&holidays_output(&args(2026, true, "json")).unwrap()).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 13);
        assert_eq!(rows[1]["date"], "2026-04-03");
        assert_eq!(rows[1]["name"], "Vendredi saint");
        assert!(holidays_output(&args(99_999, false, "table")).is_err());
    }

    #[test]
    fn read_file_folds_the_closure_calendars_next_to_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "org = \"acme\"\nmode = \"dry-run\"\nidle_threshold_s = 600\nwarning_s = 300\n\
             closure_calendars = [\"closed.ics\"]\nclosure_time_zone = \"Europe/Paris\"\n",
        )
        .unwrap();
        let e = read_file(&dir.path().join("p.toml")).unwrap_err();
        assert!(e.to_string().contains("closed.ics"), "{e}");
        std::fs::write(
            dir.path().join("closed.ics"),
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20271224\nSUMMARY:Mairie\nEND:VEVENT\nEND:VCALENDAR\n",
        )
        .unwrap();
        let f = read_file(&dir.path().join("p.toml")).unwrap();
        assert!(f.closure_calendars.is_empty());
        assert_eq!(f.closure_days[0].date, "2027-12-24");
        validate_file(&f).unwrap();
    }
}
