//! User activity on Windows, as a service in session 0 sees it: the console session
//! through the Terminal Services API. The rules (and what session 0 cannot see) are in
//! [`super::console_session`]; this file only asks Windows.

use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use windows_sys::Win32::System::RemoteDesktop::{
    WTS_CURRENT_SERVER_HANDLE, WTSActive, WTSFreeMemory, WTSGetActiveConsoleSessionId, WTSINFOEXW,
    WTSQuerySessionInformationW, WTSSessionInfoEx,
};

use super::console_session::{ConsoleSession, ConsoleState, ConsoleWatch};
use super::{Activity, ActivityProbe};

/// `WTSGetActiveConsoleSessionId` when no session is attached to the console.
const NO_CONSOLE_SESSION: u32 = 0xFFFF_FFFF;
/// `SessionFlags` values of `WTSINFOEX_LEVEL1_W`.
const WTS_SESSIONSTATE_LOCK: i32 = 0;
const WTS_SESSIONSTATE_UNLOCK: i32 = 1;

/// The console session's activity.
#[derive(Debug)]
pub struct ConsoleActivity {
    watch: Mutex<ConsoleWatch>,
    started: Instant,
    /// Whether the WTS API's failure was logged already (once per run, not per sample).
    failure_logged: AtomicBool,
}

impl Default for ConsoleActivity {
    fn default() -> Self {
        Self {
            watch: Mutex::new(ConsoleWatch::default()),
            started: Instant::now(),
            failure_logged: AtomicBool::new(false),
        }
    }
}

/// What `WTSSessionInfoEx` says about the console session: `Ok(None)` without one, an
/// error when Windows cannot say (Wine has no sessions; a stripped-down Windows may
/// lack the Terminal Services). The user name is reduced to "someone is logged on"
/// here.
fn console_session() -> std::io::Result<Option<ConsoleSession>> {
    // SAFETY: no arguments.
    let id = unsafe { WTSGetActiveConsoleSessionId() };
    if id == NO_CONSOLE_SESSION {
        return Ok(None);
    }
    let mut buf = ptr::null_mut();
    let mut bytes = 0u32;
    // SAFETY: out-pointers are valid; the buffer is freed with WTSFreeMemory below.
    let ok = unsafe {
        WTSQuerySessionInformationW(
            WTS_CURRENT_SERVER_HANDLE,
            id,
            WTSSessionInfoEx,
            &mut buf,
            &mut bytes,
        )
    };
    if ok == 0 || buf.is_null() {
        let error = std::io::Error::last_os_error();
        // Wine fails without setting an error code: say so rather than "Success".
        return Err(if error.raw_os_error() == Some(0) {
            std::io::Error::other("failed without an error code")
        } else {
            error
        });
    }
    let session = (bytes as usize >= std::mem::size_of::<WTSINFOEXW>()).then(|| {
        // SAFETY: Windows returned at least one WTSINFOEXW at `buf`.
        let info: WTSINFOEXW = unsafe { ptr::read_unaligned(buf.cast::<WTSINFOEXW>()) };
        (info.Level == 1).then(|| {
            // SAFETY: Level 1 means the union holds WTSInfoExLevel1.
            let l1 = unsafe { info.Data.WTSInfoExLevel1 };
            ConsoleSession {
                active: l1.SessionState == WTSActive,
                user_logged_on: l1.UserName[0] != 0,
                locked: match l1.SessionFlags {
                    WTS_SESSIONSTATE_LOCK => Some(true),
                    WTS_SESSIONSTATE_UNLOCK => Some(false),
                    _ => None,
                },
                last_input_filetime: l1.LastInputTime,
                current_filetime: l1.CurrentTime,
            }
        })
    });
    // SAFETY: `buf` was allocated by WTSQuerySessionInformationW.
    unsafe { WTSFreeMemory(buf.cast()) };
    Ok(session.flatten())
}

impl ConsoleActivity {
    fn observe(&self, idle_threshold_s: u64) -> ConsoleState {
        let session = console_session().unwrap_or_else(|e| {
            if !self.failure_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    error = %e,
                    "console session not available (WTSQuerySessionInformationW): \
                     active vs idle from CPU utilisation"
                );
            }
            None
        });
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(session.as_ref(), now_ms, idle_threshold_s)
    }

    /// Seconds since the console user was last seen (`None`: nobody logged on).
    pub fn idle_s(&self) -> Option<u64> {
        self.observe(u64::MAX).idle_s
    }
}

impl ActivityProbe for ConsoleActivity {
    async fn user_activity(&self, idle_threshold_s: u64) -> Activity {
        self.observe(idle_threshold_s).activity
    }
}
