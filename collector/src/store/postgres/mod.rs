//! The PostgreSQL engine, for several collectors on one database
//! (`[store] backend = "postgres"`).
//!
//! The tables are the embedded engine's ([`schema`]), with the bulk ones partitioned by
//! time; the schema is migrated at connect. Every collector is stateless beside the
//! database: its caches (device ids, known partitions) only ever hold facts that never
//! change once true, so any of them may serve any agent.
//!
//! # Writers
//! Each [`Engine::write`] is one READ COMMITTED transaction on this process's writer
//! connection. Two collectors writing the same device serialise on
//! [`Tx::lock_device`], a transaction-scoped advisory lock on the database's hash of
//! (org, device): READ COMMITTED takes a new snapshot per statement, so what the
//! second writer reads after the lock includes the first one's commit (REPEATABLE READ
//! would read from a snapshot taken before it waited). Read-modify-write of the small
//! registries that no device lock covers (policies, meters, rooms, assets, the store's
//! meta) takes a per-registry advisory lock at its first read in the transaction, which
//! gives them the one-writer-at-a-time semantics of the embedded engine.
//!
//! # Durability and group commit
//! Write transactions commit with `synchronous_commit = off`: the commit returns once
//! its WAL record is in the server's buffers, without waiting for an fsync, so a group
//! of batches costs one fsync rather than one each. [`Engine::flush`] then commits a
//! tiny transaction *with* synchronous commit that writes a WAL record (a transactional
//! `pg_logical_emit_message`), and PostgreSQL returns from that commit only once the
//! WAL is flushed up to its record — which lies after the commit record of every
//! transaction committed before the flush began, by this collector or any other. So
//! when `flush` returns, everything committed before it is durable, which is what an
//! Ack promises. This also covers what this collector *read*: a resend answered as a
//! duplicate because another collector stored it (not yet flushed) is acknowledged
//! after a flush whose record lies after that commit too. A server crash loses only
//! commits never flushed, hence never acknowledged: the agents resend them.
//!
//! # Partitions
//! `raw_hours` has one partition per UTC day and `rollup_days` one per UTC month,
//! created on demand: a write to a partition this engine does not know checks the
//! catalog; if it is missing, the transaction is rolled back, the partition created in
//! a transaction of its own ([`schema::create_partition`]), and the body run again. So
//! bodies must be re-runnable (every store body is: all their effects go through the
//! transaction). The current day's and month's partitions and the next ones are made
//! at connect, so live ingest seldom takes that path.
//!
//! # Failures
//! A refused or lost connection is [`StoreError::Unavailable`] (the ingest answers
//! UNAVAILABLE and agents keep their spool); the broken connection is dropped and the
//! next call connects again, so the collector resumes by itself when the database
//! returns. A kept connection found dead where nothing has run yet (a read, a flush,
//! a write's BEGIN) is replaced at once and the call goes on. Lock timeouts, deadlocks and serialisation failures are
//! [`StoreError::Busy`]. The URL is never shown with its password.
//!
//! A database unreachable when the server starts ([`connect_or_wait`]) is the same
//! fault seen earlier: the engine exists but is not set up yet, every call answers
//! `Unavailable` with the reason, and a background thread tries again with backoff;
//! once it reaches the database it runs the migrations and the store's format check
//! before letting any call through, so nothing is written to an unchecked database.

pub mod schema;
mod tx;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, NoTls};

use crate::store::StoreError;
use crate::store::engine::{Body, Engine, Write};
use schema::{Created, Partition, Table};

/// Idle read connections kept per engine: readers beyond it connect and disconnect.
const READ_POOL: usize = 4;

/// How long connecting may take before the database counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database that stops answering without closing the connection (a network cut)
/// fails the call after this long instead of holding the ingest writer for the
/// kernel's default of many minutes; agents resend meanwhile. Also the keepalive idle
/// time, so an idle pooled connection to a vanished server is noticed.
const SILENT_PEER: Duration = Duration::from_secs(30);

/// Partition creations one write may need before it gives up (a batch spans at most a
/// few days; each round creates every partition the body found missing).
const PARTITION_ROUNDS: usize = 8;

/// The first wait before trying again a database unreachable at start; it doubles
/// after each failure up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// The longest wait between two tries: how late at most the collector notices the
/// database has come up.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Connects to the database at `url`, migrating its schema. An unreachable database
/// is an error (the CLI's commands and the tests want to know at once).
pub fn connect(url: &str) -> Result<Arc<dyn Engine>, StoreError> {
    Ok(Arc::new(off_runtime(|| Postgres::connect(url))?))
}

/// What runs once the database is reached and migrated, before any other call goes
/// through: the store's format check, given the engine's write.
pub type OnReady = Box<dyn Fn(&mut Write<'_>) -> Result<(), StoreError> + Send + Sync>;

/// [`connect`] for the server: a database unreachable at start is logged in one line
/// and tried again in the background with backoff, the engine answering every call
/// `Unavailable` meanwhile (the ingest answers UNAVAILABLE and agents keep their
/// spool). `on_ready` runs on the first successful connection, at start or later.
/// Errors that waiting cannot mend (a malformed URL, a schema newer than this
/// collector, a store of another format found at start) are returned.
pub fn connect_or_wait(url: &str, on_ready: OnReady) -> Result<Arc<dyn Engine>, StoreError> {
    let engine = Arc::new(Postgres::new(url)?);
    match off_runtime(|| engine.setup(Some(&on_ready))) {
        Ok(()) => Ok(engine),
        Err(e) if e.is_transient() => {
            tracing::warn!(location = %engine.location, error = %e,
                "PostgreSQL unreachable at start: ingest answers UNAVAILABLE (agents keep \
                 their spool) until it is reached; retrying in the background");
            engine.note_waiting(&e);
            let weak = Arc::downgrade(&engine);
            std::thread::Builder::new()
                .name("postgres-reach".into())
                .spawn(move || retry_until_reached(weak, on_ready))
                .map_err(|e| StoreError::Engine(format!("cannot start a thread: {e}")))?;
            Ok(engine)
        }
        Err(e) => Err(e),
    }
}

/// Tries [`Postgres::setup`] with backoff until it succeeds, fails for good, or the
/// engine is dropped.
fn retry_until_reached(engine: Weak<Postgres>, on_ready: OnReady) {
    let mut wait = RETRY_FIRST;
    loop {
        std::thread::sleep(wait);
        let Some(engine) = engine.upgrade() else {
            return;
        };
        match engine.setup(Some(&on_ready)) {
            Ok(()) => {
                tracing::info!(location = %engine.location,
                    "PostgreSQL reached: the store is ready and ingest resumes");
                return;
            }
            Err(e) => {
                let transient = e.is_transient();
                engine.note_waiting(&e);
                if !transient {
                    tracing::error!(location = %engine.location, error = %e,
                        "PostgreSQL reached but unusable: ingest answers UNAVAILABLE; fix it \
                         and restart the collector");
                    return;
                }
                tracing::debug!(error = %e, "PostgreSQL still unreachable");
            }
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A PostgreSQL error as a store error: the connection's failures are `Unavailable`
/// (transient), contention `Busy`, anything else an engine error.
pub(crate) fn db_err(e: postgres::Error) -> StoreError {
    let text = match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    match e.code() {
        Some(code) => {
            let c = code.code();
            if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") {
                // Connection exceptions, server shutting down, out of disk or memory.
                StoreError::Unavailable(text)
            } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
            {
                StoreError::Busy(text)
            } else {
                StoreError::Engine(text)
            }
        }
        // No SQLSTATE: the connection failed (closed, I/O, timeout, refused).
        None if e.is_closed()
            || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
            || text.contains("timeout")
            || text.contains("connecting") =>
        {
            StoreError::Unavailable(text)
        }
        None => StoreError::Engine(text),
    }
}

/// Runs `f`, which blocks on the database, where blocking is allowed. The sync client
/// drives each connection with a runtime of its own and panics if called on a worker
/// thread of the collector's runtime (a store call from an async task, such as the
/// MQTT meter sink's): on the multi-threaded runtime, [`tokio::task::block_in_place`]
/// hands the worker's tasks to another thread first, and is a plain call elsewhere
/// (outside any runtime, in `spawn_blocking`).
fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The PostgreSQL engine.
pub struct Postgres {
    config: postgres::Config,
    /// The URL without its password, for messages.
    location: String,
    /// One writer connection: this process's writes go one at a time, like the
    /// embedded engine's (the ingest has one writer task; several collectors are what
    /// gives parallel writes). `None` after a failure: the next write reconnects.
    writer: Mutex<Option<tx::Conn>>,
    readers: Mutex<Vec<tx::Conn>>,
    /// (org, device) → dev id: ids never change once committed.
    ids: Mutex<HashMap<(String, String), i64>>,
    /// Partitions known to exist (or whose range the default partition keeps).
    partitions: Mutex<HashSet<String>>,
    /// Set once the database was reached, migrated and checked ([`Postgres::setup`]);
    /// until then every call answers `Unavailable` with [`Postgres::waiting`].
    ready: AtomicBool,
    /// Why the database is not set up yet (the last failure).
    waiting: Mutex<String>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connects, migrates the schema, and makes the partitions of today and tomorrow
    /// (raw) and of this month and the next (rollups).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let engine = Self::new(url)?;
        engine.setup(None)?;
        Ok(engine)
    }

    /// The engine for `url`, not connected yet: every call answers `Unavailable`
    /// until [`Postgres::setup`] succeeds.
    fn new(url: &str) -> Result<Self, StoreError> {
        let location = redact(url);
        let mut config = postgres::Config::from_str(url).map_err(|e| StoreError::Open {
            path: location.clone().into(),
            reason: format!("not a PostgreSQL URL: {e}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(SILENT_PEER);
        }
        // At most SILENT_PEER (the default is two hours); a URL may ask for less.
        if config.get_keepalives_idle() > SILENT_PEER {
            config.keepalives_idle(SILENT_PEER);
        }
        if config.get_application_name().is_none() {
            config.application_name("veille-collector");
        }
        let engine = Self {
            config,
            location,
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
            ids: Mutex::new(HashMap::new()),
            partitions: Mutex::new(HashSet::new()),
            ready: AtomicBool::new(false),
            waiting: Mutex::new("not connected yet".into()),
        };
        Ok(engine)
    }

    /// Connects, migrates, makes the current partitions, keeps the connection as the
    /// writer and runs `on_ready`; then lets calls through. Each step is a transaction
    /// of its own or changes nothing, so a failure half-way leaves nothing half-made
    /// and the next try starts over.
    fn setup(&self, on_ready: Option<&OnReady>) -> Result<(), StoreError> {
        let engine = self;
        let mut client = engine.open_connection()?;
        schema::migrate(&mut client, &engine.location)?;
        engine
            .partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(schema::existing_partitions(&mut client)?);
        let now = crate::clock::now_ms();
        let day = veille_proto::units::MS_PER_DAY;
        let wanted = [
            Table::RawHours.partition_of(now),
            Table::RawHours.partition_of(now + day),
            Table::RollupDays.partition_of(now),
            Table::RollupDays.partition_of(now + 32 * day),
        ];
        engine.create_partitions(&mut client, wanted.into_iter().flatten().collect())?;
        engine.writer_setup(&mut client)?;
        *engine.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx::Conn::new(client));
        if let Some(on_ready) = on_ready {
            on_ready(&mut |body| self.write_now(body))?;
        }
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// `Ok` once set up; else why not, as `Unavailable`.
    fn check_ready(&self) -> Result<(), StoreError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let why = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        Err(StoreError::Unavailable(format!(
            "not set up since start, retrying: {why}"
        )))
    }

    fn note_waiting(&self, e: &StoreError) {
        let why = match e {
            StoreError::Unavailable(m) => m.clone(),
            other => other.to_string(),
        };
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    fn open_connection(&self) -> Result<Client, StoreError> {
        self.config.connect(NoTls).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.location,
                match db_err(e) {
                    StoreError::Unavailable(m) | StoreError::Engine(m) | StoreError::Busy(m) => m,
                    other => other.to_string(),
                }
            ))
        })
    }

    /// A writer session commits without waiting for the WAL fsync: [`Engine::flush`]
    /// is the durability point (see the module's documentation).
    fn writer_setup(&self, client: &mut Client) -> Result<(), StoreError> {
        client
            .batch_execute("SET synchronous_commit = off")
            .map_err(db_err)
    }

    fn give_back(&self, client: tx::Conn) {
        if client.client.is_closed() {
            return;
        }
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < READ_POOL {
            pool.push(client);
        }
    }

    /// Creates the partitions of `wanted` not known yet, each in its own transaction.
    fn create_partitions(
        &self,
        client: &mut Client,
        wanted: Vec<Partition>,
    ) -> Result<(), StoreError> {
        for p in wanted {
            if self.knows(&p.name) {
                continue;
            }
            match schema::create_partition(client, &p)? {
                Created::Exists | Created::UseDefault => self.learn(&p.name),
            }
        }
        Ok(())
    }

    fn knows(&self, partition: &str) -> bool {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(partition)
    }

    fn learn(&self, partition: &str) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(partition.to_owned());
    }

    /// One attempt at a write transaction.
    fn try_write(&self, conn: &mut tx::Conn, body: &mut Body<'_>) -> Result<(), Attempt> {
        let tx::Conn { client, stmts } = conn;
        let tx = client
            .transaction()
            .map_err(|e| Attempt::Begin(db_err(e)))?;
        let mut t = tx::PgTx::new(tx, stmts, self, true);
        let result = body(&mut t);
        let (tx, missing) = t.finish();
        if !missing.is_empty() {
            // Rolled back before any DDL: this session holds no lock on the parent.
            tx.rollback().map_err(|e| Attempt::Failed(db_err(e)))?;
            return Err(Attempt::Partitions(missing));
        }
        match result {
            Ok(()) => tx.commit().map_err(|e| Attempt::Failed(db_err(e))),
            Err(e) => {
                let _ = tx.rollback();
                Err(Attempt::Failed(e))
            }
        }
    }
}

/// Why a write attempt did not commit.
enum Attempt {
    /// The body needs these partitions: rolled back, to be created first.
    Partitions(Vec<Partition>),
    /// BEGIN failed: nothing ran, so the body may run on another connection.
    Begin(StoreError),
    /// The body or the commit failed.
    Failed(StoreError),
}

impl Engine for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn write(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        self.check_ready()?;
        off_runtime(|| self.write_now(body))
    }

    fn read(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        self.check_ready()?;
        off_runtime(|| self.read_now(body))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.check_ready()?;
        off_runtime(|| self.flush_now())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.check_ready()?;
        off_runtime(|| self.size_on_disk_now())
    }

    fn release_raw_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.check_ready()?;
        off_runtime(|| self.release_raw_before_now(cutoff_ms))
    }
}

impl Postgres {
    fn write_now(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut rounds = 0;
        let mut reconnected = false;
        loop {
            let (conn, reused) = match writer.as_mut() {
                Some(c) if !c.client.is_closed() => (c, true),
                _ => {
                    let mut c = self.open_connection()?;
                    self.writer_setup(&mut c)?;
                    (writer.insert(tx::Conn::new(c)), false)
                }
            };
            match self.try_write(conn, body) {
                Ok(()) => return Ok(()),
                // The kept connection died with the server it talked to (a restart):
                // nothing ran, so the first write after the database returns goes
                // through on a new connection instead of failing once.
                Err(Attempt::Begin(StoreError::Unavailable(_))) if reused && !reconnected => {
                    reconnected = true;
                    *writer = None;
                }
                Err(Attempt::Partitions(missing)) if rounds < PARTITION_ROUNDS => {
                    rounds += 1;
                    if let Err(e) = self.create_partitions(&mut conn.client, missing) {
                        if conn.client.is_closed() {
                            *writer = None;
                        }
                        return Err(e);
                    }
                }
                Err(Attempt::Partitions(missing)) => {
                    return Err(StoreError::Engine(format!(
                        "partitions still missing after {PARTITION_ROUNDS} rounds: {:?}",
                        missing.iter().map(|p| &p.name).collect::<Vec<_>>()
                    )));
                }
                Err(Attempt::Begin(e) | Attempt::Failed(e)) => {
                    if conn.client.is_closed() {
                        *writer = None;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Runs `f` on a read connection. A pooled connection may have died since it was
    /// last used (the database restarted): then `f` runs once more on a new one, which
    /// is safe because reads and flushes change nothing if repeated — so the first call
    /// after the database returns succeeds rather than answering UNAVAILABLE once.
    fn with_reader<T>(
        &self,
        mut f: impl FnMut(&mut tx::Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let (mut conn, was_pooled) = match pooled {
            Some(c) if !c.client.is_closed() => (c, true),
            _ => (tx::Conn::new(self.open_connection()?), false),
        };
        let mut result = f(&mut conn);
        if was_pooled && matches!(result, Err(StoreError::Unavailable(_))) {
            conn = tx::Conn::new(self.open_connection()?);
            result = f(&mut conn);
        }
        // After an error the session may sit in an aborted transaction: not reused.
        if result.is_ok() {
            self.give_back(conn);
        }
        result
    }

    fn read_now(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        self.with_reader(|conn| {
            let tx::Conn { client, stmts } = conn;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(db_err)?;
            let mut t = tx::PgTx::new(tx, stmts, self, false);
            let r = body(&mut t);
            let (tx, _) = t.finish();
            // A reader's transaction ends in a rollback: it wrote nothing.
            let _ = tx.rollback();
            r
        })
    }

    fn flush_now(&self) -> Result<(), StoreError> {
        self.with_reader(|conn| {
            // A session whose default is `off` would not wait: ask for the local flush.
            conn.client
                .batch_execute(
                    "BEGIN;
                     SELECT set_config('synchronous_commit', 'on', true)
                       WHERE current_setting('synchronous_commit') = 'off';
                     SELECT pg_logical_emit_message(true, 'veille.flush', '');
                     COMMIT;",
                )
                .map_err(db_err)
        })
    }

    /// Drops the day partitions of raw reports that end by `cutoff_ms` and that the
    /// purges emptied: retention by whole partitions, so the space goes back to the
    /// system without waiting for VACUUM. A lock wait past its timeout (a long report
    /// holding the table) is not an error: the next purge tries again.
    fn release_raw_before_now(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match writer.as_mut() {
            Some(c) if !c.client.is_closed() => c,
            _ => {
                let mut c = self.open_connection()?;
                self.writer_setup(&mut c)?;
                writer.insert(tx::Conn::new(c))
            }
        };
        let names = schema::existing_partitions(&mut conn.client)?;
        let candidates = schema::raw_partitions_before(&names, cutoff_ms);
        match schema::drop_empty(&mut conn.client, &candidates) {
            Ok(dropped) => {
                let mut known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
                for name in &dropped {
                    known.remove(name);
                    tracing::info!(partition = %name, "emptied raw partition dropped");
                }
                Ok(dropped.len() as u64)
            }
            Err(StoreError::Busy(e)) => {
                tracing::warn!(error = %e, "raw partitions not dropped now; next purge retries");
                Ok(0)
            }
            Err(e) => {
                if conn.client.is_closed() {
                    *writer = None;
                }
                Err(e)
            }
        }
    }

    fn size_on_disk_now(&self) -> Result<u64, StoreError> {
        self.with_reader(|conn| {
            conn.client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .map(|row| row.get::<_, i64>(0).max(0) as u64)
                .map_err(db_err)
        })
    }
}

#[cfg(test)]
mod tests;
