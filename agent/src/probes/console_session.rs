//! Is someone at this Windows PC's screen and keyboard? The pure half of the Windows
//! activity probe: what `WTSQuerySessionInformationW(WTSSessionInfoEx)` says about the
//! console session, turned into an [`Activity`] and an idle duration. The Win32 calls
//! are in `console_activity` (Windows only); this module has no I/O and is tested on
//! Linux.
//!
//! # What a service in session 0 can see
//!
//! A service runs in session 0 and cannot call `GetLastInputInfo` for the user's
//! session (it would answer for session 0, where nobody types). The Terminal Services
//! API reaches across sessions: for the session attached to the physical console
//! (`WTSGetActiveConsoleSessionId`) it gives the connection state, whether a user is
//! logged on, whether the session is locked, and a `LastInputTime`. Windows fills
//! `LastInputTime` reliably for remote (RDP) sessions only; for the console it is often
//! 0. So the rules, in order:
//!
//! 1. No console session, or nobody logged on (the logon screen): no session
//!    information; the CPU-busy rule decides, as on a Linux server.
//! 2. A logged-on console session that is disconnected (fast user switching) or
//!    locked: idle. Public bodies lock screens after a few minutes by GPO, so the lock
//!    is the usual "the user left" signal; idle time counts from when the agent first
//!    saw the lock.
//! 3. A `LastInputTime`: idle when older than the threshold, else active.
//! 4. Logged on, unlocked, no `LastInputTime`: active, idle 0. A policy then never
//!    interrupts an unlocked session; without a screen-lock GPO such a PC looks used
//!    until someone locks it or logs off. Exact input times need a helper process in
//!    the user's session (`GetLastInputInfo` there); see `deploy/windows/README.md`.
//!
//! Only "input seen within the threshold" leaves this module, never who (the user name
//! the API returns is reduced to "someone is logged on" by the caller).

use super::Activity;

/// 100-ns FILETIME ticks in one millisecond.
const TICKS_PER_MS: i64 = super::clock::TICKS_100NS_PER_MS as i64;

/// The console session as the WTS API describes it (`WTSINFOEX_LEVEL1_W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSession {
    /// `SessionState == WTSActive`: a user session is attached to the console.
    pub active: bool,
    /// `UserName` is not empty (the name itself is dropped by the caller).
    pub user_logged_on: bool,
    /// `SessionFlags`: `Some(true)` for `WTS_SESSIONSTATE_LOCK`, `Some(false)` for
    /// `WTS_SESSIONSTATE_UNLOCK`, `None` for unknown. (Windows 7 / Server 2008 R2 swap
    /// the two values; those systems are out of support and not handled.)
    pub locked: Option<bool>,
    /// `LastInputTime`, FILETIME (100 ns since 1601); 0 when Windows does not say.
    pub last_input_filetime: i64,
    /// `CurrentTime`, FILETIME, the same clock as `last_input_filetime`.
    pub current_filetime: i64,
}

impl ConsoleSession {
    /// Milliseconds since the last input, when Windows gave a usable `LastInputTime`
    /// (a last input "in the future" counts as now).
    pub fn input_idle_ms(&self) -> Option<u64> {
        if self.last_input_filetime <= 0 || self.current_filetime <= 0 {
            return None;
        }
        let ticks = self
            .current_filetime
            .saturating_sub(self.last_input_filetime)
            .max(0);
        u64::try_from(ticks / TICKS_PER_MS).ok()
    }
}

/// The stateful part: when the console was first seen locked or disconnected, to give
/// the policy an idle duration for a locked PC.
#[derive(Debug, Default, Clone)]
pub struct ConsoleWatch {
    away_since_ms: Option<u64>,
}

/// One observation, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleState {
    pub activity: Activity,
    /// Seconds since the user was last seen (for the policy's idle threshold); `None`
    /// without session information.
    pub idle_s: Option<u64>,
}

impl ConsoleWatch {
    /// Classifies `session` (`None`: no console session, or the API failed) observed
    /// at `now_ms` (any monotonic milliseconds) against `idle_threshold_s`.
    pub fn observe(
        &mut self,
        session: Option<&ConsoleSession>,
        now_ms: u64,
        idle_threshold_s: u64,
    ) -> ConsoleState {
        let Some(s) = session.filter(|s| s.user_logged_on) else {
            self.away_since_ms = None;
            return ConsoleState {
                activity: Activity::NoSessionInfo,
                idle_s: None,
            };
        };
        if !s.active || s.locked == Some(true) {
            let since = *self.away_since_ms.get_or_insert(now_ms);
            let away_s = now_ms.saturating_sub(since) / 1000;
            // An input time older than the lock is a better lower bound, when known.
            let idle_s = s
                .input_idle_ms()
                .map_or(away_s, |ms| (ms / 1000).max(away_s));
            return ConsoleState {
                activity: Activity::UserIdle,
                idle_s: Some(idle_s),
            };
        }
        self.away_since_ms = None;
        match s.input_idle_ms() {
            Some(ms) => {
                let idle_s = ms / 1000;
                ConsoleState {
                    activity: if idle_s < idle_threshold_s {
                        Activity::UserActive
                    } else {
                        Activity::UserIdle
                    },
                    idle_s: Some(idle_s),
                }
            }
            None => ConsoleState {
                activity: Activity::UserActive,
                idle_s: Some(0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23 08:00 UTC as a FILETIME.
    const NOW_FT: i64 = 134_398_944_000_000_000;

    fn session(locked: Option<bool>, last_input_s_ago: Option<i64>) -> ConsoleSession {
        ConsoleSession {
            active: true,
            user_logged_on: true,
            locked,
            last_input_filetime: last_input_s_ago.map_or(0, |s| NOW_FT - s * 10_000_000),
            current_filetime: NOW_FT,
        }
    }

    #[test]
    fn last_input_time_decides_when_windows_gives_it() {
        let mut w = ConsoleWatch::default();
        let s = w.observe(Some(&session(Some(false), Some(42))), 0, 300);
        assert_eq!(
            s,
            ConsoleState {
                activity: Activity::UserActive,
                idle_s: Some(42)
            }
        );
        let s = w.observe(Some(&session(Some(false), Some(301))), 0, 300);
        assert_eq!(
            s,
            ConsoleState {
                activity: Activity::UserIdle,
                idle_s: Some(301)
            }
        );
        // A last input after CurrentTime (clock skew between the two reads) is now.
        let s = w.observe(Some(&session(None, Some(-5))), 0, 300);
        assert_eq!(s.idle_s, Some(0));
    }

    #[test]
    fn unlocked_without_input_time_is_in_use() {
        let mut w = ConsoleWatch::default();
        let s = w.observe(Some(&session(Some(false), None)), 0, 300);
        assert_eq!(
            s,
            ConsoleState {
                activity: Activity::UserActive,
                idle_s: Some(0)
            }
        );
    }

    #[test]
    fn a_locked_console_is_idle_and_idle_time_counts_from_the_lock() {
        let mut w = ConsoleWatch::default();
        let locked = session(Some(true), None);
        assert_eq!(
            w.observe(Some(&locked), 1_000_000, 300),
            ConsoleState {
                activity: Activity::UserIdle,
                idle_s: Some(0)
            }
        );
        assert_eq!(w.observe(Some(&locked), 1_600_000, 300).idle_s, Some(600));
        // Unlocking resets the clock.
        w.observe(Some(&session(Some(false), None)), 1_700_000, 300);
        assert_eq!(w.observe(Some(&locked), 1_800_000, 300).idle_s, Some(0));
        // A known last input older than the lock wins.
        let mut w = ConsoleWatch::default();
        let s = w.observe(Some(&session(Some(true), Some(900))), 5_000, 300);
        assert_eq!(s.idle_s, Some(900));
    }

    #[test]
    fn a_disconnected_console_session_is_idle() {
        let mut w = ConsoleWatch::default();
        let s = ConsoleSession {
            active: false,
            ..session(Some(false), Some(10))
        };
        assert_eq!(w.observe(Some(&s), 0, 300).activity, Activity::UserIdle);
    }

    #[test]
    fn no_console_session_or_nobody_logged_on_gives_no_information() {
        let mut w = ConsoleWatch::default();
        let none = ConsoleState {
            activity: Activity::NoSessionInfo,
            idle_s: None,
        };
        assert_eq!(w.observe(None, 0, 300), none);
        let logon_screen = ConsoleSession {
            user_logged_on: false,
            active: false,
            ..session(None, None)
        };
        assert_eq!(w.observe(Some(&logon_screen), 0, 300), none);
    }
}
