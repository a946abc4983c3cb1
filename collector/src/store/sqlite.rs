//! The embedded engine: one SQLite file (`veille.sqlite`) in the store directory, in
//! WAL mode, no external service.
//!
//! Why SQLite rather than the columnar engines measured for issue 17: the bundled
//! DuckDB build did not fit this project's CI on 2 cores (BENCHMARKS.md, "Storage
//! engines"), and once a device-hour is one packed row ([`crate::store::codec`]) the
//! row store's per-row overhead — what made SQLite 2.1–2.4 KB per device-hour with one
//! row per report — is paid 60 times less often. SQLite also lets a second process
//! open the store while the server runs (WAL: readers never block, writers queue on
//! the busy timeout), so `import`, `room` and `policy` work with the collector up.
//!
//! Durability: commits are written to the WAL without an fsync
//! (`synchronous = NORMAL`), and [`Engine::flush`] fsyncs the WAL file: one fsync
//! covers every batch committed since the last, which is the ingest's group commit.
//! A process killed after a commit loses nothing (the WAL is in the page cache); a
//! power cut loses only what was never acknowledged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::store::StoreError;
use crate::store::engine::{
    Body, Dev, DevSpan, EachDay, EachRaw, Engine, Entries, RawHour, Reading, Tree, Tx,
};

/// The database file inside the store directory.
pub const FILE: &str = "veille.sqlite";

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page size of a new store: a packed device-hour (~1 KB) stays inside its b-tree page
/// (SQLite moves a WITHOUT ROWID row above ~1/16 of a page to overflow pages).
const PAGE_SIZE: u32 = 16_384;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
  tree TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
  PRIMARY KEY (tree, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dev_ids (
  id INTEGER PRIMARY KEY, org TEXT NOT NULL, device TEXT NOT NULL, UNIQUE (org, device));
CREATE TABLE IF NOT EXISTS raw_hours (
  dev INTEGER NOT NULL, hour INTEGER NOT NULL, seq_min INTEGER NOT NULL,
  seq_max INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (dev, hour)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS raw_hours_seq ON raw_hours (dev, seq_max);
CREATE TABLE IF NOT EXISTS rollup_days (
  dev INTEGER NOT NULL, day INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (dev, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings (
  org TEXT NOT NULL, meter TEXT NOT NULL, quantity TEXT NOT NULL, ts INTEGER NOT NULL,
  value REAL NOT NULL, flags INTEGER NOT NULL,
  PRIMARY KEY (org, meter, quantity, ts)) WITHOUT ROWID;
";

/// The embedded engine.
pub struct Sqlite {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    cache_kib: u32,
    /// (org, device) → dev id: ids never change once given.
    ids: Mutex<HashMap<(String, String), i64>>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::CannotOpen
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::DatabaseBusy
                || f.code == rusqlite::ErrorCode::DatabaseLocked =>
        {
            StoreError::Busy(e.to_string())
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::SystemIoFailure => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Engine(e.to_string()),
    }
}

/// Seqs are u64; SQLite (and PostgreSQL) integers are i64. Flipping the top bit keeps the order.
pub(crate) fn seq_in(seq: u64) -> i64 {
    (seq ^ (1 << 63)) as i64
}

pub(crate) fn seq_out(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

impl Sqlite {
    /// Opens (creating if needed) the store in directory `dir`, with a page cache of
    /// `cache_mib` MiB per connection.
    pub fn open(dir: &Path, cache_mib: u32) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create the store directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE);
        let engine = Self {
            writer: Mutex::new(Self::connect(&path, cache_mib.saturating_mul(1024))?),
            readers: Mutex::new(Vec::new()),
            cache_kib: cache_mib.saturating_mul(1024),
            ids: Mutex::new(HashMap::new()),
            path,
        };
        {
            let conn = engine.writer.lock().unwrap_or_else(|p| p.into_inner());
            conn.execute_batch(SCHEMA).map_err(db_err)?;
        }
        Ok(engine)
    }

    fn connect(path: &Path, cache_kib: u32) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        // page_size only takes effect on a new database (before its first table).
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -{cache_kib};
             PRAGMA foreign_keys = OFF;"
        ))
        .map_err(|e| StoreError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(conn)
    }

    fn reader(&self) -> Result<Connection, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => Self::connect(&self.path, self.cache_kib),
        }
    }
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn write(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let mut t = SqliteTx {
            conn: &tx,
            ids: &self.ids,
        };
        body(&mut t)?;
        tx.commit().map_err(db_err)
    }

    fn read(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        let mut conn = self.reader()?;
        let result = (|| {
            let tx = conn.transaction().map_err(db_err)?;
            let mut t = SqliteTx {
                conn: &tx,
                ids: &self.ids,
            };
            body(&mut t)
            // Dropped without commit: a reader's transaction ends in a rollback.
        })();
        if result.is_ok() {
            self.readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
        result
    }

    fn flush(&self) -> Result<(), StoreError> {
        let wal = self.path.with_file_name(format!("{FILE}-wal"));
        match std::fs::File::open(&wal) {
            Ok(f) => f
                .sync_data()
                .map_err(|e| StoreError::Unavailable(format!("fsync of {}: {e}", wal.display()))),
            // No WAL file: everything was checkpointed into the database, which the
            // checkpoint synced.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Unavailable(format!(
                "open {} to sync it: {e}",
                wal.display()
            ))),
        }
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(m) = std::fs::metadata(self.path.with_file_name(format!("{FILE}{suffix}"))) {
                total += m.len();
            }
        }
        Ok(total)
    }
}

struct SqliteTx<'a> {
    conn: &'a rusqlite::Transaction<'a>,
    ids: &'a Mutex<HashMap<(String, String), i64>>,
}

impl SqliteTx<'_> {
    /// The device's id, created when `create` (a write); `None` for a device never
    /// stored.
    fn dev_id(&mut self, dev: Dev<'_>, create: bool) -> Result<Option<i64>, StoreError> {
        let key = (dev.org.to_owned(), dev.device.to_owned());
        if let Some(id) = self.ids.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(*id));
        }
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM dev_ids WHERE org = ?1 AND device = ?2",
                params![dev.org, dev.device],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        let id = match (found, create) {
            (Some(id), _) => id,
            (None, false) => return Ok(None),
            (None, true) => {
                self.conn
                    .execute(
                        "INSERT INTO dev_ids (org, device) VALUES (?1, ?2)",
                        params![dev.org, dev.device],
                    )
                    .map_err(db_err)?;
                // Not cached yet: the transaction may still roll back.
                return Ok(Some(self.conn.last_insert_rowid()));
            }
        };
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, id);
        Ok(Some(id))
    }

    fn raw_rows(
        &mut self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<RawHour>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db_err)?;
        let rows = stmt
            .query_map(p, |r| {
                Ok(RawHour {
                    hour: r.get(0)?,
                    seq_min: seq_out(r.get(1)?),
                    seq_max: seq_out(r.get(2)?),
                    reports: r.get::<_, i64>(3)? as u64,
                    data: r.get(4)?,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }
}

/// The smallest key above every key starting with `prefix` (`None`: no bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Tx for SqliteTx<'_> {
    fn lock_device(&mut self, _dev: Dev<'_>) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE already holds the database's one write lock.
        Ok(())
    }

    fn kv_get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM kv WHERE tree = ?1 AND key = ?2")
            .and_then(|mut s| {
                s.query_row(params![tree.name(), key], |r| r.get(0))
                    .optional()
            })
            .map_err(db_err)
    }

    fn kv_scan(&mut self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        let collect = |s: &mut rusqlite::CachedStatement<'_>, p: &[&dyn rusqlite::ToSql]| {
            s.query_map(p, |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        };
        match prefix_end(prefix) {
            Some(end) => self
                .conn
                .prepare_cached(
                    "SELECT key, value FROM kv WHERE tree = ?1 AND key >= ?2 AND key < ?3 ORDER BY key",
                )
                .and_then(|mut s| collect(&mut s, &[&tree.name(), &prefix, &end]))
                .map_err(db_err),
            None => self
                .conn
                .prepare_cached("SELECT key, value FROM kv WHERE tree = ?1 AND key >= ?2 ORDER BY key")
                .and_then(|mut s| collect(&mut s, &[&tree.name(), &prefix]))
                .map_err(db_err),
        }
    }

    fn kv_put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO kv (tree, key, value) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![tree.name(), key, value]))
            .map(drop)
            .map_err(db_err)
    }

    fn kv_delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM kv WHERE tree = ?1 AND key = ?2")
            .and_then(|mut s| s.execute(params![tree.name(), key]))
            .map(drop)
            .map_err(db_err)
    }

    fn raw_get(&mut self, dev: Dev<'_>, hour: i64) -> Result<Option<RawHour>, StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(None);
        };
        Ok(self
            .raw_rows(
                "SELECT hour, seq_min, seq_max, n, data FROM raw_hours WHERE dev = ?1 AND hour = ?2",
                params![id, hour],
            )?
            .pop())
    }

    fn raw_by_seq(&mut self, dev: Dev<'_>, lo: u64, hi: u64) -> Result<Vec<RawHour>, StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(Vec::new());
        };
        self.raw_rows(
            "SELECT hour, seq_min, seq_max, n, data FROM raw_hours
             WHERE dev = ?1 AND seq_max >= ?2 AND seq_min <= ?3 ORDER BY hour",
            params![id, seq_in(lo), seq_in(hi)],
        )
    }

    fn raw_range(
        &mut self,
        dev: Dev<'_>,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<RawHour>, StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(Vec::new());
        };
        self.raw_rows(
            "SELECT hour, seq_min, seq_max, n, data FROM raw_hours
             WHERE dev = ?1 AND hour >= ?2 AND hour < ?3 ORDER BY hour",
            params![id, from_hour, to_hour],
        )
    }

    fn raw_put(&mut self, dev: Dev<'_>, raw: &RawHour) -> Result<(), StoreError> {
        let id = self.dev_id(dev, true)?.unwrap_or_default();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO raw_hours (dev, hour, seq_min, seq_max, n, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    raw.hour,
                    seq_in(raw.seq_min),
                    seq_in(raw.seq_max),
                    raw.reports as i64,
                    raw.data
                ])
            })
            .map(drop)
            .map_err(db_err)
    }

    fn raw_delete(&mut self, dev: Dev<'_>, hour: i64) -> Result<(), StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(());
        };
        self.conn
            .prepare_cached("DELETE FROM raw_hours WHERE dev = ?1 AND hour = ?2")
            .and_then(|mut s| s.execute(params![id, hour]))
            .map(drop)
            .map_err(db_err)
    }

    fn raw_for_each(&mut self, each: &mut EachRaw<'_>) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.org, d.device, r.hour, r.seq_min, r.seq_max, r.n, r.data
                 FROM raw_hours r JOIN dev_ids d ON d.id = r.dev
                 ORDER BY d.org, d.device, r.hour",
            )
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let org: String = r.get(0).map_err(db_err)?;
            let device: String = r.get(1).map_err(db_err)?;
            let raw = RawHour {
                hour: r.get(2).map_err(db_err)?,
                seq_min: seq_out(r.get(3).map_err(db_err)?),
                seq_max: seq_out(r.get(4).map_err(db_err)?),
                reports: r.get::<_, i64>(5).map_err(db_err)? as u64,
                data: r.get(6).map_err(db_err)?,
            };
            each(&org, &device, raw)?;
        }
        Ok(())
    }

    fn raw_report_count(&mut self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(SUM(n), 0) FROM raw_hours", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(db_err)
    }

    fn rollup_day_get(&mut self, dev: Dev<'_>, day: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(None);
        };
        self.conn
            .prepare_cached("SELECT data FROM rollup_days WHERE dev = ?1 AND day = ?2")
            .and_then(|mut s| s.query_row(params![id, day], |r| r.get(0)).optional())
            .map_err(db_err)
    }

    fn rollup_day_put(&mut self, dev: Dev<'_>, day: i64, data: &[u8]) -> Result<(), StoreError> {
        let id = self.dev_id(dev, true)?.unwrap_or_default();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO rollup_days (dev, day, data) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![id, day, data]))
            .map(drop)
            .map_err(db_err)
    }

    fn rollup_day_delete(&mut self, dev: Dev<'_>, day: i64) -> Result<(), StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(());
        };
        self.conn
            .prepare_cached("DELETE FROM rollup_days WHERE dev = ?1 AND day = ?2")
            .and_then(|mut s| s.execute(params![id, day]))
            .map(drop)
            .map_err(db_err)
    }

    fn rollup_days(
        &mut self,
        dev: Dev<'_>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(Vec::new());
        };
        self.conn
            .prepare_cached(
                "SELECT day, data FROM rollup_days WHERE dev = ?1 AND day >= ?2 AND day < ?3 ORDER BY day",
            )
            .and_then(|mut s| {
                s.query_map(params![id, from_day, to_day], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(db_err)
    }

    fn rollup_days_all(
        &mut self,
        span: DevSpan<'_>,
        from_day: i64,
        to_day: i64,
        each: &mut EachDay<'_>,
    ) -> Result<(), StoreError> {
        // Row values against the (org, device) unique index: SQLite seeks to the span's
        // first device and stops at its end, rather than testing every device.
        const OPEN: &str = "SELECT d.org, d.device, r.day, r.data
             FROM dev_ids d JOIN rollup_days r ON r.dev = d.id
             WHERE (d.org, d.device) >= (?1, ?2) AND (?3 IS NULL OR d.org = ?3)
               AND r.day >= ?4 AND r.day < ?5
             ORDER BY d.org, d.device, r.day";
        const CLOSED: &str = "SELECT d.org, d.device, r.day, r.data
             FROM dev_ids d JOIN rollup_days r ON r.dev = d.id
             WHERE (d.org, d.device) >= (?1, ?2) AND (?3 IS NULL OR d.org = ?3)
               AND (d.org, d.device) < (?6, ?7)
               AND r.day >= ?4 AND r.day < ?5
             ORDER BY d.org, d.device, r.day";
        let first = span.first;
        let mut stmt;
        let mut rows = match span.end {
            None => {
                stmt = self.conn.prepare_cached(OPEN).map_err(db_err)?;
                stmt.query(params![first.org, first.device, span.org, from_day, to_day])
            }
            Some(end) => {
                stmt = self.conn.prepare_cached(CLOSED).map_err(db_err)?;
                stmt.query(params![
                    first.org,
                    first.device,
                    span.org,
                    from_day,
                    to_day,
                    end.org,
                    end.device
                ])
            }
        }
        .map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            // Borrowed, not copied: a month of a large fleet is a million rows.
            let text = |i| {
                r.get_ref(i)
                    .map_err(db_err)?
                    .as_str()
                    .map_err(|e| StoreError::Engine(format!("dev_ids: {e}")))
            };
            let (org, device) = (text(0)?, text(1)?);
            let day: i64 = r.get(2).map_err(db_err)?;
            let data = r
                .get_ref(3)
                .map_err(db_err)?
                .as_blob()
                .map_err(|e| StoreError::Engine(format!("rollup_days.data: {e}")))?;
            each(org, device, day, data)?;
        }
        Ok(())
    }

    fn reading_put(
        &mut self,
        org: &str,
        meter: &str,
        quantity: &str,
        (ts, value, flags): Reading,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO readings (org, meter, quantity, ts, value, flags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| s.execute(params![org, meter, quantity, ts, value, flags]))
            .map(drop)
            .map_err(db_err)
    }

    fn reading_exists(
        &mut self,
        org: &str,
        meter: &str,
        quantity: &str,
        ts_ms: i64,
    ) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM readings WHERE org = ?1 AND meter = ?2 AND quantity = ?3 AND ts = ?4",
            )
            .and_then(|mut s| s.exists(params![org, meter, quantity, ts_ms]))
            .map_err(db_err)
    }

    fn readings(
        &mut self,
        org: &str,
        meter: &str,
        quantity: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Reading>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT ts, value, flags FROM readings
                 WHERE org = ?1 AND meter = ?2 AND quantity = ?3 AND ts >= ?4 AND ts < ?5
                 ORDER BY ts",
            )
            .and_then(|mut s| {
                s.query_map(params![org, meter, quantity, from_ms, to_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix_range() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn seqs_keep_their_order_across_the_sign_bit() {
        let seqs = [0, 1, (1 << 63) - 1, 1 << 63, u64::MAX];
        let mapped: Vec<i64> = seqs.iter().map(|s| seq_in(*s)).collect();
        assert!(mapped.windows(2).all(|w| w[0] < w[1]));
        assert!(seqs.iter().all(|s| seq_out(seq_in(*s)) == *s));
    }
}
