//! The agent's two loops, wired together.
//!
//! The sampling loop reads the probes every `sample_interval_s`, feeds the
//! [`Builder`], and every `report_interval_s` cuts a report and writes it to the
//! [`Spool`] (fsync'd) before anything is sent. The sending loop drains the spool oldest
//! first in batches and removes reports only once the collector's Ack covers their seq.
//! The two loops share the spool and the state behind mutexes; neither waits on the
//! network while holding them.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info, warn};
use veille_proto::defaults::VERSION;
use veille_proto::policy::DeviceFacts;
use veille_proto::v1::{ChassisClass, EventKind, Inventory, Report, ReportBatch};

use crate::backoff::Backoff;
use crate::builder::{BootSession, Builder, Reanchor};
use crate::config::AgentConfig;
use crate::inventory_watch::{InventoryWatch, REPROBE_INTERVAL};
use crate::measure::Measurements;
use crate::policy::PolicyAgent;
use crate::probes::{self, Activity, ActivityProbe, Clocks, Host, Logind};
use crate::sampler::{Reading, sample};
use crate::spool::{Spool, SpoolError, SpoolLimits};
use crate::state::{AgentState, StateError, StateStore, next_seq};
use crate::transport::mqtt::{MqttSettings, MqttTransport};
use crate::transport::{GrpcTransport, SendError, Transport};

/// Reports kept in memory while the spool cannot be written (a full disk), oldest
/// dropped first beyond this (and counted as SPOOL_DROPPED).
const MAX_PENDING_IN_MEMORY: usize = 10_000;

/// How long a stopping agent keeps trying to deliver its last reports.
const FINAL_SEND_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot identify this device: {0}")]
    Identity(probes::ProbeError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Transport(#[from] SendError),
    #[error(transparent)]
    Policy(crate::policy::PolicyAgentError),
}

/// Facts about this device that do not change while the agent runs.
#[derive(Debug, Clone)]
pub struct Identity {
    pub device_id: String,
    pub session: BootSession,
}

impl Identity {
    /// Probes the identity; `device_id_override` (from the config) wins when not empty.
    pub fn probe(host: &Host, device_id_override: &str) -> Result<Self, RunError> {
        let device_id = if device_id_override.is_empty() {
            probes::device_id(host).map_err(RunError::Identity)?.id
        } else {
            device_id_override.to_owned()
        };
        let boot_id = probes::boot_id(host).map_err(RunError::Identity)?;
        let boot_time_unix_s = probes::boot_time_unix_s(host).map_err(RunError::Identity)?;
        Ok(Self {
            device_id,
            session: BootSession {
                boot_id,
                boot_time_unix_s,
            },
        })
    }
}

/// Where user activity comes from: logind when the system bus has it, else nothing
/// (the CPU-busy rule then decides).
///
/// # Platform-specific behaviour
/// Windows: the console session through the WTS API
/// ([`crate::probes::console_session`] says what a service can see from there).
pub enum ActivitySource {
    Logind(Logind),
    #[cfg(windows)]
    Console(crate::probes::console_activity::ConsoleActivity),
    None,
}

impl ActivitySource {
    pub async fn detect() -> Self {
        #[cfg(windows)]
        {
            info!("user activity from the console session (WTS)");
            Self::Console(Default::default())
        }
        #[cfg(not(windows))]
        {
            match Logind::connect().await {
                Some(l) => {
                    info!("user activity from logind (IdleHint/IdleSinceHint)");
                    Self::Logind(l)
                }
                None => {
                    info!("no logind on a system bus: active vs idle from CPU utilisation");
                    Self::None
                }
            }
        }
    }

    /// Seconds since the last user input, for the policy (`None`: no session info).
    async fn idle_s(&self) -> Option<u64> {
        match self {
            Self::Logind(l) => tokio::time::timeout(Duration::from_secs(2), l.idle_s())
                .await
                .ok()
                .flatten(),
            #[cfg(windows)]
            Self::Console(c) => c.idle_s(),
            Self::None => None,
        }
    }

    async fn activity(&self, idle_threshold_s: u64) -> Activity {
        match self {
            Self::Logind(l) => {
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    l.user_activity(idle_threshold_s),
                )
                .await
                {
                    Ok(a) => a,
                    Err(_) => Activity::NoSessionInfo,
                }
            }
            #[cfg(windows)]
            Self::Console(c) => c.user_activity(idle_threshold_s).await,
            Self::None => Activity::NoSessionInfo,
        }
    }
}

/// This device's inventory as the collector sees it: the hardware probes plus the
/// agent's version and the site and tags from its config. Fields a probe could not
/// read stay empty; what was missing is logged once at debug level.
pub fn basic_inventory(host: &Host, config: &AgentConfig) -> Inventory {
    let report = probes::probe_inventory(host);
    if !report.unavailable.is_empty() {
        debug!(unavailable = ?report.unavailable, "inventory incomplete");
    }
    Inventory {
        agent_version: VERSION.to_owned(),
        site: config.site.clone(),
        tags: config.tags.clone(),
        ..report.inventory
    }
}

struct Shared {
    spool: Mutex<Spool>,
    state: Mutex<(StateStore, AgentState)>,
    /// Wakes the sender when a report was spooled (or an inventory is pending).
    spooled: Notify,
    /// A changed inventory the sampling loop found, for the sender to take
    /// ([`crate::inventory_watch`]).
    inventory: Mutex<Option<Inventory>>,
    /// The auto-shutdown policy held and enforced ([`crate::policy`]).
    policy: Arc<PolicyAgent>,
    /// Wake-on-LAN packets sent for the collector ([`crate::wol_relay`]).
    wol: crate::wol_relay::WolRelay,
}

impl Shared {
    fn spool(&self) -> MutexGuard<'_, Spool> {
        // A poisoned lock means a panic elsewhere already; the data itself (an index
        // of files) stays consistent, so keep going.
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn state(&self) -> MutexGuard<'_, (StateStore, AgentState)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_now(host: &Host, clocks: &dyn Clocks, activity: Activity) -> Reading {
    Reading {
        boottime_ms: clocks.boottime_ms(),
        monotonic_ms: clocks.monotonic_ms(),
        cpu: probes::cpu_times(host).ok(),
        activity,
    }
}

fn uptime_s(host: &Host, clocks: &dyn Clocks) -> u64 {
    probes::uptime_s(host)
        .map(|u| u as u64)
        .unwrap_or_else(|_| clocks.boottime_ms() / 1000)
}

/// Runs the agent until `shutdown` resolves, then writes a last report (with an
/// AGENT_STOP event, and SHUTDOWN when the system itself is stopping) and tries to
/// deliver it briefly.
pub async fn run(
    config: AgentConfig,
    host: Host,
    clocks: Arc<dyn Clocks>,
    activity_source: ActivitySource,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let identity = Identity::probe(&host, &config.device_id)?;
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir).map_err(|source| RunError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    let limits = SpoolLimits {
        max_bytes: config.spool.max_bytes,
        max_age: Duration::from_secs(config.spool.max_age_days.saturating_mul(86_400)),
    };
    let spool = Spool::open(&state_dir.join("spool"), limits)?;
    let (mut store, mut state) = StateStore::open(&state_dir)?;
    state.dropped_unreported += spool.quarantined_on_open();
    // A run killed after spooling a report but before saving its state leaves
    // `last_seq` below the spool's highest seq. Take it up now, durably, before the
    // sender can deliver and remove that report: afterwards nothing would remember the
    // seq and the next report would reuse it (a conflict at the collector). Found by
    // the crash trials (`tests/src/bin/veille-crash-trials.rs`).
    if let Some(max) = spool.max_seq()
        && max > state.last_seq
    {
        state.last_seq = max;
        store.save(&state)?;
    }
    // Payloads of the org's retained policy topic (MQTT only), for the policy holder.
    let (policy_tx, mut policy_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let transport = match config.transport() {
        "mqtt" => Chosen::Mqtt(MqttTransport::start(MqttSettings {
            url: config.collector_url(),
            version: config.mqtt.version,
            org: config.org.clone(),
            token: config.token.clone(),
            device_id: identity.device_id.clone(),
            keep_alive: Duration::from_secs(config.mqtt.keep_alive_s),
            ack_timeout: Duration::from_secs(config.mqtt.ack_timeout_s),
            policy_tx: Some(policy_tx),
            tls: config.tls(),
        })?),
        _ => Chosen::Grpc(GrpcTransport::with_tls(
            &config.collector_url(),
            &config.token,
            &config.tls(),
        )?),
    };
    info!(
        device_id = %identity.device_id,
        boot_id = %identity.session.boot_id,
        collector = %config.collector_url(),
        transport = %config.transport(),
        state_dir = %state_dir.display(),
        spooled = spool.stats().count,
        "agent started"
    );

    let start_ms = clocks.wall_unix_ms();
    let mut builder = Builder::new(identity.session.clone(), start_ms);
    builder.push_event(EventKind::AgentStart, start_ms, 1, VERSION);
    if state.last_boot_id.as_deref() != Some(identity.session.boot_id.as_str()) {
        builder.push_event(
            EventKind::Boot,
            identity.session.boot_time_unix_s.saturating_mul(1000),
            1,
            "",
        );
        state.last_boot_id = Some(identity.session.boot_id.clone());
    }
    let enforcer = crate::enforcer::from_command(&config.enforcer.command, &state_dir);
    // Warnings go to the desktop notifiers first, unless a configured command stands in
    // for the platform. `_notify_serving` stops serving (and removes the socket) when
    // `run` returns.
    #[cfg(unix)]
    let (enforcer, _notify_serving) = match config
        .enforcer
        .command
        .trim()
        .is_empty()
        .then(crate::notify::socket_path)
        .flatten()
        .and_then(|socket| crate::notify::start(&socket, &state_dir))
    {
        Some((hub, serving)) => (
            Arc::new(crate::notify::DesktopEnforcer::new(hub, enforcer))
                as Arc<dyn crate::enforcer::Enforcer>,
            Some(serving),
        ),
        None => (enforcer, None),
    };
    let policy = Arc::new(
        PolicyAgent::open(
            &state_dir,
            &config.policy_public_key,
            state.pinned_policy_key.as_deref(),
            policy_facts(&basic_inventory(&host, &config), &config),
            enforcer,
            policy_now(clocks.as_ref()),
        )
        .map_err(RunError::Policy)?
        .with_wake_alarm(wake_alarm(&config.enforcer.command))
        .with_work_probe(work_probe()),
    );
    let shared = Arc::new(Shared {
        policy,
        spool: Mutex::new(spool),
        state: Mutex::new((store, state)),
        spooled: Notify::new(),
        inventory: Mutex::new(None),
        wol: crate::wol_relay::WolRelay::new(config.wol_port),
    });
    {
        let mut guard = shared.state();
        let (store, state) = &mut *guard;
        store.save(state)?;
    }
    {
        // Ends when the MQTT transport (the channel's sender) is gone.
        let policy = shared.policy.clone();
        tokio::spawn(async move {
            while let Some(payload) = policy_rx.recv().await {
                policy.on_broker_message(&payload, jiff::Timestamp::now());
            }
        });
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let first_inventory = basic_inventory(&host, &config);
    let mut inventory_watch = InventoryWatch::new(&first_inventory);
    let mut inventory_probed = tokio::time::Instant::now();
    let sender = {
        let (shared, device_id, inventory, config) = (
            shared.clone(),
            identity.device_id.clone(),
            Some(first_inventory),
            config.clone(),
        );
        match transport {
            Chosen::Grpc(t) => {
                tokio::spawn(send_loop(shared, t, device_id, inventory, config, stop_rx))
            }
            Chosen::Mqtt(t) => {
                tokio::spawn(send_loop(shared, t, device_id, inventory, config, stop_rx))
            }
        }
    };

    let mut pending: VecDeque<Report> = VecDeque::new();
    let mut measurements = Measurements::discover(&host);
    let mut prev = read_now(&host, clocks.as_ref(), Activity::NoSessionInfo);
    let mut ticker = tokio::time::interval(config.sample_interval());
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;
    tokio::pin!(shutdown);
    let report_ms = config.report_interval_s * 1000;
    let mut started = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut shutdown => break,
        }
        if !started {
            // The first tick: configuration, probes, TLS and the first send are done.
            started = true;
            release_startup_pages();
        }
        let activity = activity_source.activity(config.idle_threshold_s).await;
        let now = read_now(&host, clocks.as_ref(), activity);
        let s = sample(&prev, &now, config.cpu_busy_threshold);
        prev = now;
        builder.add(&s);
        measurements.tick(&s);
        if shared.policy.held().is_some() || shared.policy.has_events() {
            let idle_s = activity_source.idle_s().await;
            let busy = s.cpu_total_ticks > 0
                && s.cpu_busy_ticks as f64 / s.cpu_total_ticks as f64 > config.cpu_busy_threshold;
            let now = policy_now(clocks.as_ref());
            for e in shared.policy.tick(now, idle_s, busy).await {
                builder.push_event(e.kind, e.at_ms, 1, &e.detail);
            }
        }
        if s.sleep_ms > 0 {
            let resumed = builder.projected_end_unix_ms();
            let slept = resumed - i64::try_from(s.sleep_ms).unwrap_or(0);
            builder.push_event(EventKind::Sleep, slept, 1, "");
            builder.push_event(EventKind::Resume, resumed, 1, "");
            info!(sleep_s = s.sleep_ms / 1000, "resumed from sleep");
        }
        if inventory_probed.elapsed() >= REPROBE_INTERVAL {
            inventory_probed = tokio::time::Instant::now();
            if let Some(changed) = inventory_watch.observe(basic_inventory(&host, &config)) {
                info!("inventory changed; sending it again");
                *shared.inventory.lock().unwrap_or_else(|e| e.into_inner()) = Some(changed);
                shared.spooled.notify_one();
            }
        }
        if builder.accumulated_ms() >= report_ms {
            let measured = measurements.take_for_report();
            cut_and_spool(
                &shared,
                &mut builder,
                measured,
                measurements.temperatures(),
                &mut pending,
                &host,
                clocks.as_ref(),
            );
        }
        unmap_code_pages();
    }

    // Last report: the time since the last cut, marked with why the agent stopped.
    let now = read_now(&host, clocks.as_ref(), prev.activity);
    let last = sample(&prev, &now, config.cpu_busy_threshold);
    builder.add(&last);
    measurements.tick(&last);
    let at = builder.projected_end_unix_ms();
    builder.push_event(EventKind::AgentStop, at, 1, "");
    if system_is_stopping().await {
        builder.push_event(EventKind::Shutdown, at, 1, "");
        info!("system is shutting down");
    }
    let measured = measurements.take_for_report();
    cut_and_spool(
        &shared,
        &mut builder,
        measured,
        measurements.temperatures(),
        &mut pending,
        &host,
        clocks.as_ref(),
    );
    for report in &pending {
        error!(
            seq = report.seq,
            "report lost: the spool could not be written"
        );
    }
    shared.spooled.notify_one();
    tokio::time::sleep(FINAL_SEND_GRACE).await;
    let _ = stop_tx.send(true);
    let _ = sender.await;
    let guard = shared.state();
    info!(
        last_seq = guard.1.last_seq,
        last_acked_seq = guard.1.last_acked_seq,
        spooled = shared.spool().stats().count,
        "agent stopped"
    );
    Ok(())
}

/// Start-up's code pages back to the kernel (see [`crate::resident`]); a failure
/// only means they stay resident.
#[cfg(target_os = "linux")]
fn release_startup_pages() {
    match crate::resident::release_startup_pages() {
        Ok(bytes) => debug!(kib = bytes / 1024, "start-up pages released"),
        Err(e) => debug!(error = %e, "start-up pages kept"),
    }
}

#[cfg(not(target_os = "linux"))]
fn release_startup_pages() {}

/// The code the last tick or send ran, unmapped until it runs again (see
/// [`crate::resident::unmap_clean_code_pages`]): between ticks the agent's RSS is its
/// data and little more. A failure only means the pages stay mapped.
#[cfg(target_os = "linux")]
fn unmap_code_pages() {
    if let Err(e) = crate::resident::unmap_clean_code_pages() {
        debug!(error = %e, "code pages kept mapped");
    }
}

#[cfg(not(target_os = "linux"))]
fn unmap_code_pages() {}

/// Cuts the current report and writes it (and any report a full disk held back) to the
/// spool. A report that cannot be written stays in memory and is retried at the next
/// cut: it is never sent before it is on disk.
fn cut_and_spool(
    shared: &Shared,
    builder: &mut Builder,
    measurements: Vec<veille_proto::v1::Measurement>,
    temperatures: Vec<veille_proto::v1::Temperature>,
    pending: &mut VecDeque<Report>,
    host: &Host,
    clocks: &dyn Clocks,
) {
    let wall = clocks.wall_unix_ms();
    let mut guard = shared.state();
    let (store, state) = &mut *guard;
    let mut spool = shared.spool();
    let dropped = state.dropped_unreported;
    if dropped > 0 {
        builder.push_event(
            EventKind::SpoolDropped,
            wall,
            dropped,
            "spool bound reached",
        );
    }
    let seq =
        next_seq(state, spool.max_seq(), wall).max(pending.back().map(|r| r.seq + 1).unwrap_or(0));
    let Some(mut report) = builder.cut(seq, uptime_s(host, clocks)) else {
        return;
    };
    report.measurements = measurements;
    report.temperatures = temperatures;
    if dropped > 0 {
        state.dropped_unreported = 0;
    }
    if let Err(e) = veille_proto::validate::validate_report("report", &report, wall) {
        warn!(seq, error = %e, "this report breaks the contract; the collector will refuse it");
    }
    state.last_seq = seq;
    pending.push_back(report);
    while let Some(report) = pending.front() {
        match spool.push(report, wall) {
            Ok(n) => {
                if n > 0 {
                    warn!(dropped = n, "spool full: dropped the oldest reports");
                }
                state.dropped_unreported += n;
                pending.pop_front();
            }
            Err(e) => {
                error!(error = %e, held_in_memory = pending.len(), "cannot write the spool; will retry");
                break;
            }
        }
    }
    while pending.len() > MAX_PENDING_IN_MEMORY {
        pending.pop_front();
        state.dropped_unreported += 1;
    }
    if let Err(e) = store.save(state) {
        error!(error = %e, "cannot save the agent state");
    }
    drop(spool);
    drop(guard);
    match builder.reanchor(clocks.wall_unix_ms()) {
        Reanchor::Kept => {}
        Reanchor::MovedForward { hole_ms } => {
            warn!(
                hole_ms,
                "wall clock jumped forward: the skipped time is left unreported"
            )
        }
        Reanchor::WallBehind { by_ms } => warn!(
            by_ms,
            "wall clock is behind the reports' time base (clock stepped back); keeping the base"
        ),
    }
    shared.spooled.notify_one();
}

/// The transport picked by the config; the send loop is generic over [`Transport`].
enum Chosen {
    Grpc(GrpcTransport),
    Mqtt(MqttTransport),
}

/// Drains the spool through `transport`, one batch at a time, removing reports only
/// once an Ack covers them. The same loop for every transport.
async fn send_loop<T: Transport>(
    shared: Arc<Shared>,
    mut transport: T,
    device_id: String,
    mut inventory: Option<Inventory>,
    config: AgentConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(
        Duration::from_millis(config.backoff.initial_ms),
        Duration::from_millis(config.backoff.max_ms),
    );
    // After a refused batch, reports up to this seq are sent one at a time to find
    // the culprit.
    let mut isolate_until: Option<u64> = None;
    let mut failures = 0u32;
    let mut warned_tls = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let max = if isolate_until.is_some() {
            1
        } else {
            config.batch_max_reports
        };
        let peeked = shared.spool().peek(max);
        let reports = match peeked {
            Ok(r) => r,
            Err(SpoolError::Corrupt { seq, .. }) => {
                // A file damaged on disk must not block the queue: set it aside and
                // report the loss.
                error!(
                    seq,
                    "spooled report is corrupt; moved to the spool's corrupt/ folder"
                );
                let moved = shared.spool().quarantine(seq);
                if let Err(e) = moved {
                    error!(error = %e, "cannot move the corrupt report aside");
                }
                shared.state().1.dropped_unreported += 1;
                continue;
            }
            Err(e) => {
                error!(error = %e, "cannot read the spool");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        if let Some(changed) = shared
            .inventory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            inventory = Some(changed);
        }
        if reports.is_empty() && inventory.is_none() {
            // Everything spooled is sent: the send's code goes out of RSS until the
            // next report (see `unmap_code_pages`).
            unmap_code_pages();
            tokio::select! {
                _ = shared.spooled.notified() => continue,
                _ = stop.changed() => return,
            }
        }
        if let (Some(limit), Some(first)) = (isolate_until, reports.first())
            && first.seq > limit
        {
            isolate_until = None;
        }
        let first_seq = reports.first().map(|r| r.seq);
        let last_seq = reports.last().map(|r| r.seq);
        let batch = ReportBatch {
            device_id: device_id.clone(),
            reports,
            inventory: inventory.clone(),
            agent_version: VERSION.to_owned(),
        };
        let count = batch.reports.len();
        let delay = match transport.send(batch).await {
            Ok(ack) => {
                if failures > 0 {
                    info!(after_failures = failures, "collector reachable again");
                }
                failures = 0;
                backoff.reset();
                inventory = None;
                let removed = match shared.spool().ack(ack.highest_durable_seq) {
                    Ok(n) => n,
                    Err(e) => {
                        error!(error = %e, "cannot remove acknowledged reports");
                        0
                    }
                };
                debug!(
                    sent = count,
                    removed,
                    highest_durable_seq = ack.highest_durable_seq,
                    duplicates = ack.duplicates,
                    "batch acknowledged"
                );
                if ack.conflicts > 0 {
                    warn!(
                        conflicts = ack.conflicts,
                        "the collector already holds different reports with these seqs \
                         (another machine with the same device id?)"
                    );
                }
                let mut guard = shared.state();
                let (store, state) = &mut *guard;
                state.last_acked_seq = state.last_acked_seq.max(ack.highest_durable_seq);
                state.last_ack_unix_ms = Some(now_unix_ms());
                if let Some(signed) = &ack.policy
                    && let Some(pinned) = shared.policy.on_ack(
                        signed,
                        &ack.policy_key,
                        transport.trusted_for_key_pinning(),
                        jiff::Timestamp::now(),
                    )
                {
                    state.pinned_policy_key = Some(pinned);
                }
                if !ack.wake.is_empty() {
                    let pinned = shared.policy.pinned_key();
                    let sent =
                        shared
                            .wol
                            .on_ack(&ack.wake, pinned.as_ref(), &device_id, now_unix_ms());
                    shared.policy.push_events(sent);
                }
                if let Err(e) = store.save(state) {
                    error!(error = %e, "cannot save the agent state");
                }
                None
            }
            Err(SendError::Invalid(msg)) => {
                match (count, first_seq, last_seq) {
                    (0, _, _) => {
                        error!(error = %msg, "collector refused our inventory; not sending it again");
                        inventory = None;
                    }
                    (1, Some(seq), _) => {
                        error!(seq, error = %msg, "collector refused a report; moved aside in the spool's rejected/ folder");
                        if let Err(e) = shared.spool().reject(seq, &msg) {
                            error!(error = %e, "cannot move the refused report aside");
                        }
                    }
                    (_, _, Some(last)) => {
                        warn!(error = %msg, "collector refused a batch; resending one report at a time to find the bad one");
                        isolate_until = Some(last);
                    }
                    _ => {}
                }
                None
            }
            Err(e) => {
                failures += 1;
                // A TLS diagnosis is worth a warning even when it is not the first
                // failure (with TLS 1.3 a refused client certificate may first show as a
                // broken pipe); once is enough.
                let tls_hint = e
                    .to_string()
                    .contains("TLS handshake with collector failed");
                if failures == 1 || (tls_hint && !warned_tls) {
                    warned_tls |= tls_hint;
                    warn!(error = %e, "cannot deliver reports; they stay in the spool");
                } else {
                    debug!(error = %e, failures, "still cannot deliver reports");
                }
                Some(backoff.next_delay(rand::random::<f64>()))
            }
        };
        if let Some(delay) = delay {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// The device facts a policy is evaluated on: chassis and hostname from the inventory,
/// tags and `allow_shutdown` from the config.
fn policy_facts(inventory: &Inventory, config: &AgentConfig) -> DeviceFacts {
    DeviceFacts {
        chassis: ChassisClass::try_from(inventory.chassis).unwrap_or(ChassisClass::Unknown),
        tags: config.tags.clone(),
        hostname: inventory.hostname.clone(),
        allow_shutdown: config.allow_shutdown,
    }
}

fn policy_now(clocks: &dyn Clocks) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(clocks.wall_unix_ms()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether the whole system is going down (as opposed to the agent being restarted).
///
/// # Platform-specific behaviour
/// Asks systemd (`systemctl is-system-running` prints `stopping`); without systemd the
/// answer is no, and the stop is recorded as AGENT_STOP only. Windows: whether the
/// service manager sent Shutdown rather than Stop.
async fn system_is_stopping() -> bool {
    #[cfg(windows)]
    if crate::windows::service::system_is_stopping() {
        return true;
    }
    let out = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::process::Command::new("systemctl")
            .arg("is-system-running")
            .output(),
    )
    .await;
    matches!(out, Ok(Ok(o)) if String::from_utf8_lossy(&o.stdout).trim() == "stopping")
}

/// Samples for `duration` and returns one report of that interval (for `once`), with
/// the measurements and temperatures the run loop would give it.
pub async fn once(
    config: &AgentConfig,
    host: &Host,
    clocks: &dyn Clocks,
    activity_source: &ActivitySource,
    duration: Duration,
) -> Result<ReportBatch, RunError> {
    let identity = Identity::probe(host, &config.device_id)?;
    let mut measurements = Measurements::discover(host);
    let prev = read_now(host, clocks, Activity::NoSessionInfo);
    let mut builder = Builder::new(identity.session, clocks.wall_unix_ms());
    tokio::time::sleep(duration).await;
    let activity = activity_source.activity(config.idle_threshold_s).await;
    let now = read_now(host, clocks, activity);
    let s = sample(&prev, &now, config.cpu_busy_threshold);
    builder.add(&s);
    // One tick: RAPL and a server's power meter show; battery power, integrated
    // between two samples, needs a second one and stays out.
    measurements.tick(&s);
    let report = builder.cut(1, uptime_s(host, clocks)).map(|mut report| {
        report.measurements = measurements.take_for_report();
        report.temperatures = measurements.temperatures();
        report
    });
    Ok(ReportBatch {
        device_id: identity.device_id,
        reports: report.into_iter().collect(),
        inventory: Some(basic_inventory(host, config)),
        agent_version: VERSION.to_owned(),
    })
}

/// The wake alarm for maintenance windows: the RTC on Linux, the service's waitable
/// timer on Windows, unless a configured `[enforcer] command` stands in for the
/// platform (a site's script, or the end-to-end tests' recorder: the test machine's own
/// RTC is never armed).
fn wake_alarm(enforcer_command: &str) -> Arc<dyn crate::wake::WakeAlarm> {
    if !enforcer_command.trim().is_empty() {
        return Arc::new(crate::wake::NoWakeAlarm);
    }
    #[cfg(target_os = "linux")]
    let alarm: Arc<dyn crate::wake::WakeAlarm> =
        Arc::new(crate::wake::RtcWakeAlarm::new(std::path::Path::new("/")));
    #[cfg(windows)]
    let alarm: Arc<dyn crate::wake::WakeAlarm> =
        match crate::windows::wake::WaitableTimerWakeAlarm::new() {
            Ok(timer) => Arc::new(timer),
            Err(e) => {
                tracing::warn!(error = %e, "no wake timer: maintenance wake-ups are not armed");
                Arc::new(crate::wake::NoWakeAlarm)
            }
        };
    #[cfg(not(any(target_os = "linux", windows)))]
    let alarm: Arc<dyn crate::wake::WakeAlarm> = Arc::new(crate::wake::NoWakeAlarm);
    alarm
}

/// Work not to interrupt: processes and dpkg locks of this machine (Linux).
fn work_probe() -> Arc<dyn crate::never_interrupt::WorkProbe> {
    #[cfg(target_os = "linux")]
    return Arc::new(crate::never_interrupt::ProcWorkProbe::new(
        std::path::Path::new("/"),
    ));
    #[cfg(not(target_os = "linux"))]
    Arc::new(crate::never_interrupt::NoWorkProbe)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::probes::FakeClocks;

    fn write(root: &std::path::Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Issue 18: `veille-agent once --format json` shows a server's measured energy
    /// and its source, as the run loop sends it.
    #[tokio::test]
    async fn once_carries_the_power_meters_energy_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "proc/sys/kernel/random/boot_id",
            "0f7c5a4e-3b1d-4c2a-9e8f-1a2b3c4d5e6f\n",
        );
        write(
            root,
            "proc/stat",
            "cpu  100 0 50 1000 0 0 0 0\nbtime 1699996400\n",
        );
        write(root, "proc/uptime", "3600.00 7000.00\n");
        write(root, "sys/class/hwmon/hwmon0/name", "power_meter\n");
        write(root, "sys/class/hwmon/hwmon0/power1_average", "250000000\n");
        let mut flags = toml::Table::new();
        flags.insert("device_id".into(), "server-1".into());
        let (config, _) = AgentConfig::load(None, Vec::new(), flags).unwrap();
        let clocks = FakeClocks::new(1_700_000_000_000, 3_600_000, 3_600_000);
        let host = Host::at(root);
        let (batch, ()) = tokio::join!(
            once(
                &config,
                &host,
                &clocks,
                &ActivitySource::None,
                Duration::from_millis(10)
            ),
            // Runs while `once` waits: the sampled interval is these 10 s.
            async { clocks.advance_awake(10_000) }
        );
        let batch = batch.unwrap();
        let json = serde_json::to_value(&batch).unwrap();
        assert_eq!(
            json["reports"][0]["measurements"],
            serde_json::json!([{"energy_j": 2500.0, "source": "ACPI_POWER_METER"}]),
            "250 W for 10 s"
        );
    }
}
