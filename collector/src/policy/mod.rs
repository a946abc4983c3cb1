//! Auto-shutdown policies on the collector side: the ed25519 signing key in the data
//! directory, the policy file an operator writes (TOML or JSON), the `policies` tree
//! (every signed version of every org), the in-memory cache the gRPC Ack reads, and
//! `policy set` / `policy show` over the store or the running server's HTTP API.
//!
//! Evaluation and signatures live in `veille_proto::{policy, signing}`: the agent checks
//! exactly what is signed here.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message;
use serde::{Deserialize, Serialize};
use veille_proto::policy::validate_policy;
use veille_proto::signing::{self, KeyError, SigningKey};
use veille_proto::v1::{EventKind, Policy, SignedPolicy};
use veille_proto::validate::ValidationError;

pub use veille_domain::policy::file::{PolicyFile, PolicyFileError, WindowFile, mode_name};

use crate::auth::{Auth, Principal, bearer_token};
use crate::cli::remote::{self, Answer, ApiCall, NoStore, RouteError};
use crate::config::Config;
use crate::store::{Store, StoreError};
use crate::tokens;
use veille_domain::energy::consumption::Context;
use veille_domain::policy::compliance::DeviceInput;

/// The signing key's file in the data directory: the 32-byte secret seed in base64,
/// mode 0600. Losing it means agents that pinned its public key refuse every new policy
/// until they are re-pinned; keep it in the backups.
pub const KEY_FILE: &str = "policy.key";

/// `PUT` (set) and `GET` (show) under the operator token.
pub const API_PATH: &str = "/api/v1/policy";
/// `POST` a draft: its replay.
pub const REPLAY_PATH: &str = "/api/v1/policy/replay";
/// `GET ?from=&to=[&format=]`: the compliance report.
pub const COMPLIANCE_PATH: &str = "/api/v1/reports/compliance";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{path}: {source}")]
    KeyIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a signing key: {source}")]
    KeyMalformed { path: PathBuf, source: KeyError },
    #[error("no random source for a signing key: {0}")]
    Random(String),
    #[error("cannot read {path}: {source}")]
    FileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file: {0}")]
    Parse(String),
    #[error("policy: {0}")]
    Invalid(#[from] ValidationError),
    #[error("policy version {version} of org {org:?} is not above the current version {current}")]
    NotNewer {
        org: String,
        version: u64,
        current: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("corrupt policy in the store for org {org:?}: {reason}")]
    Corrupt { org: String, reason: String },
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("{0}")]
    Period(String),
    #[error("policy task failed: {0}")]
    Task(String),
}

impl PolicyError {
    /// Whether the operator's input is at fault (exit code 2, HTTP 400/409).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PolicyError::FileRead { .. }
                | PolicyError::Config(_)
                | PolicyError::Period(_)
                | PolicyError::Parse(_)
                | PolicyError::Invalid(_)
                | PolicyError::NotNewer { .. }
        ) || matches!(self, PolicyError::Route(r) if matches!(r.refused_status(), Some(400 | 409)))
    }
}

impl From<PolicyFileError> for PolicyError {
    fn from(e: PolicyFileError) -> Self {
        match e {
            PolicyFileError::Parse(m) => PolicyError::Parse(m),
            PolicyFileError::Invalid(v) => PolicyError::Invalid(v),
        }
    }
}

impl From<sled::Error> for PolicyError {
    fn from(e: sled::Error) -> Self {
        PolicyError::Store(StoreError::from(e))
    }
}

/// The signing key of `data_dir`, created (mode 0600) at the first call.
pub fn load_or_create_key(data_dir: &Path) -> Result<SigningKey, PolicyError> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => signing::parse_signing_key(&text)
            .map_err(|source| PolicyError::KeyMalformed { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(|source| PolicyError::KeyIo {
                path: data_dir.to_owned(),
                source,
            })?;
            let key =
                signing::generate_signing_key().map_err(|e| PolicyError::Random(e.to_string()))?;
            let text = format!("{}\n", signing::encode_signing_key(&key));
            tokens::write_secret(&path, &text).map_err(|source| PolicyError::KeyIo {
                path: path.clone(),
                source,
            })?;
            tracing::info!(path = %path.display(), key_id = %signing::key_id(&key.verifying_key()),
                "created the policy signing key");
            Ok(key)
        }
        Err(source) => Err(PolicyError::KeyIo { path, source }),
    }
}

fn policy_key(org: &str, version: u64) -> Vec<u8> {
    let mut k = crate::store::prefix(org);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The current (highest-version) signed policy of every org, with its decoded policy.
pub fn current_all(store: &Store) -> Result<Vec<(Policy, SignedPolicy)>, PolicyError> {
    let tree = store.policies()?;
    let mut latest: HashMap<String, (Policy, SignedPolicy)> = HashMap::new();
    for item in tree.iter() {
        let (k, v) = item?;
        let (policy, signed) = decode_stored(&k, &v)?;
        // Keys sort by org then version: the last seen per org is its current one.
        latest.insert(policy.org.clone(), (policy, signed));
    }
    let mut out: Vec<_> = latest.into_values().collect();
    out.sort_by(|a, b| a.0.org.cmp(&b.0.org));
    Ok(out)
}

/// The current signed policy of `org`, if it has one.
pub fn current(store: &Store, org: &str) -> Result<Option<(Policy, SignedPolicy)>, PolicyError> {
    let tree = store.policies()?;
    match tree.scan_prefix(crate::store::prefix(org)).next_back() {
        None => Ok(None),
        Some(item) => {
            let (k, v) = item?;
            decode_stored(&k, &v).map(Some)
        }
    }
}

fn decode_stored(k: &[u8], v: &[u8]) -> Result<(Policy, SignedPolicy), PolicyError> {
    let org = String::from_utf8_lossy(k.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
    let corrupt = |reason: String| PolicyError::Corrupt {
        org: org.clone(),
        reason,
    };
    let signed = SignedPolicy::decode(v).map_err(|e| corrupt(e.to_string()))?;
    let policy = Policy::decode(signed.policy.as_slice()).map_err(|e| corrupt(e.to_string()))?;
    Ok((policy, signed))
}

/// Validates `file`, gives it its version (current + 1 when 0; refused unless above
/// the current one), signs it with `key`, stores it durably and returns it.
pub fn set(
    store: &Store,
    key: &SigningKey,
    file: &PolicyFile,
) -> Result<(Policy, SignedPolicy), PolicyError> {
    let mut policy = file.to_policy()?;
    let held = current(store, &policy.org)?.map_or(0, |(p, _)| p.version);
    if policy.version == 0 {
        policy.version = held + 1;
    } else if policy.version <= held {
        return Err(PolicyError::NotNewer {
            org: policy.org,
            version: policy.version,
            current: held,
        });
    }
    validate_policy(&policy)?;
    let signed = signing::sign(&policy, key);
    store.policies()?.insert(
        policy_key(&policy.org, policy.version),
        signed.encode_to_vec(),
    )?;
    store.flush()?;
    tracing::info!(org = %policy.org, version = policy.version, mode = mode_name(policy.mode()),
        key_id = %signed.key_id, "policy set");
    Ok((policy, signed))
}

/// The current signed policy per org, in memory: the gRPC Ack carries it with every
/// answer, so it must cost a map lookup, not a store read. The MQTT side watches
/// [`Self::changes`] to republish the retained `veille/v1/{org}/policy` message.
#[derive(Debug, Default)]
pub struct PolicyCache {
    by_org: RwLock<HashMap<String, SignedPolicy>>,
    /// The signing key's public half, base64 (`Ack.policy_key`).
    public_key: String,
    /// Bumped by every [`Self::put`].
    changed: tokio::sync::watch::Sender<u64>,
}

impl PolicyCache {
    /// The cache filled from the store, announcing `key`'s public half.
    pub fn load(store: &Store, key: &SigningKey) -> Result<Self, PolicyError> {
        let cache = Self {
            public_key: signing::encode_verifying_key(&key.verifying_key()),
            ..Self::default()
        };
        for (p, s) in current_all(store)? {
            cache.put(&p.org, s);
        }
        Ok(cache)
    }

    /// The public key agents pin on first contact (empty for a cache without a key).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub fn get(&self, org: &str) -> Option<SignedPolicy> {
        self.by_org
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(org)
            .cloned()
    }

    pub fn put(&self, org: &str, signed: SignedPolicy) {
        self.by_org
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(org.to_owned(), signed);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Every org's current signed policy, sorted by org.
    pub fn all(&self) -> Vec<(String, SignedPolicy)> {
        let mut all: Vec<_> = self
            .by_org
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(o, s)| (o.clone(), s.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Changes whenever a policy is put (`policy set`).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// What `policy show` prints: the key to pin, and each org's current policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyShow {
    /// Base64 public key: `policy_public_key` in the agents' config.
    pub public_key: String,
    pub key_id: String,
    pub policies: Vec<ShownPolicy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShownPolicy {
    pub org: String,
    pub version: u64,
    pub mode: String,
    /// The key id that signed this version.
    pub signed_by: String,
    pub policy: PolicyFile,
}

/// [`PolicyShow`] from the store (`org`: only that org's policy).
pub fn show(store: &Store, key: &SigningKey, org: Option<&str>) -> Result<PolicyShow, PolicyError> {
    let vk = key.verifying_key();
    Ok(PolicyShow {
        public_key: signing::encode_verifying_key(&vk),
        key_id: signing::key_id(&vk),
        policies: current_all(store)?
            .into_iter()
            .filter(|(p, _)| org.is_none_or(|o| o == p.org))
            .map(|(p, s)| ShownPolicy {
                org: p.org.clone(),
                version: p.version,
                mode: mode_name(p.mode()).to_owned(),
                signed_by: s.key_id.clone(),
                policy: PolicyFile::from_policy(&p),
            })
            .collect(),
    })
}

impl PolicyShow {
    /// The human form.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "public key  {}\nkey id      {}\n(pin it in the agents' config: policy_public_key = \"{}\")\n\n",
            self.public_key, self.key_id, self.public_key
        );
        if self.policies.is_empty() {
            out.push_str("no policy set\n");
            return out;
        }
        out.push_str(&format!(
            "{:<20} {:>7} {:<8} {:<16} windows\n",
            "org", "version", "mode", "signed by"
        ));
        for p in &self.policies {
            let windows: Vec<String> = p
                .policy
                .windows
                .iter()
                .map(|w| format!("{} {}-{} {}", w.days.join(","), w.start, w.end, w.time_zone))
                .collect();
            out.push_str(&format!(
                "{:<20} {:>7} {:<8} {:<16} {}\n",
                p.org,
                p.version,
                p.mode,
                p.signed_by,
                windows.join("; ")
            ));
        }
        out
    }
}

/// What `PUT /api/v1/policy` and offline `policy set` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetOutcome {
    pub org: String,
    pub version: u64,
    pub mode: String,
    pub key_id: String,
}

impl SetOutcome {
    fn of(p: &Policy, s: &SignedPolicy) -> Self {
        Self {
            org: p.org.clone(),
            version: p.version,
            mode: mode_name(p.mode()).to_owned(),
            key_id: s.key_id.clone(),
        }
    }
}

/// `policy set --file`: through the running server (so its cache and the agents see
/// the new version at once), else on the store directly.
pub async fn set_via_server_or_store(
    config: &Config,
    file: PolicyFile,
) -> Result<SetOutcome, PolicyError> {
    // Checked here too: a bad file is reported the same with or without a server.
    validate_file(&file)?;
    let body = serde_json::to_vec(&file).map_err(|e| PolicyError::Parse(e.to_string()))?;
    let data_dir = config.data_dir();
    let run = via_server_or_store(config, "PUT", API_PATH, Some(body), move |store| {
        let key = load_or_create_key(&data_dir)?;
        let (p, s) = set(store, &key, &file)?;
        serde_json::to_string(&SetOutcome::of(&p, &s)).map_err(|e| PolicyError::Task(e.to_string()))
    })
    .await?;
    serde_json::from_str(&run).map_err(|e| PolicyError::Task(e.to_string()))
}

fn validate_file(file: &PolicyFile) -> Result<(), PolicyError> {
    let mut p = file.to_policy()?;
    p.version = p.version.max(1);
    validate_policy(&p)?;
    Ok(())
}

/// `policy show`: from the running server, else from the store.
pub async fn show_via_server_or_store(config: &Config) -> Result<PolicyShow, PolicyError> {
    let data_dir = config.data_dir();
    let out = via_server_or_store(config, "GET", API_PATH, None, move |store| {
        let key = load_or_create_key(&data_dir)?;
        serde_json::to_string(&show(store, &key, None)?)
            .map_err(|e| PolicyError::Task(e.to_string()))
    })
    .await?;
    serde_json::from_str(&out).map_err(|e| PolicyError::Task(e.to_string()))
}

/// The answer of `method api_path` from the running server, else of `local` on the
/// store, which this path may create (a policy can be set before the first `serve`).
async fn via_server_or_store(
    config: &Config,
    method: &str,
    api_path: &str,
    body: Option<Vec<u8>>,
    local: impl FnOnce(&Store) -> Result<String, PolicyError> + Send + 'static,
) -> Result<String, PolicyError> {
    let call = ApiCall {
        method,
        path: api_path,
        json_body: body.as_deref(),
    };
    match remote::run(&config.data_dir(), call, NoStore::Create, local).await? {
        Answer::Server(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
        Answer::Local(out) => Ok(out),
        // NoStore::Create opens (creates) the store instead of answering this.
        Answer::NoStore(path) => Err(PolicyError::Task(format!("no store in {}", path.display()))),
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

/// The period `[from, to]` (days, `to` included) as Unix ms.
pub fn period_ms(ctx: &Context, from: &str, to: &str) -> Result<(i64, i64), PolicyError> {
    let bad = |e: &dyn std::fmt::Display| PolicyError::Period(e.to_string());
    let from_ms = ctx.day_start_ms(from).map_err(|e| bad(&e))?;
    let next = to
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.tomorrow().ok())
        .ok_or_else(|| PolicyError::Period(format!("date {to:?}: expected YYYY-MM-DD")))?;
    let to_ms = ctx.day_start_ms(&next.to_string()).map_err(|e| bad(&e))?;
    if to_ms <= from_ms {
        return Err(PolicyError::Period(format!(
            "--to {to} is before --from {from}"
        )));
    }
    Ok((from_ms, to_ms))
}

/// Every device of `org` (all orgs: `None`) with its rollups, facts, power profile and
/// the policy events it reported in `[from_ms, to_ms)`.
pub fn load_inputs(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DeviceInput>, PolicyError> {
    let mut out = Vec::new();
    for d in crate::reports::load_devices(store, org, from_ms, to_ms)? {
        let inv = store.inventory(&d.org, &d.device_id)?.unwrap_or_default();
        let mut events = Vec::new();
        for r in store.reports(&d.org, &d.device_id, 0..=u64::MAX)? {
            for e in r.events {
                let kind = EventKind::try_from(e.kind).unwrap_or(EventKind::Unspecified);
                let policy_event = matches!(
                    kind,
                    EventKind::PolicyWarned
                        | EventKind::PolicyPostponed
                        | EventKind::PolicyShutdown
                        | EventKind::PolicySkipped
                        | EventKind::PolicyRejected
                );
                if policy_event && (from_ms..to_ms).contains(&e.at_unix_ms) {
                    events.push((kind, e.detail));
                }
            }
        }
        // Still running at the end of the period: its latest session reported within
        // the period's last day.
        let end = to_ms.min(crate::clock::now_ms());
        let running_since_ms = d
            .sessions
            .iter()
            .max_by_key(|s| s.first_start_ms)
            .filter(|s| !s.last_shutdown && s.last_end_ms >= end - 24 * 3_600_000)
            .map(|s| s.boot_ms);
        out.push(DeviceInput {
            running_since_ms,
            facts: veille_domain::policy::compliance::facts(inv.chassis, &d.hostname, &d.groups),
            profile: ctx
                .catalogue
                .profile_for(d.class, &d.manufacturer, &d.model)
                .0
                .clone(),
            org: d.org,
            device_id: d.device_id,
            site: d.site,
            hours: d.hours,
            events,
        });
    }
    Ok(out)
}

fn render<T: Serialize>(
    rows: &[T],
    format: &str,
    table: fn(&[T]) -> String,
    csv: fn(&[T]) -> String,
) -> String {
    match format {
        "csv" => csv(rows),
        "json" => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        _ => table(rows),
    }
}

/// `report compliance` from the store.
pub fn compliance_output(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    from: &str,
    to: &str,
    format: &str,
) -> Result<String, PolicyError> {
    let (from_ms, to_ms) = period_ms(ctx, from, to)?;
    let policies: BTreeMap<String, Policy> = current_all(store)?
        .into_iter()
        .map(|(p, _)| (p.org.clone(), p))
        .collect();
    let inputs = load_inputs(store, ctx, org, from_ms, to_ms)?;
    let rows =
        veille_domain::policy::compliance::compliance(ctx, &policies, &inputs, from_ms, to_ms);
    Ok(render(
        &rows,
        format,
        veille_domain::policy::compliance::compliance_table,
        veille_domain::policy::compliance::compliance_csv,
    ))
}

/// `policy replay` from the store.
pub fn replay_output(
    store: &Store,
    ctx: &Context,
    draft: &PolicyFile,
    from: &str,
    to: &str,
    format: &str,
) -> Result<String, PolicyError> {
    let mut policy = draft.to_policy()?;
    policy.version = policy.version.max(1);
    validate_policy(&policy)?;
    let (from_ms, to_ms) = period_ms(ctx, from, to)?;
    let inputs = load_inputs(store, ctx, Some(&policy.org), from_ms, to_ms)?;
    let rows = veille_domain::policy::compliance::replay(ctx, &policy, &inputs, from_ms, to_ms);
    Ok(render(
        &rows,
        format,
        veille_domain::policy::compliance::replay_table,
        veille_domain::policy::compliance::replay_csv,
    ))
}

/// `report compliance`: through the running server, else on the store.
pub async fn compliance_command(args: ComplianceArgs) -> Result<String, PolicyError> {
    let config = args.config.load_config()?;
    let ctx = crate::reports::context(&config).map_err(|e| PolicyError::Period(e.to_string()))?;
    period_ms(&ctx, &args.from, &args.to)?;
    let path = format!(
        "{COMPLIANCE_PATH}?from={}&to={}&format={}",
        args.from, args.to, args.format
    );
    via_server_or_store(&config, "GET", &path, None, move |store| {
        compliance_output(store, &ctx, None, &args.from, &args.to, &args.format)
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
pub async fn command(cmd: PolicyCommand) -> Result<String, PolicyError> {
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
            let ctx =
                crate::reports::context(&config).map_err(|e| PolicyError::Period(e.to_string()))?;
            period_ms(&ctx, &args.from, &args.to)?;
            let body = serde_json::to_vec(&draft).map_err(|e| PolicyError::Parse(e.to_string()))?;
            let path = format!(
                "{REPLAY_PATH}?from={}&to={}&format={}",
                args.from, args.to, args.format
            );
            via_server_or_store(&config, "POST", &path, Some(body), move |store| {
                replay_output(store, &ctx, &draft, &args.from, &args.to, &args.format)
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

#[derive(Clone)]
struct ApiState {
    store: Arc<Store>,
    auth: Arc<Auth>,
    key: Arc<SigningKey>,
    cache: Arc<PolicyCache>,
    ctx: Arc<Context>,
}

/// `GET /api/v1/policy` (the [`PolicyShow`] JSON, or `?format=table`; an org token sees
/// its own org) and `PUT /api/v1/policy` (a [`PolicyFile`] as JSON; operator token only;
/// 400 names the bad field, 409 for a version not above the current one). Merged into
/// the HTTP app by the server.
pub fn router(
    store: Arc<Store>,
    auth: Arc<Auth>,
    key: Arc<SigningKey>,
    cache: Arc<PolicyCache>,
    ctx: Arc<Context>,
) -> Router {
    Router::new()
        .route(API_PATH, get(api_show).put(api_set))
        .route(REPLAY_PATH, axum::routing::post(api_replay))
        .route(COMPLIANCE_PATH, get(api_compliance))
        .with_state(ApiState {
            store,
            auth,
            key,
            cache,
            ctx,
        })
}

#[derive(Debug, Deserialize)]
struct PeriodParams {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

fn content_type(format: &str) -> &'static str {
    match format {
        "csv" => "text/csv; charset=utf-8",
        "table" => "text/plain; charset=utf-8",
        _ => "application/json",
    }
}

async fn period_report(
    state: ApiState,
    p: PeriodParams,
    run: impl FnOnce(&Store, &Context, &str, &str, &str) -> Result<String, PolicyError> + Send + 'static,
) -> Response {
    let (Some(from), Some(to)) = (p.from, p.to) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "from and to (YYYY-MM-DD) are required",
        );
    };
    let format = p.format.unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "table") {
        return api_error(
            StatusCode::BAD_REQUEST,
            "format: expected table, csv or json",
        );
    }
    let (store, ctx) = (state.store.clone(), state.ctx.clone());
    let f = format.clone();
    let done = tokio::task::spawn_blocking(move || run(&store, &ctx, &from, &to, &f)).await;
    match done {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, content_type(&format))], body).into_response(),
        Ok(Err(e)) if e.is_usage() => api_error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/v1/reports/compliance?from=&to=[&format=]` (JSON by default): an org
/// token sees its own org.
async fn api_compliance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(p): Query<PeriodParams>,
) -> Response {
    let org = match principal(&state.auth, &headers) {
        None => return api_error(StatusCode::UNAUTHORIZED, "missing or unknown token"),
        Some(Principal::Operator) => None,
        Some(Principal::Org(o)) => Some(o),
    };
    period_report(state, p, move |store, ctx, from, to, format| {
        compliance_output(store, ctx, org.as_deref(), from, to, format)
    })
    .await
}

/// `POST /api/v1/policy/replay?from=&to=[&format=]` with a draft [`PolicyFile`] (JSON)
/// as body; operator token, or the draft's org's token.
async fn api_replay(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(p): Query<PeriodParams>,
    body: Bytes,
) -> Response {
    let who = principal(&state.auth, &headers);
    let draft: PolicyFile = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("policy file: {e}")),
    };
    match who {
        None => return api_error(StatusCode::UNAUTHORIZED, "missing or unknown token"),
        Some(Principal::Org(o)) if o != draft.org => {
            return api_error(StatusCode::FORBIDDEN, "a draft of another organisation");
        }
        Some(_) => {}
    }
    period_report(state, p, move |store, ctx, from, to, format| {
        replay_output(store, ctx, &draft, from, to, format)
    })
    .await
}

fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn principal(auth: &Auth, headers: &HeaderMap) -> Option<Principal> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .and_then(|t| auth.principal(t))
}

#[derive(Debug, Deserialize)]
struct ShowParams {
    format: Option<String>,
}

async fn api_show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ShowParams>,
) -> Response {
    let org = match principal(&state.auth, &headers) {
        None => return api_error(StatusCode::UNAUTHORIZED, "missing or unknown token"),
        Some(Principal::Operator) => None,
        Some(Principal::Org(o)) => Some(o),
    };
    let (store, key) = (state.store.clone(), state.key.clone());
    let done = tokio::task::spawn_blocking(move || show(&store, &key, org.as_deref())).await;
    match done {
        Ok(Ok(s)) if q.format.as_deref() == Some("table") => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            s.to_table(),
        )
            .into_response(),
        Ok(Ok(s)) => Json(s).into_response(),
        Ok(Err(e)) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn api_set(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    match principal(&state.auth, &headers) {
        Some(Principal::Operator) => {}
        Some(Principal::Org(_)) => {
            return api_error(
                StatusCode::FORBIDDEN,
                "setting a policy needs the operator token",
            );
        }
        None => return api_error(StatusCode::UNAUTHORIZED, "missing or unknown token"),
    }
    let file: PolicyFile = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("policy file: {e}")),
    };
    let (store, key) = (state.store.clone(), state.key.clone());
    let done = tokio::task::spawn_blocking(move || set(&store, &key, &file)).await;
    match done {
        Ok(Ok((p, s))) => {
            state.cache.put(&p.org, s.clone());
            Json(SetOutcome::of(&p, &s)).into_response()
        }
        Ok(Err(e @ PolicyError::NotNewer { .. })) => api_error(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) if e.is_usage() => api_error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::policy::WORKING_DAYS;
    use veille_proto::v1::{ChassisClass, PolicyMode};

    pub(crate) const DRAFT: &str = r#"
org = "acme"
mode = "dry-run"
idle_threshold_s = 600
warning_s = 300
postpones_allowed = 2
postpone_s = 900
excluded_chassis = ["server"]

[[windows]]
days = ["weekdays"]
start = "20:00"
end = "07:00"
time_zone = "Europe/Paris"
"#;

    #[test]
    fn key_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_key(dir.path()).unwrap();
        let b = load_or_create_key(dir.path()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn file_round_trips_and_errors_name_the_field() {
        let f = PolicyFile::parse(DRAFT).unwrap();
        let p = f.to_policy().unwrap();
        assert_eq!(p.windows[0].days, WORKING_DAYS);
        assert_eq!(p.excluded_chassis, vec![ChassisClass::Server as i32]);
        assert_eq!(p.mode(), PolicyMode::DryRun);
        let back = PolicyFile::from_policy(&p);
        assert_eq!(back.to_policy().unwrap(), p);
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(PolicyFile::parse(&json).unwrap(), f);

        let e = PolicyFile::parse(&DRAFT.replace("Europe/Paris", "Mars/Olympus"))
            .unwrap()
            .to_policy()
            .map(|mut p| {
                p.version = 1;
                validate_policy(&p)
            })
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("windows[0].time_zone"), "{e}");
        let e = PolicyFile::parse(&DRAFT.replace("\"weekdays\"", "\"someday\""))
            .unwrap()
            .to_policy()
            .unwrap_err();
        assert!(e.to_string().contains("windows[0].days[0]"), "{e}");
        assert!(PolicyFile::parse(&format!("{DRAFT}\nbogus = 1")).is_err());
    }

    #[test]
    fn set_bumps_versions_refuses_older_ones_and_signs_with_the_data_dir_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let key = load_or_create_key(dir.path()).unwrap();
        let file = PolicyFile::parse(DRAFT).unwrap();
        let (p1, s1) = set(&store, &key, &file).unwrap();
        assert_eq!(p1.version, 1);
        let (p2, _) = set(&store, &key, &file).unwrap();
        assert_eq!(p2.version, 2);
        let old = PolicyFile {
            version: 2,
            ..file.clone()
        };
        assert!(matches!(
            set(&store, &key, &old),
            Err(PolicyError::NotNewer { current: 2, .. })
        ));
        let (cur, signed) = current(&store, "acme").unwrap().unwrap();
        assert_eq!(cur.version, 2);
        // What the agent does with it: verifies against the public key.
        let vk = key.verifying_key();
        assert_eq!(signing::verify(&signed, &vk, Some(1)).unwrap().version, 2);
        assert!(
            signing::verify(&s1, &vk, Some(2)).is_err(),
            "replayed older version"
        );
        // Forged: a policy signed by another key, or bytes changed after signing.
        let other = signing::generate_signing_key().unwrap();
        assert!(signing::verify(&signing::sign(&cur, &other), &vk, None).is_err());
        let mut tampered = signed.clone();
        let mut p = cur.clone();
        p.mode = PolicyMode::Enforce as i32;
        tampered.policy = p.encode_to_vec();
        assert_eq!(
            signing::verify(&tampered, &vk, None).unwrap_err().code(),
            "bad_signature"
        );
        let cache = PolicyCache::load(&store, &key).unwrap();
        assert_eq!(cache.get("acme"), Some(signed));
        let shown = show(&store, &key, None).unwrap();
        assert_eq!(shown.key_id, signing::key_id(&vk));
        assert_eq!(shown.policies[0].version, 2);
        assert!(shown.to_table().contains(&shown.public_key));
    }
}
