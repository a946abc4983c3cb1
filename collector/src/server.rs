//! Running the collector: listeners, start-up (store, tokens, writer, gRPC and HTTP
//! servers, `listen.json`) and graceful shutdown.
//!
//! Shutdown, mini-redis style: one `watch` channel says "stop" to both servers; they
//! stop accepting and let in-flight requests finish; when the gRPC server has stopped,
//! the last [`Ingest`] handle is dropped, so the writer drains its queue, flushes and
//! ends; then the store is flushed once more and `listen.json` removed.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use veille_domain::energy::consumption::Context;
use veille_domain::renewal::report::RenewalContext;

use crate::auth::Auth;
use crate::config::{Config, ConfigError, MqttMode};
use crate::ingest::grpc::TelemetryService;
use crate::ingest::mqtt::{self, BrokerError, Mqtt, MqttStart};
use crate::ingest::{Ingest, IngestConfig};
use crate::listen_file::{self, ListenFileError, ListenInfo};
use crate::metrics::IngestMetrics;
use crate::store::{Store, StoreError};
use crate::tokens::{self, TokenError, Tokens};

/// How long in-flight requests get to finish after the stop signal before their
/// connections are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    ListenFile(#[from] ListenFileError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Mqtt(#[from] BrokerError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("a server task panicked: {0}")]
    Task(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// The bound listeners. Bind them first (tests use `127.0.0.1:0`), then hand them to
/// [`Server::start`] or [`run`].
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
    /// The embedded MQTT broker's (3.1.1, 5) addresses with ports resolved. rumqttd binds
    /// its own sockets, so these are free ports checked at bind time, not listeners.
    /// `None`: resolved from the config at start.
    pub mqtt: Option<(SocketAddr, SocketAddr)>,
}

impl Listeners {
    /// Binds `grpc_listen` and `http_listen` of `config`.
    pub async fn bind(config: &Config) -> Result<Self, ServerError> {
        let mqtt = match config.mqtt_mode()? {
            MqttMode::Embedded { v4, v5 } => Some(mqtt::broker::reserve_pair(v4, v5)?),
            _ => None,
        };
        Ok(Self {
            grpc: bind("gRPC", config.grpc_listen()?).await?,
            http: bind("HTTP", config.http_listen()?).await?,
            mqtt,
        })
    }

    /// Binds all on `127.0.0.1:0` (tests, demo), the embedded MQTT broker included.
    pub async fn loopback_ephemeral() -> Result<Self, ServerError> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(Self {
            grpc: bind("gRPC", any).await?,
            http: bind("HTTP", any).await?,
            mqtt: Some(mqtt::broker::reserve_pair(any, any)?),
        })
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

/// A started collector. Drive it to the end with [`Server::run_until`] or
/// [`Server::shutdown`]; dropping it without either aborts nothing but leaves
/// `listen.json` behind.
pub struct Server {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    data_dir: PathBuf,
    tokens: Tokens,
    metrics: Arc<IngestMetrics>,
    store: Arc<Store>,
    stop: watch::Sender<bool>,
    grpc_task: JoinHandle<Result<(), tonic::transport::Error>>,
    http_task: JoinHandle<std::io::Result<()>>,
    writer_task: JoinHandle<()>,
    retention_task: JoinHandle<()>,
    policy_refresh_task: JoinHandle<()>,
    /// The periodic GLPI sync (`glpi.sync_every_minutes`), when on.
    glpi_task: Option<JoinHandle<()>>,
    mqtt: Option<Mqtt>,
    /// TLS on the listeners (`[tls]`): URLs are https://.
    tls: bool,
    /// With TLS, the embedded broker's public listeners (the TLS proxies in front of
    /// its loopback ones).
    mqtt_public: Option<(SocketAddr, SocketAddr)>,
}

impl Server {
    /// Opens the store in `<data_dir>/db`, loads or creates the tokens, starts the
    /// writer and both servers on `listeners`, writes `listen.json` and logs the
    /// `listening grpc=... http=...` line.
    pub async fn start(config: &Config, listeners: Listeners) -> Result<Self, ServerError> {
        config.validate()?;
        let data_dir = config.data_dir();
        let grpc_addr = local_addr(&listeners.grpc, "gRPC")?;
        let http_addr = local_addr(&listeners.http, "HTTP")?;
        let tls = config.tls.load()?;
        match &tls {
            Some(t) => tracing::info!(
                cert = %t.cert_path.display(),
                require = t.require,
                client_certs = t.client_certs,
                "TLS on every port"
            ),
            None => tracing::info!("TLS off ([tls] cert is empty): plaintext on every port"),
        }

        // Checked before anything starts: a bad time zone or tariff is a config error.
        let (report_context, renewal_context) = report_contexts(config)?;
        let tokens = tokens::load_or_create(&data_dir, &config.orgs)?;
        announce_tokens(&tokens, &data_dir);
        let store = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || config.open_store_serving())
                .await
                .map_err(|e| ServerError::Task(e.to_string()))??
        };
        tracing::info!(engine = store.engine_name(), location = %config.store_location().describe(),
            "store open");
        let store = Arc::new(store);
        let auth = Arc::new(Auth::new(
            tokens.orgs.clone(),
            crate::auth::TokenHash::of(&tokens.operator),
        ));
        let metrics = Arc::new(IngestMetrics::default());
        let (ingest, writer_task) = Ingest::start(
            store.clone(),
            IngestConfig {
                queue_batches: config.ingest_queue_batches,
                group_max_batches: config.group_commit_max_batches,
            },
            metrics.clone(),
        );

        let (stop, stop_rx) = watch::channel(false);
        let retention_task = crate::store::retention::spawn(
            store.clone(),
            config.raw_retention_days,
            stop_rx.clone(),
        );
        let glpi_task = crate::glpi::spawn_periodic(store.clone(), config, stop_rx.clone());
        let mqtt = mqtt_start(config, listeners.mqtt)?;
        let meter_sink = meter_sink(config, &store, &auth)?;
        let policy_key = Arc::new(crate::policy::load_or_create_key(&data_dir)?);
        let policies = Arc::new(policy_cache(&store, &policy_key)?);
        let policy_refresh_task = policies
            .clone()
            .spawn_refresh(store.clone(), stop_rx.clone());
        // rumqttd listens on loopback and the collector takes the configured addresses,
        // proxying to it: through the org guard always (rumqttd has no per-org topic
        // ACL, see `mqtt::guard`), and after the TLS handshake with TLS on (rumqttd has
        // no TLS of its own here).
        let mut mqtt_proxy = None;
        let mqtt = match mqtt {
            Some(MqttStart::Embedded { v4, v5 }) => {
                let public = (bind("MQTT", v4).await?, bind("MQTT 5", v5).await?);
                let lo = SocketAddr::from(([127, 0, 0, 1], 0));
                let (in4, in5) = mqtt::broker::reserve_pair(lo, lo)?;
                mqtt_proxy = Some((public, (in4, in5), tls.clone()));
                Some(MqttStart::Embedded { v4: in4, v5: in5 })
            }
            other => other,
        };
        let mqtt = match mqtt {
            Some(how) => Some(mqtt::start(
                how,
                auth.clone(),
                ingest.clone(),
                metrics.clone(),
                config.mqtt.max_in_flight,
                Some(meter_sink),
                Some(policies.clone()),
                stop_rx.clone(),
            )?),
            None => None,
        };
        let mqtt_public = match mqtt_proxy {
            Some(((l4, l5), (in4, in5), t)) => {
                let public = (local_addr(&l4, "MQTT")?, local_addr(&l5, "MQTT 5")?);
                for (listener, inner, what) in [(l4, in4, "MQTT"), (l5, in5, "MQTT 5")] {
                    let (auth, metrics) = (auth.clone(), metrics.clone());
                    match &t {
                        Some(t) => {
                            let rx = crate::tls::accept_loop(
                                listener,
                                t.agents.clone(),
                                t.require,
                                what,
                                stop_rx.clone(),
                            );
                            tokio::spawn(mqtt::guard::proxy(rx, inner, auth, metrics));
                        }
                        None => {
                            let rx = mqtt::guard::accept_plain(listener, what, stop_rx.clone());
                            tokio::spawn(mqtt::guard::proxy(rx, inner, auth, metrics));
                        }
                    }
                }
                Some(public)
            }
            None => None,
        };
        let grpc_service = TelemetryService::new(auth.clone(), ingest, metrics.clone())
            .with_policies(policies.clone());
        let grpc_router =
            tonic::transport::Server::builder().add_service(grpc_service.into_server());
        let grpc_task = serve_grpc(grpc_router, listeners.grpc, tls.as_ref(), stop_rx.clone());
        let app = crate::api::router(crate::api::AppState {
            store: store.clone(),
            auth: auth.clone(),
            energy: report_context.clone(),
            renewal: renewal_context.clone(),
            policy_key,
            policies,
            orgs: std::sync::Arc::new(config.org_profiles()),
        });
        let web = crate::web::router(
            &config.web,
            store.clone(),
            auth.clone(),
            report_context.clone(),
            renewal_context.clone(),
            std::sync::Arc::new(config.org_profiles()),
            tls.is_some(),
        );
        let metrics_api = crate::api::metrics::router(
            config.metrics.clone(),
            store.clone(),
            auth.clone(),
            report_context.clone(),
            metrics.clone(),
        );
        let app = crate::security::harden(app.merge(web).merge(metrics_api));
        let http_task = serve_http(app, listeners.http, http_addr, tls.as_ref(), stop_rx);

        let server = Self {
            grpc_addr,
            http_addr,
            data_dir,
            tokens,
            metrics,
            store,
            stop,
            grpc_task,
            http_task,
            writer_task,
            retention_task,
            policy_refresh_task,
            glpi_task,
            mqtt,
            tls: tls.is_some(),
            mqtt_public,
        };
        let embedded = server.mqtt_addrs();
        let info = ListenInfo {
            grpc: grpc_addr,
            http: http_addr,
            pid: std::process::id(),
            mqtt: embedded.map(|e| e.0),
            mqtt5: embedded.map(|e| e.1),
            tls_cert: tls.as_ref().map(|t| t.cert_path.clone()),
        };
        if let Err(e) = listen_file::write(&server.data_dir, &info) {
            // Do not leave servers running behind a failed start.
            let _ = server.shutdown().await;
            return Err(e.into());
        }
        let mqtt_label = match &server.mqtt {
            Some(m) => match (embedded, server.mqtt_public) {
                (Some((v4, v5)), Some(_)) => format!("mqtts://{v4} mqtt5=mqtts://{v5}"),
                (Some((_, v5)), None) => format!("{} mqtt5={v5}", m.label),
                (None, _) => m.label.clone(),
            },
            None => "off".to_owned(),
        };
        // With TLS the addresses carry their scheme (the test harness strips it).
        let (grpc_shown, http_shown) = if server.tls {
            (server.grpc_url(), server.http_url())
        } else {
            (grpc_addr.to_string(), http_addr.to_string())
        };
        tracing::info!(
            data_dir = %server.data_dir.display(),
            "listening grpc={grpc_shown} http={http_shown} mqtt={mqtt_label}"
        );
        Ok(server)
    }

    /// Bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// `http://<grpc addr>` (`https://` with TLS): what an agent's `--collector` takes.
    pub fn grpc_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.grpc_addr)
    }

    /// `http://<http addr>` (`https://` with TLS).
    pub fn http_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.http_addr)
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The embedded MQTT broker's (3.1.1, 5) listeners agents connect to, if it runs
    /// (with TLS: the TLS listeners in front of it).
    pub fn mqtt_addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.mqtt_public
            .or_else(|| self.mqtt.as_ref().and_then(|m| m.embedded))
    }

    /// The data directory in use.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Tokens in force (org tokens for agents, operator token for the API).
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Ingest counters.
    pub fn metrics(&self) -> Arc<IngestMetrics> {
        self.metrics.clone()
    }

    /// The store (read access for tools; writes go through the gRPC path).
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Serves until `shutdown` completes (or a server fails), then shuts down
    /// gracefully. `Ok` means every acknowledged batch is on disk.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Self {
            data_dir,
            store,
            stop,
            mut grpc_task,
            mut http_task,
            writer_task,
            retention_task,
            policy_refresh_task,
            glpi_task,
            mqtt,
            ..
        } = self;
        let mut early: Option<ServerError> = None;
        let (mut grpc_done, mut http_done) = (false, false);
        tokio::select! {
            () = shutdown => tracing::info!("shutting down"),
            r = &mut grpc_task => {
                grpc_done = true;
                early = Some(task_error(r.map(|r| r.map_err(ServerError::Grpc))));
                tracing::error!("gRPC server stopped unexpectedly; shutting down");
            }
            r = &mut http_task => {
                http_done = true;
                early = Some(task_error(r.map(|r| r.map_err(ServerError::Http))));
                tracing::error!("HTTP server stopped unexpectedly; shutting down");
            }
        }
        let _ = stop.send(true);
        let mut first_error = early;
        if !grpc_done && let Some(Err(e)) = finish(grpc_task, "gRPC").await {
            first_error.get_or_insert(ServerError::Grpc(e));
        }
        if !http_done && let Some(Err(e)) = finish(http_task, "HTTP").await {
            first_error.get_or_insert(ServerError::Http(e));
        }
        // A purge in progress ends its current chunk; the store is flushed below anyway.
        finish(retention_task, "retention").await;
        finish(policy_refresh_task, "policy refresh").await;
        if let Some(t) = glpi_task {
            finish(t, "GLPI sync").await;
        }
        // The MQTT subscriber stops reading, lets its batches in flight finish and drops
        // its ingest handle (the embedded broker's thread lives on until exit).
        if let Some(m) = mqtt
            && finish(m.task, "MQTT").await.is_none()
        {
            tracing::warn!("MQTT subscriber did not stop cleanly");
        }
        // The gRPC server held the last ingest handles; the writer now drains the queue,
        // flushes and ends.
        match tokio::time::timeout(SHUTDOWN_GRACE, writer_task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(ServerError::Task(e.to_string()));
            }
            Err(_) => tracing::error!(
                "ingest writer still busy after {SHUTDOWN_GRACE:?}; flushing what is stored"
            ),
        }
        let flushed = tokio::task::spawn_blocking(move || {
            let r = store.flush();
            drop(store);
            r
        })
        .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e.into());
            }
            Err(e) => {
                first_error.get_or_insert(ServerError::Task(e.to_string()));
            }
        }
        listen_file::remove(&data_dir);
        match first_error {
            Some(e) => Err(e),
            None => {
                tracing::info!("stopped cleanly; store flushed");
                Ok(())
            }
        }
    }

    /// Stops now: same as [`Server::run_until`] with a future that is already ready.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.run_until(std::future::ready(())).await
    }
}

/// Binds nothing: starts on `listeners`, serves until `shutdown`, stops gracefully.
pub async fn run(
    config: &Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    Server::start(config, listeners)
        .await?
        .run_until(shutdown)
        .await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
///
/// # Platform-specific behaviour
/// SIGTERM is Unix only; elsewhere only Ctrl-C is awaited.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only"),
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Waits up to [`SHUTDOWN_GRACE`] for a server task; aborts it after that. `None` when it
/// failed or had to be aborted (both logged).
async fn finish<T>(mut task: JoinHandle<T>, what: &str) -> Option<T> {
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "{what} server task failed");
            None
        }
        Err(_) => {
            tracing::warn!(
                "{what} server: requests still running after {SHUTDOWN_GRACE:?}; closing them"
            );
            task.abort();
            let _ = task.await;
            None
        }
    }
}

fn task_error(r: Result<Result<(), ServerError>, tokio::task::JoinError>) -> ServerError {
    match r {
        Ok(Ok(())) => ServerError::Task("server stopped without being asked to".into()),
        Ok(Err(e)) => e,
        Err(e) => ServerError::Task(e.to_string()),
    }
}

fn local_addr(listener: &TcpListener, what: &'static str) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Bind {
        what,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

fn announce_tokens(tokens: &Tokens, data_dir: &Path) {
    let Some(file) = &tokens.default_org_token_file else {
        let ids: Vec<&str> = tokens.orgs.iter().map(|(id, _)| id.as_str()).collect();
        tracing::info!(orgs = ?ids, "organisations from the configuration");
        return;
    };
    if let Some(token) = &tokens.created_default_org {
        // First start: the operator needs this token once to enroll agents. Printed on
        // stderr through the log, like the URL a demo prints; later starts only say
        // where it was written (the collector itself keeps only its hash).
        tracing::info!(
            "created organisation \"default\"; enroll agents with --token {token} \
             (also written to {}: copy it, then delete it; the collector needs only {})",
            file.display(),
            tokens::DEFAULT_ORG_TOKEN_HASH_FILE
        );
    } else {
        if tokens.migrated_default_org {
            tracing::info!(
                "organisation \"default\": its token is now verified against {} (hashed \
                 at rest); agents keep their token",
                tokens::DEFAULT_ORG_TOKEN_HASH_FILE
            );
        }
        if file.exists() {
            tracing::info!(
                "organisation \"default\": enroll agents with the token in {}; the collector \
                 does not need that file (it verifies against {}): delete it once agents \
                 are enrolled",
                file.display(),
                tokens::DEFAULT_ORG_TOKEN_HASH_FILE
            );
        } else {
            tracing::info!(
                "organisation \"default\": enroll agents with the token shown at first start"
            );
        }
    }
    tracing::debug!(
        "operator token for the HTTP API: {}",
        data_dir.join(tokens::OPERATOR_TOKEN_FILE).display()
    );
}

/// The energy and renewal settings the reports use, checked before anything starts: a
/// bad time zone, tariff or overrides file is a configuration error.
fn report_contexts(config: &Config) -> Result<(Arc<Context>, Arc<RenewalContext>), ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: key.into(),
        value: String::new(),
        reason,
    };
    let energy = crate::reports::context(config).map_err(|e| invalid("energy", e.to_string()))?;
    let renewal = crate::reports::renewal::context(&config.renewal)
        .map_err(|e| invalid("renewal", e.to_string()))?;
    Ok((Arc::new(energy), Arc::new(renewal)))
}

/// How MQTT starts, from `[mqtt]`: off, the embedded broker on `bound` (listeners
/// reserved by [`Listeners::bind`]) or its configured ports, or an external broker.
fn mqtt_start(
    config: &Config,
    bound: Option<(SocketAddr, SocketAddr)>,
) -> Result<Option<MqttStart>, ServerError> {
    Ok(match config.mqtt_mode()? {
        MqttMode::Off => None,
        MqttMode::Embedded { v4, v5 } => Some(MqttStart::Embedded {
            v4: bound.map_or(v4, |m| m.0),
            v5: bound.map_or(v5, |m| m.1),
        }),
        MqttMode::External { host, port, tls } => {
            let tls =
                if tls {
                    let config = config.mqtt.tls_files().client_config().map_err(|e| {
                        ConfigError::Invalid {
                            key: "mqtt".into(),
                            value: config.mqtt.broker.clone(),
                            reason: format!("TLS towards the broker: {e}"),
                        }
                    })?;
                    Some(Arc::new(config))
                } else {
                    None
                };
            Some(MqttStart::External(mqtt::external::ExternalBroker {
                host,
                port,
                tls,
                username: config.mqtt.username.clone(),
                password: config.mqtt.password.clone(),
                client_id: config.mqtt_client_id(),
            }))
        }
    })
}

/// The live meter path, with Tasmota's local time zone (`[meters] tasmota_timezone`,
/// else `[energy] timezone`) checked.
/// The policies to serve, from the store. A store unreachable at start (PostgreSQL
/// down) gives an empty cache: the periodic refresh fills it once the database is
/// reached, and agents keep the policy they hold meanwhile.
fn policy_cache(
    store: &Store,
    key: &veille_proto::signing::SigningKey,
) -> Result<crate::policy::cache::PolicyCache, crate::policy::PolicyError> {
    match crate::policy::cache::PolicyCache::load(store, key) {
        Err(crate::policy::PolicyError::Store(e)) if e.is_transient() => {
            tracing::warn!(error = %e, "policies not loaded: the store is unavailable; \
                the periodic refresh loads them once it is reached");
            Ok(crate::policy::cache::PolicyCache::load_empty(key))
        }
        other => other,
    }
}

fn meter_sink(
    config: &Config,
    store: &Arc<Store>,
    auth: &Auth,
) -> Result<Arc<crate::ingest::meter_sink::MeterSink>, ConfigError> {
    let tz_name = if config.meters.tasmota_timezone.is_empty() {
        &config.energy.timezone
    } else {
        &config.meters.tasmota_timezone
    };
    let invalid = |reason: String| ConfigError::Invalid {
        key: "meters".into(),
        value: String::new(),
        reason,
    };
    let tz = jiff::tz::TimeZone::get(tz_name)
        .map_err(|e| invalid(format!("time zone {tz_name:?}: {e}")))?;
    let orgs = auth.org_ids().map(str::to_owned).collect();
    crate::ingest::meter_sink::MeterSink::new(store.clone(), &config.meters, orgs, tz)
        .map(Arc::new)
        .map_err(|e| invalid(e.to_string()))
}

/// The gRPC server on `listener`, behind the TLS acceptor when `[tls]` is on.
fn serve_grpc(
    grpc_router: tonic::transport::server::Router,
    listener: TcpListener,
    tls: Option<&crate::tls::ServerTls>,
    stop_rx: watch::Receiver<bool>,
) -> JoinHandle<Result<(), tonic::transport::Error>> {
    match tls {
        None => tokio::spawn(grpc_router.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            stopped(stop_rx.clone()),
        )),
        Some(t) => tokio::spawn(grpc_router.serve_with_incoming_shutdown(
            crate::tls::grpc_incoming(crate::tls::accept_loop(
                listener,
                t.agents.clone(),
                t.require,
                "gRPC",
                stop_rx.clone(),
            )),
            stopped(stop_rx.clone()),
        )),
    }
}

/// The HTTP app (API, web page, metrics) on `listener`, behind the TLS acceptor when
/// `[tls]` is on.
fn serve_http(
    app: axum::Router,
    listener: TcpListener,
    http_addr: SocketAddr,
    tls: Option<&crate::tls::ServerTls>,
    stop_rx: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    match tls {
        None => tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<crate::security::ClientAddr>(),
            )
            .with_graceful_shutdown(stopped(stop_rx))
            .await
        }),
        Some(t) => {
            let https = crate::tls::HttpsListener {
                rx: crate::tls::accept_loop(
                    listener,
                    t.http.clone(),
                    t.require,
                    "HTTP",
                    stop_rx.clone(),
                ),
                local: http_addr,
            };
            tokio::spawn(async move {
                axum::serve(
                    https,
                    app.into_make_service_with_connect_info::<crate::security::ClientAddr>(),
                )
                .with_graceful_shutdown(stopped(stop_rx))
                .await
            })
        }
    }
}
