//! `veille-agent status`: reads the state file and lists the spool directory without
//! opening the spool for writing, so it is safe while the agent runs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::state::AgentState;

#[derive(Debug, Default)]
pub struct Status {
    pub state_dir: PathBuf,
    pub state: Option<AgentState>,
    pub spooled: usize,
    pub spooled_bytes: u64,
    pub rejected: usize,
    /// `policy_public_key` from the config, when set (it wins over the pinned one).
    pub configured_key: Option<String>,
    /// The whole-system power meter found now ([`crate::probes::power_meter::status_line`]);
    /// `None` when not probed.
    pub power_meter: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct StatusError {
    path: PathBuf,
    source: std::io::Error,
}

/// Reads what a running or stopped agent left in `state_dir`.
pub fn read(state_dir: &Path) -> Result<Status, StatusError> {
    let mut status = Status {
        state_dir: state_dir.to_owned(),
        ..Default::default()
    };
    let state_file = state_dir.join("state.json");
    match std::fs::read(&state_file) {
        Ok(bytes) => status.state = serde_json::from_slice(&bytes).ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StatusError {
                path: state_file,
                source,
            });
        }
    }
    let count = |dir: &Path| -> (usize, u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (0, 0);
        };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pb"))
            .fold((0, 0), |(n, b), e| {
                (n + 1, b + e.metadata().map(|m| m.len()).unwrap_or(0))
            })
    };
    (status.spooled, status.spooled_bytes) = count(&state_dir.join("spool"));
    status.rejected = count(&state_dir.join("spool").join("rejected")).0;
    Ok(status)
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "state directory   {}", self.state_dir.display())?;
        writeln!(
            f,
            "spool             {} reports waiting, {} bytes",
            self.spooled, self.spooled_bytes
        )?;
        writeln!(
            f,
            "rejected          {} reports refused by the collector",
            self.rejected
        )?;
        match &self.state {
            None => writeln!(f, "state             none yet (agent never ran here)")?,
            Some(s) => {
                writeln!(f, "last seq          {}", s.last_seq)?;
                writeln!(f, "last acked seq    {}", s.last_acked_seq)?;
                match s.last_ack_unix_ms {
                    Some(ms) => writeln!(f, "last ack          {ms} (unix ms)")?,
                    None => writeln!(f, "last ack          never")?,
                }
                writeln!(f, "dropped, pending  {}", s.dropped_unreported)?;
            }
        }
        if let Some(meter) = &self.power_meter {
            writeln!(f, "power meter       {meter}")?;
        }
        let pinned = self
            .state
            .as_ref()
            .and_then(|s| s.pinned_policy_key.as_deref());
        write!(
            f,
            "{}",
            crate::policy::status_text(&self.state_dir, self.configured_key.as_deref().or(pinned))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_the_power_meter_when_probed() {
        let dir = tempfile::tempdir().unwrap();
        let mut status = read(dir.path()).unwrap();
        assert!(!status.to_string().contains("power meter"));
        status.power_meter = Some("IPMI_DCMI: IPMI DCMI power reading".into());
        assert!(
            status
                .to_string()
                .contains("power meter       IPMI_DCMI: IPMI DCMI power reading\n"),
            "{status}"
        );
    }
}
