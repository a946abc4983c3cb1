//! [`Tx`] over one PostgreSQL transaction: the statements of the embedded engine, in
//! PostgreSQL's dialect, prepared once per connection.

use std::collections::{HashMap, HashSet};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Row, Statement, Transaction};

use super::schema::{self, Partition, Table};
use super::{Postgres, db_err};
use crate::store::StoreError;
use crate::store::engine::{Dev, DevSpan, EachDay, EachRaw, Entries, RawHour, Reading, Tree, Tx};
use crate::store::sqlite::{prefix_end, seq_in, seq_out};

type Param<'a> = &'a (dyn ToSql + Sync);

/// A connection and the statements prepared on it (server-side, for its lifetime).
pub(super) struct Conn {
    pub client: Client,
    pub stmts: HashMap<&'static str, Statement>,
}

impl Conn {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            stmts: HashMap::new(),
        }
    }
}

/// The registries that no device lock covers, read and rewritten by their writers
/// (policy versions, meter counters, rooms, assets, the format): a write transaction
/// takes a lock per registry at its first read of it, so two collectors (or a CLI)
/// cannot both read the same version and both write the next.
fn needs_registry_lock(tree: Tree) -> bool {
    matches!(
        tree,
        Tree::Meta
            | Tree::Policies
            | Tree::Meters
            | Tree::Rooms
            | Tree::Asset
            | Tree::Wake
            | Tree::FleetAsset
    )
}

pub(super) struct PgTx<'a> {
    tx: Transaction<'a>,
    stmts: &'a mut HashMap<&'static str, Statement>,
    engine: &'a Postgres,
    write: bool,
    /// Partitions a write needed and found missing: the engine creates them and runs
    /// the body again.
    missing: Vec<Partition>,
    locked: HashSet<Tree>,
    /// Ids inserted by this transaction: cached only once committed elsewhere.
    created: HashSet<(String, String)>,
}

fn raw_of(r: &Row) -> RawHour {
    RawHour {
        hour: r.get(0),
        seq_min: seq_out(r.get(1)),
        seq_max: seq_out(r.get(2)),
        reports: r.get::<_, i64>(3).max(0) as u64,
        data: r.get(4),
    }
}

impl<'a> PgTx<'a> {
    pub fn new(
        tx: Transaction<'a>,
        stmts: &'a mut HashMap<&'static str, Statement>,
        engine: &'a Postgres,
        write: bool,
    ) -> Self {
        Self {
            tx,
            stmts,
            engine,
            write,
            missing: Vec::new(),
            locked: HashSet::new(),
            created: HashSet::new(),
        }
    }

    /// The transaction, and the partitions found missing (empty when none).
    pub fn finish(self) -> (Transaction<'a>, Vec<Partition>) {
        (self.tx, self.missing)
    }

    fn stmt(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql).map_err(db_err)?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &'static str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let s = self.stmt(sql)?;
        self.tx.query(&s, params).map_err(db_err)
    }

    fn execute(&mut self, sql: &'static str, params: &[Param<'_>]) -> Result<(), StoreError> {
        let s = self.stmt(sql)?;
        self.tx.execute(&s, params).map(drop).map_err(db_err)
    }

    /// The device's id, created when `create` (a write); `None` for a device never
    /// stored.
    fn dev_id(&mut self, dev: Dev<'_>, create: bool) -> Result<Option<i64>, StoreError> {
        let key = (dev.org.to_owned(), dev.device.to_owned());
        if let Some(id) = self
            .engine
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(Some(*id));
        }
        let found = self
            .query(
                "SELECT id FROM dev_ids WHERE org = $1 AND device = $2",
                &[&dev.org, &dev.device],
            )?
            .first()
            .map(|r| r.get::<_, i64>(0));
        let id = match (found, create) {
            (Some(id), _) => id,
            (None, false) => return Ok(None),
            (None, true) => {
                // Another writer may insert the same device at once (a rollup load
                // takes no device lock): the second waits for the first and reads its
                // id.
                let inserted = self
                    .query(
                        "INSERT INTO dev_ids (org, device) VALUES ($1, $2)
                         ON CONFLICT (org, device) DO NOTHING RETURNING id",
                        &[&dev.org, &dev.device],
                    )?
                    .first()
                    .map(|r| r.get::<_, i64>(0));
                return match inserted {
                    Some(id) => {
                        // Not cached: the transaction may still roll back.
                        self.created.insert(key);
                        Ok(Some(id))
                    }
                    None => Ok(self
                        .query(
                            "SELECT id FROM dev_ids WHERE org = $1 AND device = $2",
                            &[&dev.org, &dev.device],
                        )?
                        .first()
                        .map(|r| r.get::<_, i64>(0))),
                };
            }
        };
        if !self.created.contains(&key) {
            self.engine
                .ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, id);
        }
        Ok(Some(id))
    }

    /// Makes sure the partition of `ms` in `table` exists before a row goes there: a
    /// partition another collector made is learnt from the catalog; a missing one is
    /// noted, and the write fails so that the engine creates it and runs it again.
    fn partition(&mut self, table: Table, ms: i64) -> Result<(), StoreError> {
        let Some(p) = table.partition_of(ms) else {
            return Ok(());
        };
        if self.engine.knows(&p.name) {
            return Ok(());
        }
        let exists: bool = self
            .query("SELECT to_regclass($1) IS NOT NULL", &[&p.name])?
            .first()
            .is_some_and(|r| r.get(0));
        if exists {
            self.engine.learn(&p.name);
            return Ok(());
        }
        let e = StoreError::Engine(format!(
            "partition {} does not exist yet (created, then the write runs again)",
            p.name
        ));
        self.missing.push(p);
        Err(e)
    }

    fn lock_registry(&mut self, tree: Tree) -> Result<(), StoreError> {
        if !self.write || !needs_registry_lock(tree) || !self.locked.insert(tree) {
            return Ok(());
        }
        let key = Tree::ALL
            .iter()
            .position(|t| *t == tree)
            .unwrap_or_default() as i32;
        self.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&schema::REGISTRY_LOCK_SPACE, &key],
        )
    }

    fn raw_rows(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<RawHour>, StoreError> {
        Ok(self.query(sql, params)?.iter().map(raw_of).collect())
    }
}

impl Tx for PgTx<'_> {
    fn lock_device(&mut self, dev: Dev<'_>) -> Result<(), StoreError> {
        if !self.write {
            return Ok(());
        }
        // The database's own hash: every collector build agrees on it. Org ids never
        // contain ':', so the pair is unambiguous; a collision only serialises two
        // devices needlessly.
        self.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))",
            &[&dev.org, &dev.device],
        )
    }

    fn kv_get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.lock_registry(tree)?;
        Ok(self
            .query(
                "SELECT value FROM kv WHERE tree = $1 AND key = $2",
                &[&tree.name(), &key],
            )?
            .first()
            .map(|r| r.get(0)))
    }

    fn kv_scan(&mut self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.lock_registry(tree)?;
        let rows = match prefix_end(prefix) {
            Some(end) => self.query(
                "SELECT key, value FROM kv WHERE tree = $1 AND key >= $2 AND key < $3
                 ORDER BY key",
                &[&tree.name(), &prefix, &end],
            )?,
            None => self.query(
                "SELECT key, value FROM kv WHERE tree = $1 AND key >= $2 ORDER BY key",
                &[&tree.name(), &prefix],
            )?,
        };
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn kv_put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO kv (tree, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
            &[&tree.name(), &key, &value],
        )
    }

    fn kv_delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM kv WHERE tree = $1 AND key = $2",
            &[&tree.name(), &key],
        )
    }

    fn raw_get(&mut self, dev: Dev<'_>, hour: i64) -> Result<Option<RawHour>, StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(None);
        };
        Ok(self
            .raw_rows(
                "SELECT hour, seq_min, seq_max, n, data FROM raw_hours
                 WHERE dev = $1 AND hour = $2",
                &[&id, &hour],
            )?
            .pop())
    }

    fn raw_by_seq(&mut self, dev: Dev<'_>, lo: u64, hi: u64) -> Result<Vec<RawHour>, StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(Vec::new());
        };
        self.raw_rows(
            "SELECT hour, seq_min, seq_max, n, data FROM raw_hours
             WHERE dev = $1 AND seq_max >= $2 AND seq_min <= $3 ORDER BY hour",
            &[&id, &seq_in(lo), &seq_in(hi)],
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
             WHERE dev = $1 AND hour >= $2 AND hour < $3 ORDER BY hour",
            &[&id, &from_hour, &to_hour],
        )
    }

    fn raw_put(&mut self, dev: Dev<'_>, raw: &RawHour) -> Result<(), StoreError> {
        self.partition(Table::RawHours, raw.hour)?;
        let id = self.dev_id(dev, true)?.unwrap_or_default();
        self.execute(
            "INSERT INTO raw_hours (dev, hour, seq_min, seq_max, n, data)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (dev, hour) DO UPDATE SET seq_min = EXCLUDED.seq_min,
               seq_max = EXCLUDED.seq_max, n = EXCLUDED.n, data = EXCLUDED.data",
            &[
                &id,
                &raw.hour,
                &seq_in(raw.seq_min),
                &seq_in(raw.seq_max),
                &(raw.reports as i64),
                &raw.data,
            ],
        )
    }

    fn raw_delete(&mut self, dev: Dev<'_>, hour: i64) -> Result<(), StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(());
        };
        self.execute(
            "DELETE FROM raw_hours WHERE dev = $1 AND hour = $2",
            &[&id, &hour],
        )
    }

    fn raw_for_each(&mut self, each: &mut EachRaw<'_>) -> Result<(), StoreError> {
        let s = self.stmt(
            // In order without a sort of the whole history (see `rollup_days_all`).
            "SELECT d.org, d.device, r.hour, r.seq_min, r.seq_max, r.n, r.data
             FROM (SELECT id, org, device FROM dev_ids ORDER BY org, device) d
             CROSS JOIN LATERAL (
                 SELECT hour, seq_min, seq_max, n, data FROM raw_hours
                 WHERE dev = d.id ORDER BY hour) r",
        )?;
        // Streamed: the whole raw history does not fit in memory.
        let mut rows = self
            .tx
            .query_raw(&s, std::iter::empty::<Param<'_>>())
            .map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let org: &str = r.get(0);
            let device: &str = r.get(1);
            let raw = RawHour {
                hour: r.get(2),
                seq_min: seq_out(r.get(3)),
                seq_max: seq_out(r.get(4)),
                reports: r.get::<_, i64>(5).max(0) as u64,
                data: r.get(6),
            };
            each(org, device, raw)?;
        }
        Ok(())
    }

    fn raw_report_count(&mut self) -> Result<u64, StoreError> {
        Ok(self
            .query("SELECT COALESCE(SUM(n), 0)::bigint FROM raw_hours", &[])?
            .first()
            .map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    fn rollup_day_get(&mut self, dev: Dev<'_>, day: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(None);
        };
        Ok(self
            .query(
                "SELECT data FROM rollup_days WHERE dev = $1 AND day = $2",
                &[&id, &day],
            )?
            .first()
            .map(|r| r.get(0)))
    }

    fn rollup_day_put(&mut self, dev: Dev<'_>, day: i64, data: &[u8]) -> Result<(), StoreError> {
        self.partition(Table::RollupDays, day)?;
        let id = self.dev_id(dev, true)?.unwrap_or_default();
        self.execute(
            "INSERT INTO rollup_days (dev, day, data) VALUES ($1, $2, $3)
             ON CONFLICT (dev, day) DO UPDATE SET data = EXCLUDED.data",
            &[&id, &day, &data],
        )
    }

    fn rollup_day_delete(&mut self, dev: Dev<'_>, day: i64) -> Result<(), StoreError> {
        let Some(id) = self.dev_id(dev, false)? else {
            return Ok(());
        };
        self.execute(
            "DELETE FROM rollup_days WHERE dev = $1 AND day = $2",
            &[&id, &day],
        )
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
        Ok(self
            .query(
                "SELECT day, data FROM rollup_days WHERE dev = $1 AND day >= $2 AND day < $3
                 ORDER BY day",
                &[&id, &from_day, &to_day],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn rollup_days_all(
        &mut self,
        span: DevSpan<'_>,
        from_day: i64,
        to_day: i64,
        each: &mut EachDay<'_>,
    ) -> Result<(), StoreError> {
        // Two statements. First the span's devices with their integer ids, in (org,
        // device) order from their unique index (a row comparison the index seeks
        // to): a few hundred short rows for a report's chunk. Then their days by id,
        // in the same order (`unnest ... WITH ORDINALITY`, each device's days from
        // the primary key: no sort), one row per device holding all its days as two
        // arrays and naming the device by its place in the list. Why one row per
        // device: the client's work per row (the sync driver enters its runtime and
        // polls the connection for each one) was ~40 % of the report loaders' CPU
        // with one row per device-day (a month of 30,000 devices: 960,000 rows, ~1 GB);
        // 32 times fewer rows took the client's CPU for that report from ~2.35 to
        // ~1.8 s (BENCHMARKS 6c, session 9). A join ordered by (org, device, day) made
        // PostgreSQL sort the whole period's packed days (spilled to disk), which took
        // most of the month report's 18.7 s (BENCHMARKS 5a).
        const IDS_OPEN: &str = "SELECT id, org, device FROM dev_ids
             WHERE (org, device) >= ($1, $2) AND ($3::text IS NULL OR org = $3)
             ORDER BY org, device";
        const IDS_CLOSED: &str = "SELECT id, org, device FROM dev_ids
             WHERE (org, device) >= ($1, $2) AND ($3::text IS NULL OR org = $3)
               AND (org, device) < ($4, $5)
             ORDER BY org, device";
        const DAYS: &str = "SELECT u.n, r.days, r.data
             FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, n)
             CROSS JOIN LATERAL (
                 SELECT array_agg(day) AS days, array_agg(data) AS data
                 FROM (SELECT day, data FROM rollup_days
                       WHERE dev = u.id AND day >= $2 AND day < $3
                       ORDER BY day) s) r
             WHERE r.days IS NOT NULL";
        let first = span.first;
        let devices = match span.end {
            None => self.query(IDS_OPEN, &[&first.org, &first.device, &span.org])?,
            Some(end) => self.query(
                IDS_CLOSED,
                &[&first.org, &first.device, &span.org, &end.org, &end.device],
            )?,
        };
        if devices.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = devices.iter().map(|r| r.get(0)).collect();
        let s = self.stmt(DAYS)?;
        let params: [Param<'_>; 3] = [&ids, &from_day, &to_day];
        // Streamed: a month of a large fleet is hundreds of MB of packed days.
        let mut rows = self.tx.query_raw(&s, params).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let n: i64 = r.get(0);
            let dev = usize::try_from(n - 1)
                .ok()
                .and_then(|i| devices.get(i))
                .ok_or_else(|| {
                    StoreError::Engine(format!("rollup scan: device {n} is not in the list"))
                })?;
            let days: Vec<i64> = r.try_get(1).map_err(db_err)?;
            let data: Vec<&[u8]> = r.try_get(2).map_err(db_err)?;
            if days.len() != data.len() {
                return Err(StoreError::Engine(format!(
                    "rollup scan: {} days but {} packed days",
                    days.len(),
                    data.len()
                )));
            }
            let mut pairs: Vec<(i64, &[u8])> = days.into_iter().zip(data).collect();
            // array_agg takes its input in the subquery's order, which PostgreSQL
            // documents as what "usually" happens, not as a promise: checked here.
            if !pairs.is_sorted_by_key(|(day, _)| *day) {
                pairs.sort_unstable_by_key(|(day, _)| *day);
            }
            for (day, data) in pairs {
                each(dev.get(1), dev.get(2), day, data)?;
            }
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
        self.execute(
            "INSERT INTO readings (org, meter, quantity, ts, value, flags)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (org, meter, quantity, ts)
             DO UPDATE SET value = EXCLUDED.value, flags = EXCLUDED.flags",
            &[&org, &meter, &quantity, &ts, &value, &i16::from(flags)],
        )
    }

    fn reading_exists(
        &mut self,
        org: &str,
        meter: &str,
        quantity: &str,
        ts_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(!self
            .query(
                "SELECT 1 FROM readings
                 WHERE org = $1 AND meter = $2 AND quantity = $3 AND ts = $4",
                &[&org, &meter, &quantity, &ts_ms],
            )?
            .is_empty())
    }

    fn readings(
        &mut self,
        org: &str,
        meter: &str,
        quantity: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Reading>, StoreError> {
        Ok(self
            .query(
                "SELECT ts, value, flags FROM readings
                 WHERE org = $1 AND meter = $2 AND quantity = $3 AND ts >= $4 AND ts < $5
                 ORDER BY ts",
                &[&org, &meter, &quantity, &from_ms, &to_ms],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i16>(2).clamp(0, 255) as u8))
            .collect())
    }
}
