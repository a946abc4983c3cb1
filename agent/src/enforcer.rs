//! The side effects of an auto-shutdown policy, behind [`Enforcer`]: warning the
//! logged-in users and powering the machine off. [`SystemEnforcer`] does it for real;
//! [`RecordingEnforcer`] records what would have been done, for tests (STYLE.md: a side
//! effect a test must not do for real sits behind a small trait). [`CommandEnforcer`]
//! runs a configured program instead (`[enforcer] command`): a site's own shutdown
//! script, or a recording script in the end-to-end tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

/// A boxed future so the trait stays object-safe (`Arc<dyn Enforcer>`).
pub type EnforceFuture<'a> = Pin<Box<dyn Future<Output = Result<(), EnforceError>> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnforceError {
    #[error("cannot warn the users: {0}")]
    Warn(String),
    #[error("cannot power off: {0}")]
    PowerOff(String),
}

/// Carries a policy's decisions out.
pub trait Enforcer: Send + Sync {
    /// Tells `users` (empty: everyone logged in) that the machine shuts down at
    /// `deadline` unless they postpone.
    fn warn<'a>(
        &'a self,
        users: &'a [String],
        deadline: Timestamp,
        message: &'a str,
    ) -> EnforceFuture<'a>;
    /// Powers the machine off now (returns once the request was accepted).
    fn power_off(&self) -> EnforceFuture<'_>;
}

/// The real thing.
///
/// # Platform-specific behaviour
/// Linux: warnings go to every terminal through `wall`; power-off asks logind over the
/// system D-Bus (`org.freedesktop.login1.Manager.PowerOff(false)`: no interactive
/// authorisation, so it works for the root service and fails cleanly otherwise), then
/// falls back to `systemctl poweroff`. Desktop notifications are not sent yet.
///
/// Windows: the warning is a message box in the console session (`WTSSendMessageW`,
/// closing itself at the deadline); power-off is `InitiateSystemShutdownExW` with a
/// 30 s notice and the reason "Other (Planned)" (see `crate::windows::enforcer`).
#[derive(Debug, Default)]
pub struct SystemEnforcer;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

async fn run_command(program: &str, args: &[&str]) -> Result<(), String> {
    let out = tokio::time::timeout(
        COMMAND_TIMEOUT,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| format!("{program}: no answer within {COMMAND_TIMEOUT:?}"))?
    .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(not(windows))]
async fn logind_power_off() -> zbus::Result<()> {
    logind_power_off_on(&zbus::Connection::system().await?).await
}

/// `org.freedesktop.login1.Manager.PowerOff(false)` on `connection`'s bus.
#[cfg(not(windows))]
async fn logind_power_off_on(connection: &zbus::Connection) -> zbus::Result<()> {
    connection
        .call_method(
            Some("org.freedesktop.login1"),
            "/org/freedesktop/login1",
            Some("org.freedesktop.login1.Manager"),
            "PowerOff",
            &(false,),
        )
        .await?;
    Ok(())
}

#[cfg(not(windows))]
impl Enforcer for SystemEnforcer {
    fn warn<'a>(
        &'a self,
        _users: &'a [String],
        _deadline: Timestamp,
        message: &'a str,
    ) -> EnforceFuture<'a> {
        Box::pin(async move {
            run_command("wall", &[message])
                .await
                .map_err(EnforceError::Warn)
        })
    }

    fn power_off(&self) -> EnforceFuture<'_> {
        Box::pin(async move {
            match tokio::time::timeout(COMMAND_TIMEOUT, logind_power_off()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "logind PowerOff failed; trying systemctl")
                }
                Err(_) => tracing::warn!("logind PowerOff timed out; trying systemctl"),
            }
            run_command("systemctl", &["poweroff"])
                .await
                .map_err(EnforceError::PowerOff)
        })
    }
}

#[cfg(windows)]
impl Enforcer for SystemEnforcer {
    fn warn<'a>(
        &'a self,
        _users: &'a [String],
        deadline: Timestamp,
        message: &'a str,
    ) -> EnforceFuture<'a> {
        Box::pin(async move {
            let left_s = deadline.as_second() - Timestamp::now().as_second();
            let timeout_s = u32::try_from(left_s.max(1)).unwrap_or(u32::MAX);
            crate::windows::enforcer::warn_console(message, timeout_s).map_err(EnforceError::Warn)
        })
    }

    fn power_off(&self) -> EnforceFuture<'_> {
        Box::pin(async move {
            crate::windows::enforcer::power_off(
                "Veille: this computer shuts down under the organisation's energy policy.",
            )
            .map_err(EnforceError::PowerOff)
        })
    }
}

/// Runs a configured program instead of warning and powering off itself
/// (`[enforcer] command`), directly, never through a shell:
/// `PROGRAM warn <deadline-unix-s> <message>` for a warning and `PROGRAM poweroff` for
/// the shutdown. A non-zero exit status, or no exit within 10 s, is a failure
/// (logged, and for `poweroff` reported like a refused power-off).
#[derive(Debug, Clone)]
pub struct CommandEnforcer {
    program: String,
}

impl CommandEnforcer {
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
        }
    }
}

impl Enforcer for CommandEnforcer {
    fn warn<'a>(
        &'a self,
        _users: &'a [String],
        deadline: Timestamp,
        message: &'a str,
    ) -> EnforceFuture<'a> {
        Box::pin(async move {
            let deadline = deadline.as_second().to_string();
            run_command(&self.program, &["warn", &deadline, message])
                .await
                .map_err(EnforceError::Warn)
        })
    }

    fn power_off(&self) -> EnforceFuture<'_> {
        Box::pin(async move {
            run_command(&self.program, &["poweroff"])
                .await
                .map_err(EnforceError::PowerOff)
        })
    }
}

/// The enforcer `[enforcer] command` selects: empty is the real [`SystemEnforcer`].
pub fn from_command(command: &str) -> std::sync::Arc<dyn Enforcer> {
    if command.trim().is_empty() {
        std::sync::Arc::new(SystemEnforcer)
    } else {
        tracing::info!(
            program = command.trim(),
            "policy decisions run through the configured command"
        );
        std::sync::Arc::new(CommandEnforcer::new(command.trim()))
    }
}

/// What a [`RecordingEnforcer`] was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforced {
    Warned {
        users: Vec<String>,
        deadline: Timestamp,
        message: String,
    },
    PoweredOff,
}

/// Records instead of acting; never fails unless told to.
#[derive(Debug, Default)]
pub struct RecordingEnforcer {
    done: Mutex<Vec<Enforced>>,
    /// Makes `power_off` fail (a machine that refuses to stop).
    pub fail_power_off: bool,
}

impl RecordingEnforcer {
    pub fn recorded(&self) -> Vec<Enforced> {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, e: Enforced) {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }
}

impl Enforcer for RecordingEnforcer {
    fn warn<'a>(
        &'a self,
        users: &'a [String],
        deadline: Timestamp,
        message: &'a str,
    ) -> EnforceFuture<'a> {
        self.record(Enforced::Warned {
            users: users.to_vec(),
            deadline,
            message: message.to_owned(),
        });
        Box::pin(async { Ok(()) })
    }

    fn power_off(&self) -> EnforceFuture<'_> {
        self.record(Enforced::PoweredOff);
        let fail = self.fail_power_off;
        Box::pin(async move {
            if fail {
                Err(EnforceError::PowerOff("refused (test)".into()))
            } else {
                Ok(())
            }
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A fake logind's manager: records each `PowerOff` call's `interactive` argument,
    /// or refuses as logind does without authorisation.
    #[cfg(target_os = "linux")]
    struct FakeManager {
        calls: std::sync::Arc<std::sync::Mutex<Vec<bool>>>,
        refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    #[cfg(target_os = "linux")]
    #[zbus::interface(name = "org.freedesktop.login1.Manager")]
    impl FakeManager {
        fn power_off(&self, interactive: bool) -> zbus::fdo::Result<()> {
            self.calls.lock().unwrap().push(interactive);
            if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(zbus::fdo::Error::AccessDenied(
                    "Interactive authentication required.".into(),
                ));
            }
            Ok(())
        }
    }

    /// README "Auto-shutdown policy": power-off asks logind `PowerOff` over D-Bus,
    /// never interactively. Against a fake logind on a private bus (the real one would
    /// switch the machine off): the call reaches the right name, path, interface and
    /// method with `interactive = false`, and logind's refusal is an error (the caller
    /// then falls back to systemctl).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn logind_power_off_calls_power_off_without_interaction() {
        let bus = crate::test_bus::start_bus().await;
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _logind = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name("org.freedesktop.login1")
            .unwrap()
            .serve_at(
                "/org/freedesktop/login1",
                FakeManager {
                    calls: calls.clone(),
                    refuse: refusing.clone(),
                },
            )
            .unwrap()
            .build()
            .await
            .unwrap();
        let client = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        for refuse in [false, true] {
            refusing.store(refuse, std::sync::atomic::Ordering::SeqCst);
            calls.lock().unwrap().clear();
            let result = logind_power_off_on(&client).await;
            assert_eq!(*calls.lock().unwrap(), [false], "refuse = {refuse}");
            if refuse {
                let e = result.unwrap_err().to_string();
                assert!(e.contains("Interactive authentication required"), "{e}");
            } else {
                result.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn the_command_enforcer_runs_the_program_with_plain_arguments() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.log");
        let script = dir.path().join("record.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\" >> '{}'; done\necho >> '{}'\n",
                log.display(),
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let enforcer = from_command(script.to_str().unwrap());
        let deadline = Timestamp::from_second(1_780_000_000).unwrap();
        // Shell metacharacters reach the program untouched: no shell in between. The
        // file a shell would create is named by its absolute path, so the check below
        // looks where a shell would have put it, whatever the working directory.
        let injected = dir.path().join("injected");
        let message = format!(
            "Shut down at 20:00; $(touch {}) 'quoted'",
            injected.display()
        );
        enforcer.warn(&[], deadline, &message).await.unwrap();
        enforcer.power_off().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!("[warn][1780000000][{message}]\n[poweroff]\n")
        );
        assert!(!injected.exists());

        // A failing or missing program is an error, not a silent success.
        let failing = dir.path().join("fail.sh");
        std::fs::write(&failing, "#!/bin/sh\necho refused >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = CommandEnforcer::new(failing.to_str().unwrap())
            .power_off()
            .await
            .unwrap_err();
        assert!(
            matches!(&e, EnforceError::PowerOff(m) if m.contains("refused")),
            "{e}"
        );
        let missing = CommandEnforcer::new(dir.path().join("nope").to_str().unwrap());
        assert!(matches!(
            missing.warn(&[], deadline, "m").await,
            Err(EnforceError::Warn(_))
        ));
    }
}
