//! Is someone using this device? The split between `active_s` and `idle_s` in a report,
//! and what an auto-shutdown policy must never interrupt.
//!
//! The agent asks the session manager first; where it has no answer (a server, no
//! D-Bus, a call failed) it falls back to [`cpu_busy`]. Only "a local user was active
//! within the threshold" leaves this module: never who, nor what they did (see the
//! privacy section of DESIGN.md).

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

/// What the session manager says about the people at this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A local session had input within the idle threshold.
    UserActive,
    /// There are local sessions, all idle beyond the threshold.
    UserIdle,
    /// No local session (a server, or only remote logins), or no way to ask: use
    /// [`cpu_busy`] instead.
    NoSessionInfo,
}

/// A source of [`Activity`], behind a trait so the sampler can be tested with a fake.
pub trait ActivityProbe: Send + Sync {
    /// `idle_threshold_s`: how long without input before a session counts as idle
    /// (the policy's idle threshold).
    fn user_activity(&self, idle_threshold_s: u64) -> impl Future<Output = Activity> + Send;
}

/// No probe (e.g. [`Logind::connect`] found no bus) means no session information.
impl<P: ActivityProbe> ActivityProbe for Option<P> {
    async fn user_activity(&self, idle_threshold_s: u64) -> Activity {
        match self {
            Some(probe) => probe.user_activity(idle_threshold_s).await,
            None => Activity::NoSessionInfo,
        }
    }
}

/// CPU utilisation above which a device with no session information counts as active.
///
/// 10 %: background services on an idle desktop or server (updates, indexing, agents,
/// this one included) stay under a few percent on average over a sampling interval,
/// while anything a person or a batch job does shows well above it.
pub const DEFAULT_CPU_BUSY_THRESHOLD: f64 = 0.10;

/// The fallback activity rule: `util` (0..1, mean over the interval) above `threshold`.
pub fn cpu_busy(util: f64, threshold: f64) -> bool {
    util > threshold
}

/// A scriptable [`ActivityProbe`] for other modules' tests.
#[derive(Debug)]
pub struct FakeActivity {
    activity: Mutex<Activity>,
}

impl FakeActivity {
    pub fn new(activity: Activity) -> Self {
        Self {
            activity: Mutex::new(activity),
        }
    }

    pub fn set(&self, activity: Activity) {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner()) = activity;
    }
}

impl ActivityProbe for FakeActivity {
    async fn user_activity(&self, _idle_threshold_s: u64) -> Activity {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// systemd-logind, asked over the D-Bus system bus.
///
/// Only sessions with a seat count (a person at this device's screen and keyboard);
/// remote logins (ssh) have none, and the login screen ("greeter") and lock-screen
/// sessions are nobody's. Logind learns of idleness from the desktop environment
/// (GNOME, KDE, ... set `IdleHint`) or, for text consoles, from the terminal's last
/// input.
///
/// # Platform-specific behaviour
///
/// Linux with systemd (or elogind). Without a system bus (containers, minimal VMs,
/// other platforms) [`Logind::connect`] returns `None`. A desktop that never sets
/// `IdleHint` (some bare window managers) looks always active: a shutdown policy then
/// errs on the side of not interrupting anyone.
#[derive(Debug)]
pub struct Logind {
    connection: zbus::Connection,
    failure_logged: AtomicBool,
}

/// Logind answers in milliseconds; a bus that does not answer in this long is broken.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl Logind {
    /// The system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else `/run/dbus/system_bus_socket`).
    /// `None`, logged once here, when there is none.
    pub async fn connect() -> Option<Self> {
        let result = async {
            let builder = zbus::connection::Builder::system()?;
            Self::build(builder).await
        }
        .await;
        match result {
            Ok(logind) => Some(logind),
            Err(error) => {
                tracing::info!(
                    %error,
                    "no D-Bus system bus: user activity falls back to the CPU-busy rule"
                );
                None
            }
        }
    }

    /// The bus at `address` (a D-Bus address such as `unix:path=/run/bus`): for tests,
    /// and for a system bus at an unusual place.
    pub async fn connect_to(address: &str) -> zbus::Result<Self> {
        Self::build(zbus::connection::Builder::address(address)?).await
    }

    async fn build(builder: zbus::connection::Builder<'_>) -> zbus::Result<Self> {
        let connection =
            tokio::time::timeout(CALL_TIMEOUT, builder.method_timeout(CALL_TIMEOUT).build())
                .await
                .map_err(|_| {
                    zbus::Error::InputOutput(std::sync::Arc::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "D-Bus connection timed out",
                    )))
                })??;
        Ok(Self {
            connection,
            failure_logged: AtomicBool::new(false),
        })
    }

    /// The idle state of every local user session.
    async fn local_sessions(&self) -> zbus::Result<Vec<SessionIdle>> {
        let manager = ManagerProxy::new(&self.connection).await?;
        let mut local = Vec::new();
        // The uid and user name are dropped here: they never leave this function.
        for (_id, _uid, _user, seat, path) in manager.list_sessions().await? {
            if seat.is_empty() {
                continue;
            }
            let session = SessionProxy::builder(&self.connection)
                .path(path)?
                .cache_properties(CacheProperties::No)
                .build()
                .await?;
            if !is_user_class(&session.class().await?) {
                continue;
            }
            local.push(SessionIdle {
                idle: session.idle_hint().await?,
                idle_since_unix_us: session.idle_since_hint().await?,
            });
        }
        Ok(local)
    }
}

impl Logind {
    /// Seconds since the last input in any local user session (0 while one is in use),
    /// for the auto-shutdown policy's idle threshold; `None` without local sessions or
    /// when logind cannot be asked.
    pub async fn idle_s(&self) -> Option<u64> {
        let sessions = self.local_sessions().await.ok()?;
        idle_seconds(&sessions, now_unix_us())
    }
}

impl ActivityProbe for Logind {
    async fn user_activity(&self, idle_threshold_s: u64) -> Activity {
        match self.local_sessions().await {
            Ok(sessions) => decide(&sessions, now_unix_us(), idle_threshold_s),
            Err(error) => {
                if self.failure_logged.swap(true, Ordering::Relaxed) {
                    tracing::debug!(%error, "logind query failed");
                } else {
                    tracing::info!(
                        %error,
                        "logind query failed: user activity falls back to the CPU-busy rule"
                    );
                }
                Activity::NoSessionInfo
            }
        }
    }
}

/// `user`, and since systemd 256 `user-early`, `user-incomplete`, `user-light`...;
/// not `greeter`, `lock-screen`, `background`, `manager`.
fn is_user_class(class: &str) -> bool {
    class == "user" || class.starts_with("user-")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SessionIdle {
    idle: bool,
    /// CLOCK_REALTIME microseconds; 0 when logind never saw the session go idle.
    idle_since_unix_us: u64,
}

fn decide(local: &[SessionIdle], now_unix_us: u64, idle_threshold_s: u64) -> Activity {
    if local.is_empty() {
        return Activity::NoSessionInfo;
    }
    let threshold_us = idle_threshold_s.saturating_mul(1_000_000);
    // A session idle "since the future" (the wall clock was stepped back) has just gone
    // idle: counting it active is the side that interrupts nobody.
    let present = local.iter().any(|session| {
        !session.idle || now_unix_us.saturating_sub(session.idle_since_unix_us) < threshold_us
    });
    if present {
        Activity::UserActive
    } else {
        Activity::UserIdle
    }
}

/// The least idle local session's idle time in seconds: 0 when one is in use or idle
/// "since the future" (a clock stepped back), `None` without local sessions.
fn idle_seconds(local: &[SessionIdle], now_unix_us: u64) -> Option<u64> {
    local
        .iter()
        .map(|s| {
            if s.idle {
                now_unix_us.saturating_sub(s.idle_since_unix_us) / 1_000_000
            } else {
                0
            }
        })
        .min()
}

fn now_unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1",
    gen_blocking = false
)]
trait Manager {
    /// (session id, uid, user name, seat id or "", session object path).
    fn list_sessions(&self) -> zbus::Result<Vec<(String, u32, String, String, OwnedObjectPath)>>;
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Session",
    default_service = "org.freedesktop.login1",
    gen_blocking = false
)]
trait Session {
    #[zbus(property(emits_changed_signal = "const"))]
    fn class(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn idle_hint(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn idle_since_hint(&self) -> zbus::Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_US: u64 = 3_600_000_000;
    const NOW_US: u64 = 1_714_550_400_000_000;

    fn idle_since(us: u64) -> SessionIdle {
        SessionIdle {
            idle: true,
            idle_since_unix_us: us,
        }
    }

    const IN_USE: SessionIdle = SessionIdle {
        idle: false,
        idle_since_unix_us: 0,
    };

    #[test]
    fn idle_seconds_is_the_least_idle_session() {
        assert_eq!(idle_seconds(&[], NOW_US), None);
        assert_eq!(
            idle_seconds(&[idle_since(NOW_US - HOUR_US)], NOW_US),
            Some(3600)
        );
        assert_eq!(
            idle_seconds(&[idle_since(NOW_US - HOUR_US), IN_USE], NOW_US),
            Some(0)
        );
        assert_eq!(
            idle_seconds(&[idle_since(NOW_US + HOUR_US)], NOW_US),
            Some(0)
        );
    }

    #[test]
    fn no_local_session_means_no_information() {
        assert_eq!(decide(&[], NOW_US, 600), Activity::NoSessionInfo);
    }

    #[test]
    fn one_session_in_use_makes_the_device_active() {
        let sessions = [idle_since(NOW_US - HOUR_US), IN_USE];
        assert_eq!(decide(&sessions, NOW_US, 600), Activity::UserActive);
    }

    #[test]
    fn idleness_counts_from_idle_since() {
        let ten_min_ago = [idle_since(NOW_US - 600_000_000)];
        assert_eq!(decide(&ten_min_ago, NOW_US, 601), Activity::UserActive);
        assert_eq!(decide(&ten_min_ago, NOW_US, 600), Activity::UserIdle);
        assert_eq!(decide(&ten_min_ago, NOW_US, 0), Activity::UserIdle);
    }

    #[test]
    fn idle_since_unknown_or_in_the_future() {
        assert_eq!(decide(&[idle_since(0)], NOW_US, 600), Activity::UserIdle);
        assert_eq!(
            decide(&[idle_since(NOW_US + HOUR_US)], NOW_US, 600),
            Activity::UserActive
        );
        assert_eq!(
            decide(&[idle_since(0)], NOW_US, u64::MAX),
            Activity::UserActive
        );
    }

    #[test]
    fn user_classes() {
        for class in ["user", "user-early", "user-incomplete", "user-light"] {
            assert!(is_user_class(class), "{class}");
        }
        for class in [
            "greeter",
            "lock-screen",
            "background",
            "manager",
            "",
            "users",
        ] {
            assert!(!is_user_class(class), "{class}");
        }
    }

    #[test]
    fn cpu_busy_rule() {
        assert!(!cpu_busy(0.0, DEFAULT_CPU_BUSY_THRESHOLD));
        assert!(!cpu_busy(0.03, DEFAULT_CPU_BUSY_THRESHOLD));
        assert!(!cpu_busy(0.10, DEFAULT_CPU_BUSY_THRESHOLD));
        assert!(cpu_busy(0.11, DEFAULT_CPU_BUSY_THRESHOLD));
        assert!(cpu_busy(1.0, DEFAULT_CPU_BUSY_THRESHOLD));
        assert!(!cpu_busy(f64::NAN, DEFAULT_CPU_BUSY_THRESHOLD));
    }

    #[tokio::test]
    async fn fake_activity_is_scriptable_and_none_has_no_information() {
        let fake = FakeActivity::new(Activity::UserIdle);
        assert_eq!(fake.user_activity(600).await, Activity::UserIdle);
        fake.set(Activity::UserActive);
        assert_eq!(fake.user_activity(600).await, Activity::UserActive);
        assert_eq!(Some(fake).user_activity(600).await, Activity::UserActive);
        assert_eq!(
            None::<FakeActivity>.user_activity(600).await,
            Activity::NoSessionInfo
        );
    }

    #[tokio::test]
    async fn unreachable_bus_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix:path={}", dir.path().join("no-bus").display());
        assert!(Logind::connect_to(&address).await.is_err());
    }

    /// Against a private `dbus-daemon` serving a fake logind: the real bus protocol,
    /// the real method and property names.
    #[cfg(target_os = "linux")]
    mod over_dbus {
        use super::super::*;
        use crate::test_bus::{Bus, start_bus};

        #[derive(Debug, Clone)]
        struct FakeSession {
            id: &'static str,
            seat: &'static str,
            class: &'static str,
            idle: bool,
            idle_since_us: u64,
        }

        impl FakeSession {
            fn path(&self) -> OwnedObjectPath {
                // logind escapes a leading digit: session "2" is ".../session/_32".
                OwnedObjectPath::try_from(format!("/org/freedesktop/login1/session/_3{}", self.id))
                    .unwrap()
            }
        }

        struct FakeManager(Vec<FakeSession>);

        #[zbus::interface(name = "org.freedesktop.login1.Manager")]
        impl FakeManager {
            fn list_sessions(&self) -> Vec<(String, u32, String, String, OwnedObjectPath)> {
                self.0
                    .iter()
                    .map(|s| {
                        let user = format!("user{}", s.id);
                        (s.id.into(), 1000, user, s.seat.into(), s.path())
                    })
                    .collect()
            }
        }

        #[zbus::interface(name = "org.freedesktop.login1.Session")]
        impl FakeSession {
            #[zbus(property)]
            fn idle_hint(&self) -> bool {
                self.idle
            }
            #[zbus(property)]
            fn idle_since_hint(&self) -> u64 {
                self.idle_since_us
            }
            #[zbus(property)]
            fn seat(&self) -> (String, OwnedObjectPath) {
                let path = if self.seat.is_empty() {
                    "/".to_owned()
                } else {
                    format!("/org/freedesktop/login1/seat/{}", self.seat)
                };
                (self.seat.into(), OwnedObjectPath::try_from(path).unwrap())
            }
            #[zbus(property)]
            fn class(&self) -> String {
                self.class.into()
            }
        }

        /// Serves `sessions` as org.freedesktop.login1 on `bus` until dropped.
        async fn serve_logind(bus: &Bus, sessions: Vec<FakeSession>) -> zbus::Connection {
            let mut builder = zbus::connection::Builder::address(bus.address.as_str())
                .unwrap()
                .name("org.freedesktop.login1")
                .unwrap()
                .serve_at("/org/freedesktop/login1", FakeManager(sessions.clone()))
                .unwrap();
            for session in sessions {
                builder = builder.serve_at(session.path(), session).unwrap();
            }
            builder.build().await.unwrap()
        }

        const THRESHOLD_S: u64 = 600;

        fn seconds_ago(s: u64) -> u64 {
            now_unix_us() - s * 1_000_000
        }

        fn local_user(id: &'static str, idle: bool, idle_since_us: u64) -> FakeSession {
            FakeSession {
                id,
                seat: "seat0",
                class: "user",
                idle,
                idle_since_us,
            }
        }

        /// Not idle, but not a local user: must never count.
        fn ssh_and_greeter_in_use() -> Vec<FakeSession> {
            vec![
                FakeSession {
                    id: "7",
                    seat: "",
                    class: "user",
                    idle: false,
                    idle_since_us: 0,
                },
                FakeSession {
                    id: "8",
                    seat: "seat0",
                    class: "greeter",
                    idle: false,
                    idle_since_us: 0,
                },
            ]
        }

        async fn activity_with(sessions: Vec<FakeSession>) -> Activity {
            let bus = start_bus().await;
            let _logind = serve_logind(&bus, sessions).await;
            let probe = Logind::connect_to(&bus.address).await.unwrap();
            probe.user_activity(THRESHOLD_S).await
        }

        #[tokio::test]
        async fn local_session_in_use_is_active() {
            let sessions = vec![
                local_user("2", true, seconds_ago(7200)),
                local_user("3", false, 0),
                FakeSession {
                    id: "4",
                    seat: "",
                    class: "user",
                    idle: true,
                    idle_since_us: seconds_ago(7200),
                },
            ];
            assert_eq!(activity_with(sessions).await, Activity::UserActive);
        }

        #[tokio::test]
        async fn local_session_idle_for_less_than_the_threshold_is_active() {
            let sessions = vec![local_user("2", true, seconds_ago(30))];
            assert_eq!(activity_with(sessions).await, Activity::UserActive);
        }

        #[tokio::test]
        async fn local_sessions_idle_beyond_the_threshold_are_idle() {
            let mut sessions = ssh_and_greeter_in_use();
            sessions.push(local_user("2", true, seconds_ago(3600)));
            sessions.push(local_user("3", true, seconds_ago(THRESHOLD_S + 5)));
            assert_eq!(activity_with(sessions).await, Activity::UserIdle);
        }

        #[tokio::test]
        async fn only_remote_or_greeter_sessions_give_no_information() {
            assert_eq!(
                activity_with(ssh_and_greeter_in_use()).await,
                Activity::NoSessionInfo
            );
            assert_eq!(activity_with(Vec::new()).await, Activity::NoSessionInfo);
        }

        #[tokio::test]
        async fn bus_without_logind_gives_no_information() {
            let bus = start_bus().await;
            let probe = Logind::connect_to(&bus.address).await.unwrap();
            assert_eq!(
                probe.user_activity(THRESHOLD_S).await,
                Activity::NoSessionInfo
            );
            // A second failure is logged at debug only; the answer is the same.
            assert_eq!(
                probe.user_activity(THRESHOLD_S).await,
                Activity::NoSessionInfo
            );
        }
    }
}
