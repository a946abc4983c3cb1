//! The database schema, as numbered migrations run at connect, and the time partitions
//! of the two bulk tables.
//!
//! The tables are the embedded engine's ([`crate::store::sqlite`]), in PostgreSQL's
//! types: bigint ids and times, bytea blobs, text in the "C" collation so that ids sort
//! byte by byte as they do in SQLite (and in the kv keys).
//!
//! `raw_hours` is partitioned by range on `hour`, one partition per UTC day, and
//! `rollup_days` on `day`, one per UTC month: retention deletes rows of old partitions
//! (and an operator may drop a whole partition past retention without touching the
//! others), a month's report reads only that month's partition. Each also has a default
//! partition, so that a row outside every partition (a time out of [`YEARS`]) is still
//! stored, never refused.

use postgres::Client;

use crate::store::StoreError;
use veille_proto::units::MS_PER_DAY;

/// Migrations, in order: migration `i` takes the schema from version `i` to `i + 1`.
/// Append only; never edit one that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: the tables of the embedded engine, with time partitions.
    r#"
CREATE TABLE kv (
  tree text COLLATE "C" NOT NULL, key bytea NOT NULL, value bytea NOT NULL,
  PRIMARY KEY (tree, key));
CREATE TABLE dev_ids (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org text COLLATE "C" NOT NULL, device text COLLATE "C" NOT NULL,
  UNIQUE (org, device));
CREATE TABLE raw_hours (
  dev bigint NOT NULL, hour bigint NOT NULL, seq_min bigint NOT NULL,
  seq_max bigint NOT NULL, n bigint NOT NULL, data bytea NOT NULL,
  PRIMARY KEY (dev, hour)) PARTITION BY RANGE (hour);
CREATE INDEX raw_hours_seq ON raw_hours (dev, seq_max);
CREATE TABLE raw_hours_default PARTITION OF raw_hours DEFAULT;
CREATE TABLE rollup_days (
  dev bigint NOT NULL, day bigint NOT NULL, data bytea NOT NULL,
  PRIMARY KEY (dev, day)) PARTITION BY RANGE (day);
CREATE TABLE rollup_days_default PARTITION OF rollup_days DEFAULT;
CREATE TABLE readings (
  org text COLLATE "C" NOT NULL, meter text COLLATE "C" NOT NULL,
  quantity text COLLATE "C" NOT NULL, ts bigint NOT NULL,
  value double precision NOT NULL, flags smallint NOT NULL,
  PRIMARY KEY (org, meter, quantity, ts));
"#,
];

/// The schema version this code writes and reads.
pub fn current_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Advisory lock key space (the first of the two-int form, apart from the bigint keys
/// of `lock_device`) for the engine's own DDL.
pub const DDL_LOCK_SPACE: i32 = 0x5645_494c; // "VEIL"
/// Second key under [`DDL_LOCK_SPACE`]: migrations.
pub const MIGRATION_LOCK: i32 = 1;
/// Second key under [`DDL_LOCK_SPACE`]: partition creation.
pub const PARTITION_LOCK: i32 = 2;
/// Advisory lock key space of the registries' locks (second key: the registry's index
/// in [`crate::store::engine::Tree::ALL`]).
pub const REGISTRY_LOCK_SPACE: i32 = DDL_LOCK_SPACE + 1;

/// Years (UTC) that get partitions of their own; rows of other times go to the default
/// partition. Reports come from agents' clocks, which validation bounds, but a wild
/// clock must not create partitions that nobody will ever purge.
pub const YEARS: std::ops::Range<i16> = 2000..2200;

/// Runs the migrations this database lacks, each in one transaction under an advisory
/// lock (two collectors starting together migrate once). A database migrated by a newer
/// collector is refused: this code would misread it.
pub fn migrate(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let err = super::db_err;
    {
        let mut tx = client.transaction().map_err(err)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&DDL_LOCK_SPACE, &MIGRATION_LOCK],
        )
        .map_err(err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY,
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    loop {
        let mut tx = client.transaction().map_err(err)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&DDL_LOCK_SPACE, &MIGRATION_LOCK],
        )
        .map_err(err)?;
        let version: i32 = tx
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(err)?
            .get(0);
        if version > current_version() {
            return Err(StoreError::Open {
                path: location.into(),
                reason: format!(
                    "the database has schema version {version}, newer than this collector's \
                     {}: run a collector at least as new as the one that migrated it",
                    current_version()
                ),
            });
        }
        let Some(sql) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(version + 1)],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version = version + 1, "store schema migrated");
    }
}

/// Which partitioned table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `raw_hours`, by day.
    RawHours,
    /// `rollup_days`, by month.
    RollupDays,
}

/// One partition: its table, name and range `[from, to)` in Unix ms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    pub table: Table,
    pub name: String,
    pub from: i64,
    pub to: i64,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::RawHours => "raw_hours",
            Table::RollupDays => "rollup_days",
        }
    }

    /// The partition holding `ms`, or `None` when it belongs to the default partition
    /// (outside [`YEARS`]).
    pub fn partition_of(self, ms: i64) -> Option<Partition> {
        let day =
            jiff::Timestamp::from_millisecond(ms.div_euclid(MS_PER_DAY).checked_mul(MS_PER_DAY)?)
                .ok()?
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date();
        if !YEARS.contains(&day.year()) {
            return None;
        }
        let ms_of = |d: jiff::civil::Date| -> Option<i64> {
            Some(
                d.to_zoned(jiff::tz::TimeZone::UTC)
                    .ok()?
                    .timestamp()
                    .as_millisecond(),
            )
        };
        let (name, from, to) = match self {
            Table::RawHours => {
                let from = ms_of(day)?;
                (day.strftime("%Y%m%d").to_string(), from, from + MS_PER_DAY)
            }
            Table::RollupDays => {
                let first = day.first_of_month();
                let next = first.checked_add(jiff::Span::new().months(1)).ok()?;
                (
                    first.strftime("%Y%m").to_string(),
                    ms_of(first)?,
                    ms_of(next)?,
                )
            }
        };
        Some(Partition {
            table: self,
            name: format!("{}_{name}", self.name()),
            from,
            to,
        })
    }
}

/// Names of the existing partitions of both tables (default ones included).
pub fn existing_partitions(client: &mut Client) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent IN ('raw_hours'::regclass, 'rollup_days'::regclass)",
            &[],
        )
        .map_err(super::db_err)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What creating a partition came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// It exists now (made here or by another collector).
    Exists,
    /// The default partition already holds rows of its range (written by a collector
    /// that could not create it): they stay there and so do new ones.
    UseDefault,
}

/// Creates `p` in its own transaction. Must be called with no transaction of this
/// connection open on the parent: `CREATE TABLE … PARTITION OF` locks the parent
/// exclusively for a moment, waiting for other sessions' transactions on it.
///
/// Two collectors creating the same partition serialise on an advisory lock and the
/// second finds it made (`IF NOT EXISTS`); without the lock, both could pass the
/// existence check and one fail on the catalog's unique index.
pub fn create_partition(client: &mut Client, p: &Partition) -> Result<Created, StoreError> {
    let mut tx = client.transaction().map_err(super::db_err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&DDL_LOCK_SPACE, &PARTITION_LOCK],
    )
    .map_err(super::db_err)?;
    // Bounded: a long report holding the parent must not stall ingest without end;
    // a timeout is `Busy`, and the agents' batches are retried.
    tx.batch_execute("SET LOCAL lock_timeout = '10s'")
        .map_err(super::db_err)?;
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})",
        p.name,
        p.table.name(),
        p.from,
        p.to
    );
    match tx.batch_execute(&sql) {
        Ok(()) => {
            tx.commit().map_err(super::db_err)?;
            tracing::debug!(partition = %p.name, "store partition created");
            Ok(Created::Exists)
        }
        Err(e) if e.code() == Some(&postgres::error::SqlState::CHECK_VIOLATION) => {
            tracing::warn!(partition = %p.name, "rows of this range are in the default \
                partition; they and new ones stay there");
            Ok(Created::UseDefault)
        }
        Err(e) => Err(super::db_err(e)),
    }
}

/// The day partitions of `raw_hours` that end by `cutoff_ms`, among `names`.
pub fn raw_partitions_before(names: &[String], cutoff_ms: i64) -> Vec<Partition> {
    names
        .iter()
        .filter_map(|n| {
            let date = n.strip_prefix("raw_hours_")?;
            if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let day = jiff::civil::Date::strptime("%Y%m%d", date).ok()?;
            let ms = day
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()?
                .timestamp()
                .as_millisecond();
            Table::RawHours
                .partition_of(ms)
                .filter(|p| p.name == *n && p.to <= cutoff_ms)
        })
        .collect()
}

/// Drops the partitions of `candidates` that hold no row, in one transaction; returns
/// their names. The parent is locked first (briefly: the check reads empty tables), so
/// no writer can put a row into a partition between the check and the drop; a writer
/// whose cache still names a dropped partition lands its row in the default one.
pub fn drop_empty(
    client: &mut Client,
    candidates: &[Partition],
) -> Result<Vec<String>, StoreError> {
    // Without a lock first: a partition that keeps rows (a report from a clock set
    // back stays above the purge watermark) must not cost an exclusive lock at every
    // purge.
    let mut looks_empty = Vec::new();
    for p in candidates {
        let empty: bool = client
            .query_one(
                &format!("SELECT NOT EXISTS (SELECT 1 FROM {})", p.name),
                &[],
            )
            .map_err(super::db_err)?
            .get(0);
        if empty {
            looks_empty.push(p);
        }
    }
    if looks_empty.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = client.transaction().map_err(super::db_err)?;
    tx.batch_execute(
        "SET LOCAL lock_timeout = '10s'; LOCK TABLE raw_hours IN ACCESS EXCLUSIVE MODE",
    )
    .map_err(super::db_err)?;
    let mut dropped = Vec::new();
    for p in looks_empty {
        let empty: bool = tx
            .query_one(
                &format!("SELECT NOT EXISTS (SELECT 1 FROM {})", p.name),
                &[],
            )
            .map_err(super::db_err)?
            .get(0);
        if empty {
            tx.batch_execute(&format!("DROP TABLE {}", p.name))
                .map_err(super::db_err)?;
            dropped.push(p.name.clone());
        }
    }
    tx.commit().map_err(super::db_err)?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_utc_days_and_months() {
        // 2026-12-07T13:00:00Z
        let ms = 1_796_648_400_000;
        let raw = Table::RawHours.partition_of(ms).unwrap();
        assert_eq!(raw.name, "raw_hours_20261207");
        assert_eq!((raw.from, raw.to), (1_796_601_600_000, 1_796_688_000_000));
        let roll = Table::RollupDays.partition_of(ms).unwrap();
        assert_eq!(roll.name, "rollup_days_202612");
        // 2026-12-01 to 2027-01-01.
        assert_eq!((roll.from, roll.to), (1_796_083_200_000, 1_798_761_600_000));
        assert!(roll.from <= raw.from && raw.to <= roll.to);
        // The last millisecond of a day is in that day; the next one is not.
        assert_eq!(Table::RawHours.partition_of(raw.to - 1).unwrap(), raw);
        assert_ne!(Table::RawHours.partition_of(raw.to).unwrap(), raw);
        // Out of YEARS: the default partition.
        assert_eq!(Table::RawHours.partition_of(0), None);
        assert_eq!(Table::RollupDays.partition_of(i64::MAX), None);
        assert_eq!(Table::RollupDays.partition_of(i64::MIN), None);

        let names = [
            "raw_hours_20261206",
            "raw_hours_20261207",
            "raw_hours_default",
            "rollup_days_202611",
            "raw_hours_2026120",
        ]
        .map(String::from);
        let before: Vec<String> = raw_partitions_before(&names, raw.to)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(before, ["raw_hours_20261206", "raw_hours_20261207"]);
        assert_eq!(raw_partitions_before(&names, raw.to - 1).len(), 1);
    }
}
