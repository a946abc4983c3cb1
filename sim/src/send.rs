//! Delivering simulated reports to a collector over the real gRPC contract
//! (`veille.v1.Telemetry/Report`, bearer token, the proto crate's client), multiplexed
//! over a few HTTP/2 channels: many simulated agents share one connection, as they
//! would share a reverse proxy's. Every batch passes `veille_proto::validate_batch`
//! before it leaves, and every Ack is checked (stored + duplicates = sent).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use veille_proto::defaults::{MAX_BATCH_BYTES, MAX_REPORTS_PER_BATCH, VERSION};
use veille_proto::v1::telemetry_client::TelemetryClient;
use veille_proto::v1::{Ack, Report, ReportBatch};

use crate::fleet::{FleetSpec, SimDevice};
use crate::reports::{Cut, reports};
use crate::timeline::Mode;

/// The agent version simulated agents announce (`<real version>-sim`, so that they
/// can be told from real agents in the registry).
pub fn sim_agent_version() -> String {
    format!("{VERSION}-sim")
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("invalid collector URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("the token contains characters not allowed in a header")]
    BadToken,
    #[error("collector refused the token: {0}")]
    Unauthenticated(String),
    #[error("collector refused a batch of device {device}: {reason}")]
    Invalid { device: String, reason: String },
    #[error("collector unreachable after retries: {0}")]
    Unavailable(String),
    #[error("simulated batch of device {device} fails validation (a simulator bug): {reason}")]
    SimBug { device: String, reason: String },
}

/// K gRPC channels to one collector.
#[derive(Clone)]
pub struct Pool {
    clients: Vec<TelemetryClient<Channel>>,
    auth: MetadataValue<Ascii>,
}

impl Pool {
    /// Lazily connecting channels (the first send dials).
    pub fn new(url: &str, token: &str, channels: usize) -> Result<Self, SendError> {
        let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| SendError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        let clients = (0..channels.max(1))
            .map(|_| {
                TelemetryClient::new(endpoint.connect_lazy())
                    .max_encoding_message_size(MAX_BATCH_BYTES)
            })
            .collect();
        let auth =
            MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| SendError::BadToken)?;
        Ok(Self { clients, auth })
    }

    /// Sends one batch on channel `lane % K`, retrying transient failures; returns the
    /// Ack and the latency of the successful call.
    pub async fn send(
        &self,
        lane: usize,
        batch: ReportBatch,
    ) -> Result<(Ack, Duration), SendError> {
        let mut client = self.clients[lane % self.clients.len()].clone();
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for _ in 0..8 {
            let mut request = tonic::Request::new(batch.clone());
            request
                .metadata_mut()
                .insert("authorization", self.auth.clone());
            let t0 = Instant::now();
            match client.report(request).await {
                Ok(r) => return Ok((r.into_inner(), t0.elapsed())),
                Err(s) => match s.code() {
                    tonic::Code::InvalidArgument => {
                        return Err(SendError::Invalid {
                            device: batch.device_id.clone(),
                            reason: s.message().to_owned(),
                        });
                    }
                    tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                        return Err(SendError::Unauthenticated(s.message().to_owned()));
                    }
                    _ => last = format!("{:?}: {}", s.code(), s.message()),
                },
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Err(SendError::Unavailable(last))
    }
}

/// What was sent and what the collector answered.
#[derive(Default)]
pub struct Stats {
    pub devices: AtomicU64,
    pub batches: AtomicU64,
    pub reports: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub conflicts: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub devices: u64,
    pub batches: u64,
    pub reports: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub ack_max_ms: f64,
}

impl Stats {
    fn record(&self, sent: usize, ack: &Ack, latency: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.reports.fetch_add(sent as u64, Ordering::Relaxed);
        self.stored
            .fetch_add(u64::from(ack.stored), Ordering::Relaxed);
        self.duplicates
            .fetch_add(u64::from(ack.duplicates), Ordering::Relaxed);
        self.conflicts
            .fetch_add(u64::from(ack.conflicts), Ordering::Relaxed);
        let us = latency.as_micros().min(u128::from(u32::MAX)) as u32;
        self.latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(us);
    }

    pub fn summary(&self) -> Summary {
        let mut l = self
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        l.sort_unstable();
        let q = |p: f64| -> f64 {
            if l.is_empty() {
                return 0.0;
            }
            let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
            f64::from(l[i]) / 1000.0
        };
        Summary {
            devices: self.devices.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            reports: self.reports.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            ack_p50_ms: q(0.50),
            ack_p99_ms: q(0.99),
            ack_max_ms: l.last().map(|v| f64::from(*v) / 1000.0).unwrap_or(0.0),
        }
    }
}

/// Sends `reports` of `dev` in batches of at most [`MAX_REPORTS_PER_BATCH`], the
/// inventory with the first one when `inventory` is set.
async fn send_device(
    pool: &Pool,
    stats: &Stats,
    dev: &SimDevice,
    reports: Vec<Report>,
    inventory: bool,
    now_ms: i64,
) -> Result<(), SendError> {
    let version = sim_agent_version();
    let mut inventory = inventory.then(|| dev.inventory(&version));
    let mut chunks: Vec<Vec<Report>> = reports
        .chunks(MAX_REPORTS_PER_BATCH)
        .map(<[Report]>::to_vec)
        .collect();
    if chunks.is_empty() && inventory.is_some() {
        chunks.push(Vec::new());
    }
    for chunk in chunks {
        let batch = ReportBatch {
            device_id: dev.device_id.clone(),
            reports: chunk,
            inventory: inventory.take(),
            agent_version: version.clone(),
        };
        veille_proto::validate_batch(&batch, now_ms).map_err(|e| SendError::SimBug {
            device: dev.device_id.clone(),
            reason: e.to_string(),
        })?;
        let n = batch.reports.len();
        let (ack, latency) = pool.send(dev.index, batch).await?;
        if !ack.rejected.is_empty() {
            return Err(SendError::Invalid {
                device: dev.device_id.clone(),
                reason: ack.rejected,
            });
        }
        stats.record(n, &ack, latency);
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// History of a fleet over `[from_ms, to_ms)`, sent as fast as the collector acks.
#[derive(Debug, Clone)]
pub struct Backfill {
    pub fleet: FleetSpec,
    pub tz: TimeZone,
    pub from_ms: i64,
    pub to_ms: i64,
    pub cut: Cut,
    /// Devices in flight at once.
    pub concurrency: usize,
}

/// Sends the history; `progress(devices done, reports sent)` is called after each device.
pub async fn backfill(
    pool: &Pool,
    plan: &Backfill,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<Summary, SendError> {
    let stats = Arc::new(Stats::default());
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(progress);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let (pool, plan, stats, next, progress) = (
            pool.clone(),
            plan.clone(),
            stats.clone(),
            next.clone(),
            progress.clone(),
        );
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.fleet.devices {
                    return Ok::<(), SendError>(());
                }
                let dev = plan.fleet.device(i);
                let rs = reports(
                    &dev,
                    &plan.tz,
                    plan.from_ms,
                    plan.to_ms,
                    Mode::Realistic,
                    plan.cut,
                );
                send_device(&pool, &stats, &dev, rs, true, now_ms()).await?;
                let done = stats.devices.fetch_add(1, Ordering::Relaxed) + 1;
                progress(done, stats.reports.load(Ordering::Relaxed));
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                workers.abort_all();
                return Err(e);
            }
            Err(e) => return Err(SendError::Unavailable(format!("a sender task failed: {e}"))),
        }
    }
    Ok(stats.summary())
}

/// A fleet reporting in real time from `start_ms` for `duration` (or until `stop`).
#[derive(Debug, Clone)]
pub struct Realtime {
    pub fleet: FleetSpec,
    pub tz: TimeZone,
    pub mode: Mode,
    pub cut: Cut,
    pub duration: Option<Duration>,
    /// Sends in flight at once.
    pub concurrency: usize,
}

/// Runs the real-time fleet: each device sends, on its own grid, the reports that
/// ended since its previous send. Returns when the duration is over (or `stop`
/// resolves) and every send in flight has been answered.
pub async fn realtime(
    pool: &Pool,
    plan: &Realtime,
    stats: Arc<Stats>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Summary, SendError> {
    let start = now_ms();
    let end = plan.duration.map(|d| start + d.as_millis() as i64);
    let interval = plan.cut.interval_s.max(1) * 1000;
    // Devices by their phase on the grid, each with the start of its next window.
    let mut devices: Vec<(i64, SimDevice)> = plan
        .fleet
        .iter()
        .map(|d| (plan.cut.phase_ms(&d), d))
        .collect();
    devices.sort_by_key(|(p, _)| *p);
    // The first send covers the interval before it: the agents were already running.
    let mut window_from = vec![start - interval; devices.len()];
    let mut inventory_sent = vec![false; devices.len()];
    let limit = Arc::new(tokio::sync::Semaphore::new(plan.concurrency.max(1)));
    let failures: Arc<Mutex<Option<SendError>>> = Arc::new(Mutex::new(None));
    let mut tasks = tokio::task::JoinSet::new();
    let round_base = start - start.rem_euclid(interval);
    tokio::pin!(stop);
    let mut round = 0i64;
    'rounds: loop {
        for (k, (phase, dev)) in devices.iter().enumerate() {
            let due = round_base + round * interval + phase;
            if due <= start {
                continue;
            }
            if end.is_some_and(|e| due > e) {
                break 'rounds;
            }
            let wait = due - now_ms();
            if wait > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                    _ = &mut stop => break 'rounds,
                }
            }
            if let Some(e) = failures.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(e);
            }
            let rs = reports(dev, &plan.tz, window_from[k], due, plan.mode, plan.cut);
            window_from[k] = due;
            if rs.is_empty() {
                continue;
            }
            let first = !inventory_sent[k];
            inventory_sent[k] = true;
            if first {
                stats.devices.fetch_add(1, Ordering::Relaxed);
            }
            // Nothing ever calls `close` on this semaphore, so acquiring cannot fail.
            let permit = limit.clone().acquire_owned().await.expect("semaphore open");
            let (pool, stats, dev, failures) =
                (pool.clone(), stats.clone(), dev.clone(), failures.clone());
            tasks.spawn(async move {
                if let Err(e) = send_device(&pool, &stats, &dev, rs, first, now_ms()).await {
                    *failures.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                }
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        round += 1;
    }
    while tasks.join_next().await.is_some() {}
    if let Some(e) = failures.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    Ok(stats.summary())
}
