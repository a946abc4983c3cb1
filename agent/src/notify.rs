//! Desktop notifications for policy warnings, the agent's side: a local socket that
//! per-session notifiers (the `notifier` module, `veille-agent notifier`) connect to.
//!
//! # Why a socket and a notifier per session
//! A notification goes through the user's own session bus (`org.freedesktop.
//! Notifications`), which only that user (or root, switching to that uid) may join.
//! The packaged agent is a systemd `DynamicUser` without `CAP_SETUID`, so it cannot.
//! Instead, each graphical session starts `veille-agent notifier` (XDG autostart,
//! `deploy/xdg/veille-notifier.desktop`), which connects here, shows what it is sent
//! and sends the "postpone" button's answer back.
//!
//! # Protocol
//! One JSON object per line ([`ToNotifier`], [`ToAgent`]), lines at most
//! [`MAX_LINE_BYTES`]. A notifier receives the warning in force when it connects (if
//! its deadline is still ahead and it was not withdrawn) and every new one after.
//!
//! # Who may postpone
//! Nobody more than before: a postpone from a notifier is taken only in answer to the
//! warning in force, sent to that very connection, and then goes through
//! [`crate::policy_state::request_postpone`], the path `veille-agent postpone` takes, with the
//! policy's rule (a warning in force, `postpones_allowed`). The socket is open to every
//! local user, as `wall` reaches every terminal: whoever was warned may answer. The
//! peer's uid is logged with each postpone.
//!
//! # Fallback
//! [`DesktopEnforcer`] sends a warning to the connected notifiers; with none connected
//! it warns through the enforcer it wraps (`wall`), and the log says which way each
//! warning went.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::enforcer::{CanFuture, EnforceFuture, Enforcer, ShutdownAction};
use crate::policy_state::{postpone_allowed, read_runtime, request_postpone};

/// Where the packaged agent listens: systemd's `RuntimeDirectory=veille-agent` (mode
/// 0755) plus [`NOTIFY_SOCKET_NAME`]. Also the notifier's default.
pub const NOTIFY_SOCKET: &str = "/run/veille-agent/notify.sock";
/// The socket's file name inside the runtime directory.
pub const NOTIFY_SOCKET_NAME: &str = "notify.sock";
/// The notification action key of the postpone button (the D-Bus action id).
pub const POSTPONE_ACTION: &str = "postpone";
/// The longest line either side accepts: a warning is a few hundred bytes; a peer
/// sending more is dropped rather than buffered.
pub const MAX_LINE_BYTES: u64 = 16 * 1024;
/// The socket's mode: every local user may connect (see "Who may postpone").
const SOCKET_MODE: u32 = 0o666;
/// After a failed `accept` (out of file descriptors): wait before the next, rather
/// than spin.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the agent sends a notifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToNotifier {
    /// Show this warning. `id` names it in a postpone; `postpone`: offer the button.
    Warning {
        id: u64,
        deadline_s: i64,
        message: String,
        postpone: bool,
    },
    /// The postpone of warning `id` was accepted; the shutdown is now at `deadline_s`.
    Postponed { id: u64, deadline_s: i64 },
    /// The postpone of warning `id` was refused, and why.
    Refused { id: u64, reason: String },
}

/// What a notifier sends the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAgent {
    /// The user pressed "postpone" on warning `id`.
    Postpone { id: u64 },
}

/// One JSON line (with its newline).
pub fn encode_line<T: Serialize>(message: &T) -> String {
    let mut line = serde_json::to_string(message).unwrap_or_default();
    line.push('\n');
    line
}

/// Reads one line of at most [`MAX_LINE_BYTES`] into `buf` (cleared first). `Ok(false)`
/// at the end of the stream; an over-long line is an error.
pub async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    let n = (&mut *reader)
        .take(MAX_LINE_BYTES)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long or cut short",
        ));
    }
    Ok(true)
}

/// The warning in force, as published.
#[derive(Debug, Clone)]
struct Published {
    id: u64,
    deadline: Timestamp,
    message: String,
}

/// The agent's end: publishes warnings to the connected notifiers and takes their
/// postpones.
#[derive(Debug)]
pub struct NotifyHub {
    state_dir: PathBuf,
    warning: watch::Sender<Option<Published>>,
    next_id: AtomicU64,
}

impl NotifyHub {
    /// A hub whose postpones go to the agent state in `state_dir`.
    pub fn new(state_dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            state_dir: state_dir.to_owned(),
            warning: watch::Sender::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    /// Notifiers connected now.
    pub fn connected(&self) -> usize {
        self.warning.receiver_count()
    }

    /// Sends a warning to every connected notifier (and to those connecting before
    /// `deadline`); returns how many were connected (0: nobody saw it).
    pub fn publish(&self, deadline: Timestamp, message: &str) -> usize {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.warning.send_replace(Some(Published {
            id,
            deadline,
            message: message.to_owned(),
        }));
        self.connected()
    }

    /// Accepts notifiers on `listener` until dropped (the caller aborts the task).
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(self.clone().serve_one(stream));
                }
                Err(e) => {
                    warn!(error = %e, "notify socket: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }

    /// One notifier: its warnings out, its postpones in.
    async fn serve_one(self: Arc<Self>, stream: UnixStream) {
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        debug!(?uid, "desktop notifier connected");
        let (read, mut write) = stream.into_split();
        let (out_tx, mut out_rx) = mpsc::channel::<String>(8);
        let writer = tokio::spawn(async move {
            while let Some(line) = out_rx.recv().await {
                if write.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        // The id of the last warning this connection was sent (0: none yet).
        let sent = Arc::new(AtomicU64::new(0));
        let forwarder = {
            let mut rx = self.warning.subscribe();
            let (sent, out_tx) = (sent.clone(), out_tx.clone());
            let state_dir = self.state_dir.clone();
            tokio::spawn(async move {
                // The warning in force when it connects, unless already past or
                // withdrawn since (work not to interrupt, the window closed).
                let mut first = true;
                loop {
                    let current = rx.borrow_and_update().clone();
                    if let Some(w) = current
                        && (!first
                            || (w.deadline > Timestamp::now()
                                && read_runtime(&state_dir).warned_at_ms.is_some()))
                    {
                        let line = encode_line(&ToNotifier::Warning {
                            id: w.id,
                            deadline_s: w.deadline.as_second(),
                            message: w.message,
                            postpone: postpone_allowed(&state_dir),
                        });
                        sent.store(w.id, Ordering::Relaxed);
                        if out_tx.send(line).await.is_err() {
                            break;
                        }
                    }
                    first = false;
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            })
        };
        let mut reader = BufReader::new(read);
        let mut buf = Vec::new();
        loop {
            match read_line(&mut reader, &mut buf).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    warn!(?uid, error = %e, "desktop notifier dropped");
                    break;
                }
            }
            let reply = match serde_json::from_slice::<ToAgent>(&buf) {
                Ok(ToAgent::Postpone { id }) => {
                    self.postpone(id, sent.load(Ordering::Relaxed), uid)
                }
                Err(e) => {
                    warn!(?uid, error = %e, "desktop notifier sent something unreadable; dropped");
                    break;
                }
            };
            if out_tx.send(encode_line(&reply)).await.is_err() {
                break;
            }
        }
        forwarder.abort();
        drop(out_tx);
        let _ = writer.await;
        debug!(?uid, "desktop notifier disconnected");
    }

    /// A postpone of warning `id` from a connection last sent warning `sent`.
    fn postpone(&self, id: u64, sent: u64, uid: Option<u32>) -> ToNotifier {
        let current = self.warning.borrow().as_ref().map(|w| w.id);
        if id != sent || current != Some(id) {
            warn!(
                ?uid,
                id, "postpone refused: not the warning in force on this connection"
            );
            return ToNotifier::Refused {
                id,
                reason: "this warning is no longer in force".into(),
            };
        }
        match request_postpone(&self.state_dir) {
            Ok(deadline) => {
                info!(?uid, %deadline, "postpone requested from the desktop notification");
                ToNotifier::Postponed {
                    id,
                    deadline_s: deadline.as_second(),
                }
            }
            Err(e) => {
                info!(?uid, error = %e, "postpone from the desktop notification refused");
                ToNotifier::Refused {
                    id,
                    reason: e.to_string(),
                }
            }
        }
    }
}

/// Binds the notify socket at `path` (replacing a stale one), open to every local user
/// ([`SOCKET_MODE`]).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    Ok(listener)
}

/// Where the running agent listens: `$RUNTIME_DIRECTORY` (set by systemd's
/// `RuntimeDirectory=veille-agent`, i.e. the directory of [`NOTIFY_SOCKET`]) plus
/// [`NOTIFY_SOCKET_NAME`]. `None` outside such a unit (an agent run by hand, or the
/// end-to-end tests' agents, which must not take the machine's socket from each
/// other): warnings then go through `wall` only. Set `RUNTIME_DIRECTORY` to serve by
/// hand.
pub fn socket_path() -> Option<PathBuf> {
    let dirs = std::env::var_os("RUNTIME_DIRECTORY")?;
    // systemd joins several runtime directories with ':'; ours is the first.
    let first = dirs.to_str()?.split(':').next()?;
    (!first.is_empty()).then(|| Path::new(first).join(NOTIFY_SOCKET_NAME))
}

/// Wraps an enforcer: warnings go to the desktop notifiers when one is connected, else
/// through `fallback` (the platform's `wall`); everything else is `fallback`'s.
pub struct DesktopEnforcer {
    hub: Arc<NotifyHub>,
    fallback: Arc<dyn Enforcer>,
}

impl DesktopEnforcer {
    pub fn new(hub: Arc<NotifyHub>, fallback: Arc<dyn Enforcer>) -> Self {
        Self { hub, fallback }
    }
}

impl Enforcer for DesktopEnforcer {
    fn warn<'a>(
        &'a self,
        users: &'a [String],
        deadline: Timestamp,
        message: &'a str,
    ) -> EnforceFuture<'a> {
        let notifiers = self.hub.publish(deadline, message);
        if notifiers > 0 {
            info!(
                notifiers,
                via = "desktop",
                "warning sent to the desktop notifiers"
            );
            return Box::pin(async { Ok(()) });
        }
        info!(
            via = "wall",
            "no desktop notifier connected: warning through wall"
        );
        self.fallback.warn(users, deadline, message)
    }

    fn power_off(&self) -> EnforceFuture<'_> {
        self.fallback.power_off()
    }

    fn hibernate(&self) -> EnforceFuture<'_> {
        self.fallback.hibernate()
    }

    fn suspend(&self) -> EnforceFuture<'_> {
        self.fallback.suspend()
    }

    fn can(&self, action: ShutdownAction) -> CanFuture<'_> {
        self.fallback.can(action)
    }
}

/// Binds the notify socket and serves it in the background; `None` (logged) when it
/// cannot be bound, and warnings then go through `wall` only.
pub fn start(path: &Path, state_dir: &Path) -> Option<(Arc<NotifyHub>, ServeHandle)> {
    match bind(path) {
        Ok(listener) => {
            info!(socket = %path.display(), "desktop notifiers may connect");
            let hub = NotifyHub::new(state_dir);
            let task = tokio::spawn(hub.clone().serve(listener));
            Some((
                hub,
                ServeHandle {
                    task,
                    path: path.to_owned(),
                },
            ))
        }
        Err(e) => {
            warn!(socket = %path.display(), error = %e,
                "cannot open the notify socket: warnings go through wall only");
            None
        }
    }
}

/// The serving task; dropping it stops serving and removes the socket.
#[derive(Debug)]
pub struct ServeHandle {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforcer::{Enforced, RecordingEnforcer};

    #[test]
    fn messages_are_one_tagged_json_line_each() {
        let w = ToNotifier::Warning {
            id: 3,
            deadline_s: 1_790_000_120,
            message: "This computer will shut down at 20:02".into(),
            postpone: true,
        };
        let line = encode_line(&w);
        assert_eq!(
            line,
            "{\"type\":\"warning\",\"id\":3,\"deadline_s\":1790000120,\
             \"message\":\"This computer will shut down at 20:02\",\"postpone\":true}\n"
        );
        assert_eq!(serde_json::from_str::<ToNotifier>(&line).unwrap(), w);
        assert_eq!(
            serde_json::from_str::<ToAgent>("{\"type\":\"postpone\",\"id\":3}").unwrap(),
            ToAgent::Postpone { id: 3 }
        );
        assert!(serde_json::from_str::<ToAgent>("{\"type\":\"shutdown\"}").is_err());
    }

    #[tokio::test]
    async fn an_over_long_line_is_an_error_not_a_buffer() {
        let long = vec![b'x'; usize::try_from(MAX_LINE_BYTES).unwrap() + 10];
        let mut reader = BufReader::new(long.as_slice());
        let mut buf = Vec::new();
        assert!(read_line(&mut reader, &mut buf).await.is_err());
        assert!(buf.len() as u64 <= MAX_LINE_BYTES);
        let mut reader = BufReader::new(&b"{}\n"[..]);
        assert!(read_line(&mut reader, &mut buf).await.unwrap());
        assert!(!read_line(&mut reader, &mut buf).await.unwrap());
    }

    #[test]
    fn the_socket_is_in_systemds_runtime_directory() {
        // One source: the default path is the runtime directory plus the name.
        assert_eq!(
            Path::new(NOTIFY_SOCKET).file_name().unwrap(),
            NOTIFY_SOCKET_NAME
        );
    }

    /// A session that starts after the warning still gets it, unless it was withdrawn.
    #[tokio::test]
    async fn a_late_notifier_gets_the_warning_in_force_not_a_withdrawn_one() {
        use crate::policy::{POLICY_STATE_FILE, PolicyRuntime};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(NOTIFY_SOCKET_NAME);
        let (hub, _serving) = start(&socket, dir.path()).unwrap();
        let runtime = |warned: Option<i64>| {
            let rt = PolicyRuntime {
                warned_at_ms: warned,
                ..PolicyRuntime::default()
            };
            std::fs::write(
                dir.path().join(POLICY_STATE_FILE),
                serde_json::to_vec(&rt).unwrap(),
            )
            .unwrap();
        };
        runtime(Some(Timestamp::now().as_millisecond()));
        let deadline = Timestamp::now() + jiff::SignedDuration::from_hours(1);
        assert_eq!(hub.publish(deadline, "in force"), 0);
        let mut late = BufReader::new(UnixStream::connect(&socket).await.unwrap());
        let mut buf = Vec::new();
        assert!(read_line(&mut late, &mut buf).await.unwrap());
        assert!(matches!(serde_json::from_slice(&buf).unwrap(),
                ToNotifier::Warning { message, .. } if message == "in force"));
        runtime(None);
        let mut later = BufReader::new(UnixStream::connect(&socket).await.unwrap());
        let nothing = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            read_line(&mut later, &mut buf),
        )
        .await;
        assert!(nothing.is_err(), "a withdrawn warning was sent: {buf:?}");
    }

    /// With no notifier connected the warning falls back to the wrapped enforcer
    /// (`wall` for real); with one connected, it goes to the notifier only.
    #[tokio::test]
    async fn warnings_fall_back_to_the_wrapped_enforcer_without_a_notifier() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(NOTIFY_SOCKET_NAME);
        let (hub, _serving) = start(&socket, dir.path()).unwrap();
        let rec = Arc::new(RecordingEnforcer::default());
        let enforcer = DesktopEnforcer::new(hub.clone(), rec.clone());
        let deadline = Timestamp::from_second(1_790_000_120).unwrap();
        enforcer.warn(&[], deadline, "first").await.unwrap();
        assert_eq!(
            rec.recorded(),
            [Enforced::Warned {
                users: vec![],
                deadline,
                message: "first".into()
            }]
        );

        let stream = UnixStream::connect(&socket).await.unwrap();
        let mut reader = BufReader::new(stream);
        for _ in 0..200 {
            if hub.connected() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(hub.connected(), 1);
        enforcer.warn(&[], deadline, "second").await.unwrap();
        assert_eq!(rec.recorded().len(), 1, "not through wall as well");
        let mut buf = Vec::new();
        assert!(read_line(&mut reader, &mut buf).await.unwrap());
        let got: ToNotifier = serde_json::from_slice(&buf).unwrap();
        assert!(
            matches!(&got, ToNotifier::Warning { message, deadline_s, postpone: false, .. }
                if message == "second" && *deadline_s == 1_790_000_120),
            "{got:?}"
        );
        // No policy held: a postpone is refused by the policy's rule.
        let ToNotifier::Warning { id, .. } = got else {
            unreachable!()
        };
        reader
            .get_mut()
            .write_all(encode_line(&ToAgent::Postpone { id }).as_bytes())
            .await
            .unwrap();
        assert!(read_line(&mut reader, &mut buf).await.unwrap());
        let got: ToNotifier = serde_json::from_slice(&buf).unwrap();
        assert!(
            matches!(&got, ToNotifier::Refused { reason, .. } if reason.contains("nothing to postpone")),
            "{got:?}"
        );
        // A postpone of a warning this connection was not sent: refused before the rule.
        reader
            .get_mut()
            .write_all(encode_line(&ToAgent::Postpone { id: id + 7 }).as_bytes())
            .await
            .unwrap();
        assert!(read_line(&mut reader, &mut buf).await.unwrap());
        let got: ToNotifier = serde_json::from_slice(&buf).unwrap();
        assert!(
            matches!(&got, ToNotifier::Refused { reason, .. } if reason.contains("no longer in force")),
            "{got:?}"
        );
    }
}
