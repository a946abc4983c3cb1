//! The policy's files in the agent's state directory and the postpone rule on them:
//! what the running agent (the `policy` module), `veille-agent status|postpone`, the
//! desktop notifications' button and the Windows console message all read. Kept apart
//! from the policy agent so that the enforcers, which offer postpone in their warnings,
//! do not depend on the agent that drives them.
//!
//! Files: `policy.pb` (the last accepted `SignedPolicy`, exactly as signed),
//! `policy_state.json` (the warning in force and postpones used), `postpone.request`
//! (left by a postpone for the running agent's next tick).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use prost::Message;
use serde::{Deserialize, Serialize};
use veille_proto::policy::{can_postpone, shutdown_deadline};
use veille_proto::v1::{Policy, SignedPolicy};

pub const POLICY_FILE: &str = "policy.pb";
pub const POLICY_STATE_FILE: &str = "policy_state.json";
pub const POSTPONE_REQUEST_FILE: &str = "postpone.request";

pub(crate) fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What survives a restart besides the policy itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyRuntime {
    /// When the current warning was given (unix ms).
    pub warned_at_ms: Option<i64>,
    pub postpones_used: u32,
    /// (window occurrence start ms, event code) already reported: one event each.
    pub reported: Vec<(i64, String)>,
}

/// A policy that verified.
#[derive(Debug, Clone)]
pub struct Held {
    pub signed: SignedPolicy,
    pub policy: Policy,
}

/// The policy stored in `state_dir`, decoded without verification (for `status` and
/// `postpone`: the running agent verified it before writing it).
pub fn read_held(state_dir: &Path) -> Option<Held> {
    let bytes = std::fs::read(state_dir.join(POLICY_FILE)).ok()?;
    let signed = SignedPolicy::decode(bytes.as_slice()).ok()?;
    let policy = Policy::decode(signed.policy.as_slice()).ok()?;
    Some(Held { signed, policy })
}

/// The warning state stored in `state_dir`.
pub fn read_runtime(state_dir: &Path) -> PolicyRuntime {
    std::fs::read(state_dir.join(POLICY_STATE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Why `veille-agent postpone` refused.
#[derive(Debug, thiserror::Error)]
pub enum PostponeError {
    #[error("no shutdown is pending: nothing to postpone")]
    NothingPending,
    #[error("refused: all {allowed} postpones allowed by the policy are used")]
    Exhausted { allowed: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The policy's postpone rule on the state in `state_dir`: a warning in force and a
/// postpone left. Returns what [`request_postpone`] needs to compute the new deadline.
fn postpone_check(state_dir: &Path) -> Result<(Held, PolicyRuntime, i64), PostponeError> {
    let held = read_held(state_dir).ok_or(PostponeError::NothingPending)?;
    let rt = read_runtime(state_dir);
    let warned = rt.warned_at_ms.ok_or(PostponeError::NothingPending)?;
    if !can_postpone(&held.policy, rt.postpones_used) {
        return Err(PostponeError::Exhausted {
            allowed: held.policy.postpones_allowed,
        });
    }
    Ok((held, rt, warned))
}

/// Whether a postpone would be accepted now (the same rule as [`request_postpone`]):
/// what decides whether a warning offers a "postpone" button.
pub fn postpone_allowed(state_dir: &Path) -> bool {
    postpone_check(state_dir).is_ok()
}

/// `veille-agent postpone`: checks a warning is in force and a postpone is left, then
/// leaves a request for the running agent (which reports `POLICY_POSTPONED`). Returns
/// the deadline after the postpone.
///
/// The one path every postpone takes: the command, the desktop notification's button
/// (the `notify` module) and the Windows console message's "Yes" all end here, so the
/// policy's rule (a warning in force, `postpones_allowed`) is checked in one place.
pub fn request_postpone(state_dir: &Path) -> Result<Timestamp, PostponeError> {
    let (held, rt, warned) = postpone_check(state_dir)?;
    let path = state_dir.join(POSTPONE_REQUEST_FILE);
    std::fs::write(&path, b"postpone\n").map_err(|source| PostponeError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(shutdown_deadline(
        &held.policy,
        from_ms(warned),
        rt.postpones_used + 1,
    ))
}
