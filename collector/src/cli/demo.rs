//! `veille-collector demo`: the collector and an agent for this machine in one process,
//! on embedded defaults, so a newcomer sees data flow with one command.
//!
//! The agent is the real one (`veille_agent::run`), with the real probes of this
//! machine; only the process boundary is saved. Data goes to `./veille-demo-data`
//! unless `--data-dir` says otherwise, so the demo never touches a production store.
//!
//! So that every report has something to show from the first minute, the demo also
//! sends a year of history of a simulated fleet ([`veille_sim`], [`DEMO_SIM_DEVICES`]
//! devices over the real gRPC endpoint) while the real agent starts. The simulated
//! history is deterministic (seq = report start), so a restart on the same data
//! directory re-sends it as duplicates instead of doubling it.

use std::sync::Arc;

use tokio::sync::watch;
use veille_agent::config::AgentConfig;
use veille_agent::probes::{Host, SystemClocks};
use veille_agent::run::ActivitySource;
use veille_proto::settings::set_flag;

use crate::cli::ServeArgs;
use crate::server::{Listeners, Server, ServerError, shutdown_signal};
use crate::tokens::DEFAULT_ORG_ID;

/// Where the demo keeps its data when no `--data-dir` is given.
pub const DEMO_DATA_DIR: &str = "veille-demo-data";

/// Simulated devices whose history the demo sends.
pub const DEMO_SIM_DEVICES: usize = 50;
/// Days of simulated history: a year, so that the web page's 12-month trend and a
/// yearly report have something in every month.
pub const DEMO_SIM_DAYS: i64 = 365;
/// Seed of the demo's simulated fleet (fixed: the same fleet at every start).
pub const DEMO_SIM_SEED: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("agent configuration: {0}")]
    AgentConfig(#[from] veille_agent::config::ConfigError),
    #[error("the demo needs the \"{DEFAULT_ORG_ID}\" organisation's token")]
    NoOrg,
    #[error("agent: {0}")]
    Agent(#[from] veille_agent::run::RunError),
}

/// Runs collector + agent until Ctrl-C or SIGTERM, then stops the agent first (so its
/// last report is delivered) and the collector second.
pub async fn run(mut args: ServeArgs) -> Result<(), DemoError> {
    if args.config.data_dir.is_none() && args.config.config.is_none() {
        args.config.data_dir = Some(DEMO_DATA_DIR.into());
    }
    // The demo's agent speaks gRPC; its MQTT broker takes free ports rather than fail
    // when a system Mosquitto already holds 1883.
    if args.mqtt_listen.is_none() && args.config.config.is_none() {
        args.mqtt_listen = Some("127.0.0.1:0".into());
    }
    let config = args.load_config()?;
    let listeners = Listeners::bind(&config).await?;
    let server = Server::start(&config, listeners).await?;
    // The collector keeps only token hashes: the demo's agent takes the token just
    // created, or the clear file of an earlier demo run, or the first configured one.
    let token = match (&server.tokens().created_default_org, config.orgs.first()) {
        (Some(token), _) => token.clone(),
        (None, Some(org)) if !org.token.is_empty() => org.token.clone(),
        (None, Some(_)) => return Err(DemoError::NoOrg),
        (None, None) => crate::tokens::read_default_org_token(server.data_dir())
            .map_err(|_| DemoError::NoOrg)?,
    };

    let mut flags = toml::Table::new();
    set_flag(&mut flags, "collector", server.grpc_url());
    set_flag(&mut flags, "token", token.clone());
    set_flag(
        &mut flags,
        "state_dir",
        server.data_dir().join("demo-agent").display().to_string(),
    );
    set_flag(&mut flags, "report_interval_s", 10i64);
    set_flag(&mut flags, "sample_interval_s", 2i64);
    let (agent_config, _) = AgentConfig::load(None, std::env::vars(), flags)?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let agent = tokio::spawn(async move {
        let activity = ActivitySource::detect().await;
        veille_agent::run::run(
            agent_config,
            Host::real(),
            Arc::new(SystemClocks),
            activity,
            async move {
                let _ = stop_rx.changed().await;
            },
        )
        .await
    });

    let history = tokio::spawn(simulated_history(
        server.grpc_url(),
        token.clone(),
        config.energy.timezone.clone(),
    ));

    let data_dir = server.data_dir().display().to_string();
    println!(
        "\nVeille demo is running (Ctrl-C to stop).\n\
         \n  gRPC ingest     {grpc}\
         \n  web page        {http}/   (sign in with the org token below, or with\
         \n                  {data_dir}/operator.token for every org)\
         \n  HTTP API        {http}/api/v1/devices   (Authorization: Bearer <token>)\
         \n  health          {http}/healthz\
         \n  org token       {token}\
         \n  data directory  {data_dir}\
         \n\nAn agent for this machine reports every 10 s. In another terminal:\
         \n  cargo run -p veille-collector -- devices --data-dir {data_dir}\
         \n  cargo run -p veille-agent -- run --collector {grpc} --token {token} --state-dir /tmp/veille-agent2\n",
        grpc = server.grpc_url(),
        http = server.http_url(),
    );

    // The banner is for a person at a terminal; the log line is for logs and tests.
    tracing::info!(url = %format!("{}/", server.http_url()), "web page");

    shutdown_signal().await;
    history.abort();
    let _ = stop_tx.send(true);
    let agent_result = agent.await;
    server.shutdown().await?;
    match agent_result {
        Ok(result) => result?,
        Err(e) => tracing::error!(error = %e, "the demo agent task failed"),
    }
    Ok(())
}

/// Sends [`DEMO_SIM_DAYS`] of history of [`DEMO_SIM_DEVICES`] simulated devices through
/// the collector's own gRPC endpoint, in hourly reports. Failures are logged, not
/// fatal: the demo still runs with the real agent alone.
async fn simulated_history(grpc_url: String, token: String, timezone: String) {
    use veille_sim::send::{Backfill, Pool, backfill};
    let tz = jiff::tz::TimeZone::get(&timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let now = crate::clock::now_ms();
    let plan = Backfill {
        fleet: veille_sim::FleetSpec::new(DEMO_SIM_SEED, DEMO_SIM_DEVICES),
        tz,
        from_ms: now - DEMO_SIM_DAYS * 86_400_000,
        to_ms: now,
        cut: veille_sim::Cut { interval_s: 3600 },
        concurrency: 8,
    };
    let pool = match Pool::new(&grpc_url, &token, 2) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "simulated fleet not sent");
            return;
        }
    };
    let started = std::time::Instant::now();
    let step = (DEMO_SIM_DEVICES as u64 / 5).max(1);
    let total = DEMO_SIM_DEVICES as u64;
    let progress = move |done: u64, reports: u64| {
        if done.is_multiple_of(step) && done < total {
            println!("simulated fleet: {done}/{total} devices, {reports} reports sent");
        }
    };
    match backfill(&pool, &plan, progress).await {
        Ok(s) => {
            println!(
                "simulated fleet: {} devices x {DEMO_SIM_DAYS} days of history sent in {:.1} s \
                 ({} reports: {} new, {} already stored)",
                s.devices,
                started.elapsed().as_secs_f64(),
                s.reports,
                s.stored,
                s.duplicates
            );
            tracing::info!(
                devices = s.devices,
                reports = s.reports,
                stored = s.stored,
                duplicates = s.duplicates,
                conflicts = s.conflicts,
                "simulated history sent"
            );
        }
        Err(e) => tracing::error!(error = %e, "simulated fleet history failed"),
    }
}
