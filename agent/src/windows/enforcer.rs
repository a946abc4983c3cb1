//! The auto-shutdown policy's side effects on Windows: a message box in the console
//! session (`WTSSendMessageW`, shown by the session's own desktop although the agent
//! runs in session 0; Yes / No "Postpone?" while a postpone is left:
//! [`crate::console_prompt`]), `InitiateSystemShutdownExW` with a planned-shutdown reason, and
//! `SetSuspendState` for hibernate and sleep (`GetPwrCapabilities` says which exist).

use std::path::Path;
use std::ptr;

use tracing::{info, warn};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LUID};
use windows_sys::Win32::Security::{
    AdjustTokenPrivileges, LUID_AND_ATTRIBUTES, LookupPrivilegeValueW, SE_PRIVILEGE_ENABLED,
    SE_SHUTDOWN_NAME, TOKEN_ADJUST_PRIVILEGES, TOKEN_PRIVILEGES, TOKEN_QUERY,
};
use windows_sys::Win32::System::Power::{
    GetPwrCapabilities, SYSTEM_POWER_CAPABILITIES, SetSuspendState,
};
use windows_sys::Win32::System::RemoteDesktop::{
    WTS_CURRENT_SERVER_HANDLE, WTSGetActiveConsoleSessionId, WTSSendMessageW,
};
use windows_sys::Win32::System::Shutdown::{
    InitiateSystemShutdownExW, SHTDN_REASON_FLAG_PLANNED, SHTDN_REASON_MAJOR_OTHER,
    SHTDN_REASON_MINOR_OTHER,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    IDYES, MB_ICONWARNING, MB_OK, MB_SETFOREGROUND, MB_TOPMOST, MB_YESNO,
};

use crate::console_prompt::{self, ConsolePrompt};
use crate::policy_state::request_postpone;
use crate::power_caps::PowerCapabilities;
use crate::probes::registry::wide;

/// The reason recorded with the shutdown (event 1074 in the System log, and the
/// shutdown reason reports): "Other (Planned)", `0x80000000`. There is no
/// "power-saving policy" code among Windows' reasons; "planned" is what keeps the
/// shutdown out of the unexpected-shutdown statistics.
pub const SHUTDOWN_REASON: u32 =
    SHTDN_REASON_MAJOR_OTHER | SHTDN_REASON_MINOR_OTHER | SHTDN_REASON_FLAG_PLANNED;

/// Seconds Windows shows its own "Windows will shut down" notice before stopping, in
/// which applications are asked to close. Applications are not forced: one holding
/// unsaved work can keep the machine up (the agent logs the failure, the policy's
/// next window tries again).
pub const SHUTDOWN_GRACE_S: u32 = 30;

/// `WTSGetActiveConsoleSessionId` when no session is attached to the console.
const NO_CONSOLE_SESSION: u32 = 0xFFFF_FFFF;

// The pure module's "Yes" is Windows' own.
const _: () = assert!(console_prompt::IDYES == IDYES);

/// The console session, or why there is none.
fn console_session() -> Result<u32, String> {
    // SAFETY: no arguments.
    let session = unsafe { WTSGetActiveConsoleSessionId() };
    if session == NO_CONSOLE_SESSION {
        return Err("no session on the console".into());
    }
    Ok(session)
}

/// `WTSSendMessageW` of `text` with `style` to `session`, closing after `timeout_s`;
/// with `wait`, returns once answered (or timed out) with the response (`IDYES`, …).
fn send_message(
    session: u32,
    text: &str,
    style: u32,
    timeout_s: u32,
    wait: bool,
) -> Result<i32, String> {
    let title: Vec<u16> = "Veille".encode_utf16().collect();
    let text: Vec<u16> = text.encode_utf16().collect();
    let mut response = 0;
    // SAFETY: title and text are valid for the lengths given in bytes; `response` is
    // writable for the whole call (which blocks when `wait`).
    let ok = unsafe {
        WTSSendMessageW(
            WTS_CURRENT_SERVER_HANDLE,
            session,
            title.as_ptr(),
            (title.len() * 2) as u32,
            text.as_ptr(),
            (text.len() * 2) as u32,
            style,
            timeout_s,
            &mut response,
            i32::from(wait),
        )
    };
    if ok == 0 {
        return Err(format!(
            "WTSSendMessageW: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(response)
}

/// Shows `prompt` in the console session; the box closes by itself after `timeout_s`
/// (0: stays until clicked). A plain warning is not waited for. A Yes / No question
/// waits for its answer on a thread of its own (the agent's tick goes on, and a
/// stopping service does not wait for it), and "Yes" requests a postpone for the agent
/// whose state is in `state_dir`, as `veille-agent postpone` does.
pub fn warn_console(
    prompt: &ConsolePrompt,
    timeout_s: u32,
    state_dir: &Path,
) -> Result<(), String> {
    const STYLE: u32 = MB_ICONWARNING | MB_SETFOREGROUND | MB_TOPMOST;
    let session = console_session()?;
    if !prompt.ask_postpone {
        send_message(session, &prompt.text, STYLE | MB_OK, timeout_s, false)?;
        info!(via = "console", "warning shown in the console session");
        return Ok(());
    }
    let (text, state_dir) = (prompt.text.clone(), state_dir.to_owned());
    std::thread::Builder::new()
        .name("console-postpone".into())
        .spawn(
            move || match send_message(session, &text, STYLE | MB_YESNO, timeout_s, true) {
                Ok(response) if console_prompt::postpones(response) => {
                    match request_postpone(&state_dir) {
                        Ok(deadline) => {
                            info!(%deadline, "postpone requested from the console message")
                        }
                        Err(e) => info!(error = %e, "postpone from the console message refused"),
                    }
                }
                Ok(response) => info!(response, "console message answered: not postponed"),
                Err(e) => warn!(error = %e, "cannot ask the console user"),
            },
        )
        .map_err(|e| format!("cannot start the console prompt: {e}"))?;
    info!(
        via = "console",
        "warning shown in the console session, offering to postpone"
    );
    Ok(())
}

/// Enables `SeShutdownPrivilege` (held, disabled, by LocalSystem) for this process.
fn enable_shutdown_privilege() -> Result<(), String> {
    let mut token: HANDLE = ptr::null_mut();
    // SAFETY: out-pointer valid; the handle is closed below.
    if unsafe {
        OpenProcessToken(
            GetCurrentProcess(),
            TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY,
            &mut token,
        )
    } == 0
    {
        return Err(format!(
            "OpenProcessToken: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut luid = LUID::default();
    // SAFETY: SE_SHUTDOWN_NAME is a static wide string; `luid` is writable.
    let result = if unsafe { LookupPrivilegeValueW(ptr::null(), SE_SHUTDOWN_NAME, &mut luid) } == 0
    {
        Err(format!(
            "LookupPrivilegeValueW: {}",
            std::io::Error::last_os_error()
        ))
    } else {
        let privileges = TOKEN_PRIVILEGES {
            PrivilegeCount: 1,
            Privileges: [LUID_AND_ATTRIBUTES {
                Luid: luid,
                Attributes: SE_PRIVILEGE_ENABLED,
            }],
        };
        // SAFETY: `privileges` is a valid TOKEN_PRIVILEGES with one entry.
        let ok = unsafe {
            AdjustTokenPrivileges(token, 0, &privileges, 0, ptr::null_mut(), ptr::null_mut())
        };
        // AdjustTokenPrivileges "succeeds" without the privilege; the error says so.
        let error = std::io::Error::last_os_error();
        if ok == 0 || error.raw_os_error() == Some(1300) {
            Err(format!("SeShutdownPrivilege: {error}"))
        } else {
            Ok(())
        }
    };
    // SAFETY: `token` was opened above.
    unsafe { CloseHandle(token) };
    result
}

/// Asks Windows to power off (not restart) after [`SHUTDOWN_GRACE_S`], with
/// [`SHUTDOWN_REASON`]; returns once the request was accepted.
pub fn power_off(message: &str) -> Result<(), String> {
    enable_shutdown_privilege()?;
    let text = wide(message);
    // SAFETY: a null machine name is this machine; `text` is NUL-terminated.
    let ok = unsafe {
        InitiateSystemShutdownExW(
            ptr::null(),
            text.as_ptr(),
            SHUTDOWN_GRACE_S,
            0,
            0,
            SHUTDOWN_REASON,
        )
    };
    if ok == 0 {
        return Err(format!(
            "InitiateSystemShutdownExW: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// What the firmware and Windows allow: S3, S4, the hibernation file, Modern Standby.
pub fn power_capabilities() -> Result<PowerCapabilities, String> {
    // SAFETY: a plain-data struct, all-zero is a valid value.
    let mut caps: SYSTEM_POWER_CAPABILITIES = unsafe { std::mem::zeroed() };
    // SAFETY: `caps` is writable and of the type the call fills.
    if !unsafe { GetPwrCapabilities(&mut caps) } {
        return Err(format!(
            "GetPwrCapabilities: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(PowerCapabilities {
        s3: caps.SystemS3,
        s4: caps.SystemS4,
        hiber_file: caps.HiberFilePresent,
        modern_standby: caps.AoAc,
    })
}

/// Hibernates (`hibernate`) or sleeps now, not forced (applications may refuse, as
/// with power-off) and with wake events left enabled, so that the RTC/waitable-timer
/// wake-up of a maintenance window still fires. Returns once the machine has resumed
/// (or the request failed).
pub fn suspend(hibernate: bool) -> Result<(), String> {
    enable_shutdown_privilege()?;
    // SAFETY: plain values.
    if !unsafe { SetSuspendState(hibernate, false, false) } {
        return Err(format!(
            "SetSuspendState({}): {}",
            if hibernate { "hibernate" } else { "sleep" },
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
