//! The agent's small persistent state: `<state_dir>/state.json`.
//!
//! It holds what must survive a restart so the collector's view stays consistent: the
//! highest seq ever assigned (seqs are the collector's idempotency key and must never go
//! backwards), the last ack, the last boot id (to tell a reboot from an agent restart)
//! and the spool drops not yet reported.
//!
//! The file is replaced atomically (temp + fsync + rename + directory fsync), so a crash
//! leaves either the old or the new state. A missing file means a fresh install; an
//! unreadable one is renamed aside (`state.json.corrupt-<unix_s>`) loudly and the agent
//! starts fresh, with [`next_seq`] still continuing above every seq it may have used.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::spool::{is_disk_full, sync_dir, write_atomic};

const STATE_FILE: &str = "state.json";

/// Fields are only ever added: `#[serde(default)]` lets a newer agent read an older
/// file (missing fields take their defaults) and unknown fields are ignored so a
/// downgraded agent still reads a newer one. Neither case is "corrupt".
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct AgentState {
    /// Highest seq ever assigned to a report (0: none yet).
    pub last_seq: u64,
    /// Highest seq the collector acknowledged as durably stored.
    pub last_acked_seq: u64,
    /// Wall-clock time of the last ack, for `veille-agent status`.
    pub last_ack_unix_ms: Option<i64>,
    /// Boot id seen at the last start: a different one at start means the machine
    /// rebooted (BOOT event) rather than only the agent restarting.
    pub last_boot_id: Option<String>,
    /// Spool drops (bound overflows, quarantined entries) not yet carried by a
    /// `SPOOL_DROPPED` event; zeroed once a report carrying them is spooled.
    pub dropped_unreported: u64,
    /// Reserved for the policy issue: the policy signing key pinned on first contact.
    pub pinned_policy_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// ENOSPC or EDQUOT: the previous state file is intact; retry later.
    #[error("disk full writing {path}: {source}; the previous state is kept")]
    Full { path: PathBuf, source: io::Error },
    #[error("cannot encode the agent state: {source}")]
    Encode { source: serde_json::Error },
}

impl StateError {
    fn io(path: &Path, source: io::Error) -> Self {
        if is_disk_full(&source) {
            Self::Full {
                path: path.to_owned(),
                source,
            }
        } else {
            Self::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// Owner of `<state_dir>/state.json`. One process owns a state directory at a time.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    /// What the file holds now, to skip rewriting an unchanged state (saves a few
    /// fsyncs a minute, and flash wear on thin clients).
    saved: Option<AgentState>,
}

impl StateStore {
    /// Opens the state in `state_dir` (created if missing) and returns it with the state
    /// it holds.
    ///
    /// - no `state.json`: a fresh [`AgentState::default`];
    /// - an unreadable or invalid one: renamed to `state.json.corrupt-<unix_s>`, logged as
    ///   an error, and a fresh state returned. Seqs do not go backwards for all that:
    ///   [`next_seq`] restarts a fresh state from the clock and above the spool.
    ///
    /// A leftover `state.json.tmp` from an interrupted save is deleted: the save never
    /// completed, so `state.json` is the state.
    pub fn open(state_dir: &Path) -> Result<(StateStore, AgentState), StateError> {
        fs::create_dir_all(state_dir).map_err(|e| StateError::io(state_dir, e))?;
        let path = state_dir.join(STATE_FILE);
        let tmp = state_dir.join(format!("{STATE_FILE}.tmp"));
        match fs::remove_file(&tmp) {
            Ok(()) => tracing::info!(path = %tmp.display(), "removed an unfinished state save"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::io(&tmp, e)),
        }
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "no agent state yet: starting fresh");
                let store = StateStore { path, saved: None };
                return Ok((store, AgentState::default()));
            }
            Err(e) => return Err(StateError::io(&path, e)),
        };
        match serde_json::from_slice::<AgentState>(&bytes) {
            Ok(state) => {
                let store = StateStore {
                    path,
                    saved: Some(state.clone()),
                };
                Ok((store, state))
            }
            Err(parse_error) => {
                let unix_s = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let aside = free_path(state_dir, &format!("{STATE_FILE}.corrupt-{unix_s}"));
                fs::rename(&path, &aside).map_err(|e| StateError::io(&path, e))?;
                sync_dir(state_dir).map_err(|e| StateError::io(state_dir, e))?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    error = %parse_error,
                    "agent state is corrupt: kept aside, starting fresh (seqs continue from the clock)"
                );
                let store = StateStore { path, saved: None };
                Ok((store, AgentState::default()))
            }
        }
    }

    /// Replaces the state file atomically: after a crash it holds either the previous
    /// state or `state`, never a mix. Does nothing if `state` is what the file holds.
    ///
    /// # Errors
    /// [`StateError::Full`] when the disk is full; the previous file is intact.
    pub fn save(&mut self, state: &AgentState) -> Result<(), StateError> {
        if self.saved.as_ref() == Some(state) {
            return Ok(());
        }
        let mut bytes =
            serde_json::to_vec_pretty(state).map_err(|source| StateError::Encode { source })?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes).map_err(|(p, e)| StateError::io(&p, e))?;
        self.saved = Some(state.clone());
        Ok(())
    }

    /// Where the state lives, for logs and `veille-agent status`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `dir/name`, or `dir/name.1`, … : the first that does not exist.
fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1u64..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// The seq to give the next report: strictly above `state.last_seq` and above the
/// spool's highest (`spool_max`), so the collector's idempotency key never repeats.
///
/// For a fresh state (`last_seq == 0`: first install, or a state lost or corrupt) it
/// starts at `now_unix_ms`, so an agent reinstalled on a device the collector already
/// knows continues above the seqs stored there instead of colliding with them: seqs then
/// grow by one a report (at most a few a minute) while the millisecond clock grows by
/// 60,000 a minute, so earlier seqs can never catch up with the clock. A clock before
/// 1970 counts as 0. Saturates at `u64::MAX`, which no clock or report count reaches.
pub fn next_seq(state: &AgentState, spool_max: Option<u64>, now_unix_ms: i64) -> u64 {
    let above = state.last_seq.max(spool_max.unwrap_or(0)).saturating_add(1);
    if state.last_seq == 0 {
        above.max(u64::try_from(now_unix_ms).unwrap_or(0))
    } else {
        above
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z
    const T0: i64 = 1_767_225_600_000;

    fn sample() -> AgentState {
        AgentState {
            last_seq: T0 as u64 + 1234,
            last_acked_seq: T0 as u64 + 1200,
            last_ack_unix_ms: Some(T0 + 5_000),
            last_boot_id: Some("6f1c2a52-0d4e-4b8e-9a57-3c8e9b1f0a11".into()),
            dropped_unreported: 3,
            pinned_policy_key: None,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn next_seq_of_a_fresh_state_starts_at_the_clock() {
        let fresh = AgentState::default();
        assert_eq!(next_seq(&fresh, None, T0), T0 as u64);
        // A spool that outlived its state (corrupt state.json) is still above.
        assert_eq!(next_seq(&fresh, Some(T0 as u64 + 50), T0), T0 as u64 + 51);
        assert_eq!(next_seq(&fresh, Some(7), T0), T0 as u64);
        // A clock stuck in 1970 or before still gives a valid, increasing seq.
        assert_eq!(next_seq(&fresh, None, -5), 1);
        assert_eq!(next_seq(&fresh, Some(9), 0), 10);
    }

    #[test]
    fn next_seq_continues_above_last_seq_and_the_spool() {
        let mut state = AgentState {
            last_seq: 100,
            ..Default::default()
        };
        // Once started, the clock no longer matters: one report, one seq.
        assert_eq!(next_seq(&state, None, T0), 101);
        assert_eq!(next_seq(&state, Some(99), T0), 101);
        assert_eq!(next_seq(&state, Some(150), T0), 151);
        // A clock set back does not move seqs back.
        state.last_seq = T0 as u64;
        assert_eq!(next_seq(&state, None, T0 - 86_400_000), T0 as u64 + 1);
        state.last_seq = u64::MAX;
        assert_eq!(next_seq(&state, None, T0), u64::MAX);
    }

    #[test]
    fn a_missing_state_is_fresh_and_a_saved_one_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let (mut store, state) = StateStore::open(&dir).unwrap();
        assert_eq!(state, AgentState::default());
        assert_eq!(store.path(), dir.join(STATE_FILE));
        store.save(&sample()).unwrap();
        assert_eq!(names(&dir), vec![STATE_FILE], "no temp file left behind");
        drop(store);
        let (mut store, state) = StateStore::open(&dir).unwrap();
        assert_eq!(state, sample());
        let mut changed = sample();
        changed.dropped_unreported = 0;
        store.save(&changed).unwrap();
        let (_, state) = StateStore::open(&dir).unwrap();
        assert_eq!(state, changed);
    }

    #[test]
    fn an_interrupted_save_leaves_the_previous_state() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut store, _) = StateStore::open(tmp.path()).unwrap();
        store.save(&sample()).unwrap();
        drop(store);
        // A process killed before the rename leaves a partial temp file.
        fs::write(tmp.path().join("state.json.tmp"), b"{\"last_seq\": 99").unwrap();
        let (_, state) = StateStore::open(tmp.path()).unwrap();
        assert_eq!(state, sample());
        assert_eq!(names(tmp.path()), vec![STATE_FILE]);
    }

    #[test]
    fn older_and_newer_files_are_not_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            tmp.path().join(STATE_FILE),
            r#"{"last_seq": 42, "field_from_a_newer_agent": true}"#,
        )
        .unwrap();
        let (_, state) = StateStore::open(tmp.path()).unwrap();
        assert_eq!(
            state,
            AgentState {
                last_seq: 42,
                ..Default::default()
            }
        );
        assert_eq!(names(tmp.path()), vec![STATE_FILE]);
    }

    #[test]
    fn a_corrupt_state_is_kept_aside_and_seqs_still_move_forward() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(STATE_FILE), b"{\"last_seq\": 17").unwrap();
        let (mut store, state) = StateStore::open(tmp.path()).unwrap();
        assert_eq!(state, AgentState::default());
        let files = names(tmp.path());
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].starts_with("state.json.corrupt-"), "{files:?}");
        assert_eq!(
            fs::read(tmp.path().join(&files[0])).unwrap(),
            b"{\"last_seq\": 17",
            "kept as found"
        );
        // The spool still holds seqs from before: the next one is above them and the
        // clock.
        assert_eq!(next_seq(&state, Some(T0 as u64 + 5), T0), T0 as u64 + 6);
        store.save(&sample()).unwrap();
        // A second corruption within the same second keeps the first file too.
        fs::write(tmp.path().join(STATE_FILE), b"").unwrap();
        let (_, state) = StateStore::open(tmp.path()).unwrap();
        assert_eq!(state, AgentState::default());
        let corrupt = names(tmp.path())
            .into_iter()
            .filter(|n| n.starts_with("state.json.corrupt-"))
            .count();
        assert_eq!(corrupt, 2, "{:?}", names(tmp.path()));
        assert!(!tmp.path().join(STATE_FILE).exists());
    }

    #[test]
    fn saving_an_unchanged_state_does_not_rewrite_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut store, _) = StateStore::open(tmp.path()).unwrap();
        store.save(&sample()).unwrap();
        // Replace the file behind the store's back: an unchanged save leaves it alone.
        fs::write(tmp.path().join(STATE_FILE), b"{}").unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(fs::read(tmp.path().join(STATE_FILE)).unwrap(), b"{}");
    }
}
