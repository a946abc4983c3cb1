//! `report savings --policy-version N`: through the running server's API
//! (`GET /api/v1/reports/savings`), else on the store.

use crate::cli::remote::{self, Answer, ApiCall, NoStore};
use crate::cli::{CliError, ConfigArgs};
use crate::reports::OutputFormat;
use crate::reports::savings::{SAVINGS_PATH, SavingsQuery, SavingsReportError, savings_output};
use crate::web::html::url_component;

#[derive(Debug, Clone, clap::Args)]
pub struct SavingsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The enforced policy version to judge (`policy show` lists the current one).
    #[arg(long, value_name = "N")]
    pub policy_version: u64,
    /// The policy's organisation; default: the only org with a policy.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// The day enforcement really started (YYYY-MM-DD), when not the day the version
    /// was set: a later rollout, or a version set by a collector older than this one
    /// (which did not record set times).
    #[arg(long, value_name = "DATE")]
    pub enforced_from: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
}

/// Why `report savings` failed.
#[derive(Debug, thiserror::Error)]
pub enum SavingsCliError {
    #[error(transparent)]
    Report(#[from] SavingsReportError),
    #[error(transparent)]
    Cli(#[from] CliError),
    #[error(transparent)]
    Route(#[from] crate::cli::remote::RouteError),
}

impl SavingsCliError {
    pub fn is_usage(&self) -> bool {
        match self {
            Self::Report(e) => e.is_usage(),
            Self::Cli(e) => e.is_usage(),
            Self::Route(r) => matches!(r.refused_status(), Some(400 | 404)),
        }
    }
}

pub async fn command(args: SavingsArgs) -> Result<String, SavingsCliError> {
    let config = args.config.load_config().map_err(CliError::from)?;
    let ctx = crate::reports::context(&config).map_err(CliError::from)?;
    let format = OutputFormat::parse(&args.format).map_err(CliError::from)?;
    let enforced_from = match &args.enforced_from {
        None => None,
        Some(d) => Some(d.parse().map_err(|_| {
            SavingsReportError::Usage(format!("--enforced-from {d:?}: expected YYYY-MM-DD"))
        })?),
    };
    let query = SavingsQuery {
        policy_version: args.policy_version,
        org: args.org.clone(),
        enforced_from,
        format,
    };
    let mut path = format!(
        "{SAVINGS_PATH}?policy_version={}&format={}",
        query.policy_version,
        format.as_str()
    );
    if let Some(o) = &query.org {
        path.push_str(&format!("&org={}", url_component(o)));
    }
    if let Some(d) = query.enforced_from {
        path.push_str(&format!("&enforced_from={d}"));
    }
    let answer = remote::run(
        &config,
        ApiCall::get(&path),
        NoStore::Report,
        move |store| {
            savings_output(store, &ctx, &query, crate::clock::now_ms())
                .map_err(SavingsCliError::from)
        },
    )
    .await?;
    match answer {
        Answer::Server(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
        Answer::Local(out) => Ok(out),
        Answer::NoStore(path) => {
            Err(CliError::from(crate::reports::ReportError::NoStore { path }).into())
        }
    }
}
