//! The maintenance wake-up on Windows: a waitable timer set with resume
//! (`CreateWaitableTimerExW`, `SetWaitableTimer(…, fResume = TRUE)`), which Windows
//! honours by waking the machine from sleep or hibernate at the due time. The timer is
//! a kernel object of the service's process: the agent holds its handle for as long as
//! it runs, and setting it again replaces the previous due time.
//!
//! It cannot wake a powered-off machine (the process, and its timer, are gone):
//! [`crate::wake::waitable_timer_wakes_from`] refuses power-off before anything is set,
//! so `POLICY_WAKE_ARMED` is only reported for sleep and hibernate.

use std::ptr;
use std::sync::Mutex;

use jiff::Timestamp;
use veille_proto::v1::ShutdownAction;
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_NOT_SUPPORTED, GetLastError, HANDLE, SetLastError,
};
use windows_sys::Win32::System::Threading::{
    CreateWaitableTimerExW, SetWaitableTimer, TIMER_ALL_ACCESS,
};

use crate::wake::{
    WAITABLE_TIMER, WakeAlarm, WakeError, filetime_100ns, waitable_timer_wakes_from,
};

/// A waitable timer's handle, closed when dropped.
#[derive(Debug)]
struct Timer(HANDLE);

// SAFETY: a kernel object handle is a process-wide value: any thread may use or close
// it. Calls on it are serialised by the Mutex in `WaitableTimerWakeAlarm`.
unsafe impl Send for Timer {}
// SAFETY: as above; no `&Timer` method touches the handle without the Mutex.
unsafe impl Sync for Timer {}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: the handle was returned by CreateWaitableTimerExW and is closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// The service's wake timer.
///
/// # Platform-specific behaviour
/// Windows only. Wakes from sleep (S3 or Modern Standby) and hibernate (S4) when the
/// power plan allows wake timers ("Allow wake timers": on by default on mains power,
/// often off on battery; `powercfg /waketimers` lists the armed ones). After an
/// unattended wake Windows goes back to sleep within minutes unless something keeps it
/// awake (maintenance tooling such as Windows Update does). Not from power-off.
#[derive(Debug)]
pub struct WaitableTimerWakeAlarm {
    timer: Mutex<Timer>,
}

impl WaitableTimerWakeAlarm {
    /// Creates the (unnamed, auto-reset) timer.
    pub fn new() -> Result<Self, WakeError> {
        // SAFETY: null attributes and name are allowed; flags 0: an auto-reset timer.
        let handle =
            unsafe { CreateWaitableTimerExW(ptr::null(), ptr::null(), 0, TIMER_ALL_ACCESS) };
        if handle.is_null() {
            return Err(WakeError::Io {
                path: "CreateWaitableTimerExW".into(),
                reason: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(Self {
            timer: Mutex::new(Timer(handle)),
        })
    }
}

impl WakeAlarm for WaitableTimerWakeAlarm {
    fn arm(&self, at: Timestamp, action: ShutdownAction) -> Result<String, WakeError> {
        waitable_timer_wakes_from(action)?;
        let due = filetime_100ns(at);
        let timer = self.timer.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: plain calls on a handle this struct owns; `due` outlives the call;
        // no completion routine. The last error is cleared first because a success
        // may still set ERROR_NOT_SUPPORTED (no resume on this machine).
        let ok = unsafe {
            SetLastError(0);
            SetWaitableTimer(timer.0, &due, 0, None, ptr::null(), 1)
        };
        if ok == 0 {
            return Err(WakeError::Io {
                path: "SetWaitableTimer".into(),
                reason: std::io::Error::last_os_error().to_string(),
            });
        }
        // SAFETY: no arguments.
        if unsafe { GetLastError() } == ERROR_NOT_SUPPORTED {
            return Err(WakeError::CannotWakeFrom {
                how: WAITABLE_TIMER,
                action: if action == ShutdownAction::Sleep {
                    "sleep"
                } else {
                    "hibernate"
                },
                reason: "Windows says this machine does not resume from timers",
            });
        }
        Ok(WAITABLE_TIMER.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run under Wine (or Windows): the timer is created and set for sleep and
    /// hibernate, and refused for power-off before any call.
    #[test]
    fn the_waitable_timer_is_armed_for_sleep_and_hibernate_only() {
        let alarm = WaitableTimerWakeAlarm::new().unwrap();
        let at = Timestamp::now() + jiff::SignedDuration::from_hours(12);
        for action in [ShutdownAction::Sleep, ShutdownAction::Hibernate] {
            match alarm.arm(at, action) {
                Ok(how) => assert_eq!(how, WAITABLE_TIMER),
                // A machine (or Wine) without timer resume says so: not "armed".
                Err(e @ WakeError::CannotWakeFrom { .. }) => {
                    assert!(e.to_string().contains("does not resume"), "{e}")
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(matches!(
            alarm.arm(at, ShutdownAction::PowerOff),
            Err(WakeError::CannotWakeFrom { .. })
        ));
    }
}
