//! MQTT benchmark, three runs with the same payloads and publishers:
//! 1. reports/s through the embedded broker (rumqttd) into durable storage;
//! 2. reports/s through a private Mosquitto into durable storage (external mode);
//! 3. Mosquitto's own pass-through rate: publisher → Mosquitto → a subscriber that only
//!    counts (the ceiling a collector behind Mosquitto could reach);
//!
//! printed side by side with ratios. A run ends when the last report is durable (runs
//! 1–2: the collector's `reports_stored` counter, which moves only after the group
//! commit's flush) or counted (run 3). Needs the Debian package `mosquitto`.
//!
//! ```text
//! cargo run --release -p veille-collector --bin veille-bench-mqtt -- --clients 20 --batches 1000
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use prost::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use veille_collector::clock::now_ms;
use veille_collector::config::OrgConfig;
use veille_collector::metrics::IngestMetrics;
use veille_collector::{Config, Listeners, Server};
use veille_proto::topics;
use veille_proto::v1::{Report, ReportBatch};

const TOKEN: &str = "bench-token-0123456789abcdef";
const ORG: &str = "bench";

/// Measures MQTT ingest throughput (embedded broker, Mosquitto) against Mosquitto alone.
#[derive(Debug, Parser)]
#[command(name = "veille-bench-mqtt")]
struct Args {
    /// Publishing MQTT connections, one device each.
    #[arg(long, default_value_t = 20)]
    clients: u64,
    /// Batches each client publishes (QoS 1, as fast as the broker acks them).
    #[arg(long, default_value_t = 1000)]
    batches: u64,
    /// Reports per batch (an agent in steady state sends 1).
    #[arg(long, default_value_t = 1)]
    batch_size: u64,
    /// Parent directory for the scratch stores (removed afterwards).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VEILLE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=error")),
        )
        .init();
    if args.clients == 0 || args.batches == 0 || args.batch_size == 0 {
        bail!("--clients, --batches and --batch-size must be at least 1");
    }
    let work = args
        .dir
        .join(format!("veille-bench-mqtt-{}", std::process::id()));
    std::fs::create_dir_all(&work).context("creating the scratch directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&args, &work));
    drop(runtime);
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run(args: &Args, work: &Path) -> anyhow::Result<()> {
    let total = args.clients * args.batches * args.batch_size;
    let payloads = Arc::new(make_payloads(args));
    println!(
        "{} clients x {} batches x {} reports = {total} reports, payload {} bytes per batch",
        args.clients,
        args.batches,
        args.batch_size,
        payloads[0][0].len()
    );

    // 1. Embedded broker → collector → durable.
    let config = collector_config(work, "embedded", None);
    let server = Server::start(&config, Listeners::loopback_ephemeral().await?).await?;
    let (v4, _) = server.mqtt_addrs().context("embedded broker not running")?;
    let metrics = server.metrics();
    let embedded = timed(total, &payloads, v4.port(), Some((ORG, TOKEN)), || {
        stored(&metrics)
    })
    .await?;
    server.shutdown().await?;

    // 2. Mosquitto → collector (external mode) → durable.
    let mosquitto = Mosquitto::start(work)?;
    let config = collector_config(work, "external", Some(mosquitto.port));
    let server = Server::start(&config, Listeners::loopback_ephemeral().await?).await?;
    let metrics = server.metrics();
    // Let the collector connect and subscribe before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let external = timed(total, &payloads, mosquitto.port, None, || stored(&metrics)).await?;
    server.shutdown().await?;

    // 3. Mosquitto alone: a subscriber that only counts reports.
    let counted = Arc::new(AtomicU64::new(0));
    let counter = tokio::spawn(count_subscriber(
        mosquitto.port,
        counted.clone(),
        args.batch_size,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = counted.clone();
    let passthrough = timed(total, &payloads, mosquitto.port, None, move || {
        c.load(Ordering::Relaxed)
    })
    .await?;
    counter.abort();
    drop(mosquitto);

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    let (e, x, p) = (rate(embedded), rate(external), rate(passthrough));
    println!();
    println!("{:<44} {:>12} {:>10}", "path", "reports/s", "seconds");
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "agent → embedded rumqttd → durable store",
        e,
        embedded.as_secs_f64()
    );
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "agent → Mosquitto → collector → durable",
        x,
        external.as_secs_f64()
    );
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "agent → Mosquitto → counting subscriber",
        p,
        passthrough.as_secs_f64()
    );
    println!();
    println!("embedded / Mosquitto pass-through: {:.2}", e / p);
    println!("Mosquitto+collector / Mosquitto pass-through: {:.2}", x / p);
    println!("embedded / Mosquitto+collector: {:.2}", e / x);
    Ok(())
}

fn stored(m: &IngestMetrics) -> u64 {
    m.reports_stored.load(Ordering::Relaxed)
}

fn collector_config(work: &Path, name: &str, mosquitto_port: Option<u16>) -> Config {
    let mut config = match Config::defaults() {
        Ok(c) => c,
        Err(e) => panic!("the embedded defaults are valid: {e}"),
    };
    config.data_dir = work.join(name).to_string_lossy().into_owned();
    config.orgs = vec![OrgConfig {
        id: ORG.into(),
        name: "Benchmark".into(),
        token: TOKEN.into(),
        token_sha256: String::new(),
        energy: None,
        profile: Default::default(),
    }];
    if let Some(port) = mosquitto_port {
        config.mqtt.broker = format!("mqtt://127.0.0.1:{port}");
        config.mqtt.client_id = format!("veille-bench-{name}");
    }
    config
}

/// Pre-encoded batches: `payloads[client][batch]`; device `bench-<client>`.
fn make_payloads(args: &Args) -> Vec<Vec<Vec<u8>>> {
    let now = now_ms();
    let per_client = args.batches * args.batch_size;
    (0..args.clients)
        .map(|c| {
            (0..args.batches)
                .map(|b| {
                    let reports = (0..args.batch_size)
                        .map(|i| {
                            let seq = b * args.batch_size + i + 1;
                            // Back to back seconds ending now: valid for the collector's clock.
                            let end = now - ((per_client - seq) as i64) * 1000;
                            Report {
                                boot_id: "bench-boot".into(),
                                seq,
                                start_unix_ms: end - 1000,
                                end_unix_ms: end,
                                boot_time_unix_s: (now - 86_400_000) / 1000,
                                uptime_s: 86_400,
                                active_ms: 400,
                                idle_ms: 600,
                                cpu_util: 0.12,
                                ..Default::default()
                            }
                        })
                        .collect();
                    ReportBatch {
                        device_id: format!("bench-{c}"),
                        reports,
                        inventory: None,
                        agent_version: "bench".into(),
                    }
                    .encode_to_vec()
                })
                .collect()
        })
        .collect()
}

/// Publishes every payload (one connection per client, QoS 1) and returns the time until
/// `done()` reaches `total`.
async fn timed(
    total: u64,
    payloads: &Arc<Vec<Vec<Vec<u8>>>>,
    port: u16,
    credentials: Option<(&str, &str)>,
    done: impl Fn() -> u64,
) -> anyhow::Result<Duration> {
    let base = done();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..payloads.len() {
        let mut o = MqttOptions::new(
            format!("bench-pub-{c}-{}", rand::random::<u32>()),
            "127.0.0.1",
            port,
        );
        o.set_inflight(100).set_max_packet_size(8 << 20, 8 << 20);
        if let Some((u, p)) = credentials {
            o.set_credentials(u, p);
        }
        let payloads = payloads.clone();
        tasks.push(tokio::spawn(async move {
            publish_all(o, &payloads[c], c).await
        }));
    }
    let deadline = Duration::from_secs(120);
    while done() - base < total {
        if start.elapsed() > deadline {
            bail!(
                "only {} of {total} reports after {deadline:?}",
                done() - base
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    for t in tasks {
        t.await??;
    }
    Ok(elapsed)
}

async fn publish_all(o: MqttOptions, batches: &[Vec<u8>], c: usize) -> anyhow::Result<()> {
    let (client, mut events) = AsyncClient::new(o, 256);
    let topic = topics::reports(ORG, &format!("bench-{c}"));
    let n = batches.len();
    let publisher = {
        let client = client.clone();
        let batches = batches.to_vec();
        tokio::spawn(async move {
            for b in batches {
                client
                    .publish(topic.clone(), QoS::AtLeastOnce, false, b)
                    .await?;
            }
            anyhow::Ok(())
        })
    };
    let mut acked = 0;
    while acked < n {
        match events.poll().await.context("publisher connection")? {
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            Event::Incoming(Packet::ConnAck(a))
                if a.code != rumqttc::ConnectReturnCode::Success =>
            {
                bail!("broker refused the publisher: {:?}", a.code)
            }
            _ => {}
        }
    }
    publisher.await??;
    let _ = client.disconnect().await;
    Ok(())
}

async fn count_subscriber(
    port: u16,
    counted: Arc<AtomicU64>,
    reports_per_batch: u64,
) -> anyhow::Result<()> {
    let mut o = MqttOptions::new("bench-counter", "127.0.0.1", port);
    o.set_inflight(100).set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut events) = AsyncClient::new(o, 256);
    loop {
        match events.poll().await.context("counting subscriber")? {
            Event::Incoming(Packet::ConnAck(_)) => {
                client.try_subscribe(topics::REPORTS_FILTER, QoS::AtLeastOnce)?;
            }
            Event::Incoming(Packet::Publish(_)) => {
                counted.fetch_add(reports_per_batch, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// A private Mosquitto on a free port, anonymous, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Mosquitto {
    fn start(work: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let conf = work.join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_inflight_messages 100\nmax_queued_messages 1000000\n\
             message_size_limit 4259840\nlog_dest stderr\nlog_type error\n"
        );
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc_geteuid() } == 0 {
            text.push_str("user root\n");
        }
        std::fs::write(&conf, text)?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .context("starting mosquitto (Debian package mosquitto)")?;
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("mosquitto never listened on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port })
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
