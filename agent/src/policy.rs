//! The agent's side of the auto-shutdown policy: accept a signed policy only from the
//! pinned key and newer than the one held, keep it on disk, and enforce it every sample
//! tick, with or without the collector.
//!
//! # Trust
//! The key is `policy_public_key` from the config; when that is empty, the key the
//! collector announces in a gRPC Ack (`Ack.policy_key`) is pinned on first contact and
//! kept in `state.json` (`pinned_policy_key`). An Ack over MQTT never pins a key. A
//! policy that does not verify is logged and reported once as `POLICY_REJECTED`, and
//! the policy held stays in force.
//!
//! # Files in the state directory
//! - `policy.pb`: the last accepted `SignedPolicy`, exactly as signed (re-verified at
//!   start against the pinned key); written atomically.
//! - `policy_state.json`: the current warning and postpones used, so a restarted agent
//!   neither warns twice nor forgets a postpone.
//! - `postpone.request`: written by `veille-agent postpone`, consumed by the running
//!   agent at its next tick.
//!
//! # Actions, maintenance, work not to interrupt
//! The open window says what to do (power off, hibernate, sleep: `span_action`). Before
//! warning and again before acting, the agent asks the enforcer whether the machine
//! can ([`Enforcer::can`]) and the [`WorkProbe`] whether work must not be interrupted
//! (a `never_interrupt` process, an OS update); either skips, with the reason, and a
//! warning given is withdrawn so the users are warned afresh once it clears. The same
//! goes inside a maintenance window. Before acting, a wake-up is armed for the next
//! maintenance window through the [`WakeAlarm`].
//!
//! # Events
//! `POLICY_WARNED`, `POLICY_SHUTDOWN` (detail: `v<version> <action>`),
//! `POLICY_POSTPONED`, `POLICY_SKIPPED` (detail: the [`SkipReason::code`],
//! `action_unavailable: …`, `never_interrupt: …`, `os_update: …`, or `dry_run: would …`
//! in dry-run mode), each once per window occurrence and reason, `POLICY_WAKE_ARMED`
//! (detail: `<unix s> maintenance[<i>] via <how>`) and `POLICY_REJECTED` (detail: the
//! rejection code).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use prost::Message;
use tracing::{error, info, warn};
use veille_proto::policy::{
    Action, Decision, DeviceFacts, SkipReason, action_name, can_postpone, evaluate,
    next_maintenance, open_span, shutdown_deadline, span_action,
};
use veille_proto::signing::{self, PolicyRejected, VerifyingKey};
use veille_proto::v1::{EventKind, Policy, PolicyMode, ShutdownAction, SignedPolicy};

use crate::enforcer::{Enforcer, carry_out};
use crate::never_interrupt::{NoWorkProbe, WorkProbe};
use crate::policy_state::from_ms;
pub use crate::policy_state::{
    Held, POLICY_FILE, POLICY_STATE_FILE, POSTPONE_REQUEST_FILE, PolicyRuntime, PostponeError,
    postpone_allowed, read_held, read_runtime, request_postpone,
};
use crate::spool::write_atomic;
use crate::wake::{NoWakeAlarm, WakeAlarm};

/// An event for the next report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEvent {
    pub kind: EventKind,
    pub at_ms: i64,
    pub detail: String,
}

struct Inner {
    pinned: Option<VerifyingKey>,
    held: Option<Held>,
    runtime: PolicyRuntime,
    events: Vec<PolicyEvent>,
    /// Signed policies already rejected (the collector resends its current one with
    /// every Ack): reported once.
    rejected: Vec<SignedPolicy>,
    /// Without session information: when the CPU was last busy (or the agent started).
    last_busy_ms: i64,
}

/// The agent's policy holder and enforcer. Shared by the send loop ([`Self::on_ack`])
/// and the sampling loop ([`Self::tick`]).
pub struct PolicyAgent {
    state_dir: PathBuf,
    facts: DeviceFacts,
    enforcer: Arc<dyn Enforcer>,
    wake: Arc<dyn WakeAlarm>,
    work: Arc<dyn WorkProbe>,
    inner: Mutex<Inner>,
}

/// What must hold before a warning or an action, found (with I/O, outside the lock)
/// only while a window of an active policy is open.
#[derive(Debug, Default)]
struct Preconditions {
    /// The open window's action.
    action: ShutdownAction,
    /// Why that action is impossible here.
    unavailable: Option<String>,
    /// Work not to interrupt (`Busy::detail`).
    busy: Option<String>,
}

/// What a tick decided to do, carried out after the lock is released.
#[derive(Debug, Default)]
struct Steps {
    /// Warn the users: deadline and message.
    warn: Option<(Timestamp, String)>,
    /// Carry this action out.
    act: Option<ShutdownAction>,
}

impl Preconditions {
    /// The `POLICY_SKIPPED` detail when something blocks, work first.
    fn blocked(&self) -> Option<String> {
        self.busy.clone().or_else(|| {
            self.unavailable
                .as_ref()
                .map(|r| format!("action_unavailable: {} ({r})", action_name(self.action)))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyAgentError {
    #[error("policy_public_key = {value:?}: {reason}")]
    BadKey { value: String, reason: String },
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// Parses a configured or pinned key; empty is `None`.
pub fn parse_key(text: &str) -> Result<Option<VerifyingKey>, PolicyAgentError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    signing::parse_verifying_key(text)
        .map(Some)
        .map_err(|e| PolicyAgentError::BadKey {
            value: text.chars().take(60).collect(),
            reason: e.to_string(),
        })
}

fn mode_name(p: &Policy) -> &'static str {
    match p.mode() {
        PolicyMode::Off => "off",
        PolicyMode::DryRun => "dry-run",
        PolicyMode::Enforce => "enforce",
        PolicyMode::Unspecified => "unspecified",
    }
}

/// `veille-agent status`'s policy lines.
pub fn status_text(state_dir: &Path, pinned: Option<&str>) -> String {
    let pinned_id = pinned
        .and_then(|k| parse_key(k).ok().flatten())
        .map(|k| signing::key_id(&k));
    let held = read_held(state_dir);
    let mut out = match &held {
        None => "policy            none received\n".to_owned(),
        Some(h) => format!(
            "policy            org {} version {} mode {}, signed by key {}\n",
            h.policy.org,
            h.policy.version,
            mode_name(&h.policy),
            h.signed.key_id
        ),
    };
    if let Some(p) = held.as_ref().map(|h| &h.policy) {
        out.push_str(&policy_details(p));
    }
    out.push_str(&format!(
        "policy key        {}\n",
        pinned_id.map_or_else(
            || "not pinned yet (pinned on first contact)".to_owned(),
            |id| format!("pinned {id}")
        )
    ));
    let rt = read_runtime(state_dir);
    if let Some(w) = rt.warned_at_ms {
        out.push_str(&format!(
            "policy warning    given at {} (unix ms), {} postpones used\n",
            w, rt.postpones_used
        ));
    }
    out
}

/// The issue-19 parts of a held policy, for `status`: closure days (their range, so
/// an operator sees when the policy must be set again), maintenance windows and the
/// processes never interrupted. Empty for a policy without them.
fn policy_details(p: &Policy) -> String {
    let mut out = String::new();
    if let (Some(first), Some(last)) = (p.closure_days.first(), p.closure_days.last()) {
        let holidays = p.closure_days.iter().filter(|d| d.public_holiday).count();
        out.push_str(&format!(
            "policy closures   {} days ({holidays} public holidays{}) from {} to {}, {}\n",
            p.closure_days.len(),
            if p.holidays.is_empty() {
                String::new()
            } else {
                format!(", {}", p.holidays)
            },
            first.date,
            last.date,
            action_name(p.closure_action())
        ));
    }
    if !p.maintenance.is_empty() {
        out.push_str(&format!(
            "policy maintenance {} window(s): never shut down inside, woken up for the next\n",
            p.maintenance.len()
        ));
    }
    if !p.never_interrupt.is_empty() {
        out.push_str(&format!(
            "never interrupt   {} (and OS updates)\n",
            p.never_interrupt.join(", ")
        ));
    }
    out
}

impl PolicyAgent {
    /// Loads the held policy from `state_dir` (kept only if it verifies against the
    /// pinned key: `configured_key`, else `pinned_from_state`).
    pub fn open(
        state_dir: &Path,
        configured_key: &str,
        pinned_from_state: Option<&str>,
        facts: DeviceFacts,
        enforcer: Arc<dyn Enforcer>,
        now: Timestamp,
    ) -> Result<Self, PolicyAgentError> {
        let pinned = match parse_key(configured_key)? {
            Some(k) => Some(k),
            None => match pinned_from_state.map(parse_key) {
                Some(Ok(k)) => k,
                Some(Err(e)) => {
                    error!(error = %e, "pinned policy key in state.json is unreadable; unpinned");
                    None
                }
                None => None,
            },
        };
        let mut held = None;
        if let Some(h) = read_held(state_dir) {
            match &pinned {
                Some(key) => match signing::verify(&h.signed, key, None) {
                    Ok(policy) => {
                        info!(org = %policy.org, version = policy.version, mode = mode_name(&policy),
                            key_id = %h.signed.key_id, "stored policy loaded");
                        held = Some(Held {
                            signed: h.signed,
                            policy,
                        });
                    }
                    Err(e) => {
                        error!(error = %e, "stored policy does not verify against the pinned key; ignored")
                    }
                },
                None => warn!("stored policy ignored: no policy key pinned"),
            }
        }
        let runtime = read_runtime(state_dir);
        Ok(Self {
            state_dir: state_dir.to_owned(),
            facts,
            enforcer,
            wake: Arc::new(NoWakeAlarm),
            work: Arc::new(NoWorkProbe),
            inner: Mutex::new(Inner {
                pinned,
                held,
                runtime,
                events: Vec::new(),
                rejected: Vec::new(),
                last_busy_ms: ms(now),
            }),
        })
    }

    /// Arms wake-ups for maintenance windows through `wake` (default: none).
    pub fn with_wake_alarm(mut self, wake: Arc<dyn WakeAlarm>) -> Self {
        self.wake = wake;
        self
    }

    /// Looks for work not to interrupt through `work` (default: sees none).
    pub fn with_work_probe(mut self, work: Arc<dyn WorkProbe>) -> Self {
        self.work = work;
        self
    }

    /// The preconditions of acting at `now`, asked only inside a window of a policy in
    /// dry-run or enforce mode (a D-Bus call and a /proc scan per tick then, none
    /// otherwise).
    async fn preconditions(&self, now: Timestamp) -> Preconditions {
        let Some(held) = self.held() else {
            return Preconditions::default();
        };
        let policy = &held.policy;
        if !matches!(policy.mode(), PolicyMode::Enforce | PolicyMode::DryRun) {
            return Preconditions::default();
        }
        let Some(span) = open_span(policy, now) else {
            return Preconditions::default();
        };
        let action = span_action(policy, span.window);
        Preconditions {
            action,
            unavailable: self.enforcer.can(action).await.err(),
            busy: self.work.busy(&policy.never_interrupt).map(|b| b.detail()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The policy in force, if any.
    pub fn held(&self) -> Option<Held> {
        self.inner().held.clone()
    }

    /// Handles the policy of an Ack. `offered_key` is `Ack.policy_key`;
    /// `trusted_channel` says whether it may be pinned (gRPC, not MQTT). Returns the key
    /// to store as `pinned_policy_key` when it was just pinned.
    pub fn on_ack(
        &self,
        signed: &SignedPolicy,
        offered_key: &str,
        trusted_channel: bool,
        now: Timestamp,
    ) -> Option<String> {
        let mut inner = self.inner();
        if inner.held.as_ref().is_some_and(|h| h.signed == *signed)
            || inner.rejected.contains(signed)
        {
            return None;
        }
        let mut newly_pinned = None;
        if inner.pinned.is_none() && trusted_channel {
            match parse_key(offered_key) {
                Ok(Some(k)) if signing::key_id(&k) == signed.key_id => {
                    info!(key_id = %signed.key_id, "policy key pinned on first contact");
                    inner.pinned = Some(k);
                    newly_pinned = Some(offered_key.trim().to_owned());
                }
                _ => {}
            }
        }
        let verdict = match &inner.pinned {
            None => Err(PolicyRejected::UnknownKey {
                key_id: signed.key_id.chars().take(64).collect(),
                pinned: "none".into(),
            }),
            Some(key) => {
                signing::verify(signed, key, inner.held.as_ref().map(|h| h.policy.version))
            }
        };
        match verdict {
            Ok(policy) => {
                if let Err((path, e)) =
                    write_atomic(&self.state_dir.join(POLICY_FILE), &signed.encode_to_vec())
                {
                    error!(path = %path.display(), error = %e, "cannot store the policy; enforcing it from memory");
                }
                info!(org = %policy.org, version = policy.version, mode = mode_name(&policy),
                    key_id = %signed.key_id, "new policy accepted");
                inner.held = Some(Held {
                    signed: signed.clone(),
                    policy,
                });
                inner.runtime = PolicyRuntime::default();
                self.save_runtime(&inner.runtime);
            }
            Err(e) => {
                warn!(error = %e, code = e.code(), key_id = %signed.key_id, "policy rejected");
                // Bounded: a peer sending ever new forgeries gets an event for each.
                if inner.rejected.len() >= 16 {
                    inner.rejected.remove(0);
                }
                inner.rejected.push(signed.clone());
                inner.events.push(PolicyEvent {
                    kind: EventKind::PolicyRejected,
                    at_ms: ms(now),
                    detail: e.code().to_owned(),
                });
            }
        }
        newly_pinned
    }

    /// Handles a payload of the org's retained MQTT policy topic: a protobuf
    /// `SignedPolicy`, taken through [`Self::on_ack`] as an untrusted channel (verified
    /// against the pinned key, never pins one). Bytes that are not a `SignedPolicy` are
    /// logged and reported as `POLICY_REJECTED` "malformed".
    pub fn on_broker_message(&self, payload: &[u8], now: Timestamp) {
        match SignedPolicy::decode(payload) {
            Ok(signed) => {
                self.on_ack(&signed, "", false, now);
            }
            Err(e) => {
                warn!(error = %e, code = "malformed", bytes = payload.len(),
                    "policy rejected: the policy topic carried something that is not a SignedPolicy");
                self.inner().events.push(PolicyEvent {
                    kind: EventKind::PolicyRejected,
                    at_ms: ms(now),
                    detail: "malformed".to_owned(),
                });
            }
        }
    }

    fn save_runtime(&self, rt: &PolicyRuntime) {
        let bytes = serde_json::to_vec(rt).unwrap_or_default();
        if let Err((path, e)) = write_atomic(&self.state_dir.join(POLICY_STATE_FILE), &bytes) {
            error!(path = %path.display(), error = %e, "cannot save the policy state");
        }
    }

    /// One evaluation at `now`: `idle_s` from the session manager (`None`: no session
    /// information, then idle counts from the last CPU-busy sample), acts through the
    /// enforcer and returns the events for the report.
    pub async fn tick(
        &self,
        now: Timestamp,
        idle_s: Option<u64>,
        cpu_busy: bool,
    ) -> Vec<PolicyEvent> {
        let checks = self.preconditions(now).await;
        let mut steps = Steps::default();
        let mut policy = None;
        let mut events = {
            let mut inner = self.inner();
            if cpu_busy {
                inner.last_busy_ms = ms(now);
            }
            let idle_s = idle_s.unwrap_or_else(|| {
                u64::try_from((ms(now) - inner.last_busy_ms).max(0) / 1000).unwrap_or(0)
            });
            let before = inner.runtime.clone();
            if let Some(held) = inner.held.clone() {
                self.decide(&mut inner, &held.policy, now, idle_s, &checks, &mut steps);
                policy = Some(held.policy);
            }
            if inner.runtime != before {
                self.save_runtime(&inner.runtime);
            }
            std::mem::take(&mut inner.events)
        };
        if let Some((deadline, message)) = steps.warn
            && let Err(e) = self.enforcer.warn(&[], deadline, &message).await
        {
            warn!(error = %e, "cannot warn the users");
        }
        if let (Some(action), Some(policy)) = (steps.act, policy) {
            if let Some(e) = self.arm_wake(&policy, action, now) {
                events.push(e);
            }
            info!(action = action_name(action), "policy: carrying out");
            if let Err(e) = carry_out(self.enforcer.as_ref(), action).await {
                error!(error = %e, "policy action failed");
            }
        }
        events
    }

    /// Arms a wake-up for the next maintenance window, if the policy has one: the
    /// `POLICY_WAKE_ARMED` event, or `None` (none to arm, or it failed: logged, and
    /// the action goes on; an unpatched night beats a machine left on against policy).
    fn arm_wake(
        &self,
        policy: &Policy,
        action: ShutdownAction,
        now: Timestamp,
    ) -> Option<PolicyEvent> {
        let next = next_maintenance(policy, now)?;
        match self.wake.arm(next.start, action) {
            Ok(how) => {
                info!(at = %next.start, maintenance = next.window, via = %how, "wake-up armed");
                Some(PolicyEvent {
                    kind: EventKind::PolicyWakeArmed,
                    at_ms: ms(now),
                    detail: format!(
                        "{} maintenance[{}] via {how}",
                        next.start.as_second(),
                        next.window
                    ),
                })
            }
            Err(e) => {
                warn!(error = %e, at = %next.start, "cannot arm the wake-up for the maintenance window");
                None
            }
        }
    }

    fn decide(
        &self,
        inner: &mut Inner,
        policy: &Policy,
        now: Timestamp,
        idle_s: u64,
        checks: &Preconditions,
        steps: &mut Steps,
    ) {
        let at_ms = ms(now);
        let rt = &mut inner.runtime;
        // A postpone request is consumed whatever its fate.
        let request = self.state_dir.join(POSTPONE_REQUEST_FILE);
        if std::fs::remove_file(&request).is_ok() {
            if rt.warned_at_ms.is_some() && can_postpone(policy, rt.postpones_used) {
                rt.postpones_used += 1;
                let deadline = shutdown_deadline(
                    policy,
                    from_ms(rt.warned_at_ms.unwrap_or(at_ms)),
                    rt.postpones_used,
                );
                info!(used = rt.postpones_used, allowed = policy.postpones_allowed, %deadline, "shutdown postponed");
                inner.events.push(PolicyEvent {
                    kind: EventKind::PolicyPostponed,
                    at_ms,
                    detail: format!(
                        "{}/{} until {deadline}",
                        rt.postpones_used, policy.postpones_allowed
                    ),
                });
            } else {
                warn!("postpone request refused (no warning in force or none left)");
            }
        }
        let warned_at = rt.warned_at_ms.map(from_ms);
        let decision = evaluate(
            policy,
            now,
            &self.facts,
            idle_s,
            rt.postpones_used,
            warned_at,
        );
        // Work not to interrupt, or an action this machine cannot do, blocks a warning
        // or an action (never a countdown: nothing happens then anyway).
        let blocked = match decision {
            Decision::Enforce(Action::Warn { .. } | Action::ShutDown)
            | Decision::DryRun(Action::Warn { .. } | Action::ShutDown) => checks.blocked(),
            _ => None,
        };
        let span_ms = open_span(policy, now).map_or(0, |s| ms(s.start));
        let once = |code: &str, rt: &mut PolicyRuntime| -> bool {
            let key = (span_ms, code.to_owned());
            if rt.reported.contains(&key) {
                return false;
            }
            // Only the current occurrence matters.
            rt.reported.retain(|(s, _)| *s == span_ms);
            rt.reported.push(key);
            true
        };
        let mut event = |kind, detail: String| {
            inner.events.push(PolicyEvent {
                kind,
                at_ms,
                detail,
            })
        };
        match decision {
            Decision::Nothing => {
                if rt.warned_at_ms.is_some() || !rt.reported.is_empty() {
                    *rt = PolicyRuntime::default();
                }
            }
            _ if blocked.is_some() => {
                let detail = blocked.unwrap_or_default();
                let code = detail.split(':').next().unwrap_or_default().to_owned();
                // Withdrawn: once it clears, the users are warned afresh.
                rt.warned_at_ms = None;
                rt.postpones_used = 0;
                if once(&code, rt) {
                    info!(reason = %detail, "policy: skipped");
                    event(EventKind::PolicySkipped, detail);
                }
            }
            Decision::Skip { reason } => {
                if matches!(reason, SkipReason::InMaintenance(_)) {
                    rt.warned_at_ms = None;
                    rt.postpones_used = 0;
                }
                if once(reason.code(), rt) {
                    info!(reason = %reason, "policy: skipped");
                    event(EventKind::PolicySkipped, reason.code().to_owned());
                }
            }
            Decision::DryRun(action) => match action {
                Action::Warn { shutdown_at } => {
                    rt.warned_at_ms = Some(at_ms);
                    info!(%shutdown_at, "policy (dry run): would warn the users now");
                    event(
                        EventKind::PolicySkipped,
                        format!("dry_run: would warn, shutdown at {shutdown_at}"),
                    );
                }
                Action::Countdown { .. } => {}
                Action::ShutDown => {
                    if once("dry_run_shutdown", rt) {
                        info!("policy (dry run): would shut down now");
                        let detail = match checks.action {
                            ShutdownAction::Hibernate => "dry_run: would hibernate",
                            ShutdownAction::Sleep => "dry_run: would sleep",
                            _ => "dry_run: would shut down",
                        };
                        event(EventKind::PolicySkipped, detail.into());
                    }
                }
            },
            Decision::Enforce(action) => match action {
                Action::Warn { shutdown_at } => {
                    rt.warned_at_ms = Some(at_ms);
                    info!(%shutdown_at, "policy: warning the users");
                    let what = match checks.action {
                        ShutdownAction::Hibernate => "hibernate",
                        ShutdownAction::Sleep => "go to sleep",
                        _ => "shut down",
                    };
                    let message = format!(
                        "This computer will {what} at {} (energy saving policy of {}). \
                         Save your work. To postpone: veille-agent postpone",
                        shutdown_at
                            .to_zoned(jiff::tz::TimeZone::system())
                            .strftime("%H:%M"),
                        policy.org
                    );
                    steps.warn = Some((shutdown_at, message));
                    event(
                        EventKind::PolicyWarned,
                        format!("v{} shutdown at {shutdown_at}", policy.version),
                    );
                }
                Action::Countdown { .. } => {}
                Action::ShutDown => {
                    if once("shutdown", rt) {
                        event(
                            EventKind::PolicyShutdown,
                            format!("v{} {}", policy.version, action_name(checks.action)),
                        );
                        steps.act = Some(checks.action);
                    }
                }
            },
        }
    }

    /// Whether events wait for the next report (a rejection with no policy held).
    pub fn has_events(&self) -> bool {
        !self.inner().events.is_empty()
    }

    /// The policy key pinned (configured, or announced on first contact), if any: the
    /// key wake requests are checked against too (the Wake-on-LAN relay).
    pub fn pinned_key(&self) -> Option<VerifyingKey> {
        self.inner().pinned
    }

    /// Adds events from elsewhere in the agent (a Wake-on-LAN packet sent) to the next
    /// report.
    pub fn push_events(&self, events: Vec<PolicyEvent>) {
        if !events.is_empty() {
            self.inner().events.extend(events);
        }
    }

    /// Events waiting for the next report (rejections from the send loop), taken.
    pub fn take_events(&self) -> Vec<PolicyEvent> {
        std::mem::take(&mut self.inner().events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforcer::{Enforced, RecordingEnforcer};
    use jiff::SignedDuration;
    use veille_proto::policy::ALL_DAYS;
    use veille_proto::signing::{SigningKey, encode_verifying_key, sign};
    use veille_proto::v1::{ChassisClass, ShutdownWindow};

    const UTC_NOON: i64 = 1_790_000_000_000; // a Monday, 2026-09-21 14:13:20 UTC

    fn policy(version: u64, mode: PolicyMode) -> Policy {
        Policy {
            org: "acme".into(),
            version,
            mode: mode as i32,
            windows: vec![ShutdownWindow {
                days: ALL_DAYS,
                start: "00:00".into(),
                end: "23:59".into(),
                time_zone: "UTC".into(),
                ..ShutdownWindow::default()
            }],
            idle_threshold_s: 60,
            warning_s: 120,
            postpones_allowed: 1,
            postpone_s: 300,
            ..Policy::default()
        }
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn desktop() -> DeviceFacts {
        DeviceFacts {
            chassis: ChassisClass::Desktop,
            tags: vec![],
            hostname: "pc-1".into(),
            allow_shutdown: false,
        }
    }

    fn agent(dir: &Path, configured: &str, rec: Arc<RecordingEnforcer>) -> PolicyAgent {
        PolicyAgent::open(dir, configured, None, desktop(), rec, from_ms(UTC_NOON)).unwrap()
    }

    fn at(s: i64) -> Timestamp {
        from_ms(UTC_NOON + s * 1000)
    }

    #[tokio::test]
    async fn enforce_warns_postpones_then_shuts_down_through_the_enforcer() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(1);
        let rec = Arc::new(RecordingEnforcer::default());
        let a = agent(
            dir.path(),
            &encode_verifying_key(&k.verifying_key()),
            rec.clone(),
        );
        assert!(
            a.on_ack(&sign(&policy(1, PolicyMode::Enforce), &k), "", false, at(0))
                .is_none()
        );
        assert_eq!(a.held().unwrap().policy.version, 1);
        // Active user: skipped once, not twice.
        let e = a.tick(at(0), Some(0), false).await;
        assert_eq!(e[0].kind, EventKind::PolicySkipped);
        assert_eq!(e[0].detail, "user_active");
        assert!(a.tick(at(10), Some(5), false).await.is_empty());
        // Idle: warned.
        let e = a.tick(at(20), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyWarned);
        assert!(matches!(rec.recorded()[0], Enforced::Warned { .. }));
        // Postpone once: accepted; a second is refused by the CLI side.
        let deadline = request_postpone(dir.path()).unwrap();
        assert_eq!(deadline, at(20 + 120 + 300));
        let e = a.tick(at(30), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyPostponed);
        assert!(matches!(
            request_postpone(dir.path()),
            Err(PostponeError::Exhausted { allowed: 1 })
        ));
        // Before the postponed deadline: nothing; after: one shutdown.
        assert!(a.tick(at(200), Some(600), false).await.is_empty());
        assert_eq!(rec.recorded().len(), 1);
        let e = a.tick(at(441), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyShutdown);
        assert_eq!(rec.recorded().last(), Some(&Enforced::PoweredOff));
        assert!(a.tick(at(450), Some(600), false).await.is_empty());
        assert_eq!(rec.recorded().len(), 2);
    }

    /// Polls `done` every 10 ms for up to 10 s (real time: a bus and a socket in
    /// between, not the policy's clock).
    #[cfg(target_os = "linux")]
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("not within 10 s: {what}");
    }

    /// Issue 19, "tell the user properly", end to end: the agent's warning goes through
    /// the notify socket to a notifier on a real (private) session bus, whose fake
    /// notification server shows it with a postpone button; pressing it
    /// (`ActionInvoked "postpone"`) comes back through the socket to the policy's
    /// postpone rule: counted, the deadline moved, the second postpone not offered.
    /// Nothing goes through `wall` (the wrapped recording enforcer).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_desktop_notifications_postpone_button_postpones_through_the_socket() {
        use crate::notifier::tests::FakeNotifications;
        use crate::notifier::{NOTIFICATIONS_INTERFACE, NOTIFICATIONS_NAME, NOTIFICATIONS_PATH};
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let socket = dir
            .path()
            .join("run")
            .join(crate::notify::NOTIFY_SOCKET_NAME);
        let bus = crate::test_bus::start_bus().await;
        let fake = FakeNotifications::default();
        let server = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name(NOTIFICATIONS_NAME)
            .unwrap()
            .serve_at(NOTIFICATIONS_PATH, fake.clone())
            .unwrap()
            .build()
            .await
            .unwrap();
        let session = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();

        let (hub, _serving) = crate::notify::start(&socket, &state).unwrap();
        let wall = Arc::new(RecordingEnforcer::default());
        let k = key(1);
        let a = PolicyAgent::open(
            &state,
            &encode_verifying_key(&k.verifying_key()),
            None,
            desktop(),
            Arc::new(crate::notify::DesktopEnforcer::new(
                hub.clone(),
                wall.clone(),
            )),
            at(0),
        )
        .unwrap();
        a.on_ack(&sign(&policy(1, PolicyMode::Enforce), &k), "", false, at(0));
        let notifier = {
            let socket = socket.clone();
            tokio::spawn(async move { crate::notifier::run(&socket, &session).await })
        };
        eventually("the notifier connects", || hub.connected() == 1).await;

        let e = a.tick(at(20), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyWarned);
        let hm = |t: Timestamp| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%H:%M")
                .to_string()
        };
        eventually("Notify is called", || fake.calls.lock().unwrap().len() == 1).await;
        let (replaces, summary, body, actions) = fake.calls.lock().unwrap()[0].clone();
        assert_eq!(replaces, 0);
        assert_eq!(summary, format!("Shutdown at {}", hm(at(140))));
        assert!(
            body.starts_with(&format!("This computer will shut down at {} ", hm(at(140)))),
            "{body}"
        );
        assert_eq!(actions, [crate::notify::POSTPONE_ACTION, "Postpone"]);
        assert!(wall.recorded().is_empty(), "{:?}", wall.recorded());

        server
            .emit_signal(
                None::<&str>,
                NOTIFICATIONS_PATH,
                NOTIFICATIONS_INTERFACE,
                crate::notifier::ACTION_INVOKED,
                &(1u32, crate::notify::POSTPONE_ACTION),
            )
            .await
            .unwrap();
        // The agent's answer replaces the notification.
        eventually("the postpone is confirmed", || {
            fake.calls.lock().unwrap().len() == 2
        })
        .await;
        let (replaces, summary, body, _) = fake.calls.lock().unwrap()[1].clone();
        assert_eq!((replaces, summary.as_str()), (1, "Shutdown postponed"));
        assert!(body.contains(&hm(at(440))), "{body}");

        // The running agent takes it at its next tick: one postpone of one, 300 s more.
        let e = a.tick(at(30), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyPostponed);
        assert_eq!(e[0].detail, format!("1/1 until {}", at(440)));
        assert_eq!(read_runtime(&state).postpones_used, 1);
        assert!(!postpone_allowed(&state));
        assert!(a.tick(at(200), Some(600), false).await.is_empty());
        let e = a.tick(at(441), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyShutdown);
        assert_eq!(wall.recorded(), [Enforced::PoweredOff]);
        notifier.abort();
    }

    #[tokio::test]
    async fn dry_run_never_acts_and_reports_would() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(1);
        let rec = Arc::new(RecordingEnforcer::default());
        let a = agent(
            dir.path(),
            &encode_verifying_key(&k.verifying_key()),
            rec.clone(),
        );
        a.on_ack(&sign(&policy(1, PolicyMode::DryRun), &k), "", false, at(0));
        let e = a.tick(at(0), Some(600), false).await;
        assert!(e[0].detail.starts_with("dry_run: would warn"), "{e:?}");
        let e = a.tick(at(200), Some(600), false).await;
        assert_eq!(e[0].detail, "dry_run: would shut down");
        assert!(a.tick(at(300), Some(600), false).await.is_empty());
        assert!(rec.recorded().is_empty());
    }

    #[tokio::test]
    async fn forged_replayed_and_unpinned_policies_are_rejected_and_the_old_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (k, forger) = (key(1), key(2));
        let rec = Arc::new(RecordingEnforcer::default());
        let pub_b64 = encode_verifying_key(&k.verifying_key());
        // Nothing configured, MQTT (untrusted): nothing is pinned, policy rejected.
        let a = agent(dir.path(), "", rec.clone());
        let v1 = sign(&policy(1, PolicyMode::DryRun), &k);
        assert!(a.on_ack(&v1, &pub_b64, false, at(0)).is_none());
        assert!(a.held().is_none());
        assert_eq!(a.take_events()[0].detail, "unknown_key");
        // gRPC: trust on first use pins the offered key.
        let v1b = sign(&policy(2, PolicyMode::DryRun), &k);
        assert_eq!(a.on_ack(&v1b, &pub_b64, true, at(1)), Some(pub_b64.clone()));
        assert_eq!(a.held().unwrap().policy.version, 2);
        // The same policy again (every Ack carries it): silently ignored.
        assert!(a.on_ack(&v1b, &pub_b64, true, at(2)).is_none());
        assert!(a.take_events().is_empty());
        // Forged (another key, even offered with its own key), replayed, tampered.
        let forged = sign(&policy(9, PolicyMode::Enforce), &forger);
        a.on_ack(
            &forged,
            &encode_verifying_key(&forger.verifying_key()),
            true,
            at(3),
        );
        // An older version (v1 was seen already: a fresh one, same version).
        a.on_ack(
            &sign(&policy(1, PolicyMode::Enforce), &k),
            &pub_b64,
            true,
            at(4),
        );
        let mut tampered = v1b.clone();
        tampered.policy = policy(10, PolicyMode::Enforce).encode_to_vec();
        a.on_ack(&tampered, &pub_b64, true, at(5));
        let codes: Vec<String> = a.take_events().into_iter().map(|e| e.detail).collect();
        assert_eq!(codes, ["unknown_key", "not_newer", "bad_signature"]);
        assert_eq!(a.held().unwrap().policy.version, 2);
        // Reported once even though every Ack brings it again.
        a.on_ack(&forged, "", true, at(6));
        assert!(a.take_events().is_empty());
        // A restarted agent reloads the stored policy against the pinned key.
        let again =
            PolicyAgent::open(dir.path(), "", Some(&pub_b64), desktop(), rec, at(7)).unwrap();
        assert_eq!(again.held().unwrap().policy.version, 2);
        assert!(status_text(dir.path(), Some(&pub_b64)).contains("version 2"));
    }

    fn enforced_agent(dir: &Path, p: Policy, rec: Arc<RecordingEnforcer>) -> PolicyAgent {
        let k = key(1);
        let a = agent(dir, &encode_verifying_key(&k.verifying_key()), rec);
        a.on_ack(&sign(&p, &k), "", false, at(0));
        assert!(a.held().is_some());
        a
    }

    fn with_action(action: ShutdownAction) -> Policy {
        let mut p = policy(1, PolicyMode::Enforce);
        p.windows[0].action = action as i32;
        p
    }

    #[tokio::test]
    async fn a_hibernate_window_hibernates_through_the_enforcer() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Arc::new(RecordingEnforcer::default());
        let a = enforced_agent(
            dir.path(),
            with_action(ShutdownAction::Hibernate),
            rec.clone(),
        );
        let e = a.tick(at(0), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyWarned);
        assert!(
            matches!(&rec.recorded()[0], Enforced::Warned { message, .. } if message.contains("will hibernate")),
            "{:?}",
            rec.recorded()
        );
        let e = a.tick(at(121), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyShutdown);
        assert_eq!(e[0].detail, "v1 hibernate");
        assert_eq!(rec.recorded().last(), Some(&Enforced::Hibernated));
    }

    /// Issue 19: an action the machine cannot do is reported, never downgraded.
    #[tokio::test]
    async fn an_impossible_action_is_skipped_with_the_reason_never_downgraded() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Arc::new(RecordingEnforcer::refusing(vec![(
            ShutdownAction::Sleep,
            "logind CanSuspend = na".into(),
        )]));
        let a = enforced_agent(dir.path(), with_action(ShutdownAction::Sleep), rec.clone());
        let e = a.tick(at(0), Some(600), false).await;
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, EventKind::PolicySkipped);
        assert_eq!(
            e[0].detail,
            "action_unavailable: sleep (logind CanSuspend = na)"
        );
        // Reported once per window; nothing warned, nothing powered off, ever.
        for t in [10, 200, 400] {
            assert!(a.tick(at(t), Some(600), false).await.is_empty());
        }
        assert!(rec.recorded().is_empty());
    }

    #[derive(Default)]
    struct FakeWork(Mutex<Option<crate::never_interrupt::Busy>>);

    impl WorkProbe for FakeWork {
        fn busy(&self, names: &[String]) -> Option<crate::never_interrupt::Busy> {
            assert_eq!(names, ["backup", "rsync"]);
            self.0.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn never_interrupt_and_os_updates_hold_the_warning_and_the_shutdown() {
        use crate::never_interrupt::Busy;
        let dir = tempfile::tempdir().unwrap();
        let rec = Arc::new(RecordingEnforcer::default());
        let mut p = policy(1, PolicyMode::Enforce);
        p.never_interrupt = vec!["backup".into(), "rsync".into()];
        let work = Arc::new(FakeWork::default());
        let a = enforced_agent(dir.path(), p, rec.clone()).with_work_probe(work.clone());
        *work.0.lock().unwrap() = Some(Busy::Named("rsync".into()));
        let e = a.tick(at(0), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicySkipped);
        assert_eq!(e[0].detail, "never_interrupt: rsync is running");
        assert!(a.tick(at(10), Some(600), false).await.is_empty());
        assert!(rec.recorded().is_empty());
        // rsync done: warned; then an update starts before the deadline: held, and the
        // warning withdrawn.
        *work.0.lock().unwrap() = None;
        assert_eq!(
            a.tick(at(20), Some(600), false).await[0].kind,
            EventKind::PolicyWarned
        );
        *work.0.lock().unwrap() = Some(Busy::OsUpdate("dpkg is running".into()));
        let e = a.tick(at(200), Some(600), false).await;
        assert_eq!(e[0].detail, "os_update: dpkg is running");
        assert_eq!(read_runtime(dir.path()).warned_at_ms, None);
        // Update done: warned afresh (not shut down on the old deadline).
        *work.0.lock().unwrap() = None;
        let e = a.tick(at(300), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyWarned);
        let e = a.tick(at(421), Some(600), false).await;
        assert_eq!(e[0].kind, EventKind::PolicyShutdown);
        assert_eq!(e[0].detail, "v1 power_off");
        assert_eq!(rec.recorded().last(), Some(&Enforced::PoweredOff));
        let status = status_text(dir.path(), None);
        assert!(
            status.contains("never interrupt   backup, rsync (and OS updates)"),
            "{status}"
        );
    }

    #[tokio::test]
    async fn a_wake_up_is_armed_for_the_next_maintenance_window_and_it_is_never_shut_down() {
        use crate::wake::RecordingWakeAlarm;
        use veille_proto::v1::MaintenanceWindow;
        let dir = tempfile::tempdir().unwrap();
        let rec = Arc::new(RecordingEnforcer::default());
        let mut p = policy(1, PolicyMode::Enforce);
        // Every night 03:00–03:30 UTC, and today 15:00–15:30 (at(0) is 14:13:20 UTC).
        p.maintenance = vec![
            MaintenanceWindow {
                days: ALL_DAYS,
                week_of_month: 0,
                start: "03:00".into(),
                end: "03:30".into(),
                time_zone: "UTC".into(),
            },
            MaintenanceWindow {
                days: ALL_DAYS,
                week_of_month: 0,
                start: "15:00".into(),
                end: "15:30".into(),
                time_zone: "UTC".into(),
            },
        ];
        let wake = Arc::new(RecordingWakeAlarm::default());
        let a = enforced_agent(dir.path(), p, rec.clone()).with_wake_alarm(wake.clone());
        a.tick(at(0), Some(600), false).await;
        let e = a.tick(at(121), Some(600), false).await;
        let fifteen: Timestamp = "2026-09-21T15:00:00Z".parse().unwrap();
        assert_eq!(wake.armed(), [fifteen]);
        assert_eq!(e[0].kind, EventKind::PolicyShutdown);
        assert_eq!(e[1].kind, EventKind::PolicyWakeArmed);
        assert_eq!(
            e[1].detail,
            format!("{} maintenance[1] via recording", fifteen.as_second())
        );
        // Awake for maintenance at 15:10: not warned, not shut down.
        let e = a
            .tick(fifteen + SignedDuration::from_mins(10), Some(600), false)
            .await;
        assert_eq!(e[0].detail, "in_maintenance");
        assert_eq!(rec.recorded().len(), 2);

        // A wake alarm that fails does not stop the shutdown.
        let dir = tempfile::tempdir().unwrap();
        let failing = Arc::new(RecordingWakeAlarm::failing());
        let mut p = policy(1, PolicyMode::Enforce);
        p.maintenance = a.held().unwrap().policy.maintenance;
        let b = enforced_agent(dir.path(), p, rec.clone()).with_wake_alarm(failing);
        b.tick(at(0), Some(600), false).await;
        let e = b.tick(at(121), Some(600), false).await;
        assert_eq!(e.len(), 1);
        assert_eq!(rec.recorded().last(), Some(&Enforced::PoweredOff));
    }

    #[test]
    fn status_shows_closures_maintenance_and_never_interrupt() {
        use veille_proto::v1::{ClosureDay, MaintenanceWindow};
        let mut p = policy(1, PolicyMode::Enforce);
        assert_eq!(policy_details(&p), "");
        p.holidays = "FR".into();
        p.closure_time_zone = "Europe/Paris".into();
        p.closure_action = ShutdownAction::Sleep as i32;
        p.closure_days = ["2026-12-24", "2026-12-25", "2028-12-25"]
            .iter()
            .map(|d| ClosureDay {
                date: d.to_string(),
                name: String::new(),
                public_holiday: d.ends_with("25"),
            })
            .collect();
        p.maintenance = vec![MaintenanceWindow::default()];
        assert_eq!(
            policy_details(&p),
            "policy closures   3 days (2 public holidays, FR) from 2026-12-24 to 2028-12-25, sleep\n\
             policy maintenance 1 window(s): never shut down inside, woken up for the next\n"
        );
    }
}
