//! The side effects of an auto-shutdown policy, behind [`Enforcer`]: warning the
//! logged-in users (on Linux desktop notifications first: the `notify` module) and
//! powering the machine off, hibernating or suspending it. [`SystemEnforcer`] does it
//! for real; [`RecordingEnforcer`] records what would have been done, for tests
//! (STYLE.md: a side effect a test must not do for real sits behind a small trait).
//! [`CommandEnforcer`] runs a configured program instead (`[enforcer] command`): a
//! site's own shutdown script, or a recording script in the end-to-end tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
pub use veille_proto::v1::ShutdownAction;

/// A boxed future so the trait stays object-safe (`Arc<dyn Enforcer>`).
pub type EnforceFuture<'a> = Pin<Box<dyn Future<Output = Result<(), EnforceError>> + Send + 'a>>;
/// [`Enforcer::can`]'s answer: `Err` carries why the action is impossible here.
pub type CanFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnforceError {
    #[error("cannot warn the users: {0}")]
    Warn(String),
    #[error("cannot power off: {0}")]
    PowerOff(String),
    #[error("cannot hibernate: {0}")]
    Hibernate(String),
    #[error("cannot suspend: {0}")]
    Suspend(String),
}

/// Why an enforcer without its own [`Enforcer::can`] refuses hibernate and sleep.
pub const NOT_SUPPORTED: &str = "not supported by this platform's enforcer";

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
    /// Hibernates (suspends to disk) now. The default refuses: see [`Enforcer::can`].
    fn hibernate(&self) -> EnforceFuture<'_> {
        Box::pin(async { Err(EnforceError::Hibernate(NOT_SUPPORTED.into())) })
    }
    /// Suspends to RAM now. The default refuses: see [`Enforcer::can`].
    fn suspend(&self) -> EnforceFuture<'_> {
        Box::pin(async { Err(EnforceError::Suspend(NOT_SUPPORTED.into())) })
    }
    /// Whether `action` can be carried out on this machine now, asked before the users
    /// are warned and again before acting. `Err(reason)`: the agent skips and reports
    /// the reason; it never falls back to another action (a laptop told to sleep is
    /// not powered off instead). The default allows power-off only.
    fn can(&self, action: ShutdownAction) -> CanFuture<'_> {
        Box::pin(async move {
            match action {
                ShutdownAction::PowerOff | ShutdownAction::Unspecified => Ok(()),
                _ => Err(NOT_SUPPORTED.to_owned()),
            }
        })
    }
}

/// Carries `action` out through `enforcer` (unspecified is power-off).
pub fn carry_out(enforcer: &dyn Enforcer, action: ShutdownAction) -> EnforceFuture<'_> {
    match action {
        ShutdownAction::PowerOff | ShutdownAction::Unspecified => enforcer.power_off(),
        ShutdownAction::Hibernate => enforcer.hibernate(),
        ShutdownAction::Sleep => enforcer.suspend(),
    }
}

/// The real thing.
///
/// # Platform-specific behaviour
/// Linux: warnings go to every terminal through `wall`. The running agent wraps this
/// enforcer in `notify::DesktopEnforcer`, which sends each warning to the
/// desktop notifiers connected to its socket instead (a notification with a "postpone"
/// button in each graphical session) and comes here, to `wall`, only when none is
/// connected. Power-off, hibernate and sleep
/// ask logind over the system D-Bus (`org.freedesktop.login1.Manager.PowerOff`,
/// `Hibernate`, `Suspend`, each with `interactive = false`: no interactive
/// authorisation, so it works for the root service or with the package's polkit rule,
/// and fails cleanly otherwise), then fall back to `systemctl poweroff|hibernate|suspend`.
/// Whether hibernate and sleep are possible is logind's `CanHibernate` / `CanSuspend`:
/// anything but `yes` (`no`, `na`: no swap or no kernel support; `challenge`: would need
/// a password) makes the action impossible.
///
/// Windows: the warning is a message box in the console session (`WTSSendMessageW`,
/// closing itself at the deadline); while the policy leaves a postpone it asks
/// "Postpone the shutdown?" with Yes / No and waits, on a thread of its own, for the
/// answer until the deadline: "Yes" is a postpone request through
/// [`crate::policy_state::request_postpone`] ([`crate::console_prompt`]). Power-off is `InitiateSystemShutdownExW` with a
/// 30 s notice and the reason "Other (Planned)" (see `crate::windows::enforcer`);
/// hibernate and sleep are `SetSuspendState` (not forced, wake events left on, so a
/// maintenance wake timer still fires), possible when `GetPwrCapabilities` says so
/// ([`crate::power_caps::windows_verdict`]: S4 with a hibernation file; S3, which Modern Standby
/// machines lack).
#[derive(Debug, Default)]
pub struct SystemEnforcer {
    /// Where a postpone answered in the Windows console box is requested.
    #[cfg(windows)]
    state_dir: std::path::PathBuf,
}

impl SystemEnforcer {
    /// The platform's enforcer for the agent whose state is in `state_dir`.
    #[cfg_attr(not(windows), allow(unused_variables))]
    pub fn new(state_dir: &std::path::Path) -> Self {
        Self {
            #[cfg(windows)]
            state_dir: state_dir.to_owned(),
        }
    }
}

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

/// logind's method and `systemctl` verb for an action.
#[cfg(not(windows))]
fn logind_names(action: ShutdownAction) -> (&'static str, &'static str, &'static str) {
    match action {
        ShutdownAction::PowerOff | ShutdownAction::Unspecified => {
            ("PowerOff", "CanPowerOff", "poweroff")
        }
        ShutdownAction::Hibernate => ("Hibernate", "CanHibernate", "hibernate"),
        ShutdownAction::Sleep => ("Suspend", "CanSuspend", "suspend"),
    }
}

/// `org.freedesktop.login1.Manager.<PowerOff|Hibernate|Suspend>(false)` on
/// `connection`'s bus.
#[cfg(not(windows))]
async fn logind_act_on(connection: &zbus::Connection, action: ShutdownAction) -> zbus::Result<()> {
    connection
        .call_method(
            Some("org.freedesktop.login1"),
            "/org/freedesktop/login1",
            Some("org.freedesktop.login1.Manager"),
            logind_names(action).0,
            &(false,),
        )
        .await?;
    Ok(())
}

/// logind's `Can<Action>()` answer on `connection`'s bus: `Ok(())` for `yes`, else the
/// reason (`CanHibernate = na`).
#[cfg(not(windows))]
async fn logind_can_on(
    connection: &zbus::Connection,
    action: ShutdownAction,
) -> Result<(), String> {
    let method = logind_names(action).1;
    let reply = connection
        .call_method(
            Some("org.freedesktop.login1"),
            "/org/freedesktop/login1",
            Some("org.freedesktop.login1.Manager"),
            method,
            &(),
        )
        .await
        .map_err(|e| format!("logind {method}: {e}"))?;
    let answer: String = reply
        .body()
        .deserialize()
        .map_err(|e| format!("logind {method}: {e}"))?;
    if answer == "yes" {
        Ok(())
    } else {
        Err(format!("logind {method} = {answer}"))
    }
}

/// Asks logind for `action`, then falls back to `systemctl`.
#[cfg(not(windows))]
async fn system_act(action: ShutdownAction) -> Result<(), String> {
    let (method, _, verb) = logind_names(action);
    let logind = async { logind_act_on(&zbus::Connection::system().await?, action).await };
    match tokio::time::timeout(COMMAND_TIMEOUT, logind).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => tracing::warn!(error = %e, "logind {method} failed; trying systemctl"),
        Err(_) => tracing::warn!("logind {method} timed out; trying systemctl"),
    }
    run_command("systemctl", &[verb]).await
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
            system_act(ShutdownAction::PowerOff)
                .await
                .map_err(EnforceError::PowerOff)
        })
    }

    fn hibernate(&self) -> EnforceFuture<'_> {
        Box::pin(async move {
            system_act(ShutdownAction::Hibernate)
                .await
                .map_err(EnforceError::Hibernate)
        })
    }

    fn suspend(&self) -> EnforceFuture<'_> {
        Box::pin(async move {
            system_act(ShutdownAction::Sleep)
                .await
                .map_err(EnforceError::Suspend)
        })
    }

    /// Power-off is always attempted (with its systemctl fallback); hibernate and
    /// sleep only when logind answers `yes`.
    fn can(&self, action: ShutdownAction) -> CanFuture<'_> {
        Box::pin(async move {
            if matches!(
                action,
                ShutdownAction::PowerOff | ShutdownAction::Unspecified
            ) {
                return Ok(());
            }
            let ask = async {
                let connection = zbus::Connection::system()
                    .await
                    .map_err(|e| format!("system bus: {e}"))?;
                logind_can_on(&connection, action).await
            };
            tokio::time::timeout(COMMAND_TIMEOUT, ask)
                .await
                .unwrap_or_else(|_| Err(format!("logind: no answer within {COMMAND_TIMEOUT:?}")))
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
            let prompt = crate::console_prompt::prompt(
                message,
                crate::policy_state::postpone_allowed(&self.state_dir),
            );
            crate::windows::enforcer::warn_console(&prompt, timeout_s, &self.state_dir)
                .map_err(EnforceError::Warn)
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

    fn hibernate(&self) -> EnforceFuture<'_> {
        Box::pin(
            async move { crate::windows::enforcer::suspend(true).map_err(EnforceError::Hibernate) },
        )
    }

    fn suspend(&self) -> EnforceFuture<'_> {
        Box::pin(
            async move { crate::windows::enforcer::suspend(false).map_err(EnforceError::Suspend) },
        )
    }

    fn can(&self, action: ShutdownAction) -> CanFuture<'_> {
        Box::pin(async move {
            let caps = crate::windows::enforcer::power_capabilities()?;
            crate::power_caps::windows_verdict(caps, action)
        })
    }
}

/// Runs a configured program instead of warning and powering off itself
/// (`[enforcer] command`), directly, never through a shell:
/// `PROGRAM warn <deadline-unix-s> <message>` for a warning, `PROGRAM poweroff`,
/// `PROGRAM hibernate` or `PROGRAM suspend` for the action, and `PROGRAM can
/// <hibernate|suspend>` before warning of those (exit 0: possible; otherwise its stderr
/// is the reason). A non-zero exit status, or no exit within 10 s, is a failure
/// (logged, and for an action reported like a refused power-off).
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

    fn hibernate(&self) -> EnforceFuture<'_> {
        Box::pin(async move {
            run_command(&self.program, &["hibernate"])
                .await
                .map_err(EnforceError::Hibernate)
        })
    }

    fn suspend(&self) -> EnforceFuture<'_> {
        Box::pin(async move {
            run_command(&self.program, &["suspend"])
                .await
                .map_err(EnforceError::Suspend)
        })
    }

    /// Power-off is always attempted (as with the platform enforcer, and as scripts
    /// written before hibernate and sleep expect); `PROGRAM can hibernate|suspend`
    /// answers for the others.
    fn can(&self, action: ShutdownAction) -> CanFuture<'_> {
        let verb = match action {
            ShutdownAction::PowerOff | ShutdownAction::Unspecified => {
                return Box::pin(async { Ok(()) });
            }
            ShutdownAction::Hibernate => "hibernate",
            ShutdownAction::Sleep => "suspend",
        };
        Box::pin(async move { run_command(&self.program, &["can", verb]).await })
    }
}

/// The enforcer `[enforcer] command` selects: empty is the real [`SystemEnforcer`]
/// (for the agent whose state is in `state_dir`).
pub fn from_command(command: &str, state_dir: &std::path::Path) -> std::sync::Arc<dyn Enforcer> {
    if command.trim().is_empty() {
        std::sync::Arc::new(SystemEnforcer::new(state_dir))
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
    Hibernated,
    Suspended,
}

/// Records instead of acting; never fails unless told to.
#[derive(Debug, Default)]
pub struct RecordingEnforcer {
    done: Mutex<Vec<Enforced>>,
    /// Makes `power_off` fail (a machine that refuses to stop).
    pub fail_power_off: bool,
    /// Actions [`Enforcer::can`] refuses, with the reason (a desktop without swap:
    /// `(Hibernate, "logind CanHibernate = na")`). Everything else is possible.
    pub cannot: Vec<(ShutdownAction, String)>,
}

impl RecordingEnforcer {
    /// One whose [`Enforcer::can`] refuses these actions with these reasons.
    pub fn refusing(cannot: Vec<(ShutdownAction, String)>) -> Self {
        Self {
            cannot,
            ..Self::default()
        }
    }

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

    fn hibernate(&self) -> EnforceFuture<'_> {
        self.record(Enforced::Hibernated);
        Box::pin(async { Ok(()) })
    }

    fn suspend(&self) -> EnforceFuture<'_> {
        self.record(Enforced::Suspended);
        Box::pin(async { Ok(()) })
    }

    fn can(&self, action: ShutdownAction) -> CanFuture<'_> {
        let refused = self
            .cannot
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, reason)| reason.clone());
        Box::pin(async move { refused.map_or(Ok(()), Err) })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A fake logind's manager: records each call (`PowerOff(false)` as
    /// `"PowerOff false"`), refuses as logind does without authorisation when told to,
    /// and answers `CanHibernate` / `CanSuspend` with what the test set.
    #[cfg(target_os = "linux")]
    struct FakeManager {
        calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
        can_hibernate: String,
        can_suspend: String,
    }

    #[cfg(target_os = "linux")]
    impl FakeManager {
        fn record(&self, call: String) -> zbus::fdo::Result<()> {
            self.calls.lock().unwrap().push(call);
            if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(zbus::fdo::Error::AccessDenied(
                    "Interactive authentication required.".into(),
                ));
            }
            Ok(())
        }
    }

    #[cfg(target_os = "linux")]
    #[zbus::interface(name = "org.freedesktop.login1.Manager")]
    impl FakeManager {
        fn power_off(&self, interactive: bool) -> zbus::fdo::Result<()> {
            self.record(format!("PowerOff {interactive}"))
        }
        fn hibernate(&self, interactive: bool) -> zbus::fdo::Result<()> {
            self.record(format!("Hibernate {interactive}"))
        }
        fn suspend(&self, interactive: bool) -> zbus::fdo::Result<()> {
            self.record(format!("Suspend {interactive}"))
        }
        fn can_hibernate(&self) -> String {
            self.calls.lock().unwrap().push("CanHibernate".into());
            self.can_hibernate.clone()
        }
        fn can_suspend(&self) -> String {
            self.calls.lock().unwrap().push("CanSuspend".into());
            self.can_suspend.clone()
        }
    }

    /// README "Auto-shutdown policy": power-off, hibernate and sleep ask logind over
    /// D-Bus, never interactively, and hibernate/sleep only when `CanHibernate` /
    /// `CanSuspend` say `yes`. Against a fake logind on a private bus (the real one
    /// would switch the machine off): each call reaches the right name, path, interface
    /// and method with `interactive = false`, logind's refusal is an error (the caller
    /// then falls back to systemctl), and an answer other than `yes` is the reason given.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn logind_actions_are_called_without_interaction_after_their_can_check() {
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
                    can_hibernate: "na".into(),
                    can_suspend: "yes".into(),
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
            let result = logind_act_on(&client, ShutdownAction::PowerOff).await;
            assert_eq!(
                *calls.lock().unwrap(),
                ["PowerOff false"],
                "refuse = {refuse}"
            );
            if refuse {
                let e = result.unwrap_err().to_string();
                assert!(e.contains("Interactive authentication required"), "{e}");
            } else {
                result.unwrap();
            }
        }
        refusing.store(false, std::sync::atomic::Ordering::SeqCst);
        calls.lock().unwrap().clear();
        assert_eq!(
            logind_can_on(&client, ShutdownAction::Hibernate).await,
            Err("logind CanHibernate = na".to_owned())
        );
        assert_eq!(logind_can_on(&client, ShutdownAction::Sleep).await, Ok(()));
        logind_act_on(&client, ShutdownAction::Sleep).await.unwrap();
        logind_act_on(&client, ShutdownAction::Hibernate)
            .await
            .unwrap();
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "CanHibernate",
                "CanSuspend",
                "Suspend false",
                "Hibernate false"
            ]
        );
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
        let enforcer = from_command(script.to_str().unwrap(), dir.path());
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
        enforcer.can(ShutdownAction::Hibernate).await.unwrap();
        enforcer.hibernate().await.unwrap();
        enforcer.suspend().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!(
                "[warn][1780000000][{message}]\n[poweroff]\n[can][hibernate]\n[hibernate]\n[suspend]\n"
            )
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
        let refusing = CommandEnforcer::new(failing.to_str().unwrap());
        assert!(
            refusing
                .can(ShutdownAction::Sleep)
                .await
                .unwrap_err()
                .contains("refused")
        );
        let missing = CommandEnforcer::new(dir.path().join("nope").to_str().unwrap());
        assert!(matches!(
            missing.warn(&[], deadline, "m").await,
            Err(EnforceError::Warn(_))
        ));
    }
}
