//! Waking the machine for its maintenance window: before a policy powers a machine off,
//! hibernates or suspends it, the agent arms a wake-up at the start of the next
//! `[[maintenance]]` window, so the patch night finds it on (issue 19: PCs that are
//! never on at night are never patched, unless they wake for it).
//!
//! Behind [`WakeAlarm`] (STYLE.md: a side effect a test must not do for real):
//! [`RtcWakeAlarm`] writes the RTC's sysfs file under an injectable root, so tests run
//! it on a fake tree; on Windows, `windows::wake::WaitableTimerWakeAlarm` sets a
//! waitable timer with resume (its pure parts, [`filetime_100ns`] and
//! [`waitable_timer_wakes_from`], are here and tested on Linux); [`RecordingWakeAlarm`]
//! records; [`NoWakeAlarm`] is for platforms without one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use veille_proto::v1::ShutdownAction;

/// The RTC wake alarm, relative to the sysfs root's parent (`/`).
pub const RTC_WAKEALARM: &str = "sys/class/rtc/rtc0/wakealarm";
/// How the Windows wake-up is armed, as `POLICY_WAKE_ARMED` reports it.
pub const WAITABLE_TIMER: &str = "waitable-timer";
/// 100 ns intervals from 1601-01-01 (the Windows `FILETIME` epoch) to 1970-01-01.
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// Why a wake-up could not be armed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WakeError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("no wake alarm on this platform")]
    Unsupported,
    /// The alarm exists but cannot wake the machine from what the policy does to it.
    #[error("{how} cannot wake this machine from {action}: {reason}")]
    CannotWakeFrom {
        how: &'static str,
        action: &'static str,
        reason: &'static str,
    },
}

/// Arms a wake-up of the machine at an instant.
pub trait WakeAlarm: Send + Sync {
    /// Replaces any armed wake-up with one at `at`, before the machine is put into
    /// `action`'s state. Returns how it was armed, for the `POLICY_WAKE_ARMED` event
    /// ("rtc0"); an error when it cannot be armed, or could not wake the machine from
    /// that state (then nothing is reported as armed).
    fn arm(&self, at: Timestamp, action: ShutdownAction) -> Result<String, WakeError>;
}

/// `at` as a Windows absolute due time: 100 ns intervals since 1601-01-01 UTC (what
/// `SetWaitableTimer` takes as a positive value), saturating far outside.
pub fn filetime_100ns(at: Timestamp) -> i64 {
    at.as_second()
        .saturating_mul(10_000_000)
        .saturating_add(i64::from(at.subsec_nanosecond()) / 100)
        .saturating_add(FILETIME_UNIX_EPOCH)
}

/// Whether a waitable timer set with resume can wake the machine from `action`'s
/// state: from sleep (S3, Modern Standby) and hibernate (S4) yes, if the power plan's
/// "Allow wake timers" is on; from a full power-off (S5) no, on almost every PC (the
/// timer lives in the process, and the process is gone; only some firmware "RTC
/// wake" settings do that, outside Windows).
pub fn waitable_timer_wakes_from(action: ShutdownAction) -> Result<(), WakeError> {
    match action {
        ShutdownAction::Sleep | ShutdownAction::Hibernate => Ok(()),
        ShutdownAction::PowerOff | ShutdownAction::Unspecified => Err(WakeError::CannotWakeFrom {
            how: WAITABLE_TIMER,
            action: "power_off",
            reason: "a waitable timer wakes from sleep or hibernate only \
                         (use action = \"hibernate\" for machines that must wake for \
                         maintenance, or the collector's Wake-on-LAN)",
        }),
    }
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
    /// The same for every action: whether the RTC wakes a powered-off machine is the
    /// firmware's business (see the type's doc).
    fn arm(&self, at: Timestamp, _action: ShutdownAction) -> Result<String, WakeError> {
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
    fn arm(&self, _at: Timestamp, _action: ShutdownAction) -> Result<String, WakeError> {
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
    fn arm(&self, at: Timestamp, _action: ShutdownAction) -> Result<String, WakeError> {
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
        assert_eq!(alarm.arm(at, ShutdownAction::PowerOff).unwrap(), "rtc0");
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
            .arm(
                Timestamp::from_second(1_796_000_400).unwrap(),
                ShutdownAction::Sleep,
            )
            .unwrap();
        assert_eq!(reader.join().unwrap(), "0\n1796000400\n");
    }

    #[test]
    fn windows_due_times_count_100ns_from_1601() {
        // The Unix epoch is FILETIME 116444736000000000 (documented by Microsoft).
        assert_eq!(
            filetime_100ns(Timestamp::UNIX_EPOCH),
            116_444_736_000_000_000
        );
        // 2026-12-08T03:00:00.5Z: seconds * 10^7 + 5 * 10^6 after that.
        let at: Timestamp = "2026-12-08T03:00:00.5Z".parse().unwrap();
        assert_eq!(
            filetime_100ns(at),
            116_444_736_000_000_000 + at.as_second() * 10_000_000 + 5_000_000
        );
    }

    /// Reported as armed only where it can wake the machine: not from power-off.
    #[test]
    fn a_waitable_timer_wakes_from_sleep_and_hibernate_not_power_off() {
        assert_eq!(waitable_timer_wakes_from(ShutdownAction::Sleep), Ok(()));
        assert_eq!(waitable_timer_wakes_from(ShutdownAction::Hibernate), Ok(()));
        for off in [ShutdownAction::PowerOff, ShutdownAction::Unspecified] {
            let e = waitable_timer_wakes_from(off).unwrap_err().to_string();
            assert!(
                e.starts_with("waitable-timer cannot wake this machine from power_off"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_missing_rtc_is_an_error_naming_the_file() {
        let root = tempfile::tempdir().unwrap();
        let e = RtcWakeAlarm::new(root.path())
            .arm(Timestamp::from_second(1).unwrap(), ShutdownAction::PowerOff)
            .unwrap_err();
        assert!(e.to_string().contains("rtc0/wakealarm"), "{e}");
    }
}
