//! `veille-agent notifier`: the per-session half of desktop notifications
//! ([`crate::notify`] is the agent's half). Started in each graphical session by the
//! XDG autostart entry `deploy/xdg/veille-notifier.desktop`, as the session's user.
//!
//! It connects to the agent's notify socket (again every [`RECONNECT`] while the agent
//! is not running), shows each warning with `org.freedesktop.Notifications.Notify` on
//! the session bus, with a "postpone" button ([`POSTPONE_ACTION`]) when the policy
//! leaves one, and answers the button's `ActionInvoked` by sending the postpone to the
//! agent, which applies the policy's postpone rule. A notification closed unanswered,
//! or a session without a notification server, does nothing: the shutdown goes on.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{debug, info, warn};
use zbus::export::futures_core::Stream;
use zbus::zvariant::Value;

use crate::notify::{POSTPONE_ACTION, ToAgent, ToNotifier, encode_line, read_line};

/// The notification server's well-known name, object path and interface.
pub const NOTIFICATIONS_NAME: &str = "org.freedesktop.Notifications";
pub const NOTIFICATIONS_PATH: &str = "/org/freedesktop/Notifications";
pub const NOTIFICATIONS_INTERFACE: &str = "org.freedesktop.Notifications";
/// The signal a button press sends: `(notification id, action key)`.
pub const ACTION_INVOKED: &str = "ActionInvoked";
/// Between two attempts to reach the agent.
pub const RECONNECT: Duration = Duration::from_secs(10);
/// The application name shown with the notification.
const APP_NAME: &str = "Veille";
/// A freedesktop icon name every icon theme has.
const ICON: &str = "system-shutdown";
/// The `urgency` hint's "critical": the notification stays until answered or closed,
/// where "normal" ones vanish after a few seconds.
const URGENCY_CRITICAL: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("agent socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("session bus: {0}")]
    Bus(#[from] zbus::Error),
}

/// One `Notify` call's arguments, built from plain values.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub summary: String,
    pub body: String,
    /// Pairs of (action key, label), flattened as the spec wants them.
    pub actions: Vec<String>,
    /// Milliseconds before the server may close it; -1: the server decides.
    pub expire_timeout_ms: i32,
}

/// "HH:MM" in the session's time zone.
fn local_hm(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%H:%M")
        .to_string()
}

/// Milliseconds from `now` to `deadline_s`, for the expiry: the notification goes when
/// the shutdown comes (as the Windows message box does); -1 once past.
fn until_ms(deadline_s: i64, now: Timestamp) -> i32 {
    let left_ms = deadline_s
        .saturating_mul(1000)
        .saturating_sub(now.as_millisecond());
    if left_ms <= 0 {
        -1
    } else {
        i32::try_from(left_ms).unwrap_or(i32::MAX)
    }
}

/// What to show for a message from the agent at `now`.
pub fn notification(message: &ToNotifier, now: Timestamp) -> Notification {
    match message {
        ToNotifier::Warning {
            deadline_s,
            message,
            postpone,
            ..
        } => Notification {
            summary: format!(
                "Shutdown at {}",
                Timestamp::from_second(*deadline_s).map_or_else(|_| "?".into(), local_hm)
            ),
            body: message.clone(),
            actions: if *postpone {
                vec![POSTPONE_ACTION.to_owned(), "Postpone".to_owned()]
            } else {
                Vec::new()
            },
            expire_timeout_ms: until_ms(*deadline_s, now),
        },
        ToNotifier::Postponed { deadline_s, .. } => Notification {
            summary: "Shutdown postponed".into(),
            body: format!(
                "This computer now shuts down at {}.",
                Timestamp::from_second(*deadline_s).map_or_else(|_| "?".into(), local_hm)
            ),
            actions: Vec::new(),
            expire_timeout_ms: -1,
        },
        ToNotifier::Refused { reason, .. } => Notification {
            summary: "Shutdown not postponed".into(),
            body: reason.clone(),
            actions: Vec::new(),
            expire_timeout_ms: -1,
        },
    }
}

/// The warning to postpone when `(notification, key)` was invoked and `shown` is the
/// notification id showing warning `.1`.
pub fn postpone_for(invoked: (u32, &str), shown: Option<(u32, u64)>) -> Option<u64> {
    let (nid, warning) = shown?;
    (invoked.0 == nid && invoked.1 == POSTPONE_ACTION).then_some(warning)
}

/// `Notify` on `bus`, replacing notification `replaces` (0: a new one). Returns the id.
async fn notify(
    bus: &zbus::Connection,
    replaces: u32,
    n: &Notification,
) -> Result<u32, zbus::Error> {
    let actions: Vec<&str> = n.actions.iter().map(String::as_str).collect();
    let hints: HashMap<&str, Value<'_>> = HashMap::from([("urgency", Value::U8(URGENCY_CRITICAL))]);
    let reply = bus
        .call_method(
            Some(NOTIFICATIONS_NAME),
            NOTIFICATIONS_PATH,
            Some(NOTIFICATIONS_INTERFACE),
            "Notify",
            &(
                APP_NAME,
                replaces,
                ICON,
                n.summary.as_str(),
                n.body.as_str(),
                actions,
                hints,
                n.expire_timeout_ms,
            ),
        )
        .await?;
    reply.body().deserialize::<u32>()
}

/// Runs until the process is stopped: connects to the agent at `socket`, shows its
/// warnings on `bus`, reconnects every [`RECONNECT`] when the agent is away.
pub async fn run(socket: &Path, bus: &zbus::Connection) -> NotifierError {
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => {
                info!(socket = %socket.display(), "connected to the agent");
                match session(stream, bus).await {
                    Ok(()) => info!("the agent closed the connection"),
                    Err(NotifierError::Bus(e)) => return NotifierError::Bus(e),
                    Err(e) => warn!(error = %e, "connection to the agent lost"),
                }
            }
            Err(e) => debug!(socket = %socket.display(), error = %e, "agent not reachable"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// The next signal of `stream` (cancel-safe: nothing is taken until it is ready).
async fn next_signal(stream: &mut zbus::MessageStream) -> Option<zbus::Result<zbus::Message>> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// One connection to the agent, until it closes.
async fn session(stream: UnixStream, bus: &zbus::Connection) -> Result<(), NotifierError> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(NOTIFICATIONS_INTERFACE)?
        .member(ACTION_INVOKED)?
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, bus, Some(16)).await?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    // (notification id, warning id) of the warning on screen.
    let mut shown: Option<(u32, u64)> = None;
    loop {
        tokio::select! {
            line = read_line(&mut reader, &mut buf) => {
                if !line? {
                    return Ok(());
                }
                let message: ToNotifier = match serde_json::from_slice(&buf) {
                    Ok(m) => m,
                    Err(e) => {
                        warn!(error = %e, "unreadable message from the agent; ignored");
                        continue;
                    }
                };
                let replaces = shown.map_or(0, |(nid, _)| nid);
                match notify(bus, replaces, &notification(&message, Timestamp::now())).await {
                    Ok(nid) => {
                        shown = match message {
                            ToNotifier::Warning { id, .. } => Some((nid, id)),
                            _ => None,
                        };
                    }
                    // No notification server in this session: nothing to show.
                    Err(e) => warn!(error = %e, "cannot show the notification"),
                }
            }
            signal = next_signal(&mut signals) => {
                let Some(signal) = signal else {
                    return Ok(());
                };
                let Ok((nid, key)) = signal?.body().deserialize::<(u32, String)>() else {
                    continue;
                };
                if let Some(id) = postpone_for((nid, &key), shown) {
                    info!(warning = id, "postpone pressed");
                    write
                        .write_all(encode_line(&ToAgent::Postpone { id }).as_bytes())
                        .await?;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_warning_offers_postpone_only_when_left_and_expires_at_the_deadline() {
        let now = Timestamp::from_second(1_790_000_000).unwrap();
        let warning = |postpone| ToNotifier::Warning {
            id: 4,
            deadline_s: 1_790_000_120,
            message: "This computer will shut down.".into(),
            postpone,
        };
        let n = notification(&warning(true), now);
        assert_eq!(n.actions, [POSTPONE_ACTION, "Postpone"]);
        assert_eq!(n.body, "This computer will shut down.");
        assert_eq!(n.expire_timeout_ms, 120_000);
        assert_eq!(
            n.summary,
            format!(
                "Shutdown at {}",
                local_hm(Timestamp::from_second(1_790_000_120).unwrap())
            )
        );
        assert!(notification(&warning(false), now).actions.is_empty());
        // Past the deadline: the server's default expiry, not a negative duration.
        let later = Timestamp::from_second(1_790_000_500).unwrap();
        assert_eq!(notification(&warning(true), later).expire_timeout_ms, -1);
    }

    #[test]
    fn only_the_postpone_button_of_the_warning_shown_postpones() {
        assert_eq!(postpone_for((7, "postpone"), Some((7, 4))), Some(4));
        assert_eq!(postpone_for((8, "postpone"), Some((7, 4))), None);
        assert_eq!(postpone_for((7, "default"), Some((7, 4))), None);
        assert_eq!(postpone_for((7, "postpone"), None), None);
    }

    /// One recorded `Notify`: replaces id, summary, body, actions.
    pub(crate) type NotifyCall = (u32, String, String, Vec<String>);

    /// A fake notification server for the end-to-end test: records each `Notify`
    /// and answers ids from 1.
    #[derive(Default, Clone)]
    pub(crate) struct FakeNotifications {
        pub calls: std::sync::Arc<std::sync::Mutex<Vec<NotifyCall>>>,
    }

    #[zbus::interface(name = "org.freedesktop.Notifications")]
    impl FakeNotifications {
        #[allow(clippy::too_many_arguments)]
        fn notify(
            &self,
            _app_name: String,
            replaces_id: u32,
            _app_icon: String,
            summary: String,
            body: String,
            actions: Vec<String>,
            _hints: HashMap<String, zbus::zvariant::OwnedValue>,
            _expire_timeout: i32,
        ) -> u32 {
            let mut calls = self.calls.lock().unwrap();
            calls.push((replaces_id, summary, body, actions));
            if replaces_id == 0 {
                u32::try_from(calls.len()).unwrap()
            } else {
                replaces_id
            }
        }
    }
}
