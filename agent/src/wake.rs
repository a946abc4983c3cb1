//! Waking the machine for its maintenance window: before a policy powers a machine off,
//! hibernates or suspends it, the agent arms a wake-up at the start of the next
//! `[[maintenance]]` window, so the patch night finds it on (issue 19: PCs that are
//! never on at night are never patched, unless they wake for it).
//!
//! Behind [`WakeAlarm`] (STYLE.md: a side effect a test must not do for real):
//! [`RtcWakeAlarm`] writes the RTC's sysfs file under an injectable root, so tests run
//! it on a fake tree; [`RecordingWakeAlarm`] records; [`NoWakeAlarm`] is for platforms
//! without one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;

/// The RTC wake alarm, relative to the sysfs root's parent (`/`).
pub const RTC_WAKEALARM: &str = "sys/class/rtc/rtc0/wakealarm";

/// Why a wake-up could not be armed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WakeError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("no wake alarm on this platform")]
    Unsupported,
}

/// Arms a wake-up of the machine at an instant.
pub trait WakeAlarm: Send + Sync {
    /// Replaces any armed wake-up with one at `at`. Returns how it was armed, for the
    /// `POLICY_WAKE_ARMED` event ("rtc0").
    fn arm(&self, at: Timestamp) -> Result<String, WakeError>;
}

/// The Linux real-time clock's wake alarm.
///
/// # Platform-specific behaviour
/// Linux only: `/sys/class/rtc/rtc0/wakealarm` takes seconds since the Unix epoch
/// (the kernel converts to the RTC's own time, UTC or local). It refuses a new alarm
/// while one is set, so `0` is written first to clear it. Writing needs root (or a
/// udev rule giving the agent's user the file); without it the error is reported and
/// the shutdown goes on (the machine then simply stays off until someone starts it).
/// Waking from power-off needs firmware support ("Wake on RTC" / "Resume by alarm" in
/// the BIOS of most desktops); from hibernate or sleep it works on most machines.
#[derive(Debug, Clone)]
pub struct RtcWakeAlarm {
    file: PathBuf,
}

impl RtcWakeAlarm {
    /// The alarm under `root` (`/` for the real one, a temp dir in tests).
    pub fn new(root: &Path) -> Self {
        Self {
            file: root.join(RTC_WAKEALARM),
        }
    }
}

impl WakeAlarm for RtcWakeAlarm {
    fn arm(&self, at: Timestamp) -> Result<String, WakeError> {
        let io = |e: std::io::Error| WakeError::Io {
            path: self.file.display().to_string(),
            reason: e.to_string(),
        };
        // Each write is one sysfs store: the file is opened without truncation (a sysfs
        // attribute cannot be truncated) and written in one call.
        let write = |text: &str| -> Result<(), WakeError> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.file)
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)
        };
        write("0\n")?;
        write(&format!("{}\n", at.as_second()))?;
        Ok("rtc0".to_owned())
    }
}

/// For platforms where the agent has no wake alarm yet.
#[derive(Debug, Default)]
pub struct NoWakeAlarm;

impl WakeAlarm for NoWakeAlarm {
    fn arm(&self, _at: Timestamp) -> Result<String, WakeError> {
        Err(WakeError::Unsupported)
    }
}

/// Records the instants it was asked to arm.
#[derive(Debug, Default)]
pub struct RecordingWakeAlarm {
    armed: Mutex<Vec<Timestamp>>,
    /// Makes `arm` fail (no permission on the RTC).
    pub fail: bool,
}

impl RecordingWakeAlarm {
    /// One that always fails, like an RTC the agent may not write.
    pub fn failing() -> Self {
        Self {
            fail: true,
            ..Self::default()
        }
    }

    pub fn armed(&self) -> Vec<Timestamp> {
        self.armed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl WakeAlarm for RecordingWakeAlarm {
    fn arm(&self, at: Timestamp) -> Result<String, WakeError> {
        if self.fail {
            return Err(WakeError::Io {
                path: RTC_WAKEALARM.into(),
                reason: "Permission denied (test)".into(),
            });
        }
        self.armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(at);
        Ok("recording".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a fake sysfs tree: the file ends with the epoch seconds.
    #[test]
    fn the_rtc_alarm_is_cleared_then_set_in_epoch_seconds() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join(RTC_WAKEALARM);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "").unwrap();
        let alarm = RtcWakeAlarm::new(root.path());
        let at = Timestamp::from_second(1_796_000_400).unwrap();
        assert_eq!(alarm.arm(at).unwrap(), "rtc0");
        // Written from offset 0 each time without truncation, as sysfs takes it: the
        // last store is the epoch seconds (it overwrote "0\n" entirely).
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1796000400\n");
    }

    #[cfg(unix)]
    #[test]
    fn the_rtc_alarm_writes_zero_first() {
        // A named pipe shows each write in order (sysfs sees two separate stores).
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join(RTC_WAKEALARM);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other precondition.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let file = file.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                // Read until both stores arrived (one or two FIFO sessions, depending
                // on how the two opens interleave with the reads).
                let mut all = String::new();
                while all.lines().count() < 2 {
                    std::fs::File::open(&file)
                        .unwrap()
                        .read_to_string(&mut all)
                        .unwrap();
                }
                all
            })
        };
        RtcWakeAlarm::new(root.path())
            .arm(Timestamp::from_second(1_796_000_400).unwrap())
            .unwrap();
        assert_eq!(reader.join().unwrap(), "0\n1796000400\n");
    }

    #[test]
    fn a_missing_rtc_is_an_error_naming_the_file() {
        let root = tempfile::tempdir().unwrap();
        let e = RtcWakeAlarm::new(root.path())
            .arm(Timestamp::from_second(1).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("rtc0/wakealarm"), "{e}");
    }
}
