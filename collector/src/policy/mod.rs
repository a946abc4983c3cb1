//! Auto-shutdown policies on the collector side: the ed25519 signing key in the data
//! directory, the policy file an operator writes (TOML or JSON), the `policies` tree
//! (every signed version of every org) and the in-memory [`cache`] the gRPC Ack and
//! the MQTT policy topic read. The file format is `veille_domain::policy::file`; the
//! verbs are in `cli::policy`, the routes in `api::policy`.
//!
//! Evaluation and signatures live in `veille_proto::{policy, signing}`: the agent checks
//! exactly what is signed here.
pub mod cache;
pub mod wake;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;
use serde::{Deserialize, Serialize};
use veille_proto::policy::validate_policy;
use veille_proto::signing::{self, KeyError, SigningKey};
use veille_proto::v1::{Policy, SignedPolicy};
use veille_proto::validate::ValidationError;

pub use veille_domain::policy::file::{PolicyFile, PolicyFileError, WindowFile, mode_name};

use crate::store::engine::Tree;
use crate::store::{Store, StoreError};
use crate::tokens;

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
        )
    }
}

impl From<PolicyFileError> for PolicyError {
    fn from(e: PolicyFileError) -> Self {
        match e {
            PolicyFileError::Parse(m) => PolicyError::Parse(m),
            PolicyFileError::Invalid(v) => PolicyError::Invalid(v),
            other => PolicyError::Parse(other.to_string()),
        }
    }
}

/// The UTC calendar year of `ms`: the first year of holidays a policy signed (or a
/// period replayed) then carries (`veille_proto::policy::CLOSURE_YEARS` of them, so a
/// few hours' difference with local time at New Year does not matter).
pub fn year_of_ms(ms: i64) -> i16 {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .year()
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
    let mut latest: HashMap<String, (Policy, SignedPolicy)> = HashMap::new();
    for (k, v) in store.read(|tx| tx.kv_scan(Tree::Policies, b""))? {
        let (policy, signed) = decode_stored(&k, &v)?;
        // Keys sort by org then version: the last seen per org is its current one.
        latest.insert(policy.org.clone(), (policy, signed));
    }
    let mut out: Vec<_> = latest.into_values().collect();
    out.sort_by(|a, b| a.0.org.cmp(&b.0.org));
    Ok(out)
}

/// Where `set` records when a version was set (unix ms, big-endian): in the meta tree,
/// since every key of the policies tree is a policy. Versions set before this was
/// recorded have none.
fn set_at_key(org: &str, version: u64) -> Vec<u8> {
    let mut k = b"policy_set_at\0".to_vec();
    k.extend_from_slice(&policy_key(org, version));
    k
}

/// One stored version of an org's policy and when it was set, if recorded.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub policy: Policy,
    pub set_at_ms: Option<i64>,
}

/// Every version of `org`'s policy, by version.
pub fn history(store: &Store, org: &str) -> Result<Vec<StoredVersion>, PolicyError> {
    let p = crate::store::prefix(org);
    let (entries, times) = store.read(|tx| {
        let entries = tx.kv_scan(Tree::Policies, &p)?;
        let mut at = b"policy_set_at\0".to_vec();
        at.extend_from_slice(&p);
        Ok((entries, tx.kv_scan(Tree::Meta, &at)?))
    })?;
    let times: HashMap<Vec<u8>, i64> = times
        .into_iter()
        .filter_map(|(k, v)| Some((k, i64::from_be_bytes(v.as_slice().try_into().ok()?))))
        .collect();
    entries
        .iter()
        .map(|(k, v)| {
            let (policy, _) = decode_stored(k, v)?;
            let set_at_ms = times.get(&set_at_key(&policy.org, policy.version)).copied();
            Ok(StoredVersion { policy, set_at_ms })
        })
        .collect()
}

/// The current signed policy of `org`, if it has one.
pub fn current(store: &Store, org: &str) -> Result<Option<(Policy, SignedPolicy)>, PolicyError> {
    let p = crate::store::prefix(org);
    match store.read(|tx| tx.kv_scan(Tree::Policies, &p))?.pop() {
        None => Ok(None),
        Some((k, v)) => decode_stored(&k, &v).map(Some),
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
    let mut policy = file.to_policy(year_of_ms(crate::clock::now_ms()))?;
    // Validated with a placeholder version first (the real one is only known inside
    // the transaction), so a bad file is refused before the store is touched.
    validate_policy(&Policy {
        version: policy.version.max(1),
        ..policy.clone()
    })?;
    let p = crate::store::prefix(&policy.org);
    // Read and write in one transaction: two collectors (or a CLI) setting a policy at
    // the same moment cannot both take the same version.
    let signed = store.write(|tx| {
        let held = tx
            .kv_scan(Tree::Policies, &p)?
            .pop()
            .map(|(k, v)| decode_stored(&k, &v));
        let held = match held {
            Some(Ok((p, _))) => p.version,
            Some(Err(e)) => return Ok(Err(e)),
            None => 0,
        };
        let mut policy = policy.clone();
        if policy.version == 0 {
            policy.version = held + 1;
        } else if policy.version <= held {
            return Ok(Err(PolicyError::NotNewer {
                org: policy.org,
                version: policy.version,
                current: held,
            }));
        }
        let signed = signing::sign(&policy, key);
        tx.kv_put(
            Tree::Policies,
            &policy_key(&policy.org, policy.version),
            &signed.encode_to_vec(),
        )?;
        tx.kv_put(
            Tree::Meta,
            &set_at_key(&policy.org, policy.version),
            &crate::clock::now_ms().to_be_bytes(),
        )?;
        Ok(Ok((policy, signed)))
    })??;
    let (version, signed) = (signed.0.version, signed.1);
    policy.version = version;
    store.flush()?;
    tracing::info!(org = %policy.org, version = policy.version, mode = mode_name(policy.mode()),
        key_id = %signed.key_id, "policy set");
    Ok((policy, signed))
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
    /// The outcome of storing `p`, signed as `s`.
    pub fn of(p: &Policy, s: &SignedPolicy) -> Self {
        Self {
            org: p.org.clone(),
            version: p.version,
            mode: mode_name(p.mode()).to_owned(),
            key_id: s.key_id.clone(),
        }
    }
}

/// Checks a policy file as `set` would, before any I/O.
pub fn validate_file(file: &PolicyFile) -> Result<(), PolicyError> {
    let mut p = file.to_policy(year_of_ms(crate::clock::now_ms()))?;
    p.version = p.version.max(1);
    validate_policy(&p)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
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
        let p = f.to_policy(2026).unwrap();
        assert_eq!(p.windows[0].days, WORKING_DAYS);
        assert_eq!(p.excluded_chassis, vec![ChassisClass::Server as i32]);
        assert_eq!(p.mode(), PolicyMode::DryRun);
        let back = PolicyFile::from_policy(&p);
        assert_eq!(back.to_policy(2026).unwrap(), p);
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(PolicyFile::parse(&json).unwrap(), f);

        let e = PolicyFile::parse(&DRAFT.replace("Europe/Paris", "Mars/Olympus"))
            .unwrap()
            .to_policy(2026)
            .map(|mut p| {
                p.version = 1;
                validate_policy(&p)
            })
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("windows[0].time_zone"), "{e}");
        let e = PolicyFile::parse(&DRAFT.replace("\"weekdays\"", "\"someday\""))
            .unwrap()
            .to_policy(2026)
            .unwrap_err();
        assert!(e.to_string().contains("windows[0].days[0]"), "{e}");
        assert!(PolicyFile::parse(&format!("{DRAFT}\nbogus = 1")).is_err());
    }

    #[test]
    fn set_bumps_versions_refuses_older_ones_and_signs_with_the_data_dir_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(crate::store::STORE_DIR)).unwrap();
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
        let cache = cache::PolicyCache::load(&store, &key).unwrap();
        assert_eq!(cache.get("acme"), Some(signed));
        let shown = show(&store, &key, None).unwrap();
        assert_eq!(shown.key_id, signing::key_id(&vk));
        assert_eq!(shown.policies[0].version, 2);
        assert!(shown.to_table().contains(&shown.public_key));
    }
}
