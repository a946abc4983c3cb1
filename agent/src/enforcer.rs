//! The side effects of an auto-shutdown policy, behind [`Enforcer`]: warning the
//! logged-in users and powering the machine off. [`SystemEnforcer`] does it for real;
//! [`RecordingEnforcer`] records what would have been done, for tests (STYLE.md: a side
//! effect a test must not do for real sits behind a small trait).

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

async fn logind_power_off() -> zbus::Result<()> {
    let connection = zbus::Connection::system().await?;
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
